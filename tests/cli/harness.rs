//! Test fixture: each `Env` is a fresh temporary spool and a builder for qspool commands in it.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

pub struct Env {
    _dir: tempfile::TempDir,
    spool: PathBuf,
}

impl Env {
    /// A fresh spool path that does not exist yet.
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = dir.path().join("spool");
        Env { _dir: dir, spool }
    }

    /// A fresh spool made by `qspool init` with the given extra arguments.
    pub fn init(args: &[&str]) -> Env {
        let env = Env::new();
        env.cmd(&[&["init"], args].concat()).assert().success();
        env
    }

    pub fn spool(&self) -> &Path {
        &self.spool
    }

    /// Scratch space beside the spool, removed with it.
    pub fn scratch(&self) -> &Path {
        self._dir.path()
    }

    /// `qspool ARGS...` against this spool, with no inherited spool settings.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("qspool").expect("binary");
        c.env_remove("QSPOOL_DIR")
            .env_remove("XDG_STATE_HOME")
            .env("HOME", self.scratch().join("home"))
            .arg("--spool")
            .arg(&self.spool)
            .args(args);
        c
    }

    /// Runs a command to completion and returns its output, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run qspool")
    }

    /// Pushes one message given as an argument and returns its id.
    pub fn push(&self, body: &str) -> String {
        let out = self
            .cmd(&["push", body])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        text.trim_end().to_owned()
    }

    /// `pop --json` plus `extra`; returns the one object printed. Panics unless exit 0.
    pub fn pop_json(&self, extra: &[&str]) -> Value {
        let out = self
            .cmd(&[&["pop", "--json"], extra].concat())
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        let v: Value = serde_json::from_str(lines.next().expect("a line")).unwrap();
        assert!(lines.next().is_none(), "more than one object: {text}");
        v
    }

    /// `stats --json`, parsed.
    pub fn stats(&self) -> Value {
        let out = self
            .cmd(&["stats", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    }

    /// The entry names directly in a state directory (`tmp`, `leased`, `done`, `dead`).
    pub fn names(&self, state: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.spool.join(state))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Every file under `new/` (any bucket depth), as paths.
    pub fn new_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path());
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.spool.join("new"), &mut v);
        v.sort();
        v
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the process exited with `code` and, if it failed, said so in exactly one stderr line
/// starting `qspool: `.
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    if code == 1 || code == 2 && !stderr(o).starts_with("error:") {
        let err = stderr(o);
        assert!(err.starts_with("qspool: "), "stderr: {err}");
    }
}

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

    /// `qspool ARGS...` against this spool, to be shaped (`stdin`, `umask`, `via`, `at`) and
    /// then run once by `output`, `expect` or `fails`.
    pub fn qspool(&self, args: &[&str]) -> Run<'_> {
        Run {
            env: self,
            args: args.iter().map(|&a| a.to_owned()).collect(),
            spool: None,
            stdin: None,
            wrapper: Vec::new(),
        }
    }

    /// Runs a command to completion and returns its output, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.qspool(args).output()
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
    /// The names in a state directory; for `leased/`, the lease files in its buckets (and any
    /// flat in `leased/` itself), not the buckets.
    pub fn names(&self, state: &str) -> Vec<String> {
        if state == "leased" {
            fn walk(dir: &Path, depth: usize, out: &mut Vec<String>) {
                for e in std::fs::read_dir(dir).unwrap() {
                    let e = e.unwrap();
                    let name = e.file_name().into_string().unwrap();
                    let width = [7, 3].get(depth).copied().unwrap_or(0);
                    let bucket = name.len() == width && name.bytes().all(|b| b.is_ascii_digit());
                    if bucket && e.file_type().unwrap().is_dir() {
                        walk(&e.path(), depth + 1, out);
                    } else {
                        out.push(name);
                    }
                }
            }
            let mut v = Vec::new();
            walk(&self.spool.join("leased"), 0, &mut v);
            v.sort();
            return v;
        }
        let mut v: Vec<String> = std::fs::read_dir(self.spool.join(state))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Every file under `new/` (any bucket depth), as paths.
    pub fn new_files(&self) -> Vec<PathBuf> {
        self.files_under("new")
    }

    /// The path of the lease whose receipt is `receipt`: `leased/KKKKKKK/SSS/RECEIPT`, from
    /// the expiry in it.
    pub fn lease_file(&self, receipt: &str) -> PathBuf {
        self.spool.join(lease_rel(receipt))
    }

    /// Every file under a state directory's bucket tree, as paths, sorted.
    pub fn files_under(&self, state: &str) -> Vec<PathBuf> {
        files_under(&self.spool.join(state))
    }
    /// Like `cmd`, but a plain `std::process::Command`, for spawning with pipes.
    pub fn std_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(qspool_bin());
        self.prepare(&mut c);
        c.arg("--spool").arg(&self.spool).args(args);
        c
    }

    /// The same environment as `cmd`: no inherited spool settings, HOME in the scratch space.
    fn prepare(&self, c: &mut std::process::Command) {
        c.env_remove("QSPOOL_DIR")
            .env_remove("XDG_STATE_HOME")
            .env("HOME", self.scratch().join("home"));
    }

    /// Runs `qspool ARGS` with `input` on standard input.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        self.qspool(args).stdin(input).output()
    }

    /// Runs `qspool ARGS` with `input` on standard input under `umask MASK`, set by `sh`
    /// before it execs qspool.
    pub fn run_umask(&self, mask: &str, args: &[&str], input: &[u8]) -> Output {
        self.qspool(args).umask(mask).stdin(input).output()
    }

    /// Every entry under the spool root (the root included), with its `lstat` metadata.
    pub fn tree(&self) -> Vec<(PathBuf, std::fs::Metadata)> {
        fn walk(p: &Path, out: &mut Vec<(PathBuf, std::fs::Metadata)>) {
            let meta = std::fs::symlink_metadata(p).unwrap();
            let is_dir = meta.is_dir();
            out.push((p.to_path_buf(), meta));
            if is_dir {
                for e in std::fs::read_dir(p).unwrap() {
                    walk(&e.unwrap().path(), out);
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.spool, &mut v);
        v
    }

    /// The spool's settings file, parsed.
    pub fn settings(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.spool.join("qspool.json")).unwrap()).unwrap()
    }

    /// Pushes each body as its own argument in one call; returns the ids printed.
    pub fn push_all(&self, bodies: &[&str]) -> Vec<String> {
        let out = self.run(&[&["push"], bodies].concat());
        assert_exit(&out, 0);
        let ids = lines(&out);
        assert_eq!(ids.len(), bodies.len(), "{ids:?}");
        ids
    }

    /// `pop` with no flags: asserts exit 0 and returns the payload bytes.
    pub fn pop_raw(&self) -> Vec<u8> {
        let out = self.run(&["pop"]);
        assert_exit(&out, 0);
        out.stdout
    }

    /// Asserts that `pop` finds nothing visible: exit 3 and empty standard output.
    pub fn assert_empty(&self) {
        let out = self.run(&["pop"]);
        assert_exit(&out, 3);
        assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
    }

    /// Runs `qspool --spool SPOOL ARGS...` for another spool path (in the same environment).
    pub fn run_at(&self, spool: &Path, args: &[&str]) -> Output {
        self.qspool(args).at(spool).output()
    }

    /// File names (not paths) of everything under `new/`.
    pub fn new_names(&self) -> Vec<String> {
        self.new_files()
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect()
    }

    /// Runs `qspool ARGS` with its standard output a pipe that is closed before anything is
    /// read.
    pub fn run_closed_stdout(&self, args: &[&str]) -> Output {
        let mut child = self
            .std_cmd(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    }
}

/// One qspool command line, built by `Env::qspool`. Nothing runs until `output`, `expect` or
/// `fails` consumes it.
#[must_use = "a command line does nothing until it is run"]
pub struct Run<'a> {
    env: &'a Env,
    args: Vec<String>,
    spool: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    /// A program that runs qspool: its arguments end with the qspool executable.
    wrapper: Vec<String>,
}

impl Run<'_> {
    /// Feeds `input` on standard input (else standard input is empty).
    pub fn stdin(mut self, input: &[u8]) -> Self {
        self.stdin = Some(input.to_vec());
        self
    }

    /// Runs under `umask MASK`, set by `sh` just before it execs qspool.
    pub fn umask(self, mask: &str) -> Self {
        self.via(&[
            "sh",
            "-c",
            r#"umask "$1" || exit 99; shift; exec "$@""#,
            "sh",
            mask,
        ])
    }

    /// Runs qspool through `wrapper` (such as `strace -o FILE -e inject=...`), which is given
    /// the qspool executable and then its arguments.
    pub fn via(mut self, wrapper: &[&str]) -> Self {
        assert!(self.wrapper.is_empty(), "one wrapper at a time");
        self.wrapper = wrapper.iter().map(|&w| w.to_owned()).collect();
        self
    }

    /// Points `--spool` at another path, in the same environment.
    pub fn at(mut self, spool: &Path) -> Self {
        self.spool = Some(spool.to_path_buf());
        self
    }

    /// Runs to completion and returns the output, whatever the exit code.
    pub fn output(self) -> Output {
        let spool = self.spool.as_deref().unwrap_or(&self.env.spool);
        let mut c = match self.wrapper.split_first() {
            None => std::process::Command::new(qspool_bin()),
            Some((program, args)) => {
                let mut c = std::process::Command::new(program);
                c.args(args).arg(qspool_bin());
                c
            }
        };
        self.env.prepare(&mut c);
        c.arg("--spool").arg(spool).args(&self.args);
        let mut c = Command::from_std(c);
        if let Some(input) = self.stdin {
            c.write_stdin(input);
        }
        c.output().expect("run qspool")
    }

    /// Runs, asserts the exit code (see `assert_exit`), and returns the output.
    #[track_caller]
    pub fn expect(self, code: i32) -> Output {
        let out = self.output();
        assert_exit(&out, code);
        out
    }

    /// Runs, asserts a failure with `code` reported as exactly one `qspool: ` line on standard
    /// error, and returns that line.
    #[track_caller]
    pub fn fails(self, code: i32) -> String {
        assert_ne!(code, 0, "a failure has a nonzero exit code");
        let out = self.expect(code);
        one_error_line(&out)
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
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    if code == 1 || code == 2 {
        let err = stderr(o);
        assert!(err.starts_with("qspool: "), "stderr: {err}");
    }
}

/// The qspool executable under test.
pub fn qspool_bin() -> &'static str {
    env!("CARGO_BIN_EXE_qspool")
}

/// Standard output split into lines (without their `\n`).
/// Standard output as JSON lines, one value each (`pop --json`).
pub fn parse_lines(o: &Output) -> Vec<Value> {
    lines(o)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

pub fn lines(o: &Output) -> Vec<String> {
    stdout(o).lines().map(str::to_owned).collect()
}

/// Asserts that standard error is exactly one line, `qspool: ...`, and returns it.
#[track_caller]
pub fn one_error_line(o: &Output) -> String {
    let err = stderr(o);
    assert!(err.starts_with("qspool: "), "stderr: {err:?}");
    assert!(err.ends_with('\n'), "stderr: {err:?}");
    assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
    err.trim_end().to_owned()
}

/// Milliseconds since the Unix epoch, by the same clock qspool reads.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Parses an RFC 3339 timestamp (`2026-11-28T02:31:31.123Z`, fraction and offset optional
/// forms included) into milliseconds since the Unix epoch. Panics on anything else.
pub fn rfc3339_ms(s: &str) -> u64 {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> i64 {
        let t = &s[r];
        assert!(t.bytes().all(|c| c.is_ascii_digit()), "not RFC 3339: {s}");
        t.parse().unwrap()
    };
    assert!(b.len() >= 20, "not RFC 3339: {s}");
    assert!(
        b[4] == b'-'
            && b[7] == b'-'
            && matches!(b[10], b'T' | b't')
            && b[13] == b':'
            && b[16] == b':',
        "not RFC 3339: {s}"
    );
    let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
    let (h, mi, sec) = (num(11..13), num(14..16), num(17..19));
    assert!(
        (1..=12).contains(&mo) && (1..=31).contains(&d),
        "not RFC 3339: {s}"
    );
    assert!(h < 24 && mi < 60 && sec < 61, "not RFC 3339: {s}");
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        assert!(i > start, "not RFC 3339: {s}");
        let digits = format!("{:0<3}", &s[start..i]);
        frac_ms = digits[..3].parse().unwrap();
    }
    let offset_min = match &s[i..] {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let m = num(i + 1..i + 3) * 60 + num(i + 4..i + 6);
            if o.starts_with('-') { -m } else { m }
        }
        _ => panic!("not RFC 3339: {s}"),
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    u64::try_from(secs * 1000 + frac_ms).unwrap()
}

/// Decodes standard base64 with padding.
pub fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert_eq!(s.len() % 4, 0, "base64 length: {s}");
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let mut n: u32 = 0;
        for &c in chunk {
            let v = if c == b'=' {
                0
            } else {
                A.iter().position(|&a| a == c).expect("base64 alphabet") as u32
            };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

/// Asserts `id` has the shape of a qspool id: `TIME.PID.COUNTER.RANDOM.HOST`.
pub fn assert_id(id: &str) {
    let parts: Vec<&str> = id.splitn(5, '.').collect();
    assert_eq!(parts.len(), 5, "id {id:?}");
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let hex8 = |s: &str| s.len() == 8 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    assert!(parts[0].len() == 16 && digits(parts[0]), "id {id:?}");
    assert!(digits(parts[1]), "id {id:?}");
    assert!(hex8(parts[2]) && hex8(parts[3]), "id {id:?}");
    assert!(
        !parts[4].is_empty()
            && parts[4].len() <= 32
            && parts[4]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-'),
        "id {id:?}"
    );
}

/// The lease expiry millisecond written in a receipt (`ID,aN,lMS,tTOKEN`).
pub fn receipt_expiry_ms(receipt: &str) -> u64 {
    let field = receipt
        .split(',')
        .find_map(|f| f.strip_prefix('l'))
        .unwrap_or_else(|| panic!("no lease field in {receipt:?}"));
    field.parse().unwrap()
}

/// The id part of a message file name or receipt (everything before the first comma).
pub fn id_of(name: &str) -> &str {
    name.split(',').next().unwrap()
}

/// A short pause, enough for a 1 ms lease to expire.
pub fn pause() {
    std::thread::sleep(std::time::Duration::from_millis(5));
}

/// The receipt in a `pop --json` object.
pub fn receipt(v: &Value) -> String {
    v["receipt"].as_str().unwrap().to_owned()
}

/// The id in a `pop --json` object.
pub fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Runs a command and checks what every run must satisfy: no panic, and every stderr line is a
/// `qspool: ` error line.
#[track_caller]
pub fn run(env: &Env, args: &[&str]) -> Output {
    let o = env.run(args);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for line in err.lines() {
        assert!(line.starts_with("qspool: "), "{args:?}: stderr {err:?}");
    }
    o
}

/// The leaf bucket under `new/` that holds messages visible at `ms`.
pub fn bucket(spool: &Path, ms: u64) -> PathBuf {
    spool
        .join("new")
        .join(format!("{:07}", ms / 1_000_000))
        .join(format!("{:03}", (ms / 1_000) % 1_000))
        .join(format!("{:03}", ms % 1_000))
}

/// The value of one `,<tag>` field of a message's file name, e.g. `v` (visible-at), `l` (lease
/// expiry) or `a` (attempts).
pub fn field(name: &str, tag: char) -> u64 {
    name.split(',')
        .skip(1)
        .find_map(|f| f.strip_prefix(tag))
        .unwrap_or_else(|| panic!("no field {tag} in {name}"))
        .parse()
        .unwrap()
}

/// Whether strace runs here. Where it does not, the test says it skipped, unless CI (which
/// installs strace and sets QSPOOL_TEST_NEEDS_STRACE) runs it: there it fails instead.
pub fn strace_works(test: &str) -> bool {
    let works = std::process::Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        assert!(
            std::env::var_os("QSPOOL_TEST_NEEDS_STRACE").is_none(),
            "strace is needed and does not work here"
        );
        eprintln!("strace does not work here: {test} skipped");
    }
    works
}

/// Whether the soak tier runs (`QSPOOL_SOAK=1`): the same tests with bigger counts.
pub fn soak() -> bool {
    std::env::var("QSPOOL_SOAK").is_ok_and(|v| v == "1")
}

/// `PROGRAM --spool SPOOL ARGS...` with no inherited spool settings, for tests that run qspool
/// outside an `Env` (on a mounted filesystem, through a wrapper such as faketime). `program`
/// is qspool itself, or a wrapper whose arguments end with qspool.
pub fn spool_command(
    program: &[&std::ffi::OsStr],
    spool: &Path,
    args: &[&str],
) -> std::process::Command {
    let mut c = std::process::Command::new(program[0]);
    c.args(&program[1..])
        .env_remove("QSPOOL_DIR")
        .env_remove("XDG_STATE_HOME")
        .arg("--spool")
        .arg(spool)
        .args(args);
    c
}

/// `leased/KKKKKKK/SSS/RECEIPT`, relative to the spool: where a lease's file is (FORMAT.md §2).
pub fn lease_rel(receipt: &str) -> String {
    let l: u64 = receipt
        .split(",l")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("not a receipt: {receipt:?}"));
    format!(
        "leased/{:07}/{:03}/{receipt}",
        l / 1_000_000,
        (l / 1_000) % 1_000
    )
}

/// Every non-directory under `dir`, at any depth, as paths, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
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
    walk(dir, &mut v);
    v.sort();
    v
}

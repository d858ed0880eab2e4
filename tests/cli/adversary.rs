//! An adversary beside qspool: another user's links, FIFOs and junk in the spool, a spool root
//! qspool should not trust, hostile command lines, and the modes of what qspool creates.

use crate::harness::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The unprivileged user the adversary runs as.
const NOBODY: u32 = 65534;

/// Seconds a command may run before `timeout` kills it; a hang on a FIFO or a lock would exceed
/// it, a debug build under strace on a busy machine would not.
const HANG_SECS: &str = "60";

/// What every command of the hostile-spool test may peak at, with the junk names in place.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// Content of the adversary's own files outside the spool; it must never reach an output.
const SECRET: &str = "ADVERSARY-SECRET";

/// CI sets this: there a missing tool or a non-root run is a failure, not a skip.
fn strict() -> bool {
    std::env::var("QSPOOL_TEST_NEEDS_ROOT_TOOLS").is_ok_and(|v| v == "1")
}

fn skip(why: &str) -> bool {
    assert!(!strict(), "QSPOOL_TEST_NEEDS_ROOT_TOOLS=1 but {why}");
    eprintln!("skipped: {why}");
    false
}

/// The full path of `tool` on PATH.
fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// True when running as root with every tool named; otherwise says why it skips (or panics
/// under QSPOOL_TEST_NEEDS_ROOT_TOOLS=1).
fn need(tools: &[&str]) -> bool {
    if fs::metadata("/proc/self").unwrap().uid() != 0 {
        return skip("needs root");
    }
    for t in tools {
        if which(t).is_none() {
            return skip(&format!("{t} is not installed"));
        }
    }
    true
}

fn tool(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| panic!("{name} not found"))
}

// ---------------------------------------------------------------------------------------------
// Running qspool under strace.

/// One traced run: the command's output, the syscalls of the qspool processes, and the peak
/// resident set size when it was measured.
struct Traced {
    out: Output,
    args: Vec<String>,
    /// (pid, syscall name, the whole line), for qspool processes only.
    calls: Vec<(u32, String, String)>,
    rss_kib: Option<u64>,
}

#[derive(Default)]
struct How<'a> {
    umask: Option<&'a str>,
    env: Vec<(&'a str, &'a str)>,
    rss: bool,
    stdin: Vec<u8>,
}

/// Runs `qspool --spool SPOOL ARGS` under `strace -f`, killed after `HANG_SECS`, from a working
/// directory outside the spool, with a closed-in environment.
fn traced(env: &Env, how: &How, args: &[&str]) -> Traced {
    let n = TRACE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tfile = env.scratch().join(format!("trace-{n}"));
    let mfile = env.scratch().join(format!("rss-{n}"));
    let cwd = env.scratch().join("cwd");
    fs::create_dir_all(&cwd).unwrap();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#"umask "$1" || exit 99; shift; exec "$@""#)
        .arg("sh")
        .arg(how.umask.unwrap_or("077"))
        .arg(tool("strace"))
        .args(["-f", "--seccomp-bpf", "-qq", "-y", "-s", "256"])
        .args(["-e", "trace=%file,%desc,%process,fchmod,umask"])
        .arg("-o")
        .arg(&tfile)
        .arg("--")
        .arg(tool("timeout"))
        .args(["-s", "KILL", HANG_SECS]);
    if how.rss {
        c.arg(tool("time")).args(["-f", "%M", "-o"]).arg(&mfile);
    }
    c.arg(qspool_bin())
        .arg("--spool")
        .arg(env.spool())
        .args(args)
        .current_dir(&cwd)
        .env_remove("QSPOOL_DIR")
        .env_remove("XDG_STATE_HOME")
        .env_remove("QSPOOL_TRUST_SPOOL")
        // The test runner's library path would send the loader searching its directories.
        .env_remove("LD_LIBRARY_PATH")
        .env("HOME", env.scratch().join("home"))
        .envs(how.env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn strace");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // A command that does not read its input closes the pipe: that is not an error here.
        let _ = stdin.write_all(&how.stdin);
    }
    let out = child.wait_with_output().unwrap();
    let text = fs::read_to_string(&tfile).unwrap_or_default();
    fs::remove_file(&tfile).ok();
    let calls = qspool_calls(&text);
    assert!(
        !calls.is_empty(),
        "{args:?}: no trace of qspool (strace failed?): {}",
        stderr(&out)
    );
    let rss_kib = how.rss.then(|| {
        let m = fs::read_to_string(&mfile).unwrap_or_default();
        m.lines()
            .filter_map(|l| l.trim().parse().ok())
            .next_back()
            .unwrap_or_else(|| panic!("{args:?}: no RSS in {m:?}"))
    });
    let t = Traced {
        out,
        args: args.iter().map(ToString::to_string).collect(),
        calls,
        rss_kib,
    };
    let code = t.out.status.code();
    assert_ne!(
        code,
        Some(137),
        "{:?} hung: killed after {HANG_SECS}s",
        t.args
    );
    assert!(code.is_some(), "{:?} was killed by a signal", t.args);
    let err = stderr(&t.out);
    assert!(!err.contains("panicked"), "{:?} panicked: {err}", t.args);
    for line in err.lines() {
        assert!(line.starts_with("qspool: "), "{:?}: stderr {err:?}", t.args);
    }
    t
}

static TRACE_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The syscall lines of an `strace -f -o` file that belong to qspool: every process from the
/// moment it executes the qspool binary until it executes something else (a `work` command).
/// The wrappers (`timeout`, `time`) exec their own binaries first, so they are left out.
fn qspool_calls(text: &str) -> Vec<(u32, String, String)> {
    let bin = format!("execve(\"{}\"", qspool_bin());
    let mut state: BTreeMap<u32, bool> = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("+++") || rest.starts_with("---") {
            continue;
        }
        let name = match rest.strip_prefix("<... ") {
            Some(r) => r.split(' ').next().unwrap_or(""),
            None => rest.split('(').next().unwrap_or(""),
        }
        .to_owned();
        if rest.starts_with("execve(") {
            state.insert(pid, rest.starts_with(&bin[..]));
            continue;
        }
        // A process never seen to exec is a thread or fork of the one that made it: with -f,
        // those are qspool's own (the wrappers only fork to exec).
        if *state.get(&pid).unwrap_or(&true) {
            out.push((pid, name, rest.to_owned()));
        }
    }
    out
}

/// Syscalls whose string arguments are paths.
const PATH_CALLS: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "stat",
    "lstat",
    "newfstatat",
    "fstatat64",
    "statx",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "unlink",
    "unlinkat",
    "mkdir",
    "mkdirat",
    "rmdir",
    "chdir",
    "chroot",
    "chmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "lchown",
    "fchownat",
    "utimensat",
    "utime",
    "utimes",
    "futimesat",
    "mknod",
    "mknodat",
    "truncate",
    "statfs",
    "inotify_add_watch",
    "getxattr",
    "lgetxattr",
    "setxattr",
    "lsetxattr",
    "listxattr",
    "llistxattr",
    "removexattr",
    "lremovexattr",
    "name_to_handle_at",
    "mount",
    "umount2",
    "swapon",
    "acct",
    "pivot_root",
];

/// The double-quoted strings of a strace line, unescaped enough to compare paths, each with
/// whether the argument before it is a descriptor other than the working directory (so that a
/// relative path in it is resolved against that descriptor).
fn quoted(line: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            continue;
        }
        let before = line[..i].trim_end_matches(", ");
        let dirfd = before.ends_with('>')
            && before
                .rfind('<')
                .is_some_and(|lt| lt > 0 && before.as_bytes()[lt - 1].is_ascii_digit());
        let mut s = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        s.push('\\');
                        s.push(n);
                    }
                }
                '"' => break,
                c => s.push(c),
            }
        }
        out.push((s, dirfd));
    }
    out
}

/// The paths strace decoded for file descriptors (`3</a/b>`), not the working directory.
fn fd_paths(line: &str) -> Vec<String> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    for (i, _) in line.match_indices("</") {
        if i == 0 || !b[i - 1].is_ascii_digit() {
            continue;
        }
        if let Some(end) = line[i + 1..].find('>') {
            out.push(line[i + 1..i + 1 + end].to_owned());
        }
    }
    out
}

/// Paths a process may name outside the spool: the dynamic loader's, the process's own
/// `/proc` entries, and `/dev/null`.
fn allowed_outside(p: &str) -> bool {
    p == qspool_bin()
        || p == "/dev/null"
        || p == "/etc/ld.so.cache"
        || p == "/etc/ld.so.preload"
        || [
            "/proc/self/",
            "/lib/",
            "/lib64/",
            "/usr/lib/",
            "/usr/lib64/",
        ]
        .iter()
        .any(|pre| p.starts_with(pre))
        || p.strip_prefix("/proc/").is_some_and(|r| {
            r.split('/')
                .next()
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|c| c.is_ascii_digit()))
        })
}

fn inside(p: &str, roots: &[String]) -> bool {
    roots.iter().any(|r| {
        p == r
            || p.strip_prefix(r.as_str())
                .is_some_and(|s| s.starts_with('/'))
    })
}

/// The spool path as given and as the kernel resolves it (strace decodes descriptors resolved).
fn spool_roots(env: &Env) -> Vec<String> {
    let mut v = vec![env.spool().to_str().unwrap().to_owned()];
    let parent = fs::canonicalize(env.scratch()).unwrap();
    v.push(parent.join("spool").to_str().unwrap().to_owned());
    v.dedup();
    v
}

/// Every path a traced qspool named or held that is neither in the spool nor on the short
/// list of the loader's and its own; and every path given relative to the working directory.
fn escapes(t: &Traced, roots: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    for (pid, name, line) in &t.calls {
        let mut paths = fd_paths(line);
        if PATH_CALLS.contains(&name.as_str()) {
            for (s, dirfd) in quoted(line) {
                if s.starts_with('/') {
                    paths.push(s);
                } else if !s.is_empty() && !dirfd {
                    bad.push(format!("{pid} relative to the working directory: {line}"));
                }
            }
        }
        for p in paths {
            if !inside(&p, roots) && !allowed_outside(&p) {
                bad.push(format!("{pid} {p}: {line}"));
            }
        }
    }
    bad
}

fn assert_no_escape(t: &Traced, roots: &[String]) {
    let bad = escapes(t, roots);
    assert!(
        bad.is_empty(),
        "{:?} named paths outside the spool:\n{}",
        t.args,
        bad.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The adversary.

/// Runs a shell script as the unprivileged user, with `args` as its positional parameters.
fn as_nobody(script: &str, args: &[&str]) {
    let o = Command::new(tool("setpriv"))
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .args(["sh", "-euc", script, "adversary"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "adversary script failed: {}",
        stderr(&o)
    );
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
}

/// Contents of what the adversary's links point at outside the spool, and the names in
/// `/etc`: they must come out of every command as they went in.
fn outside_state(outside: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for p in ["/etc/passwd", "/etc/shadow", "/etc/hostname", "/etc/hosts"] {
        if let Ok(b) = fs::read(p) {
            v.push((p.to_owned(), b));
        }
    }
    let mut etc: Vec<String> = fs::read_dir("/etc")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    etc.sort();
    v.push(("/etc/*".into(), etc.join("\n").into_bytes()));
    let mut walk = vec![outside.to_path_buf()];
    while let Some(d) = walk.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let key = format!("{} {:o} {}", p.display(), m.mode(), m.nlink());
            if m.is_dir() {
                walk.push(p);
                v.push((key, Vec::new()));
            } else if m.is_file() {
                v.push((key, fs::read(&p).unwrap()));
            } else {
                v.push((key, Vec::new()));
            }
        }
    }
    v.sort();
    v
}

/// A made-up id no real message has.
fn fake_id(n: u32) -> String {
    format!("1700000000000000.4242.{n:08x}.00000000.adversary")
}

/// The bucket path under `new/` for a visible-at time.
fn bucket_rel(ms: u64) -> String {
    format!(
        "{:07}/{:03}/{:03}",
        ms / 1_000_000,
        (ms / 1_000) % 1_000,
        ms % 1_000
    )
}

/// The planting script. Each state directory gets links to `/etc`, `/etc/passwd`, the
/// adversary's own secret and nowhere, a FIFO, a hard link to the secret and a directory, each
/// under a name qspool would take for one of its own in that directory; some take the ids of
/// real messages. Then `$JUNK` names spread over the directories.
const PLANT: &str = r#"
S=$1 O=$2 JUNK=$3 PAST=$4 OLD=$5; shift 5
# The rest: DIR NAME pairs; DIR is relative to the spool.
printf %s "ADVERSARY-SECRET" > "$O/secret"
mkdir -p "$O/decoy/000/000"
printf %s "ADVERSARY-DECOY" > "$O/decoy/000/000/1700000000000000.1.00000000.00000000.decoy,a0,v$PAST"
i=0
while [ $# -ge 2 ]; do
  d=$S/$1 n=$2; shift 2
  mkdir -p "$d"
  case $i in
    0) ln -s /etc "$d/$n" ;;
    1) ln -s /etc/passwd "$d/$n" ;;
    2) ln -s /etc/shadow "$d/$n" ;;
    3) ln -s "$O/secret" "$d/$n" ;;
    4) ln -s "$O/nowhere" "$d/$n" ;;
    5) mkfifo "$d/$n" ;;
    6) ln "$O/secret" "$d/$n" ;;
    7) mkdir "$d/$n"; printf x > "$d/$n/inside" ;;
  esac
  touch -h -d "@$OLD" "$d/$n"
  i=$(( (i + 1) % 8 ))
done
# A whole level-1 bucket of the past replaced by a link to a decoy tree.
ln -s "$O/decoy" "$S/new/$(printf %07d $(( PAST / 1000000 - 1 )))"
set -- tmp new leased done dead "new/$(printf %07d $(( PAST / 1000000 )))"
per=$(( JUNK / $# ))
for d in "$@"; do
  (cd "$S/$d" && seq -f "junk-%.0f" 1 "$per" | xargs touch)
  (cd "$S/$d" && seq -f "1700000000000000.9.%08.0f.00000000.x,a0,vbad" 1 10 | xargs touch)
done
"#;

/// The names planted in each directory: one per kind of thing, in the order of `PLANT`.
fn plant_names(dir: &str, past: u64, real_ids: &[String]) -> Vec<String> {
    (0..8u32)
        .map(|k| {
            // Half the names take a real message's id.
            let id = if k % 2 == 0 {
                real_ids[k as usize % real_ids.len()].clone()
            } else {
                fake_id(k + 100 * dir.len() as u32)
            };
            match dir {
                "leased" => format!("{id},a1,l{past:013},t{:016x}", k + 1),
                "done" | "dead" => format!("{id},a1,f{past:013}"),
                _ => format!("{id},a0,v{past:013}"),
            }
        })
        .collect()
}

struct Hostile {
    env: Env,
    roots: Vec<String>,
    outside: PathBuf,
    ids: Vec<String>,
    lease: String,
    before: Vec<(String, Vec<u8>)>,
    max_rss: u64,
    max_rss_args: String,
    runs: u32,
}

impl Hostile {
    /// A spool with real messages in every state, opened to the unprivileged user, who then
    /// plants everything in it.
    fn new(junk: usize) -> Hostile {
        let env = Env::init(&[]);
        let mut ids = Vec::new();
        // In the order pop takes them: ids[0] is the live lease, ids[4] stays ready.
        for b in ["leased", "expired", "done", "dead", "ready"] {
            ids.push(env.push(b));
        }
        let m = env.pop_json(&["--lease", "1h"]);
        let lease = receipt(&m);
        let m = env.pop_json(&["--lease", "1ms"]);
        let _expired = receipt(&m);
        let m = env.pop_json(&[]);
        assert_exit(&env.run(&["ack", &receipt(&m)]), 0);
        let m = env.pop_json(&[]);
        assert_exit(&env.run(&["bury", &receipt(&m)]), 0);

        let outside = env.scratch().join("outside");
        fs::create_dir(&outside).unwrap();
        chown(&outside, NOBODY);
        // The adversary may enter the spool and write every directory of it.
        chmod(env.scratch(), 0o755);
        for e in env.tree() {
            if e.1.is_dir() {
                chmod(&e.0, 0o777);
            }
        }
        let now = now_ms();
        let past = now - 3_600_000;
        let old = (now / 1000 - 3 * 86_400).to_string();
        let mut pairs = Vec::new();
        let past_bucket = format!("new/{}", bucket_rel(past));
        let level1 = format!("new/{:07}", past / 1_000_000);
        let level2 = format!("{level1}/{:03}", (past / 1_000) % 1_000);
        for dir in [
            "tmp",
            "new",
            level1.as_str(),
            level2.as_str(),
            past_bucket.as_str(),
            "leased",
            "done",
            "dead",
        ] {
            let state = dir.split('/').next().unwrap();
            for n in plant_names(state, past, &ids) {
                pairs.push(dir.to_owned());
                pairs.push(n);
            }
        }
        let past_s = past.to_string();
        let junk_s = junk.to_string();
        let mut args = vec![
            env.spool().to_str().unwrap(),
            outside.to_str().unwrap(),
            junk_s.as_str(),
            past_s.as_str(),
            old.as_str(),
        ];
        args.extend(pairs.iter().map(String::as_str));
        // Hard links to qspool's own message files. The kernel's protected_hardlinks keeps the
        // unprivileged user from making them on most hosts; root plants them for the hosts
        // without it.
        let msg_files: Vec<PathBuf> = env
            .tree()
            .into_iter()
            .filter(|(p, m)| {
                // Not the live lease: the test goes on using it.
                m.is_file() && !p.ends_with("qspool.json") && !p.ends_with(&lease)
            })
            .map(|(p, _)| p)
            .collect();
        assert_eq!(msg_files.len(), 4, "{msg_files:?}");
        for (i, (state, name)) in [
            ("tmp", format!("{},a0,v{past:013}", fake_id(900))),
            (
                "leased",
                format!("{},a1,l{past:013},t00000000000000aa", fake_id(901)),
            ),
            ("done", format!("{},a1,f{past:013}", fake_id(902))),
            ("dead", format!("{},a1,f{past:013}", fake_id(903))),
        ]
        .into_iter()
        .enumerate()
        {
            fs::hard_link(&msg_files[i], env.spool().join(state).join(name)).unwrap();
        }
        let before = outside_state(&outside);
        as_nobody(PLANT, &args);
        let before = {
            // The adversary's files exist now; the snapshot of /etc is from before planting.
            let mut b = before;
            b.retain(|(k, _)| k.starts_with('/') && !k.starts_with(outside.to_str().unwrap()));
            b.extend(
                outside_state(&outside)
                    .into_iter()
                    .filter(|(k, _)| k.starts_with(outside.to_str().unwrap())),
            );
            b.sort();
            b
        };
        let roots = spool_roots(&env);
        Hostile {
            env,
            roots,
            outside,
            ids,
            lease,
            before,
            max_rss: 0,
            max_rss_args: String::new(),
            runs: 0,
        }
    }

    /// Runs one command as root under strace and checks the promises: it ends, cleanly, with
    /// one of `codes`; it names nothing outside the spool; nothing of the adversary's reaches
    /// its output; it stays within the memory bound.
    fn run(&mut self, args: &[&str], codes: &[i32]) -> Output {
        let how = How {
            env: vec![("QSPOOL_TRUST_SPOOL", "1")],
            rss: true,
            ..How::default()
        };
        let t = traced(&self.env, &how, args);
        let code = t.out.status.code().unwrap();
        assert!(
            codes.contains(&code),
            "{args:?}: exit {code}, expected one of {codes:?}: {}",
            stderr(&t.out)
        );
        assert_no_escape(&t, &self.roots);
        // The trace does see the spool: an empty or misread trace would pass everything.
        assert!(
            t.calls
                .iter()
                .any(|(_, _, l)| self.roots.iter().any(|r| l.contains(r))),
            "{args:?}: no syscall in the spool was traced"
        );
        let out = String::from_utf8_lossy(&t.out.stdout);
        for bad in [SECRET, "ADVERSARY-DECOY", "root:"] {
            assert!(!out.contains(bad), "{args:?} printed {bad}: {out}");
        }
        let rss = t.rss_kib.unwrap();
        assert!(rss < RSS_LIMIT_KIB, "{args:?} peaked at {rss} KiB resident");
        if rss > self.max_rss {
            self.max_rss = rss;
            self.max_rss_args = args.join(" ");
        }
        self.runs += 1;
        t.out
    }

    fn assert_outside_unchanged(&self) {
        assert_eq!(
            outside_state(&self.outside),
            self.before,
            "something outside the spool changed"
        );
    }

    /// Every command, in an order that gives each something to do.
    fn every_command(&mut self) {
        let ok = &[0][..];
        let lease = self.lease.clone();
        let o = self.run(&["push", "pushed"], ok);
        let pushed = lines(&o)[0].clone();
        let o = self.run(&["pop", "--json", "--lease", "1h"], &[0, 3]);
        if o.status.code() == Some(0) {
            let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let body = m["body"].as_str().unwrap();
            assert!(
                ["pushed", "ready", "expired"].contains(&body),
                "delivered {m}"
            );
            let o = self.run(&["extend", "--lease", "1h", &receipt(&m)], ok);
            let r = stdout(&o).trim().to_owned();
            self.run(&["requeue", &r], ok);
        }
        let o = self.run(&["extend", "--lease", "2h", &lease], ok);
        let lease = stdout(&o).trim().to_owned();
        self.run(&["show", &pushed], ok);
        for id in self.ids.clone() {
            self.run(&["show", "--json", &id], &[0, 1, 4]);
        }
        // The planted leases: links, FIFOs, directories and hard links under receipt names.
        let leased: Vec<String> = self
            .env
            .names("leased")
            .into_iter()
            .filter(|n| n.contains(",t") && *n != lease)
            .collect();
        assert!(leased.len() >= 9, "{leased:?}");
        // Several receipts in one call: the foreign ones fail, each on its own line.
        for cmd in ["ack", "requeue", "bury"] {
            let args: Vec<&str> = [cmd]
                .into_iter()
                .chain(leased.iter().map(String::as_str))
                .collect();
            self.run(&args, &[1, 4]);
        }
        for r in &leased {
            self.run(&["extend", r], &[1, 4]);
        }
        let ids: Vec<String> = (0..8).map(fake_id).chain(self.ids.clone()).collect();
        for cmd in [
            &["dlq-replay"][..],
            &["purge", "--ready"],
            &["purge", "--dead"],
        ] {
            let args: Vec<&str> = cmd
                .iter()
                .copied()
                .chain(ids.iter().map(String::as_str))
                .collect();
            self.run(&args, &[0, 1, 4]);
        }
        self.run(&["requeue", "--expired"], &[0, 1]);
        self.run(&["stats"], ok);
        self.run(&["stats", "--json"], ok);
        self.run(&["list", "--all"], ok);
        self.run(&["list", "--json", "--all"], ok);
        self.run(&["pop", "--json", "-n", "5"], &[0, 3]);
        self.run(&["work", "-n", "3", "--", "cat"], &[0, 1]);
        self.run(&["bury", &lease], ok);
        self.run(&["dlq-replay", "--all"], &[0, 1]);
        self.run(&["purge", "--done", "--dead", "--yes"], &[0, 1]);
        self.run(&["purge", "--ready", "--yes"], &[0, 1]);
        self.run(&["fsck"], &[1]);
        self.run(&["fsck", "--json"], &[1]);
        self.assert_outside_unchanged();
    }
}

#[test]
fn an_adversary_in_the_spool_leads_root_nowhere() {
    if !need(&[
        "strace", "setpriv", "timeout", "time", "mkfifo", "seq", "xargs",
    ]) {
        return;
    }
    let junk = if soak() { 100_000 } else { 20_000 };
    let mut h = Hostile::new(junk);
    h.every_command();
    // The planted things are all still there, untouched: nothing was followed, filled,
    // replayed or purged. Only the repair may move them, into corrupt/.
    let o = h.run(&["fsck", "--repair", "--json"], &[0, 1]);
    assert!(!o.stdout.is_empty());
    h.assert_outside_unchanged();
    h.run(&["stats", "--json"], &[0]);
    eprintln!(
        "hostile spool: {junk} junk names, {} traced commands, peak RSS {} KiB ({})",
        h.runs, h.max_rss, h.max_rss_args
    );
}

/// The adversary swaps a whole state directory for a link: `leased/` to `/etc`, the others to
/// decoy trees of message-shaped files it owns. Every command refuses; nothing outside moves.
#[test]
fn a_state_directory_swapped_for_a_link_leads_root_nowhere() {
    if !need(&[
        "strace", "setpriv", "timeout", "time", "mkfifo", "seq", "xargs",
    ]) {
        return;
    }
    let mut h = Hostile::new(1_000);
    let past = now_ms() - 3_600_000;
    let decoy_names = |state: &str| match state {
        "leased" => format!("{},a1,l{past:013},t00000000000000bb", fake_id(77)),
        "done" | "dead" => format!("{},a1,f{past:013}", fake_id(77)),
        _ => format!("{},a0,v{past:013}", fake_id(77)),
    };
    let lease = h.lease.clone();
    let id = h.ids[0].clone();
    let decoy_receipt = decoy_names("leased");
    for state in ["tmp", "new", "leased", "done", "dead"] {
        let target = if state == "leased" {
            "/etc".to_owned()
        } else {
            let d = h.outside.join(format!("swap-{state}"));
            let inner = if state == "new" {
                d.join(bucket_rel(past))
            } else {
                d.clone()
            };
            fs::create_dir_all(&inner).unwrap();
            fs::write(inner.join(decoy_names(state)), SECRET).unwrap();
            // Old, so that a cleanup of leftovers would take it if it looked there.
            fs::File::options()
                .write(true)
                .open(inner.join(decoy_names(state)))
                .unwrap()
                .set_times(fs::FileTimes::new().set_modified(std::time::UNIX_EPOCH))
                .unwrap();
            for p in [&d, &inner] {
                for a in p.ancestors().take_while(|a| a.starts_with(&h.outside)) {
                    chown(a, NOBODY);
                }
            }
            d.to_str().unwrap().to_owned()
        };
        h.before = {
            let mut b = h.before.clone();
            b.retain(|(k, _)| !k.starts_with(h.outside.to_str().unwrap()));
            b.extend(
                outside_state(&h.outside)
                    .into_iter()
                    .filter(|(k, _)| k.starts_with(h.outside.to_str().unwrap())),
            );
            b.sort();
            b
        };
        let sp = h.env.spool().to_str().unwrap().to_owned();
        as_nobody(
            r#"mv "$1/$2" "$1/$2.orig"; ln -s "$3" "$1/$2""#,
            &[&sp, state, &target],
        );
        let decoy = decoy_names(state);
        let decoy_id = id_of(&decoy).to_owned();
        let one = &[1][..];
        for args in [
            &["push", "x"][..],
            &["pop"],
            &["pop", "--json", "-n", "3"],
            &["ack", &lease],
            &["ack", &decoy_receipt],
            &["requeue", &lease],
            &["requeue", "--expired"],
            &["extend", &lease],
            &["bury", &decoy_receipt],
            &["stats"],
            &["list", "--all"],
            &["show", &id],
            &["show", &decoy_id],
            &["dlq-replay", "--all"],
            &["dlq-replay", &decoy_id],
            &["purge", "--done", "--dead", "--yes"],
            &["purge", "--ready", "--yes"],
            &["fsck"],
            &["work", "-n", "1", "--", "cat"],
        ] {
            let o = h.run(args, one);
            let err = one_error_line(&o);
            assert!(
                err.contains(&format!("{sp}/{state}")),
                "{state} {args:?}: {err}"
            );
            assert!(o.stdout.is_empty(), "{state} {args:?}: {}", stdout(&o));
        }
        h.assert_outside_unchanged();
        fs::remove_file(h.env.spool().join(state)).unwrap();
        fs::rename(
            h.env.spool().join(format!("{state}.orig")),
            h.env.spool().join(state),
        )
        .unwrap();
    }
    // Back in place, the spool works, with the lease the adversary could not take.
    h.run(&["ack", &lease], &[0]);
}

// ---------------------------------------------------------------------------------------------
// Hostile command lines.

/// The traced lines that name a path in the spool, or outside it but for the loader's.
fn touched<'a>(t: &'a Traced, roots: &[String]) -> Vec<&'a str> {
    let mut out = Vec::new();
    for (_, name, line) in &t.calls {
        let mut paths = fd_paths(line);
        if PATH_CALLS.contains(&name.as_str()) {
            paths.extend(
                quoted(line)
                    .into_iter()
                    .map(|q| q.0)
                    .filter(|s| !s.is_empty()),
            );
        }
        if paths
            .iter()
            .any(|p| inside(p, roots) || !allowed_outside(p))
        {
            out.push(line.as_str());
        }
    }
    out
}

#[test]
fn hostile_arguments_are_refused_before_the_spool_is_touched() {
    if !need(&["strace", "timeout"]) {
        return;
    }
    let env = Env::init(&[]);
    env.push("a");
    env.push("b");
    let m = env.pop_json(&["--lease", "1h"]);
    let good = receipt(&m);
    let good_id = id(&m);
    let roots = spool_roots(&env);
    let long = "a".repeat(4096);
    let bad = [
        "../../etc/passwd",
        "/x",
        "a/b",
        "..",
        "",
        "\n",
        "-x",
        long.as_str(),
    ];
    let before = env
        .tree()
        .iter()
        .map(|(p, m)| (p.clone(), m.ino(), m.mode()))
        .collect::<Vec<_>>();
    let mut runs = 0;
    for b in bad {
        let cases: Vec<Vec<&str>> = vec![
            vec!["ack", "--", b],
            vec!["ack", "--", good.as_str(), b],
            vec!["requeue", "--", b],
            vec!["requeue", "--delay", "1s", "--", b],
            vec!["extend", "--", b],
            vec!["bury", "--", good.as_str(), b],
            vec!["show", "--", b],
            vec!["show", "--json", "--", b],
            vec!["purge", "--done", "--", b],
            vec!["purge", "--dead", "--", good_id.as_str(), b],
            vec!["purge", "--ready", "--", b],
            vec!["dlq-replay", "--", b],
            vec!["dlq-replay", "--", good_id.as_str(), b],
        ];
        for args in cases {
            let t = traced(&env, &How::default(), &args);
            runs += 1;
            assert_exit(&t.out, 2);
            let err = one_error_line(&t.out);
            assert!(t.out.stdout.is_empty(), "{args:?}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            let touched = touched(&t, &roots);
            assert!(
                touched.is_empty(),
                "{args:?} touched paths before refusing:\n{}",
                touched.join("\n")
            );
        }
    }
    // The same check sees a well-formed receipt go to the spool.
    let unknown = format!("{},a1,l1700000000000,t0000000000000001", fake_id(5));
    let t = traced(&env, &How::default(), &["ack", &unknown]);
    assert_exit(&t.out, 4);
    assert!(
        !touched(&t, &roots).is_empty(),
        "the trace missed the spool"
    );
    let after = env
        .tree()
        .iter()
        .map(|(p, m)| (p.clone(), m.ino(), m.mode()))
        .collect::<Vec<_>>();
    assert_eq!(before, after);
    assert_exit(&env.run(&["ack", &good]), 0);
    eprintln!("hostile arguments: {runs} traced commands");
}

// ---------------------------------------------------------------------------------------------
// Modes.

/// The mode argument of a creating call, when the call creates: `openat(.., O_CREAT.., 0600)`,
/// `mkdirat(.., "x", 0700)`.
fn creation_mode(name: &str, line: &str) -> Option<u32> {
    let args = line.split_once('(')?.1;
    let args = args.rsplit_once(") =").map_or(args, |a| a.0);
    let args = args.trim_end_matches(" <unfinished ...>");
    let last = args.rsplit(", ").next()?.trim();
    match name {
        "open" | "openat" if line.contains("O_CREAT") || line.contains("O_TMPFILE") => {
            u32::from_str_radix(last, 8).ok().or(Some(u32::MAX))
        }
        "creat" | "mkdir" | "mkdirat" | "mknod" | "mknodat" => {
            u32::from_str_radix(last, 8).ok().or(Some(u32::MAX))
        }
        "openat2" if line.contains("O_CREAT") => Some(u32::MAX),
        _ => None,
    }
}

#[test]
fn modes_are_set_at_creation_under_any_umask() {
    if !need(&["strace", "timeout"]) {
        return;
    }
    for mask in ["000", "077"] {
        let env = Env::new();
        let how = How {
            umask: Some(mask),
            ..How::default()
        };
        let mut all = Vec::new();
        let mut go = |args: &[&str], code: i32| -> Output {
            let t = traced(&env, &how, args);
            assert_exit(&t.out, code);
            all.push(t);
            all.last().unwrap().out.clone()
        };
        go(&["init", "--lease", "1m"], 0);
        go(&["push", "a", "b", "c", "d", "e"], 0);
        go(&["push", "--delay", "1h", "later"], 0);
        let recv = |o: Output| -> String {
            let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            receipt(&m)
        };
        let r = recv(go(&["pop", "--json"], 0));
        go(&["ack", &r], 0);
        let r = recv(go(&["pop", "--json"], 0));
        go(&["bury", &r], 0);
        let r = recv(go(&["pop", "--json"], 0));
        go(&["requeue", "--delay", "2h", &r], 0);
        go(&["pop", "--json", "--lease", "1ms"], 0);
        pause();
        go(&["requeue", "--expired"], 0);
        go(&["dlq-replay", "--all"], 0);
        go(&["work", "-n", "1", "--", "cat"], 0);
        go(&["init", "--max-attempts", "7"], 0);
        let mut bad = Vec::new();
        let mut made = 0;
        for t in &all {
            for (_, name, line) in &t.calls {
                if name.contains("chmod") {
                    bad.push(format!("{:?}: {line}", t.args));
                    continue;
                }
                let Some(mode) = creation_mode(name, line) else {
                    continue;
                };
                made += 1;
                let want = if name.starts_with("mkdir") {
                    0o700
                } else {
                    0o600
                };
                if mode != want {
                    bad.push(format!("{:?}: mode {mode:o}, not {want:o}: {line}", t.args));
                }
            }
        }
        assert!(made >= 10, "umask {mask}: only {made} creating calls seen");
        assert!(
            bad.is_empty(),
            "umask {mask}: modes not set at creation:\n{}",
            bad.join("\n")
        );
        for (p, m) in env.tree() {
            let want = if m.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(m.mode() & 0o7777, want, "umask {mask}: {p:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A spool root or state directory qspool should not trust.

/// Commands that must refuse an untrusted spool, with the arguments each needs.
fn refusing_commands(receipt: &str, id: &str) -> Vec<Vec<String>> {
    [
        &["init"][..],
        &["push", "x"],
        &["pop"],
        &["pop", "--json"],
        &["ack", receipt],
        &["requeue", receipt],
        &["requeue", "--expired"],
        &["extend", receipt],
        &["bury", receipt],
        &["stats"],
        &["list"],
        &["show", id],
        &["dlq-replay", "--all"],
        &["purge", "--done"],
        &["work", "-n", "1", "--", "cat"],
    ]
    .iter()
    .map(|a| a.iter().map(ToString::to_string).collect())
    .collect()
}

fn snapshot(env: &Env) -> Vec<(PathBuf, u64, u32, u32)> {
    let mut v: Vec<_> = env
        .tree()
        .into_iter()
        .map(|(p, m)| (p, m.ino(), m.mode(), m.uid()))
        .collect();
    v.sort();
    v
}

/// Makes `path` untrusted one way, checks every command refuses with exit 1 naming the path,
/// the reason and the opt-in; then that the opt-in, by flag or environment, lets them work.
fn refused_until_trusted(untrust: &dyn Fn(&Path), which: &str, reason: &str) {
    let env = Env::init(&[]);
    env.push("a");
    env.push("b");
    let m = env.pop_json(&["--lease", "1h"]);
    let r = receipt(&m);
    let id = id(&m);
    let path = if which.is_empty() {
        env.spool().to_path_buf()
    } else {
        env.spool().join(which)
    };
    untrust(&path);
    let before = snapshot(&env);
    for args in refusing_commands(&r, &id) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = env
            .cmd(&args)
            .env_remove("QSPOOL_TRUST_SPOOL")
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(1),
            "{which:?} ({reason}) {args:?} was not refused: stdout {:?} stderr {:?}",
            stdout(&o),
            stderr(&o)
        );
        let err = one_error_line(&o);
        assert!(o.stdout.is_empty(), "{which} {args:?}: {}", stdout(&o));
        for want in [path.to_str().unwrap(), reason, "--trust-spool"] {
            assert!(
                err.contains(want),
                "{which} {args:?}: {err:?} lacks {want:?}"
            );
        }
    }
    assert_eq!(
        snapshot(&env),
        before,
        "{which}: a refused command changed the spool"
    );
    // The opt-in, by environment and by flag.
    let o = env
        .cmd(&["stats", "--json"])
        .env("QSPOOL_TRUST_SPOOL", "1")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let o = env
        .cmd(&["--trust-spool", "extend", "--lease", "1h", &r])
        .env_remove("QSPOOL_TRUST_SPOOL")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let r = stdout(&o).trim().to_owned();
    let o = env
        .cmd(&["--trust-spool", "ack", &r])
        .env_remove("QSPOOL_TRUST_SPOOL")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let o = env
        .cmd(&["pop"])
        .env("QSPOOL_TRUST_SPOOL", "1")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    assert_eq!(o.stdout, b"b");
}

#[test]
fn a_spool_root_owned_by_another_user_is_refused_unless_trusted() {
    if !need(&[]) {
        return;
    }
    refused_until_trusted(&|p| chown(p, NOBODY), "", &format!("owned by uid {NOBODY}"));
}

#[test]
fn a_spool_root_writable_by_others_is_refused_unless_trusted() {
    if !need(&[]) {
        return;
    }
    for mode in [0o777, 0o703] {
        refused_until_trusted(&|p| chmod(p, mode), "", "writable by others");
    }
}

#[test]
fn a_state_directory_owned_by_another_user_is_refused_unless_trusted() {
    if !need(&[]) {
        return;
    }
    for state in ["tmp", "new", "leased", "done", "dead"] {
        refused_until_trusted(
            &|p| chown(p, NOBODY),
            state,
            &format!("owned by uid {NOBODY}"),
        );
    }
}

#[test]
fn a_state_directory_writable_by_others_is_refused_unless_trusted() {
    if !need(&[]) {
        return;
    }
    for state in ["tmp", "new", "leased", "done", "dead"] {
        refused_until_trusted(&|p| chmod(p, 0o707), state, "writable by others");
    }
}

/// Root's own, the caller's own, and group-writable spools need no opt-in.
#[test]
fn spools_of_root_or_the_caller_are_trusted() {
    if !need(&["setpriv"]) {
        return;
    }
    // Root's, group-writable, used by root.
    let env = Env::init(&[]);
    chmod(env.spool(), 0o770);
    for s in ["tmp", "new", "leased", "done", "dead"] {
        chmod(&env.spool().join(s), 0o770);
    }
    env.push("a");
    let o = env
        .cmd(&["pop"])
        .env_remove("QSPOOL_TRUST_SPOOL")
        .output()
        .unwrap();
    assert_exit(&o, 0);

    // The caller's own spool, and the caller's state directories in a root that root owns and
    // only root may write: both trusted by the unprivileged caller.
    for root_is_roots in [false, true] {
        let env = Env::init(&[]);
        chmod(env.scratch(), 0o755);
        for (p, _) in env.tree() {
            chown(&p, NOBODY);
        }
        if root_is_roots {
            chown(env.spool(), 0);
            chmod(env.spool(), 0o755);
        }
        // A copy the unprivileged user can reach: the build directory may sit under a private
        // directory (a clone in `mktemp -d`, say).
        let bin = env.scratch().join("qspool");
        fs::copy(qspool_bin(), &bin).unwrap();
        chmod(&bin, 0o755);
        let bin = bin.to_str().unwrap().to_owned();
        let sp = env.spool().to_str().unwrap().to_owned();
        as_nobody(
            r#"unset QSPOOL_TRUST_SPOOL
            HOME=/nonexistent; export HOME
            id=$("$1" --spool "$2" push mine)
            test "$("$1" --spool "$2" pop)" = mine
            "$1" --spool "$2" stats >/dev/null
            "$1" --spool "$2" show "$id" >/dev/null"#,
            &[&bin, &sp],
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A state directory swapped while commands run.

/// Exchanges `DIR` and `LINK` (a link to a directory outside) atomically, over and over,
/// until `STOP` exists, then leaves the real directory in place. An atomic exchange, so that the
/// state directory is never missing (qspool would make a new one) but is a link half the time.
const SWAP: &str = r#"
my ($dir, $link, $stop, $nr) = @ARGV;
my ($n, $swapped) = (0, 0);
until (-e $stop) {
    syscall($nr, -100, $dir, -100, $link, 2) == 0 or die "exchange: $!";
    $swapped = !$swapped;
    $n++;
    select(undef, undef, undef, 0.0002);
}
if ($swapped) { syscall($nr, -100, $dir, -100, $link, 2) == 0 or die "exchange: $!"; }
print "$n\n";
"#;

/// The number of renameat2(2), for the exchange.
fn renameat2_nr() -> Option<u32> {
    match std::env::consts::ARCH {
        "x86_64" => Some(316),
        "aarch64" | "riscv64" | "loongarch64" => Some(276),
        _ => None,
    }
}

/// Stops the swapping adversary however the test ends, so the spool is whole for its removal.
struct Swapper {
    stop: PathBuf,
    child: std::process::Child,
}

impl Swapper {
    /// Stops the adversary; returns how many exchanges it made.
    fn finish(mut self) -> u64 {
        use std::io::Read;
        fs::write(&self.stop, b"").unwrap();
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(self.child.wait().unwrap().success(), "the adversary failed");
        out.trim().parse().unwrap()
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        let _ = fs::write(&self.stop, b"");
        let _ = self.child.wait();
    }
}

#[test]
fn a_state_directory_swapped_while_commands_run_is_never_followed() {
    if !need(&["setpriv", "perl"]) {
        return;
    }
    let Some(nr) = renameat2_nr() else {
        skip("renameat2 number unknown on this architecture");
        return;
    };
    let rounds = if soak() { 2_000 } else { 200 };
    let mut failures = Vec::new();
    for state in ["leased", "done"] {
        let env = Env::init(&[]);
        let bodies: Vec<String> = (0..rounds).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        for chunk in refs.chunks(500) {
            env.push_all(chunk);
        }
        let decoy = env.scratch().join("decoy");
        fs::create_dir(&decoy).unwrap();
        chown(&decoy, NOBODY);
        chmod(env.scratch(), 0o755);
        chmod(env.spool(), 0o777);
        let stop = env.scratch().join("stop");
        let link = env.spool().join(format!("{state}.link"));
        std::os::unix::fs::symlink(&decoy, &link).unwrap();
        chown(&link, NOBODY);
        let child = Command::new(tool("setpriv"))
            .arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .args(["perl", "-e", SWAP])
            .arg(env.spool().join(state))
            .arg(&link)
            .arg(&stop)
            .arg(nr.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let guard = Swapper { stop, child };
        let (mut leased, mut acked, mut refused) = (0, 0, 0);
        for _ in 0..rounds {
            let o = env
                .cmd(&["pop", "--json", "--lease", "1h"])
                .env("QSPOOL_TRUST_SPOOL", "1")
                .output()
                .unwrap();
            let code = o.status.code();
            assert!(matches!(code, Some(0 | 1 | 3 | 4)), "pop: {o:?}");
            assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
            if code != Some(0) {
                refused += 1;
                continue;
            }
            leased += 1;
            let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let o = env
                .cmd(&["ack", &receipt(&m)])
                .env("QSPOOL_TRUST_SPOOL", "1")
                .output()
                .unwrap();
            assert!(matches!(o.status.code(), Some(0 | 1 | 4)), "ack: {o:?}");
            assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
            acked += u32::from(o.status.success());
        }
        let swaps = guard.finish();
        assert!(swaps > 0, "the adversary never swapped");
        let strays: Vec<_> = fs::read_dir(&decoy)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        eprintln!(
            "{state} swapped {swaps} times: {rounds} rounds, {leased} leased, {acked} acked, \
             {refused} refused, {} moved out of the spool",
            strays.len()
        );
        if !strays.is_empty() {
            failures.push(format!(
                "{state}/ swapped for a link: qspool renamed {} messages through it, out of \
                 the spool, e.g. {:?}",
                strays.len(),
                strays[0]
            ));
        }
        assert!(
            fs::symlink_metadata(env.spool().join(state))
                .unwrap()
                .is_dir()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! `qspool show`: payloads and JSON in every state, read without a lease and without changing
//! anything; malformed and unknown ids, missing and read-only spools, planted links and FIFOs,
//! and a closed standard output.

use crate::harness::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

/// Long enough for a debug build on a busy machine; a hang on a FIFO would exceed it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One message of a test spool, in a known state.
struct Made {
    state: &'static str,
    id: String,
    payload: Vec<u8>,
    /// The receipt of a leased or expired message.
    receipt: Option<String>,
}

/// A payload that is not UTF-8 and names its state, so that a mix-up shows.
fn binary_payload(state: &str) -> Vec<u8> {
    let mut p = format!("{state}\n").into_bytes();
    p.extend_from_slice(b"\x00\xff\xfe\x80\r\n no newline at the end");
    p
}

/// Pushes `body` from standard input with `args`; returns its id.
fn push_bytes(env: &Env, args: &[&str], body: &[u8]) -> String {
    let out = env.run_stdin(&[&["push"], args].concat(), body);
    assert_exit(&out, 0);
    stdout(&out).trim_end().to_owned()
}

/// Pushes a message and leases it with `pop --json EXTRA`; returns its id and receipt.
fn push_and_pop(env: &Env, body: &[u8], extra: &[&str]) -> (String, String) {
    let id = push_bytes(env, &[], body);
    let v = env.pop_json(extra);
    assert_eq!(v["id"], id.as_str(), "the pop took another message: {v}");
    (id, receipt(&v))
}

/// A spool with one binary message in each of the six states. They are made in an order where
/// each pop finds only the message just pushed, and the expired lease comes last, since every
/// pop reclaims expired leases first.
fn every_state(env: &Env) -> Vec<Made> {
    let mut made = Vec::new();
    for (state, then) in [("done", "ack"), ("dead", "bury")] {
        let payload = binary_payload(state);
        let (id, r) = push_and_pop(env, &payload, &[]);
        assert_exit(&env.run(&[then, &r]), 0);
        made.push(Made {
            state,
            id,
            payload,
            receipt: None,
        });
    }
    for (state, lease) in [("leased", "1h"), ("expired", "1ms")] {
        let payload = binary_payload(state);
        let (id, r) = push_and_pop(env, &payload, &["--lease", lease]);
        made.push(Made {
            state,
            id,
            payload,
            receipt: Some(r),
        });
    }
    pause();
    for (state, args) in [("ready", &[][..]), ("delayed", &["--delay", "1h"])] {
        let payload = binary_payload(state);
        let id = push_bytes(env, args, &payload);
        made.push(Made {
            state,
            id,
            payload,
            receipt: None,
        });
    }
    made
}

/// `qspool show ARGS` in `env`, with a timeout, checked for panics.
fn show(env: &Env, args: &[&str]) -> Output {
    let o = env
        .cmd(&[&["show"], args].concat())
        .timeout(TIMEOUT)
        .output()
        .expect("run qspool");
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(o.status.code().is_some(), "{args:?} was killed (hung?)");
    o
}

/// `show --json ID`, asserted to succeed with exactly one line; returns the line and the object.
fn show_json(env: &Env, id: &str) -> (String, Value) {
    let out = show(env, &["--json", id]);
    assert_exit(&out, 0);
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.ends_with('\n'), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (text, v)
}

/// What a change to a spool entry would alter: type and mode, inode, size, link count, mtime
/// and ctime (not atime, which reading may set).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp {
    path: PathBuf,
    mode: u32,
    ino: u64,
    len: u64,
    nlink: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Every entry under `spool` (the root included), stamped, in path order.
fn snapshot(spool: &Path) -> Vec<Stamp> {
    fn walk(p: &Path, out: &mut Vec<Stamp>) {
        let m = fs::symlink_metadata(p).unwrap();
        out.push(Stamp {
            path: p.to_path_buf(),
            mode: m.mode(),
            ino: m.ino(),
            len: m.len(),
            nlink: m.nlink(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        });
        if m.is_dir() {
            for e in fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(spool, &mut out);
    out.sort();
    out
}

/// The finish time written in a done/ or dead/ name (`ID,aN,fMS`).
fn finish_ms(name: &str) -> u64 {
    name.rsplit_once(",f").unwrap().1.parse().unwrap()
}

/// A valid id that no message of these tests has.
const UNKNOWN_ID: &str = "1700000000000000.4242.00000000.00000000.nowhere";

#[test]
fn the_payload_is_printed_byte_for_byte_in_every_state() {
    let env = Env::new();
    for m in every_state(&env) {
        let out = show(&env, &[&m.id]);
        assert_exit(&out, 0);
        assert_eq!(out.stdout, m.payload, "{}", m.state);
        assert!(out.stderr.is_empty(), "{}: {}", m.state, stderr(&out));
    }
}

#[test]
fn json_has_the_fields_of_each_state_in_order_and_never_a_receipt() {
    let env = Env::new();
    let made = every_state(&env);
    let now = now_ms();
    for m in &made {
        let (text, v) = show_json(&env, &m.id);
        let at_key = match m.state {
            "ready" | "delayed" => "visible_at",
            "leased" | "expired" => "lease_expires_at",
            _ => "finished_at",
        };
        let keys = [
            "id",
            "state",
            "attempt",
            "enqueued_at",
            at_key,
            "size",
            "body_base64",
        ];
        assert_eq!(v.as_object().unwrap().len(), keys.len(), "{text}");
        let at: Vec<usize> = keys
            .iter()
            .map(|k| {
                text.find(&format!("\"{k}\":"))
                    .unwrap_or_else(|| panic!("no {k}: {text}"))
            })
            .collect();
        assert!(at.is_sorted(), "fields out of order: {text}");

        assert_eq!(v["id"], m.id.as_str());
        assert_eq!(v["state"], m.state);
        let attempt = if m.state == "ready" || m.state == "delayed" {
            0
        } else {
            1
        };
        assert_eq!(v["attempt"], attempt, "{text}");
        let enqueued_ms: u64 = m.id[..16].parse::<u64>().unwrap() / 1000;
        assert_eq!(
            rfc3339_ms(v["enqueued_at"].as_str().unwrap()),
            enqueued_ms,
            "{text}"
        );
        let when = rfc3339_ms(v[at_key].as_str().unwrap());
        match m.state {
            // Visible from the start of its push's 10 ms slot.
            "ready" => assert!(
                (enqueued_ms - enqueued_ms % 10..=now).contains(&when),
                "{text}"
            ),
            "delayed" => assert!(when >= now + 3_599_000, "{text}"),
            "leased" | "expired" => {
                let r = m.receipt.as_deref().unwrap();
                assert_eq!(when, receipt_expiry_ms(r), "{text}");
                assert_eq!(when > now, m.state == "leased", "{text}");
                // Neither the receipt nor its token: show hands out no lease.
                let token = r.rsplit_once(",t").unwrap().1;
                assert!(!text.contains(token), "{text}");
            }
            dir => {
                let names = env.names(dir);
                assert_eq!(names.len(), 1, "{names:?}");
                assert_eq!(when, finish_ms(&names[0]), "{text}");
            }
        }
        assert_eq!(v["size"], m.payload.len());
        assert_eq!(base64_decode(v["body_base64"].as_str().unwrap()), m.payload);
        assert!(v.get("receipt").is_none(), "{text}");
    }
}

#[test]
fn a_utf8_payload_is_body_and_anything_else_is_body_base64() {
    let env = Env::new();
    let text = "héllo \"world\"\n\ttab \u{1d11e} nul\u{0}";
    let utf8 = push_bytes(&env, &[], text.as_bytes());
    let binary = push_bytes(&env, &[], b"caf\xe9 latin-1");
    let empty = push_bytes(&env, &[], b"");

    let (_, v) = show_json(&env, &utf8);
    assert_eq!(v["body"], text);
    assert_eq!(v["size"], text.len());
    assert!(v.get("body_base64").is_none(), "{v}");

    let (_, v) = show_json(&env, &binary);
    assert_eq!(
        base64_decode(v["body_base64"].as_str().unwrap()),
        b"caf\xe9 latin-1"
    );
    assert!(v.get("body").is_none(), "{v}");

    let (_, v) = show_json(&env, &empty);
    assert_eq!(v["body"], "");
    assert_eq!(v["size"], 0);
    let out = show(&env, &[&empty]);
    assert_exit(&out, 0);
    assert!(out.stdout.is_empty());
}

#[test]
fn showing_changes_nothing_and_the_next_pop_still_gets_attempt_1() {
    let env = Env::new();
    let made = every_state(&env);
    let before = snapshot(env.spool());
    for m in &made {
        assert_exit(&show(&env, &[&m.id]), 0);
        show_json(&env, &m.id);
    }
    assert_eq!(snapshot(env.spool()), before, "show changed the spool");

    let ready = made.iter().find(|m| m.state == "ready").unwrap();
    let v = env.pop_json(&[]);
    assert_eq!(v["id"], ready.id.as_str());
    assert_eq!(v["attempt"], 1, "{v}");
}

#[test]
fn a_malformed_id_is_a_usage_error_that_touches_nothing() {
    let env = Env::new();
    let (id, r) = push_and_pop(&env, b"x", &["--lease", "1h"]);
    let before = snapshot(env.spool());
    let upper = id.replacen(".", ".A", 3);
    for bad in [
        "nope",
        "",
        "../done/x",
        r.as_str(),
        &format!("{id}\n"),
        &format!("{id}/"),
        &upper,
    ] {
        for args in [&[bad][..], &["--json", bad]] {
            let out = show(&env, args);
            assert_exit(&out, 2);
            assert!(one_error_line(&out).contains("malformed id"), "{bad:?}");
            assert!(out.stdout.is_empty(), "{bad:?}: {}", stdout(&out));
        }
    }
    assert_eq!(snapshot(env.spool()), before);

    // The id is checked before the spool is even looked at.
    let missing = Env::new();
    assert_exit(&show(&missing, &["nope"]), 2);
    assert!(!missing.spool().exists());
}

#[test]
fn an_unknown_id_exits_4_with_one_line() {
    let env = Env::new();
    let purged = env.push("gone soon");
    let r = receipt(&env.pop_json(&[]));
    assert_exit(&env.run(&["ack", &r]), 0);
    assert_exit(&env.run(&["purge", "--done"]), 0);
    for id in [UNKNOWN_ID, purged.as_str()] {
        for args in [&[id][..], &["--json", id]] {
            let out = show(&env, args);
            assert_exit(&out, 4);
            assert!(one_error_line(&out).contains(id), "{}", stderr(&out));
            assert!(out.stdout.is_empty());
        }
    }
}

#[test]
fn a_missing_spool_is_an_error_and_is_not_created() {
    let env = Env::new();
    let out = show(&env, &[UNKNOWN_ID]);
    assert_exit(&out, 1);
    assert!(
        one_error_line(&out).contains("no spool"),
        "{}",
        stderr(&out)
    );
    assert!(!env.spool().exists());
}

#[test]
fn a_symlink_planted_as_a_done_message_is_refused_and_its_target_never_printed() {
    let env = Env::init(&[]);
    let secret = env.scratch().join("secret");
    fs::write(&secret, "the launch codes").unwrap();
    let link = env
        .spool()
        .join("done")
        .join(format!("{UNKNOWN_ID},a1,f1700000000000"));
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    for args in [&[UNKNOWN_ID][..], &["--json", UNKNOWN_ID]] {
        let out = show(&env, args);
        assert_exit(&out, 1);
        let line = one_error_line(&out);
        assert!(line.contains(link.to_str().unwrap()), "{line}");
        assert!(line.contains("symbolic link"), "{line}");
        assert!(out.stdout.is_empty(), "{}", stdout(&out));
        assert!(!line.contains("launch codes"), "{line}");
    }
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(fs::read(&secret).unwrap(), b"the launch codes");
}

#[test]
fn a_fifo_planted_as_a_lease_is_refused_without_blocking() {
    let env = Env::init(&[]);
    let fifo = env
        .spool()
        .join("leased")
        .join(format!("{UNKNOWN_ID},a1,l1700000000000,t00000000000000ff"));
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let out = show(&env, &[UNKNOWN_ID]);
    assert_exit(&out, 1);
    let line = one_error_line(&out);
    assert!(line.contains(fifo.to_str().unwrap()), "{line}");
    assert!(out.stdout.is_empty());
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn of_copies_in_several_states_the_one_furthest_along_is_shown() {
    // A damaged spool: the same id in every directory, each file with its own content.
    let env = Env::init(&[]);
    let v = 1_700_000_000_000u64;
    let leaf = bucket(env.spool(), v);
    fs::create_dir_all(&leaf).unwrap();
    let copies = [
        (
            "done",
            env.spool()
                .join("done")
                .join(format!("{UNKNOWN_ID},a2,f{v}")),
        ),
        (
            "dead",
            env.spool()
                .join("dead")
                .join(format!("{UNKNOWN_ID},a1,f{v}")),
        ),
        (
            "expired",
            env.spool()
                .join("leased")
                .join(format!("{UNKNOWN_ID},a1,l{v},t0123456789abcdef")),
        ),
        ("ready", leaf.join(format!("{UNKNOWN_ID},a0,v{v}"))),
    ];
    for (state, path) in &copies {
        fs::write(path, format!("the {state} copy")).unwrap();
    }
    for (state, path) in &copies {
        let out = show(&env, &[UNKNOWN_ID]);
        assert_exit(&out, 0);
        assert_eq!(stdout(&out), format!("the {state} copy"));
        assert!(out.stderr.is_empty(), "{}", stderr(&out));
        assert_eq!(show_json(&env, UNKNOWN_ID).1["state"], *state);
        fs::remove_file(path).unwrap();
    }
    assert_exit(&show(&env, &[UNKNOWN_ID]), 4);
}

#[test]
fn a_closed_standard_output_is_one_error_line_that_names_no_receipt() {
    let env = Env::new();
    // Bigger than any pipe buffer, so that the write itself fails.
    let big: Vec<u8> = (0..1024 * 1024 + 3).map(|i| (i % 251) as u8).collect();
    let (id, r) = push_and_pop(&env, &big, &["--lease", "1h"]);
    let before = snapshot(env.spool());
    for args in [&[id.as_str()][..], &["--json", &id]] {
        let out = env.run_closed_stdout(&[&["show"], args].concat());
        assert_exit(&out, 1);
        let line = one_error_line(&out);
        assert!(line.contains("standard output"), "{line}");
        assert!(!line.contains(&r), "{line}");
    }
    assert_eq!(snapshot(env.spool()), before);
    assert_eq!(env.names("leased"), vec![r]);
}

/// The spool made read-only for the length of a test: seen through a read-only bind mount
/// where the test may mount one (even root cannot write through it), else in place with every
/// directory 0500 (which stops everyone but root). Undone on drop.
struct ReadOnly {
    path: PathBuf,
    mounted: bool,
    dirs: Vec<PathBuf>,
}

impl ReadOnly {
    fn new(env: &Env) -> ReadOnly {
        let ro = env.scratch().join("ro");
        fs::create_dir(&ro).unwrap();
        let mount = |args: &[&OsStr]| {
            std::process::Command::new("mount")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if mount(&["--bind".as_ref(), env.spool().as_os_str(), ro.as_os_str()]) {
            let guard = ReadOnly {
                path: ro.clone(),
                mounted: true,
                dirs: Vec::new(),
            };
            if mount(&["-o".as_ref(), "remount,ro,bind".as_ref(), ro.as_os_str()]) {
                return guard;
            }
        }
        let dirs: Vec<PathBuf> = snapshot(env.spool())
            .into_iter()
            .map(|e| e.path)
            .filter(|p| p.is_dir())
            .collect();
        for d in &dirs {
            fs::set_permissions(d, fs::Permissions::from_mode(0o500)).unwrap();
        }
        ReadOnly {
            path: env.spool().to_path_buf(),
            mounted: false,
            dirs,
        }
    }

    /// Whether this process can still write there (root ignores modes).
    fn writable(&self) -> bool {
        let probe = self.path.join("probe");
        let ok = fs::write(&probe, b"x").is_ok();
        let _ = fs::remove_file(&probe);
        ok
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg(&self.path)
                .status();
        }
        for d in &self.dirs {
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o700));
        }
    }
}

#[test]
fn show_works_on_a_read_only_spool() {
    let env = Env::new();
    let made = every_state(&env);
    let ro = ReadOnly::new(&env);
    if ro.writable() {
        eprintln!("cannot make the spool read-only here; checking only that nothing changes");
    }
    let before = snapshot(&ro.path);
    for m in &made {
        let out = env.run_at(&ro.path, &["show", &m.id]);
        assert_exit(&out, 0);
        assert_eq!(out.stdout, m.payload, "{}", m.state);
        let out = env.run_at(&ro.path, &["show", "--json", &m.id]);
        assert_exit(&out, 0);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["state"], m.state);
    }
    assert_eq!(snapshot(&ro.path), before, "show changed the spool");
}

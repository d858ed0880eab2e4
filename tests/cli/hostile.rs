//! Hostile and foreign input: malformed receipts and ids, links, directories, FIFOs and hard
//! links where messages should be, symlinked state directories, and foreign directories as spools.

use crate::harness::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// Long enough for a debug build on a busy machine; a hang on a FIFO would exceed it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a command with a timeout and checks that it did not panic and that every error line it
/// wrote is a `qspool: ` line (usage errors included).
fn run(env: &Env, args: &[&str]) -> Output {
    let o = env.cmd(args).timeout(TIMEOUT).output().expect("run qspool");
    check_output(args, &o);
    o
}

fn check_output(args: &[&str], o: &Output) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(o.status.code().is_some(), "{args:?} was killed (hung?)");
    for line in err.lines() {
        assert!(line.starts_with("qspool: "), "{args:?}: stderr {err:?}");
    }
}

/// Asserts exit `code` with exactly one stderr line `qspool: ...`; returns that line.
fn one_error(o: &Output, code: i32) -> String {
    assert_exit(o, code);
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
    assert!(err.starts_with("qspool: "), "stderr: {err:?}");
    err
}

/// Every entry under the spool, with its type and inode, read with `lstat`: a fingerprint that
/// changes if anything is moved, replaced, created or deleted.
fn fingerprint(root: &Path) -> Vec<(PathBuf, u32, u64)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, u32, u64)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            out.push((p.clone(), m.mode(), m.ino()));
            if m.file_type().is_dir() {
                walk(&p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

fn fake_id(n: u32) -> String {
    format!("1700000000000000.4242.{n:08x}.00000000.evil")
}

/// A ready-message name visible at `ms`.
fn ready_name(n: u32, ms: u64) -> String {
    format!("{},a0,v{ms:013}", fake_id(n))
}

/// A receipt whose lease expired long ago.
fn expired_receipt(n: u32) -> String {
    format!("{},a1,l1700000000000,t{:016x}", fake_id(n), n + 1)
}

/// A done/ or dead/ name.
fn ended_name(n: u32) -> String {
    format!("{},a1,f1700000000000", fake_id(n))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Symlink,
    Dir,
    Fifo,
    HardLink,
}

const KINDS: [Kind; 4] = [Kind::Symlink, Kind::Dir, Kind::Fifo, Kind::HardLink];

/// Puts a foreign thing of `kind` at `path`. Links point at a file in scratch space whose
/// content the test checks afterwards; a directory holds a payload-looking file.
fn plant(env: &Env, path: &Path, kind: Kind) {
    let target = env.scratch().join(format!(
        "target-{}",
        path.file_name().unwrap().to_str().unwrap()
    ));
    match kind {
        Kind::Symlink => {
            fs::write(&target, b"secret").unwrap();
            std::os::unix::fs::symlink(&target, path).unwrap();
        }
        Kind::HardLink => {
            fs::write(&target, b"secret").unwrap();
            fs::hard_link(&target, path).unwrap();
        }
        Kind::Dir => {
            fs::create_dir(path).unwrap();
            fs::write(path.join("inside"), b"secret").unwrap();
        }
        Kind::Fifo => {
            let st = std::process::Command::new("mkfifo")
                .arg(path)
                .status()
                .unwrap();
            assert!(st.success());
        }
    }
}

/// Checks that what `plant` put at `path` is still there, unchanged, and its target intact.
fn assert_planted(env: &Env, path: &Path, kind: Kind) {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path:?} gone: {e}"));
    let target = env.scratch().join(format!(
        "target-{}",
        path.file_name().unwrap().to_str().unwrap()
    ));
    match kind {
        Kind::Symlink => {
            assert!(m.file_type().is_symlink(), "{path:?}");
            assert_eq!(fs::read_link(path).unwrap(), target);
            assert_eq!(fs::read(&target).unwrap(), b"secret");
        }
        Kind::HardLink => {
            assert!(m.file_type().is_file() && m.nlink() == 2, "{path:?}");
            assert_eq!(fs::read(&target).unwrap(), b"secret");
        }
        Kind::Dir => {
            assert!(m.file_type().is_dir(), "{path:?}");
            assert_eq!(fs::read(path.join("inside")).unwrap(), b"secret");
        }
        Kind::Fifo => assert!(m.file_type().is_fifo(), "{path:?}"),
    }
}

#[test]
fn malformed_receipts_exit_2_and_touch_nothing() {
    let env = Env::new();
    env.push("a");
    env.push("b");
    let live = env.pop_json(&["--lease", "1h"]);
    let good = receipt(&live);
    let long = format!("{good}{}", "0".repeat(200));
    let bad: Vec<String> = vec![
        String::new(),
        "/".into(),
        ".".into(),
        "..".into(),
        format!("../leased/{good}"),
        format!("leased/{good}"),
        format!("{}/leased/{good}", env.spool().display()),
        format!("{good}/"),
        format!("./{good}"),
        format!(".{good}"),
        format!("{good}\n"),
        format!("{good}\r"),
        format!("\t{good}"),
        format!("{good}\u{7f}"),
        format!("{good}\u{1b}[31m"),
        "\u{1}".into(),
        long,
        "x".repeat(100_000),
        format!("{good} "),
        format!("{good}é"),
        format!("{good},x1"),
        good.replacen(",a1,", ",a0,", 1),
        good.replacen(",a1,", ",a01,", 1),
        format!("{}0", good),
        good.split(',').next().unwrap().to_owned(),
        format!("{},a1,f1700000000000", fake_id(1)),
        ready_name(1, 1_700_000_000_000),
        "hello".into(),
        "-".into(),
    ];
    let before = fingerprint(env.spool());
    for b in &bad {
        for args in [
            vec!["ack", b.as_str()],
            vec!["requeue", b.as_str()],
            vec!["requeue", "--delay", "1s", good.as_str(), b.as_str()],
            vec!["extend", b.as_str()],
            vec!["bury", good.as_str(), b.as_str()],
            vec!["ack", good.as_str(), b.as_str()],
        ] {
            let args: Vec<&str> = if b.starts_with('-') {
                // Past `--`, a dash-led text is a receipt, not an option.
                let mut a = args.clone();
                a.insert(1, "--");
                a
            } else {
                args
            };
            let o = run(&env, &args);
            assert_exit(&o, 2);
            assert!(o.stdout.is_empty(), "{args:?}");
            one_error(&o, 2);
        }
    }
    assert_eq!(
        fingerprint(env.spool()),
        before,
        "a malformed receipt moved something"
    );
    // The live lease is still good.
    assert_exit(&run(&env, &["ack", &good]), 0);
}

#[test]
fn malformed_ids_exit_2_and_touch_nothing() {
    let env = Env::new();
    env.push("a");
    let m = env.pop_json(&[]);
    assert_exit(&run(&env, &["bury", &receipt(&m)]), 0);
    let dead = env.names("dead");
    let good = dead[0].split(',').next().unwrap().to_owned();
    let before = fingerprint(env.spool());
    for b in [
        String::new(),
        "..".into(),
        "/".into(),
        format!("../dead/{good}"),
        format!("{good}/"),
        format!("dead/{good}"),
        dead[0].clone(),
        format!("{good}\n"),
        format!("{good}\u{0}").replace('\u{0}', "\u{2}"),
        format!("{good}.extra"),
        good.replacen('.', "_", 1),
        "1".repeat(161),
        format!("{good}{}", "x".repeat(150)),
    ] {
        let o = run(&env, &["dlq-replay", &good, &b]);
        one_error(&o, 2);
        assert!(o.stdout.is_empty());
    }
    assert_eq!(fingerprint(env.spool()), before);
    let o = run(&env, &["dlq-replay", &good]);
    assert_exit(&o, 0);
}

#[test]
fn malformed_input_is_refused_before_the_spool_is_looked_at() {
    // On a spool that does not exist, a malformed receipt is exit 2, not "no spool" (exit 1),
    // and nothing is created.
    let env = Env::new();
    for args in [
        &["ack", "../x"][..],
        &["requeue", ""],
        &["extend", "a/b"],
        &["bury", ".."],
        &["dlq-replay", "../../etc/passwd"],
    ] {
        let o = run(&env, args);
        one_error(&o, 2);
    }
    assert!(!env.spool().exists());
}

#[test]
fn non_utf8_arguments_are_usage_errors() {
    let env = Env::init(&[]);
    env.push("a");
    let before = fingerprint(env.spool());
    for cmd in ["ack", "requeue", "extend", "bury", "dlq-replay"] {
        let o = env
            .cmd(&[cmd])
            .arg(OsStr::from_bytes(b"\xff\xfe/../x"))
            .timeout(TIMEOUT)
            .output()
            .unwrap();
        check_output(&[cmd], &o);
        assert_exit(&o, 2);
    }
    assert_eq!(fingerprint(env.spool()), before);
}

#[test]
fn foreign_things_in_new_are_never_delivered() {
    for kind in KINDS {
        let env = Env::init(&[]);
        let past = now_ms() - 60_000;
        let dir = bucket(env.spool(), past);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(ready_name(1, past));
        plant(&env, &path, kind);
        let before = fingerprint(env.spool());
        for args in [
            &["pop"][..],
            &["pop", "--json"],
            &["pop", "--json", "-n", "3"],
            &["pop", "--ack"],
        ] {
            let o = run(&env, args);
            assert_exit(&o, 3);
            assert!(o.stdout.is_empty(), "{kind:?}: {}", stdout(&o));
        }
        assert_planted(&env, &path, kind);
        assert_eq!(fingerprint(env.spool()), before, "{kind:?}");
        assert!(env.names("leased").is_empty(), "{kind:?}");
        assert!(env.names("dead").is_empty(), "{kind:?}");
        let s = env.stats();
        assert_eq!(s["foreign"], 1, "{kind:?}: {s}");
        assert_eq!(s["ready"], 0, "{kind:?}: {s}");
        assert!(s["oldest_ready_age_seconds"].is_null());

        // A real message behind it is delivered; the foreign thing stays.
        let id = env.push("real");
        let m = env.pop_json(&[]);
        assert_eq!(m["id"], id.as_str(), "{kind:?}");
        assert_eq!(m["body"], "real");
        assert_planted(&env, &path, kind);
    }
}

#[test]
fn foreign_things_at_every_level_of_new_are_counted_and_skipped() {
    let env = Env::init(&[]);
    let past = now_ms() - 120_000;
    let new = env.spool().join("new");
    let dir = bucket(env.spool(), past);
    fs::create_dir_all(&dir).unwrap();
    // All four kinds side by side in one bucket.
    let mut planted = Vec::new();
    for (i, kind) in KINDS.into_iter().enumerate() {
        let p = dir.join(ready_name(i as u32, past));
        plant(&env, &p, kind);
        planted.push((p, kind));
    }
    // A plain message-shaped file whose visible time disagrees with its bucket.
    let wrong = dir.join(ready_name(9, past + 1));
    fs::write(&wrong, b"misfiled").unwrap();
    // Junk at each level of the bucket tree.
    fs::write(new.join("README"), b"x").unwrap();
    fs::write(new.join(ready_name(10, past)), b"flat").unwrap();
    fs::write(dir.parent().unwrap().join("junk"), b"x").unwrap();
    fs::write(dir.join("notes.txt"), b"x").unwrap();
    fs::create_dir(new.join("12")).unwrap();
    let before = fingerprint(env.spool());

    let o = run(&env, &["pop", "--json", "-n", "10"]);
    assert_exit(&o, 3);
    assert_eq!(fingerprint(env.spool()), before);
    for (p, kind) in &planted {
        assert_planted(&env, p, *kind);
    }
    assert_eq!(fs::read(&wrong).unwrap(), b"misfiled");
    let s = env.stats();
    assert_eq!(s["foreign"], 10, "{s}");
    assert_eq!(s["ready"], 0, "{s}");
    assert_exit(&run(&env, &["requeue", "--expired"]), 0);
    assert_eq!(fingerprint(env.spool()), before);
}

#[test]
fn a_hard_linked_message_is_not_delivered() {
    let env = Env::init(&[]);
    env.push("copied");
    let files = env.new_files();
    assert_eq!(files.len(), 1);
    let copy = env.scratch().join("copy");
    fs::hard_link(&files[0], &copy).unwrap();
    let o = run(&env, &["pop"]);
    assert_exit(&o, 3);
    assert!(o.stdout.is_empty());
    assert_eq!(env.new_files(), files);
    assert_eq!(env.stats()["foreign"], 1);
    // Once the extra link is gone, it is a message again.
    fs::remove_file(&copy).unwrap();
    assert_eq!(env.stats()["ready"], 1);
    assert_eq!(env.pop_json(&[])["body"], "copied");
}

#[test]
fn symlinked_bucket_directories_are_never_followed() {
    for level in 0..3 {
        let env = Env::init(&[]);
        let past = now_ms() - 60_000;
        let leaf = bucket(env.spool(), past);
        // The directory to be replaced by a link: level 0 is new/KKKKKKK, level 2 the leaf.
        let replaced: PathBuf = leaf.ancestors().nth(2 - level).unwrap().to_path_buf();
        let outside = env.scratch().join(format!("outside{level}"));
        let rel = leaf.strip_prefix(&replaced).unwrap();
        let outside_leaf = outside.join(rel);
        fs::create_dir_all(&outside_leaf).unwrap();
        let name = ready_name(1, past);
        fs::write(outside_leaf.join(&name), b"from outside").unwrap();
        fs::create_dir_all(replaced.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, &replaced).unwrap();

        let o = run(&env, &["pop", "--json"]);
        assert_exit(&o, 3);
        assert!(o.stdout.is_empty(), "level {level}: {}", stdout(&o));
        assert!(env.names("leased").is_empty(), "level {level}");
        assert_eq!(
            fs::read(outside_leaf.join(&name)).unwrap(),
            b"from outside",
            "level {level}"
        );
        assert!(
            fs::symlink_metadata(&replaced)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let s = env.stats();
        assert_eq!(s["ready"], 0, "level {level}: {s}");
        assert_eq!(s["foreign"], 1, "level {level}: {s}");
    }
}

#[test]
fn foreign_things_in_leased_are_never_reclaimed_or_moved() {
    let env = Env::init(&["--max-attempts", "1"]);
    let leased = env.spool().join("leased");
    let mut planted = Vec::new();
    for (i, kind) in KINDS.into_iter().enumerate() {
        let r = expired_receipt(i as u32);
        let p = leased.join(&r);
        plant(&env, &p, kind);
        planted.push((r, p, kind));
    }
    let before = fingerprint(env.spool());
    let o = run(&env, &["requeue", "--expired"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");
    assert_exit(&run(&env, &["pop"]), 3);
    assert_eq!(fingerprint(env.spool()), before);
    for (r, p, kind) in &planted {
        for args in [
            vec!["ack", r.as_str()],
            vec!["requeue", r.as_str()],
            vec!["extend", r.as_str()],
            vec!["bury", r.as_str()],
        ] {
            let o = run(&env, &args);
            let err = one_error(&o, 1);
            assert!(
                err.contains(p.to_str().unwrap()),
                "{kind:?} {args:?}: {err}"
            );
            assert!(o.stdout.is_empty());
        }
        assert_planted(&env, p, *kind);
    }
    assert_eq!(fingerprint(env.spool()), before);
    let s = env.stats();
    assert_eq!(s["foreign"], 4, "{s}");
    assert_eq!(
        (s["leased"].as_u64(), s["expired"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn foreign_things_in_done_and_dead_are_never_replayed_or_purged() {
    let env = Env::init(&[]);
    let mut planted = Vec::new();
    for state in ["done", "dead"] {
        for (i, kind) in KINDS.into_iter().enumerate() {
            let n = i as u32 + if state == "dead" { 10 } else { 0 };
            let p = env.spool().join(state).join(ended_name(n));
            plant(&env, &p, kind);
            planted.push((fake_id(n), p, kind));
        }
    }
    // One real dead message, which must still be replayed.
    let real = env.push("real");
    let m = env.pop_json(&[]);
    assert_exit(&run(&env, &["bury", &receipt(&m)]), 0);

    let o = run(&env, &["dlq-replay", "--all"]);
    assert_exit(&o, 1);
    assert_eq!(stdout(&o).lines().collect::<Vec<_>>(), vec![real.as_str()]);
    let before = fingerprint(env.spool());

    for (id, _, _) in planted
        .iter()
        .filter(|(_, p, _)| p.starts_with(env.spool().join("dead")))
    {
        let o = run(&env, &["dlq-replay", id]);
        assert_ne!(o.status.code(), Some(0), "{id}");
        assert!(o.stdout.is_empty());
    }
    let o = run(&env, &["purge", "--done", "--dead", "--yes"]);
    assert_exit(&o, 1);
    assert_eq!(stdout(&o), "");
    let o = run(&env, &["purge", "--dead", "--older-than", "1d", "--yes"]);
    assert_exit(&o, 1);
    assert_eq!(fingerprint(env.spool()), before);
    for (_, p, kind) in &planted {
        assert_planted(&env, p, *kind);
    }
    let s = env.stats();
    assert_eq!(s["foreign"], 8, "{s}");
    assert_eq!((s["done"].as_u64(), s["dead"].as_u64()), (Some(0), Some(0)));
    assert_eq!(s["ready"], 1);
}

#[test]
fn foreign_files_in_tmp_are_counted_not_messages() {
    let env = Env::init(&[]);
    let tmp = env.spool().join("tmp");
    fs::write(tmp.join("junk"), b"x").unwrap();
    plant(
        &env,
        &tmp.join(ready_name(1, 1_700_000_000_000)),
        Kind::Symlink,
    );
    // A well-formed name in tmp/ is a push in progress: neither a message nor foreign.
    fs::write(tmp.join(ready_name(2, 1_700_000_000_000)), b"x").unwrap();
    let s = env.stats();
    assert_eq!(s["foreign"], 2, "{s}");
    let total: u64 = ["ready", "delayed", "leased", "expired", "done", "dead"]
        .iter()
        .map(|k| s[*k].as_u64().unwrap())
        .sum();
    assert_eq!(total, 0, "{s}");
    assert_exit(&run(&env, &["pop"]), 3);
}

#[test]
fn a_fifo_where_a_message_should_be_does_not_hang_anything() {
    let env = Env::init(&[]);
    let past = now_ms() - 60_000;
    let dir = bucket(env.spool(), past);
    fs::create_dir_all(&dir).unwrap();
    let fifo_new = dir.join(ready_name(1, past));
    plant(&env, &fifo_new, Kind::Fifo);
    let fifo_leased = env.spool().join("leased").join(expired_receipt(2));
    plant(&env, &fifo_leased, Kind::Fifo);
    let fifo_dead = env.spool().join("dead").join(ended_name(3));
    plant(&env, &fifo_dead, Kind::Fifo);
    let r = expired_receipt(2);
    let rf = env.scratch().join("receipt");
    let rf = rf.to_str().unwrap();
    for args in [
        &["pop"][..],
        &["pop", "--json", "--receipt-file", rf],
        &["stats"],
        &["requeue", "--expired"],
        &["ack", &r],
        &["extend", &r],
        &["dlq-replay", "--all"],
        &["purge", "--dead", "--yes"],
    ] {
        // `run` would fail on a timeout: a killed process has no exit code.
        let o = run(&env, args);
        assert!(o.status.code().is_some());
    }
    for p in [&fifo_new, &fifo_leased, &fifo_dead] {
        assert_planted(&env, p, Kind::Fifo);
    }
}

/// Replaces the state directory `state` of a spool by a symlink to an empty directory outside.
fn link_state_dir(env: &Env, state: &str) -> PathBuf {
    let real = env.spool().join(state);
    let outside = env.scratch().join(format!("elsewhere-{state}"));
    fs::create_dir(&outside).unwrap();
    let moved = env.scratch().join(format!("orig-{state}"));
    fs::rename(&real, &moved).unwrap();
    std::os::unix::fs::symlink(&outside, &real).unwrap();
    outside
}

#[test]
fn a_symlinked_state_directory_is_refused() {
    for state in ["tmp", "new", "leased", "done", "dead"] {
        let env = Env::init(&[]);
        let r = expired_receipt(1);
        let outside = link_state_dir(&env, state);
        let path = env.spool().join(state);
        for args in [
            &["init"][..],
            &["init", "--lease", "1m"],
            &["push", "x"],
            &["pop"],
            &["pop", "--json", "--ack"],
            &["stats"],
            &["stats", "--json"],
            &["ack", &r],
            &["requeue", &r],
            &["requeue", "--expired"],
            &["extend", &r],
            &["bury", &r],
            &["dlq-replay", "--all"],
            &["purge", "--done", "--dead", "--yes"],
        ] {
            let o = run(&env, args);
            let err = one_error(&o, 1);
            assert!(
                err.contains(path.to_str().unwrap()),
                "{state} {args:?}: {err}"
            );
            assert!(err.contains("symbolic link"), "{state} {args:?}: {err}");
            assert!(o.stdout.is_empty(), "{state} {args:?}: {}", stdout(&o));
        }
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{state}");
        assert!(
            fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}

#[test]
fn a_state_directory_that_is_a_file_is_refused() {
    let env = Env::init(&[]);
    let leased = env.spool().join("leased");
    fs::remove_dir(&leased).unwrap();
    fs::write(&leased, b"not a dir").unwrap();
    for args in [&["push", "x"][..], &["pop"], &["stats"]] {
        let o = run(&env, args);
        let err = one_error(&o, 1);
        assert!(err.contains(leased.to_str().unwrap()), "{err}");
    }
    assert_eq!(fs::read(&leased).unwrap(), b"not a dir");
}

#[test]
fn a_foreign_directory_is_not_made_into_a_spool() {
    let env = Env::new();
    let dir = env.spool();
    fs::create_dir(dir).unwrap();
    fs::write(dir.join("thesis.tex"), b"precious").unwrap();
    for args in [
        &["push", "x"][..],
        &["init"],
        &["pop"],
        &["push", "--lines"],
    ] {
        let o = run(&env, args);
        let err = one_error(&o, 1);
        assert!(err.contains(dir.to_str().unwrap()), "{args:?}: {err}");
        assert!(o.stdout.is_empty());
    }
    for args in [
        &["stats"][..],
        &["ack", &expired_receipt(1)],
        &["requeue", "--expired"],
    ] {
        let o = run(&env, args);
        one_error(&o, 1);
    }
    let names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![OsStr::new("thesis.tex").to_owned()]);
    assert_eq!(fs::read(dir.join("thesis.tex")).unwrap(), b"precious");
}

#[test]
fn a_file_as_spool_is_refused() {
    let env = Env::new();
    fs::write(env.spool(), b"file").unwrap();
    for args in [&["push", "x"][..], &["pop"], &["stats"], &["init"]] {
        let o = run(&env, args);
        let err = one_error(&o, 1);
        assert!(
            err.contains(env.spool().to_str().unwrap()),
            "{args:?}: {err}"
        );
    }
    assert_eq!(fs::read(env.spool()).unwrap(), b"file");
}

#[test]
fn every_error_is_one_line_and_nothing_panics() {
    let env = Env::init(&[]);
    env.push("a");
    let m = env.pop_json(&[]);
    let r = receipt(&m);
    assert_exit(&run(&env, &["ack", &r]), 0);
    let stale2 = expired_receipt(7);
    let unknown_id = fake_id(1);
    // Each of these fails; each failure is one `qspool: ` line naming what went wrong.
    for (args, code) in [
        (vec!["ack", r.as_str()], 4),
        (vec!["requeue", r.as_str()], 4),
        (vec!["extend", r.as_str()], 4),
        (vec!["bury", r.as_str()], 4),
        (vec!["dlq-replay", unknown_id.as_str()], 4),
        (vec!["pop"], 3),
        (vec!["ack", "nope"], 2),
        (vec!["pop", "-n", "2"], 2),
    ] {
        let o = run(&env, &args);
        assert_exit(&o, code);
        let err = stderr(&o);
        if code == 3 {
            assert!(err.is_empty(), "{err}");
        } else {
            one_error(&o, code);
        }
    }
    // Several failures: one line each, every line a `qspool: ` line.
    let o = run(&env, &["ack", &r, &stale2]);
    assert_exit(&o, 4);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.lines().all(|l| l.starts_with("qspool: ")), "{err}");
    // Missing spool, for every command that does not create one.
    let gone = Env::new();
    for args in [
        &["ack", &r][..],
        &["requeue", &r],
        &["requeue", "--expired"],
        &["extend", &r],
        &["bury", &r],
        &["stats"],
        &["dlq-replay", "--all"],
        &["purge", "--done"],
    ] {
        let o = run(&gone, args);
        let err = one_error(&o, 1);
        assert!(err.contains("no spool at"), "{args:?}: {err}");
        assert!(err.contains(gone.spool().to_str().unwrap()), "{err}");
    }
    assert!(!gone.spool().exists());
}

/// Replaces the level-0 buckets `new/KKKKKKK` for `at_ms` (and the next one, in case the command
/// runs across a boundary) by symlinks to an empty directory outside the spool.
fn link_level0_buckets(env: &Env, at_ms: u64) -> PathBuf {
    let outside = env.scratch().join("outside-bucket");
    fs::create_dir_all(&outside).unwrap();
    for k in [at_ms / 1_000_000, at_ms / 1_000_000 + 1] {
        let link = env.spool().join("new").join(format!("{k:07}"));
        std::os::unix::fs::symlink(&outside, link).unwrap();
    }
    outside
}

#[test]
fn push_never_writes_through_a_symlinked_bucket() {
    for args in [&["push", "x"][..], &["push", "--no-sync", "y"]] {
        let env = Env::init(&[]);
        let outside = link_level0_buckets(&env, now_ms());
        let o = run(&env, args);
        let err = one_error(&o, 1);
        assert!(err.contains("new/"), "{err}");
        assert!(
            o.stdout.is_empty(),
            "printed an id for a message not in the spool"
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        assert!(env.names("tmp").is_empty(), "{:?}", env.names("tmp"));
        let s = env.stats();
        assert_eq!(s["ready"], 0, "{s}");
    }
}

#[test]
fn requeue_never_writes_through_a_symlinked_bucket() {
    let env = Env::init(&[]);
    env.push("x");
    let m = env.pop_json(&[]);
    let r = receipt(&m);
    let outside = link_level0_buckets(&env, now_ms() + 3_600_000);
    let o = run(&env, &["requeue", "--delay", "1h", &r]);
    one_error(&o, 1);
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(env.names("leased"), vec![r.clone()]);
    assert_exit(&run(&env, &["ack", &r]), 0);
}

#[test]
fn pop_never_removes_a_receipt_file_that_is_not_a_regular_file() {
    // Never pass the real /dev/null here: a regression would delete it for the whole machine.
    let env = Env::init(&[]);
    let dev = env.scratch().join("devnull");
    let have_dev = std::process::Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let precious = env.scratch().join("precious");
    fs::write(&precious, b"keep").unwrap();
    let link = env.scratch().join("link");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    let fifo = env.scratch().join("fifo");
    plant(&env, &fifo, Kind::Fifo);
    let mut files = vec![link.clone(), fifo.clone()];
    if have_dev {
        files.push(dev.clone());
    } else {
        eprintln!("mknod not permitted; checking links and FIFOs only");
    }
    for f in &files {
        let f = f.to_str().unwrap();
        // Nothing to pop: exit 3, and the FILE given is left as it was.
        let o = run(&env, &["pop", "--receipt-file", f]);
        assert_exit(&o, 3);
        let o = run(&env, &["pop", "--json", "-n", "2", "--receipt-file", f]);
        assert_exit(&o, 3);
    }
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&precious).unwrap(), b"keep");
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    if have_dev {
        let m = fs::symlink_metadata(&dev).unwrap();
        assert!(
            m.file_type().is_char_device(),
            "the device node was replaced"
        );
        // A real pop through the device works too, and still leaves it alone.
        env.push("x");
        let o = run(&env, &["pop", "--receipt-file", dev.to_str().unwrap()]);
        assert_exit(&o, 0);
        assert_eq!(o.stdout, b"x");
        assert!(
            fs::symlink_metadata(&dev)
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }
}

#[test]
fn a_foreign_file_on_the_reclaim_path_does_not_stop_pop() {
    let env = Env::init(&[]);
    env.push("leased, then expired");
    env.pop_json(&["--lease", "1ms"]);
    pause();
    // Clear the empty buckets that push left, then put a ready message two hours back, as a
    // compatible tool would, and a foreign file where the reclaim's level-1 bucket must go.
    let new = env.spool().join("new");
    for e in fs::read_dir(&new).unwrap() {
        fs::remove_dir_all(e.unwrap().path()).unwrap();
    }
    let now = now_ms();
    let old = now - 7_200_000;
    let leaf = new
        .join(format!("{:07}", old / 1_000_000))
        .join(format!("{:03}", (old / 1000) % 1000))
        .join(format!("{:03}", old % 1000));
    fs::create_dir_all(&leaf).unwrap();
    let name = format!("{:016}.7.00000000.00000000.other,a0,v{old:013}", old * 1000);
    fs::write(leaf.join(name), b"ready").unwrap();
    for w in [now / 1_000_000, now / 1_000_000 + 1] {
        fs::write(new.join(format!("{w:07}")), b"junk").unwrap();
    }
    let o = env.run(&["pop"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "ready");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("qspool: reclaim expired lease of "),
        "{err}"
    );
    // The blocked lease stays where it was, expired, for a later reclaim.
    assert_eq!(env.stats()["expired"], 1);
    // requeue --expired reports the same failure with exit 1, and moves nothing.
    let o = env.run(&["requeue", "--expired"]);
    assert_exit(&o, 1);
    assert_eq!(env.stats()["expired"], 1);
}

/// Every usage error clap finds: one line `qspool: ...` pointing at the help, exit 2, nothing on
/// standard output, nothing created.
#[test]
fn usage_errors_are_one_line_and_exit_2() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["nosuch"], "(see 'qspool --help')"),
        (&["--no-such-flag"], "(see 'qspool --help')"),
        (&["push", "--no-such-flag"], "(see 'qspool push --help')"),
        (&["ack"], "(see 'qspool ack --help')"),
        (&["requeue"], "(see 'qspool requeue --help')"),
        (&["purge"], "(see 'qspool purge --help')"),
        (&["pop", "-n", "0"], "(see 'qspool pop --help')"),
        (
            &["push", "--delay", "1x", "a"],
            "(see 'qspool push --help')",
        ),
        (&["init", "--lease"], "(see 'qspool init --help')"),
        (&["push", "--lines", "a"], "(see 'qspool push --help')"),
        (&["stats", "extra"], "(see 'qspool stats --help')"),
        (&["pus"], "'push'"),
        (&["help", "nosuch"], "(see 'qspool --help')"),
        (&[], "a command is required (see 'qspool --help')"),
    ];
    let non_utf8 = env
        .cmd(&["ack"])
        .arg(OsStr::from_bytes(b"\xff"))
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    let outputs = cases
        .iter()
        .map(|&(args, want)| (args.join(" "), run(&env, args), want))
        .chain([("ack \\xff".to_owned(), non_utf8, "invalid UTF-8")]);
    for (args, o, want) in outputs {
        let err = one_error(&o, 2);
        assert!(err.ends_with('\n'), "{args}: {err:?}");
        assert!(!err.contains("error:"), "{args}: {err:?}");
        assert!(!err.contains("Usage:"), "{args}: {err:?}");
        assert!(err.contains(want), "{args}: {err:?} lacks {want:?}");
        assert!(o.stdout.is_empty(), "{args}");
    }
    // A missing required argument is named; a missing subcommand is said in so many words.
    let o = run(&env, &["ack"]);
    assert!(stderr(&o).contains("<RECEIPT>"), "{}", stderr(&o));
    assert!(!env.spool().exists());
}

#[test]
fn help_and_version_still_print_and_exit_0() {
    let env = Env::new();
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["help", "push"],
        &["push", "--help"],
        &["pop", "-h"],
    ] {
        let o = run(&env, args);
        assert_exit(&o, 0);
        let out = stdout(&o);
        assert!(out.contains("Usage:"), "{args:?}: {out}");
        assert!(out.lines().count() > 3, "{args:?}: {out}");
        assert!(o.stderr.is_empty(), "{args:?}: {}", stderr(&o));
    }
    let o = run(&env, &["--version"]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("qspool {}\n", env!("CARGO_PKG_VERSION"))
    );
    // Help that cannot be written is an error, not a panic.
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = env.std_cmd(&["--help"]).stdout(full).output().unwrap();
    let err = one_error(&o, 1);
    assert!(err.contains("write to standard output"), "{err}");
    assert!(!env.spool().exists());
}

/// Standard output and standard error on `/dev/full`: an error, never a panic.
#[test]
fn failed_writes_do_not_panic() {
    let env = Env::new();
    let full = || {
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let o = env.std_cmd(&["init"]).stdout(full()).output().unwrap();
    let err = one_error(&o, 1);
    assert!(err.contains("write to standard output"), "{err}");
    for (args, code) in [(&["ack", "bad"][..], 2), (&["stats", "--no-such"], 2)] {
        let o = env.std_cmd(args).stderr(full()).output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{args:?}");
    }
    // A missing spool, reported on a full stderr.
    let gone = Env::new();
    let o = gone.std_cmd(&["stats"]).stderr(full()).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
}

/// Replaces the settings file of a fresh spool by `plant`, then checks that every command fails
/// fast with exit 1 and one line naming the file and `why`, and that init repairs it.
fn refused_settings(put: impl Fn(&Env, &Path), why: &str) {
    let env = Env::init(&[]);
    env.push("a");
    let path = env.spool().join("qspool.json");
    fs::remove_file(&path).unwrap();
    put(&env, &path);
    let r = expired_receipt(1);
    let id = fake_id(1);
    for args in [
        &["stats"][..],
        &["push", "x"],
        &["pop"],
        &["ack", &r],
        &["requeue", "--expired"],
        &["extend", &r],
        &["bury", &r],
        &["dlq-replay", &id],
        &["purge", "--done"],
    ] {
        let start = std::time::Instant::now();
        let o = run(&env, args);
        let err = one_error(&o, 1);
        assert!(
            err.contains(path.to_str().unwrap()) && err.contains(why),
            "{args:?}: {err}"
        );
        assert!(start.elapsed() < TIMEOUT / 2, "{args:?} was slow");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    let o = run(&env, &["init"]);
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(why) && err.contains("replaced with"), "{err}");
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
    assert_eq!(env.pop_raw(), b"a");
}

#[test]
fn a_fifo_as_settings_file_does_not_hang_anything() {
    refused_settings(|env, p| plant(env, p, Kind::Fifo), "not a regular file");
}

#[test]
fn a_symlinked_settings_file_is_not_followed() {
    for target in ["/dev/zero", "/etc/passwd"] {
        refused_settings(
            |_, p| std::os::unix::fs::symlink(target, p).unwrap(),
            "a symbolic link; refusing to follow it",
        );
    }
}

#[test]
fn an_oversized_settings_file_is_refused() {
    refused_settings(
        |_, p| {
            let mut text = b"{\"max_attempts\": 3".to_vec();
            text.resize(70 * 1024, b' ');
            text.extend_from_slice(b"}\n");
            fs::write(p, text).unwrap();
        },
        "larger than 64 KiB",
    );
}

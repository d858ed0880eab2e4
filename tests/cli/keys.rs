//! `push --key`: a key held by a ready, delayed, leased or recently acked message is not
//! pushed again; dead, purged and long-acked messages free it; races, crashes and hostile
//! records neither block a key nor let a duplicate in.

use crate::harness::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;

fn push_key(env: &Env, key: &str, body: &str) -> Value {
    let out = env
        .qspool(&["push", "--json", "--key", key, body])
        .expect(0);
    let v = parse_lines(&out);
    assert_eq!(v.len(), 1, "{}", stdout(&out));
    v[0].clone()
}

fn pushed(v: &Value) -> bool {
    v["pushed"].as_bool().expect("pushed")
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// FNV-1a 64 of the key, as FORMAT.md §3.5 gives it: the record's name.
fn record_path(env: &Env, key: &[u8]) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    env.spool().join("keys").join(format!("{h:016x}"))
}

#[test]
fn a_held_key_prints_the_holders_id_in_every_live_state_and_adds_nothing() {
    let env = Env::new();
    let first = push_key(&env, "order-1", "a");
    assert!(pushed(&first));
    assert_eq!(first["key"], "order-1");
    // Ready.
    let again = push_key(&env, "order-1", "b");
    assert!(!pushed(&again));
    assert_eq!(id(&again), id(&first));
    // Without --json the id alone, as a fresh push prints it.
    let plain = env.qspool(&["push", "--key", "order-1", "c"]).expect(0);
    assert_eq!(stdout(&plain), format!("{}\n", id(&first)));
    // Leased, and leased again under a new receipt after extend.
    let m = env.pop_json(&[]);
    assert_eq!(m["key"], "order-1");
    assert!(!pushed(&push_key(&env, "order-1", "d")));
    let ext = env
        .qspool(&["extend", "--lease", "1h", m["receipt"].as_str().unwrap()])
        .expect(0);
    assert!(!pushed(&push_key(&env, "order-1", "e")));
    // Requeued with a delay: delayed.
    let receipt = stdout(&ext).trim().to_owned();
    env.qspool(&["requeue", "--delay", "1h", &receipt])
        .expect(0);
    assert!(!pushed(&push_key(&env, "order-1", "f")));
    assert_eq!(env.new_names().len(), 1);
    let s = env.stats();
    assert_eq!(s["delayed"], 1, "{s}");
    // Another key flows beside it.
    assert!(pushed(&push_key(&env, "order-2", "g")));
    assert_eq!(env.new_names().len(), 2);
}

#[test]
fn an_acked_key_is_held_for_the_window_and_free_after_it() {
    let env = Env::new();
    let first = push_key(&env, "k", "a");
    let m = env.pop_json(&[]);
    env.qspool(&["ack", m["receipt"].as_str().unwrap()])
        .expect(0);
    let again = push_key(&env, "k", "b");
    assert!(!pushed(&again));
    assert_eq!(id(&again), id(&first));
    // A window of nothing: an acked message holds its key no more.
    env.qspool(&["init", "--dedup-window", "0"]).expect(0);
    let third = push_key(&env, "k", "c");
    assert!(pushed(&third));
    assert_ne!(id(&third), id(&first));
    // And the new message holds it, acked or not.
    env.qspool(&["init", "--dedup-window", "1h"]).expect(0);
    assert_eq!(id(&push_key(&env, "k", "d")), id(&third));
}

#[test]
fn dead_lettered_buried_and_purged_messages_free_their_key() {
    let env = Env::init(&["--max-attempts", "1"]);
    // Buried.
    let a = push_key(&env, "k", "a");
    let m = env.pop_json(&[]);
    env.qspool(&["bury", m["receipt"].as_str().unwrap()])
        .expect(0);
    let b = push_key(&env, "k", "b");
    assert!(pushed(&b), "{b}");
    // Dead-lettered by the pop after its last attempt ran out.
    let m = env.pop_json(&["--lease", "1ms"]);
    assert_eq!(id(&m), id(&b));
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_exit(&env.run(&["pop"]), 3);
    assert!(env.names("dead").len() == 2, "{:?}", env.names("dead"));
    let c = push_key(&env, "k", "c");
    assert!(pushed(&c));
    // Purged.
    env.qspool(&["purge", "--ready", "--yes"]).expect(0);
    let d = push_key(&env, "k", "d");
    assert!(pushed(&d));
    let ids: BTreeSet<String> = [a, b, c, d].iter().map(id).collect();
    assert_eq!(ids.len(), 4);
}

#[test]
fn dlq_replay_and_replay_done_bring_the_key_back_with_the_message() {
    let env = Env::init(&["--max-attempts", "1"]);
    let a = push_key(&env, "k", "a");
    let m = env.pop_json(&[]);
    env.qspool(&["bury", m["receipt"].as_str().unwrap()])
        .expect(0);
    // The clean-up keeps the record of a message still in dead/: the replay needs it.
    env.stats();
    env.qspool(&["requeue", "--expired"]).expect(0);
    env.qspool(&["dlq-replay", &id(&a)]).expect(0);
    let again = push_key(&env, "k", "b");
    assert!(!pushed(&again));
    assert_eq!(id(&again), id(&a));
    let shown: Value =
        serde_json::from_str(&stdout(&env.qspool(&["show", "--json", &id(&a)]).expect(0))).unwrap();
    assert_eq!(shown["key"], "k");
    // The same through done/.
    env.qspool(&["init", "--max-attempts", "5", "--dedup-window", "0"])
        .expect(0);
    let m = env.pop_json(&[]);
    env.qspool(&["ack", m["receipt"].as_str().unwrap()])
        .expect(0);
    env.qspool(&["requeue", "--expired"]).expect(0);
    env.qspool(&["replay", "--done", &id(&a)]).expect(0);
    let again = push_key(&env, "k", "c");
    assert!(!pushed(&again), "{again}");
    assert_eq!(env.new_names().len(), 1);
}

#[test]
fn eight_racing_pushers_of_the_same_hundred_keys_leave_a_hundred_messages() {
    let env = Env::new();
    let script = r#"for i in $(seq 1 100); do
        "$Q" -s "$S" push --json --key "key-$i" "from $W: $i" || exit 9
    done"#;
    let children: Vec<_> = (0..8)
        .map(|w| {
            std::process::Command::new("sh")
                .args(["-c", script])
                .env("Q", qspool_bin())
                .env("S", env.spool())
                .env("W", w.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut fresh = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for v in parse_lines(&out) {
            fresh += usize::from(pushed(&v));
            by_key
                .entry(v["key"].as_str().unwrap().to_owned())
                .or_default()
                .insert(id(&v));
        }
    }
    assert_eq!(fresh, 100, "exactly one push per key adds a message");
    assert_eq!(by_key.len(), 100);
    for (k, ids) in &by_key {
        assert_eq!(
            ids.len(),
            1,
            "{k}: every pusher was told the same id: {ids:?}"
        );
    }
    assert_eq!(env.new_names().len(), 100);
}

#[test]
fn a_record_left_by_a_crash_before_the_message_was_visible_does_not_hold_the_key() {
    let env = Env::new();
    let first = push_key(&env, "k", "a");
    let rec = record_path(&env, b"k");
    let text = std::fs::read_to_string(&rec).unwrap();
    // The record a crash between its write and the rename into new/ leaves: it names a
    // message that is nowhere.
    let ghost = text.replace(&id(&first)[..16], "1700000000000000");
    let m = env.pop_json(&[]);
    env.qspool(&["ack", m["receipt"].as_str().unwrap()])
        .expect(0);
    std::fs::write(&rec, ghost).unwrap();
    assert!(pushed(&push_key(&env, "k", "b")));
    // A torn record is no record.
    std::fs::write(&rec, &text[..text.len() / 2]).unwrap();
    assert!(pushed(&push_key(&env, "k", "c")));
    // An empty one (made, never written) neither.
    std::fs::write(&rec, "").unwrap();
    assert!(pushed(&push_key(&env, "k", "d")));
}

#[test]
fn a_record_pointing_where_the_message_no_longer_is_is_checked_not_believed() {
    let env = Env::new();
    let first = push_key(&env, "k", "a");
    let rec = record_path(&env, b"k");
    let stale = std::fs::read(&rec).unwrap();
    // Leased and extended, while the record still names the ready file (a move whose record
    // update was lost): the push looks the id up and still finds it held.
    let m = env.pop_json(&[]);
    env.qspool(&["extend", m["receipt"].as_str().unwrap()])
        .expect(0);
    std::fs::write(&rec, &stale).unwrap();
    let again = push_key(&env, "k", "b");
    assert!(!pushed(&again));
    assert_eq!(id(&again), id(&first));
    // And the record was put right on the way.
    assert!(std::fs::read_to_string(&rec).unwrap().contains(" leased "));
}

#[test]
fn keys_are_bytes_never_paths() {
    let env = Env::new();
    let hostile = std::ffi::OsStr::from_bytes(b"../../etc/\xff\x1b[31m");
    let out = env
        .cmd(&[])
        .arg("push")
        .arg("--json")
        .arg("--key")
        .arg(hostile)
        .arg("x")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let names: Vec<_> = std::fs::read_dir(env.spool().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].len() == 16 && names[0].bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!env.spool().join("etc").exists());
    // Shown escaped in list, never raw.
    let listed = stdout(&env.qspool(&["list"]).expect(0));
    assert!(!listed.contains('\x1b'), "{listed:?}");
    assert!(listed.contains("key \"../../etc/"), "{listed}");
    let line = &parse_lines(&env.qspool(&["list", "--json"]).expect(0))[0];
    assert!(line["key"].as_str().unwrap().starts_with("../../etc/"));
    // The same bytes are the same key.
    let again = env
        .cmd(&[])
        .arg("push")
        .arg("--json")
        .arg("--key")
        .arg(hostile)
        .arg("y")
        .output()
        .unwrap();
    assert!(!pushed(&parse_lines(&again)[0]));
}

#[test]
fn bad_keys_and_bad_combinations_exit_2_before_the_spool_is_touched() {
    let env = Env::new();
    let long = "x".repeat(129);
    for args in [
        vec!["push", "--key", "", "x"],
        vec!["push", "--key", &long, "x"],
        vec!["push", "--key", "k", "one", "two"],
        vec!["push", "--key", "k", "--lines"],
        vec!["push", "--key", "k", "--null"],
    ] {
        let out = env.run(&args);
        assert_exit(&out, 2);
        one_error_line(&out);
    }
    assert!(!env.spool().exists());
    // 128 bytes is a key.
    let max = "x".repeat(128);
    assert!(pushed(&push_key(&env, &max, "x")));
    assert!(!pushed(&push_key(&env, &max, "y")));
    env.qspool(&["init", "--dedup-window", "soon"]).fails(2);
}

#[test]
fn hostile_key_records_and_directories_are_refused_with_one_line() {
    let env = Env::new();
    push_key(&env, "k", "a");
    let rec = record_path(&env, b"k");
    std::fs::remove_file(&rec).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &rec).unwrap();
    let err = env.qspool(&["push", "--key", "k", "b"]).fails(1);
    assert!(
        err.contains(&rec.display().to_string()) && err.contains("symbolic link"),
        "{err}"
    );
    std::fs::remove_file(&rec).unwrap();
    std::fs::create_dir(&rec).unwrap();
    let err = env.qspool(&["push", "--key", "k", "b"]).fails(1);
    assert!(err.contains("not a plain file"), "{err}");
    std::fs::remove_dir(&rec).unwrap();
    // A record of another key under this key's hash: refused, not taken for a duplicate.
    std::fs::write(
        &rec,
        "qspool-key 1 gone 1795833091123456.1.00000000.00000000.h 5\nother",
    )
    .unwrap();
    let err = env.qspool(&["push", "--key", "k", "b"]).fails(1);
    assert!(err.contains("another key"), "{err}");
    std::fs::remove_file(&rec).unwrap();
    // keys/ itself a link.
    let keys = env.spool().join("keys");
    std::fs::remove_dir(&keys).unwrap();
    let elsewhere = env.scratch().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &keys).unwrap();
    let err = env.qspool(&["push", "--key", "k", "b"]).fails(1);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(std::fs::read_dir(&elsewhere).unwrap().count() == 0);
    // Plain pushes never look at keys/.
    env.push("plain");
}

#[test]
fn records_of_free_keys_are_removed_by_requeue_expired_and_stats() {
    // Records go once their message has left done/ as well: a replay could bring it back.
    let env = Env::init(&["--dedup-window", "0", "--retain-done", "0"]);
    for k in ["a", "b", "c"] {
        push_key(&env, k, k);
    }
    for _ in 0..2 {
        let m = env.pop_json(&[]);
        env.qspool(&["ack", m["receipt"].as_str().unwrap()])
            .expect(0);
    }
    assert_eq!(
        std::fs::read_dir(env.spool().join("keys")).unwrap().count(),
        3
    );
    env.qspool(&["requeue", "--expired"]).expect(0);
    // The ready one keeps its record, and its key.
    assert_eq!(
        std::fs::read_dir(env.spool().join("keys")).unwrap().count(),
        1
    );
    assert!(!pushed(&push_key(&env, "c", "again")));
    assert!(pushed(&push_key(&env, "a", "again")));
    let m = env.pop_json(&[]);
    env.qspool(&["ack", m["receipt"].as_str().unwrap()])
        .expect(0);
    env.stats();
    assert_eq!(
        std::fs::read_dir(env.spool().join("keys")).unwrap().count(),
        1
    );
}

#[test]
fn list_show_and_pop_json_show_the_key_and_plain_messages_have_none() {
    let env = Env::new();
    let plain = env.push("plain");
    let keyed = id(&push_key(&env, "invoice-7", "keyed"));
    let listed = parse_lines(&env.qspool(&["list", "--json"]).expect(0));
    assert_eq!(listed.len(), 2);
    for l in &listed {
        if l["id"] == plain.as_str() {
            assert!(l.get("key").is_none(), "{l}");
        } else {
            assert_eq!(l["key"], "invoice-7");
        }
    }
    let text = stdout(&env.qspool(&["list"]).expect(0));
    assert!(text.contains("key \"invoice-7\""), "{text}");
    let shown: Value =
        serde_json::from_str(&stdout(&env.qspool(&["show", "--json", &keyed]).expect(0))).unwrap();
    assert_eq!(shown["key"], "invoice-7");
    let p = env.pop_json(&[]);
    assert!(p.get("key").is_none());
    let k = env.pop_json(&[]);
    assert_eq!(k["key"], "invoice-7");
    // A record gone: the message still says it has a key.
    std::fs::remove_file(record_path(&env, b"invoice-7")).unwrap();
    let shown: Value =
        serde_json::from_str(&stdout(&env.qspool(&["show", "--json", &keyed]).expect(0))).unwrap();
    assert!(shown["key"].is_null(), "{shown}");
}

//! `stats` (every key, the partition, human output, read-only spools), `dlq-replay` and `purge`.

use crate::harness::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const STATES: [&str; 6] = ["ready", "delayed", "leased", "expired", "done", "dead"];

fn out_lines(o: &Output) -> Vec<String> {
    stdout(o).lines().map(str::to_owned).collect()
}

/// The seven counts of a stats object, checking that every expected key is there and no other.
fn counts(s: &Value) -> BTreeMap<String, u64> {
    let obj = s.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    let mut want = STATES.to_vec();
    want.extend(["foreign", "oldest_ready_age_seconds"]);
    want.sort();
    for k in &want {
        assert!(obj.contains_key(*k), "missing key {k}: {s}");
    }
    STATES
        .iter()
        .chain(&["foreign"])
        .map(|k| {
            let v = s[*k]
                .as_u64()
                .unwrap_or_else(|| panic!("{k} not a count: {s}"));
            (k.to_string(), v)
        })
        .collect()
}

fn total(s: &Value) -> u64 {
    STATES.iter().map(|k| s[*k].as_u64().unwrap()).sum()
}

/// Builds a spool with every state represented: 2 ready, 1 delayed, 1 leased, 1 expired,
/// 1 done, 1 dead.
fn every_state() -> Env {
    let env = Env::new();
    for body in ["done", "dead", "leased", "expired", "ready-1", "ready-2"] {
        env.push(body);
    }
    env.cmd(&["push", "--delay", "1h", "delayed"])
        .assert()
        .success();
    let m = env.pop_json(&[]);
    assert_eq!(m["body"], "done");
    assert_exit(&run(&env, &["ack", &receipt(&m)]), 0);
    let m = env.pop_json(&[]);
    assert_eq!(m["body"], "dead");
    assert_exit(&run(&env, &["bury", &receipt(&m)]), 0);
    let m = env.pop_json(&["--lease", "1h"]);
    assert_eq!(m["body"], "leased");
    let m = env.pop_json(&["--lease", "1ms"]);
    assert_eq!(m["body"], "expired");
    pause();
    env
}

#[test]
fn stats_reports_every_key_and_the_counts_partition_the_messages() {
    let env = every_state();
    let s = env.stats();
    let c = counts(&s);
    let want: BTreeMap<String, u64> = [
        ("ready", 2),
        ("delayed", 1),
        ("leased", 1),
        ("expired", 1),
        ("done", 1),
        ("dead", 1),
        ("foreign", 0),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    assert_eq!(c, want, "{s}");
    assert_eq!(total(&s), 7);
    let age = s["oldest_ready_age_seconds"].as_f64().expect("a number");
    assert!((0.0..600.0).contains(&age), "{age}");

    // Moving messages between states never changes the total.
    let m = env.pop_json(&[]);
    assert_eq!(m["body"], "ready-1");
    // That pop also reclaimed the expired lease: it is ready again, behind ready-2.
    let s = env.stats();
    assert_eq!(total(&s), 7, "{s}");
    assert_eq!(
        (
            s["ready"].as_u64(),
            s["expired"].as_u64(),
            s["leased"].as_u64()
        ),
        (Some(2), Some(0), Some(2)),
        "{s}"
    );
    assert_exit(&run(&env, &["ack", &receipt(&m)]), 0);
    let s = env.stats();
    assert_eq!(total(&s), 7, "{s}");
    assert_eq!(s["done"], 2);
}

#[test]
fn stats_on_an_empty_spool_is_all_zero_with_null_age() {
    let env = Env::init(&[]);
    let s = env.stats();
    for (k, v) in counts(&s) {
        assert_eq!(v, 0, "{k}: {s}");
    }
    assert!(s["oldest_ready_age_seconds"].is_null(), "{s}");
    // Only delayed or leased messages: still no ready one, still null.
    env.cmd(&["push", "--delay", "1h", "x"]).assert().success();
    env.push("y");
    env.pop_json(&[]);
    let s = env.stats();
    assert_eq!(
        (s["delayed"].as_u64(), s["leased"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(s["oldest_ready_age_seconds"].is_null(), "{s}");
}

#[test]
fn oldest_ready_age_is_counted_from_the_first_push() {
    let env = Env::init(&[]);
    // A message another compatible tool pushed an hour ago, made visible a moment ago (before
    // the 10 ms slot a push without delay takes its visible time from).
    let now = now_ms() - 20;
    let enq_us = (now - 3_600_000) * 1000;
    let dir = bucket(env.spool(), now);
    fs::create_dir_all(&dir).unwrap();
    let name = format!("{enq_us:016}.7.00000000.00000000.other,a0,v{now:013}");
    fs::write(dir.join(&name), b"old").unwrap();
    env.push("young");
    let s = env.stats();
    assert_eq!(s["ready"], 2, "{s}");
    assert_eq!(s["foreign"], 0, "{s}");
    let age = s["oldest_ready_age_seconds"].as_f64().unwrap();
    assert!((3600.0..3700.0).contains(&age), "{age}");
    // It is a ready message like any other.
    let m = env.pop_json(&[]);
    assert_eq!(m["body"], "old");
    assert_eq!(m["attempt"], 1);
}

#[test]
fn human_output_names_every_count() {
    let env = every_state();
    let o = run(&env, &["stats"]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    // One row per state: its name, then its count.
    let mut seen = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(k), Some(v)) = (words.next(), words.next()) else {
            continue;
        };
        seen.insert(k.to_owned(), v.to_owned());
    }
    // The header names the columns, qshape's age buckets among them.
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "state", "count", "bytes", "oldest", "5m", "10m", "20m", "40m", "80m", "160m", "320m",
            "640m", "older"
        ]
    );
    // Each state row adds up: the histogram partitions the count.
    for line in text.lines().skip(1).take(6) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let count: u64 = cells[1].parse().unwrap();
        let sum: u64 = cells[4..].iter().map(|c| c.parse::<u64>().unwrap()).sum();
        assert_eq!(count, sum, "{line}");
    }
    // The live lease, soonest first.
    assert!(text.contains("leases expiring soonest\n"), "{text}");
    for (k, v) in [
        ("ready", "2"),
        ("delayed", "1"),
        ("leased", "1"),
        ("expired", "1"),
        ("done", "1"),
        ("dead", "1"),
        ("foreign", "0"),
    ] {
        assert_eq!(seen.get(k).map(String::as_str), Some(v), "{k} in {text}");
    }
    assert!(text.contains("oldest"), "{text}");
    assert!(!text.trim_start().starts_with('{'), "{text}");
}

#[test]
fn stats_on_a_missing_spool_fails_and_creates_nothing() {
    let env = Env::new();
    for args in [&["stats"][..], &["stats", "--json"]] {
        let o = run(&env, args);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("no spool at"), "{err}");
        assert!(err.contains(env.spool().to_str().unwrap()), "{err}");
        assert!(o.stdout.is_empty());
    }
    assert!(!env.spool().exists());
}

/// Every entry under `root` with its type, size, mode, mtime and ctime (from `lstat`).
fn listing(root: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, i64, i64, i64)> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (u32, u64, i64, i64, i64, i64)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            out.insert(
                p.clone(),
                (
                    m.mode(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                ),
            );
            if m.file_type().is_dir() {
                walk(&p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    let m = fs::symlink_metadata(root).unwrap();
    out.insert(
        root.to_path_buf(),
        (
            m.mode(),
            0,
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ),
    );
    walk(root, &mut out);
    out
}

#[test]
fn stats_changes_nothing_in_the_spool() {
    let env = every_state();
    // An expired lease and an empty bucket are both things a writer would tidy up.
    let before = listing(env.spool());
    std::thread::sleep(Duration::from_millis(20));
    let s = env.stats();
    assert_eq!(s["expired"], 1);
    let o = run(&env, &["stats"]);
    assert_exit(&o, 0);
    assert_eq!(listing(env.spool()), before, "stats modified the spool");
}

/// A read-only bind mount of a directory, removed on drop. `None` where mounting is not allowed.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(src: &Path, dst: &Path) -> Option<ReadOnlyMount> {
        fs::create_dir_all(dst).unwrap();
        let ok = |args: &[&std::ffi::OsStr]| {
            std::process::Command::new("mount")
                .args(args)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok(&["--bind".as_ref(), src.as_os_str(), dst.as_os_str()]) {
            return None;
        }
        let guard = ReadOnlyMount(dst.to_path_buf());
        if !ok(&["-o".as_ref(), "remount,ro,bind".as_ref(), dst.as_os_str()]) {
            return None;
        }
        Some(guard)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn stats_works_on_a_read_only_spool() {
    let env = every_state();
    let ro = env.scratch().join("ro");
    let Some(_mount) = ReadOnlyMount::new(env.spool(), &ro) else {
        eprintln!("mount not permitted here; stats_changes_nothing_in_the_spool covers this");
        return;
    };
    // The mount really is read-only, even for root.
    assert!(fs::write(ro.join("probe"), b"x").is_err());
    let mut c = assert_cmd::Command::cargo_bin("qspool").unwrap();
    let o = c
        .env_remove("QSPOOL_DIR")
        .args([
            "--spool".as_ref(),
            ro.as_os_str(),
            "stats".as_ref(),
            "--json".as_ref(),
        ])
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["ready"], 2, "{s}");
    assert_eq!(s["expired"], 1, "{s}");
    assert_eq!(total(&s), 7, "{s}");
    // And a writer on the same read-only spool fails cleanly, in one line.
    let mut c = assert_cmd::Command::cargo_bin("qspool").unwrap();
    let o = c
        .env_remove("QSPOOL_DIR")
        .args([
            "--spool".as_ref(),
            ro.as_os_str(),
            "push".as_ref(),
            "x".as_ref(),
        ])
        .output()
        .unwrap();
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(o.stdout.is_empty(), "a failed push printed an id");
}

/// Pushes `n` messages, leases and buries each, and returns their ids in push order.
fn dead_messages(env: &Env, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| env.push(&format!("m{i}"))).collect();
    for want in &ids {
        let m = env.pop_json(&[]);
        assert_eq!(&id(&m), want);
        assert_exit(&run(env, &["bury", &receipt(&m)]), 0);
    }
    assert_eq!(env.names("dead").len(), n);
    ids
}

#[test]
fn dlq_replay_by_id_resets_attempts_and_keeps_the_id() {
    let env = Env::init(&["--max-attempts", "3"]);
    let ids = dead_messages(&env, 2);
    // Let the first one die again after two attempts, to see the reset.
    let o = run(&env, &["dlq-replay", &ids[0]]);
    assert_exit(&o, 0);
    assert_eq!(out_lines(&o), vec![ids[0].clone()]);
    let m = env.pop_json(&[]);
    assert_exit(&run(&env, &["requeue", &receipt(&m)]), 0);
    let m = env.pop_json(&[]);
    assert_eq!(m["attempt"], 2);
    assert_exit(&run(&env, &["bury", &receipt(&m)]), 0);
    assert!(
        env.names("dead")
            .iter()
            .any(|n| n.starts_with(&format!("{},a2,", ids[0])))
    );

    let o = run(&env, &["dlq-replay", &ids[0]]);
    assert_exit(&o, 0);
    assert_eq!(out_lines(&o), vec![ids[0].clone()]);
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1);
    assert!(dead[0].starts_with(&format!("{},", ids[1])), "{dead:?}");
    let names = env.new_names();
    assert_eq!(names.len(), 1);
    assert!(
        names[0].starts_with(&format!("{},a0,v", ids[0])),
        "{names:?}"
    );
    let m = env.pop_json(&[]);
    assert_eq!(id(&m), ids[0]);
    assert_eq!(m["attempt"], 1);
    assert_eq!(m["body"], "m0");
    // A replayed message has its full allowance again: three leases before dead.
    let mut m = m;
    for attempt in [2, 3] {
        assert_exit(&run(&env, &["requeue", &receipt(&m)]), 0);
        m = env.pop_json(&[]);
        assert_eq!(id(&m), ids[0]);
        assert_eq!(m["attempt"], attempt);
    }
    assert_exit(&run(&env, &["requeue", &receipt(&m)]), 0);
    assert_exit(&run(&env, &["pop"]), 3);
    assert!(
        env.names("dead")
            .iter()
            .any(|n| n.starts_with(&format!("{},a3,", ids[0])))
    );
}

#[test]
fn replayed_message_goes_behind_what_is_waiting() {
    let env = Env::new();
    let ids = dead_messages(&env, 1);
    let later = env.push("later");
    pause();
    assert_exit(&run(&env, &["dlq-replay", &ids[0]]), 0);
    assert_eq!(id(&env.pop_json(&[])), later);
    assert_eq!(id(&env.pop_json(&[])), ids[0]);
}

#[test]
fn dlq_replay_all_and_limit() {
    let env = Env::new();
    let ids = dead_messages(&env, 4);
    let o = run(&env, &["dlq-replay", "--all", "--limit", "1"]);
    assert_exit(&o, 0);
    assert_eq!(out_lines(&o), vec![ids[0].clone()], "oldest first");
    assert_eq!(env.names("dead").len(), 3);
    assert_eq!(env.new_names().len(), 1);

    let o = run(&env, &["dlq-replay", "--limit", "1", &ids[3], &ids[2]]);
    assert_exit(&o, 0);
    assert_eq!(out_lines(&o), vec![ids[3].clone()]);
    assert_eq!(env.names("dead").len(), 2);

    let o = run(&env, &["dlq-replay", "--all"]);
    assert_exit(&o, 0);
    assert_eq!(out_lines(&o), vec![ids[1].clone(), ids[2].clone()]);
    assert!(env.names("dead").is_empty());
    assert_eq!(env.new_names().len(), 4);
    assert_eq!(env.stats()["ready"], 4);

    // Nothing dead: --all is a no-op that succeeds.
    let o = run(&env, &["dlq-replay", "--all"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");

    let o = run(&env, &["dlq-replay", "--all", "--limit", "0"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");
}

#[test]
fn dlq_replay_limit_zero_moves_nothing() {
    let env = Env::new();
    dead_messages(&env, 2);
    let o = run(&env, &["dlq-replay", "--all", "--limit", "0"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");
    assert_eq!(env.names("dead").len(), 2);
}

#[test]
fn dlq_replay_usage_errors() {
    let env = Env::new();
    let ids = dead_messages(&env, 1);
    for args in [
        &["dlq-replay"][..],
        &["dlq-replay", "--limit", "3"],
        &["dlq-replay", "--all", &ids[0]],
        &["dlq-replay", "--all", "--limit", "-1"],
        &["dlq-replay", "--all", "--limit", "many"],
    ] {
        let o = run(&env, args);
        assert_exit(&o, 2);
        assert!(o.stdout.is_empty());
    }
    assert_eq!(env.names("dead").len(), 1);
}

#[test]
fn dlq_replay_unknown_id_is_not_found_but_others_move() {
    let env = Env::new();
    let ids = dead_messages(&env, 2);
    let live = env.push("alive");
    let unknown = "1700000000000000.1.00000000.00000000.nowhere";
    let o = run(&env, &["dlq-replay", unknown, &ids[1], &live]);
    assert_exit(&o, 4);
    assert_eq!(out_lines(&o), vec![ids[1].clone()]);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 2, "one line per missing id: {err}");
    assert!(err.contains(unknown) && err.contains(&live), "{err}");
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1);
    assert!(dead[0].starts_with(&ids[0]));
    // The ready message named by id was not touched.
    assert_eq!(env.stats()["ready"], 2);
}

#[test]
fn dlq_replay_malformed_id_is_usage_and_nothing_moves() {
    let env = Env::new();
    let ids = dead_messages(&env, 2);
    let before = env.names("dead");
    for bad in [
        "../dead/x",
        "",
        "nonsense",
        &format!("{},a1,f0000000000001", ids[0]),
    ] {
        let o = run(&env, &["dlq-replay", &ids[0], bad, &ids[1]]);
        assert_exit(&o, 2);
        assert!(o.stdout.is_empty(), "{bad:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("qspool: "), "{err}");
        assert_eq!(env.names("dead"), before, "{bad:?}");
        assert!(env.new_names().is_empty());
    }
}

#[test]
fn dlq_replay_on_missing_spool_fails() {
    let env = Env::new();
    let o = run(&env, &["dlq-replay", "--all"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("no spool at"));
    assert!(!env.spool().exists());
}

/// Renames the one entry of `dir` starting with `id` so that it finished `ago_ms` ago.
fn age_ended(dir: &Path, id: &str, ago_ms: u64) {
    let name = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with(&format!("{id},")))
        .unwrap();
    let (head, _) = name.rsplit_once(",f").unwrap();
    let aged = format!("{head},f{:013}", now_ms() - ago_ms);
    fs::rename(dir.join(&name), dir.join(aged)).unwrap();
}

fn done_messages(env: &Env, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| env.push(&format!("d{i}"))).collect();
    for _ in 0..n {
        let m = env.pop_json(&[]);
        assert_exit(&run(env, &["ack", &receipt(&m)]), 0);
    }
    ids
}

#[test]
fn purge_done_removes_done_only() {
    let env = Env::new();
    let done = done_messages(&env, 2);
    let dead = dead_messages(&env, 1);
    env.push("waiting");
    let o = run(&env, &["purge", "--done"]);
    assert_exit(&o, 0);
    let mut got = out_lines(&o);
    got.sort();
    assert_eq!(got, done);
    assert!(env.names("done").is_empty());
    assert_eq!(env.names("dead").len(), 1);
    assert!(env.names("dead")[0].starts_with(&dead[0]));
    let s = env.stats();
    assert_eq!(
        (s["ready"].as_u64(), s["done"].as_u64()),
        (Some(1), Some(0))
    );
    let o = run(&env, &["purge", "--done"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");
}

#[test]
fn purge_dead_and_both() {
    let env = Env::new();
    let done = done_messages(&env, 1);
    let dead = dead_messages(&env, 2);
    let o = run(&env, &["purge", "--dead", "--yes"]);
    assert_exit(&o, 0);
    let mut got = out_lines(&o);
    got.sort();
    assert_eq!(got, dead);
    assert!(env.names("dead").is_empty());
    assert_eq!(env.names("done").len(), 1);

    let dead2 = dead_messages(&env, 1);
    let o = run(&env, &["purge", "--done", "--dead", "--yes"]);
    assert_exit(&o, 0);
    let mut got = out_lines(&o);
    got.sort();
    let mut want = [done, dead2].concat();
    want.sort();
    assert_eq!(got, want);
    assert!(env.names("done").is_empty() && env.names("dead").is_empty());
}

#[test]
fn purge_older_than_keeps_recent_ones() {
    let env = Env::new();
    let done = done_messages(&env, 2);
    let dead = dead_messages(&env, 2);
    age_ended(&env.spool().join("done"), &done[0], 2 * 86_400_000);
    age_ended(&env.spool().join("dead"), &dead[1], 2 * 3_600_000);

    let o = run(
        &env,
        &["purge", "--done", "--dead", "--older-than", "1d", "--yes"],
    );
    assert_exit(&o, 0);
    assert_eq!(out_lines(&o), vec![done[0].clone()]);
    assert_eq!(env.names("done").len(), 1);
    assert_eq!(env.names("dead").len(), 2);

    let o = run(&env, &["purge", "--dead", "--older-than", "1h", "--yes"]);
    assert_exit(&o, 0);
    assert_eq!(out_lines(&o), vec![dead[1].clone()]);
    let left = env.names("dead");
    assert_eq!(left.len(), 1);
    assert!(left[0].starts_with(&dead[0]));
}

#[test]
fn purge_usage_errors_and_missing_spool() {
    let env = Env::new();
    done_messages(&env, 1);
    for args in [
        &["purge"][..],
        &["purge", "--older-than", "1d"],
        &["purge", "--done", "--older-than", "yesterday"],
    ] {
        let o = run(&env, args);
        assert_exit(&o, 2);
    }
    assert_eq!(env.names("done").len(), 1);

    let env = Env::new();
    let o = run(&env, &["purge", "--done"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("no spool at"));
    assert!(!env.spool().exists());
}

#[test]
fn purge_leaves_foreign_files_alone() {
    let env = Env::new();
    done_messages(&env, 1);
    let done = env.spool().join("done");
    fs::write(done.join("notes.txt"), b"mine").unwrap();
    fs::write(done.join("1700000000000000.1.00000000.00000000.h,a1"), b"x").unwrap();
    let o = run(&env, &["purge", "--done"]);
    assert_exit(&o, 0);
    assert_eq!(out_lines(&o).len(), 1);
    let mut want = vec![
        "1700000000000000.1.00000000.00000000.h,a1".to_owned(),
        "notes.txt".to_owned(),
    ];
    want.sort();
    assert_eq!(env.names("done"), want);
    assert_eq!(env.stats()["foreign"], 2);
}

#[test]
fn ready_messages_are_shown_by_age_since_first_push() {
    let env = Env::init(&[]);
    let now = now_ms();
    let dir = bucket(env.spool(), now);
    fs::create_dir_all(&dir).unwrap();
    // Pushed 2 minutes, 2 hours and 2 days ago by a compatible tool, all visible now.
    for (i, age_ms) in [120_000u64, 7_200_000, 172_800_000].iter().enumerate() {
        let enq_us = (now - age_ms) * 1000;
        let name = format!("{enq_us:016}.7.{i:08x}.00000000.other,a0,v{now:013}");
        fs::write(dir.join(&name), b"x").unwrap();
    }
    env.push("young");
    env.push_all(&["later"]);
    run(&env, &["push", "--delay", "1h", "delayed, not counted"]);
    let s = env.stats();
    let h = &s["age_histogram"];
    let counts: Vec<u64> = h["ready"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    // 2 minutes old and the two just pushed: up to 5m; 2 hours: up to 160m; 2 days: older.
    assert_eq!(counts, [3, 0, 0, 0, 0, 1, 0, 0, 1], "{s}");
    assert_eq!(
        h["bounds_seconds"],
        serde_json::json!([300, 600, 1200, 2400, 4800, 9600, 19200, 38400])
    );
    assert_eq!(counts.iter().sum::<u64>(), s["ready"].as_u64().unwrap());
    assert_eq!(h["delayed"][0], 1);
    let text = stdout(&run(&env, &["stats"]));
    let ready = text.lines().find(|l| l.starts_with("ready ")).unwrap();
    let cells: Vec<&str> = ready.split_whitespace().collect();
    assert_eq!(cells[3], "2d", "oldest: {text}");
    assert_eq!(
        cells[4..],
        ["3", "0", "0", "0", "0", "1", "0", "0", "1"],
        "{text}"
    );
    assert!(s["oldest_ready_age_seconds"].as_f64().unwrap() >= 172_800.0);
}

fn list_json(env: &Env, args: &[&str]) -> Vec<Value> {
    let o = run(env, &[&["list", "--json"], args].concat());
    assert_exit(&o, 0);
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn list_shows_every_message_but_done_by_default_oldest_push_first_across_states() {
    let env = every_state();
    // A foreign file is never listed.
    fs::write(env.spool().join("dead").join("junk"), b"x").unwrap();
    let all = list_json(&env, &[]);
    let states: Vec<&str> = all.iter().map(|m| m["state"].as_str().unwrap()).collect();
    // Pushed as dead, leased, expired, ready-1, ready-2, delayed (done is left out).
    assert_eq!(
        states,
        ["dead", "leased", "expired", "ready", "ready", "delayed"]
    );
    for pair in all.windows(2) {
        assert!(pair[0]["id"].as_str() < pair[1]["id"].as_str());
    }
    for m in &all {
        assert_id(m["id"].as_str().unwrap());
        assert!(m["enqueued_at"].as_str().unwrap().ends_with('Z'), "{m}");
        assert!(
            m.get("receipt").is_none(),
            "a listing must not hand out receipts: {m}"
        );
    }
    assert_eq!(all[3]["size"], "ready-1".len());
    assert_eq!(all[3]["attempt"], 0);
    assert!(all[3]["visible_at"].is_string() && all[5]["visible_at"].is_string());
    assert!(all[1]["lease_expires_at"].is_string() && all[2]["lease_expires_at"].is_string());
    assert_eq!(all[1]["attempt"], 1);
    assert!(all[0]["finished_at"].is_string());
    // The time a message entered its state, where its name records it.
    assert_eq!(all[0]["state_since"], all[0]["finished_at"]);
    assert_eq!(all[3]["state_since"], all[3]["visible_at"]);
    assert!(all[5].get("state_since").is_none() && all[1].get("state_since").is_none());
    // --limit keeps the oldest.
    let two = list_json(&env, &["--limit", "2"]);
    assert_eq!(two, all[..2]);
    assert!(list_json(&env, &["--limit", "0"]).is_empty());
    // --all adds done; states pick; both together are a usage error.
    assert_eq!(list_json(&env, &["--all"]).len(), 7);
    let picked = list_json(&env, &["done", "expired"]);
    let states: Vec<&str> = picked
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["done", "expired"]);
    assert_exit(&env.run(&["list", "--all", "dead"]), 2);
    assert_exit(&env.run(&["list", "bogus"]), 2);
    // The human form has one line per message, led by its state, and says when things happen.
    let text = stdout(&run(&env, &["list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines[5].starts_with("delayed ") && lines[5].contains("visible in "),
        "{text}"
    );
    assert!(
        lines[1].starts_with("leased ") && lines[1].contains("expires in "),
        "{text}"
    );
    assert!(
        lines[2].starts_with("expired ") && lines[2].contains(" ago"),
        "{text}"
    );
}

#[test]
fn list_needs_a_spool_and_sizes_come_from_lstat() {
    let env = Env::new();
    let o = env.run(&["list"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("no spool at"), "{}", stderr(&o));
    assert!(!env.spool().exists());
    let env = Env::init(&[]);
    assert_eq!(stdout(&run(&env, &["list"])), "");
    env.push("secret");
    let all = list_json(&env, &[]);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["size"], 6);
}

#[test]
fn watch_prints_anew_until_interrupted() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    env.push("x");
    let mut child = env
        .std_cmd(&["stats", "--json", "--watch=50ms"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["ready"], 1);
    // A push between two looks shows in a later one.
    env.push("y");
    let seen_two = lines
        .take(100)
        .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap())
        .any(|v| v["ready"] == 2);
    assert!(seen_two);
    child.kill().unwrap();
    child.wait().unwrap();
    // The value needs its `=`, and must be a positive duration.
    assert_exit(&env.run(&["stats", "--watch", "1s"]), 2);
    assert_exit(&env.run(&["stats", "--watch=0"]), 2);
}

#[test]
fn json_has_bytes_oldest_ages_and_the_soonest_leases_in_state_order() {
    let env = every_state();
    let s = env.stats();
    // The states come in their usual order (the parsed Value would sort the keys).
    let text = stdout(&run(&env, &["stats", "--json"]));
    let order = STATES.map(|k| format!("\"{k}\":"));
    let at = text.find("\"bytes\":{").unwrap();
    let pos: Vec<usize> = order
        .iter()
        .map(|k| at + text[at..].find(k).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(s["bytes"]["ready"], "ready-1".len() + "ready-2".len());
    assert!(s["oldest_dead_age_seconds"].as_f64().unwrap() >= 0.0);
    assert!(s["oldest_age_seconds"]["expired"].is_number());
    let leases = s["soonest_expiring_leases"].as_array().unwrap();
    // Only the live lease: the expired one is not expiring.
    assert_eq!(leases.len(), 1, "{s}");
    assert!(leases[0]["expires_in_seconds"].as_f64().unwrap() > 3000.0);
    assert_id(leases[0]["id"].as_str().unwrap());
}

#[test]
fn list_changes_no_state_and_no_attempt_count() {
    let env = every_state();
    let before = listing(env.spool());
    for args in [
        &["list"][..],
        &["list", "--all", "--json"],
        &["list", "--limit", "2"],
        &["list", "expired", "--json"],
    ] {
        assert_exit(&run(&env, args), 0);
    }
    assert_eq!(listing(env.spool()), before, "list modified the spool");
    // Nothing was reclaimed or counted on the way: the expired lease is still lease number 1.
    let expired = list_json(&env, &["expired"]);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["attempt"], 1);
}

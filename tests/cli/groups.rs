//! `push --group`: one message of a group out at a time, in push order, across pop, pop -n
//! and work -j in any number of processes; requeues keep the head's place, ends let the group
//! go on, a crash's leftovers are put right by `requeue --expired`.

use crate::checker::History;
use crate::harness::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

fn push_group(env: &Env, group: &str, bodies: &[&str]) -> Vec<String> {
    let input = bodies.join("\n") + "\n";
    lines(&env.run_stdin(&["push", "--group", group, "--lines"], input.as_bytes()))
}

fn bodies_of(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect()
}

fn pop_all(env: &Env) -> Vec<Value> {
    let o = env.run(&["pop", "--json", "-n", "100"]);
    if o.status.code() == Some(3) {
        return Vec::new();
    }
    assert_exit(&o, 0);
    parse_lines(&o)
}

/// The directory of the spool's one group.
fn only_group_dir(env: &Env) -> std::path::PathBuf {
    let mut dirs = std::fs::read_dir(env.spool().join("groups")).unwrap();
    let dir = dirs.next().unwrap().unwrap().path();
    assert!(dirs.next().is_none(), "more than one group");
    dir
}

/// The name of a waiting message in a group's directory.
fn first_waiting(dir: &std::path::Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with('w'))
        .unwrap()
}

fn ack(env: &Env, m: &Value) {
    env.qspool(&["ack", m["receipt"].as_str().unwrap()])
        .expect(0);
}

#[test]
fn one_message_of_a_group_is_out_at_a_time_in_push_order() {
    let env = Env::new();
    push_group(&env, "A", &["a1", "a2", "a3"]);
    push_group(&env, "B", &["b1", "b2"]);
    env.push("plain");
    let got = pop_all(&env);
    assert_eq!(bodies_of(&got), ["a1", "b1", "plain"]);
    assert_eq!(got[0]["group"], "A");
    assert!(got[2].get("group").is_none());
    // Nothing more while the heads are leased.
    assert!(pop_all(&env).is_empty());
    let s = env.stats();
    assert_eq!(s["groups"]["active"], 2, "{s}");
    assert_eq!(s["groups"]["waiting"], 3, "{s}");
    let prom = stdout(&env.qspool(&["stats", "--prometheus"]).expect(0));
    assert!(
        prom.contains("qspool_groups_active{spool=") && prom.contains("} 2\n"),
        "{prom}"
    );
    assert!(
        prom.lines()
            .any(|l| l.starts_with("qspool_waiting_messages{") && l.ends_with(" 3")),
        "{prom}"
    );
    let text = stdout(&env.qspool(&["stats"]).expect(0));
    assert!(
        text.contains("groups   2 active, 3 messages waiting"),
        "{text}"
    );
    ack(&env, &got[0]);
    let next = pop_all(&env);
    assert_eq!(bodies_of(&next), ["a2"]);
    ack(&env, &got[1]);
    ack(&env, &next[0]);
    let next = pop_all(&env);
    assert_eq!(bodies_of(&next), ["a3", "b2"]);
    for m in &next {
        ack(&env, m);
    }
    assert!(pop_all(&env).is_empty());
    // An idle group leaves nothing behind.
    let s = env.stats();
    assert_eq!(s["groups"]["active"], 0, "{s}");
    assert_eq!(
        std::fs::read_dir(env.spool().join("groups"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_requeued_or_expired_head_keeps_its_place() {
    let env = Env::new();
    push_group(&env, "g", &["first", "second"]);
    let m = env.pop_json(&[]);
    assert_eq!(m["body"], "first");
    env.qspool(&["requeue", m["receipt"].as_str().unwrap()])
        .expect(0);
    let m = env.pop_json(&["--lease", "1ms"]);
    assert_eq!(m["body"], "first");
    assert_eq!(m["attempt"], 2);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let m = env.pop_json(&[]);
    assert_eq!(
        m["body"], "first",
        "the expired head comes back before the next"
    );
    assert_eq!(m["attempt"], 3);
    // A delayed requeue holds the group for the delay.
    env.qspool(&["requeue", "--delay", "1h", m["receipt"].as_str().unwrap()])
        .expect(0);
    assert!(pop_all(&env).is_empty());
}

#[test]
fn a_dead_lettered_or_purged_head_lets_the_group_go_on_and_stats_counts_it() {
    let env = Env::init(&["--max-attempts", "1"]);
    push_group(&env, "g", &["poison", "next", "last"]);
    let m = env.pop_json(&[]);
    env.qspool(&["bury", m["receipt"].as_str().unwrap()])
        .expect(0);
    let m = env.pop_json(&["--lease", "1ms"]);
    assert_eq!(m["body"], "next");
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Its lease expired on its last attempt: the pop dead-letters it and goes on.
    let m = env.pop_json(&[]);
    assert_eq!(m["body"], "last");
    let s = env.stats();
    assert_eq!(s["dead"], 2, "{s}");
    assert_eq!(s["groups"]["waiting"], 0, "{s}");
    // Replayed dead messages rejoin the group behind its head.
    let dead = lines(&env.qspool(&["list", "dead", "--json"]).expect(0));
    assert_eq!(dead.len(), 2);
    env.qspool(&["dlq-replay", "--all"]).expect(0);
    assert!(pop_all(&env).is_empty(), "the head is still leased");
    ack(&env, &m);
    let next = pop_all(&env);
    assert_eq!(next.len(), 1, "one at a time after the replay too");
    // Purging a ready head promotes the next.
    env.qspool(&["init", "--max-attempts", "5"]).expect(0);
    env.qspool(&["requeue", next[0]["receipt"].as_str().unwrap()])
        .expect(0);
    env.qspool(&["purge", "--ready", "--yes"]).expect(0);
    assert_eq!(pop_all(&env).len(), 1);
}

#[test]
fn a_group_stuck_by_a_crash_is_put_right_by_requeue_expired() {
    let env = Env::new();
    push_group(&env, "g", &["one", "two", "three"]);
    let m = env.pop_json(&[]);
    // As if the ack had been killed between its rename and the promotion of the next: the
    // head is in done/, and `head` still names it.
    let receipt = m["receipt"].as_str().unwrap();
    let lease = env.lease_file(receipt);
    let done = env.spool().join("done").join(
        receipt
            .replace(",a1,l", ",a1,f")
            .split(",t")
            .next()
            .unwrap()
            .to_owned()
            + ","
            + receipt.rsplit(',').next().unwrap(),
    );
    std::fs::rename(&lease, &done).unwrap();
    assert!(pop_all(&env).is_empty(), "stuck");
    let out = stdout(&env.qspool(&["requeue", "--expired"]).expect(0));
    assert!(out.contains("repaired 1 groups"), "{out}");
    let got = pop_all(&env);
    assert_eq!(bodies_of(&got), ["two"]);
    // Nothing to put right: the head is out.
    let out = stdout(&env.qspool(&["requeue", "--expired"]).expect(0));
    assert!(!out.contains("repaired"), "{out}");
    assert!(pop_all(&env).is_empty());
}

#[test]
fn bad_groups_and_hostile_group_entries_are_refused() {
    let env = Env::new();
    let long = "g".repeat(129);
    for args in [
        vec!["push", "--group", "", "x"],
        vec!["push", "--group", &long, "x"],
        vec!["push", "--group", "g", "--key", "k", "x"],
    ] {
        let out = env.run(&args);
        assert_exit(&out, 2);
        one_error_line(&out);
    }
    push_group(&env, "g", &["a"]);
    let dir = only_group_dir(&env);
    let head = dir.join("head");
    std::fs::remove_file(&head).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &head).unwrap();
    let err = env.qspool(&["push", "--group", "g", "b"]).fails(1);
    assert!(err.contains(&head.display().to_string()), "{err}");
    std::fs::remove_file(&head).unwrap();
    let groups = env.spool().join("groups");
    std::fs::remove_dir_all(&groups).unwrap();
    let elsewhere = env.scratch().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &groups).unwrap();
    let err = env.qspool(&["push", "--group", "g", "b"]).fails(1);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    env.push("plain pushes never look at groups/");
}

/// 4 processes of `work -j 4` and 2 of one-shot pops race over 12 groups of 25 messages and
/// some ungrouped ones: every message is run exactly once, and within a group each run begins
/// after the one before it ended, in push order.
#[test]
fn groups_hold_across_four_workers_and_racing_pops() {
    let env = Env::new();
    let h = History::new(env.scratch());
    let groups = 12;
    let per = 25;
    for g in 0..groups {
        let bodies: Vec<String> = (0..per).map(|i| format!("g{g}:{i}")).collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let ids = push_group(&env, &format!("group {g}"), &refs);
        assert_eq!(ids.len(), per);
        for (id, b) in ids.iter().zip(&bodies) {
            h.push_attempt(b.as_bytes());
            h.push_ok(id, b.as_bytes());
        }
    }
    let free: Vec<String> = (0..40).map(|i| format!("free:{i}")).collect();
    for b in &free {
        h.push_attempt(b.as_bytes());
        h.push_ok(&env.push(b), b.as_bytes());
    }
    let log = env.scratch().join("log");
    let cmd = format!(
        "b=$(cat); echo \"start $b $(date +%s%N)\" >> {log}; sleep 0.005; echo \"end $b $(date +%s%N)\" >> {log}",
        log = log.display()
    );
    let mut kids: Vec<_> = (0..4)
        .map(|_| {
            env.std_cmd(&["work", "-q", "-j", "4", "--wait=1s", "--", "sh", "-c", &cmd])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Two one-shot consumers beside them, each acking after logging its own start and end.
    let popper = format!(
        r#"while :; do
             if m=$("$Q" -s "$S" pop --json); then
               b=$(printf '%s' "$m" | sed 's/.*"body":"\([^"]*\)".*/\1/')
               r=$(printf '%s' "$m" | sed 's/.*"receipt":"\([^"]*\)".*/\1/')
               echo "start $b $(date +%s%N)" >> {log}; sleep 0.005; echo "end $b $(date +%s%N)" >> {log}
               "$Q" -s "$S" ack "$r" || exit 9
             else
               rc=$?; [ $rc = 3 ] || exit $rc
               [ -n "$(ls -A "$S/groups")" ] || exit 0
               sleep 0.01
             fi
           done"#,
        log = log.display()
    );
    for _ in 0..2 {
        kids.push(
            std::process::Command::new("sh")
                .args(["-c", &popper])
                .env("Q", qspool_bin())
                .env("S", env.spool())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let mut runs: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    let mut open: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.split(' ');
        let (what, body, t) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let t: u64 = t.parse().unwrap();
        match what {
            "start" => assert!(open.insert(body.to_owned(), t).is_none(), "{body} twice"),
            _ => {
                let s = open.remove(body).unwrap();
                runs.entry(body.to_owned()).or_default().push((s, t));
            }
        }
    }
    assert_eq!(runs.len(), groups * per + free.len(), "every message ran");
    assert!(runs.values().all(|r| r.len() == 1), "exactly once each");
    for g in 0..groups {
        let mut last_end = 0;
        for i in 0..per {
            let (s, e) = runs[&format!("g{g}:{i}")][0];
            assert!(
                s >= last_end,
                "group {g}: message {i} began before {} ended",
                i - 1
            );
            last_end = e;
        }
    }
    // The history checker: every pushed message is in done/, once, whole, and nowhere else.
    let verdict = h.check(env.spool());
    assert!(verdict.failures().is_empty(), "{}", verdict.summary());
    let s = env.stats();
    assert_eq!(s["done"], (groups * per + free.len()) as u64, "{s}");
    let ids: BTreeSet<String> = env.names("done").into_iter().collect();
    assert_eq!(ids.len(), groups * per + free.len());
}

#[test]
fn a_grouped_push_waiting_for_input_holds_nothing_up() {
    use std::io::Write;
    let env = Env::new();
    let mut push = env
        .std_cmd(&["push", "--group", "g", "--lines"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = push.stdin.take().unwrap();
    input.write_all(b"first\n").unwrap();
    input.flush().unwrap();
    let start = std::time::Instant::now();
    let m = loop {
        let o = env.run(&["pop", "--json"]);
        if o.status.code() == Some(0) {
            break parse_lines(&o).remove(0);
        }
        assert!(
            start.elapsed().as_secs() < 10,
            "the first line never became visible"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(m["body"], "first");
    // The push still waits for its next line; the ack (which promotes in the group) and the
    // repair must not wait for it.
    env.qspool(&["ack", m["receipt"].as_str().unwrap()])
        .expect(0);
    env.qspool(&["requeue", "--expired"]).expect(0);
    input.write_all(b"second\n").unwrap();
    drop(input);
    assert!(push.wait_with_output().unwrap().status.success());
    assert_eq!(env.pop_json(&[])["body"], "second");
}

#[test]
fn one_bad_entry_in_groups_does_not_stop_the_repair_of_the_others() {
    let env = Env::new();
    push_group(&env, "g", &["one", "two"]);
    let m = env.pop_json(&[]);
    // The head vanishes without its promotion (as a purge killed after its unlink).
    std::fs::remove_file(env.lease_file(m["receipt"].as_str().unwrap())).unwrap();
    std::os::unix::fs::symlink("/tmp", env.spool().join("groups/0000000000000001")).unwrap();
    let o = env.run(&["requeue", "--expired"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("0000000000000001"), "{}", stderr(&o));
    assert!(stdout(&o).contains("repaired 1 groups"), "{}", stdout(&o));
    assert_eq!(env.pop_json(&[])["body"], "two");
}

#[test]
fn a_used_up_sequence_refuses_the_push_rather_than_hide_it() {
    let env = Env::new();
    push_group(&env, "g", &["head", "next"]);
    let dir = only_group_dir(&env);
    let w = first_waiting(&dir);
    let planted = format!("w9999999999999999{}", &w[17..]);
    std::fs::rename(dir.join(&w), dir.join(planted)).unwrap();
    let err = env.qspool(&["push", "--group", "g", "more"]).fails(1);
    assert!(err.contains("sequence is used up"), "{err}");
    assert!(
        std::fs::read_dir(env.spool().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn a_foreign_entry_under_a_waiting_name_is_never_promoted() {
    let env = Env::new();
    push_group(&env, "g", &["head", "real"]);
    let dir = only_group_dir(&env);
    let w = first_waiting(&dir);
    // Renumbered behind a link planted in front of it, under the same message name.
    let real = format!("w0000000000000005{}", &w[17..]);
    std::fs::rename(dir.join(&w), dir.join(&real)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join(&w)).unwrap();
    let m = env.pop_json(&[]);
    ack(&env, &m);
    assert_eq!(env.pop_json(&[])["body"], "real");
    assert!(
        std::fs::symlink_metadata(dir.join(&w))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_pop_passes_by_a_group_that_is_locked_rather_than_wait_for_it() {
    let env = Env::new();
    push_group(&env, "g", &["grouped"]);
    env.push("plain");
    let dir = only_group_dir(&env);
    // Another process holds the group's lock (as a push into it or a repair does).
    let mut holder = std::process::Command::new("flock")
        .args(["-x", "--no-fork"])
        .arg(&dir)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let start = std::time::Instant::now();
    let got = pop_all(&env);
    let waited = start.elapsed();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(bodies_of(&got), ["plain"]);
    assert!(waited.as_secs() < 10, "the pop waited for the group");
    assert_eq!(bodies_of(&pop_all(&env)), ["grouped"]);
}

//! Rate limits: `init --rate` shared by every pop and work on a spool, `work --rate` per process.

use crate::harness::*;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn init_stores_shows_changes_and_removes_the_limit() {
    let env = Env::init(&["--rate", "100/s", "--burst", "20"]);
    assert_eq!(env.settings()["rate"]["count"], 100);
    assert_eq!(env.settings()["rate"]["per_ms"], 1000);
    assert_eq!(env.settings()["rate"]["burst"], 20);
    // A new rate keeps the burst; a new burst keeps the rate.
    let o = env.qspool(&["init", "--rate", "5/m"]).expect(0);
    assert!(stdout(&o).contains("rate 5/m burst 20"), "{}", stdout(&o));
    let o = env.qspool(&["init", "--burst", "2"]).expect(0);
    assert!(stdout(&o).contains("rate 5/m burst 2"), "{}", stdout(&o));
    let s = env.stats();
    assert_eq!(s["rate_limit"]["rate"], "5/m burst 2");
    assert_eq!(s["rate_limit"]["burst"], 2);
    let o = env.qspool(&["init", "--rate", "off"]).expect(0);
    assert!(!stdout(&o).contains("rate"), "{}", stdout(&o));
    assert!(env.settings().get("rate").is_none());
    assert!(env.stats()["rate_limit"].is_null());
}

#[test]
fn bad_rates_are_usage_errors() {
    let env = Env::new();
    for bad in ["0/s", "100", "x/s", "100/x", "2000000/s", "1/2d", "100/0s"] {
        env.qspool(&["init", "--rate", bad]).expect(2);
    }
    assert!(
        !env.spool().exists(),
        "a refused init must not create the spool"
    );
    env.qspool(&["init", "--rate", "10/s", "--burst", "0"])
        .expect(2);
    assert!(
        env.qspool(&["init", "--burst", "3"])
            .fails(2)
            .contains("--burst needs a rate")
    );
    env.qspool(&["init", "--rate", "off", "--burst", "3"])
        .fails(2);
    env.qspool(&["work", "--burst", "3", "--", "true"])
        .expect(2);
    env.qspool(&["work", "--rate", "fast", "--", "true"])
        .expect(2);
}

#[test]
fn a_stored_rate_that_is_out_of_range_is_refused_naming_the_file() {
    let env = Env::init(&[]);
    let path = env.spool().join("qspool.json");
    std::fs::write(
        &path,
        r#"{"max_attempts":5,"lease_ms":30000,"retain_done_ms":86400000,"rate":{"count":0,"per_ms":1000,"burst":1}}"#,
    )
    .unwrap();
    let err = env.qspool(&["pop"]).fails(1);
    assert!(err.contains("qspool.json"), "{err}");
    // init repairs it.
    env.qspool(&["init", "--rate", "1/s"]).expect(0);
    env.qspool(&["pop"]).expect(3);
}

#[test]
fn a_pop_over_the_limit_exits_3_saying_why_and_with_wait_gets_its_turn() {
    let env = Env::init(&["--rate", "2/s"]);
    for b in ["a", "b", "c"] {
        env.push(b);
    }
    assert_eq!(env.pop_raw(), b"a");
    let err = env.qspool(&["pop"]).fails(3);
    assert!(err.contains("rate limit 2/s reached"), "{err}");
    assert!(err.contains("next lease is allowed in"), "{err}");
    assert_eq!(env.new_names().len(), 2, "the refused pop took nothing");
    let o = env.qspool(&["pop", "--wait=5s"]).expect(0);
    assert_eq!(stdout(&o), "b");
    // And a wait too short for the next token says why it gave up.
    assert!(
        env.qspool(&["pop", "--wait=10ms"])
            .fails(3)
            .contains("rate limit")
    );
}

#[test]
fn pop_n_gets_at_most_the_burst_and_gives_back_what_it_did_not_use() {
    let env = Env::init(&["--rate", "1/h", "--burst", "3"]);
    env.push("only");
    // Three starts allowed, one message: two starts go back.
    let o = env.qspool(&["pop", "--json", "-n", "3", "--ack"]).expect(0);
    assert_eq!(lines(&o).len(), 1);
    for b in ["x", "y", "z"] {
        env.push(b);
    }
    let o = env.qspool(&["pop", "--json", "-n", "3", "--ack"]).expect(0);
    assert_eq!(lines(&o).len(), 2, "{}", stdout(&o));
    assert_eq!(env.stats()["rate_limit"]["available"], 0);
    env.qspool(&["pop"]).fails(3);
    assert_eq!(env.new_names().len(), 1);
}

#[test]
fn an_empty_pop_costs_no_start() {
    let env = Env::init(&["--rate", "1/h"]);
    for _ in 0..3 {
        env.qspool(&["pop"]).expect(3);
    }
    env.push("x");
    assert_eq!(env.pop_raw(), b"x");
}

#[test]
fn a_state_file_cut_short_or_foreign_refills_the_bucket_and_a_link_is_refused() {
    let env = Env::init(&["--rate", "1/h"]);
    env.push("a");
    env.push("b");
    assert_eq!(env.pop_raw(), b"a");
    env.qspool(&["pop"]).fails(3);
    let state = env.spool().join("rate");
    let text = std::fs::read_to_string(&state).unwrap();
    // What a crash in the middle of the write could leave.
    std::fs::write(&state, &text[..text.len() / 2]).unwrap();
    assert_eq!(env.pop_raw(), b"b");
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .starts_with("qspool-rate 1 ")
    );
    env.push("c");
    std::fs::remove_file(&state).unwrap();
    let target = env.scratch().join("target");
    std::fs::write(&target, "keep").unwrap();
    std::os::unix::fs::symlink(&target, &state).unwrap();
    let err = env.qspool(&["pop"]).fails(1);
    assert!(err.contains("rate: a symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    env.qspool(&["stats"]).fails(1);
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    let err = env.qspool(&["pop"]).fails(1);
    assert!(err.contains("rate"), "{err}");
}

#[test]
fn a_holder_of_the_lock_killed_by_sigkill_leaves_the_queue_free() {
    let env = Env::init(&["--rate", "1000/s"]);
    env.push("x");
    let state = env.spool().join("rate");
    std::fs::write(&state, "").unwrap();
    // flock(1) holds the same lock qspool takes, then dies by SIGKILL while holding it (-o:
    // its command does not inherit the lock, so the holder's death is the lock's end).
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&state)
        .args(["sleep", "20"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let waiting = env
        .std_cmd(&["pop"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    holder.kill().unwrap();
    holder.wait().unwrap();
    let o = waiting.wait_with_output().unwrap();
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "x");
}

/// The nanosecond start times the CMDs logged, sorted.
fn starts(log: &std::path::Path) -> Vec<u64> {
    let mut t: Vec<u64> = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    t.sort_unstable();
    t
}

/// The most starts in any window of `window_ms`.
fn most_in_window(t: &[u64], window_ms: u64) -> usize {
    let w = window_ms * 1_000_000;
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..t.len() {
        while t[hi] - t[lo] >= w {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[test]
fn three_workers_share_the_spool_wide_limit() {
    let env = Env::init(&["--rate", "20/s", "--burst", "5"]);
    let bodies: String = (0..300).map(|i| format!("m{i}\n")).collect();
    env.qspool(&["push", "--lines"])
        .stdin(bodies.as_bytes())
        .expect(0);
    let log = env.scratch().join("starts");
    let script = format!("date +%s%N >> {}", log.display());
    let workers: Vec<_> = (0..3)
        .map(|_| {
            env.std_cmd(&["work", "--wait", "-j", "8", "-q", "--", "sh", "-c", &script])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    for w in &workers {
        std::process::Command::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status()
            .unwrap();
    }
    for w in workers {
        w.wait_with_output().unwrap();
    }
    let t = starts(&log);
    let span_ms = (t[t.len() - 1] - t[0]) / 1_000_000;
    // Over the whole run: the rate, plus the burst, plus one start for the edges.
    let allowed = (20 * span_ms / 1000) as usize + 5 + 1;
    assert!(t.len() <= allowed, "{} starts in {span_ms} ms", t.len());
    // And over every second: 20 and the burst (CMDs log a little after their start).
    let peak = most_in_window(&t, 1000);
    assert!(peak <= 20 + 5 + 2, "{peak} starts in one second");
    // The limit is a limit, not a stop: the workers kept close to it.
    assert!(t.len() >= 40, "only {} starts in {span_ms} ms", t.len());
    let s = env.stats();
    assert!(s["rate_limit"]["current_per_second"].as_f64().unwrap() <= 25.0);
}

#[test]
fn work_rate_paces_one_process() {
    let env = Env::new();
    let bodies: String = (0..12).map(|i| format!("m{i}\n")).collect();
    env.qspool(&["push", "--lines"])
        .stdin(bodies.as_bytes())
        .expect(0);
    let log = env.scratch().join("starts");
    let script = format!("date +%s%N >> {}", log.display());
    env.qspool(&[
        "work", "-j", "4", "-q", "--rate", "10/s", "--burst", "2", "--", "sh", "-c", &script,
    ])
    .expect(0);
    let t = starts(&log);
    assert_eq!(t.len(), 12);
    // Two at once, then one per 100 ms: the last of twelve no sooner than 1 s after the first.
    let span_ms = (t[11] - t[0]) / 1_000_000;
    assert!(span_ms >= 950, "12 starts in {span_ms} ms");
    assert!(most_in_window(&t, 300) <= 2 + 3 + 1);
    assert!(env.new_names().is_empty());
}

#[test]
fn junk_after_the_state_line_does_not_lift_the_limit() {
    let env = Env::init(&["--rate", "1/m"]);
    for b in ["a", "b"] {
        env.push(b);
    }
    std::fs::write(env.spool().join("rate"), "x".repeat(200)).unwrap();
    // Junk is a full bucket once, then the limit holds again.
    assert_eq!(env.pop_raw(), b"a");
    env.qspool(&["pop"]).fails(3);
    let text = std::fs::read_to_string(env.spool().join("rate")).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
}

#[test]
fn a_limit_changed_by_init_carries_the_bucket_over_instead_of_refilling_it() {
    let env = Env::init(&["--rate", "1/10s"]);
    for b in ["a", "b", "c"] {
        env.push(b);
    }
    assert_eq!(env.pop_raw(), b"a");
    env.qspool(&["pop"]).fails(3);
    env.qspool(&["init", "--rate", "1/9s"]).expect(0);
    env.qspool(&["pop"]).fails(3);
    // A bigger burst is not a gift of starts either: it fills at the rate.
    env.qspool(&["init", "--rate", "1/9s", "--burst", "50"])
        .expect(0);
    env.qspool(&["pop"]).fails(3);
}

#[test]
fn work_wait_dur_is_not_idle_while_messages_wait_for_the_limit() {
    let env = Env::init(&["--rate", "1/2s"]);
    for b in ["a", "b"] {
        env.push(b);
    }
    // The second start comes 2 s after the first, later than the 1 s idle limit.
    env.qspool(&["work", "--wait=1s", "-q", "--", "true"])
        .expect(0);
    assert!(env.new_names().is_empty(), "{:?}", env.new_names());
    assert_eq!(env.names("done").len(), 2);
}

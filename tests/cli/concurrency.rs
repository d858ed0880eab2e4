//! Many real qspool processes at once: exactly-once draining, concurrent pushers, and fencing
//! of stale receipts.

use crate::harness::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("qspool")
}

/// `qspool --spool SPOOL ARGS...` as a separate process, with `input` on standard input.
fn qspool(spool: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
    let bin = bin();
    let mut c = spool_command(&[bin.as_os_str()], spool, args);
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = c.spawn().expect("spawn qspool");
    if let Some(bytes) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(bytes).unwrap();
    }
    let o = child.wait_with_output().expect("wait for qspool");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for line in err.lines() {
        assert!(line.starts_with("qspool: "), "{args:?}: stderr {err:?}");
    }
    o
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

/// Pushes `bodies` with one `push --lines --no-sync` and returns id -> body.
fn push_lines(env: &Env, bodies: &[String]) -> BTreeMap<String, String> {
    let input = bodies.join("\n") + "\n";
    let o = qspool(
        env.spool(),
        &["push", "--lines", "--no-sync"],
        Some(input.as_bytes()),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let ids: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(ids.len(), bodies.len());
    let map: BTreeMap<String, String> = ids.into_iter().zip(bodies.iter().cloned()).collect();
    assert_eq!(map.len(), bodies.len(), "duplicate ids from one push");
    map
}

/// Runs `workers` threads, each spawning `args` (a pop) until it exits 3; returns every object
/// each process printed, and every exit code seen.
fn drain(spool: &Path, workers: usize, args: &[&str]) -> Vec<Value> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        let o = qspool(spool, args, None);
                        match code(&o) {
                            0 => {
                                let v = parse_lines(&o);
                                assert!(!v.is_empty(), "exit 0 with nothing printed");
                                got.extend(v);
                            }
                            3 => {
                                assert!(o.stdout.is_empty());
                                return got;
                            }
                            c => panic!("{args:?} exited {c}: {}", stderr(&o)),
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread"))
            .collect()
    })
}

fn count(spool: &Path, state: &str) -> usize {
    std::fs::read_dir(spool.join(state)).unwrap().count()
}

fn done_count(spool: &Path) -> usize {
    count(spool, "done")
}

fn check_exactly_once(pushed: &BTreeMap<String, String>, got: &[Value]) {
    let mut seen = BTreeSet::new();
    for v in got {
        let id = v["id"].as_str().unwrap().to_owned();
        assert_eq!(v["attempt"], 1, "{v}");
        assert_eq!(
            v["body"].as_str(),
            pushed.get(&id).map(String::as_str),
            "body of {id}"
        );
        assert!(seen.insert(id.clone()), "{id} delivered twice");
    }
    let missing: Vec<_> = pushed.keys().filter(|id| !seen.contains(*id)).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert_eq!(got.len(), pushed.len());
}

#[test]
fn concurrent_pop_ack_delivers_each_message_exactly_once() {
    let env = Env::init(&[]);
    let bodies: Vec<String> = (0..1200).map(|i| format!("job-{i}")).collect();
    let pushed = push_lines(&env, &bodies);
    assert_eq!(env.stats()["ready"], 1200);
    let got = drain(env.spool(), 6, &["pop", "--json", "--ack"]);
    check_exactly_once(&pushed, &got);
    let s = env.stats();
    assert_eq!(s["done"], 1200, "{s}");
    for k in ["ready", "delayed", "leased", "expired", "dead", "foreign"] {
        assert_eq!(s[k], 0, "{k}: {s}");
    }
}

#[test]
fn concurrent_batched_pops_deliver_each_message_exactly_once() {
    let env = Env::init(&[]);
    let bodies: Vec<String> = (0..1000).map(|i| format!("batch-{i}")).collect();
    let pushed = push_lines(&env, &bodies);
    let got = drain(env.spool(), 5, &["pop", "--json", "-n", "7", "--ack"]);
    check_exactly_once(&pushed, &got);
    assert_eq!(env.stats()["done"], 1000);
    assert_eq!(env.names("done").len(), 1000);
}

#[test]
fn concurrent_pop_then_ack_delivers_each_message_exactly_once() {
    let env = Env::init(&[]);
    let bodies: Vec<String> = (0..400).map(|i| format!("two-step-{i}")).collect();
    let pushed = push_lines(&env, &bodies);
    let spool = env.spool();
    let got: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        let o = qspool(spool, &["pop", "--json", "--lease", "5m"], None);
                        if code(&o) == 3 {
                            return got;
                        }
                        assert_eq!(code(&o), 0, "{}", stderr(&o));
                        let v = parse_lines(&o).remove(0);
                        let r = v["receipt"].as_str().unwrap().to_owned();
                        let a = qspool(spool, &["ack", &r], None);
                        assert_eq!(code(&a), 0, "ack {r}: {}", stderr(&a));
                        got.push(v);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    check_exactly_once(&pushed, &got);
    assert_eq!(env.names("done").len(), 400);
    assert!(env.names("leased").is_empty());
}

#[test]
fn concurrent_pushers_make_unique_ids_and_lose_nothing() {
    let env = Env::init(&[]);
    let spool = env.spool();
    // Six batch pushers, two of them with fsync, and two pushing one message per argument.
    let results: Vec<(Vec<String>, Vec<String>)> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for p in 0..6 {
            handles.push(s.spawn(move || {
                let n = if p < 2 { 50 } else { 200 };
                let bodies: Vec<String> = (0..n).map(|i| format!("p{p}-m{i}")).collect();
                let input = bodies.join("\n") + "\n";
                let args: &[&str] = if p < 2 {
                    &["push", "--lines"]
                } else {
                    &["push", "--lines", "--no-sync"]
                };
                let o = qspool(spool, args, Some(input.as_bytes()));
                assert_eq!(code(&o), 0, "{}", stderr(&o));
                (stdout(&o).lines().map(str::to_owned).collect(), bodies)
            }));
        }
        for p in 6..8 {
            handles.push(s.spawn(move || {
                let bodies: Vec<String> = (0..20).map(|i| format!("p{p}-m{i}")).collect();
                let args: Vec<&str> = std::iter::once("push")
                    .chain(bodies.iter().map(String::as_str))
                    .collect();
                let o = qspool(spool, &args, None);
                assert_eq!(code(&o), 0, "{}", stderr(&o));
                (stdout(&o).lines().map(str::to_owned).collect(), bodies)
            }));
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut pushed = BTreeMap::new();
    for (ids, bodies) in &results {
        assert_eq!(ids.len(), bodies.len());
        for id in ids {
            let parts: Vec<&str> = id.split('.').collect();
            assert_eq!(parts.len(), 5, "{id}");
            assert!(parts[0].len() == 16 && parts[0].bytes().all(|b| b.is_ascii_digit()));
        }
        // One process's ids sort in the order it printed them.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {ids:?}");
        for (id, body) in ids.iter().zip(bodies) {
            assert!(
                pushed.insert(id.clone(), body.clone()).is_none(),
                "duplicate id {id}"
            );
        }
    }
    let total = 2 * 50 + 4 * 200 + 2 * 20;
    assert_eq!(pushed.len(), total);
    assert_eq!(env.stats()["ready"], total as u64);
    assert!(env.names("tmp").is_empty());

    // Every message arrived intact, once: drain it with two consumers.
    let got = drain(spool, 2, &["pop", "--json", "-n", "50", "--ack"]);
    check_exactly_once(&pushed, &got);
}

#[test]
fn concurrent_pushers_and_poppers_together() {
    let env = Env::init(&[]);
    let spool = env.spool();
    let (pushed, got) = std::thread::scope(|s| {
        let pushers: Vec<_> = (0..3)
            .map(|p| {
                s.spawn(move || {
                    let mut pushed = BTreeMap::new();
                    for round in 0..5 {
                        let bodies: Vec<String> =
                            (0..40).map(|i| format!("p{p}-r{round}-{i}")).collect();
                        let input = bodies.join("\n") + "\n";
                        let o = qspool(
                            spool,
                            &["push", "--lines", "--no-sync"],
                            Some(input.as_bytes()),
                        );
                        assert_eq!(code(&o), 0, "{}", stderr(&o));
                        let ids: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
                        assert_eq!(ids.len(), 40);
                        pushed.extend(ids.into_iter().zip(bodies));
                    }
                    pushed
                })
            })
            .collect();
        let poppers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(move || {
                    let mut got = Vec::new();
                    let mut empty_in_a_row = 0;
                    // Keep going through empty moments while pushers are still at work.
                    while empty_in_a_row < 40 {
                        let o = qspool(spool, &["pop", "--json", "-n", "3", "--ack"], None);
                        match code(&o) {
                            0 => {
                                empty_in_a_row = 0;
                                got.extend(parse_lines(&o));
                            }
                            3 => {
                                empty_in_a_row += 1;
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            c => panic!("pop exited {c}: {}", stderr(&o)),
                        }
                    }
                    got
                })
            })
            .collect();
        let mut pushed = BTreeMap::new();
        for h in pushers {
            pushed.extend(h.join().unwrap());
        }
        let got: Vec<Value> = poppers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        (pushed, got)
    });
    // Whatever the poppers missed at the end is still there, exactly once.
    let rest = drain(spool, 1, &["pop", "--json", "-n", "100", "--ack"]);
    let all: Vec<Value> = got.into_iter().chain(rest).collect();
    assert_eq!(pushed.len(), 3 * 5 * 40);
    check_exactly_once(&pushed, &all);
}

#[test]
fn a_stale_consumer_cannot_ack_the_next_consumers_lease() {
    let env = Env::init(&[]);
    let spool = env.spool();
    let id = env.push("contended");
    // Consumer A takes it with a very short lease and is slow.
    let a = qspool(spool, &["pop", "--json", "--lease", "1ms"], None);
    assert_eq!(code(&a), 0);
    let a = parse_lines(&a).remove(0);
    assert_eq!(a["id"], id.as_str());
    assert_eq!(a["attempt"], 1);
    std::thread::sleep(Duration::from_millis(5));
    // Consumer B gets the same message, on its second attempt.
    let b = qspool(spool, &["pop", "--json", "--lease", "1h"], None);
    assert_eq!(code(&b), 0, "{}", stderr(&b));
    let b = parse_lines(&b).remove(0);
    assert_eq!(b["id"], id.as_str());
    assert_eq!(b["attempt"], 2);
    assert_eq!(b["body"], "contended");
    let (ra, rb) = (
        a["receipt"].as_str().unwrap(),
        b["receipt"].as_str().unwrap(),
    );
    assert_ne!(ra, rb);
    // A's ack, requeue, extend and bury all fail and leave B's lease alone.
    for cmd in ["ack", "requeue", "extend", "bury"] {
        let o = qspool(spool, &[cmd, ra], None);
        assert_eq!(code(&o), 4, "{cmd}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1);
        assert_eq!(env.names("leased"), vec![rb.to_owned()], "{cmd}");
    }
    assert!(env.names("done").is_empty());
    // B's ack succeeds.
    let o = qspool(spool, &["ack", rb], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let done = env.names("done");
    assert_eq!(done.len(), 1);
    assert!(done[0].starts_with(&format!("{id},a2,")), "{done:?}");
    // And after that, A is still stale.
    assert_eq!(code(&qspool(spool, &["ack", ra], None)), 4);
}

#[test]
fn racing_acks_and_reclaims_finish_each_message_exactly_once() {
    // Every fourth delivery, a consumer stalls past its lease before acking, so others reclaim
    // and re-deliver the message behind its back (usually; at the very end nobody may be left
    // to). Whoever wins, each message ends in done/ exactly once, every ack that loses exits 4,
    // and no two acks succeed for one message.
    let env = Env::init(&["--max-attempts", "1000"]);
    let bodies: Vec<String> = (0..120).map(|i| format!("race-{i}")).collect();
    let pushed = push_lines(&env, &bodies);
    let total = pushed.len();
    let spool = env.spool();
    let (acked, stale): (Vec<String>, usize) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut acked = Vec::new();
                    let mut stale = 0;
                    for n in 0.. {
                        let o = qspool(spool, &["pop", "--json", "--lease", "100ms"], None);
                        if code(&o) == 3 {
                            // Keep polling (and so reclaiming) until every message is done; a
                            // dead-lettered one would never be, and fails the checks below.
                            if done_count(spool) == total || count(spool, "dead") > 0 {
                                return (acked, stale);
                            }
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        // On a loaded machine a 100 ms lease can run out before pop has
                        // read the payload: pop then says so (exit 4) and someone else gets
                        // the message.
                        if code(&o) == 4 {
                            assert!(stderr(&o).contains("lease expired"), "{}", stderr(&o));
                            continue;
                        }
                        assert_eq!(code(&o), 0, "{}", stderr(&o));
                        let v = parse_lines(&o).remove(0);
                        let r = v["receipt"].as_str().unwrap();
                        if n % 4 == 3 {
                            std::thread::sleep(Duration::from_millis(150));
                        }
                        let a = qspool(spool, &["ack", r], None);
                        match code(&a) {
                            0 => acked.push(v["id"].as_str().unwrap().to_owned()),
                            4 => stale += 1,
                            c => panic!("ack exited {c}: {}", stderr(&a)),
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).fold(
            (Vec::new(), 0),
            |(mut a, s), (a2, s2)| {
                a.extend(a2);
                (a, s + s2)
            },
        )
    });
    // Everything is finished: nothing left anywhere else.
    let s = env.stats();
    for k in ["ready", "delayed", "leased", "expired", "dead", "foreign"] {
        assert_eq!(s[k], 0, "{k}: {s} ({stale} stale acks)");
    }
    let mut seen = BTreeSet::new();
    for id in &acked {
        assert!(seen.insert(id.clone()), "{id} acked twice");
    }
    assert_eq!(seen, pushed.keys().cloned().collect::<BTreeSet<_>>());
    let done_ids: Vec<String> = env
        .names("done")
        .iter()
        .map(|n| n.split(',').next().unwrap().to_owned())
        .collect();
    assert_eq!(done_ids.len(), pushed.len());
    assert_eq!(
        done_ids.into_iter().collect::<BTreeSet<_>>(),
        seen,
        "done/ holds each message once"
    );
}

/// A synced push whose messages are leased, and their emptied buckets removed, by busy consumers
/// before its commit must still succeed and print every id: the commit fsyncs the directories it
/// holds open, not their paths.
#[test]
fn synced_pushes_succeed_while_consumers_empty_their_buckets() {
    let env = Env::init(&[]);
    let spool = env.spool().to_path_buf();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let spool = spool.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut got = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let o = qspool(&spool, &["pop", "--ack"], None);
                    match code(&o) {
                        0 => got += 1,
                        3 => {}
                        c => panic!("pop exited {c}"),
                    }
                }
                got
            })
        })
        .collect();
    let mut pushed = 0usize;
    for round in 0..15 {
        let input: String = (0..40).map(|i| format!("r{round}m{i}\n")).collect();
        let o = qspool(&spool, &["push", "--lines"], Some(input.as_bytes()));
        assert_eq!(
            code(&o),
            0,
            "round {round}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).lines().count(),
            40,
            "round {round}"
        );
        for i in 0..5 {
            let o = qspool(&spool, &["push", &format!("single {round}.{i}")], None);
            assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
        }
        pushed += 45;
    }
    // Let the consumers drain what is left, then stop them.
    let ready = |spool: &Path| {
        let o = qspool(spool, &["stats", "--json"], None);
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["ready"]
            .as_u64()
            .unwrap()
    };
    while ready(&spool) > 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let got: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(got, pushed);
    assert_eq!(done_count(&spool), pushed);
}

/// Pushes on a slow disk (every fsync made 30 ms slower with strace's fault injection) still
/// succeed while consumers poll the queue: a fresh bucket level is never removed under a pusher
/// that is still making it. Needs strace; `.ci/run` installs it.
#[test]
fn slow_fsyncs_do_not_make_pushes_lose_their_bucket() {
    if !strace_works("slow_fsyncs_do_not_make_pushes_lose_their_bucket") {
        return;
    }
    let env = Env::init(&[]);
    let spool = env.spool().to_path_buf();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let (spool, stop) = (spool.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let o = qspool(&spool, &["pop", "--ack"], None);
                    assert!(matches!(code(&o), 0 | 3), "pop exited {}", code(&o));
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    for i in 0..8 {
        let o = Command::new("strace")
            .args(["-f", "-o", "/dev/null", "-e", "trace=fsync", "-e"])
            .arg("inject=fsync:delay_exit=30000")
            .arg(bin())
            .arg("--spool")
            .arg(&spool)
            .args(["push", &format!("slow {i}")])
            .output()
            .unwrap();
        if !o.status.success() || o.stdout.is_empty() {
            failures.push(String::from_utf8_lossy(&o.stderr).into_owned());
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in consumers {
        c.join().unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of 8 pushes failed: {failures:?}",
        failures.len()
    );
    let s = env.stats();
    assert_eq!(
        s["ready"].as_u64().unwrap() + s["done"].as_u64().unwrap(),
        8,
        "{s}"
    );
}

//! `qspool work` on a JetStream queue: the same runs, settlements, summaries and exit codes as
//! on a directory, with heartbeats, lost leases, shutdown, waiting and a server restart.

use crate::harness::{lines, parse_lines, stderr, stdout};
use crate::nats_server::{Js, Running};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `qspool --spool URL work OPTS -- sh -c SCRIPT sh`.
fn work(js: &Js, opts: &[&str], script: &str) -> Command {
    let mut c = js.std_cmd(&[&["work"], opts, &["--", "sh", "-c", script, "sh"]].concat());
    c.stdin(Stdio::null());
    c
}

fn run(js: &Js, opts: &[&str], script: &str) -> std::process::Output {
    work(js, opts, script).output().unwrap()
}

fn push(js: &Js, body: &str) -> String {
    lines(&js.q(&["push", body]).expect(0)).remove(0)
}

fn stats(js: &Js) -> Value {
    serde_json::from_str(&stdout(&js.q(&["stats", "--json"]).expect(0))).unwrap()
}

fn counts(js: &Js) -> (u64, u64, u64) {
    let s = stats(js);
    let n = |k: &str| s[k].as_u64().unwrap();
    (n("ready"), n("leased"), n("dead"))
}

fn spawn_piped(mut c: Command) -> Running {
    Running(Some(
        c.stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    ))
}

/// Polls `cond` every 20 ms for up to `limit`.
fn eventually(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let until = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < until, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_exit_0_acks_each_message_after_cmd_read_its_payload_and_environment() {
    let Some(js) = Js::start("work_ack", &[]) else {
        return;
    };
    let a = push(&js, "first");
    let b = lines(&js.q(&["push"]).stdin(b"second\0with a NUL").expect(0)).remove(0);
    let log = js.env.scratch().join("log");
    let script = r#"{ printf '%s %s %s %s ' "$QSPOOL_ID" "$QSPOOL_ATTEMPT" "$QSPOOL_SPOOL" "$(stat -L -c %F /dev/stdin)"; od -An -c; } >> "$0.log"; cat /dev/stdin >/dev/null"#;
    let script = script.replace("$0.log", log.to_str().unwrap());
    let out = run(&js, &[], &script);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let said: Vec<&str> = err.lines().collect();
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(said[0].starts_with(&format!("qspool: {a} attempt 1: exit 0 after ")));
    assert!(said[0].ends_with("; acked"), "{said:?}");
    assert!(said[1].starts_with(&format!("qspool: {b} attempt 1: exit 0 after ")));
    assert_eq!(said[2], "qspool: work: 2 runs: 2 acked");
    let log = std::fs::read_to_string(&log).unwrap();
    let runs: Vec<&str> = log.lines().collect();
    assert!(
        runs[0].starts_with(&format!("{a} 1 {} regular file ", js.url)),
        "CMD reads a regular file and gets the queue's address: {runs:?}"
    );
    assert!(runs[0].contains("f   i   r   s   t"), "{runs:?}");
    assert!(log.contains("\\0"), "the payload's bytes are exact: {log}");
    assert_eq!(counts(&js), (0, 0, 0));
    // Nothing left: a second run says so and exits 0, as on a directory.
    let out = run(&js, &[], "exit 0");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out).trim_end(), "qspool: work: nothing to run");
}

#[test]
fn a_cmd_cannot_write_to_the_payload_it_reads() {
    let Some(js) = Js::start("work_sealed", &["--max-attempts", "2"]) else {
        return;
    };
    push(&js, "original");
    // The first attempt tries to overwrite its input and fails; the second reads it.
    let log = js.env.scratch().join("log");
    let script = format!(
        r#"echo changed >/proc/self/fd/0 2>/dev/null; printf 'x' >&0 2>/dev/null; cat >> {}; echo >> {}; [ "$QSPOOL_ATTEMPT" = 2 ]"#,
        log.display(),
        log.display()
    );
    let out = run(&js, &["--backoff", "0s", "--wait=3s"], &script);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "original\noriginal\n"
    );
}

#[test]
fn failures_are_retried_with_backoff_and_exit_100_and_the_last_attempt_go_to_the_dead_letters() {
    let Some(js) = Js::start("work_fail", &["--max-attempts", "3"]) else {
        return;
    };
    let fail = push(&js, "fail");
    let perm = push(&js, "perm");
    let ok = push(&js, "ok");
    let script = r#"case "$(cat)" in fail) exit 1;; perm) exit 100;; *) exit 0;; esac"#;
    let started = Instant::now();
    let out = run(
        &js,
        &["--wait=2s", "--backoff", "300ms", "--backoff-max", "400ms"],
        script,
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    for want in [
        format!("qspool: {fail} attempt 1: exit 1 after "),
        format!("qspool: {fail} attempt 2: exit 1 after "),
        format!("qspool: {fail} attempt 3: exit 1 after "),
        format!("qspool: {perm} attempt 1: exit 100 after "),
        format!("qspool: {ok} attempt 1: exit 0 after "),
    ] {
        assert!(err.contains(&want), "{want}\n{err}");
    }
    assert!(err.contains("; requeued, retry in 300ms"), "{err}");
    assert!(err.contains("; requeued, retry in 400ms"), "the cap: {err}");
    assert!(
        err.contains("; dead-lettered after its last attempt (3)"),
        "{err}"
    );
    assert!(err.contains("; dead-lettered (permanent failure)"), "{err}");
    assert!(
        err.trim_end()
            .ends_with("work: 5 runs: 1 acked, 2 requeued, 2 dead-lettered"),
        "{err}"
    );
    // The two retries waited for their backoff on the server.
    assert!(started.elapsed() >= Duration::from_millis(700));
    let dead = stdout(&js.q(&["list", "dead"]).expect(0));
    assert!(dead.contains(&fail) && dead.contains(&perm), "{dead}");
    assert_eq!(counts(&js), (0, 0, 2));
}

#[test]
fn a_cmd_slower_than_its_lease_keeps_it_and_runs_once_among_several_workers() {
    let Some(js) = Js::start("work_slow", &["--lease", "2s"]) else {
        return;
    };
    push(&js, "slow");
    let log = js.env.scratch().join("runs");
    let script = format!("echo \"$QSPOOL_ID\" >> {}; sleep 5", log.display());
    let workers: Vec<Running> = (0..3)
        .map(|_| spawn_piped(work(&js, &["--wait=7s"], &script)))
        .collect();
    let outs: Vec<std::process::Output> =
        workers.into_iter().map(Running::wait_with_output).collect();
    let runs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(runs.lines().count(), 1, "ran more than once: {runs}");
    let acked: Vec<&std::process::Output> = outs
        .iter()
        .filter(|o| stderr(o).contains("work: 1 run: 1 acked"))
        .collect();
    assert_eq!(
        acked.len(),
        1,
        "{:?}",
        outs.iter().map(stderr).collect::<Vec<_>>()
    );
    assert!(outs.iter().all(|o| o.status.code() == Some(0)));
    assert_eq!(counts(&js), (0, 0, 0));
}

#[test]
fn a_worker_that_loses_its_lease_stops_cmd_and_leaves_the_message_to_its_new_holder() {
    let Some(js) = Js::start("work_lost", &["--lease", "1s"]) else {
        return;
    };
    let id = push(&js, "stolen");
    let mut w = spawn_piped(work(&js, &["--grace", "5s"], "sleep 30"));
    let pid = w.child().id().to_string();
    // Held by heartbeats, then frozen past its lease: the server hands the message on.
    eventually(Duration::from_secs(5), "the message is leased", || {
        counts(&js).1 == 1
    });
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let taken = js.q(&["pop", "--json", "--wait=10s"]).expect(0);
    let v = &parse_lines(&taken)[0];
    assert_eq!(
        (v["id"].as_str(), v["attempt"].as_u64()),
        (Some(id.as_str()), Some(2))
    );
    // The new holder settles it while the old one is frozen; the old one never does.
    js.q(&["ack", v["receipt"].as_str().unwrap()]).expect(0);
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = w.wait_with_output();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    let said: Vec<&str> = err.lines().collect();
    assert!(
        said[0].starts_with(&format!("qspool: {id} attempt 1: lease lost after ")),
        "{said:?}"
    );
    assert!(
        said[1].ends_with("; its lease was lost, so the message was left to its new holder"),
        "{said:?}"
    );
    assert_eq!(said[2], "qspool: work: 1 run: 0 acked, 1 lease lost");
    assert_eq!(counts(&js), (0, 0, 0));
}

#[test]
fn sigterm_stops_cmd_and_gives_its_message_back_at_once() {
    let Some(js) = Js::start("work_sigterm", &["--lease", "30s"]) else {
        return;
    };
    let id = push(&js, "long");
    let mut w = spawn_piped(work(&js, &["--wait"], "sleep 30"));
    eventually(Duration::from_secs(5), "the message is leased", || {
        counts(&js).1 == 1
    });
    let pid = w.child().id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = w.wait_with_output();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{id} attempt 1: killed by SIGTERM after "))
            && err.contains(": stopped at shutdown; requeued"),
        "{err}"
    );
    assert!(
        err.trim_end()
            .ends_with("work: 1 run: 0 acked, 1 stopped at shutdown")
    );
    // Back at once, not after the 30 s lease.
    let v = &parse_lines(&js.q(&["pop", "--json"]).expect(0))[0];
    assert_eq!(
        (v["id"].as_str(), v["attempt"].as_u64()),
        (Some(id.as_str()), Some(2))
    );
}

#[test]
fn a_waiting_worker_runs_what_is_pushed_and_leaves_nothing_behind_when_it_ends() {
    let Some(js) = Js::start("work_wait", &["--lease", "30s"]) else {
        return;
    };
    let dir = js.env.scratch().join("runs");
    std::fs::create_dir(&dir).unwrap();
    let script = format!("cat > {}/\"$QSPOOL_ID\"", dir.display());
    let w = spawn_piped(work(&js, &["--wait=1500ms", "-j", "2"], &script));
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        push(&js, &format!("late{i}"));
    }
    let out = w.wait_with_output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("work: 5 runs: 5 acked"),
        "{}",
        stderr(&out)
    );
    let mut runs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    runs.sort();
    assert_eq!(runs, ["late0", "late1", "late2", "late3", "late4"]);
    // The pull request it held open while idle is gone with it: the next message goes to the
    // next consumer at once, on its first attempt.
    let id = push(&js, "after");
    let v = &parse_lines(&js.q(&["pop", "--json"]).expect(0))[0];
    assert_eq!(
        (v["id"].as_str(), v["attempt"].as_u64()),
        (Some(id.as_str()), Some(1))
    );
}

#[test]
fn n_and_j_bound_the_runs_and_the_rest_stay_queued() {
    let Some(js) = Js::start("work_n", &[]) else {
        return;
    };
    for i in 0..10 {
        push(&js, &format!("m{i}"));
    }
    let out = run(&js, &["-n", "4", "-j", "3"], "exit 0");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("work: 4 runs: 4 acked"),
        "{}",
        stderr(&out)
    );
    // Leased in a batch for -j 3, -n still holds: nothing is left leased by the worker.
    assert_eq!(counts(&js), (6, 0, 0));
    // And none of them was leased past -n: each runs on its first attempt.
    let rest = run(&js, &[], "exit 0");
    let err = stderr(&rest);
    assert!(err.contains("work: 6 runs: 6 acked"), "{err}");
    assert_eq!(err.matches(" attempt 1: exit 0 ").count(), 6, "{err}");
}

#[test]
fn a_cmd_that_cannot_be_started_gives_its_message_back_at_once() {
    let Some(js) = Js::start("work_nocmd", &["--max-attempts", "2", "--lease", "30s"]) else {
        return;
    };
    let id = push(&js, "m");
    let out = js
        .std_cmd(&["work", "--", "/nonexistent/cmd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "run \"/nonexistent/cmd\" for {id} (given back untouched)"
        )),
        "{err}"
    );
    // Back at once, not after its lease. The server has counted the delivery: on JetStream
    // the next holder sees attempt 2 (docs/JETSTREAM.md).
    let v = &parse_lines(&js.q(&["pop", "--json"]).expect(0))[0];
    assert_eq!(
        (v["id"].as_str(), v["attempt"].as_u64()),
        (Some(id.as_str()), Some(2))
    );
}

#[test]
fn four_workers_on_400_messages_run_each_exactly_once() {
    let Some(js) = Js::start("work_four", &["--lease", "60s"]) else {
        return;
    };
    let input: String = (0..400).map(|i| format!("m{i:03}\n")).collect();
    let ids = lines(&js.q(&["push", "--lines"]).stdin(input.as_bytes()).expect(0));
    assert_eq!(ids.len(), 400);
    let dir = js.env.scratch().join("runs");
    std::fs::create_dir(&dir).unwrap();
    // One file per run, named by worker and id: no shared writes to race.
    let script = format!("cat > {}/\"$QSPOOL_ID.$PPID.$$\"", dir.display());
    let workers: Vec<Running> = (0..4)
        .map(|_| spawn_piped(work(&js, &["-j", "4"], &script)))
        .collect();
    for w in workers {
        let out = w.wait_with_output();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let id = name.split('.').take(5).collect::<Vec<_>>().join(".");
        *runs.entry(id).or_default() += 1;
    }
    assert_eq!(runs.len(), 400, "every message ran");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "ran twice: {twice:?}");
    assert_eq!(counts(&js), (0, 0, 0));
}

#[test]
fn a_waiting_worker_rides_out_a_server_restart() {
    let Some(mut js) = Js::start("work_restart", &["--lease", "5s"]) else {
        return;
    };
    let log = js.env.scratch().join("runs");
    let script = format!("cat >> {}; echo >> {}", log.display(), log.display());
    let mut w = spawn_piped(work(&js, &["--wait"], &script));
    push(&js, "before");
    eventually(Duration::from_secs(5), "the first message ran", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("before"))
    });
    js.server.kill();
    std::thread::sleep(Duration::from_millis(500));
    js.server.restart();
    eventually(Duration::from_secs(20), "a push after the restart", || {
        js.q(&["push", "after"]).output().status.success()
    });
    eventually(
        Duration::from_secs(40),
        "the message pushed after the restart ran",
        || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("after")),
    );
    let pid = w.child().id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = w.wait_with_output();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("work: 2 runs: 2 acked"), "{err}");
}

#[test]
fn work_without_wait_on_an_unreachable_server_fails_in_one_line() {
    let Some(mut js) = Js::start("work_down", &[]) else {
        return;
    };
    js.server.kill();
    let out = run(&js, &[], "exit 0");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn work_lease_is_refused_on_jetstream() {
    let Some(js) = Js::start("work_lease", &[]) else {
        return;
    };
    push(&js, "m");
    let line = run(&js, &["--lease", "5m"], "exit 0");
    assert_eq!(line.status.code(), Some(2));
    assert!(stderr(&line).contains("work --lease: not served on a JetStream queue"));
    assert_eq!(counts(&js), (1, 0, 0));
}

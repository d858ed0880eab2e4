//! `qspool relay`: a local spool forwarded to a JetStream queue on a real nats-server, through
//! server crashes, relay crashes and SIGTERM: nothing lost, nothing twice in the queue.

use crate::harness::{Env, lines, parse_lines, stderr, stdout};
use crate::nats_server::{Js, raw, spawn};
use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A local spool with `n` messages `m0000…`, and their ids in push order.
fn outbox(n: usize) -> (Env, Vec<String>) {
    let env = Env::init(&[]);
    let input: String = (0..n).map(|i| format!("m{i:05}\n")).collect();
    let ids = lines(
        &env.qspool(&["push", "--lines"])
            .stdin(input.as_bytes())
            .expect(0),
    );
    assert_eq!(ids.len(), n);
    (env, ids)
}

fn relay(js: &Js, local: &Env, extra: &[&str]) -> std::process::Command {
    let mut c = raw(
        &["--spool", local.spool().to_str().unwrap()],
        &[&["relay", "--to", &js.url], extra].concat(),
    );
    c.stdin(Stdio::null());
    c
}

/// Every message of the remote queue, drained: (id, body) in queue order.
fn drain_remote(js: &Js) -> Vec<(String, String)> {
    let mut got = Vec::new();
    loop {
        let out = js.q(&["pop", "--json", "-n", "500", "--ack"]).output();
        match out.status.code() {
            Some(3) => return got,
            Some(0) => {}
            other => panic!("pop exited {other:?}: {}", stderr(&out)),
        }
        for v in parse_lines(&out) {
            got.push((
                v["id"].as_str().unwrap().to_owned(),
                v["body"].as_str().unwrap().to_owned(),
            ));
        }
    }
}

fn remote_count(js: &Js) -> u64 {
    let s: serde_json::Value =
        serde_json::from_str(&stdout(&js.q(&["stats", "--json"]).expect(0))).unwrap();
    s["ready"].as_u64().unwrap() + s["leased"].as_u64().unwrap()
}

/// Asserts the remote queue holds exactly the local messages, each once, with their ids.
fn assert_exactly(js: &Js, ids: &[String]) {
    assert_eq!(
        remote_count(js),
        ids.len() as u64,
        "messages in the remote stream"
    );
    let got = drain_remote(js);
    let unique: BTreeSet<&str> = got.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(
        unique.len(),
        got.len(),
        "a message is twice in the remote queue"
    );
    let want: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(
        unique, want,
        "the remote queue holds other messages than the local ones"
    );
}

fn local_counts(local: &Env) -> (u64, u64, u64, u64) {
    let s = local.stats();
    let n = |k: &str| s[k].as_u64().unwrap();
    (n("ready"), n("leased") + n("expired"), n("done"), n("dead"))
}

#[test]
fn relay_forwards_each_message_once_with_its_id_then_acks_it_locally() {
    let Some(js) = Js::start("relay_basic", &[]) else {
        return;
    };
    let (local, ids) = outbox(300);
    let out = relay(&js, &local, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("relayed 300 messages"), "{err}");
    assert_eq!(local_counts(&local), (0, 0, 300, 0));
    // Order and bytes are kept, and the id is the local one.
    let got = drain_remote(&js);
    let want: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), format!("m{i:05}")))
        .collect();
    assert_eq!(got, want);
    // Nothing to relay: exit 0, --quiet says nothing.
    let out = relay(&js, &local, &["--quiet"]).output().unwrap();
    assert_eq!((out.status.code(), stderr(&out)), (Some(0), String::new()));
}

#[test]
fn a_relay_republishing_after_a_crash_is_dropped_by_the_duplicate_window() {
    let Some(js) = Js::start("relay_dedup", &[]) else {
        return;
    };
    let (local, ids) = outbox(50);
    relay(&js, &local, &["--quiet"]).output().unwrap();
    // As if the relay had died between the PubAcks and the local acks: the same messages,
    // same ids, ready again.
    assert_eq!(
        lines(&local.qspool(&["replay", "--done", "--all"]).expect(0)).len(),
        50
    );
    let again = &local;
    let out = relay(&js, again, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("relayed 50 messages"),
        "{}",
        stderr(&out)
    );
    assert_exactly(&js, &ids);
}

#[test]
fn an_unreachable_server_keeps_the_messages_local_and_uncounted() {
    let Some(mut js) = Js::start("relay_unreachable", &[]) else {
        return;
    };
    let (local, ids) = outbox(100);
    js.server.kill();
    let out = relay(&js, &local, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("stay in"), "{err}");
    assert_eq!(local_counts(&local), (100, 0, 0, 0));
    // No attempt was counted: the next pop of a message would be its first.
    js.server.restart();
    let out = relay(&js, &local, &["-j", "7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(local_counts(&local), (0, 0, 100, 0));
    let attempts: BTreeSet<u64> = std::fs::read_dir(local.spool().join("done"))
        .unwrap()
        .map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.split(",a")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(
        attempts,
        BTreeSet::from([1]),
        "a relay through an outage counts one attempt"
    );
    assert_exactly(&js, &ids);
    let line = raw(
        &["--spool", local.spool().to_str().unwrap()],
        &["relay", "--to", "/tmp/x"],
    )
    .output()
    .unwrap();
    assert_eq!(line.status.code(), Some(2));
    let line = raw(&["--spool", &js.url], &["relay", "--to", &js.url])
        .output()
        .unwrap();
    assert_eq!(line.status.code(), Some(2));
}

/// Waits for the relay's stderr to say `what`, up to `limit`.
fn wait_for(child: &mut Child, limit: Duration, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(child.try_wait().unwrap().is_none(), "relay exited early");
        assert!(t.elapsed() < limit, "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_server_killed_twice_during_a_relay_loses_nothing_and_duplicates_nothing() {
    let Some(mut js) = Js::start("relay_server_kills", &["--dedup-window", "1h"]) else {
        return;
    };
    let (local, ids) = outbox(5000);
    let errlog = local.scratch().join("relay.err");
    let mut c = relay(&js, &local, &["--wait", "-j", "64"]);
    c.stderr(std::fs::File::create(&errlog).unwrap());
    let mut child = spawn(c);
    for round in 0..2 {
        // Let some of the backlog through, then crash the server in the middle of it.
        let start = local_counts(&local).2;
        wait_for(child.child(), Duration::from_secs(60), || {
            local_counts(&local).2 >= start + 600
        });
        js.server.kill();
        std::thread::sleep(Duration::from_millis(700));
        js.server.restart();
        eprintln!("round {round}: server restarted");
    }
    wait_for(child.child(), Duration::from_secs(120), || {
        local_counts(&local).2 == 5000
    });
    os_kill(child.child(), "TERM");
    let out = child.wait_with_output();
    assert_eq!(out.status.code(), Some(0));
    let err = std::fs::read_to_string(&errlog).unwrap();
    let outages = err.lines().filter(|l| l.contains("relay retries")).count();
    assert!((1..=2).contains(&outages), "one line per outage: {err}");
    assert_eq!(local_counts(&local), (0, 0, 5000, 0), "{err}");
    assert_exactly(&js, &ids);
}

#[test]
fn a_relay_killed_at_random_points_loses_nothing_and_duplicates_nothing() {
    let Some(js) = Js::start("relay_kills", &["--dedup-window", "1h"]) else {
        return;
    };
    // Leases short enough that a killed relay's messages come back within the test.
    let (local, ids) = outbox(3000);
    raw(
        &["--spool", local.spool().to_str().unwrap()],
        &["init", "--lease", "1s"],
    )
    .output()
    .unwrap();
    let mut seed = 0x9e37_79b9_u64;
    for run in 0..6 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let after = Duration::from_millis(30 + (seed >> 33) % 250);
        let mut c = relay(&js, &local, &["--wait", "-j", "32", "--quiet"]);
        c.stderr(Stdio::null());
        let child = spawn(c);
        std::thread::sleep(after);
        drop(child);
        eprintln!(
            "run {run}: killed after {after:?}, local {:?}",
            local_counts(&local)
        );
    }
    // The killed runs' leases expire, and a last relay carries the rest.
    std::thread::sleep(Duration::from_millis(1200));
    let out = relay(&js, &local, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (ready, leased, done, dead) = local_counts(&local);
    assert_eq!((ready, leased, dead), (0, 0, 0));
    assert_eq!(done, 3000);
    assert_exactly(&js, &ids);
}

#[test]
fn sigterm_stops_a_waiting_relay_cleanly() {
    let Some(js) = Js::start("relay_sigterm", &[]) else {
        return;
    };
    let (local, ids) = outbox(2000);
    let mut c = relay(&js, &local, &["--wait", "-j", "16"]);
    c.stderr(Stdio::piped());
    let mut child = spawn(c);
    wait_for(child.child(), Duration::from_secs(60), || {
        local_counts(&local).2 >= 200
    });
    os_kill(child.child(), "TERM");
    let out = child.wait_with_output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (ready, leased, done, _) = local_counts(&local);
    assert_eq!(leased, 0, "a stopped relay holds no lease");
    assert_eq!(ready + done, 2000);
    assert_eq!(
        remote_count(&js),
        done,
        "what was acked locally is exactly what the server has"
    );
    // The rest goes with the next run; --wait=IDLE ends it once idle.
    let t = Instant::now();
    let out = relay(&js, &local, &["--wait=300ms"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_exactly(&js, &ids);
}

fn os_kill(child: &Child, sig: &str) {
    let st = std::process::Command::new("kill")
        .args(["-s", sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_message_the_server_refuses_does_not_block_the_outbox() {
    let Some(js) = Js::start("relay_poison", &[]) else {
        return;
    };
    let local = Env::init(&["--max-attempts", "2"]);
    local.qspool(&["push", "small-1"]).expect(0);
    // Over the server's 1 MiB max_payload.
    let big = local.scratch().join("big");
    std::fs::write(&big, vec![b'x'; 2 << 20]).unwrap();
    local
        .qspool(&["push", "--file", big.to_str().unwrap()])
        .expect(0);
    local.qspool(&["push", "small-2", "small-3"]).expect(0);
    let out = relay(&js, &local, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("relayed 3 messages") && err.contains("1 could not be relayed"),
        "{err}"
    );
    assert_eq!(remote_count(&js), 3);
    // Counted: after its attempts it is dead locally, never relayed, never blocking.
    let st = local.stats();
    let n = |k: &str| st[k].as_u64().unwrap();
    assert_eq!(
        (
            n("ready") + n("delayed") + n("dead"),
            n("leased"),
            n("done")
        ),
        (1, 0, 3),
        "{st}"
    );
    assert_eq!(n("dead"), 0, "one failure is one attempt of two");
}

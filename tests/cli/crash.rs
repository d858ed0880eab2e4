//! Crashes and contention: many consumers, SIGKILLed holders, a kill at every syscall, clock
//! jumps, fencing of stale receipts and broken pipelines, each judged by the history checker.

use crate::checker::{History, Verdict, drain, drain_via};
use crate::harness::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether `tool` is installed and works here (strace may be refused ptrace in a container).
/// Without it the test is skipped, saying why, unless QSPOOL_TEST_NEEDS_ROOT_TOOLS=1 demands
/// it.
fn need(tool: &str) -> bool {
    let demanded = std::env::var("QSPOOL_TEST_NEEDS_ROOT_TOOLS").is_ok_and(|v| v == "1");
    let probe: &[&str] = match tool {
        "strace" => &["strace", "-qq", "-o", "/dev/null", "true"],
        "faketime" => &["faketime", "-f", "+1h", "true"],
        _ => &["sh", "-c", "command -v \"$0\"", tool],
    };
    let works = Command::new(probe[0])
        .args(&probe[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        assert!(
            !demanded,
            "{tool} is needed and does not work here (QSPOOL_TEST_NEEDS_ROOT_TOOLS=1)"
        );
        eprintln!("skipped: {tool} is not installed or does not work here");
    }
    works
}

// ---------------------------------------------------------------------------------------------
// The checker itself must fail on bad runs: fabricated histories and spools, one fault each.

const ID1: &str = "1795827100046042.9031.00000000.aea750d7.vm";
const ID2: &str = "1795827100046043.9031.00000001.aea750d8.vm";

/// A spool skeleton with no messages, and a history beside it.
fn fake() -> (tempfile::TempDir, PathBuf, std::sync::Arc<History>) {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    for d in ["tmp", "new", "leased", "done", "dead"] {
        std::fs::create_dir_all(spool.join(d)).unwrap();
    }
    let h = History::new(dir.path());
    (dir, spool, h)
}

fn put(spool: &Path, rel: &str, body: &[u8]) {
    let p = spool.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

fn done_name(id: &str) -> String {
    format!("done/{id},a1,f1795827100100")
}

/// A clean run of two messages, the base that each bad case changes in one way.
fn clean_run() -> (tempfile::TempDir, PathBuf, std::sync::Arc<History>) {
    let (dir, spool, h) = fake();
    for (id, body) in [(ID1, b"one"), (ID2, b"two")] {
        h.push_attempt(body);
        h.push_ok(id, body);
        h.delivered("c1", id, 1, body);
        h.acked("c1", id);
        put(&spool, &done_name(id), body);
    }
    (dir, spool, h)
}

#[test]
fn checker_passes_a_clean_run_and_an_explained_duplicate() {
    let (_d, spool, h) = clean_run();
    let v = h.check(&spool);
    v.assert_ok();
    assert_eq!((v.pushed, v.delivered, v.duplicates), (2, 2, 0));
    // A redelivery after the first holder's lease ended is a duplicate, but an explained one;
    // so is a message whose push outcome was unknown turning up, and a tmp/ leftover of it.
    h.lease_ended("c1", ID1, "killed");
    h.delivered("c2", ID1, 2, b"one");
    h.push_attempt(b"three");
    put(
        &spool,
        "dead/1795827100046044.9031.00000002.aea750d9.vm,a5,f1795827100100",
        b"three",
    );
    h.push_attempt(b"four");
    put(
        &spool,
        "tmp/1795827100046045.9031.00000003.aea750da.vm,a0,v1795827100100",
        b"fo",
    );
    let v = h.check(&spool);
    v.assert_ok();
    assert_eq!(v.duplicates, 1);
    assert_eq!(v.explained, vec![(ID1.to_owned(), "killed".to_owned())]);
    assert_eq!(v.tmp_leftovers.len(), 1);
}

/// Asserts that the verdict fails, and names `what` in its failures.
fn assert_fails(v: &Verdict, what: &str) {
    let f = v.failures();
    assert!(f.iter().any(|l| l.starts_with(what)), "{what}: {f:?}");
    let r = std::panic::catch_unwind(|| v.assert_ok());
    assert!(r.is_err(), "assert_ok passed on {what}");
}

#[test]
fn checker_reports_a_lost_message() {
    let (_d, spool, h) = clean_run();
    std::fs::remove_file(spool.join(done_name(ID2))).unwrap();
    // Still ready, never delivered: not finished, so lost.
    let (_d2, spool2, h2) = fake();
    h2.push_attempt(b"x");
    h2.push_ok(ID1, b"x");
    put(
        &spool2,
        &format!("new/1795827/100/100/{ID1},a0,v1795827100100"),
        b"x",
    );
    let v = h2.check(&spool2);
    assert_fails(&v, "lost");
    // Acked per the history but gone from done/: the ack is taken as the end of it.
    h.check(&spool).assert_ok();
    // Gone without an ack.
    let (_d3, spool3, h3) = fake();
    h3.push_attempt(b"y");
    h3.push_ok(ID2, b"y");
    h3.delivered("c", ID2, 1, b"y");
    let v = h3.check(&spool3);
    assert_fails(&v, "lost");
    assert_eq!(v.lost.len(), 1);
}

#[test]
fn checker_reports_an_unexpected_delivery() {
    let (_d, spool, h) = clean_run();
    h.delivered(
        "c3",
        "1795827100046099.9031.00000009.aea750ff.vm",
        1,
        b"never",
    );
    assert_fails(&h.check(&spool), "unexpected");
    // A known id delivered with another message's body.
    let (_d, spool, h) = clean_run();
    h.lease_ended("c1", ID1, "killed");
    h.delivered("c2", ID1, 2, b"two");
    assert_fails(&h.check(&spool), "unexpected");
}

#[test]
fn checker_reports_an_unexplained_duplicate() {
    let (_d, spool, h) = clean_run();
    h.delivered("c2", ID1, 2, b"one");
    let v = h.check(&spool);
    assert_fails(&v, "unexplained");
    // The end of someone else's lease explains nothing.
    let (_d, spool, h) = clean_run();
    h.lease_ended("c9", ID1, "killed");
    h.delivered("c2", ID1, 2, b"one");
    assert_fails(&h.check(&spool), "unexplained");
    // An end recorded before the holder got the message explains nothing either.
    let (_d, spool, h) = fake();
    h.push_attempt(b"z");
    h.push_ok(ID1, b"z");
    h.lease_ended("c1", ID1, "killed");
    h.delivered("c1", ID1, 1, b"z");
    h.delivered("c2", ID1, 2, b"z");
    put(&spool, &done_name(ID1), b"z");
    assert_fails(&h.check(&spool), "unexplained");
}

#[test]
fn checker_reports_an_id_in_two_states() {
    let (_d, spool, h) = clean_run();
    put(&spool, &format!("dead/{ID1},a1,f1795827100100"), b"one");
    assert_fails(&h.check(&spool), "in two states");
    let (_d, spool, h) = clean_run();
    put(&spool, &format!("done/{ID2},a2,f1795827100200"), b"two");
    assert_fails(&h.check(&spool), "in two states");
    let (_d, spool, h) = clean_run();
    put(
        &spool,
        &format!("leased/{ID1},a2,l1795827100200,t0123456789abcdef"),
        b"one",
    );
    assert_fails(&h.check(&spool), "in two states");
}

#[test]
fn checker_reports_partial_and_empty_messages() {
    let (_d, spool, h) = clean_run();
    put(&spool, &done_name(ID1), b"on");
    assert_fails(&h.check(&spool), "partial");
    let (_d, spool, h) = clean_run();
    put(&spool, &done_name(ID2), b"");
    assert_fails(&h.check(&spool), "partial");
    // A message of an unknown push must hold a body that was attempted.
    let (_d, spool, h) = clean_run();
    h.push_attempt(b"three");
    put(
        &spool,
        "new/1795827/100/100/1795827100046044.9031.00000002.aea750d9.vm,a0,v1795827100100",
        b"thr",
    );
    assert_fails(&h.check(&spool), "partial");
}

#[test]
fn checker_reports_tmp_leftovers_of_successful_pushes_and_foreign_entries() {
    let (_d, spool, h) = clean_run();
    put(&spool, &format!("tmp/{ID2},a0,v1795827100100"), b"two");
    let v = h.check(&spool);
    assert_fails(&v, "tmp/ leftover");
    let (_d, spool, h) = clean_run();
    put(&spool, "done/notes.txt", b"one");
    assert_fails(&h.check(&spool), "foreign");
}

#[test]
fn history_is_written_as_json_lines() {
    let (_d, _spool, h) = clean_run();
    h.delivered("c", ID1, 1, &[0xff, 0x00]);
    let text = std::fs::read_to_string(h.path()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, h.events());
    assert_eq!(lines.last().unwrap()["body_hex"], "ff00");
}

// ---------------------------------------------------------------------------------------------
// Running qspool.

fn qspool(spool: &Path) -> Command {
    let mut c = Command::new(qspool_bin());
    c.env_remove("QSPOOL_DIR")
        .env_remove("XDG_STATE_HOME")
        .arg("--spool")
        .arg(spool);
    c
}

fn run_q(spool: &Path, args: &[&str]) -> Output {
    qspool(spool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run qspool")
}

/// Pushes `bodies` with one `push --lines`, recording every attempt and every id printed.
fn push_lines(spool: &Path, h: &History, bodies: &[String]) -> Vec<String> {
    push_lines_with(spool, h, bodies, &[])
}

/// `push_lines` with more arguments to push (`--group G`).
fn push_lines_with(spool: &Path, h: &History, bodies: &[String], extra: &[&str]) -> Vec<String> {
    for b in bodies {
        h.push_attempt(b.as_bytes());
    }
    let mut child = qspool(spool)
        .args(["push", "--lines"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = bodies.join("\n") + "\n";
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(input.as_bytes()).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_exit(&out, 0);
    let ids = lines(&out);
    assert_eq!(ids.len(), bodies.len());
    for (id, b) in ids.iter().zip(bodies) {
        h.push_ok(id, b.as_bytes());
    }
    ids
}

/// The body of a `pop --json` object.
fn body(m: &Value) -> Vec<u8> {
    match m["body"].as_str() {
        Some(s) => s.as_bytes().to_vec(),
        None => base64_decode(m["body_base64"].as_str().unwrap()),
    }
}

fn record_delivery(h: &History, who: &str, m: &Value) {
    h.delivered(
        who,
        m["id"].as_str().unwrap(),
        m["attempt"].as_u64().unwrap(),
        &body(m),
    );
}

/// A consumer as one shell process: pops a batch with `pop --json -n N`, acks it with one
/// `ack`, and logs both, until the queue is empty.
const CONSUMER: &str = r#"
q=$1; spool=$2; log=$3; n=$4
while :; do
    out=$("$q" --spool "$spool" pop --json -n "$n" --lease 5m); rc=$?
    case $rc in 0) ;; 3) exit 0 ;; *) echo "pop exited $rc" >&2; exit 1 ;; esac
    printf '%s\n' "$out" >> "$log.pop"
    rs=$(printf '%s\n' "$out" | sed -n 's/.*"receipt":"\([^"]*\)".*/\1/p')
    "$q" --spool "$spool" ack $rs || { echo "ack exited $?" >&2; exit 1; }
    printf '%s\n' "$rs" >> "$log.ack"
done
"#;

#[test]
fn contention_every_message_is_done_exactly_once() {
    let n = if soak() { 100_000 } else { 10_000 };
    let consumers = 8;
    let env = Env::init(&[]);
    let spool = env.spool();
    let h = History::new(env.scratch());
    let bodies: Vec<String> = (0..n).map(|i| format!("contention-{i:06}")).collect();
    let ids = push_lines(spool, &h, &bodies);

    let procs: Vec<_> = (0..consumers)
        .map(|k| {
            let log = env.scratch().join(format!("c{k}"));
            let child = Command::new("sh")
                .arg("-c")
                .arg(CONSUMER)
                .arg("sh")
                .arg(qspool_bin())
                .arg(spool)
                .arg(&log)
                .arg("16")
                .env_remove("QSPOOL_DIR")
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (k, log, child)
        })
        .collect();
    for (k, log, child) in procs {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "consumer {k}: {}", stderr(&out));
        let who = format!("c{k}");
        let popped = std::fs::read_to_string(log.with_extension("pop")).unwrap_or_default();
        for line in popped.lines() {
            let m: Value = serde_json::from_str(line).unwrap();
            record_delivery(&h, &who, &m);
        }
        let acked = std::fs::read_to_string(log.with_extension("ack")).unwrap_or_default();
        for r in acked.lines() {
            h.acked(&who, id_of(r));
        }
    }
    drain(spool, &h, Duration::from_secs(300));
    let v = h.check(spool);
    eprintln!("contention: {}", v.summary());
    v.assert_ok();
    assert_eq!(v.pushed, n);
    assert_eq!(v.duplicates, 0, "no lease ended, so nothing may come twice");
    assert_eq!(v.delivered, n);
    assert_eq!(v.states.get("done"), Some(&n), "{:?}", v.states);
    assert_eq!(ids.len(), n);
}

/// Polls until `f` returns Some, or panics after `limit` naming `what`.
fn poll<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The one-letter state of a process in /proc (`T` when stopped), None once it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

fn signal(pid: u32, sig: &str) {
    // The shell's own kill: no other package needed.
    let st = Command::new("sh")
        .args(["-c", r#"kill -s "$1" "$2""#, "sh", sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// `pop --json` with `extra` until it delivers, polling past the exit 3s of a lease that has
/// not expired yet; returns the one object.
fn pop_until(spool: &Path, extra: &[&str], limit: Duration) -> Value {
    poll(limit, "a delivery", || {
        let o = run_q(spool, &[&["pop", "--json"], extra].concat());
        match o.status.code() {
            Some(0) => Some(serde_json::from_slice(&o.stdout).unwrap()),
            Some(3) => None,
            c => panic!("pop exited {c:?}: {}", stderr(&o)),
        }
    })
}

/// A consumer that pops with a 1 s lease, then stops itself before it acts on the receipt;
/// once continued it tries ack, requeue and extend, and writes each exit status.
const STOPPED_HOLDER: &str = r#"
q=$1; spool=$2; dir=$3
"$q" --spool "$spool" pop --json --lease 1s > "$dir/a.json" || exit 1
r=$(sed -n 's/.*"receipt":"\([^"]*\)".*/\1/p' "$dir/a.json")
kill -STOP $$
"$q" --spool "$spool" ack "$r" 2>>"$dir/a.err"; echo "ack $?" >> "$dir/a.rc"
"$q" --spool "$spool" requeue "$r" 2>>"$dir/a.err"; echo "requeue $?" >> "$dir/a.rc"
"$q" --spool "$spool" extend "$r" 2>>"$dir/a.err"; echo "extend $?" >> "$dir/a.rc"
"#;

#[test]
fn fencing_a_stopped_holder_cannot_touch_the_next_lease() {
    let env = Env::init(&[]);
    let spool = env.spool();
    let dir = env.scratch();
    let h = History::new(dir);
    let ids = push_lines(spool, &h, &["fenced".to_owned()]);
    let mut a = Command::new("sh")
        .arg("-c")
        .arg(STOPPED_HOLDER)
        .args([Path::new("sh"), Path::new(qspool_bin()), spool, dir])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    poll(Duration::from_secs(20), "A to stop", || {
        (proc_state(a.id()) == Some('T')).then_some(())
    });
    let am: Value = serde_json::from_slice(&std::fs::read(dir.join("a.json")).unwrap()).unwrap();
    record_delivery(&h, "A", &am);
    // B polls: it gets the message only once A's 1 s lease has expired and B's pop reclaimed it.
    let bm = pop_until(spool, &["--lease", "1m"], Duration::from_secs(20));
    assert_eq!(id(&bm), ids[0]);
    assert_eq!(bm["attempt"], 2);
    h.lease_ended("A", &ids[0], "lease expired while stopped");
    record_delivery(&h, "B", &bm);

    signal(a.id(), "CONT");
    assert!(a.wait().unwrap().success());
    let rc = std::fs::read_to_string(dir.join("a.rc")).unwrap();
    assert_eq!(rc, "ack 4\nrequeue 4\nextend 4\n");
    // A's stale receipt moved nothing: B's lease is where B left it.
    assert_eq!(env.names("leased"), vec![receipt(&bm)]);
    let o = run_q(spool, &["ack", &receipt(&bm)]);
    assert_exit(&o, 0);
    h.acked("B", &ids[0]);
    drain(spool, &h, Duration::from_secs(10));
    let v = h.check(spool);
    v.assert_ok();
    assert_eq!((v.duplicates, v.acked), (1, 1), "{}", v.summary());
}

#[test]
fn fencing_a_stopped_work_process_neither_acks_nor_requeues() {
    let env = Env::init(&[]);
    let spool = env.spool();
    let dir = env.scratch();
    let h = History::new(dir);
    let ids = push_lines(spool, &h, &["fenced work".to_owned()]);
    let started = dir.join("started");
    let work = qspool(spool)
        .args(["work", "--lease", "1s", "--", "sh", "-c"])
        .arg(r#"cat > "$1"; while :; do sleep 0.05; done"#)
        .arg("sh")
        .arg(&started)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let got = poll(Duration::from_secs(20), "CMD to get the payload", || {
        std::fs::read(&started).ok().filter(|b| !b.is_empty())
    });
    assert_eq!(got, b"fenced work");
    signal(work.id(), "STOP");
    h.delivered("work", &ids[0], 1, &got);
    let bm = pop_until(spool, &["--lease", "1m"], Duration::from_secs(20));
    assert_eq!(bm["attempt"], 2);
    h.lease_ended("work", &ids[0], "heartbeat stopped past lease expiry");
    record_delivery(&h, "B", &bm);
    signal(work.id(), "CONT");
    let out = work.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("lease lost"), "{}", stderr(&out));
    assert_eq!(env.names("leased"), vec![receipt(&bm)]);
    assert!(env.new_names().is_empty() && env.names("done").is_empty());
    let o = run_q(spool, &["ack", &receipt(&bm)]);
    assert_exit(&o, 0);
    h.acked("B", &ids[0]);
    drain(spool, &h, Duration::from_secs(10));
    let v = h.check(spool);
    v.assert_ok();
    assert_eq!((v.duplicates, v.acked), (1, 1), "{}", v.summary());
}

/// How a pipeline's reader treats `qspool pop`'s output.
enum Reader {
    /// `head -c1`: reads one byte and exits.
    HeadOneByte,
    /// `false`: exits without reading.
    False,
    /// `sleep 100`, SIGKILLed while pop is blocked writing to it.
    KilledSleep,
}

/// Runs `qspool pop --lease LEASE | READER` on a message of `size` bytes, then checks that the
/// message was not acked and is delivered again (attempt 2) by a later pop: at once when pop
/// saw the reader go away (it must release the lease), after the lease expired otherwise.
fn pipeline(reader: Reader, size: usize) {
    let env = Env::init(&[]);
    let spool = env.spool();
    let h = History::new(env.scratch());
    let body: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let ids = push_lines(spool, &h, std::slice::from_ref(&body));
    // A payload bigger than a pipe's buffer cannot all be written before the reader goes.
    let blocks = size > 1 << 20;
    let lease = if blocks { "1h" } else { "1s" };
    let mut pop = qspool(spool)
        .args(["pop", "--lease", lease])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = pop.stdout.take().unwrap();
    let mut r = match reader {
        Reader::HeadOneByte => Command::new("head")
            .arg("-c1")
            .stdin(out)
            .stdout(Stdio::null())
            .spawn(),
        Reader::False => Command::new("false").stdin(out).spawn(),
        Reader::KilledSleep => Command::new("sleep").arg("100").stdin(out).spawn(),
    }
    .unwrap();
    if let Reader::KilledSleep = reader {
        // Killed only once pop holds the lease.
        poll(Duration::from_secs(20), "pop to lease", || {
            (!env.names("leased").is_empty() || pop.try_wait().unwrap().is_some()).then_some(())
        });
        r.kill().unwrap();
    }
    r.wait().unwrap();
    let o = pop.wait_with_output().unwrap();
    h.delivered("pipeline", &ids[0], 1, body.as_bytes());
    // A reader gone before pop wrote makes pop fail and release the lease at once; a payload
    // that fitted in the pipe was written, pop succeeded and the lease runs its course. A big
    // payload can only be the first; a small one may be either, by the race with the reader.
    let released = match o.status.code() {
        Some(1) => true,
        Some(0) if !blocks => false,
        c => panic!("pop exited {c:?}: {}", stderr(&o)),
    };
    if released {
        // The next pop gets it without waiting for the lease (an hour, for a big payload).
        assert!(env.names("leased").is_empty(), "{:?}", env.names("leased"));
    }
    assert!(env.names("done").is_empty(), "a pipeline's pop acked");
    let m = pop_until(spool, &["--lease", "1m"], Duration::from_secs(20));
    h.lease_ended(
        "pipeline",
        &ids[0],
        if released { "released" } else { "expired" },
    );
    record_delivery(&h, "next", &m);
    assert_eq!(m["attempt"], 2);
    assert_exit(&run_q(spool, &["ack", &receipt(&m)]), 0);
    h.acked("next", &ids[0]);
    let v = h.check(spool);
    v.assert_ok();
    assert_eq!(v.duplicates, 1);
}

#[test]
fn pipeline_head_c1_small_and_big() {
    pipeline(Reader::HeadOneByte, 100);
    pipeline(Reader::HeadOneByte, 4 << 20);
}

#[test]
fn pipeline_false_small_and_big() {
    pipeline(Reader::False, 100);
    pipeline(Reader::False, 4 << 20);
}

#[test]
fn pipeline_killed_worker_small_and_big() {
    pipeline(Reader::KilledSleep, 100);
    pipeline(Reader::KilledSleep, 4 << 20);
}

// ---------------------------------------------------------------------------------------------
// A SIGKILL at every syscall of one command.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Push,
    PushLines,
    Pop,
    PopMany,
    Ack,
    Requeue,
    RequeueExpired,
    Replay,
    /// `extend`: the lease moves to the bucket of its new expiry.
    Extend,
    /// A `pop` whose first act is to reclaim an expired lease from its bucket.
    Reclaim,
    /// A `pop` on a spool with a rate limit: it takes its start from the shared bucket under
    /// its lock first.
    RatedPop,
    /// `push --key`: the key's record is made, locked and written before the message is
    /// visible.
    KeyedPush,
    /// A `pop` of the head of a group with two more messages waiting behind it.
    GroupedPop,
    /// An `ack` of a group's head: the next waiting message becomes the head after it.
    GroupedAck,
}

/// What one run under strace left: whether the process was killed, and the spool's verdict.
struct CrashRun {
    killed: bool,
    verdict: Verdict,
}

fn killed_by_sigkill(st: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    st.signal() == Some(9) || st.code() == Some(128 + 9)
}

/// Sets a spool up for `op`, runs `op` under strace (killed at the `when`th call of `syscall`
/// when `inject` is given; tracing to `trace` if given), recovers as an operator would (the
/// receipt commands are simply run again, then fsck), drains and judges.
fn crash_once(op: Op, inject: Option<(&str, usize)>, trace: Option<&Path>) -> CrashRun {
    let max = if op == Op::Replay { "1" } else { "5" };
    let env = if op == Op::RatedPop {
        // Fast enough that the drain after the kill is not held up; the burst is what the
        // killed pop may have taken.
        Env::init(&["--max-attempts", max, "--rate", "1000/s", "--burst", "3"])
    } else if op == Op::KeyedPush {
        // Acked messages free their key at once, so that after the drain the key must be free.
        Env::init(&["--max-attempts", max, "--dedup-window", "0"])
    } else {
        Env::init(&["--max-attempts", max])
    };
    let spool = env.spool();
    let h = History::new(env.scratch());
    let body = format!("crash {op:?}");
    let mut id = String::new();
    let mut rcpt = String::new();
    // Several messages for the batch commands, so that a kill can fall between two of them;
    // for push, more than a commit fsyncs one by one, so its one syncfs is a kill point too.
    let n = if op == Op::PushLines { 10 } else { 3 };
    let batch: Vec<String> = (0..n).map(|i| format!("{body} {i}")).collect();
    let mut batch_ids = Vec::new();
    if op == Op::PopMany {
        batch_ids = push_lines(spool, &h, &batch);
    } else if matches!(op, Op::GroupedPop | Op::GroupedAck) {
        batch_ids = push_lines_with(spool, &h, &batch, &["--group", "crash group"]);
        id = batch_ids[0].clone();
    } else if !matches!(op, Op::Push | Op::PushLines | Op::KeyedPush) {
        id = push_lines(spool, &h, std::slice::from_ref(&body)).remove(0);
    }
    if matches!(
        op,
        Op::Ack
            | Op::Requeue
            | Op::RequeueExpired
            | Op::Replay
            | Op::Extend
            | Op::Reclaim
            | Op::GroupedAck
    ) {
        let lease = if matches!(op, Op::RequeueExpired | Op::Reclaim) {
            "1ms"
        } else {
            "1h"
        };
        let m = env.pop_json(&["--lease", lease]);
        record_delivery(&h, "holder", &m);
        rcpt = receipt(&m);
        if matches!(op, Op::RequeueExpired | Op::Reclaim) {
            h.lease_ended("holder", &id, "expired");
            let l = receipt_expiry_ms(&rcpt);
            poll(Duration::from_secs(5), "the lease to expire", || {
                (now_ms() > l).then_some(())
            });
        }
        if op == Op::Replay {
            assert_exit(&run_q(spool, &["requeue", &rcpt]), 0);
            h.lease_ended("holder", &id, "requeued into dead/");
            assert_eq!(env.names("dead").len(), 1);
        }
    }
    let args: Vec<&str> = match op {
        Op::Push => vec!["push", &body],
        Op::KeyedPush => vec!["push", "--json", "--key", "crash-key", &body],
        Op::PushLines => vec!["push", "--lines"],
        Op::Pop | Op::RatedPop | Op::GroupedPop => vec!["pop", "--json", "--lease", "1ms"],
        Op::GroupedAck => vec!["ack", &rcpt],
        Op::PopMany => vec!["pop", "--json", "-n", "3", "--lease", "1ms"],
        Op::Ack => vec!["ack", &rcpt],
        Op::Requeue => vec!["requeue", &rcpt],
        Op::RequeueExpired => vec!["requeue", "--expired"],
        Op::Replay => vec!["dlq-replay", &id],
        Op::Extend => vec!["extend", "--lease", "2h", &rcpt],
        Op::Reclaim => vec!["pop", "--json", "--lease", "1ms"],
    };
    if matches!(op, Op::Push | Op::KeyedPush) {
        h.push_attempt(body.as_bytes());
    }
    let input = env.scratch().join("input");
    std::fs::write(&input, batch.join("\n") + "\n").unwrap();
    if op == Op::PushLines {
        for b in &batch {
            h.push_attempt(b.as_bytes());
        }
    }
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-o"])
        .arg(trace.unwrap_or(Path::new("/dev/null")))
        .args(["-e", "trace=all"]);
    if let Some((sys, when)) = inject {
        c.arg("-e")
            .arg(format!("inject={sys}:signal=SIGKILL:when={when}"));
    }
    let o = c
        .arg(qspool_bin())
        .arg("--spool")
        .arg(spool)
        .args(&args)
        .env_remove("QSPOOL_DIR")
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let killed = killed_by_sigkill(o.status);
    assert!(
        killed || o.status.success(),
        "{op:?} {inject:?}: {:?} {}",
        o.status,
        stderr(&o)
    );
    let again = |args: &[&str]| {
        if killed {
            let o = run_q(spool, args);
            assert!(
                matches!(o.status.code(), Some(0 | 4)),
                "{op:?} {inject:?}, run again: {args:?} {}",
                stderr(&o)
            );
        }
    };
    match op {
        Op::Push => {
            if o.status.success() {
                h.push_ok(lines(&o)[0].as_str(), body.as_bytes());
            }
        }
        Op::KeyedPush => {
            let first = o.status.success().then(|| {
                let v: Value = serde_json::from_str(&lines(&o)[0]).unwrap();
                assert_eq!(v["pushed"], true, "{v}");
                let id = v["id"].as_str().unwrap().to_owned();
                h.push_ok(&id, body.as_bytes());
                id
            });
            // The producer's retry: told the id of a message the killed push made visible,
            // or pushing anew; never held off by a message that is nowhere.
            h.push_attempt(body.as_bytes());
            let o = run_q(spool, &["push", "--json", "--key", "crash-key", &body]);
            assert_exit(&o, 0);
            let v: Value = serde_json::from_str(&lines(&o)[0]).unwrap();
            let retry = v["id"].as_str().unwrap().to_owned();
            if let Some(first) = &first {
                assert_eq!(v["pushed"], false, "{op:?} {inject:?}: {v}");
                assert_eq!(&retry, first, "{op:?} {inject:?}");
            }
            if v["pushed"] == false {
                assert!(
                    env.new_names().iter().any(|n| n.starts_with(&retry)),
                    "{op:?} {inject:?}: held by {retry}, which is not in new/"
                );
            }
            h.push_ok(&retry, body.as_bytes());
            assert_eq!(env.new_names().len(), 1, "{op:?} {inject:?}");
        }
        Op::PushLines => {
            // Every id printed, even by a push killed later, is a message pushed.
            for (id, b) in complete_lines(&o).iter().zip(&batch) {
                h.push_ok(id, b.as_bytes());
            }
        }
        Op::PopMany => {
            let got = complete_lines(&o);
            for l in &got {
                record_delivery(&h, "victim", &serde_json::from_str(l).unwrap());
            }
            assert!(killed || got.len() == 3, "{op:?}: {got:?}");
            for id in &batch_ids {
                h.lease_ended("victim", id, if killed { "killed" } else { "expired" });
            }
        }
        Op::GroupedAck => {
            again(&["ack", &rcpt]);
            assert_eq!(env.names("done").len(), 1, "{op:?} {inject:?}");
            h.acked("holder", &id);
        }
        Op::Pop | Op::Reclaim | Op::RatedPop | Op::GroupedPop => {
            let text = stdout(&o);
            if let Some(m) = text
                .lines()
                .next()
                .and_then(|l| serde_json::from_str::<Value>(l).ok())
            {
                record_delivery(&h, "victim", &m);
            }
            assert!(killed || !text.is_empty());
            h.lease_ended("victim", &id, if killed { "killed" } else { "expired" });
        }
        Op::Ack => {
            again(&["ack", &rcpt]);
            // Whichever of the two did it, the ack is done: the message must be in done/.
            assert_eq!(env.names("done").len(), 1, "{op:?} {inject:?}");
            h.acked("holder", &id);
        }
        Op::Requeue => {
            again(&["requeue", &rcpt]);
            h.lease_ended("holder", &id, "requeued");
            assert_eq!(env.new_names().len(), 1, "{op:?} {inject:?}");
        }
        Op::RequeueExpired => {
            again(&["requeue", "--expired"]);
            assert_eq!(env.new_names().len(), 1, "{op:?} {inject:?}");
        }
        Op::Replay => {
            again(&["dlq-replay", &id]);
            assert_eq!(env.new_names().len(), 1, "{op:?} {inject:?}");
        }
        Op::Extend => {
            again(&["extend", "--lease", "2h", &rcpt]);
            // One lease of the message is left, under the old receipt or a new one of the
            // same attempt, in its own bucket: the holder still has it, and acks it.
            let held = env.names("leased");
            assert_eq!(held.len(), 1, "{op:?} {inject:?}: {held:?}");
            assert!(
                held[0].starts_with(&format!("{id},a1,l")),
                "{op:?} {inject:?}: {held:?}"
            );
            assert!(
                env.lease_file(&held[0]).is_file(),
                "{op:?} {inject:?}: {held:?} is not in its bucket"
            );
            if !killed {
                assert_eq!(stdout(&o).trim(), held[0], "{op:?}: the new receipt");
            }
            assert_exit(&run_q(spool, &["ack", &held[0]]), 0);
            h.acked("holder", &id);
        }
    }
    let f = run_q(spool, &["fsck"]);
    assert_eq!(
        f.status.code(),
        Some(0),
        "{op:?} {inject:?}: fsck: {}{}",
        stdout(&f),
        stderr(&f)
    );
    drain(spool, &h, Duration::from_secs(10));
    let verdict = h.check(spool);
    if !verdict.failures().is_empty() {
        panic!(
            "{op:?} killed at {inject:?}: {}\n{:?}",
            verdict.summary(),
            verdict.failures()
        );
    }
    if op == Op::KeyedPush {
        // Everything was acked, with a window of nothing: the key is free again.
        let o = run_q(spool, &["push", "--json", "--key", "crash-key", "after"]);
        assert!(
            stdout(&o).contains(r#""pushed":true"#),
            "{op:?} {inject:?}: {}",
            stdout(&o)
        );
    }
    CrashRun { killed, verdict }
}

/// The syscalls of a run as strace wrote them, each as (name, its occurrence number): killing
/// at the nth occurrence of a name is killing at that point of the run, since strace counts
/// `when` per syscall.
fn syscall_plan(trace: &Path) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(trace).unwrap();
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    let mut plan = Vec::new();
    for line in text.lines() {
        let rest = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() || !rest[name.len()..].starts_with('(') {
            continue;
        }
        let n = seen.entry(name.clone()).or_default();
        *n += 1;
        plan.push((name, *n));
    }
    plan
}

/// Kills `op` at every syscall (every `stride`th one in the fast tier) and checks each run.
fn crash_every_syscall(op: Op, fast_stride: usize) {
    if !need("strace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    crash_once(op, None, Some(&trace));
    let plan = syscall_plan(&trace);
    assert!(
        plan.len() > 20,
        "{op:?}: only {} syscalls traced",
        plan.len()
    );
    let stride = if soak() { 1 } else { fast_stride };
    let (mut runs, mut kills, mut leftovers, mut dups) = (0, 0, 0, 0);
    for (sys, when) in plan.iter().step_by(stride) {
        let r = crash_once(op, Some((sys, *when)), None);
        runs += 1;
        kills += usize::from(r.killed);
        leftovers += r.verdict.tmp_leftovers.len();
        dups += r.verdict.duplicates;
    }
    eprintln!(
        "crash {op:?}: {} syscalls, {runs} runs, {kills} killed, {leftovers} tmp/ leftovers, \
         {dups} duplicates, 0 lost",
        plan.len()
    );
    // A run can take a slightly different path from the planning run (a bucket not yet old
    // enough to remove, a retry) and end before its kill point; most must be killed, or the
    // injection did not happen and nothing was tested.
    assert!(
        kills * 10 >= runs * 9,
        "{op:?}: {kills} of {runs} runs killed"
    );
}

#[test]
fn crash_at_every_syscall_of_push() {
    crash_every_syscall(Op::Push, 1);
}

#[test]
fn crash_at_every_syscall_of_push_lines() {
    crash_every_syscall(Op::PushLines, 4);
}

#[test]
fn crash_at_every_syscall_of_pop_n() {
    crash_every_syscall(Op::PopMany, 4);
}

#[test]
fn crash_at_every_syscall_of_pop() {
    crash_every_syscall(Op::Pop, 3);
}

#[test]
fn crash_at_every_syscall_of_ack() {
    crash_every_syscall(Op::Ack, 1);
}

#[test]
fn crash_at_every_syscall_of_requeue() {
    crash_every_syscall(Op::Requeue, 3);
}

#[test]
fn crash_at_every_syscall_of_requeue_expired() {
    crash_every_syscall(Op::RequeueExpired, 3);
}

#[test]
fn crash_at_every_syscall_of_extend() {
    crash_every_syscall(Op::Extend, 1);
}

#[test]
fn crash_at_every_syscall_of_a_pop_that_reclaims() {
    crash_every_syscall(Op::Reclaim, 3);
}

#[test]
fn crash_at_every_syscall_of_a_keyed_push() {
    crash_every_syscall(Op::KeyedPush, 2);
}

#[test]
fn crash_at_every_syscall_of_a_grouped_pop() {
    crash_every_syscall(Op::GroupedPop, 3);
}

#[test]
fn crash_at_every_syscall_of_the_ack_of_a_groups_head() {
    crash_every_syscall(Op::GroupedAck, 2);
}

#[test]
fn crash_at_every_syscall_of_a_rate_limited_pop() {
    crash_every_syscall(Op::RatedPop, 3);
}

#[test]
fn crash_at_every_syscall_of_dlq_replay() {
    crash_every_syscall(Op::Replay, 3);
}

// ---------------------------------------------------------------------------------------------
// Mixed load with SIGKILLs.

/// A small xorshift generator: the tests need varied kill points, not good randomness.
struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng((t ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs a spawned child to the end, SIGKILLing it after `kill_after` if it is still running
/// then. Returns its output and whether the kill is what ended it.
fn finish(mut child: std::process::Child, kill_after: Option<Duration>) -> (Output, bool) {
    if let Some(d) = kill_after {
        std::thread::sleep(d);
        // A child that exited already but is not reaped yet keeps its pid: no stray kill.
        let _ = child.kill();
    }
    let o = child.wait_with_output().unwrap();
    let killed = killed_by_sigkill(o.status);
    (o, killed)
}

/// Complete lines of a killed process's output (a last line without `\n` was cut short).
fn complete_lines(o: &Output) -> Vec<String> {
    let text = stdout(o);
    let mut v: Vec<String> = text.split_inclusive('\n').map(str::to_owned).collect();
    if v.last().is_some_and(|l| !l.ends_with('\n')) {
        v.pop();
    }
    v.into_iter()
        .map(|l| l.trim_end_matches('\n').to_owned())
        .collect()
}

#[derive(Default)]
struct Tally {
    push_kills: usize,
    pop_kills: usize,
    ack_kills: usize,
}

fn producer(spool: &Path, h: &History, p: usize, stop: &std::sync::atomic::AtomicBool) -> Tally {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    let mut rng = Rng::new(p as u64 + 100);
    let mut t = Tally::default();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let bodies: Vec<String> = (0..20)
            .map(|_| {
                seq += 1;
                format!("mixed p{p} #{seq}")
            })
            .collect();
        for b in &bodies {
            h.push_attempt(b.as_bytes());
        }
        let mut child = qspool(spool)
            .args(["push", "--lines"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // A killed push closes the pipe early; that write error is expected.
        let _ = stdin.write_all((bodies.join("\n") + "\n").as_bytes());
        drop(stdin);
        let kill = (rng.below(6) == 0).then(|| Duration::from_millis(rng.below(8)));
        let (o, killed) = finish(child, kill);
        t.push_kills += usize::from(killed);
        assert!(killed || o.status.success(), "push: {}", stderr(&o));
        let ids = complete_lines(&o);
        for (id, b) in ids.iter().zip(&bodies) {
            h.push_ok(id, b.as_bytes());
        }
    }
    t
}

fn consumer(spool: &Path, h: &History, c: usize, stop: &std::sync::atomic::AtomicBool) -> Tally {
    use std::sync::atomic::Ordering;
    let mut rng = Rng::new(c as u64);
    let mut t = Tally::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let who = format!("c{c}.{n}");
        let child = qspool(spool)
            .args(["pop", "--json", "-n", "4", "--lease", "5s"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let kill = (rng.below(4) == 0).then(|| Duration::from_micros(rng.below(6000)));
        let (o, killed) = finish(child, kill);
        t.pop_kills += usize::from(killed);
        let got: Vec<Value> = complete_lines(&o)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for m in &got {
            record_delivery(h, &who, m);
        }
        if killed {
            for m in &got {
                h.lease_ended(&who, &id(m), "killed mid-pop");
            }
            continue;
        }
        match o.status.code() {
            Some(0) => {}
            Some(3) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            c => panic!("pop exited {c:?}: {}", stderr(&o)),
        }
        let receipts: Vec<String> = got.iter().map(receipt).collect();
        let child = qspool(spool)
            .arg("ack")
            .args(&receipts)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let kill = (rng.below(4) == 0).then(|| Duration::from_micros(rng.below(6000)));
        let (o, killed) = finish(child, kill);
        t.ack_kills += usize::from(killed);
        for m in &got {
            if killed {
                h.lease_ended(&who, &id(m), "killed mid-ack");
            } else if o.status.success() {
                h.acked(&who, &id(m));
            } else {
                // Only a lease that ran out before the ack makes it exit 4; the checker then
                // finds the redelivery unexplained unless it came after this line.
                h.lease_ended(&who, &id(m), "ack exit 4: lease expired under load");
            }
        }
        assert!(
            killed || matches!(o.status.code(), Some(0 | 4)),
            "{}",
            stderr(&o)
        );
    }
    t
}

#[test]
fn mixed_load_with_sigkilled_consumers_and_producers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let run_for = Duration::from_secs(if soak() { 60 } else { 4 });
    let env = Env::init(&["--max-attempts", "1000"]);
    let spool = env.spool();
    let h = History::new(env.scratch());
    let stop = AtomicBool::new(false);
    let mut tally = Tally::default();
    std::thread::scope(|s| {
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let (h, stop) = (&h, &stop);
                s.spawn(move || producer(spool, h, p, stop))
            })
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|c| {
                let (h, stop) = (&h, &stop);
                s.spawn(move || consumer(spool, h, c, stop))
            })
            .collect();
        std::thread::sleep(run_for);
        stop.store(true, Ordering::Relaxed);
        for t in producers.into_iter().chain(consumers) {
            let t = t.join().unwrap();
            tally.push_kills += t.push_kills;
            tally.pop_kills += t.pop_kills;
            tally.ack_kills += t.ack_kills;
        }
    });
    // The killed holders' leases run out within 5 s; the drain waits for them, and for what
    // the producers pushed faster than the consumers took (the deadline is only a backstop).
    drain(spool, &h, Duration::from_secs(300));
    let f = run_q(spool, &["fsck"]);
    assert_eq!(f.status.code(), Some(0), "fsck: {}", stdout(&f));
    let v = h.check(spool);
    eprintln!(
        "mixed: {}; kills: {} push, {} pop, {} ack",
        v.summary(),
        tally.push_kills,
        tally.pop_kills,
        tally.ack_kills
    );
    v.assert_ok();
    assert!(v.pushed > 100, "{}", v.summary());
    assert!(
        tally.pop_kills + tally.ack_kills > 0,
        "no consumer was killed"
    );
    for (id, why) in &v.explained {
        assert!(
            why.starts_with("killed"),
            "{id}: duplicate explained by {why:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Clock jumps: every process started after the jump sees the clock stepped by an offset.

/// `qspool --spool SPOOL`, under `faketime -f OFFSET` when an offset is given.
fn qspool_clock(offset: Option<&str>, spool: &Path) -> Command {
    let mut c = match offset {
        Some(off) => {
            let mut c = Command::new("faketime");
            c.args(["-f", off]).arg(qspool_bin());
            c
        }
        None => Command::new(qspool_bin()),
    };
    c.env_remove("QSPOOL_DIR")
        .env_remove("XDG_STATE_HOME")
        .arg("--spool")
        .arg(spool)
        .stdin(Stdio::null());
    c
}

/// The state of a clock-jump run shared by its threads.
struct Jump {
    /// The offset of processes started now: None before the jump.
    clock: std::sync::RwLock<Option<&'static str>>,
    /// Leases held by consumers: (id, holder) -> whether the jump ended it. Keyed by both: a
    /// message whose lease the jump ended is soon held by someone else too.
    held: std::sync::Mutex<std::collections::BTreeMap<(String, String), bool>>,
    stop: std::sync::atomic::AtomicBool,
    stale_acks: std::sync::atomic::AtomicUsize,
    /// Messages leased (for 10 min) by `J` before the run and acked only after it.
    at_jump: std::sync::Mutex<Vec<Value>>,
}

fn jump_consumer(spool: &Path, h: &History, j: &Jump, c: usize) {
    use std::sync::atomic::Ordering;
    let mut rng = Rng::new(c as u64 + 1000);
    let mut n = 0;
    while !j.stop.load(Ordering::Relaxed) {
        n += 1;
        let who = format!("c{c}.{n}");
        // The read lock keeps the jump out while a pop runs and its leases are recorded: the
        // jump ends every lease held at that moment, and records so before any process with
        // the new clock starts.
        let got: Vec<Value> = {
            let clock = j.clock.read().unwrap();
            let o = qspool_clock(*clock, spool)
                .args(["pop", "--json", "-n", "4", "--lease", "30s"])
                .output()
                .unwrap();
            match o.status.code() {
                Some(0) => {}
                Some(3) => {
                    drop(clock);
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                c => panic!("pop exited {c:?}: {}", stderr(&o)),
            }
            let got: Vec<Value> = lines(&o)
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let mut held = j.held.lock().unwrap();
            for m in &got {
                record_delivery(h, &who, m);
                held.insert((id(m), who.clone()), false);
            }
            got
        };
        std::thread::sleep(Duration::from_millis(rng.below(40)));
        let clock = *j.clock.read().unwrap();
        for m in &got {
            let o = qspool_clock(clock, spool)
                .args(["ack", &receipt(m)])
                .output()
                .unwrap();
            let ended = j
                .held
                .lock()
                .unwrap()
                .remove(&(id(m), who.clone()))
                .unwrap();
            match o.status.code() {
                Some(0) => h.acked(&who, &id(m)),
                // Fenced: only a lease the jump ended may be gone.
                Some(4) if ended => {
                    j.stale_acks.fetch_add(1, Ordering::Relaxed);
                }
                c => panic!(
                    "{who}: ack of {} exited {c:?} (lease ended by the jump: {ended}): {}",
                    id(m),
                    stderr(&o)
                ),
            }
        }
    }
}

/// Runs consumers and a producer with the right clock, steps every later process's clock by
/// `offset` halfway, stops them, and returns the history, the spool's Env and the run's
/// counters. Before the jump, one message is leased and abandoned, and one is pushed with a
/// delay, both outlasting the time before the jump by 2 s.
fn clock_jump(offset: &'static str) -> Option<(Env, std::sync::Arc<History>, Jump, [String; 2])> {
    use std::sync::atomic::Ordering;
    if !need("faketime") {
        return None;
    }
    let phase = Duration::from_millis(if soak() { 10_000 } else { 1_500 });
    let env = Env::init(&["--max-attempts", "1000"]);
    let spool = env.spool().to_owned();
    let h = History::new(env.scratch());
    let bodies: Vec<String> = (0..300).map(|i| format!("jump {i}")).collect();
    push_lines(&spool, &h, &bodies);
    let outlast = format!("{}ms", phase.as_millis() + 2000);
    let abandoned = env.pop_json(&["--lease", &outlast]);
    record_delivery(&h, "abandoned", &abandoned);
    h.lease_ended("abandoned", &id(&abandoned), "abandoned by its holder");
    h.push_attempt(b"jump delayed");
    let o = run_q(&spool, &["push", "--delay", &outlast, "jump delayed"]);
    assert_exit(&o, 0);
    let delayed = lines(&o).remove(0);
    h.push_ok(&delayed, b"jump delayed");

    let j = Jump {
        clock: std::sync::RwLock::new(None),
        held: Default::default(),
        stop: Default::default(),
        stale_acks: Default::default(),
        at_jump: Default::default(),
    };
    // Leases certainly held across the jump, whatever the consumers' timing.
    let o = run_q(&spool, &["pop", "--json", "-n", "3", "--lease", "10m"]);
    assert_exit(&o, 0);
    for l in lines(&o) {
        let m: Value = serde_json::from_str(&l).unwrap();
        record_delivery(&h, "J", &m);
        j.held
            .lock()
            .unwrap()
            .insert((id(&m), "J".to_owned()), false);
        j.at_jump.lock().unwrap().push(m);
    }
    std::thread::scope(|s| {
        let consumers: Vec<_> = (0..4)
            .map(|c| {
                let (h, j, spool) = (&h, &j, &spool);
                s.spawn(move || jump_consumer(spool, h, j, c))
            })
            .collect();
        let producer = s.spawn(|| {
            let mut seq = 0;
            while !j.stop.load(Ordering::Relaxed) {
                seq += 1;
                let body = format!("jump producer #{seq}");
                h.push_attempt(body.as_bytes());
                let clock = *j.clock.read().unwrap();
                let o = qspool_clock(clock, &spool)
                    .args(["push", &body])
                    .output()
                    .unwrap();
                assert_exit(&o, 0);
                h.push_ok(&lines(&o)[0], body.as_bytes());
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        std::thread::sleep(phase);
        {
            let mut clock = j.clock.write().unwrap();
            *clock = Some(offset);
            for ((id, who), ended) in j.held.lock().unwrap().iter_mut() {
                h.lease_ended(who, id, "clock jump");
                *ended = true;
            }
        }
        std::thread::sleep(phase);
        j.stop.store(true, Ordering::Relaxed);
        for c in consumers {
            c.join().unwrap();
        }
        producer.join().unwrap();
    });
    Some((env, h, j, [id(&abandoned), delayed]))
}

/// Where a message is now: the state directory holding its id.
fn state_of(env: &Env, id: &str) -> Vec<&'static str> {
    let mut v = Vec::new();
    for s in ["leased", "done", "dead"] {
        if env.names(s).iter().any(|n| id_of(n) == id) {
            v.push(s);
        }
    }
    if env.new_names().iter().any(|n| id_of(n) == id) {
        v.push("new");
    }
    v
}

#[test]
fn clock_jump_forward_two_hours_duplicates_but_never_loses() {
    let Some((env, h, j, [abandoned, delayed])) = clock_jump("+2h") else {
        return;
    };
    // From 2 h ahead every lease taken before the jump had expired: the first pop after the
    // jump reclaimed the abandoned one (to the back of the queue), and the delay was over.
    assert_ne!(state_of(&env, &abandoned), ["leased"]);
    // The first pop after the jump reclaimed J's leases too: its receipts are fenced off.
    for m in j.at_jump.lock().unwrap().iter() {
        assert_exit(&run_q(env.spool(), &["ack", &receipt(m)]), 4);
    }
    for id in [&abandoned, &delayed] {
        let o = qspool_clock(Some("+2h"), env.spool())
            .args(["show", "--json", id])
            .output()
            .unwrap();
        assert_exit(&o, 0);
        let m: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            ["ready", "done"].contains(&m["state"].as_str().unwrap()),
            "{m}"
        );
    }
    // What the jumped clock wrote (visible-at of its pushes and reclaims, lease expiries) lies
    // 2 h ahead: only a clock that far on drains it.
    drain_via(
        &["faketime", "-f", "+3h"],
        env.spool(),
        &h,
        Duration::from_secs(30),
    );
    let v = h.check(env.spool());
    eprintln!(
        "clock +2h: {}; stale acks fenced {}",
        v.summary(),
        j.stale_acks.load(std::sync::atomic::Ordering::Relaxed)
    );
    v.assert_ok();
    let jumped = v
        .explained
        .iter()
        .filter(|(_, w)| w == "clock jump")
        .count();
    assert!(jumped >= 3, "{}", v.summary());
    for (id, why) in &v.explained {
        assert!(
            why == "clock jump" || id == &abandoned,
            "{id}: duplicate explained by {why:?}"
        );
    }
}

#[test]
fn clock_jump_back_one_hour_only_delays() {
    let Some((env, h, j, [abandoned, delayed])) = clock_jump("-1h") else {
        return;
    };
    // From 1 h back the abandoned lease has an hour to run and the delayed message an hour to
    // wait: neither came out while the clock was behind.
    assert_eq!(state_of(&env, &abandoned), ["leased"]);
    assert_eq!(state_of(&env, &delayed), ["new"]);
    // Leases held across the jump back have an hour more to run: still J's to ack.
    for m in j.at_jump.lock().unwrap().iter() {
        assert_exit(&run_q(env.spool(), &["ack", &receipt(m)]), 0);
        h.acked("J", &id(m));
    }
    let o = qspool_clock(Some("-1h"), env.spool())
        .args(["requeue", "--expired"])
        .output()
        .unwrap();
    assert_exit(&o, 0);
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    // Back on the right clock both come out, 2 s after the jump.
    drain(env.spool(), &h, Duration::from_secs(30));
    let v = h.check(env.spool());
    eprintln!(
        "clock -1h: {}; stale acks fenced {}",
        v.summary(),
        j.stale_acks.load(std::sync::atomic::Ordering::Relaxed)
    );
    v.assert_ok();
    assert_eq!(j.stale_acks.load(std::sync::atomic::Ordering::Relaxed), 0);
    // The one duplicate is the abandoned message, delivered late, not early.
    assert_eq!(
        v.explained,
        vec![(abandoned.clone(), "abandoned by its holder".to_owned())]
    );
}

#[test]
fn clock_skew_between_consumers_is_fenced() {
    if !need("faketime") {
        return;
    }
    let env = Env::init(&[]);
    let spool = env.spool();
    let h = History::new(env.scratch());
    let mut ids = push_lines(spool, &h, &["skew ahead".to_owned()]);
    let pop = |clock: Option<&str>, who: &str| {
        let o = qspool_clock(clock, spool)
            .args(["pop", "--json", "--lease", "1m"])
            .output()
            .unwrap();
        assert_exit(&o, 0);
        let m: Value = serde_json::from_slice(&o.stdout).unwrap();
        record_delivery(&h, who, &m);
        m
    };
    // A consumer 2 h ahead finds a right-clock lease long expired: it reclaims and takes it.
    let a = pop(None, "A");
    assert_eq!(id(&a), ids[0]);
    h.lease_ended("A", &ids[0], "clock jump");
    let b = pop(Some("+2h"), "B");
    assert_eq!((id(&b), &b["attempt"]), (ids[0].clone(), &Value::from(2)));
    assert_exit(&run_q(spool, &["ack", &receipt(&a)]), 4);
    // Pushed by the slow clock too: a message pushed on the right clock would be an hour in the
    // future for it.
    h.push_attempt(b"skew behind");
    let o = qspool_clock(Some("-1h"), spool)
        .args(["push", "skew behind"])
        .output()
        .unwrap();
    assert_exit(&o, 0);
    ids.push(lines(&o).remove(0));
    h.push_ok(&ids[1], b"skew behind");
    // A consumer 1 h behind writes a lease that is already an hour over for everyone else.
    let c = pop(Some("-1h"), "C");
    assert_eq!(id(&c), ids[1]);
    h.lease_ended("C", &ids[1], "clock jump");
    let d = pop(None, "D");
    assert_eq!((id(&d), &d["attempt"]), (ids[1].clone(), &Value::from(2)));
    let o = qspool_clock(Some("-1h"), spool)
        .args(["ack", &receipt(&c)])
        .output()
        .unwrap();
    assert_exit(&o, 4);
    for (who, m, clock) in [("B", &b, Some("+2h")), ("D", &d, None)] {
        let o = qspool_clock(clock, spool)
            .args(["ack", &receipt(m)])
            .output()
            .unwrap();
        assert_exit(&o, 0);
        h.acked(who, &id(m));
    }
    let v = h.check(spool);
    v.assert_ok();
    assert_eq!((v.duplicates, v.acked), (2, 2), "{}", v.summary());
}

/// FORMAT.md §3.1: a clock past the grammar's last instant (in 2286) is clamped where qspool
/// reads it, so ids, visible times and ended times stay 16 and 13 digits and the messages stay
/// messages: they are delivered, acked and counted, and fsck finds nothing foreign.
#[test]
fn a_clock_past_2286_still_writes_names_of_the_grammar() {
    if !need("faketime") {
        return;
    }
    let env = Env::new();
    let late = Some("@2290-01-01 00:00:00");
    let run = |args: &[&str]| {
        let out = qspool_clock(late, env.spool()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    let ids = lines(&run(&["push", "one", "two"]));
    for id in &ids {
        assert!(id.starts_with("9999999999999999."), "{id}");
        assert_id(id);
    }
    assert_eq!(run(&["pop", "--ack"]).stdout, b"one");
    for name in env.new_names() {
        // Its slot's start (section 5.1): the clamped clock rounded down to 10 ms.
        assert_eq!(field(&name, 'v'), 9_999_999_999_990, "{name}");
    }
    let done = env.names("done");
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(field(&done[0], 'f'), 9_999_999_999_999, "{}", done[0]);
    let stats: Value = serde_json::from_slice(&run(&["stats", "--json"]).stdout).unwrap();
    assert_eq!(stats["foreign"], 0, "{stats}");
    assert_eq!(stats["ready"], 1, "{stats}");
    run(&["fsck"]);
}

//! `qspool pop --wait[=DUR]`: what wakes a waiting pop (a push, a delayed message coming due,
//! an expired lease, a requeue), its time limit, `-n` and many waiters, usage errors, and
//! SIGTERM. Every waiter is a real process, and every other writer is another one.

use crate::harness::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest a test waits for a process to start watching or to end, time limits it was
/// given included: CI runs tests in parallel on two cores, so this is about not hanging
/// forever, never about speed.
const SLACK: Duration = Duration::from_secs(20);

/// A spawned qspool that is killed if the test ends without collecting it, so that a failed
/// test never leaves an unlimited `pop --wait` behind.
struct Proc {
    child: Option<Child>,
    started: Instant,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn has_exited(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_some()
    }

    /// Blocks until the process holds an inotify descriptor: from then on the doorbell is
    /// watched, so what the test does next happens while it waits, not before it looked.
    fn wait_until_watching(&mut self) {
        let deadline = Instant::now() + SLACK;
        let fd_dir = format!("/proc/{}/fd", self.pid());
        loop {
            assert!(!self.has_exited(), "exited before it waited");
            let watching = std::fs::read_dir(&fd_dir).is_ok_and(|fds| {
                fds.filter_map(Result::ok).any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|l| l.to_string_lossy() == "anon_inode:inotify")
                })
            });
            if watching {
                return;
            }
            assert!(Instant::now() < deadline, "never started watching new/");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits at most `limit` for the process to exit, and returns its output.
    fn finish(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        while !self.has_exited() {
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?} (started {:?} ago)",
                self.started.elapsed()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.child.take().unwrap().wait_with_output().unwrap()
    }
}

fn spawn(env: &Env, args: &[&str]) -> Proc {
    let started = Instant::now();
    let child = env
        .std_cmd(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Proc {
        child: Some(child),
        started,
    }
}

/// A pause long enough that a waiter that was going to return early would have.
fn linger() {
    std::thread::sleep(Duration::from_millis(300));
}

fn objects(o: &Output) -> Vec<Value> {
    lines(o)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn one_object(o: &Output) -> Value {
    let mut v = objects(o);
    assert_eq!(v.len(), 1, "{}", stdout(o));
    v.pop().unwrap()
}

/// The millisecond a `pop --json --lease LEASE_MS` took its lease, from the expiry it printed.
fn leased_at_ms(v: &Value, lease_ms: u64) -> u64 {
    rfc3339_ms(v["lease_expires_at"].as_str().unwrap()) - lease_ms
}

/// The push time written in an id (its first field, in microseconds), in milliseconds.
fn pushed_at_ms(id: &str) -> u64 {
    id.split('.').next().unwrap().parse::<u64>().unwrap() / 1000
}

fn assert_success_quietly(o: &Output) {
    assert_exit(o, 0);
    assert!(o.stderr.is_empty(), "stderr: {}", stderr(o));
}

#[test]
fn a_waiting_pop_gets_a_message_pushed_later_by_another_process() {
    let env = Env::new();
    let mut pop = spawn(&env, &["pop", "--wait"]);
    pop.wait_until_watching();
    linger();
    assert!(!pop.has_exited(), "returned before anything was pushed");
    let id = env.push("hello, waiter");
    let out = pop.finish(SLACK);
    assert_success_quietly(&out);
    assert_eq!(stdout(&out), "hello, waiter");
    let leased = env.names("leased");
    assert_eq!(leased.len(), 1, "{leased:?}");
    assert_eq!(id_of(&leased[0]), id);
}

#[test]
fn a_wait_limit_that_runs_out_exits_3_in_silence_no_sooner_than_the_limit() {
    let env = Env::init(&[]);
    let t0 = Instant::now();
    let out = spawn(&env, &["pop", "--wait=400ms"]).finish(SLACK);
    let took = t0.elapsed();
    assert_exit(&out, 3);
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(&out));
    assert!(took >= Duration::from_millis(400), "gave up after {took:?}");
}

#[test]
fn wait_zero_is_a_plain_pop() {
    let env = Env::init(&[]);
    // The deadline is only there so that a pop that waits forever fails instead of hanging.
    let out = spawn(&env, &["pop", "--wait=0"]).finish(SLACK);
    assert_exit(&out, 3);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());

    env.push("ready");
    let out = spawn(&env, &["pop", "--wait=0"]).finish(SLACK);
    assert_success_quietly(&out);
    assert_eq!(stdout(&out), "ready");
}

#[test]
fn a_delayed_message_wakes_a_waiter_when_it_comes_due_and_not_before() {
    let env = Env::init(&[]);
    let mut pop = spawn(&env, &["pop", "--wait=5s", "--json", "--lease", "30s"]);
    pop.wait_until_watching();
    let out = env.run(&["push", "--delay", "700ms", "later"]);
    assert_exit(&out, 0);
    let id = stdout(&out).trim_end().to_owned();
    let out = pop.finish(SLACK);
    assert_success_quietly(&out);
    let v = one_object(&out);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["body"], "later");
    // The push rang the doorbell 700 ms early: the waiter must have gone back to sleep
    // instead of taking it then.
    let visible = pushed_at_ms(&id) + 700;
    let leased = leased_at_ms(&v, 30_000);
    assert!(
        leased >= visible,
        "leased at {leased}, visible only from {visible}"
    );
}

#[test]
fn a_delayed_message_due_after_the_limit_is_not_waited_for() {
    let env = Env::init(&[]);
    assert_exit(&env.run(&["push", "--delay", "1m", "much later"]), 0);
    let t0 = Instant::now();
    let out = spawn(&env, &["pop", "--wait=300ms"]).finish(SLACK);
    assert_exit(&out, 3);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(env.stats()["delayed"], 1);
}

#[test]
fn an_expired_lease_wakes_a_waiter_with_the_same_message() {
    let env = Env::init(&[]);
    let id = env.push("retry me");
    let first = env.pop_json(&["--lease", "500ms"]);
    let expiry = receipt_expiry_ms(&receipt(&first));
    // Expiry rings no doorbell: the waiter must have slept until the expiry it saw.
    let out = spawn(&env, &["pop", "--wait=5s", "--json", "--lease", "30s"]).finish(SLACK);
    assert_success_quietly(&out);
    let v = one_object(&out);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["attempt"], 2);
    assert_eq!(v["body"], "retry me");
    let leased = leased_at_ms(&v, 30_000);
    assert!(
        leased >= expiry,
        "re-leased at {leased}, first lease expired at {expiry}"
    );
    // The first holder's receipt is dead.
    assert_exit(&env.run(&["ack", &receipt(&first)]), 4);
}

#[test]
fn a_requeue_from_another_process_wakes_a_waiter() {
    let env = Env::init(&[]);
    let id = env.push("nacked");
    let first = env.pop_json(&[]);
    let mut pop = spawn(&env, &["pop", "--wait", "--json"]);
    pop.wait_until_watching();
    linger();
    assert!(!pop.has_exited(), "returned while the message was leased");
    assert_exit(&env.run(&["requeue", &receipt(&first)]), 0);
    let out = pop.finish(SLACK);
    assert_success_quietly(&out);
    let v = one_object(&out);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["attempt"], 2);
}

#[test]
fn wait_with_n_returns_what_is_visible_once_anything_is() {
    let env = Env::init(&[]);
    // A push that makes a top-level bucket wakes waiters before its commit: the fchmod of the
    // new directory is an attribute change inotify reports on new/. A waiter woken that way
    // may rightly look between the two renames below and take just the first; a message
    // pushed and taken first leaves the bucket of this 1000 s window behind.
    env.push("warm-up");
    assert_exit(&env.run(&["pop", "--ack"]), 0);
    let mut pop = spawn(&env, &["pop", "--wait", "--json", "-n", "3"]);
    pop.wait_until_watching();
    linger();
    // One push of two: the doorbell rings once, after both are in new/. --no-sync keeps the
    // two renames microseconds apart, so that the waiter's own once-a-second look, which would
    // also rightly take just the first, practically never falls between them.
    let out = env.run(&["push", "--no-sync", "a", "b"]);
    assert_exit(&out, 0);
    let ids = lines(&out);
    let out = pop.finish(SLACK);
    assert_success_quietly(&out);
    let got = objects(&out);
    assert_eq!(got.len(), 2, "{}", stdout(&out));
    assert_eq!(got[0]["id"], ids[0].as_str());
    assert_eq!(got[0]["body"], "a");
    assert_eq!(got[1]["id"], ids[1].as_str());
    assert_eq!(got[1]["body"], "b");
    assert_eq!(env.names("leased").len(), 2);
}

#[test]
fn many_waiters_get_one_message_each_and_no_message_twice() {
    let env = Env::init(&[]);
    let mut pops: Vec<Proc> = (0..4)
        .map(|_| spawn(&env, &["pop", "--wait=10s", "--json"]))
        .collect();
    for p in &mut pops {
        p.wait_until_watching();
    }
    // Separate pushes: each rings every waiter, and all but one of them must find nothing
    // and go back to sleep.
    let pushed: BTreeSet<String> = (0..4).map(|i| env.push(&format!("m{i}"))).collect();
    let mut got = BTreeSet::new();
    for p in pops {
        let out = p.finish(SLACK);
        assert_success_quietly(&out);
        let v = one_object(&out);
        assert_eq!(v["attempt"], 1, "{v}");
        assert!(got.insert(id(&v)), "{} delivered twice", id(&v));
    }
    assert_eq!(got, pushed);
    assert_eq!(env.names("leased").len(), 4);
    assert!(env.new_files().is_empty(), "{:?}", env.new_files());
}

#[test]
fn a_wait_value_needs_its_equals_sign_and_a_valid_duration() {
    let env = Env::new();
    for args in [
        &["pop", "--wait", "5s"][..],
        &["pop", "--wait=abc"],
        &["pop", "--wait="],
        &["pop", "--wait=-1s"],
        &["pop", "--wait=1.5s"],
    ] {
        let out = run(&env, args);
        assert_exit(&out, 2);
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
        // A usage error touches nothing, not even to make the spool.
        assert!(!env.spool().exists(), "{args:?} made the spool");
    }
    let out = run(&env, &["pop", "--wait", "5s"]);
    let line = one_error_line(&out);
    assert!(line.contains("tip: write --wait=5s"), "{line}");
}

#[test]
fn wait_makes_a_missing_spool_as_a_plain_pop_does() {
    let plain = Env::new();
    assert_exit(&plain.run(&["pop"]), 3);
    let waiting = Env::new();
    let out = spawn(&waiting, &["pop", "--wait=100ms"]).finish(SLACK);
    assert_exit(&out, 3);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());

    let shape = |env: &Env| -> Vec<(String, bool, u32)> {
        use std::os::unix::fs::PermissionsExt;
        let mut v: Vec<_> = env
            .tree()
            .into_iter()
            .map(|(p, m)| {
                let rel = p.strip_prefix(env.spool()).unwrap().display().to_string();
                (rel, m.is_dir(), m.permissions().mode())
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(shape(&waiting), shape(&plain));
}

#[test]
fn sigterm_ends_a_waiter_and_leaves_nothing_behind() {
    let env = Env::init(&[]);
    let r = env.scratch().join("receipt");
    let mut pop = spawn(
        &env,
        &["pop", "--wait", "--receipt-file", r.to_str().unwrap()],
    );
    pop.wait_until_watching();
    let pid = pop.pid().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = pop.finish(SLACK);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGTERM),
        "{:?}, stderr: {}",
        out.status,
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
    assert!(!r.exists(), "a receipt file was written");
    for state in ["tmp", "leased", "done", "dead"] {
        assert!(
            env.names(state).is_empty(),
            "{state}/: {:?}",
            env.names(state)
        );
    }
    assert!(env.new_files().is_empty(), "{:?}", env.new_files());
    // The queue is as it was: the next message goes to the next pop.
    env.push("after");
    assert_eq!(env.pop_raw(), b"after");
}

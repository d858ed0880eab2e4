//! `work`: CMD's exit status settles each message (ack, dead, requeue with backoff), leases held
//! by heartbeat, shutdown by signal (grace, kill, second signal), what CMD inherits and leaves
//! behind, `-j`, `-n`, `--wait`, lost leases, and the usage and start-up errors.

use crate::harness::{
    Env, assert_exit, field, id_of, now_ms, one_error_line, qspool_bin, run, stderr, stdout,
};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any wait in these tests may take before it counts as a hang. Far beyond what a
/// loaded CI machine needs, so it never decides a pass.
const LONG: Duration = Duration::from_secs(20);

/// Polls `cond` every 10 ms until it holds; panics naming `what` once `limit` has passed.
fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `work OPTS -- sh -c SCRIPT sh ARGS...`: the script sees ARGS as `$1`...
fn work<'a>(opts: &[&'a str], script: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    [&["work"], opts, &["--", "sh", "-c", script, "sh"], args].concat()
}

/// A scratch directory for what CMDs leave behind, beside the spool.
fn scratch_dir(env: &Env, name: &str) -> String {
    let dir = env.scratch().join(name);
    fs::create_dir(&dir).unwrap();
    dir.to_str().unwrap().to_owned()
}

fn lines_of(o: &Output) -> Vec<String> {
    stderr(o).lines().map(str::to_owned).collect()
}

/// A `qspool` run in the background, its output in files (a pipe could be held open by a
/// CMD's leftover children). Killed if a test fails while it runs.
struct Worker {
    child: Child,
    err: PathBuf,
}

/// How a `Worker` ended.
struct Ended {
    status: ExitStatus,
    stderr: String,
    at: Instant,
}

impl Worker {
    fn spawn(env: &Env, args: &[&str], tag: &str) -> Worker {
        Worker::start(env, env.std_cmd(args), tag)
    }

    fn start(env: &Env, mut c: std::process::Command, tag: &str) -> Worker {
        let err = env.scratch().join(format!("{tag}.err"));
        let out = env.scratch().join(format!("{tag}.out"));
        let child = c
            .stdin(Stdio::null())
            .stdout(fs::File::create(out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn qspool");
        Worker { child, err }
    }

    fn signal(&self, sig: &str) {
        let st = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn finish(&mut self) -> Ended {
        let mut status = None;
        wait_until(LONG, "work to exit", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let at = Instant::now();
        let stderr = fs::read_to_string(&self.err).unwrap();
        assert!(!stderr.contains("panicked"), "stderr: {stderr}");
        for line in stderr.lines() {
            assert!(line.starts_with("qspool: "), "stderr: {stderr}");
        }
        Ended {
            status: status.unwrap(),
            stderr,
            at,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls until `path` exists and holds a whole line, and returns it without the newline.
fn read_line_when_there(path: &Path) -> String {
    let mut text = String::new();
    wait_until(LONG, &format!("{}", path.display()), || {
        text = fs::read_to_string(path).unwrap_or_default();
        text.ends_with('\n')
    });
    text.trim_end().to_owned()
}

/// The process group of a process, or `None` once it is gone. A zombie counts as gone: in a
/// container nobody may reap an orphan, but it runs no more.
fn live_group_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?;
    let pgrp = f.nth(1)?.parse().ok()?;
    (!matches!(state, "Z" | "X" | "x")).then_some(pgrp)
}

/// Live processes in process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| live_group_of(pid) == Some(pgid))
        .collect()
}

#[test]
fn an_exit_0_acks_each_message_after_cmd_read_its_payload_and_environment() {
    let env = Env::new();
    let text = env.push("hello");
    let payload: &[u8] = b"\0bin\xff\r\n\0";
    let o = env.run_stdin(&["push"], payload);
    assert_exit(&o, 0);
    let bin = stdout(&o).trim_end().to_owned();
    let out = scratch_dir(&env, "out");
    let script = r#"cat > "$1/$QSPOOL_ID.body" &&
        printf '%s\n' "$QSPOOL_ID" "$QSPOOL_ATTEMPT" "$QSPOOL_SPOOL" > "$1/$QSPOOL_ID.env""#;

    // A relative --spool, so that QSPOOL_SPOOL has to be made absolute.
    let mut c = std::process::Command::new(qspool_bin());
    c.env_remove("QSPOOL_DIR")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", env.scratch().join("home"))
        .current_dir(env.scratch())
        .args(["--spool", "spool"])
        .args(work(&[], script, &[&out]));
    let o = c.output().unwrap();
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");

    for (id, body) in [(&text, &b"hello"[..]), (&bin, payload)] {
        assert_eq!(
            fs::read(Path::new(&out).join(format!("{id}.body"))).unwrap(),
            body
        );
        let vars = fs::read_to_string(Path::new(&out).join(format!("{id}.env"))).unwrap();
        let vars: Vec<&str> = vars.lines().collect();
        assert_eq!(vars[..2], [id.as_str(), "1"]);
        let spool = Path::new(vars[2]);
        assert!(spool.is_absolute(), "{vars:?}");
        assert_eq!(
            fs::canonicalize(spool).unwrap(),
            fs::canonicalize(env.spool()).unwrap()
        );
    }
    let done = env.names("done");
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(done[0].starts_with(&format!("{text},a1,f")), "{done:?}");
    assert!(done[1].starts_with(&format!("{bin},a1,f")), "{done:?}");
    assert!(env.names("leased").is_empty());
    assert!(env.new_files().is_empty());

    let lines = lines_of(&o);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, id) in lines.iter().zip([&text, &bin]) {
        assert!(
            line.starts_with(&format!("qspool: {id} attempt 1: exit 0 after ")),
            "{line}"
        );
        assert!(line.ends_with("s; acked"), "{line}");
    }
    assert_eq!(lines[2], "qspool: work: 2 runs: 2 acked");
}

#[test]
fn quiet_drops_the_per_message_lines_and_the_summary_of_a_clean_run() {
    let env = Env::new();
    env.push_all(&["a", "b"]);
    let o = run(&env, &["work", "--quiet", "--", "true"]);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o), "");
    assert_eq!(env.names("done").len(), 2);

    // Something failed: the summary says so, still without a line per message.
    env.push("c");
    let o = run(&env, &work(&["-q", "--backoff", "1h"], "exit 3", &[]));
    assert_exit(&o, 5);
    assert_eq!(stderr(&o), "qspool: work: 1 run: 0 acked, 1 requeued\n");
}

#[test]
fn an_exit_100_goes_straight_to_dead_whatever_attempts_remain() {
    let env = Env::init(&["--max-attempts", "3"]);
    let id = env.push("poison");
    let o = run(&env, &work(&[], "exit 100", &[]));
    assert_exit(&o, 5);
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].starts_with(&format!("{id},a1,f")), "{dead:?}");
    assert!(env.new_files().is_empty());
    assert!(env.names("leased").is_empty());
    assert!(env.names("done").is_empty());
    let lines = lines_of(&o);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("qspool: {id} attempt 1: exit 100 after ")),
        "{lines:?}"
    );
    assert!(
        lines[0].ends_with("; dead-lettered (permanent failure)"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "qspool: work: 1 run: 0 acked, 1 dead-lettered");
}

#[test]
fn a_failure_is_requeued_with_a_backoff_that_doubles_up_to_the_cap() {
    let env = Env::init(&["--max-attempts", "4"]);
    let id = env.push("flaky");
    let out = scratch_dir(&env, "out");
    let script = r#"echo "$QSPOOL_ATTEMPT" >> "$1/attempts"; exit 3"#;
    let fail = work(
        &["--backoff", "300ms", "--backoff-max", "700ms"],
        script,
        &[&out],
    );
    for (attempt, delay) in [(1, 300), (2, 600), (3, 700)] {
        let before = now_ms();
        let o = run(&env, &fail);
        let after = now_ms();
        assert_exit(&o, 5);
        let names = env.new_names();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(
            names[0].starts_with(&format!("{id},a{attempt},v")),
            "{names:?}"
        );
        // Visible `delay` after the failure, which came between `before` and `after`.
        let v = field(&names[0], 'v');
        assert!(
            v >= before + delay && v <= after + delay,
            "attempt {attempt}: visible at {v}, work ran from {before} to {after}"
        );
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{id} attempt {attempt}: exit 3 after ")),
            "{err}"
        );
        assert!(
            err.contains(&format!("; requeued, retry in {delay}ms\n")),
            "{err}"
        );
        assert!(env.names("leased").is_empty());
        wait_until(LONG, "the retry to come due", || now_ms() >= v);
    }
    let o = run(&env, &fail);
    assert_exit(&o, 5);
    let err = stderr(&o);
    assert!(
        err.contains("; dead-lettered after its last attempt (4)\n"),
        "{err}"
    );
    assert!(
        err.ends_with("qspool: work: 1 run: 0 acked, 1 dead-lettered\n"),
        "{err}"
    );
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].starts_with(&format!("{id},a4,f")), "{dead:?}");
    assert!(env.new_files().is_empty());
    assert_eq!(
        fs::read_to_string(Path::new(&out).join("attempts")).unwrap(),
        "1\n2\n3\n4\n"
    );
}

#[test]
fn the_second_failure_of_a_two_attempt_spool_goes_to_dead() {
    let env = Env::init(&["--max-attempts", "2"]);
    let id = env.push("doomed");
    let fail = work(&["--backoff", "200ms"], "exit 3", &[]);
    assert_exit(&run(&env, &fail), 5);
    let names = env.new_names();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(&format!("{id},a1,v")), "{names:?}");
    let v = field(&names[0], 'v');
    wait_until(LONG, "the retry to come due", || now_ms() >= v);

    let o = run(&env, &fail);
    assert_exit(&o, 5);
    assert!(stderr(&o).contains(&format!("{id} attempt 2: exit 3 after ")));
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].starts_with(&format!("{id},a2,f")), "{dead:?}");
    assert!(env.new_files().is_empty());
}

#[test]
fn with_no_backoff_one_run_retries_a_message_until_it_is_dead() {
    let env = Env::init(&["--max-attempts", "3"]);
    let id = env.push("hopeless");
    let o = run(&env, &work(&["--backoff", "0"], "exit 3", &[]));
    assert_exit(&o, 5);
    let lines = lines_of(&o);
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (n, line) in lines[..3].iter().enumerate() {
        assert!(
            line.starts_with(&format!("qspool: {id} attempt {}: exit 3", n + 1)),
            "{lines:?}"
        );
    }
    assert!(lines[0].ends_with("; requeued"), "{lines:?}");
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].starts_with(&format!("{id},a3,f")), "{dead:?}");
}

#[test]
fn a_cmd_killed_by_a_signal_is_a_failure_and_requeued() {
    for sig in ["KILL", "SEGV"] {
        let env = Env::new();
        let id = env.push("crash");
        let o = run(
            &env,
            &work(
                &["--backoff", "1h", "--backoff-max", "1h"],
                &format!("kill -{sig} $$"),
                &[],
            ),
        );
        assert_exit(&o, 5);
        let names = env.new_names();
        assert_eq!(names.len(), 1, "{sig}: {names:?}");
        assert!(names[0].starts_with(&format!("{id},a1,v")), "{names:?}");
        let lines = lines_of(&o);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!(
                "qspool: {id} attempt 1: killed by SIG{sig} after "
            )),
            "{lines:?}"
        );
        assert!(lines[0].ends_with("; requeued, retry in 1h"), "{lines:?}");
        assert_eq!(lines[1], "qspool: work: 1 run: 0 acked, 1 requeued");
    }
}

#[test]
fn a_cmd_slower_than_its_lease_keeps_it_and_runs_once_among_several_workers() {
    let env = Env::new();
    let id = env.push("slow");
    let out = scratch_dir(&env, "out");
    let script = r#"echo "$QSPOOL_ID $QSPOOL_ATTEMPT" >> "$1/log"; sleep 2.5"#;
    // The CMD outlives two and a half leases: only heartbeats keep the others off it.
    let mut first = Worker::spawn(&env, &work(&["--lease", "1s"], script, &[&out]), "first");
    wait_until(LONG, "the first worker's lease", || {
        !env.names("leased").is_empty()
    });
    let mut others: Vec<Worker> = (0..2)
        .map(|i| {
            let args = work(&["--lease", "1s", "--wait=3s"], script, &[&out]);
            Worker::spawn(&env, &args, &format!("other{i}"))
        })
        .collect();

    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + LONG;
    while first.running() {
        assert!(Instant::now() < deadline, "the slow CMD never ended");
        seen.extend(env.names("leased"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let ended = first.finish();
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    assert!(
        ended
            .stderr
            .starts_with(&format!("qspool: {id} attempt 1: exit 0 after ")),
        "{}",
        ended.stderr
    );
    for w in &mut others {
        let ended = w.finish();
        assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
        assert_eq!(ended.stderr, "qspool: work: nothing to run\n");
    }

    assert_eq!(
        fs::read_to_string(Path::new(&out).join("log")).unwrap(),
        format!("{id} 1\n")
    );
    let done = env.names("done");
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].starts_with(&format!("{id},a1,f")), "{done:?}");
    assert!(seen.len() >= 2, "the lease was never extended: {seen:?}");
    for name in &seen {
        assert!(name.starts_with(&format!("{id},a1,l")), "{seen:?}");
    }
    let expiries: Vec<u64> = seen.iter().map(|n| field(n, 'l')).collect();
    assert!(expiries.iter().max() > expiries.iter().min(), "{seen:?}");
}

#[test]
fn sigterm_lets_a_running_cmd_finish_within_the_grace() {
    let env = Env::new();
    let id = env.push("finish me");
    let out = scratch_dir(&env, "out");
    // The whole group gets SIGTERM: the background sleep dies, the trap answers.
    let script = r#"trap 'sleep 0.2; exit 0' TERM; : > "$1/ready"; sleep 30 & wait"#;
    let mut w = Worker::spawn(&env, &work(&["--grace", "30s"], script, &[&out]), "w");
    wait_until(LONG, "CMD to set its trap", || {
        Path::new(&out).join("ready").exists()
    });
    let sent = Instant::now();
    w.signal("TERM");
    let ended = w.finish();
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    assert!(
        ended.at - sent < Duration::from_secs(10),
        "work waited for the grace to run out: {:?}",
        ended.at - sent
    );
    let lines: Vec<&str> = ended.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with(&format!("qspool: {id} attempt 1: exit 0")));
    assert!(lines[0].ends_with("; acked"), "{lines:?}");
    assert_eq!(lines[1], "qspool: work: 1 run: 1 acked");
    let done = env.names("done");
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].starts_with(&format!("{id},a1,f")), "{done:?}");
}

#[test]
fn a_cmd_that_dies_of_the_shutdown_sigterm_is_released_at_once() {
    let env = Env::new();
    let id = env.push("plain");
    let out = scratch_dir(&env, "out");
    let script = r#": > "$1/ready"; sleep 30"#;
    let mut w = Worker::spawn(&env, &work(&["--backoff", "1h"], script, &[&out]), "w");
    wait_until(LONG, "CMD to start", || {
        Path::new(&out).join("ready").exists()
    });
    w.signal("TERM");
    let ended = w.finish();
    assert_eq!(ended.status.code(), Some(5), "{}", ended.stderr);
    let lines: Vec<&str> = ended.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("qspool: {id} attempt 1: killed by SIGTERM after ")),
        "{lines:?}"
    );
    assert!(
        lines[0].ends_with(": stopped at shutdown; requeued"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        "qspool: work: 1 run: 0 acked, 1 stopped at shutdown"
    );
    // No backoff: a CMD that stops when asked is not held back for it.
    let names = env.new_names();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(&format!("{id},a1,v")), "{names:?}");
    assert!(field(&names[0], 'v') <= now_ms(), "{names:?}");
}

/// Runs a CMD that ignores SIGTERM under `work --grace 300ms`, signals work once the CMD runs,
/// and checks that the CMD's whole group is killed. Returns the message id and how work ended.
fn kill_after_grace(env: &Env) -> (String, Ended) {
    let id = env.push("stubborn");
    let out = scratch_dir(env, "out");
    let script = r#"trap '' TERM
        sleep 30.123 &
        echo "$$" > "$1/pid.tmp" && mv "$1/pid.tmp" "$1/sh.pid"
        wait"#;
    let mut w = Worker::spawn(env, &work(&["--grace", "300ms"], script, &[&out]), "w");
    let pgid: u32 = read_line_when_there(&Path::new(&out).join("sh.pid"))
        .parse()
        .unwrap();
    assert!(group_members(pgid).len() >= 2, "CMD's group is not running");
    let sent = Instant::now();
    w.signal("TERM");
    let ended = w.finish();
    assert!(
        ended.at - sent < Duration::from_secs(10),
        "work took {:?} to kill a CMD with a 300ms grace",
        ended.at - sent
    );
    assert_eq!(ended.status.code(), Some(5), "{}", ended.stderr);
    wait_until(LONG, "CMD's process group to die", || {
        group_members(pgid).is_empty()
    });
    (id, ended)
}

#[test]
fn a_cmd_still_running_after_the_grace_is_killed_with_its_group_and_released_at_once() {
    let env = Env::new();
    let (id, ended) = kill_after_grace(&env);
    let names = env.new_names();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(&format!("{id},a1,v")), "{names:?}");
    assert!(field(&names[0], 'v') <= now_ms(), "{names:?}");
    assert!(env.names("leased").is_empty());
    let lines: Vec<&str> = ended.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("qspool: {id} attempt 1: killed by SIGKILL after ")),
        "{lines:?}"
    );
    assert!(
        lines[0].ends_with(": killed after the grace; requeued"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        "qspool: work: 1 run: 0 acked, 1 stopped at shutdown"
    );
}

#[test]
fn a_last_attempt_killed_after_the_grace_goes_to_dead() {
    let env = Env::init(&["--max-attempts", "1"]);
    let (id, ended) = kill_after_grace(&env);
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].starts_with(&format!("{id},a1,f")), "{dead:?}");
    assert!(env.new_files().is_empty());
    assert!(
        ended
            .stderr
            .contains("killed after the grace; dead-lettered after its last attempt (1)"),
        "{}",
        ended.stderr
    );
}

#[test]
fn a_second_sigterm_or_sigint_ends_the_grace_at_once_but_a_sighup_does_not() {
    for second in ["TERM", "INT"] {
        let env = Env::new();
        let id = env.push("stubborn");
        let out = scratch_dir(&env, "out");
        // The trap leaves a mark, so the test knows the first signal was handled before it
        // sends the next (two pending SIGTERMs would merge into one).
        let script = r#"trap ': > "$1/term"' TERM; : > "$1/ready"
            while :; do sleep 30.234 & wait; done"#;
        let mut w = Worker::spawn(&env, &work(&["--grace", "1m"], script, &[&out]), "w");
        wait_until(LONG, "CMD to set its trap", || {
            Path::new(&out).join("ready").exists()
        });
        w.signal("TERM");
        wait_until(LONG, "CMD to get the first SIGTERM", || {
            Path::new(&out).join("term").exists()
        });
        // Supervisors send SIGHUP right after SIGTERM: it must not cut the grace short. Only a
        // lower bound can be checked; on a slow machine this shows less, never a false failure.
        w.signal("HUP");
        std::thread::sleep(Duration::from_millis(500));
        assert!(w.running(), "SIGHUP ended the grace");

        let sent = Instant::now();
        w.signal(second);
        let ended = w.finish();
        assert!(
            ended.at - sent < Duration::from_secs(10),
            "work took {:?} after SIG{second}",
            ended.at - sent
        );
        assert_eq!(ended.status.code(), Some(5), "{}", ended.stderr);
        let lines: Vec<&str> = ended.stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!("qspool: {id} attempt 1: killed by SIGKILL after ")),
            "{lines:?}"
        );
        assert!(
            lines[0].ends_with(": killed after the grace; requeued"),
            "{lines:?}"
        );
        assert_eq!(
            lines[1],
            "qspool: work: 1 run: 0 acked, 1 stopped at shutdown"
        );
        let names = env.new_names();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with(&format!("{id},a1,v")), "{names:?}");
    }
}

#[test]
fn sigterm_sigint_and_sighup_end_an_idle_wait() {
    for sig in ["TERM", "INT", "HUP"] {
        let env = Env::new();
        let mut w = Worker::spawn(&env, &["work", "--wait", "--", "true"], "w");
        // work blocks its signals before it creates the spool: from then on a signal is
        // a request to stop, not death by its default action.
        wait_until(LONG, "work to create the spool", || {
            env.spool().join("new").exists()
        });
        w.signal(sig);
        let ended = w.finish();
        assert_eq!(ended.status.code(), Some(0), "SIG{sig}: {}", ended.stderr);
        assert_eq!(ended.stderr, "qspool: work: nothing to run\n", "SIG{sig}");
    }
}

#[test]
fn what_cmd_leaves_running_in_its_group_is_killed_when_it_exits() {
    let env = Env::new();
    let id = env.push("fire and forget");
    let out = scratch_dir(&env, "out");
    let script = r#"sleep 30.567 &
        echo "$$ $!" > "$1/pids.tmp" && mv "$1/pids.tmp" "$1/pids""#;
    let o = run(&env, &work(&[], script, &[&out]));
    assert_exit(&o, 0);
    let done = env.names("done");
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].starts_with(&format!("{id},a1,f")), "{done:?}");
    let pids = fs::read_to_string(Path::new(&out).join("pids")).unwrap();
    let pgid: u32 = pids.split_whitespace().next().unwrap().parse().unwrap();
    wait_until(LONG, "CMD's leftover sleep to die", || {
        group_members(pgid).is_empty()
    });
}

/// Makes `c` start its program with SIGCHLD ignored, as a careless parent may leave it:
/// ignored signals stay ignored across exec. (`sh`'s `trap '' CHLD` does not do it.)
#[allow(unsafe_code)]
fn with_sigchld_ignored(c: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // Safety: between fork and exec this calls only signal(2), which is async-signal-safe, and
    // touches no memory but its own.
    unsafe {
        c.pre_exec(|| {
            if libc::signal(libc::SIGCHLD, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn an_inherited_ignored_sigchld_does_not_hide_cmd_exits() {
    // The set-up works: a program started this way has SIGCHLD (17, bit 16) ignored.
    let mut probe = std::process::Command::new("grep");
    probe.args(["^SigIgn:", "/proc/self/status"]);
    with_sigchld_ignored(&mut probe);
    let probe = stdout(&probe.output().unwrap());
    let mask = u64::from_str_radix(probe.trim().rsplit('\t').next().unwrap(), 16).unwrap();
    assert_ne!(mask & (1 << 16), 0, "{probe}");

    let env = Env::new();
    let id = env.push("x");
    let mut c = env.std_cmd(&["work", "--", "sh", "-c", "exit 0"]);
    with_sigchld_ignored(&mut c);
    let ended = Worker::start(&env, c, "w").finish();
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    assert_eq!(
        ended.stderr.lines().last(),
        Some("qspool: work: 1 run: 1 acked")
    );
    let done = env.names("done");
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].starts_with(&format!("{id},a1,f")), "{done:?}");
}

/// CMD for the `-j` tests: marks its start in `$1`, then waits until `$2` CMDs are running,
/// trying `$3` times 50 ms; exits 1 (taking its mark back) if they never are.
const BARRIER: &str = r#"d=$1 want=$2 tries=$3
    : > "$d/$QSPOOL_ID.start"
    while :; do
        set -- "$d"/*.start
        [ $# -ge "$want" ] && exit 0
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { rm "$d/$QSPOOL_ID.start"; exit 1; }
        sleep 0.05
    done"#;

#[test]
fn j_4_runs_four_cmds_at_once() {
    let env = Env::new();
    let ids = env.push_all(&["a", "b", "c", "d"]);
    let out = scratch_dir(&env, "out");
    let o = run(&env, &work(&["-j", "4"], BARRIER, &[&out, "4", "400"]));
    assert_exit(&o, 0);
    assert_eq!(
        lines_of(&o).last().unwrap(),
        "qspool: work: 4 runs: 4 acked"
    );
    let done: BTreeSet<String> = env
        .names("done")
        .iter()
        .map(|n| id_of(n).to_owned())
        .collect();
    assert_eq!(done, ids.into_iter().collect());
}

#[test]
fn by_default_cmds_run_one_at_a_time_in_queue_order() {
    let env = Env::new();
    let ids = env.push_all(&["a", "b", "c"]);
    let out = scratch_dir(&env, "out");
    // Two CMDs waiting for each other can only time out when they do not overlap.
    let o = run(
        &env,
        &work(
            &["-n", "2", "--backoff", "1h", "--backoff-max", "1h"],
            BARRIER,
            &[&out, "2", "10"],
        ),
    );
    assert_exit(&o, 5);
    let lines = lines_of(&o);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, id) in lines[..2].iter().zip(&ids) {
        assert!(
            line.starts_with(&format!("qspool: {id} attempt 1: exit 1 after ")),
            "{lines:?}"
        );
    }
    assert_eq!(lines[2], "qspool: work: 2 runs: 0 acked, 2 requeued");
}

#[test]
fn a_freed_slot_is_refilled_while_other_cmds_still_run() {
    let env = Env::new();
    let ids = env.push_all(&["long", "short", "late"]);
    let out = scratch_dir(&env, "out");
    // The first CMD can only finish once the third has started, which needs the second's slot.
    let script = r#": > "$1/$QSPOOL_ID.start"
        [ "$QSPOOL_ID" = "$2" ] || exit 0
        n=0
        while [ ! -e "$1/$3.start" ]; do
            n=$((n + 1)); [ $n -lt 400 ] || exit 1; sleep 0.05
        done"#;
    let o = run(&env, &work(&["-j", "2"], script, &[&out, &ids[0], &ids[2]]));
    assert_exit(&o, 0);
    assert_eq!(
        lines_of(&o).last().unwrap(),
        "qspool: work: 3 runs: 3 acked"
    );
    assert_eq!(env.names("done").len(), 3);
}

/// Regression: with a 1 ms lease, `work -j 2` reclaimed the lease of its own running CMD and
/// ran the message again beside it.
#[test]
fn one_worker_never_runs_the_same_message_twice_at_once() {
    let env = Env::new();
    let id = env.push("x");
    let out = scratch_dir(&env, "out");
    let script = r#"echo "$QSPOOL_ATTEMPT" >> "$1/log"; sleep 0.5"#;
    let o = run(&env, &work(&["-j", "2", "--lease", "1ms"], script, &[&out]));
    assert_eq!(
        fs::read_to_string(Path::new(&out).join("log")).unwrap(),
        "1\n",
        "stderr: {}",
        stderr(&o)
    );
    assert_exit(&o, 0);
    let done = env.names("done");
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].starts_with(&format!("{id},a1,f")), "{done:?}");
}

#[test]
fn n_2_handles_the_two_oldest_messages_and_leaves_the_rest() {
    let env = Env::new();
    let ids = env.push_all(&["m0", "m1", "m2", "m3", "m4"]);
    let out = scratch_dir(&env, "out");
    let script = r#"cat >> "$1/log" && echo >> "$1/log""#;
    let o = run(&env, &work(&["-n", "2"], script, &[&out]));
    assert_exit(&o, 0);
    assert_eq!(
        lines_of(&o).last().unwrap(),
        "qspool: work: 2 runs: 2 acked"
    );
    assert_eq!(
        fs::read_to_string(Path::new(&out).join("log")).unwrap(),
        "m0\nm1\n"
    );
    let done: Vec<String> = env
        .names("done")
        .iter()
        .map(|n| id_of(n).to_owned())
        .collect();
    assert_eq!(done, ids[..2]);
    let left = env.new_names();
    let left_ids: Vec<&str> = left.iter().map(|n| id_of(n)).collect();
    assert_eq!(left_ids, ids[2..]);
    for name in &left {
        assert_eq!(field(name, 'a'), 0, "{name}");
    }
    assert_eq!(env.stats()["ready"], 3);
}

#[test]
fn without_wait_work_on_a_missing_spool_creates_it_and_exits_0() {
    let env = Env::new();
    let o = run(&env, &["work", "--", "true"]);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o), "qspool: work: nothing to run\n");
    for dir in ["tmp", "new", "leased", "done", "dead"] {
        assert!(env.spool().join(dir).is_dir(), "{dir}");
    }
    let o = run(&env, &["work", "--quiet", "--", "true"]);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o), "");
}

#[test]
fn without_wait_a_delayed_message_is_left_for_later() {
    let env = Env::new();
    let o = run(&env, &["push", "--delay", "1h", "later"]);
    assert_exit(&o, 0);
    let before = env.new_names();
    let o = run(&env, &["work", "--", "false"]);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o), "qspool: work: nothing to run\n");
    assert_eq!(env.new_names(), before);
}

#[test]
fn wait_with_a_limit_exits_0_once_idle_that_long() {
    let env = Env::new();
    let start = Instant::now();
    let o = run(&env, &["work", "--wait=700ms", "--", "true"]);
    assert_exit(&o, 0);
    assert!(start.elapsed() >= Duration::from_millis(700));
    assert_eq!(stderr(&o), "qspool: work: nothing to run\n");
}

#[test]
fn a_message_pushed_while_work_waits_is_run() {
    let env = Env::new();
    let out = scratch_dir(&env, "out");
    let script = r#"cat > "$1/$QSPOOL_ID""#;
    let mut w = Worker::spawn(&env, &work(&["--wait=1500ms"], script, &[&out]), "w");
    std::thread::sleep(Duration::from_millis(300));
    let id = env.push("late");
    let pushed = Instant::now();
    let ended = w.finish();
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    // The idle time counts from the end of the last CMD.
    assert!(ended.at - pushed >= Duration::from_millis(1500));
    assert_eq!(
        fs::read_to_string(Path::new(&out).join(&id)).unwrap(),
        "late"
    );
    assert!(
        ended.stderr.ends_with("qspool: work: 1 run: 1 acked\n"),
        "{}",
        ended.stderr
    );
    let done = env.names("done");
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].starts_with(&format!("{id},a1,f")), "{done:?}");
}

#[test]
fn wait_runs_a_delayed_message_when_it_comes_due() {
    let env = Env::new();
    let o = run(&env, &["push", "--delay", "800ms", "soon"]);
    assert_exit(&o, 0);
    let v = field(&env.new_names()[0], 'v');
    let o = run(&env, &["work", "--wait=3s", "--", "true"]);
    assert_exit(&o, 0);
    let done = env.names("done");
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(
        field(&done[0], 'f') >= v,
        "acked before it was visible: {done:?}"
    );
}

#[test]
fn with_wait_a_failed_message_is_retried_in_the_same_run_after_its_backoff() {
    let env = Env::new();
    let id = env.push("second time lucky");
    let start = now_ms();
    let o = run(
        &env,
        &work(
            &["--wait=1s", "--backoff", "300ms"],
            r#"[ "$QSPOOL_ATTEMPT" -ge 2 ]"#,
            &[],
        ),
    );
    // One run failed, so work reports failure although the message ended well.
    assert_exit(&o, 5);
    let lines = lines_of(&o);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("qspool: {id} attempt 1: exit 1 after ")),
        "{lines:?}"
    );
    assert!(
        lines[0].ends_with("; requeued, retry in 300ms"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("qspool: {id} attempt 2: exit 0 after ")),
        "{lines:?}"
    );
    assert_eq!(lines[2], "qspool: work: 2 runs: 1 acked, 1 requeued");
    let done = env.names("done");
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].starts_with(&format!("{id},a2,f")), "{done:?}");
    assert!(field(&done[0], 'f') >= start + 300, "{done:?}");
}

#[test]
fn a_cmd_that_cannot_be_started_gives_its_message_back_untouched() {
    let env = Env::init(&["--max-attempts", "1"]);
    let ids = env.push_all(&["a", "b", "c"]);
    let not_exec = env.scratch().join("not-executable");
    fs::write(&not_exec, "#!/bin/sh\nexit 0\n").unwrap();
    for prog in ["/nonexistent/prog", not_exec.to_str().unwrap()] {
        let front = id_of(&env.new_names()[0]).to_owned();
        let before = now_ms();
        let o = run(&env, &["work", "--", prog, "arg"]);
        assert_exit(&o, 1);
        let lines = lines_of(&o);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!(
                "qspool: run {prog:?} for {front} (given back untouched): "
            )),
            "{lines:?}"
        );
        assert_eq!(lines[1], "qspool: work: no CMD ran");
        // One bad start and work stops: the others are not even leased.
        let names = env.new_names();
        let mut left: Vec<&str> = names.iter().map(|n| id_of(n)).collect();
        left.sort();
        assert_eq!(left, ids, "{prog}");
        for name in &names {
            assert_eq!(field(name, 'a'), 0, "{prog}: {name}");
        }
        // Visible again at once, which puts it at the back of the queue.
        assert_eq!(id_of(names.last().unwrap()), front, "{names:?}");
        assert!(field(names.last().unwrap(), 'v') >= before, "{names:?}");
        assert!(env.names("leased").is_empty());
        assert!(env.names("dead").is_empty());
    }
    // No attempt was used up: even with one allowed, each message can still succeed.
    let o = run(&env, &["work", "--", "true"]);
    assert_exit(&o, 0);
    assert_eq!(env.names("done").len(), 3);
}

#[test]
fn work_without_a_cmd_after_the_double_dash_is_a_usage_error() {
    let env = Env::new();
    for (args, says) in [
        (&["work"][..], "<CMD>"),
        (&["work", "--"], "<CMD>"),
        (
            &["work", "-j", "2", "./send"],
            "tip: CMD goes after '--': work -- ./send",
        ),
    ] {
        let o = run(&env, args);
        assert_exit(&o, 2);
        let line = one_error_line(&o);
        assert!(line.contains(says), "{args:?}: {line}");
        assert!(line.ends_with("(see 'qspool work --help')"), "{line}");
    }
    assert!(!env.spool().exists());
}

#[test]
fn bad_option_values_are_usage_errors_and_create_nothing() {
    let env = Env::new();
    for opts in [
        &["--backoff", "1x"][..],
        &["--backoff-max", "zz"],
        &["--grace", "-1"],
        &["--lease", "0"],
        &["--wait=5x"],
        &["-j", "0"],
        &["-j", "1025"],
        &["-n", "0"],
        &["--max", "-3"],
    ] {
        let args = [&["work"], opts, &["--", "true"]].concat();
        let o = run(&env, &args);
        assert_exit(&o, 2);
        let line = one_error_line(&o);
        assert!(
            line.ends_with("(see 'qspool work --help')"),
            "{opts:?}: {line}"
        );
    }
    assert!(!env.spool().exists());
}

#[test]
fn wait_takes_its_value_only_after_an_equals_sign() {
    let env = Env::new();
    let o = run(&env, &["work", "--wait", "5s", "--", "true"]);
    assert_exit(&o, 2);
    let line = one_error_line(&o);
    assert!(
        line.contains("unexpected argument '5s' found; tip: write --wait=5s"),
        "{line}"
    );
    assert!(!env.spool().exists());
}

#[test]
fn a_lease_lost_while_cmd_runs_stops_cmd_and_leaves_the_message_alone() {
    let env = Env::new();
    let id = env.push("stolen");
    let out = scratch_dir(&env, "out");
    // CMD takes its own lease away, as a reclaim by another worker would. A heartbeat may
    // rename the lease between the glob and the mv: then it tries again.
    let script = r#"n=0
        until mv "$QSPOOL_SPOOL"/leased/*/*/"$QSPOOL_ID",* "$1/stolen" 2>/dev/null; do
            n=$((n + 1)); [ $n -lt 100 ] || exit 9
        done
        sleep 30.345"#;
    let mut w = Worker::spawn(&env, &work(&["--lease", "600ms"], script, &[&out]), "w");
    let started = Instant::now();
    let ended = w.finish();
    assert!(
        ended.at - started < Duration::from_secs(10),
        "work let CMD run on for {:?} after its lease was lost",
        ended.at - started
    );
    assert_eq!(ended.status.code(), Some(5), "{}", ended.stderr);
    let lines: Vec<&str> = ended.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("qspool: {id} attempt 1: lease lost after ")),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("qspool: {id} attempt 1: killed by SIGTERM after ")),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with("; its lease was lost, so the message was left to its new holder"),
        "{lines:?}"
    );
    assert_eq!(lines[2], "qspool: work: 1 run: 0 acked, 1 lease lost");
    assert_eq!(fs::read(Path::new(&out).join("stolen")).unwrap(), b"stolen");
    for dir in ["leased", "done", "dead"] {
        assert!(env.names(dir).is_empty(), "{dir}: {:?}", env.names(dir));
    }
    assert!(env.new_files().is_empty());
}

#[test]
fn a_cmd_that_succeeds_after_its_lease_was_lost_cannot_ack() {
    let env = Env::new();
    let id = env.push("stolen");
    let out = scratch_dir(&env, "out");
    let script = r#"mv "$QSPOOL_SPOOL"/leased/*/*/"$QSPOOL_ID",* "$1/stolen""#;
    let o = run(&env, &work(&[], script, &[&out]));
    assert_exit(&o, 5);
    let lines = lines_of(&o);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("qspool: {id} attempt 1: exit 0 after ")),
        "{lines:?}"
    );
    assert!(
        lines[0].ends_with(
            "; but its lease was lost first, so what becomes of the message is up to its new holder"
        ),
        "{lines:?}"
    );
    assert_eq!(lines[1], "qspool: work: 1 run: 0 acked, 1 lease lost");
    assert!(env.names("done").is_empty());
    assert!(Path::new(&out).join("stolen").exists());
}

#[test]
fn cmd_starts_with_no_signal_blocked_and_none_ignored_that_its_caller_did_not() {
    let env = Env::new();
    env.push("x");
    let status = ["grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"];
    let o = run(&env, &[&["work", "-q", "--"], &status[..]].concat());
    assert_exit(&o, 0);
    // What a child of the test inherits anyway (a CI runner may ignore SIGHUP, say).
    let base = std::process::Command::new(status[0])
        .args(&status[1..])
        .output()
        .unwrap();
    let base = stdout(&base);
    let ign = base.lines().find(|l| l.starts_with("SigIgn:")).unwrap();
    assert_eq!(stdout(&o), format!("SigBlk:\t0000000000000000\n{ign}\n"));
}

#[test]
fn cmd_inherits_no_descriptor_of_qspool_s_own() {
    let env = Env::new();
    env.push_all(&["a", "b"]);
    let out = scratch_dir(&env, "out");
    let script = r#"ls -l /proc/$$/fd > "$1/$QSPOOL_ID.fd"; sleep 0.2"#;
    let o = run(&env, &work(&["-j", "2"], script, &[&out]));
    assert_exit(&o, 0);
    let spool = fs::canonicalize(env.spool()).unwrap();
    let spool = spool.to_str().unwrap();
    let done = env.names("done");
    assert_eq!(done.len(), 2, "{done:?}");
    for name in done {
        let id = id_of(&name);
        let fds = fs::read_to_string(Path::new(&out).join(format!("{id}.fd"))).unwrap();
        let mut stdin = None;
        for line in fds.lines().filter(|l| l.contains(" -> ")) {
            let (fd, target) = line.rsplit_once(" -> ").unwrap();
            let fd = fd.rsplit(' ').next().unwrap();
            if fd == "0" {
                stdin = Some(target);
            } else {
                // Neither qspool's signalfd or inotify nor another message's file.
                assert!(
                    !target.contains("anon_inode") && !target.starts_with(spool),
                    "fd {fd} leaked into CMD: {fds}"
                );
            }
        }
        let stdin = stdin.unwrap_or_else(|| panic!("no standard input: {fds}"));
        // The lease's file, in its bucket: leased/KKKKKKK/SSS/RECEIPT.
        let lease = stdin.strip_prefix(&format!("{spool}/")).unwrap_or("");
        assert!(
            lease.contains(&format!("/{id},a1,l"))
                && lease == crate::harness::lease_rel(lease.rsplit('/').next().unwrap()),
            "{fds}"
        );
    }
}

#[test]
fn a_cmd_that_reports_the_shutdown_sigterm_as_exit_143_is_released_at_once() {
    // What a shell or a runtime that traps SIGTERM reports: 128 + 15.
    let env = Env::new();
    let id = env.push("plain");
    let out = scratch_dir(&env, "out");
    let script = r#"trap 'exit 143' TERM; : > "$1/ready"; sleep 30 & wait"#;
    let mut w = Worker::spawn(&env, &work(&["--backoff", "1h"], script, &[&out]), "w");
    wait_until(LONG, "CMD to start", || {
        Path::new(&out).join("ready").exists()
    });
    w.signal("TERM");
    let ended = w.finish();
    assert_eq!(ended.status.code(), Some(5), "{}", ended.stderr);
    assert!(
        ended.stderr.contains(": exit 143 after ") && ended.stderr.contains("stopped at shutdown"),
        "{}",
        ended.stderr
    );
    let names = env.new_names();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(&format!("{id},a1,v")), "{names:?}");
    assert!(field(&names[0], 'v') <= now_ms(), "no backoff: {names:?}");
}

#[test]
fn a_cmd_gets_the_shutdown_sigterm_once() {
    // A second SIGTERM could cut a CMD's cleanup short: the one to the group must be all.
    let env = Env::new();
    env.push("counted");
    let out = scratch_dir(&env, "out");
    // The group's SIGTERM also ends the `sleep` under way, which the shell would report.
    let script = r#"exec 2>/dev/null
        trap 'echo TERM >> "$1/terms"' TERM
        : > "$1/ready"
        while [ ! -s "$1/terms" ]; do sleep 0.01; done
        sleep 0.3
        exit 0"#;
    let mut w = Worker::spawn(&env, &work(&["--grace", "20s"], script, &[&out]), "w");
    wait_until(LONG, "CMD to start", || {
        Path::new(&out).join("ready").exists()
    });
    w.signal("TERM");
    let ended = w.finish();
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    let terms = fs::read_to_string(Path::new(&out).join("terms")).unwrap();
    assert_eq!(terms, "TERM\n");
    assert_eq!(env.names("done").len(), 1);
}

#[test]
fn a_cmd_leads_its_own_session_without_a_terminal() {
    // A CMD that prompts on a terminal must fail at once, not stop and hold its lease: it
    // has none. Field 6 of /proc/PID/stat is the session, field 7 the terminal (0: none).
    let env = Env::new();
    env.push("x");
    let out = scratch_dir(&env, "out");
    let script = r#"cut -d' ' -f5-7 /proc/$$/stat > "$1/stat"; echo $$ > "$1/pid""#;
    let o = run(&env, &work(&[], script, &[&out]));
    assert_exit(&o, 0);
    let pid = fs::read_to_string(Path::new(&out).join("pid")).unwrap();
    let stat = fs::read_to_string(Path::new(&out).join("stat")).unwrap();
    let pid = pid.trim();
    assert_eq!(stat.trim(), format!("{pid} {pid} 0"), "pgrp, session, tty");
}

//! `work` killed by SIGKILL takes its CMDs, and what they forked into their group, with it:
//! real processes, real kills, and a history of every run's timestamps checked for overlap.

use crate::harness::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for anything this machine should do at once, short enough to fail a test.
const PROMPT: Duration = Duration::from_millis(500);

/// `qspool --spool SPOOL work OPTS -- sh -c SCRIPT sh LOG`, in the background.
fn spawn_work(env: &Env, opts: &[&str], script: &str, log: &Path) -> Child {
    env.std_cmd(&[&["work"], opts, &["--", "sh", "-c", script, "sh"]].concat())
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `(pid, ppid, pgrp)` of every process that is not a zombie.
fn processes() -> Vec<(u32, u32, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid, pgrp.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 3 || f[0] == "Z" || f[0] == "X" {
            continue;
        }
        if let (Ok(pid), Ok(ppid), Ok(pgrp)) = (
            e.file_name().to_string_lossy().parse(),
            f[1].parse(),
            f[2].parse(),
        ) {
            out.push((pid, ppid, pgrp));
        }
    }
    out
}

fn alive_in_group(pgid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| p.2 == pgid)
        .map(|p| p.0)
        .collect()
}

/// The watchdog: the child of `work` that is qspool itself, not a CMD.
fn watchdog_of(work: u32) -> u32 {
    let deadline = Instant::now() + PROMPT;
    loop {
        for (pid, ppid, _) in processes() {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            if ppid == work && exe.as_deref() == Some(Path::new(qspool_bin())) {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no watchdog under work {work}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sigkill(pid: u32) {
    let ok = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -KILL {pid}");
}

/// A CMD that writes its process group to `$1.pgid`, forks a grandchild that stays in the
/// group and would write `late` after 2 s, and itself would write `end` after 2 s; attempt 2
/// and later succeed at once.
const SLOW_WITH_GRANDCHILD: &str = r#"
[ "$QSPOOL_ATTEMPT" -gt 1 ] && { echo "retry $QSPOOL_ATTEMPT" >> "$1"; exit 0; }
echo $$ > "$1.pgid.tmp" && mv "$1.pgid.tmp" "$1.pgid"
( sleep 2; echo late >> "$1" ) &
sleep 2; echo end >> "$1"
"#;

fn pgid_of(log: &Path) -> u32 {
    let file = log.with_extension("log.pgid");
    wait_for(PROMPT * 4, "CMD to start", || file.exists());
    std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_sigkilled_work_takes_its_cmd_and_its_grandchild_with_it_at_once() {
    let env = Env::init(&["--lease", "1s"]);
    env.push("job");
    let log = env.scratch().join("cmd.log");
    let mut work = spawn_work(&env, &[], SLOW_WITH_GRANDCHILD, &log);
    let pgid = pgid_of(&log);
    wait_for(PROMPT, "the grandchild", || alive_in_group(pgid).len() >= 3);
    sigkill(work.id());
    let killed = Instant::now();
    work.wait().unwrap();
    wait_for(PROMPT, "the CMD's group to be killed", || {
        alive_in_group(pgid).is_empty()
    });
    // Well within the heartbeat (a third of the 1 s lease): no later worker could have it yet.
    assert!(
        killed.elapsed() < Duration::from_millis(333),
        "{:?}",
        killed.elapsed()
    );
    // The watchdog is gone too: nothing of work's lingers.
    assert!(
        processes().iter().all(|p| p.1 != work.id()),
        "an orphan of work lingers"
    );

    // The lease expires; a new work runs the message again, as a new attempt.
    std::thread::sleep(Duration::from_millis(1100));
    let o = env.run(&[
        "work",
        "--",
        "sh",
        "-c",
        SLOW_WITH_GRANDCHILD,
        "sh",
        log.to_str().unwrap(),
    ]);
    assert_exit(&o, 0);
    std::thread::sleep(Duration::from_millis(2200));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text, "retry 2\n", "the first run ended with work: {text:?}");
    assert_eq!(env.names("done").len(), 1);
}

#[test]
fn a_sigkill_during_the_shutdown_grace_still_kills_the_cmd() {
    let env = Env::init(&["--lease", "1s"]);
    env.push("job");
    let log = env.scratch().join("cmd.log");
    // Ignores the shutdown's SIGTERM, so that the grace is running when work is killed.
    let script = format!("trap '' TERM; {SLOW_WITH_GRANDCHILD}");
    let mut work = spawn_work(&env, &["--grace", "30s"], &script, &log);
    let pgid = pgid_of(&log);
    Command::new("kill")
        .args(["-TERM", &work.id().to_string()])
        .status()
        .unwrap();
    // work has sent its SIGTERM (ignored) and waits out the grace.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive_in_group(pgid).is_empty(), "the CMD ignores SIGTERM");
    assert!(
        work.try_wait().unwrap().is_none(),
        "work waits for its grace"
    );
    sigkill(work.id());
    work.wait().unwrap();
    wait_for(PROMPT, "the CMD's group to be killed", || {
        alive_in_group(pgid).is_empty()
    });
    std::thread::sleep(Duration::from_millis(1100));
    assert_exit(&env.run(&["work", "--", "true"]), 0);
    assert_eq!(env.names("done").len(), 1, "the message is not lost");
}

#[test]
fn a_watchdog_killed_alone_is_replaced_and_the_message_is_not_lost() {
    let env = Env::init(&["--lease", "1s"]);
    env.push("job");
    let log = env.scratch().join("cmd.log");
    let mut work = spawn_work(&env, &[], SLOW_WITH_GRANDCHILD, &log);
    let pgid = pgid_of(&log);
    let first = watchdog_of(work.id());
    sigkill(first);
    // The CMD goes on; work starts another watchdog and tells it of the CMD.
    let mut second = first;
    wait_for(PROMPT, "a new watchdog", || {
        second = watchdog_of(work.id());
        second != first
    });
    assert!(!alive_in_group(pgid).is_empty(), "the CMD runs on");
    std::thread::sleep(Duration::from_millis(50));
    sigkill(work.id());
    work.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut work.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains(&format!(
            "the watchdog (pid {first}) died; pid {second} took over, guarding 1 running CMD(s)"
        )),
        "{err}"
    );
    wait_for(PROMPT, "the new watchdog to kill the CMD's group", || {
        alive_in_group(pgid).is_empty()
    });
    std::thread::sleep(Duration::from_millis(1100));
    assert_exit(&env.run(&["work", "--", "true"]), 0);
    assert_eq!(env.names("done").len(), 1);
}

/// Every run logs `start`, ticks and `end` (its grandchild ticks too) with the time in ns; runs
/// of one message by different attempts must never overlap. Most runs are short; a few (the
/// first four and one in a hundred) run 3 s, longer than any round of kills, so they are killed
/// again and again and cycle to the back of the queue. Once the short ones are done, such a
/// message is run again soon after its lease expires, while a run orphaned by the kill would
/// still tick: without the watchdog this test fails.
const TICKING: &str = r#"
log() { echo "$QSPOOL_ID $QSPOOL_ATTEMPT $2 $(date +%s%N)" >> "$1"; }
n=1; case "$(cat)" in m[0-3]|*37) n=30;; esac
log "$1" start
( i=0; while [ $i -lt $n ]; do sleep 0.1; log "$1" gtick; i=$((i + 1)); done ) &
i=0; while [ $i -lt $n ]; do sleep 0.1; log "$1" tick; i=$((i + 1)); done
wait; log "$1" end
"#;

#[test]
fn work_killed_at_random_moments_never_lets_two_runs_of_a_message_overlap() {
    let n = if soak() { 800 } else { 300 };
    let long = (0..n).filter(|i| *i < 4 || i % 100 == 37).count();
    let env = Env::init(&["--lease", "1s", "--max-attempts", "100"]);
    let bodies: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    env.push_all(&refs);
    let log = env.scratch().join("runs.log");
    let mut seed = now_ms() | 1;
    let mut rand = |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    // Kills go on for a few rounds after the short messages are done, so that the long ones
    // are killed with nothing ahead of them in the queue.
    let begun = Instant::now();
    let (mut kills, mut after_short) = (0, 0);
    while after_short < 4 {
        assert!(
            begun.elapsed() < Duration::from_secs(120),
            "the short messages do not drain under kills"
        );
        if env.names("done").len() >= n - long {
            after_short += 1;
        }
        let mut work = spawn_work(&env, &["-j", "4", "--wait"], TICKING, &log);
        std::thread::sleep(Duration::from_millis(200 + rand(900)));
        sigkill(work.id());
        work.wait().unwrap();
        kills += 1;
    }
    // The last leases expire; then one work drains the rest.
    std::thread::sleep(Duration::from_millis(1100));
    let o = env.run(&[
        "work",
        "-j",
        "4",
        "--",
        "sh",
        "-c",
        TICKING,
        "sh",
        log.to_str().unwrap(),
    ]);
    assert_exit(&o, 0);
    std::thread::sleep(Duration::from_millis(300));

    let text = std::fs::read_to_string(&log).unwrap();
    // id -> attempt -> (first, last, ended)
    let mut runs: BTreeMap<String, BTreeMap<u32, (u128, u128, bool)>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 4, "{line:?}");
        let (attempt, t): (u32, u128) = (f[1].parse().unwrap(), f[3].parse().unwrap());
        let run = runs
            .entry(f[0].to_owned())
            .or_default()
            .entry(attempt)
            .or_insert((t, t, false));
        run.0 = run.0.min(t);
        run.1 = run.1.max(t);
        run.2 |= f[2] == "end";
    }
    assert_eq!(runs.len(), n, "every message ran");
    assert_eq!(env.names("done").len(), n, "every message was acked");
    assert!(env.names("leased").is_empty() && env.new_names().is_empty());
    let mut retried = 0;
    for (id, attempts) in &runs {
        let mut last_end: Option<(u32, u128)> = None;
        for (&attempt, &(first, last, _)) in attempts {
            if let Some((prev, end)) = last_end {
                assert!(
                    end < first,
                    "{id}: attempt {prev} still ran at {end}, after attempt {attempt} began at {first}"
                );
                retried += 1;
            }
            last_end = Some((attempt, last));
        }
        let (_, &(_, _, ended)) = attempts.last_key_value().unwrap();
        assert!(ended, "{id}: its last run did not finish");
    }
    eprintln!("{n} messages, {kills} kills, {retried} runs after a killed one, no overlap");
    assert!(
        retried > 0,
        "no run was ever killed: the test proved nothing"
    );
}

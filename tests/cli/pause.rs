//! `pause` and `resume`: consumption stops and restarts, pushes go on, waiters keep waiting.

use crate::harness::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_paused_spool_takes_pushes_but_pop_exits_3_saying_why() {
    let env = Env::new();
    let a = env.push("a");
    let out = env.qspool(&["pause"]).expect(0);
    let line = stdout(&out);
    assert!(line.contains("paused since 20"), "{line}");
    let b = env.push("b");
    let err = env.qspool(&["pop"]).fails(3);
    assert!(err.contains("paused since"), "{err}");
    assert!(err.contains("qspool resume"), "{err}");
    assert!(err.contains(&env.spool().display().to_string()), "{err}");
    // Nothing moved: both messages wait in new/.
    assert_eq!(env.new_names().len(), 2);
    assert!(env.names("leased").is_empty());
    assert!(stdout(&env.qspool(&["resume"]).expect(0)).contains("resumed"));
    assert_eq!(id(&env.pop_json(&[])), a);
    assert_eq!(id(&env.pop_json(&[])), b);
}

#[test]
fn pausing_twice_keeps_the_first_time_and_resuming_an_unpaused_spool_says_so() {
    let env = Env::new();
    env.push("x");
    let first = stdout(&env.qspool(&["pause"]).expect(0));
    std::thread::sleep(Duration::from_millis(20));
    let second = stdout(&env.qspool(&["pause"]).expect(0));
    assert_eq!(first, second);
    assert!(stdout(&env.qspool(&["resume"]).expect(0)).contains("resumed"));
    assert!(stdout(&env.qspool(&["resume"]).expect(0)).contains("not paused"));
}

#[test]
fn pause_survives_as_a_file_and_needs_a_spool() {
    let env = Env::new();
    env.qspool(&["pause"]).fails(1);
    assert!(!env.spool().exists(), "pause must not create a spool");
    env.push("x");
    env.qspool(&["pause"]).expect(0);
    let text = std::fs::read_to_string(env.spool().join("paused")).unwrap();
    assert_eq!(text.len(), 14, "{text:?}");
    // A pause file written by hand (touch) pauses too; its time is the file's.
    env.qspool(&["resume"]).expect(0);
    std::fs::write(env.spool().join("paused"), "").unwrap();
    assert!(env.qspool(&["pop"]).fails(3).contains("paused since"));
    let s = env.stats();
    assert_eq!(s["paused"], true);
}

#[test]
fn stats_shows_the_pause_in_every_format() {
    let env = Env::new();
    env.push("x");
    let s = env.stats();
    assert_eq!(s["paused"], false);
    assert!(s["paused_since"].is_null());
    let prom = stdout(&env.qspool(&["stats", "--prometheus"]).expect(0));
    assert!(prom.contains("qspool_paused{"), "{prom}");
    assert!(prom.contains("} 0\n"), "{prom}");
    assert!(!prom.contains("qspool_paused_since_seconds"), "{prom}");
    let before = now_ms();
    env.qspool(&["pause"]).expect(0);
    let s = env.stats();
    assert_eq!(s["paused"], true);
    let since = rfc3339_ms(s["paused_since"].as_str().unwrap());
    assert!(since >= before - 1 && since <= now_ms(), "{since}");
    let human = stdout(&env.qspool(&["stats"]).expect(0));
    assert!(human.contains("paused   since "), "{human}");
    let prom = stdout(&env.qspool(&["stats", "--prometheus"]).expect(0));
    let line = prom
        .lines()
        .find(|l| l.starts_with("qspool_paused{"))
        .unwrap();
    assert!(line.ends_with(" 1"), "{line}");
    assert!(prom.contains("qspool_paused_since_seconds{"), "{prom}");
}

#[test]
fn a_waiting_pop_keeps_waiting_through_a_pause_and_takes_the_message_at_resume() {
    let env = Env::new();
    env.push("first");
    env.qspool(&["pause"]).expect(0);
    let child = env
        .std_cmd(&["pop", "--wait=20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Still waiting, the message untouched, past more than one re-check.
    assert_eq!(env.new_names().len(), 1);
    env.qspool(&["resume"]).expect(0);
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "first");
}

#[test]
fn a_pop_that_waits_out_its_limit_while_paused_exits_3_saying_paused() {
    let env = Env::new();
    env.push("x");
    env.qspool(&["pause"]).expect(0);
    let err = env.qspool(&["pop", "--wait=300ms"]).fails(3);
    assert!(err.contains("paused since"), "{err}");
}

#[test]
fn work_holds_off_while_paused_says_so_once_and_goes_on_at_resume() {
    let env = Env::new();
    let log = env.scratch().join("log");
    let script = format!("cat >> {}; echo >> {}", log.display(), log.display());
    env.push("before");
    env.qspool(&["pause"]).expect(0);
    let work = env
        .std_cmd(&["work", "--wait", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    env.push("during");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!log.exists(), "a CMD ran while paused");
    env.qspool(&["resume"]).expect(0);
    wait_for(Duration::from_secs(10), "both messages to run", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 2)
    });
    let pid = work.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let o = work.wait_with_output().unwrap();
    let err = stderr(&o);
    let paused: Vec<&str> = err.lines().filter(|l| l.contains("paused since")).collect();
    assert_eq!(paused.len(), 1, "{err}");
    assert!(paused[0].contains("holding off"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "before\nduring\n",
        "in queue order"
    );
}

#[test]
fn work_without_wait_on_a_paused_spool_runs_nothing_and_exits() {
    let env = Env::new();
    env.push("x");
    env.qspool(&["pause"]).expect(0);
    let o = env.qspool(&["work", "--", "true"]).output();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("paused since"), "{}", stderr(&o));
    assert_eq!(env.new_names().len(), 1);
}

#[test]
fn a_pause_file_that_is_a_link_or_a_directory_is_refused() {
    let env = Env::new();
    env.push("x");
    let target = env.scratch().join("elsewhere");
    std::fs::write(&target, "").unwrap();
    std::os::unix::fs::symlink(&target, env.spool().join("paused")).unwrap();
    let err = env.qspool(&["pop"]).fails(1);
    assert!(err.contains("paused: a symbolic link"), "{err}");
    env.qspool(&["stats"]).fails(1);
    // resume refuses it too, and leaves it and its target alone.
    env.qspool(&["resume"]).fails(1);
    assert!(target.exists());
    std::fs::remove_file(env.spool().join("paused")).unwrap();
    std::fs::create_dir(env.spool().join("paused")).unwrap();
    assert!(
        env.qspool(&["pop"])
            .fails(1)
            .contains("paused: not a regular file")
    );
}

#[test]
fn racing_pauses_agree_on_the_first_time() {
    let env = Env::init(&[]);
    let children: Vec<_> = (0..8)
        .map(|_| {
            env.std_cmd(&["pause"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert_exit(&o, 0);
            stdout(&o)
        })
        .collect();
    assert!(outs.iter().all(|o| o == &outs[0]), "{outs:?}");
    let left: Vec<_> = std::fs::read_dir(env.spool())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

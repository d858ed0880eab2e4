//! Retention of acked messages: `init --retain-done`, and its enforcement by
//! `requeue --expired` and, opportunistically, by `stats`.

use crate::harness::*;
use std::path::PathBuf;

/// Acks one message and back-dates its finish time by `age_ms`, as if it had been acked that
/// long ago; returns its id and its path in done/.
fn done_aged(env: &Env, body: &str, age_ms: u64) -> (String, PathBuf) {
    env.push(body);
    let v = env.pop_json(&["--ack"]);
    let id = id(&v);
    let done = env.spool().join("done");
    let name = env
        .names("done")
        .into_iter()
        .find(|n| n.starts_with(&id))
        .unwrap();
    let (head, _) = name.rsplit_once(",f").unwrap();
    let aged = format!("{head},f{}", now_ms() - age_ms);
    std::fs::rename(done.join(&name), done.join(&aged)).unwrap();
    (id, done.join(aged))
}

#[test]
fn init_stores_and_prints_the_retention() {
    let env = Env::new();
    let o = env.run(&["init", "--retain-done", "2h"]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).ends_with(": max-attempts 5, lease 30s, retain-done 2h, dedup-window 5m\n"),
        "{}",
        stdout(&o)
    );
    assert_eq!(env.settings()["retain_done_ms"], 7_200_000);
    // Other settings keep it.
    assert_exit(&env.run(&["init", "--lease", "1m"]), 0);
    assert_eq!(env.settings()["retain_done_ms"], 7_200_000);
    assert_exit(&env.run(&["init", "--retain-done", "soon"]), 2);
}

#[test]
fn a_settings_file_from_before_retention_gets_a_day() {
    let env = Env::new();
    env.push("x");
    std::fs::write(
        env.spool().join("qspool.json"),
        "{\"max_attempts\":3,\"lease_ms\":1000}\n",
    )
    .unwrap();
    let o = env.run(&["init"]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).ends_with("max-attempts 3, lease 1s, retain-done 1d, dedup-window 5m\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn requeue_expired_purges_done_messages_past_retention_only() {
    let env = Env::init(&["--retain-done", "1h"]);
    let (old, old_path) = done_aged(&env, "old", 2 * 3_600_000);
    let (recent, recent_path) = done_aged(&env, "recent", 30 * 60_000);
    let o = run(&env, &["requeue", "--expired"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("purged {old}\n"));
    assert!(!old_path.exists());
    assert!(recent_path.exists(), "{recent} kept");
    // Dead messages are never purged by retention: they are there to be looked at.
    env.push("poison");
    let v = env.pop_json(&[]);
    assert_exit(&env.run(&["bury", &receipt(&v)]), 0);
    assert_eq!(env.names("dead").len(), 1);
    assert_exit(&env.run(&["init", "--retain-done", "0"]), 0);
    let o = run(&env, &["requeue", "--expired"]);
    assert_eq!(stdout(&o), format!("purged {recent}\n"));
    assert_eq!(env.names("dead").len(), 1);
}

#[test]
fn stats_purges_expired_done_messages_and_does_not_count_them() {
    let env = Env::init(&["--retain-done", "1h"]);
    done_aged(&env, "old", 2 * 3_600_000);
    done_aged(&env, "recent", 60_000);
    assert_eq!(env.stats()["done"], 1);
    assert_eq!(env.names("done").len(), 1);
}

#[test]
fn retention_never_removes_a_link_under_a_done_name() {
    let env = Env::init(&["--retain-done", "1h"]);
    let (_, path) = done_aged(&env, "old", 2 * 3_600_000);
    let secret = env.scratch().join("secret");
    std::fs::write(&secret, "keep me").unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&secret, &path).unwrap();
    let o = run(&env, &["requeue", "--expired"]);
    assert_exit(&o, 1);
    let line = one_error_line(&o);
    assert!(line.contains(path.to_str().unwrap()), "{line}");
    assert!(std::fs::symlink_metadata(&path).is_ok());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "keep me");
}

#[test]
fn the_age_of_done_and_dead_messages_runs_from_when_they_got_there() {
    // Pushed just now, but acked "two hours ago": what retention and purges go by, and what
    // stats shows for done (its histogram still counts from the push, as qshape does).
    let env = Env::new();
    done_aged(&env, "x", 2 * 3_600_000);
    let s = env.stats();
    let age = s["oldest_age_seconds"]["done"].as_f64().unwrap();
    assert!((7200.0..7300.0).contains(&age), "{s}");
    assert_eq!(s["age_histogram"]["done"][0], 1, "{s}");
}

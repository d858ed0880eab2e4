//! `requeue` (receipts, `--delay`, `--expired`), `extend`, `bury`, attempts and dead-lettering.

use crate::harness::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

/// A snapshot of every state directory, to show that a refused command moved nothing.
fn snapshot(env: &Env) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
    (
        env.new_names(),
        env.names("leased"),
        env.names("done"),
        env.names("dead"),
    )
}

fn one_line(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
    assert!(err.starts_with("qspool: "), "stderr: {err:?}");
    err
}

#[test]
fn requeue_returns_message_to_new_with_attempt_kept() {
    let env = Env::new();
    let a = env.push("alpha");
    let m = env.pop_json(&[]);
    assert_eq!(id(&m), a);
    assert_eq!(m["attempt"], 1);
    let o = run(&env, &["requeue", &receipt(&m)]);
    assert_exit(&o, 0);
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert!(env.names("leased").is_empty());
    let names = env.new_names();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(&format!("{a},a1,v")), "{names:?}");
    let again = env.pop_json(&[]);
    assert_eq!(id(&again), a);
    assert_eq!(again["attempt"], 2);
    assert_eq!(again["body"], "alpha");
}

#[test]
fn requeued_message_goes_to_the_back_of_the_queue() {
    let env = Env::new();
    let a = env.push("a");
    let b = env.push("b");
    let m = env.pop_json(&[]);
    assert_eq!(id(&m), a);
    pause();
    assert_exit(&run(&env, &["requeue", &receipt(&m)]), 0);
    assert_eq!(id(&env.pop_json(&[])), b);
    let again = env.pop_json(&[]);
    assert_eq!(id(&again), a);
    assert_eq!(again["attempt"], 2);
}

#[test]
fn requeue_with_delay_keeps_the_message_invisible() {
    let env = Env::new();
    let a = env.push("later");
    let m = env.pop_json(&[]);
    let before = now_ms();
    assert_exit(&run(&env, &["requeue", "--delay", "1h", &receipt(&m)]), 0);
    let names = env.new_names();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with(&format!("{a},a1,")), "{names:?}");
    let visible = field(&names[0], 'v');
    assert!(visible >= before + 3_600_000, "{visible} vs {before}");
    assert!(visible <= now_ms() + 3_600_000, "{visible}");
    let s = env.stats();
    assert_eq!(s["delayed"], 1, "{s}");
    assert_eq!(s["ready"], 0, "{s}");
    assert_exit(&run(&env, &["pop"]), 3);
}

#[test]
fn requeue_with_zero_delay_is_visible_at_once() {
    let env = Env::new();
    env.push("x");
    let m = env.pop_json(&[]);
    assert_exit(&run(&env, &["requeue", "--delay", "0", &receipt(&m)]), 0);
    assert_eq!(env.pop_json(&[])["attempt"], 2);
}

#[test]
fn requeue_of_the_last_attempt_dead_letters() {
    let env = Env::init(&["--max-attempts", "2"]);
    let a = env.push("poison");
    let m1 = env.pop_json(&[]);
    assert_eq!(m1["attempt"], 1);
    assert_exit(&run(&env, &["requeue", &receipt(&m1)]), 0);
    assert!(env.names("dead").is_empty());
    let m2 = env.pop_json(&[]);
    assert_eq!(m2["attempt"], 2);
    assert_exit(&run(&env, &["requeue", &receipt(&m2)]), 0);
    assert!(env.new_names().is_empty(), "{:?}", env.new_names());
    assert!(env.names("leased").is_empty());
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1);
    assert!(dead[0].starts_with(&format!("{a},a2,f")), "{dead:?}");
    assert_exit(&run(&env, &["pop"]), 3);
}

#[test]
fn requeue_with_delay_of_the_last_attempt_still_dead_letters() {
    let env = Env::init(&["--max-attempts", "1"]);
    env.push("x");
    let m = env.pop_json(&[]);
    assert_exit(&run(&env, &["requeue", "--delay", "1h", &receipt(&m)]), 0);
    assert_eq!(env.names("dead").len(), 1);
    assert!(env.new_names().is_empty());
}

#[test]
fn requeue_needs_receipts_or_expired() {
    let env = Env::new();
    env.push("x");
    let o = run(&env, &["requeue"]);
    assert_exit(&o, 2);
    let o = run(&env, &["requeue", "--delay", "5s"]);
    assert_exit(&o, 2);
    assert_eq!(env.new_names().len(), 1);
}

#[test]
fn requeue_expired_conflicts_with_receipts_and_delay() {
    let env = Env::new();
    env.push("x");
    let m = env.pop_json(&[]);
    assert_exit(&run(&env, &["requeue", "--expired", &receipt(&m)]), 2);
    assert_exit(&run(&env, &["requeue", "--expired", "--delay", "1s"]), 2);
    assert_eq!(env.names("leased"), vec![receipt(&m)]);
}

#[test]
fn requeue_bad_delay_is_usage() {
    let env = Env::new();
    env.push("x");
    let m = env.pop_json(&[]);
    assert_exit(&run(&env, &["requeue", "--delay", "soon", &receipt(&m)]), 2);
    assert_eq!(env.names("leased"), vec![receipt(&m)]);
}

#[test]
fn requeue_expired_moves_only_expired_leases_and_says_so() {
    let env = Env::init(&["--max-attempts", "2"]);
    let live = env.push("live");
    let last = env.push("last-attempt");
    let first = env.push("first-attempt");
    let ml = env.pop_json(&["--lease", "1h"]);
    assert_eq!(id(&ml), live);
    let m = env.pop_json(&[]);
    assert_eq!(id(&m), last);
    assert_exit(&run(&env, &["requeue", &receipt(&m)]), 0);
    // One pop leases both (no reclaim in between): `first` on attempt 1, `last` on attempt 2.
    let o = run(&env, &["pop", "--json", "-n", "2", "--lease", "1ms"]);
    assert_exit(&o, 0);
    let got: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (id(&got[0]), got[0]["attempt"].as_u64()),
        (first.clone(), Some(1))
    );
    assert_eq!(
        (id(&got[1]), got[1]["attempt"].as_u64()),
        (last.clone(), Some(2))
    );
    pause();

    let o = run(&env, &["requeue", "--expired"]);
    assert_exit(&o, 0);
    let mut lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![format!("dead {last}"), format!("requeued {first}")]
    );
    assert_eq!(env.names("leased"), vec![receipt(&ml)]);
    let names = env.new_names();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with(&format!("{first},a1,")), "{names:?}");
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1);
    assert!(dead[0].starts_with(&format!("{last},a2,")), "{dead:?}");

    // Nothing left to do: a second run prints nothing.
    let o = run(&env, &["requeue", "--expired"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");
}

#[test]
fn requeue_expired_on_missing_spool_fails() {
    let env = Env::new();
    let o = run(&env, &["requeue", "--expired"]);
    assert_exit(&o, 1);
    let err = one_line(&o);
    assert!(err.contains("no spool at"), "{err}");
    assert!(!env.spool().exists());
}

fn set_mtime(path: &Path, ago: Duration) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - ago).unwrap();
}

#[test]
fn requeue_expired_removes_only_old_tmp_leftovers_of_our_grammar() {
    let env = Env::new();
    env.push("keep me");
    let tmp = env.spool().join("tmp");
    let old_ours = "1700000000000000.42.00000000.00000000.h,a0,v1700000000000";
    let young_ours = "1700000000000001.42.00000001.00000000.h,a0,v1700000000000";
    let edge_ours = "1700000000000002.42.00000002.00000000.h,a0,v1700000000000";
    let old_foreign = "leftover.txt";
    let old_other_grammar =
        "1700000000000003.42.00000003.00000000.h,a1,l1700000000000,t0000000000000001";
    for n in [
        old_ours,
        young_ours,
        edge_ours,
        old_foreign,
        old_other_grammar,
    ] {
        fs::write(tmp.join(n), b"partial").unwrap();
    }
    let day = Duration::from_secs(24 * 3600);
    set_mtime(&tmp.join(old_ours), 3 * day);
    set_mtime(&tmp.join(old_foreign), 3 * day);
    set_mtime(&tmp.join(old_other_grammar), 3 * day);
    // Just younger than 36 hours: kept.
    set_mtime(&tmp.join(edge_ours), Duration::from_secs(35 * 3600));

    let o = run(&env, &["requeue", "--expired"]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    for line in out.lines() {
        assert!(
            line.starts_with("requeued ")
                || line.starts_with("dead ")
                || line.starts_with("removed "),
            "unexpected line {line:?}"
        );
    }
    assert!(!out.contains("requeued") && !out.contains("dead "), "{out}");
    let mut left = env.names("tmp");
    left.sort();
    let mut want = vec![
        young_ours.to_owned(),
        edge_ours.to_owned(),
        old_foreign.to_owned(),
        old_other_grammar.to_owned(),
    ];
    want.sort();
    assert_eq!(left, want);
    // The queue itself is untouched.
    assert_eq!(env.new_names().len(), 1);
    assert_eq!(env.pop_json(&[])["body"], "keep me");
}

#[test]
fn requeue_expired_never_removes_linked_tmp_entries() {
    let env = Env::new();
    env.push("x");
    let tmp = env.spool().join("tmp");
    let outside = env.scratch().join("precious");
    fs::write(&outside, b"do not delete").unwrap();
    let link_name = "1700000000000000.42.00000000.00000000.h,a0,v1700000000000";
    let hard_name = "1700000000000001.42.00000001.00000000.h,a0,v1700000000000";
    std::os::unix::fs::symlink(&outside, tmp.join(link_name)).unwrap();
    fs::hard_link(&outside, tmp.join(hard_name)).unwrap();
    set_mtime(&outside, Duration::from_secs(3 * 24 * 3600));
    let st = std::process::Command::new("touch")
        .args(["-h", "-m", "-d", "3 days ago"])
        .arg(tmp.join(link_name))
        .status()
        .unwrap();
    assert!(st.success());
    assert_exit(&run(&env, &["requeue", "--expired"]), 0);
    let mut want = vec![link_name.to_owned(), hard_name.to_owned()];
    want.sort();
    assert_eq!(env.names("tmp"), want);
    assert_eq!(fs::read(&outside).unwrap(), b"do not delete");
}

#[test]
fn pop_reclaims_expired_leases_by_itself() {
    let env = Env::new();
    let a = env.push("again");
    let m1 = env.pop_json(&["--lease", "1ms"]);
    pause();
    let m2 = env.pop_json(&[]);
    assert_eq!(id(&m2), a);
    assert_eq!(m2["attempt"], 2);
    assert_ne!(receipt(&m1), receipt(&m2));
    assert_eq!(env.names("leased"), vec![receipt(&m2)]);
}

#[test]
fn a_message_is_handed_out_at_most_max_attempts_times() {
    let env = Env::init(&["--max-attempts", "3"]);
    let a = env.push("flaky");
    for attempt in 1..=3 {
        let m = env.pop_json(&[]);
        assert_eq!(id(&m), a);
        assert_eq!(m["attempt"], attempt);
        assert_exit(&run(&env, &["requeue", &receipt(&m)]), 0);
    }
    assert_exit(&run(&env, &["pop"]), 3);
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1);
    assert!(dead[0].starts_with(&format!("{a},a3,")), "{dead:?}");
}

#[test]
fn expiry_counts_as_an_attempt_too() {
    let env = Env::init(&["--max-attempts", "2"]);
    let a = env.push("slow");
    assert_eq!(env.pop_json(&["--lease", "1ms"])["attempt"], 1);
    pause();
    assert_eq!(env.pop_json(&["--lease", "1ms"])["attempt"], 2);
    pause();
    let o = run(&env, &["pop"]);
    assert_exit(&o, 3);
    assert!(o.stdout.is_empty());
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1);
    assert!(dead[0].starts_with(&format!("{a},a2,")), "{dead:?}");
    assert!(env.names("leased").is_empty());
}

#[test]
fn lowering_max_attempts_dead_letters_instead_of_delivering() {
    let env = Env::init(&["--max-attempts", "5"]);
    let a = env.push("tired");
    let b = env.push("fresh");
    for _ in 0..2 {
        let m = env.pop_json(&[]);
        assert_eq!(id(&m), a);
        pause();
        assert_exit(&run(&env, &["requeue", &receipt(&m)]), 0);
        // b is now ahead of a; take it out of the way and put it back behind a.
        let mb = env.pop_json(&[]);
        assert_eq!(id(&mb), b);
        pause();
        assert_exit(&run(&env, &["requeue", &receipt(&mb)]), 0);
    }
    // a and b have had 2 leases each; from now on only 2 are allowed.
    env.cmd(&["init", "--max-attempts", "2"]).assert().success();
    let o = run(&env, &["pop", "--json"]);
    assert_exit(&o, 3);
    assert!(o.stdout.is_empty());
    let mut dead = env.names("dead");
    dead.sort();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead.iter().any(|d| d.starts_with(&format!("{a},a2,"))));
    assert!(dead.iter().any(|d| d.starts_with(&format!("{b},a2,"))));
    assert!(env.new_names().is_empty());

    // With a limit of 3 instead, a message with 2 attempts is still delivered (attempt 3).
    let env = Env::init(&["--max-attempts", "5"]);
    let c = env.push("c");
    for _ in 0..2 {
        let m = env.pop_json(&[]);
        assert_exit(&run(&env, &["requeue", &receipt(&m)]), 0);
    }
    env.cmd(&["init", "--max-attempts", "3"]).assert().success();
    let m = env.pop_json(&[]);
    assert_eq!(id(&m), c);
    assert_eq!(m["attempt"], 3);
}

#[test]
fn extend_prints_a_new_receipt_and_kills_the_old_one() {
    let env = Env::new();
    let a = env.push("work");
    let m = env.pop_json(&["--lease", "1m"]);
    let old = receipt(&m);
    let o = run(&env, &["extend", &old, "--lease", "1h"]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    let new = out.trim_end().to_owned();
    assert_ne!(new, old);
    assert!(new.starts_with(&format!("{a},a1,l")), "{new}");
    assert!(field(&new, 'l') > field(&old, 'l'));
    assert!(field(&new, 'l') >= now_ms() + 3_500_000);
    assert_eq!(env.names("leased"), vec![new.clone()]);

    let o = run(&env, &["ack", &old]);
    assert_exit(&o, 4);
    one_line(&o);
    assert_eq!(env.names("leased"), vec![new.clone()]);
    assert_exit(&run(&env, &["ack", &new]), 0);
    assert!(env.names("leased").is_empty());
    assert_eq!(env.names("done").len(), 1);
}

#[test]
fn extend_may_shorten_a_lease() {
    let env = Env::new();
    let a = env.push("x");
    let m = env.pop_json(&["--lease", "1h"]);
    let o = run(&env, &["extend", "--lease", "1ms", &receipt(&m)]);
    assert_exit(&o, 0);
    let new = stdout(&o).trim_end().to_owned();
    assert!(field(&new, 'l') < field(&receipt(&m), 'l'));
    pause();
    assert_eq!(env.stats()["expired"], 1);
    let again = env.pop_json(&[]);
    assert_eq!(id(&again), a);
    assert_eq!(again["attempt"], 2);
}

#[test]
fn extend_defaults_to_the_spool_lease() {
    let env = Env::init(&["--lease", "2h"]);
    env.push("x");
    let m = env.pop_json(&["--lease", "1s"]);
    let before = now_ms();
    let o = run(&env, &["extend", &receipt(&m)]);
    assert_exit(&o, 0);
    let l = field(stdout(&o).trim_end(), 'l');
    assert!(l >= before + 7_200_000 && l <= now_ms() + 7_200_000, "{l}");
}

#[test]
fn extend_of_a_stale_receipt_is_not_found() {
    let env = Env::new();
    env.push("x");
    let m = env.pop_json(&[]);
    let r = receipt(&m);
    let o = run(&env, &["extend", &r]);
    assert_exit(&o, 0);
    let newer = stdout(&o).trim_end().to_owned();
    // Extending the replaced receipt again fails and changes nothing.
    let o = run(&env, &["extend", &r]);
    assert_exit(&o, 4);
    assert!(stdout(&o).is_empty());
    let err = one_line(&o);
    assert!(err.contains("leased"), "{err}");
    assert_eq!(env.names("leased"), vec![newer.clone()]);
    // After an ack, the latest receipt is stale too.
    assert_exit(&run(&env, &["ack", &newer]), 0);
    let before = snapshot(&env);
    assert_exit(&run(&env, &["extend", &newer]), 4);
    assert_eq!(snapshot(&env), before);
}

#[test]
fn extend_usage_errors() {
    let env = Env::new();
    env.push("x");
    let m = env.pop_json(&[]);
    let r = receipt(&m);
    assert_exit(&run(&env, &["extend"]), 2);
    assert_exit(&run(&env, &["extend", &r, "--lease", "0"]), 2);
    assert_exit(&run(&env, &["extend", &r, "--lease", "fortnight"]), 2);
    assert_exit(&run(&env, &["extend", &r, &r]), 2);
    let o = run(&env, &["extend", "not-a-receipt"]);
    assert_exit(&o, 2);
    one_line(&o);
    assert_eq!(env.names("leased"), vec![r]);
}

#[test]
fn extend_on_missing_spool_fails_without_creating_it() {
    let env = Env::new();
    let r = "1700000000000000.42.00000000.00000000.h,a1,l1700000000000,t0000000000000001";
    for cmd in ["extend", "requeue", "bury"] {
        let o = run(&env, &[cmd, r]);
        assert_exit(&o, 1);
        assert!(one_line(&o).contains("no spool at"));
    }
    assert!(!env.spool().exists());
}

#[test]
fn bury_moves_a_lease_to_dead_whatever_attempts_remain() {
    let env = Env::init(&["--max-attempts", "5"]);
    let a = env.push("poison");
    let b = env.push("fine");
    let m = env.pop_json(&[]);
    assert_eq!(id(&m), a);
    let o = run(&env, &["bury", &receipt(&m)]);
    assert_exit(&o, 0);
    assert!(stdout(&o).is_empty());
    assert!(env.names("leased").is_empty());
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1);
    assert!(dead[0].starts_with(&format!("{a},a1,f")), "{dead:?}");
    assert_eq!(env.stats()["dead"], 1);
    // The rest of the queue is unaffected.
    assert_eq!(id(&env.pop_json(&[])), b);
    assert_exit(&run(&env, &["pop"]), 3);
}

#[test]
fn bury_of_several_receipts() {
    let env = Env::new();
    env.push("a");
    env.push("b");
    let m1 = env.pop_json(&[]);
    let m2 = env.pop_json(&[]);
    assert_exit(&run(&env, &["bury", &receipt(&m1), &receipt(&m2)]), 0);
    assert_eq!(env.names("dead").len(), 2);
    assert_exit(&run(&env, &["bury"]), 2);
}

#[test]
fn stale_receipts_exit_4_and_move_nothing() {
    for cmd in ["requeue", "extend", "bury", "ack"] {
        let env = Env::new();
        env.push("x");
        env.push("y");
        let m = env.pop_json(&[]);
        let r = receipt(&m);
        assert_exit(&run(&env, &["ack", &r]), 0);
        let live = env.pop_json(&[]);
        let before = snapshot(&env);
        let o = run(&env, &[cmd, &r]);
        assert_exit(&o, 4);
        let err = one_line(&o);
        assert!(err.contains(&r), "{cmd}: {err}");
        assert!(stdout(&o).is_empty(), "{cmd}: {}", stdout(&o));
        assert_eq!(snapshot(&env), before, "{cmd} moved something");
        assert_eq!(env.names("leased"), vec![receipt(&live)]);
    }
}

#[test]
fn a_reclaimed_lease_is_stale_for_requeue_extend_and_bury() {
    for cmd in ["requeue", "extend", "bury"] {
        let env = Env::new();
        env.push("x");
        let a = env.pop_json(&["--lease", "1ms"]);
        pause();
        let b = env.pop_json(&["--lease", "1h"]);
        assert_eq!(b["attempt"], 2);
        let before = snapshot(&env);
        assert_exit(&run(&env, &[cmd, &receipt(&a)]), 4);
        assert_eq!(snapshot(&env), before, "{cmd}");
    }
}

#[test]
fn expired_but_unreclaimed_lease_can_still_be_requeued() {
    let env = Env::new();
    let a = env.push("x");
    let m = env.pop_json(&["--lease", "1ms"]);
    pause();
    assert_exit(&run(&env, &["requeue", &receipt(&m)]), 0);
    let names = env.new_names();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with(&format!("{a},a1,")));
}

#[test]
fn mixed_good_and_stale_receipts_move_the_good_ones_and_exit_4() {
    for cmd in ["requeue", "bury"] {
        let env = Env::new();
        env.push("a");
        env.push("b");
        let stale = env.pop_json(&[]);
        assert_exit(&run(&env, &["ack", &receipt(&stale)]), 0);
        let good = env.pop_json(&[]);
        let o = run(&env, &[cmd, &receipt(&stale), &receipt(&good)]);
        assert_exit(&o, 4);
        one_line(&o);
        assert!(env.names("leased").is_empty(), "{cmd}");
        let moved = if cmd == "bury" {
            env.names("dead").len()
        } else {
            env.new_names().len()
        };
        assert_eq!(moved, 1, "{cmd}");
    }
}

#[test]
fn one_malformed_receipt_means_nothing_moves() {
    for cmd in ["requeue", "bury", "ack"] {
        let env = Env::new();
        env.push("a");
        let good = env.pop_json(&[]);
        let before = snapshot(&env);
        let o = run(&env, &[cmd, &receipt(&good), "../leased/whatever"]);
        assert_exit(&o, 2);
        one_line(&o);
        assert_eq!(snapshot(&env), before, "{cmd}");
    }
}

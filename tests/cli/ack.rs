//! `qspool ack`: leased → done, fencing by the exact receipt, malformed input, missing spools.

use crate::harness::*;

/// Pushes `n` messages and leases them all; returns their receipts in order.
fn leased(env: &Env, n: usize, lease: &str) -> Vec<String> {
    let bodies: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    env.push_all(&refs);
    (0..n)
        .map(|_| {
            env.pop_json(&["--lease", lease])["receipt"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Every failure line on stderr has the `qspool: ` form; returns how many there are.
fn error_lines(o: &std::process::Output) -> usize {
    let err = stderr(o);
    for l in err.lines() {
        assert!(l.starts_with("qspool: "), "stderr: {err}");
    }
    err.lines().count()
}

#[test]
fn ack_moves_several_leases_to_done() {
    let env = Env::new();
    let rs = leased(&env, 3, "1h");
    let refs: Vec<&str> = rs.iter().map(String::as_str).collect();
    let out = env.run(&[&["ack"], &refs[..]].concat());
    assert_exit(&out, 0);
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    assert!(env.names("leased").is_empty());
    let done: Vec<String> = env
        .names("done")
        .iter()
        .map(|n| id_of(n).to_owned())
        .collect();
    let mut want: Vec<String> = rs.iter().map(|r| id_of(r).to_owned()).collect();
    want.sort();
    assert_eq!(done, want);
    let s = env.stats();
    assert_eq!(s["done"], 3, "{s}");
    assert_eq!(s["leased"], 0, "{s}");
    assert_eq!(s["ready"], 0, "{s}");
    env.assert_empty();
}

#[test]
fn an_acked_receipt_is_stale_and_moves_nothing() {
    let env = Env::new();
    let rs = leased(&env, 2, "1h");
    assert_exit(&env.run(&["ack", &rs[0]]), 0);
    let done_before = env.names("done");
    let leased_before = env.names("leased");

    let out = env.run(&["ack", &rs[0]]);
    assert_exit(&out, 4);
    assert_eq!(error_lines(&out), 1);
    assert!(stderr(&out).contains(&rs[0]), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(env.names("done"), done_before);
    assert_eq!(env.names("leased"), leased_before);
    assert_eq!(env.stats()["done"], 1);
}

#[test]
fn good_receipts_move_even_when_another_is_stale() {
    let env = Env::new();
    let rs = leased(&env, 3, "1h");
    assert_exit(&env.run(&["ack", &rs[1]]), 0);
    // One stale receipt in the middle: the others are acked, the exit is 4.
    let out = env.run(&["ack", &rs[0], &rs[1], &rs[2]]);
    assert_exit(&out, 4);
    assert_eq!(error_lines(&out), 1);
    assert!(env.names("leased").is_empty());
    assert_eq!(env.names("done").len(), 3);

    // Two stale receipts: one error line each.
    let out = env.run(&["ack", &rs[0], &rs[2]]);
    assert_exit(&out, 4);
    assert_eq!(error_lines(&out), 2);
}

#[test]
fn a_receipt_that_never_existed_is_not_found() {
    let env = Env::new();
    let rs = leased(&env, 1, "1h");
    // Same message, another token: not this lease.
    let (head, token) = rs[0].rsplit_once(",t").unwrap();
    let flipped: String = token
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let other = format!("{head},t{flipped}");
    assert_ne!(other, rs[0]);
    let out = env.run(&["ack", &other]);
    assert_exit(&out, 4);
    assert_eq!(env.names("leased"), rs);
    assert!(env.names("done").is_empty());
    assert_exit(&env.run(&["ack", &rs[0]]), 0);
}

#[test]
fn a_malformed_receipt_among_good_ones_moves_nothing() {
    let env = Env::new();
    let rs = leased(&env, 2, "1h");
    let long = format!("{}{}", rs[0], "x".repeat(300));
    let with_newline = format!("{}\n", rs[0]);
    let in_dir = format!("../leased/{}", rs[0]);
    let id_only = id_of(&rs[0]).to_owned();
    let bad: Vec<&str> = vec![
        "",
        "garbage",
        "..",
        "../../etc/passwd",
        &in_dir,
        "a/b",
        "with\u{1}control",
        &with_newline,
        &long,
        &id_only,
    ];
    for b in bad {
        let out = env.run(&["ack", &rs[0], b, &rs[1]]);
        assert_exit(&out, 2);
        assert!(out.stdout.is_empty());
        assert_eq!(env.names("leased").len(), 2, "{b:?} moved something");
        assert!(env.names("done").is_empty(), "{b:?} acked something");
    }
    // Both receipts are still good.
    assert_exit(&env.run(&["ack", &rs[0], &rs[1]]), 0);
    assert_eq!(env.names("done").len(), 2);
}

#[test]
fn malformed_input_wins_over_stale_receipts() {
    let env = Env::new();
    let rs = leased(&env, 2, "1h");
    assert_exit(&env.run(&["ack", &rs[0]]), 0);
    let out = env.run(&["ack", &rs[0], "not/a/receipt", &rs[1]]);
    assert_exit(&out, 2);
    assert_eq!(env.names("leased"), vec![rs[1].clone()]);
}

#[test]
fn ack_needs_a_receipt() {
    let env = Env::init(&[]);
    let out = env.run(&["ack"]);
    assert_exit(&out, 2);
}

#[test]
fn an_expired_lease_nobody_reclaimed_can_still_be_acked() {
    let env = Env::new();
    let rs = leased(&env, 1, "1ms");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let s = env.stats();
    assert_eq!(s["expired"], 1, "{s}");
    assert_exit(&env.run(&["ack", &rs[0]]), 0);
    assert!(env.names("leased").is_empty());
    assert_eq!(env.names("done").len(), 1);
    let s = env.stats();
    assert_eq!(s["done"], 1, "{s}");
    assert_eq!(s["expired"], 0, "{s}");
    env.assert_empty();
}

#[test]
fn a_reclaimed_and_released_lease_is_stale() {
    let env = Env::new();
    let first = leased(&env, 1, "1ms").remove(0);
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Another consumer's pop reclaims the message and leases it again.
    let second = env.pop_json(&["--lease", "1h"]);
    assert_eq!(second["attempt"], 2);
    let second = second["receipt"].as_str().unwrap().to_owned();
    assert_eq!(id_of(&second), id_of(&first));

    // The slow first consumer cannot ack the second one's lease.
    let out = env.run(&["ack", &first]);
    assert_exit(&out, 4);
    assert_eq!(error_lines(&out), 1);
    assert_eq!(env.names("leased"), vec![second.clone()]);
    assert!(env.names("done").is_empty());
    assert_exit(&env.run(&["ack", &second]), 0);
    assert_eq!(env.names("done").len(), 1);
}

#[test]
fn a_requeued_or_extended_receipt_is_stale() {
    let env = Env::new();
    let rs = leased(&env, 2, "1h");
    assert_exit(&env.run(&["requeue", &rs[0]]), 0);
    assert_exit(&env.run(&["ack", &rs[0]]), 4);
    assert_eq!(env.stats()["ready"], 1);

    let out = env.run(&["extend", "--lease", "2h", &rs[1]]);
    assert_exit(&out, 0);
    let new_receipt = stdout(&out).trim_end().to_owned();
    assert_ne!(new_receipt, rs[1]);
    assert_exit(&env.run(&["ack", &rs[1]]), 4);
    assert_eq!(env.names("leased"), vec![new_receipt.clone()]);
    assert_exit(&env.run(&["ack", &new_receipt]), 0);
    assert_eq!(env.names("done").len(), 1);
}

#[test]
fn ack_on_a_missing_spool_is_an_error() {
    let source = Env::new();
    let r = leased(&source, 1, "1h").remove(0);
    let env = Env::new();
    let line = env.qspool(&["ack", &r]).fails(1);
    assert!(
        line.contains(&format!("no spool at {}", env.spool().display())),
        "{line}"
    );
    assert!(!env.spool().exists(), "ack must not create a spool");
    // The lease in the other spool is untouched.
    assert_eq!(source.names("leased"), vec![r]);
}

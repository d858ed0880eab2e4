//! `replay --done`: acked messages back to the queue, attempts reset, ids unchanged.

use crate::harness::*;

/// Pushes `bodies`, pops and acks each; returns their ids in push order.
fn acked(env: &Env, bodies: &[&str]) -> Vec<String> {
    let before = env.names("done").len();
    let ids = env.push_all(bodies);
    for _ in bodies {
        env.qspool(&["pop", "--ack"]).expect(0);
    }
    assert_eq!(env.names("done").len(), before + bodies.len());
    ids
}

#[test]
fn replay_by_id_brings_an_acked_message_back_as_new() {
    let env = Env::init(&[]);
    let ids = acked(&env, &["a", "b"]);
    let o = env.qspool(&["replay", "--done", &ids[1]]).expect(0);
    assert_eq!(stdout(&o), format!("{}\n", ids[1]));
    assert_eq!(env.names("done").len(), 1);
    let m = env.pop_json(&[]);
    assert_eq!(id(&m), ids[1]);
    assert_eq!(m["attempt"], 1, "attempts are reset");
    assert_eq!(m["body"], "b");
}

#[test]
fn replay_all_goes_oldest_first_and_limit_stops_it() {
    let env = Env::init(&[]);
    let ids = acked(&env, &["a", "b", "c"]);
    let o = env
        .qspool(&["replay", "--done", "--all", "--limit", "2"])
        .expect(0);
    assert_eq!(lines(&o), ids[..2].to_vec());
    let o = env.qspool(&["replay", "--done", "--all"]).expect(0);
    assert_eq!(lines(&o), ids[2..].to_vec());
    // Nothing left to replay is no error.
    let o = env.qspool(&["replay", "--done", "--all"]).expect(0);
    assert!(stdout(&o).is_empty());
    let popped: Vec<String> = (0..3).map(|_| id(&env.pop_json(&[]))).collect();
    assert_eq!(popped.len(), 3);
}

#[test]
fn replay_since_takes_only_what_was_acked_within_the_window() {
    let env = Env::init(&[]);
    let old = acked(&env, &["old"]);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let recent = acked(&env, &["recent"]);
    let o = env.qspool(&["replay", "--done", "--since", "1s"]).expect(0);
    assert_eq!(lines(&o), recent);
    let o = env.qspool(&["replay", "--done", "--since", "1h"]).expect(0);
    assert_eq!(lines(&o), old);
}

#[test]
fn replay_errors_are_one_line_and_move_nothing() {
    let env = Env::init(&[]);
    let ids = acked(&env, &["a"]);
    // Not acked (never existed): exit 4, named with where it looked.
    let ghost = "1795827100046042.9031.00000000.aea750d7.vm";
    let err = env.qspool(&["replay", "--done", ghost]).fails(4);
    assert!(err.contains("done: no acked message with id"), "{err}");
    // Malformed: exit 2 before anything moves, even beside a good id.
    env.qspool(&["replay", "--done", &ids[0], "../../etc/passwd"])
        .fails(2);
    assert_eq!(env.names("done").len(), 1);
    // No selection, or no --done: usage errors.
    env.qspool(&["replay", "--done"]).expect(2);
    env.qspool(&["replay", "--all"]).expect(2);
    env.qspool(&["replay", "--done", "--all", &ids[0]])
        .expect(2);
    // A dead message is not replayed by replay --done.
    let env2 = Env::init(&["--max-attempts", "1"]);
    let d = env2.push("d");
    let m = env2.pop_json(&[]);
    env2.qspool(&["requeue", &receipt(&m)]).expect(0);
    assert_eq!(env2.names("dead").len(), 1);
    env2.qspool(&["replay", "--done", &d]).fails(4);
    assert_eq!(
        lines(&env2.qspool(&["dlq-replay", &d]).expect(0)),
        vec![d.clone()]
    );
}

#[test]
fn replay_refuses_a_foreign_entry_under_a_done_name() {
    let env = Env::init(&[]);
    let ids = acked(&env, &["a"]);
    let name = env.names("done").remove(0);
    let path = env.spool().join("done").join(&name);
    std::fs::remove_file(&path).unwrap();
    let target = env.scratch().join("target");
    std::fs::write(&target, "secret").unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let err = env.qspool(&["replay", "--done", &ids[0]]).fails(1);
    assert!(err.contains(&name), "{err}");
    assert!(env.new_names().is_empty());
}

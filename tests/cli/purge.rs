//! `purge --ready`, purging by id, and the `--yes` that bulk deletion of unhandled messages
//! needs.

use crate::harness::*;

#[test]
fn bulk_purge_of_ready_or_dead_needs_yes_and_touches_nothing_without_it() {
    let env = Env::new();
    env.push("a");
    for args in [
        &["purge", "--ready"][..],
        &["purge", "--dead"],
        &["purge", "--ready", "--older-than", "1h"],
        &["purge", "--done", "--dead"],
    ] {
        let o = run(&env, args);
        assert_exit(&o, 2);
        assert!(one_error_line(&o).contains("--yes"), "{args:?}");
    }
    assert_eq!(env.stats()["ready"], 1);
    // done/ needs no confirmation: those messages were handled.
    assert_exit(&run(&env, &["purge", "--done"]), 0);
}

#[test]
fn purge_ready_with_yes_removes_ready_and_delayed_but_never_leased() {
    let env = Env::new();
    let ready = env.push("ready");
    let out = env.run(&["push", "--delay", "1h", "delayed"]);
    let delayed = stdout(&out).trim().to_owned();
    env.push("leased");
    // Oldest first: "ready" is leased now, so push order puts it... pop the newest instead.
    let v = env.pop_json(&[]);
    assert_eq!(id(&v), ready);
    let o = run(&env, &["purge", "--ready", "--yes"]);
    assert_exit(&o, 0);
    let mut got = lines(&o);
    got.sort();
    let s = env.stats();
    assert_eq!(
        (s["ready"].as_u64(), s["delayed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(s["leased"], 1);
    assert_eq!(got.len(), 2);
    assert!(got.contains(&delayed));
    assert!(!got.contains(&ready));
    // The lease is intact and can be acked.
    assert_exit(&env.run(&["ack", &receipt(&v)]), 0);
}

#[test]
fn purge_by_id_removes_only_those_and_reports_the_missing() {
    let env = Env::new();
    let ids = env.push_all(&["a", "b", "c"]);
    let o = run(&env, &["purge", "--ready", &ids[1]]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{}\n", ids[1]));
    assert_eq!(env.stats()["ready"], 2);
    // An id not in the states chosen: exit 4, the others still go.
    let v = env.pop_json(&["--ack"]);
    assert_eq!(id(&v), ids[0]);
    let o = run(&env, &["purge", "--ready", &ids[0], &ids[2]]);
    assert_exit(&o, 4);
    assert_eq!(stdout(&o), format!("{}\n", ids[2]));
    let line = one_error_line(&o);
    assert!(line.contains(&ids[0]) && line.contains("new/"), "{line}");
    // In done/ it is found.
    let o = run(&env, &["purge", "--done", &ids[0]]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{}\n", ids[0]));
    env.assert_empty();
}

#[test]
fn purge_by_id_checks_every_id_before_deleting_any() {
    let env = Env::new();
    let ids = env.push_all(&["a", "b"]);
    let o = run(&env, &["purge", "--ready", &ids[0], "not-an-id"]);
    assert_exit(&o, 2);
    assert_eq!(env.stats()["ready"], 2);
}

#[test]
fn purge_ready_older_than_counts_from_visibility() {
    let env = Env::new();
    env.push("now");
    let o = run(&env, &["purge", "--ready", "--older-than", "1h", "--yes"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "");
    // Back-date one message's visibility by two hours, as a requeue that long ago would.
    let old = env.push("old");
    let file = env
        .new_files()
        .into_iter()
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&old))
        .unwrap();
    let v = now_ms() - 2 * 3_600_000;
    let dest = bucket(env.spool(), v);
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::rename(&file, dest.join(format!("{old},a0,v{v}"))).unwrap();
    let o = run(&env, &["purge", "--ready", "--older-than", "1h", "--yes"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{old}\n"));
    assert_eq!(env.stats()["ready"], 1);
}

#[test]
fn purge_never_deletes_a_link_under_a_ready_name() {
    let env = Env::new();
    let id = env.push("x");
    let file = env.new_files().pop().unwrap();
    let secret = env.scratch().join("secret");
    std::fs::write(&secret, "mine").unwrap();
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&secret, &file).unwrap();
    let o = run(&env, &["purge", "--ready", &id]);
    // A link is foreign: not a message, so the id is not found, and nothing is removed.
    assert_exit(&o, 4);
    assert!(std::fs::symlink_metadata(&file).is_ok());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "mine");
}

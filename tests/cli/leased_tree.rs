//! `leased/` as a bucket tree by expiry: where a lease lives, that a pop looks only at buckets
//! whose time has passed, extension across buckets, and spools whose leases an earlier release
//! wrote flat in `leased/`.

use crate::harness::*;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// Moves every lease file into `leased/` itself, as the earlier layout kept them, and removes
/// the buckets: the spool the previous release would have left.
fn flatten_leases(env: &Env) {
    let leased = env.spool().join("leased");
    for f in env.files_under("leased") {
        fs::rename(&f, leased.join(f.file_name().unwrap())).unwrap();
    }
    for e in fs::read_dir(&leased).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            fs::remove_dir_all(&p).unwrap();
        }
    }
}

fn sleep_past(expiry_ms: u64) {
    while now_ms() <= expiry_ms {
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_lease_lives_in_the_bucket_its_receipt_names() {
    let env = Env::init(&[]);
    env.push("a");
    let m = env.pop_json(&["--lease", "1h"]);
    let r = receipt(&m);
    assert_eq!(env.files_under("leased"), vec![env.lease_file(&r)]);
    let l = receipt_expiry_ms(&r);
    assert!(
        lease_rel(&r).starts_with(&format!(
            "leased/{:07}/{:03}/",
            l / 1_000_000,
            l / 1000 % 1000
        )),
        "{r}"
    );
    assert_eq!(fs::read(env.lease_file(&r)).unwrap(), b"a");
    assert_exit(&env.run(&["ack", &r]), 0);
    assert!(env.files_under("leased").is_empty());
}

#[test]
fn an_expired_lease_is_reclaimed_by_the_next_pop_and_goes_behind_the_ready_ones() {
    let env = Env::init(&[]);
    env.push_all(&["a", "b", "c"]);
    let first = env.pop_json(&["--lease", "20ms"]);
    assert_eq!(first["body"], "a");
    sleep_past(receipt_expiry_ms(&receipt(&first)));
    let order: Vec<(String, u64)> = (0..3)
        .map(|_| {
            let m = env.pop_json(&["--lease", "1h"]);
            (
                m["body"].as_str().unwrap().to_owned(),
                m["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [("b".into(), 1), ("c".into(), 1), ("a".into(), 2)],
        "reclaimed with its new visible time, after those visible before it"
    );
    // The first lease's receipt is dead: it moves nothing.
    assert_exit(&env.run(&["ack", &receipt(&first)]), 4);
    assert_eq!(env.names("leased").len(), 3);
}

#[test]
fn extend_moves_a_lease_to_the_bucket_of_its_new_expiry_in_one_rename() {
    let env = Env::init(&[]);
    env.push("a");
    let old = receipt(&env.pop_json(&["--lease", "2s"]));
    let o = env.run(&["extend", "--lease", "2h", &old]);
    assert_exit(&o, 0);
    let new = stdout(&o).trim().to_owned();
    assert_ne!(lease_rel(&old), lease_rel(&new), "another bucket");
    assert_eq!(env.files_under("leased"), vec![env.lease_file(&new)]);
    for cmd in ["ack", "extend", "requeue", "bury"] {
        assert_exit(&env.run(&[cmd, &old]), 4);
    }
    assert_exit(&env.run(&["ack", &new]), 0);
    assert_eq!(env.names("done").len(), 1);
}

#[test]
fn a_pop_lists_no_bucket_of_live_leases() {
    if !strace_works("a_pop_lists_no_bucket_of_live_leases") {
        return;
    }
    let env = Env::init(&[]);
    // The directories under leased/ that a pop --ack lists, by strace, on the spool as it is,
    // and how many bytes of entries those listings returned.
    let listed = |env: &Env| -> (Vec<String>, u64) {
        env.push("probe");
        let trace = env.scratch().join("trace");
        let t = trace.to_str().unwrap();
        env.qspool(&["pop", "--ack"])
            .via(&[
                "strace",
                "-f",
                "-qq",
                "-y",
                "-e",
                "trace=getdents64",
                "-o",
                t,
            ])
            .expect(0);
        let (mut dirs, mut bytes) = (Vec::new(), 0);
        for l in fs::read_to_string(&trace).unwrap().lines() {
            let Some((_, call)) = l.split_once("getdents64(") else {
                continue;
            };
            let Some((path, _)) = call.split_once('<').and_then(|(_, p)| p.split_once('>')) else {
                continue;
            };
            let Some((_, under)) = path.split_once("/leased") else {
                continue;
            };
            dirs.push(format!("leased{under}"));
            bytes += l
                .rsplit("= ")
                .next()
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
        dirs.sort();
        dirs.dedup();
        (dirs, bytes)
    };
    assert_eq!(listed(&env).0, ["leased"]);
    // 200 live leases, each expiring in a second of its own, some perhaps in the current
    // thousand seconds' bucket.
    let bodies: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    env.push_all(&refs);
    for i in 0..200 {
        let m = env.pop_json(&["--lease", &format!("{}s", 600 + i)]);
        assert!(m["body"].as_str().unwrap().starts_with('m'));
    }
    assert_eq!(env.stats()["leased"], 200);
    let (dirs, bytes) = listed(&env);
    // leased/ itself, and at most the current thousand seconds' bucket: never a second's
    // bucket, where the leases are, and less than a listing of the leases' names (each more
    // than 64 bytes as a directory entry) would return.
    assert!(dirs.len() <= 2, "{dirs:?}");
    assert!(bytes < 200 * 64, "{bytes} bytes of listings in {dirs:?}");
    assert!(
        dirs.iter().all(|d| d.matches('/').count() <= 1),
        "a bucket of live leases was listed: {dirs:?}"
    );
}

#[test]
fn leases_an_earlier_release_wrote_flat_are_still_leases() {
    let env = Env::init(&["--max-attempts", "5"]);
    env.push_all(&["live", "expiring", "extended", "buried"]);
    let live = receipt(&env.pop_json(&["--lease", "1h"]));
    let expiring = env.pop_json(&["--lease", "30ms"]);
    let extended = receipt(&env.pop_json(&["--lease", "1h"]));
    let buried = receipt(&env.pop_json(&["--lease", "1h"]));
    flatten_leases(&env);
    let flat = |r: &str| env.spool().join("leased").join(r);
    assert!(flat(&live).is_file() && !env.lease_file(&live).exists());
    sleep_past(receipt_expiry_ms(&receipt(&expiring)));

    // Counted, listed, shown and checked like any lease.
    let s = env.stats();
    assert_eq!(
        (s["leased"].as_u64(), s["expired"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(s["foreign"], 0);
    let list = stdout(&env.run(&["list"]));
    assert_eq!(
        list.lines().filter(|l| l.contains("leased")).count(),
        3,
        "{list}"
    );
    let o = env.run(&["show", "--json", id_of(&live)]);
    assert_exit(&o, 0);
    assert_eq!(parse_lines(&o)[0]["state"], "leased", "{}", stdout(&o));
    assert_exit(&env.run(&["fsck"]), 0);

    // Reclaimed by the next pop once expired: delivered again, as attempt 2.
    let again = env.pop_json(&["--lease", "1h"]);
    assert_eq!(
        (again["body"].as_str(), again["attempt"].as_u64()),
        (Some("expiring"), Some(2))
    );
    assert!(!flat(&receipt(&expiring)).exists());
    // Extended: into the bucket of its new expiry.
    let o = env.run(&["extend", "--lease", "2h", &extended]);
    assert_exit(&o, 0);
    let moved = stdout(&o).trim().to_owned();
    assert!(env.lease_file(&moved).is_file() && !flat(&extended).exists());
    // Acked and buried with their receipts; a receipt used twice exits 4.
    assert_exit(&env.run(&["ack", &live]), 0);
    assert_exit(&env.run(&["ack", &live]), 4);
    assert_exit(&env.run(&["bury", &buried]), 0);
    assert_eq!(env.names("done").len(), 1);
    assert_eq!(env.names("dead").len(), 1);
    assert_exit(&env.run(&["fsck"]), 0);
    let left: Vec<String> = env.names("leased");
    assert_eq!(left.len(), 2, "{left:?}");
    for r in left {
        assert!(env.lease_file(&r).is_file(), "{r} is flat still");
    }
}

#[test]
fn requeue_expired_reclaims_flat_and_bucketed_leases_alike() {
    let env = Env::init(&[]);
    env.push_all(&["flat", "bucketed"]);
    let a = env.pop_json(&["--lease", "20ms"]);
    flatten_leases(&env);
    let b = env.pop_json(&["--lease", "20ms"]);
    sleep_past(receipt_expiry_ms(&receipt(&a)).max(receipt_expiry_ms(&receipt(&b))));
    let o = env.run(&["requeue", "--expired"]);
    assert_exit(&o, 0);
    assert_eq!(lines(&o).len(), 2, "{}", stdout(&o));
    assert!(env.names("leased").is_empty());
    assert_eq!(env.new_names().len(), 2);
}

#[test]
fn a_lease_in_the_wrong_bucket_is_foreign_and_fsck_says_where_it_belongs() {
    let env = Env::init(&[]);
    env.push("a");
    let r = receipt(&env.pop_json(&["--lease", "1h"]));
    let wrong = env.spool().join("leased").join("1000000").join("000");
    fs::create_dir_all(&wrong).unwrap();
    fs::rename(env.lease_file(&r), wrong.join(&r)).unwrap();
    assert_eq!(env.stats()["foreign"], 1);
    assert_eq!(env.stats()["leased"], 0);
    // Its receipt names the bucket of its expiry, where it is not: the lease is not held.
    assert_exit(&env.run(&["ack", &r]), 4);
    let o = env.run(&["fsck"]);
    assert_exit(&o, 1);
    let text = stdout(&o);
    assert!(
        text.contains(&lease_rel(&r).rsplit_once('/').unwrap().0.to_string()),
        "{text}"
    );
    assert!(
        Path::new(&wrong.join(&r)).is_file(),
        "fsck without --repair moves nothing"
    );
}

#[test]
fn a_bucket_that_cannot_be_read_does_not_keep_other_expired_leases_from_going_back() {
    if !strace_works("a_bucket_that_cannot_be_read_does_not_keep_other_expired_leases") {
        return;
    }
    let env = Env::init(&[]);
    env.push_all(&["free", "stuck"]);
    let free = receipt(&env.pop_json(&["--lease", "20ms"]));
    // Expires more than a second after the other, so in a bucket of its own.
    let stuck = receipt(&env.pop_json(&["--lease", "1500ms"]));
    let stuck_ms = receipt_expiry_ms(&stuck);
    // Past both, and in a later second than the stuck one's, so that the buckets the requeue
    // makes in new/ never have the stuck bucket's name (its second, as 3 digits); nor does the
    // millisecond level, kept well away from it.
    let second = stuck_ms / 1000 % 1000;
    sleep_past(stuck_ms / 1000 * 1000 + 999);
    while (now_ms() % 1000).abs_diff(second) < 100 || now_ms() % 1000 > 800 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let bucket = format!("{second:03}");
    let log = env.scratch().join("trace");
    let log_arg = log.to_str().unwrap().to_owned();
    // -P limits tracing, and so the fault, to calls that name the stuck lease's bucket.
    let line = env
        .qspool(&["requeue", "--expired"])
        .via(&[
            "strace",
            "-f",
            "-qq",
            "-o",
            &log_arg,
            "-P",
            &bucket,
            "-e",
            "trace=openat",
            "-e",
            "inject=openat:error=EIO",
        ])
        .fails(1);
    assert!(
        line.contains(&lease_rel(&stuck).rsplit_once('/').unwrap().0.to_string())
            && line.contains("Input/output error"),
        "{line}"
    );
    let trace = fs::read_to_string(&log).unwrap();
    assert!(trace.contains("INJECTED"), "{trace}");
    // The other expired lease went back all the same; the stuck one is still there.
    assert_eq!(env.names("leased"), [stuck]);
    assert_eq!(env.new_names().len(), 1);
    assert!(env.new_names()[0].starts_with(id_of(&free)));
    // Readable again: the next pass reclaims it.
    assert_exit(&env.run(&["requeue", "--expired"]), 0);
    assert!(env.names("leased").is_empty());
    assert_eq!(env.new_names().len(), 2);
}

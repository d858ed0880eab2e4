//! Regression tests named after the issue that found the fault: the truth of what a command
//! reports when the disk fails under it, checked with errors injected by strace.

use crate::harness::*;

/// `qspool ARGS` under strace, which fails the `when`th call of `syscall` with EIO and writes
/// the calls named in `trace` to `log`.
fn inject<'a>(
    env: &'a Env,
    log: &std::path::Path,
    trace: &str,
    fault: &str,
    args: &[&str],
) -> Run<'a> {
    let log = log.to_str().unwrap().to_owned();
    let trace = format!("trace={trace}");
    let inject = format!("inject={fault}");
    env.qspool(args).via(&[
        "strace", "-f", "-qq", "-o", &log, "-e", &trace, "-e", &inject,
    ])
}

fn trace_of(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The index of the first trace line that contains `what`.
fn line_of(trace: &[String], what: &str) -> usize {
    trace
        .iter()
        .position(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what:?} in {trace:#?}"))
}

/// Issue 12: a requeue whose rename succeeded but whose bucket fsync failed said it failed and
/// left waiters asleep. It must say the message moved, though not durably, and ring.
#[test]
fn issue_12_a_requeue_whose_bucket_sync_fails_says_it_moved_and_rings() {
    if !strace_works("issue_12_a_requeue_whose_bucket_sync_fails_says_it_moved_and_rings") {
        return;
    }
    let env = Env::init(&[]);
    env.push("again");
    let r = receipt(&env.pop_json(&[]));
    let log = env.scratch().join("trace");
    // An hour's delay puts it in a bucket nobody has made, whose levels must be fsynced.
    let line = inject(
        &env,
        &log,
        "fsync,utimensat,renameat2",
        "fsync:error=EIO:when=1",
        &["requeue", "--delay", "1h", &r],
    )
    .fails(1);
    assert!(
        line.contains("moved to ")
            && line.contains("but not durably")
            && line.contains(&id_of(&r).to_owned()),
        "{line}"
    );
    assert!(line.contains("Input/output error"), "{line}");
    assert!(env.names("leased").is_empty(), "the lease was given up");
    let names = env.new_names();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(id_of(&names[0]), id_of(&r));
    assert!(line.contains(&names[0]), "it names where it went: {line}");
    let trace = trace_of(&log);
    let moved = line_of(&trace, "renameat2(");
    let rang = line_of(&trace, "utimensat(");
    let synced = line_of(&trace, "INJECTED");
    assert!(
        moved < rang && rang < synced,
        "rename, ring, then sync: {trace:#?}"
    );
    // The doorbell is rung on the descriptor of new/, never on a path (FORMAT.md §5.2).
    assert!(
        trace[rang].contains("utimensat(") && trace[rang].contains(", NULL, NULL, 0)"),
        "{}",
        trace[rang]
    );
    assert_eq!(env.stats()["delayed"], 1);
}

/// Issue 12: the same for dlq-replay, which must also print the id it moved.
#[test]
fn issue_12_a_replay_whose_bucket_sync_fails_prints_the_id_and_says_so() {
    if !strace_works("issue_12_a_replay_whose_bucket_sync_fails_prints_the_id_and_says_so") {
        return;
    }
    let env = Env::init(&[]);
    let id = env.push("buried");
    let r = receipt(&env.pop_json(&[]));
    assert_exit(&env.run(&["bury", &r]), 0);
    let log = env.scratch().join("trace");
    let out = inject(
        &env,
        &log,
        "fsync,utimensat",
        "fsync:error=EIO:when=1",
        &["dlq-replay", &id],
    )
    .expect(1);
    assert_eq!(lines(&out), [id], "the id of what moved is printed");
    let line = one_error_line(&out);
    assert!(
        line.contains("moved to ") && line.contains("but not durably"),
        "{line}"
    );
    assert!(env.names("dead").is_empty(), "{:?}", env.names("dead"));
    let trace = trace_of(&log);
    assert!(
        line_of(&trace, "utimensat(") < line_of(&trace, "INJECTED"),
        "{trace:#?}"
    );
    assert_eq!(env.pop_raw(), b"buried");
}

/// Issue 12: an lstat of a message in new/ that fails with EIO was taken for a foreign entry
/// and skipped, so pop said "empty". It is an error naming the file, and nothing moves.
#[test]
fn issue_12_an_lstat_error_in_new_is_an_error_not_a_foreign_entry() {
    if !strace_works("issue_12_an_lstat_error_in_new_is_an_error_not_a_foreign_entry") {
        return;
    }
    let env = Env::init(&[]);
    env.push("unreadable for a moment");
    let name = env.new_names().remove(0);
    let log = env.scratch().join("trace");
    // -P limits tracing, and so the fault, to calls that name this one entry.
    let log_arg = log.to_str().unwrap().to_owned();
    let line = env
        .qspool(&["pop"])
        .via(&[
            "strace",
            "-f",
            "-qq",
            "-o",
            &log_arg,
            "-P",
            &name,
            "-e",
            "trace=newfstatat",
            "-e",
            "inject=newfstatat:error=EIO",
        ])
        .fails(1);
    assert!(
        line.contains(&name) && line.contains("Input/output error"),
        "{line}"
    );
    // The fault hit that entry's lstat, not another call.
    assert!(
        trace_of(&log).iter().all(|l| l.contains(&name)),
        "{:#?}",
        trace_of(&log)
    );
    line_of(&trace_of(&log), "INJECTED");
    assert_eq!(env.new_names(), [name], "nothing moved");
    assert!(env.names("leased").is_empty());
    assert_eq!(env.pop_raw(), b"unreadable for a moment");
}

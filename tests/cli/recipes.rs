//! The recipes in examples/, run for real: the crontab's commands, the systemd unit stopped the
//! way systemd stops it, enqueue-files.sh, pop-worker.sh and the sign-up burst. Each test reads
//! or executes the file a user would copy, never a copy of its text.

use crate::harness::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Generous: CI machines have two cores and run the tests in parallel.
const DEADLINE: Duration = Duration::from_secs(120);

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// PATH with the directory of the qspool under test first, so that the recipes' `qspool` is it.
fn path_with_qspool() -> OsString {
    let bin_dir = Path::new(qspool_bin()).parent().unwrap().to_path_buf();
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(bin_dir).chain(std::env::split_paths(&inherited));
    std::env::join_paths(dirs).unwrap()
}

/// A recipe's command: its spool is the test's, through QSPOOL_DIR as the recipes say, and
/// its `qspool` the one under test.
fn recipe(env: &Env, program: &Path) -> Command {
    let mut c = Command::new(program);
    c.env("PATH", path_with_qspool())
        .env("QSPOOL_DIR", env.spool())
        .env_remove("XDG_STATE_HOME")
        .env("HOME", env.scratch().join("home"))
        .current_dir(env.scratch())
        .stdin(Stdio::null());
    c
}

/// Runs a command to completion within the deadline, killing it (and failing) past that.
fn run_within(c: &mut Command, what: &str) -> Output {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.unwrap_or_else(|e| panic!("wait for {what}: {e}")),
        Err(_) => {
            signal(pid, "KILL");
            panic!("{what} still running after {DEADLINE:?}");
        }
    }
}

/// Polls `done` every 20 ms until it holds; fails after the deadline, naming `what`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "still waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `limit` for a child to exit; `None` if it is still running then.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `kill -SIG TARGET`, where a negative target is a process group. True if it was delivered.
fn signal(target: impl std::fmt::Display, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(target.to_string())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Whether a process group has a live (not zombie) member, from /proc: `kill -0` would count
/// zombies, which are dead but wait for a parent (here perhaps a PID 1 that is slow to reap).
fn group_alive(pgid: u32) -> bool {
    fs::read_dir("/proc").unwrap().any(|e| {
        let stat = fs::read_to_string(e.unwrap().path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[2] == pgid.to_string() && !["Z", "X"].contains(&fields[0])
    })
}

fn write_script(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The payloads of every message in a state directory (`done`, `dead`), by id.
fn payloads(env: &Env, state: &str) -> BTreeMap<String, Vec<u8>> {
    env.names(state)
        .iter()
        .map(|n| {
            let body = fs::read(env.spool().join(state).join(n)).unwrap();
            (id_of(n).to_owned(), body)
        })
        .collect()
}

/// The payloads of the ready and delayed messages, sorted.
fn queued_payloads(env: &Env) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = env
        .new_files()
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    v.sort();
    v
}

fn count(stats: &Value, key: &str) -> u64 {
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {stats}"))
}

/// A systemd time span or a qspool duration, in milliseconds: `45s`, `1min 30s`, `1m30s`,
/// `250ms`, or a bare number of seconds.
fn span_ms(text: &str) -> u64 {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return secs * 1000;
    }
    let mut total = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("span {text:?}"));
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == ' ');
        let unit = &rest[..unit_len.unwrap_or(rest.len())];
        rest = rest[unit.len()..].trim_start();
        total += n * match unit {
            "ms" => 1,
            "s" | "sec" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => panic!("unit {unit:?} in span {text:?}"),
        };
    }
    total
}

#[test]
fn every_example_says_what_it_is_for_and_every_script_is_executable() {
    let mut files = Vec::new();
    let mut dirs = vec![examples()];
    while let Some(dir) = dirs.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for name in [
        "crontab",
        "qspool-worker.service",
        "enqueue-files.sh",
        "pop-worker.sh",
        "signups/produce.sh",
        "signups/send-email",
        "signups/run.sh",
    ] {
        assert!(
            files.contains(&examples().join(name)),
            "{name} in {files:?}"
        );
    }
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let mut first = lines.next().unwrap_or_default();
        let name = path.file_name().unwrap().to_str().unwrap();
        if first.starts_with("#!") {
            // A script: a user runs it as it is, so it must carry its x bits.
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "{} is not executable", path.display());
            first = lines.next().unwrap_or_default();
        }
        // The header opens with the file's own name and what it is for.
        assert!(
            first.starts_with(&format!("# {name}: ")),
            "{}: header {first:?}",
            path.display()
        );
    }
}

/// The crontab's environment lines and its jobs (schedule, command).
struct Crontab {
    env: Vec<(String, String)>,
    jobs: Vec<(Vec<String>, String)>,
}

fn parse_crontab(text: &str) -> Crontab {
    let mut tab = Crontab {
        env: Vec::new(),
        jobs: Vec::new(),
    };
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap();
        if let Some((name, value)) = line.split_once('=')
            && first.contains('=')
            && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            tab.env.push((name.to_owned(), value.trim().to_owned()));
            continue;
        }
        let mut rest = line;
        let mut schedule = Vec::new();
        for _ in 0..5 {
            rest = rest.trim_start();
            let end = rest
                .find(char::is_whitespace)
                .unwrap_or_else(|| panic!("crontab line {line:?}"));
            schedule.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
        tab.jobs.push((schedule, rest.trim().to_owned()));
    }
    tab
}

#[test]
fn the_crontab_returns_expired_leases_and_purges_only_old_done_messages() {
    let tab = parse_crontab(&fs::read_to_string(examples().join("crontab")).unwrap());
    let spool_line = tab.env.iter().find(|(k, _)| k == "QSPOOL_DIR");
    let (_, spool_value) = spool_line.expect("the crontab names its spool");
    assert!(spool_value.starts_with('/'), "{spool_value}");
    let cron_path = &tab.env.iter().find(|(k, _)| k == "PATH").expect("PATH").1;
    assert_eq!(tab.jobs.len(), 2, "{:?}", tab.jobs);
    for (schedule, command) in &tab.jobs {
        for field in schedule {
            assert!(
                field.bytes().all(|c| b"0123456789*/,-".contains(&c)),
                "schedule field {field:?} of {command:?}"
            );
        }
        // cron turns % into a newline.
        assert!(!command.contains('%'), "{command}");
    }

    // Three messages: one acked eight days ago, one acked now, one leased by a consumer that
    // crashed (its 1 ms lease has expired, and nobody has popped since).
    let env = Env::init(&[]);
    env.push_all(&["acked long ago", "acked now", "crashed"]);
    for _ in 0..2 {
        env.cmd(&["pop", "--receipt-file", "r"])
            .current_dir(env.scratch())
            .assert()
            .success();
        let r = fs::read_to_string(env.scratch().join("r")).unwrap();
        env.cmd(&["ack", r.trim()]).assert().success();
    }
    let leased = env.pop_json(&["--lease", "1ms"]);
    assert_eq!(leased["body"], "crashed");
    pause();
    // The finish time is part of a done message's name (docs/FORMAT.md): back-date one.
    let old = payloads(&env, "done")
        .into_iter()
        .find(|(_, body)| body == b"acked long ago")
        .unwrap()
        .0;
    let done_dir = env.spool().join("done");
    let old_name = env.names("done").into_iter().find(|n| n.starts_with(&old));
    let old_name = old_name.unwrap();
    let (stem, _) = old_name.rsplit_once(",f").unwrap();
    let eight_days_ago = now_ms() - 8 * 86_400_000;
    fs::rename(
        done_dir.join(&old_name),
        done_dir.join(format!("{stem},f{eight_days_ago}")),
    )
    .unwrap();
    assert_eq!(count(&env.stats(), "expired"), 1);

    // As cron runs them: `sh -c` with the crontab's variables, in cron's minimal environment
    // (with the qspool under test first in its PATH, and the test's spool).
    for (_, command) in &tab.jobs {
        let mut c = Command::new("sh");
        c.env_clear()
            .env("HOME", env.scratch())
            .env("SHELL", "/bin/sh")
            .env("LOGNAME", "cron");
        for (k, v) in &tab.env {
            c.env(k, v);
        }
        let mut path = path_with_qspool();
        path.push(":");
        path.push(cron_path);
        c.env("PATH", path)
            .env("QSPOOL_DIR", env.spool())
            .arg("-c")
            .arg(command)
            .current_dir(env.scratch());
        let out = run_within(&mut c, command);
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        // cron mails whatever a job prints: on success, nothing.
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{command}");
    }

    let stats = env.stats();
    assert_eq!(count(&stats, "expired"), 0, "{stats}");
    assert_eq!(count(&stats, "leased"), 0, "{stats}");
    assert_eq!(queued_payloads(&env), vec![b"crashed".to_vec()]);
    let done: Vec<Vec<u8>> = payloads(&env, "done").into_values().collect();
    assert_eq!(done, vec![b"acked now".to_vec()]);
    assert_eq!(env.pop_raw(), b"crashed");
}

#[test]
fn enqueue_files_pushes_each_json_file_as_one_message_and_removes_it() {
    let env = Env::new();
    let drop = env.scratch().join("drop");
    fs::create_dir_all(drop.join("sub/deeper")).unwrap();
    let all_bytes: Vec<u8> = (0..=255).collect();
    let queued: Vec<(PathBuf, Vec<u8>)> = vec![
        (drop.join("a.json"), br#"{"n":1}"#.to_vec()),
        (drop.join("sub/deeper/b.json"), all_bytes),
        (
            drop.join("a name with spaces\nand a newline.json"),
            b"odd name".to_vec(),
        ),
        (drop.join("-dash.json"), b"dash".to_vec()),
        (drop.join("empty.json"), Vec::new()),
    ];
    let kept = [
        drop.join("notes.txt"),
        // A file still being written, to be renamed when complete.
        drop.join("c.json.tmp"),
    ];
    for (path, body) in &queued {
        fs::write(path, body).unwrap();
    }
    for path in &kept {
        fs::write(path, "not for the queue").unwrap();
    }

    let out = run_within(
        recipe(&env, &examples().join("enqueue-files.sh")).arg(&drop),
        "enqueue-files.sh",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "{}", stdout(&out));

    let mut want: Vec<Vec<u8>> = queued.iter().map(|(_, b)| b.clone()).collect();
    want.sort();
    assert_eq!(queued_payloads(&env), want);
    for (path, _) in &queued {
        assert!(!path.exists(), "{} was queued but kept", path.display());
    }
    for path in &kept {
        assert!(path.exists(), "{} was removed", path.display());
    }

    // KEEP=1 pushes and leaves the files alone.
    fs::write(drop.join("again.json"), "again").unwrap();
    let out = run_within(
        recipe(&env, &examples().join("enqueue-files.sh"))
            .env("KEEP", "1")
            .arg(&drop),
        "enqueue-files.sh with KEEP=1",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(drop.join("again.json").exists());
    assert_eq!(queued_payloads(&env).len(), queued.len() + 1);
}

#[test]
fn enqueue_files_removes_exactly_the_files_whose_ids_were_printed_when_push_fails() {
    let env = Env::new();
    let drop = env.scratch().join("drop");
    fs::create_dir(&drop).unwrap();
    let bodies: BTreeSet<String> = (1..=5).map(|i| format!("{{\"file\":{i}}}")).collect();
    for (i, body) in bodies.iter().enumerate() {
        fs::write(drop.join(format!("{i}.json")), body).unwrap();
    }
    let left = || -> BTreeSet<String> {
        fs::read_dir(&drop)
            .unwrap()
            .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    };
    let script = examples().join("enqueue-files.sh");

    // A spool that cannot be made (its parent is a file): nothing queued, nothing removed.
    let blocker = env.scratch().join("a-file");
    fs::write(&blocker, "").unwrap();
    let out = run_within(
        recipe(&env, &script)
            .env("QSPOOL_DIR", blocker.join("spool"))
            .arg(&drop),
        "enqueue-files.sh into an impossible spool",
    );
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("qspool: "), "{}", stderr(&out));
    assert_eq!(left(), bodies);

    // A push that fails after queuing two of its files, as it does on an unreadable third
    // file (which root could read anyway, hence the stand-in in front of the real qspool).
    let fake_bin = env.scratch().join("fake-bin");
    fs::create_dir(&fake_bin).unwrap();
    write_script(
        &fake_bin.join("qspool"),
        r#"#!/bin/sh
[ "$1 $2" = "push --file" ] || exec "$REAL_QSPOOL" "$@"
shift 2
"$REAL_QSPOOL" push --file "$1" "$2" || exit 1
echo "qspool: open $3: Permission denied (injected by the test)" >&2
exit 1
"#,
    );
    let mut path = OsString::from(&fake_bin);
    path.push(":");
    path.push(path_with_qspool());
    let out = run_within(
        recipe(&env, &script)
            .env("PATH", path)
            .env("REAL_QSPOOL", qspool_bin())
            .arg(&drop),
        "enqueue-files.sh with a push that fails part-way",
    );
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("injected"), "{}", stderr(&out));
    let queued: BTreeSet<String> = queued_payloads(&env)
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    assert_eq!(queued.len(), 2, "{queued:?}");
    // Removed if and only if queued.
    assert!(left().is_disjoint(&queued), "{:?} {queued:?}", left());
    assert_eq!(left().len(), 3);

    // The next run queues the rest: every file exactly once in all.
    let out = run_within(recipe(&env, &script).arg(&drop), "enqueue-files.sh again");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(left().is_empty(), "{:?}", left());
    let all: Vec<String> = queued_payloads(&env)
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    assert_eq!(all, bodies.into_iter().collect::<Vec<_>>());
}

#[test]
fn pop_worker_acks_what_succeeded_and_redelivers_what_failed_until_it_is_dead() {
    let env = Env::init(&["--max-attempts", "3"]);
    let oks: Vec<String> = (1..=6).map(|i| format!("ok-{i}")).collect();
    let mut bodies: Vec<&str> = oks.iter().map(String::as_str).collect();
    bodies.extend(["fail-once-1", "fail-once-2", "poison"]);
    env.push_all(&bodies);

    let log = env.scratch().join("deliveries.log");
    let marks = env.scratch().join("marks");
    fs::create_dir(&marks).unwrap();
    let worker = env.scratch().join("worker");
    write_script(
        &worker,
        r#"#!/bin/sh
# Logs each delivery; fails the first delivery of fail-once-*, and every one of poison.
body=$(cat)
[ -n "$body" ] || exit 0   # the run on empty input when pop gives up
echo "$body" >> "$LOG"
case $body in
    poison) exit 1 ;;
    fail-once-*)
        [ -e "$MARKS/$body" ] && exit 0
        : > "$MARKS/$body"
        exit 1 ;;
esac
"#,
    );

    // Two loops at once on one spool, as a user would run several.
    let run = |_| {
        let mut c = recipe(&env, &examples().join("pop-worker.sh"));
        c.env("IDLE", "2s")
            .env("RETRY_DELAY", "100ms")
            .env("LOG", &log)
            .env("MARKS", &marks)
            .arg(&worker);
        run_within(&mut c, "pop-worker.sh")
    };
    let outs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|i| s.spawn(move || run(i))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outs {
        assert!(out.status.success(), "{}", stderr(out));
        // No ack or requeue was refused: none was sent for a stale receipt.
        assert!(!stderr(out).contains("qspool: "), "{}", stderr(out));
    }

    let mut deliveries: BTreeMap<String, usize> = BTreeMap::new();
    for line in fs::read_to_string(&log).unwrap().lines() {
        *deliveries.entry(line.to_owned()).or_default() += 1;
    }
    let mut want: BTreeMap<String, usize> = oks.iter().map(|b| (b.clone(), 1)).collect();
    want.insert("fail-once-1".into(), 2);
    want.insert("fail-once-2".into(), 2);
    want.insert("poison".into(), 3);
    assert_eq!(deliveries, want);

    let mut done: Vec<Vec<u8>> = payloads(&env, "done").into_values().collect();
    done.sort();
    let mut want_done: Vec<Vec<u8>> = bodies[..8].iter().map(|b| b.as_bytes().to_vec()).collect();
    want_done.sort();
    assert_eq!(done, want_done);
    let dead = env.names("dead");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].contains(",a3,"), "{dead:?}");
    assert_eq!(
        payloads(&env, "dead").into_values().collect::<Vec<_>>(),
        vec![b"poison".to_vec()]
    );
    assert!(env.new_files().is_empty() && env.names("leased").is_empty());
}

/// The `[Service]` settings of a unit file, each key with every value it was given.
fn service_settings(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut section = "";
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
        if section == "[Service]" {
            settings
                .entry(k.trim().to_owned())
                .or_default()
                .push(v.trim().to_owned());
        }
    }
    settings
}

/// The one value of a unit setting.
fn setting<'a>(settings: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    match settings.get(key).map(Vec::as_slice) {
        Some([v]) => v,
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn the_systemd_unit_stops_like_systemd_stops_it_and_loses_no_message() {
    let unit = fs::read_to_string(examples().join("qspool-worker.service")).unwrap();
    let settings = service_settings(&unit);
    assert_eq!(setting(&settings, "KillMode"), "mixed");
    assert_eq!(setting(&settings, "Restart"), "on-failure");
    let spool_in_unit = settings["Environment"]
        .iter()
        .flat_map(|v| v.split_whitespace())
        .find_map(|a| a.strip_prefix("QSPOOL_DIR="))
        .expect("Environment=QSPOOL_DIR=...");
    // The spool lives in the directory systemd creates for the unit's user.
    let state_dir = format!("/var/lib/{}/", setting(&settings, "StateDirectory"));
    assert!(
        spool_in_unit.starts_with(&state_dir),
        "{spool_in_unit} not in {state_dir}"
    );

    let exec = setting(&settings, "ExecStart");
    assert!(!exec.contains(['"', '\'', '\\', '$', '%']), "{exec}");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert!(
        argv[0].starts_with('/') && argv[0].ends_with("/qspool"),
        "{exec}"
    );
    assert_eq!(argv[1], "work", "{exec}");
    assert!(argv.contains(&"--wait"), "a service keeps waiting: {exec}");
    let dashes = argv.iter().position(|a| *a == "--").expect("-- before CMD");
    let options = &argv[2..dashes];
    let grace_ms = match options.iter().position(|a| *a == "--grace") {
        Some(i) => span_ms(options[i + 1]),
        None => 30_000,
    };
    let timeout_ms = span_ms(setting(&settings, "TimeoutStopSec"));
    // systemd's SIGKILL must not come before qspool has killed and released at the end of
    // its grace: TimeoutStopSec exceeds --grace, with room to spare.
    assert!(
        timeout_ms >= grace_ms + 5_000,
        "TimeoutStopSec {timeout_ms} ms, --grace {grace_ms} ms"
    );

    // The unit's command, run for real: qspool under test, a test CMD in place of the
    // worker, and a 1 s grace so that the test is quick. The margin systemd leaves after the
    // grace stays what the unit says: what qspool does then does not scale with the grace.
    let grace = Duration::from_secs(1);
    let stop_timeout = grace + Duration::from_millis(timeout_ms - grace_ms);
    let mut options: Vec<String> = options.iter().map(|s| (*s).to_owned()).collect();
    match options.iter().position(|a| a == "--grace") {
        Some(i) => options[i + 1] = "1s".into(),
        None => options.extend(["--grace".into(), "1s".into()]),
    }
    let env = Env::new();
    let marks = env.scratch().join("marks");
    fs::create_dir(&marks).unwrap();
    let cmd = env.scratch().join("worker");
    write_script(
        &cmd,
        r#"#!/bin/sh
# quick: done at once. Otherwise works for a minute, and on SIGTERM: `finish` finishes and
# exits 0, `ignore` ignores it (and is killed after the grace), anything else dies of it.
body=$(cat)
[ "$MODE" = quick ] && exit 0
case $body in
    finish) trap ': > "$MARKS/finished.$body"; exit 0' TERM ;;
    ignore) trap '' TERM ;;
esac
echo $$ > "$MARKS/started.$body"
sleep 60 &
wait $!
"#,
    );
    let start_service = |mode: &str, name: &str| -> Child {
        // As systemd starts it: its own session (here a process group), the unit's
        // environment, output to the journal (here a file).
        let journal = fs::File::create(env.scratch().join(name)).unwrap();
        Command::new(qspool_bin())
            .arg("work")
            .args(&options)
            .arg("--")
            .arg(&cmd)
            .args(&argv[dashes + 2..])
            .env("QSPOOL_DIR", env.spool())
            .env("MARKS", &marks)
            .env("MODE", mode)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(journal.try_clone().unwrap())
            .stderr(journal)
            .spawn()
            .unwrap()
    };
    let j = argv.iter().position(|a| *a == "-j").expect("-j K");
    let j: usize = argv[j + 1].parse().unwrap();
    assert!(j >= 4, "this test runs four CMDs at once: {exec}");

    let bodies = ["finish", "ignore", "die", "die-too", "later-1", "later-2"];
    let mut ids = BTreeMap::new();
    for body in &bodies[..4] {
        ids.insert(env.push(body), *body);
    }
    let mut service = start_service("slow", "journal-1");
    let started = |b: &str| marks.join(format!("started.{b}"));
    wait_for("four CMDs to start", || {
        bodies[..4].iter().all(|b| started(b).exists())
    });
    // Pushed now, so that they wait in the queue whatever -j is.
    for body in &bodies[4..] {
        ids.insert(env.push(body), *body);
    }
    let pgids: Vec<u32> = bodies[..4]
        .iter()
        .map(|b| {
            loop {
                // The pid is written by a shell: wait for the whole line.
                let text = fs::read_to_string(started(b)).unwrap();
                if text.ends_with('\n') {
                    break text.trim().parse().unwrap();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .collect();

    // systemctl stop with KillMode=mixed: SIGTERM to the main process alone, then, once it
    // has exited or TimeoutStopSec has run out, SIGKILL to whatever is left in the unit.
    let stop = Instant::now();
    assert!(signal(service.id(), "TERM"));
    let status = exit_within(&mut service, stop_timeout);
    let leftovers: Vec<u32> = pgids.iter().copied().filter(|g| group_alive(*g)).collect();
    for g in &leftovers {
        signal(format!("-{g}"), "KILL");
    }
    let journal = fs::read_to_string(env.scratch().join("journal-1")).unwrap();
    let Some(status) = status else {
        signal(service.id(), "KILL");
        panic!("qspool still running {stop_timeout:?} after SIGTERM: {journal}");
    };
    assert!(
        leftovers.is_empty(),
        "CMD process groups {leftovers:?} outlived qspool: {journal}"
    );
    // Not asserted: how quickly. Asserted: the grace was given to the CMD that ignored SIGTERM.
    assert!(stop.elapsed() >= grace, "{journal}");
    // Exit 1: CMDs died or were killed, as the unit's comment on Restart= says.
    assert_eq!(status.code(), Some(5), "{journal}");
    // The one that ignored SIGTERM got SIGKILL from qspool, at the end of the grace.
    let ignore_id = ids.iter().find(|(_, b)| **b == "ignore").unwrap().0;
    assert!(
        journal
            .lines()
            .any(|l| l.contains(ignore_id.as_str()) && l.contains("SIGKILL")),
        "{journal}"
    );

    // The CMD that finished on SIGTERM was acked; every other message is back in the queue,
    // the one killed after the grace at once; nothing is leased, lost or dead.
    assert!(marks.join("finished.finish").exists(), "{journal}");
    let done: Vec<&str> = payloads(&env, "done").keys().map(|id| ids[id]).collect();
    assert_eq!(done, ["finish"], "{journal}");
    let out = env.run(&["list", "--json"]);
    assert_exit(&out, 0);
    let states: BTreeMap<&str, (String, u64)> = lines(&out)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let id = v["id"].as_str().unwrap();
            let state = v["state"].as_str().unwrap().to_owned();
            (ids[id], (state, v["attempt"].as_u64().unwrap()))
        })
        .collect();
    assert_eq!(states.len(), 5, "{states:?}");
    assert_eq!(states["ignore"], ("ready".into(), 1), "{states:?}");
    for b in ["die", "die-too"] {
        // Requeued with the backoff: ready, or still delayed.
        assert_eq!(states[b].1, 1, "{states:?}");
        assert!(
            ["ready", "delayed"].contains(&states[b].0.as_str()),
            "{states:?}"
        );
    }
    for b in ["later-1", "later-2"] {
        assert_eq!(states[b], ("ready".into(), 0), "{states:?}");
    }

    // systemctl start again: every message is delivered and done.
    let mut service = start_service("quick", "journal-2");
    wait_for("every message done after the restart", || {
        count(&env.stats(), "done") == bodies.len() as u64
    });
    assert!(signal(service.id(), "TERM"));
    let status = exit_within(&mut service, DEADLINE);
    let journal = fs::read_to_string(env.scratch().join("journal-2")).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{journal}");
    let stats = env.stats();
    for key in ["ready", "delayed", "leased", "expired", "dead"] {
        assert_eq!(count(&stats, key), 0, "{key}: {stats}");
    }
}

#[test]
fn the_signup_burst_is_absorbed_by_the_queue_and_each_valid_address_gets_exactly_one_email() {
    // Scaled down: 250 sign-ups in one second, mail at 100 a second, so the burst outruns
    // the workers 2.5 to 1 and drains in a few seconds. Every 25th address is malformed.
    let (signups, email_rate, typo_every) = (250u64, 100u64, 25u64);
    // Provider errors are retried; ten attempts make one that fails them all (0.05^10) a
    // non-event.
    let env = Env::init(&["--max-attempts", "10"]);
    let sent_log = env.scratch().join("sent.log");
    let start_us = u128::from(now_ms()) * 1000;
    let mut run = recipe(&env, &examples().join("signups/run.sh"))
        .env("SIGNUP_RATE", signups.to_string())
        .env("SIGNUP_SECONDS", "1")
        .env("EMAIL_RATE", email_rate.to_string())
        .env("TYPO_EVERY", typo_every.to_string())
        .env("TEMPFAIL_PERCENT", "5")
        .env("SENT_LOG", &sent_log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Watch the queue from outside while the scenario runs.
    let mut most_ready = 0;
    let watch_start = Instant::now();
    while run.try_wait().unwrap().is_none() {
        if env.spool().join("qspool.json").exists() {
            most_ready = most_ready.max(count(&env.stats(), "ready"));
        }
        if watch_start.elapsed() > DEADLINE {
            signal(run.id(), "KILL");
            panic!("run.sh still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run.wait_with_output().unwrap();
    let (out_text, err_text) = (stdout(&out), stderr(&out));
    let all = format!("{out_text}\n{err_text}");
    assert!(out.status.success(), "{all}");
    assert!(
        err_text.contains(&format!("produce: pushed {signups} sign-ups")),
        "{all}"
    );
    // The queue absorbed the burst: a backlog built up.
    assert!(most_ready > 0, "no backlog seen: {all}");

    // The provider's log: each valid address exactly once, no malformed one.
    let text = fs::read_to_string(&sent_log).unwrap();
    let mut sent: BTreeMap<u64, usize> = BTreeMap::new();
    let mut last_us = 0u128;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "{line:?}");
        last_us = last_us.max(fields[0].parse().unwrap());
        let n = fields[3]
            .strip_prefix("user")
            .and_then(|a| a.strip_suffix("@example.org"))
            .unwrap_or_else(|| panic!("address in {line:?}"));
        *sent.entry(n.parse().unwrap()).or_default() += 1;
    }
    let valid: BTreeMap<u64, usize> = (1..=signups)
        .filter(|n| n % typo_every != 0)
        .map(|n| (n, 1))
        .collect();
    assert_eq!(sent, valid, "{all}");
    // The throttle's lower bound: the provider takes one request per 1/EMAIL_RATE s, so the
    // last of them cannot come sooner than this after the start.
    let min_us = (valid.len() as u128 - 1) * 1_000_000 / u128::from(email_rate);
    assert!(
        last_us - start_us >= min_us,
        "{} emails in {} us",
        valid.len(),
        last_us - start_us
    );

    // Every valid sign-up is done, every malformed one dead, nothing else anywhere.
    assert_eq!(env.names("done").len(), valid.len(), "{all}");
    let mut dead: Vec<u64> = payloads(&env, "dead")
        .into_values()
        .map(|body| {
            let v: Value = serde_json::from_slice(&body).unwrap();
            v["signup"].as_u64().unwrap()
        })
        .collect();
    dead.sort_unstable();
    let typos: Vec<u64> = (1..=signups).filter(|n| n % typo_every == 0).collect();
    assert_eq!(dead, typos, "{all}");
    assert!(env.new_files().is_empty() && env.names("leased").is_empty());
}

#[test]
fn the_relay_unit_carries_the_outbox_and_stops_cleanly() {
    let unit = fs::read_to_string(examples().join("qspool-relay.service")).unwrap();
    let settings = service_settings(&unit);
    assert_eq!(setting(&settings, "KillMode"), "mixed");
    let spool_in_unit = settings["Environment"]
        .iter()
        .flat_map(|v| v.split_whitespace())
        .find_map(|a| a.strip_prefix("QSPOOL_DIR="))
        .expect("Environment=QSPOOL_DIR=...");
    let state_dir = format!("/var/lib/{}/", setting(&settings, "StateDirectory"));
    assert!(spool_in_unit.starts_with(&state_dir), "{spool_in_unit}");
    let exec = setting(&settings, "ExecStart");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert!(argv[0].ends_with("/qspool") && argv[1] == "relay", "{exec}");
    assert!(argv.contains(&"--wait"), "a service keeps waiting: {exec}");
    let to = argv.iter().position(|a| *a == "--to").expect("--to URL");
    assert!(argv[to + 1].starts_with("nats://"), "{exec}");

    // The unit's command, run for real against a test server in place of the unit's URL.
    let Some(js) = crate::nats_server::Js::start("relay_unit", &[]) else {
        return;
    };
    let env = Env::init(&[]);
    let input: String = (0..500).map(|i| format!("m{i}\n")).collect();
    env.qspool(&["push", "--lines"])
        .stdin(input.as_bytes())
        .expect(0);
    let mut args: Vec<String> = argv[1..].iter().map(|s| (*s).to_owned()).collect();
    args[to] = js.url.clone();
    let journal = env.scratch().join("journal");
    let mut service = Command::new(qspool_bin())
        .args(&args)
        .env("QSPOOL_DIR", env.spool())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&journal).unwrap())
        .stderr(fs::File::create(&journal).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while env.stats()["done"] != 500 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{}",
            fs::read_to_string(&journal).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // systemd's stop: SIGTERM to the main process (KillMode=mixed).
    Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap();
    let st = service.wait().unwrap();
    assert_eq!(
        st.code(),
        Some(0),
        "{}",
        fs::read_to_string(&journal).unwrap()
    );
    let s: Value = serde_json::from_str(&stdout(&js.q(&["stats", "--json"]).expect(0))).unwrap();
    assert_eq!(s["ready"], 500);
}

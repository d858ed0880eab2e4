//! `qspool init`: defaults, stored settings used by other commands, re-init, bad values, and
//! the commands that refuse a missing spool.

use crate::harness::*;

/// Pops the one message of the spool and requeues it, `n` times, checking the attempt count;
/// then the next pop finds nothing, because the message went to dead/.
fn exhaust_attempts(env: &Env, n: u64) {
    for attempt in 1..=n {
        let v = env.pop_json(&[]);
        assert_eq!(v["attempt"], attempt, "{v}");
        assert_exit(&env.run(&["requeue", v["receipt"].as_str().unwrap()]), 0);
    }
    env.assert_empty();
    let s = env.stats();
    assert_eq!(s["dead"], 1, "{s}");
    assert_eq!(s["ready"], 0, "{s}");
    assert_eq!(env.names("dead").len(), 1);
}

/// Asserts a pop's lease is `ms` long, measured against the clock around the pop.
fn assert_pop_lease(env: &Env, ms: u64) {
    let before = now_ms();
    let v = env.pop_json(&[]);
    let after = now_ms();
    let exp = rfc3339_ms(v["lease_expires_at"].as_str().unwrap());
    assert!(
        (before + ms..=after + ms).contains(&exp),
        "lease expires at {exp}; popped between {before} and {after}, expected {ms}ms leases"
    );
    // Leave the spool as it was: the message back in the queue.
    assert_exit(&env.run(&["requeue", v["receipt"].as_str().unwrap()]), 0);
}

#[test]
fn init_creates_a_spool_with_the_defaults() {
    let env = Env::new();
    let out = env.run(&["init"]);
    assert_exit(&out, 0);
    for d in ["tmp", "new", "leased", "done", "dead"] {
        assert!(env.spool().join(d).is_dir(), "{d}/ missing");
    }
    let cfg = env.settings();
    assert_eq!(cfg["max_attempts"], 5, "{cfg}");
    assert_eq!(cfg["lease_ms"], 30_000, "{cfg}");
    let s = env.stats();
    for k in [
        "ready", "delayed", "leased", "expired", "done", "dead", "foreign",
    ] {
        assert_eq!(s[k], 0, "{k}: {s}");
    }

    env.push("m");
    assert_pop_lease(&env, 30_000);
    // That pop was attempt 1 of 5.
    let v = env.pop_json(&[]);
    assert_eq!(v["attempt"], 2);
    assert_exit(&env.run(&["requeue", v["receipt"].as_str().unwrap()]), 0);
    for attempt in 3..=5 {
        let v = env.pop_json(&[]);
        assert_eq!(v["attempt"], attempt);
        assert_exit(&env.run(&["requeue", v["receipt"].as_str().unwrap()]), 0);
    }
    env.assert_empty();
    assert_eq!(env.stats()["dead"], 1);
}

#[test]
fn a_spool_without_init_has_the_same_defaults() {
    let env = Env::new();
    env.push("m");
    assert!(!env.spool().join("qspool.json").exists());
    assert_pop_lease(&env, 30_000);
    // One attempt used above; four more, then dead.
    for attempt in 2..=5 {
        let v = env.pop_json(&[]);
        assert_eq!(v["attempt"], attempt);
        assert_exit(&env.run(&["requeue", v["receipt"].as_str().unwrap()]), 0);
    }
    env.assert_empty();
    assert_eq!(env.stats()["dead"], 1);
}

#[test]
fn settings_are_stored_and_used() {
    let env = Env::init(&["--max-attempts", "2", "--lease", "2h"]);
    let cfg = env.settings();
    assert_eq!(cfg["max_attempts"], 2, "{cfg}");
    assert_eq!(cfg["lease_ms"], 7_200_000, "{cfg}");
    env.push("m");
    assert_pop_lease(&env, 7_200_000);
    // assert_pop_lease used attempt 1; attempt 2 is the last.
    let v = env.pop_json(&[]);
    assert_eq!(v["attempt"], 2);
    assert_exit(&env.run(&["requeue", v["receipt"].as_str().unwrap()]), 0);
    env.assert_empty();
    assert_eq!(env.stats()["dead"], 1);
}

#[test]
fn max_attempts_one_means_one_delivery() {
    let env = Env::init(&["--max-attempts", "1"]);
    env.push("once");
    exhaust_attempts(&env, 1);
}

#[test]
fn lease_accepts_every_duration_form() {
    let env = Env::init(&[]);
    for (text, ms) in [
        ("250ms", 250u64),
        ("30s", 30_000),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("12h", 43_200_000),
        ("1m30s", 90_000),
        ("45", 45_000),
    ] {
        assert_exit(&env.run(&["init", "--lease", text]), 0);
        assert_eq!(env.settings()["lease_ms"], ms, "--lease {text}");
    }
}

#[test]
fn a_lease_is_at_most_twelve_hours() {
    let env = Env::init(&[]);
    for args in [
        &["init", "--lease", "1d"][..],
        &["init", "--lease", "12h1ms"],
        &["pop", "--lease", "13h"],
        &["work", "--lease", "1d", "--", "true"],
        &["extend", "--lease", "1d", "x"],
    ] {
        let o = env.run(args);
        assert_exit(&o, 2);
        assert!(one_error_line(&o).contains("at most 12h"), "{args:?}");
    }
    assert_eq!(env.settings()["lease_ms"], 30_000);
    // A settings file that says more is refused as damaged, like any other bad value.
    std::fs::write(
        env.spool().join("qspool.json"),
        "{\"max_attempts\":5,\"lease_ms\":86400000}",
    )
    .unwrap();
    assert!(env.qspool(&["pop"]).fails(1).contains("12h"));
}

#[test]
fn reinit_keeps_messages_and_settings_not_given() {
    let env = Env::init(&["--max-attempts", "3", "--lease", "2m"]);
    let ids = env.push_all(&["a", "b"]);
    let leased = env.pop_json(&["--lease", "1h"]);
    assert_eq!(leased["id"], ids[0].as_str());
    assert_exit(&env.run(&["push", "--delay", "1h", "later"]), 0);
    let receipt = leased["receipt"].as_str().unwrap().to_owned();
    assert_exit(&env.run(&["ack", &receipt]), 0);
    env.push("c");
    let leased = env.pop_json(&["--lease", "1h"]);
    assert_eq!(leased["id"], ids[1].as_str());
    let before = env.stats();

    // No flags: nothing changes.
    assert_exit(&env.run(&["init"]), 0);
    let cfg = env.settings();
    assert_eq!(cfg["max_attempts"], 3, "{cfg}");
    assert_eq!(cfg["lease_ms"], 120_000, "{cfg}");
    let now = env.stats();
    for k in [
        "ready", "delayed", "leased", "expired", "done", "dead", "foreign",
    ] {
        assert_eq!(now[k], before[k], "{k}: {before} then {now}");
    }

    // Only --lease: max-attempts kept.
    assert_exit(&env.run(&["init", "--lease", "10m"]), 0);
    let cfg = env.settings();
    assert_eq!(cfg["max_attempts"], 3, "{cfg}");
    assert_eq!(cfg["lease_ms"], 600_000, "{cfg}");

    // Only --max-attempts: lease kept.
    assert_exit(&env.run(&["init", "--max-attempts", "4"]), 0);
    let cfg = env.settings();
    assert_eq!(cfg["max_attempts"], 4, "{cfg}");
    assert_eq!(cfg["lease_ms"], 600_000, "{cfg}");

    // Every message is where it was: ready, leased, delayed, done.
    let after = env.stats();
    for k in [
        "ready", "delayed", "leased", "expired", "done", "dead", "foreign",
    ] {
        assert_eq!(after[k], before[k], "{k}: {before} then {after}");
    }
    assert_eq!(after["ready"], 1);
    assert_eq!(after["leased"], 1);
    assert_eq!(after["delayed"], 1);
    assert_eq!(after["done"], 1);
    assert_exit(&env.run(&["ack", leased["receipt"].as_str().unwrap()]), 0);
    // The new lease length is used.
    assert_pop_lease(&env, 600_000);
    assert_eq!(env.pop_raw(), b"c");
}

#[test]
fn init_on_an_empty_existing_directory_makes_a_spool() {
    let env = Env::new();
    std::fs::create_dir(env.spool()).unwrap();
    assert_exit(&env.run(&["init", "--max-attempts", "7"]), 0);
    assert_eq!(env.settings()["max_attempts"], 7);
    assert!(env.spool().join("new").is_dir());
}

#[test]
fn init_refuses_a_directory_that_is_not_a_spool() {
    let env = Env::new();
    std::fs::create_dir(env.spool()).unwrap();
    std::fs::write(env.spool().join("precious.txt"), b"keep me").unwrap();
    env.qspool(&["init"]).fails(1);
    let entries: Vec<_> = std::fs::read_dir(env.spool()).unwrap().collect();
    assert_eq!(entries.len(), 1, "init wrote into a foreign directory");
    assert_eq!(
        std::fs::read(env.spool().join("precious.txt")).unwrap(),
        b"keep me"
    );
}

#[test]
fn invalid_values_are_usage_errors() {
    let bad: &[&[&str]] = &[
        &["--max-attempts", "0"],
        &["--max-attempts", "-1"],
        &["--max-attempts", "three"],
        &["--max-attempts", "4294967296"],
        &["--max-attempts", ""],
        &["--max-attempts"],
        &["--lease", "0"],
        &["--lease", "0s"],
        &["--lease", "0ms"],
        &["--lease", "soon"],
        &["--lease", "1.5s"],
        &["--lease", "-5s"],
        &["--lease", "1s1m"],
        &["--lease", ""],
        &["--lease"],
        &["--no-such-flag"],
    ];
    // On a missing spool: nothing is created.
    let fresh = Env::new();
    for args in bad {
        let out = fresh.run(&[&["init"], *args].concat());
        assert_exit(&out, 2);
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(!fresh.spool().exists());

    // On an existing spool: its settings are untouched, even the valid one given alongside.
    let env = Env::init(&["--max-attempts", "3", "--lease", "1m"]);
    let settings = std::fs::read(env.spool().join("qspool.json")).unwrap();
    for args in bad {
        let other: &[&str] = if args[0] == "--max-attempts" {
            &["--lease", "9m"]
        } else {
            &["--max-attempts", "9"]
        };
        let out = env.run(&[&["init"], other, *args].concat());
        assert_exit(&out, 2);
        assert!(
            !stderr(&out).contains("multiple times"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        std::fs::read(env.spool().join("qspool.json")).unwrap(),
        settings
    );
}

#[test]
fn settings_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::init(&["--lease", "1m"]);
    let mode = std::fs::metadata(env.spool().join("qspool.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(env.spool()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn commands_that_do_not_create_refuse_a_missing_spool() {
    // Well-formed receipts and ids, from a real spool elsewhere.
    let source = Env::new();
    source.push("x");
    let v = source.pop_json(&["--lease", "1h"]);
    let receipt = v["receipt"].as_str().unwrap().to_owned();
    let id = v["id"].as_str().unwrap().to_owned();

    let env = Env::new();
    let deeper = env.spool().join("typo/in/path");
    let empty_dir = env.scratch().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["ack", &receipt],
        vec!["requeue", &receipt],
        vec!["requeue", "--delay", "1m", &receipt],
        vec!["requeue", "--expired"],
        vec!["extend", &receipt],
        vec!["extend", "--lease", "1m", &receipt],
        vec!["bury", &receipt],
        vec!["stats"],
        vec!["stats", "--json"],
        vec!["dlq-replay", "--all"],
        vec!["dlq-replay", &id],
        vec!["purge", "--done"],
        vec!["purge", "--dead", "--older-than", "1d", "--yes"],
    ];
    for path in [env.spool(), deeper.as_path(), empty_dir.as_path()] {
        for args in &commands {
            let out = env.run_at(path, args);
            assert_exit(&out, 1);
            assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
            let line = one_error_line(&out);
            assert!(
                line.contains(&format!("no spool at {}", path.display())),
                "{args:?}: {line}"
            );
        }
    }
    assert!(!env.spool().exists(), "a command created the spool");
    assert_eq!(std::fs::read_dir(&empty_dir).unwrap().count(), 0);
    // The other spool's lease is untouched.
    assert_eq!(source.names("leased"), vec![receipt]);
}

#[test]
fn spool_comes_from_qspool_dir_when_not_given() {
    let env = Env::new();
    let mut c = std::process::Command::new(qspool_bin());
    c.env("QSPOOL_DIR", env.spool())
        .env_remove("XDG_STATE_HOME")
        .env("HOME", env.scratch().join("home"))
        .args(["init", "--max-attempts", "6"]);
    let out = c.output().unwrap();
    assert_exit(&out, 0);
    assert_eq!(env.settings()["max_attempts"], 6);
    assert!(!env.scratch().join("home").exists());
}

/// Runs qspool with exactly the given spool-locating environment and no --spool.
fn run_located(env: &Env, vars: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new(qspool_bin());
    c.env_remove("QSPOOL_DIR")
        .env_remove("XDG_STATE_HOME")
        .env_remove("HOME");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.args(args).current_dir(env.scratch()).output().unwrap()
}

#[test]
fn the_spool_is_found_by_flag_then_qspool_dir_then_xdg_state_home_then_home() {
    let env = Env::new();
    let s = env.scratch();
    let p = |rel: &str| s.join(rel).to_str().unwrap().to_owned();
    let home = p("home");
    let state = p("state");
    let qdir = p("qdir");
    let flag = p("flag");

    // HOME alone: ~/.local/state/qspool/default.
    assert_exit(&run_located(&env, &[("HOME", &home)], &["push", "a"]), 0);
    assert!(s.join("home/.local/state/qspool/default/new").is_dir());
    // An absolute XDG_STATE_HOME wins over HOME; a relative one is ignored.
    assert_exit(
        &run_located(
            &env,
            &[("HOME", &home), ("XDG_STATE_HOME", &state)],
            &["push", "b"],
        ),
        0,
    );
    assert!(s.join("state/qspool/default/new").is_dir());
    let out = run_located(
        &env,
        &[("HOME", &home), ("XDG_STATE_HOME", "rel")],
        &["stats", "--json"],
    );
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ready"], 1, "the relative XDG_STATE_HOME was not ignored");
    // QSPOOL_DIR wins over both; an empty one counts as unset.
    let vars = [
        ("HOME", home.as_str()),
        ("XDG_STATE_HOME", state.as_str()),
        ("QSPOOL_DIR", qdir.as_str()),
    ];
    assert_exit(&run_located(&env, &vars, &["push", "c"]), 0);
    assert!(s.join("qdir/new").is_dir());
    let out = run_located(
        &env,
        &[("HOME", &home), ("QSPOOL_DIR", "")],
        &["stats", "--json"],
    );
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ready"], 1);
    // --spool (and -s) win over everything.
    assert_exit(
        &run_located(&env, &vars, &["--spool", &flag, "push", "d"]),
        0,
    );
    assert_exit(&run_located(&env, &vars, &["push", "-s", &flag, "e"]), 0);
    let out = run_located(&env, &vars, &["-s", &flag, "stats", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ready"], 2);
    // With nowhere to put a spool, a clear error.
    let out = run_located(&env, &[], &["stats"]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("--spool"), "{}", stderr(&out));
}

/// Concurrent first use of an empty directory: every process sees the spool the others are
/// making, never "a non-empty directory that is not a spool".
#[test]
fn concurrent_first_use_of_an_empty_directory_always_succeeds() {
    for round in 0..50 {
        let env = Env::new();
        std::fs::create_dir(env.spool()).unwrap();
        let children: Vec<_> = (0..6)
            .map(|_| {
                env.std_cmd(&["push", "--no-sync", "x"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert_exit(&out, 0);
            assert!(out.stderr.is_empty(), "round {round}: {}", stderr(&out));
        }
        assert_eq!(env.new_files().len(), 6, "round {round}");
    }
}

/// A settings file every other command refuses: init replaces it with the defaults and the
/// flags given, saying so in one line; the messages are kept.
#[test]
fn init_repairs_a_corrupt_settings_file() {
    let env = Env::init(&["--max-attempts", "3"]);
    env.push("kept");
    let path = env.spool().join("qspool.json");
    for (bad, why) in [
        (&b"{\"max_attempts\": "[..], "not valid settings"),
        (b"{\"max_attempts\": 0}", "at least 1"),
        (b"\xff\xfe", "not valid settings"),
    ] {
        std::fs::write(&path, bad).unwrap();
        for args in [&["stats"][..], &["pop"], &["push", "x"]] {
            let line = env.qspool(args).fails(1);
            assert!(
                line.contains(path.to_str().unwrap()) && line.contains(why),
                "{args:?}: {line}"
            );
        }
        let out = env.run(&["init", "--lease", "2m"]);
        assert_exit(&out, 0);
        let line = one_error_line(&out);
        assert!(
            line.starts_with(&format!("qspool: {}: ", path.display())),
            "{line}"
        );
        assert!(line.contains(why), "{line}");
        assert!(
            line.ends_with(
                "; replaced with max-attempts 5, lease 2m, retain-done 1d, dedup-window 5m"
            ),
            "{line}"
        );
        assert_eq!(
            stdout(&out),
            format!(
                "{}: max-attempts 5, lease 2m, retain-done 1d, dedup-window 5m\n",
                env.spool().display()
            )
        );
        assert_eq!(env.settings()["max_attempts"], 5);
        assert_eq!(env.settings()["lease_ms"], 120_000);
        // Repaired: the next init is quiet, and the other commands work again.
        let out = env.run(&["init"]);
        assert_exit(&out, 0);
        assert!(out.stderr.is_empty(), "{}", stderr(&out));
        assert_exit(&env.run(&["stats"]), 0);
    }
    // A directory where the settings file should be cannot be replaced: an error, one line.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let line = env.qspool(&["init"]).fails(1);
    assert!(line.contains(path.to_str().unwrap()), "{line}");
    std::fs::remove_dir(&path).unwrap();
    assert_exit(&env.run(&["init"]), 0);
    assert_eq!(env.pop_raw(), b"kept");
}

#[test]
fn init_reports_a_failed_write_to_standard_output() {
    let env = Env::new();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = env.std_cmd(&["init"]).stdout(full).output().unwrap();
    assert_exit(&out, 1);
    let line = one_error_line(&out);
    assert!(line.contains("write to standard output"), "{line}");
    // The spool was made before the write failed.
    assert!(env.spool().join("new").is_dir());
}

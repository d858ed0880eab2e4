//! `qspool pop`: raw and JSON output, receipts, -n, --ack, --lease, ordering, empty queues and
//! write errors on standard output.

use crate::harness::*;
use serde_json::Value;

/// A payload bigger than any pipe buffer.
fn big_payload() -> Vec<u8> {
    (0..1024 * 1024 + 3).map(|i| (i % 251) as u8).collect()
}

/// Asserts the one message of the spool is back in `new/`, ready, after `attempts` leases.
fn assert_released(env: &Env, id: &str, attempts: u32) {
    assert!(env.names("leased").is_empty(), "{:?}", env.names("leased"));
    assert!(
        env.names("done").is_empty(),
        "acked: {:?}",
        env.names("done")
    );
    let files = env.new_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(id_of(&name), id);
    assert!(
        name.contains(&format!(",a{attempts},")),
        "{name}: expected {attempts} attempts"
    );
    let s = env.stats();
    assert_eq!(s["ready"], 1, "{s}");
}

#[test]
fn default_output_is_exactly_the_payload() {
    let env = Env::new();
    let payload = b"line one\nline two\r\n\x00\xff no trailing newline";
    assert_exit(&env.run_stdin(&["push"], payload), 0);
    let out = env.run(&["pop"]);
    assert_exit(&out, 0);
    assert_eq!(out.stdout, payload.to_vec());
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(&out));
    // It is leased now, not gone and not visible.
    assert_eq!(env.names("leased").len(), 1);
    assert!(env.new_files().is_empty());
    env.assert_empty();
}

#[test]
fn receipt_file_holds_the_receipt_and_ack_takes_it() {
    let env = Env::new();
    let id = env.push("work");
    let r = env.scratch().join("receipt");
    let out = env.run(&["pop", "--receipt-file", r.to_str().unwrap()]);
    assert_exit(&out, 0);
    assert_eq!(out.stdout, b"work");
    let text = std::fs::read_to_string(&r).unwrap();
    assert!(text.ends_with('\n'), "{text:?}");
    let receipt = text.trim_end_matches('\n');
    assert!(!receipt.contains('\n'), "{text:?}");
    assert_eq!(id_of(receipt), id);
    // The receipt is the leased file's name.
    assert_eq!(env.names("leased"), vec![receipt.to_owned()]);

    // The shell recipe: qspool ack "$(cat r)".
    assert_exit(&env.run(&["ack", receipt]), 0);
    assert!(env.names("leased").is_empty());
    assert_eq!(env.names("done").len(), 1);
    assert_eq!(id_of(&env.names("done")[0]), id);
    assert_eq!(env.stats()["done"], 1);
}

#[test]
fn receipt_file_is_replaced_not_appended() {
    let env = Env::new();
    env.push_all(&["a", "b"]);
    let r = env.scratch().join("receipt");
    let rs = r.to_str().unwrap();
    std::fs::write(
        &r,
        "stale contents that are longer than any receipt could be, surely\n",
    )
    .unwrap();
    assert_exit(&env.run(&["pop", "--receipt-file", rs]), 0);
    let first = std::fs::read_to_string(&r).unwrap();
    assert_eq!(first.lines().count(), 1, "{first:?}");
    assert_exit(&env.run(&["pop", "--receipt-file", rs]), 0);
    let second = std::fs::read_to_string(&r).unwrap();
    assert_eq!(second.lines().count(), 1, "{second:?}");
    assert_ne!(first, second);
    assert_exit(&env.run(&["ack", first.trim_end(), second.trim_end()]), 0);
    assert_eq!(env.names("done").len(), 2);
}

#[test]
fn json_has_the_documented_fields() {
    let env = Env::new();
    let before = now_ms();
    let id = env.push("héllo \"world\"\n\ttab");
    let after_push = now_ms();
    let v = env.pop_json(&[]);
    let after_pop = now_ms();

    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["attempt"], 1);
    assert_eq!(v["body"], "héllo \"world\"\n\ttab");
    assert!(v.get("body_base64").is_none(), "{v}");
    assert_eq!(v["size"], "héllo \"world\"\n\ttab".len());

    let receipt = v["receipt"].as_str().unwrap();
    assert_eq!(id_of(receipt), id);
    assert_eq!(env.names("leased"), vec![receipt.to_owned()]);

    // enqueued_at is when it was pushed; lease_expires_at is the default 30s after the pop.
    let enq = rfc3339_ms(v["enqueued_at"].as_str().unwrap());
    assert!((before..=after_push).contains(&enq), "{v}");
    let exp = rfc3339_ms(v["lease_expires_at"].as_str().unwrap());
    assert!(
        (before + 30_000..=after_pop + 30_000).contains(&exp),
        "{v} (popped between {before} and {after_pop})"
    );
    assert_eq!(exp, receipt_expiry_ms(receipt));
}

#[test]
fn json_uses_body_base64_for_non_utf8_payloads() {
    let env = Env::new();
    let payload = b"\x00\x01binary\xff\xfe\xfd\x80";
    assert_exit(&env.run_stdin(&["push"], payload), 0);
    assert_exit(&env.run_stdin(&["push"], b"nul\x00is utf-8"), 0);
    let v = env.pop_json(&[]);
    assert!(v.get("body").is_none(), "{v}");
    assert_eq!(
        base64_decode(v["body_base64"].as_str().unwrap()),
        payload.to_vec()
    );
    assert_eq!(v["size"], payload.len());
    let v = env.pop_json(&[]);
    assert_eq!(v["body"], "nul\u{0}is utf-8");
    assert!(v.get("body_base64").is_none(), "{v}");
}

#[test]
fn n_leases_up_to_n_with_one_receipt_per_line() {
    let env = Env::new();
    let ids = env.push_all(&["m0", "m1", "m2", "m3", "m4"]);
    let r = env.scratch().join("receipts");
    let out = env.run(&[
        "pop",
        "--json",
        "-n",
        "3",
        "--receipt-file",
        r.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    let objs = parse_lines(&out);
    assert_eq!(objs.len(), 3);
    for (i, v) in objs.iter().enumerate() {
        assert_eq!(v["id"], ids[i].as_str());
        assert_eq!(v["body"], format!("m{i}"));
        assert_eq!(v["attempt"], 1);
    }
    let receipts: Vec<String> = std::fs::read_to_string(&r)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let from_json: Vec<String> = objs
        .iter()
        .map(|v| v["receipt"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(receipts, from_json);
    assert_eq!(env.names("leased").len(), 3);

    // Asking for more than there is gives what there is.
    let out = env.run(&["pop", "--json", "--max", "10"]);
    assert_exit(&out, 0);
    let rest = parse_lines(&out);
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0]["id"], ids[3].as_str());
    assert_eq!(rest[1]["id"], ids[4].as_str());

    let mut all: Vec<&str> = receipts.iter().map(String::as_str).collect();
    all.extend(rest.iter().map(|v| v["receipt"].as_str().unwrap()));
    assert_exit(&env.run(&[&["ack"], &all[..]].concat()), 0);
    assert_eq!(env.names("done").len(), 5);
    env.assert_empty();
}

#[test]
fn n_needs_json() {
    let env = Env::new();
    env.push_all(&["a", "b"]);
    let r = env.scratch().join("receipts");
    let out = env.run(&["pop", "-n", "2", "--receipt-file", r.to_str().unwrap()]);
    assert_exit(&out, 2);
    assert!(out.stdout.is_empty());
    assert!(!r.exists());
    assert!(env.names("leased").is_empty());
    assert_eq!(env.new_files().len(), 2);

    // -n 1 is the default and needs nothing; -n 0 is not a count.
    let out = env.run(&["pop", "--json", "-n", "0"]);
    assert_exit(&out, 2);
    assert!(env.names("leased").is_empty());
    assert_eq!(env.run(&["pop", "-n", "1"]).stdout, b"a");
}

#[test]
fn ack_flag_acks_after_writing() {
    let env = Env::new();
    let id = env.push("telemetry");
    let out = env.run(&["pop", "--ack"]);
    assert_exit(&out, 0);
    assert_eq!(out.stdout, b"telemetry");
    assert!(env.names("leased").is_empty());
    let done = env.names("done");
    assert_eq!(done.len(), 1);
    assert_eq!(id_of(&done[0]), id);
    let s = env.stats();
    assert_eq!(s["done"], 1, "{s}");
    assert_eq!(s["leased"], 0, "{s}");
    assert_eq!(s["ready"], 0, "{s}");
    env.assert_empty();

    // With --json and -n, every message delivered is acked.
    env.push_all(&["x", "y", "z"]);
    let out = env.run(&["pop", "--ack", "--json", "-n", "2"]);
    assert_exit(&out, 0);
    assert_eq!(parse_lines(&out).len(), 2);
    assert!(env.names("leased").is_empty());
    assert_eq!(env.names("done").len(), 3);
    assert_eq!(env.stats()["ready"], 1);
}

#[test]
fn nothing_visible_exits_3_and_writes_nothing() {
    let env = Env::init(&[]);
    let r = env.scratch().join("receipt");
    let rs = r.to_str().unwrap();
    for args in [
        &["pop", "--receipt-file", rs][..],
        &["pop", "--json", "--receipt-file", rs],
        &["pop", "--json", "-n", "5", "--receipt-file", rs],
        &["pop", "--ack", "--receipt-file", rs],
    ] {
        let out = env.run(args);
        assert_exit(&out, 3);
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
        assert!(!r.exists(), "{args:?} wrote a receipt file");
    }

    // Only leased and delayed messages: still nothing visible.
    env.push("taken");
    assert_exit(&env.run(&["pop"]), 0);
    assert_exit(&env.run(&["push", "--delay", "1h", "later"]), 0);
    let out = env.run(&["pop", "--receipt-file", rs]);
    assert_exit(&out, 3);
    assert!(out.stdout.is_empty());
    assert!(!r.exists());

    // A receipt left by an earlier pop is removed, so that `pop --receipt-file r | worker &&
    // qspool ack "$(cat r)"` can never ack an older lease that is still held.
    std::fs::write(&r, "previous\n").unwrap();
    assert_exit(&env.run(&["pop", "--receipt-file", rs]), 3);
    assert!(!r.exists(), "a stale receipt file survived exit 3");
}

#[test]
fn a_stale_receipt_file_is_removed_before_an_error_too() {
    let env = Env::init(&[]);
    env.push("one");
    let r = env.scratch().join("receipt");
    std::fs::write(&r, "previous\n").unwrap();
    let out = env.run(&["pop", "-n", "2", "--receipt-file", r.to_str().unwrap()]);
    assert_exit(&out, 2);
    // A usage error touches nothing, the receipt file included.
    assert!(r.exists());
    let out = env.run(&["pop", "--receipt-file", r.to_str().unwrap()]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "one");
    let receipt = std::fs::read_to_string(&r).unwrap();
    assert_ne!(receipt, "previous\n");
    assert_exit(&env.run(&["ack", receipt.trim_end()]), 0);
}

#[test]
fn pop_creates_a_missing_spool() {
    let env = Env::new();
    assert!(!env.spool().exists());
    let out = env.run(&["pop"]);
    assert_exit(&out, 3);
    assert!(out.stdout.is_empty());
    for d in ["tmp", "new", "leased", "done", "dead"] {
        assert!(env.spool().join(d).is_dir(), "{d}/ missing");
    }
    let s = env.stats();
    assert_eq!(s["ready"], 0);
}

#[test]
fn fifo_in_push_order() {
    let env = Env::new();
    // Several in one push (likely the same millisecond: ties go by id) and separate pushes.
    let mut ids = env.push_all(&["a", "b", "c"]);
    ids.push(env.push("d"));
    ids.push(env.push("e"));
    for (i, want) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let v = env.pop_json(&[]);
        assert_eq!(v["body"], *want);
        assert_eq!(v["id"], ids[i].as_str());
    }
    env.assert_empty();
}

#[test]
fn a_requeued_message_goes_to_the_back() {
    let env = Env::new();
    let ids = env.push_all(&["a", "b", "c"]);
    let first = env.pop_json(&[]);
    assert_eq!(first["id"], ids[0].as_str());
    // (A few ms, so that its new visible time cannot tie with c's push time.)
    std::thread::sleep(std::time::Duration::from_millis(3));
    assert_exit(
        &env.run(&["requeue", first["receipt"].as_str().unwrap()]),
        0,
    );
    // Visible again from now, so after b and c although its id is older.
    assert_eq!(env.pop_json(&[])["body"], "b");
    assert_eq!(env.pop_json(&[])["body"], "c");
    let again = env.pop_json(&[]);
    assert_eq!(again["id"], ids[0].as_str());
    assert_eq!(again["attempt"], 2);
    assert_ne!(again["receipt"], first["receipt"]);
    // Its id, and so its enqueue time, never change.
    assert_eq!(again["enqueued_at"], first["enqueued_at"]);
    env.assert_empty();
}

#[test]
fn an_expired_lease_is_reclaimed_by_pop_and_goes_to_the_back() {
    let env = Env::new();
    let ids = env.push_all(&["a", "b"]);
    let first = env.pop_json(&["--lease", "1ms"]);
    assert_eq!(first["id"], ids[0].as_str());
    std::thread::sleep(std::time::Duration::from_millis(5));
    // pop reclaims a by itself, but b has been visible longer.
    assert_eq!(env.pop_json(&[])["id"], ids[1].as_str());
    let again = env.pop_json(&[]);
    assert_eq!(again["id"], ids[0].as_str());
    assert_eq!(again["attempt"], 2);
    env.assert_empty();
}

#[test]
fn lease_flag_sets_the_expiry() {
    let env = Env::init(&["--lease", "30s"]);
    env.push_all(&["a", "b", "c"]);
    for (flag, ms) in [("2h", 7_200_000u64), ("1m30s", 90_000), ("45", 45_000)] {
        let before = now_ms();
        let v = env.pop_json(&["--lease", flag]);
        let after = now_ms();
        let exp = rfc3339_ms(v["lease_expires_at"].as_str().unwrap());
        assert!(
            (before + ms..=after + ms).contains(&exp),
            "--lease {flag}: expires {exp}, popped between {before} and {after}"
        );
        assert_eq!(receipt_expiry_ms(v["receipt"].as_str().unwrap()), exp);
    }
    let s = env.stats();
    assert_eq!(s["leased"], 3, "{s}");
    assert_eq!(s["expired"], 0, "{s}");
}

#[test]
fn bad_lease_is_a_usage_error() {
    let env = Env::new();
    env.push("x");
    for bad in ["0", "0s", "-1s", "soon", "1.5s"] {
        let out = env.run(&["pop", "--lease", bad]);
        assert_exit(&out, 2);
        assert!(out.stdout.is_empty());
    }
    assert!(env.names("leased").is_empty());
    assert_eq!(env.new_files().len(), 1);
}

#[test]
fn a_write_error_on_stdout_releases_the_lease_without_ack() {
    let env = Env::new();
    assert_exit(&env.run_stdin(&["push"], &big_payload()), 0);
    let id = id_of(&env.new_files()[0].file_name().unwrap().to_string_lossy()).to_owned();
    let r = env.scratch().join("receipt");

    let out = env.run_closed_stdout(&["pop", "--receipt-file", r.to_str().unwrap()]);
    assert_exit(&out, 1);
    let line = one_error_line(&out);
    assert!(!line.contains("panicked"), "{line}");
    assert_released(&env, &id, 1);
    // Whatever the receipt file says, that lease is not held any more.
    if let Ok(text) = std::fs::read_to_string(&r) {
        assert_exit(&env.run(&["ack", text.trim_end()]), 4);
    }

    // The same with --ack: never acked.
    let out = env.run_closed_stdout(&["pop", "--ack"]);
    assert_exit(&out, 1);
    one_error_line(&out);
    assert_released(&env, &id, 2);

    // Delivered intact next time, as its third attempt.
    let out = env.run(&["pop", "--json"]);
    assert_exit(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["attempt"], 3);
    assert_eq!(
        base64_decode(v["body_base64"].as_str().unwrap()),
        big_payload()
    );
}

#[test]
fn pop_into_head_c1_fails_cleanly() {
    let env = Env::new();
    assert_exit(&env.run_stdin(&["push"], &big_payload()), 0);
    let id = id_of(&env.new_files()[0].file_name().unwrap().to_string_lossy()).to_owned();
    let rc = env.scratch().join("rc");
    // `qspool pop | head -c1`, keeping qspool's exit status.
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(r#"{ "$0" --spool "$1" pop; echo $? > "$2"; } | head -c1"#)
        .arg(qspool_bin())
        .arg(env.spool())
        .arg(&rc)
        .env_remove("QSPOOL_DIR");
    let out = c.output().unwrap();
    assert_eq!(out.stdout, vec![0u8], "head got the first byte");
    assert_eq!(std::fs::read_to_string(&rc).unwrap().trim(), "1");
    let line = one_error_line(&out);
    assert!(!line.contains("panicked"), "{line}");
    assert_released(&env, &id, 1);
}

#[test]
fn an_unwritable_receipt_file_fails_without_losing_the_message() {
    let env = Env::new();
    env.push("precious");
    let r = env.scratch().join("no-such-dir/receipt");
    let line = env
        .qspool(&["pop", "--receipt-file", r.to_str().unwrap()])
        .fails(1);
    assert!(line.contains("no-such-dir"), "{line}");
    assert!(env.names("done").is_empty());
    let s = env.stats();
    assert_eq!(
        s["ready"].as_u64().unwrap() + s["leased"].as_u64().unwrap(),
        1,
        "{s}"
    );
}

#[test]
fn a_write_error_releases_every_lease_of_a_batch() {
    let env = Env::new();
    for _ in 0..3 {
        assert_exit(&env.run_stdin(&["push"], &big_payload()), 0);
    }
    let out = env.run_closed_stdout(&["pop", "--json", "-n", "3"]);
    assert_exit(&out, 1);
    one_error_line(&out);
    assert!(env.names("leased").is_empty(), "{:?}", env.names("leased"));
    assert!(env.names("done").is_empty());
    let files = env.new_files();
    assert_eq!(files.len(), 3, "{files:?}");
    for f in files {
        let name = f.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.contains(",a1,"), "{name}");
    }
    assert_eq!(env.stats()["ready"], 3);
}

/// The environment variables that make `peak_rss_probe` run a command, with its standard
/// output in a file, and write its exit code and peak RSS to another.
const PROBE_CMD: &str = "QSPOOL_TEST_PROBE_CMD";
const PROBE_OUT: &str = "QSPOOL_TEST_PROBE_OUT";
const PROBE_RESULT: &str = "QSPOOL_TEST_PROBE_RESULT";

/// Not a test: a fresh copy of this test binary, run by `peak_rss_kib`, runs a command as its
/// only child and reports the child's peak resident set size. A child of the test process
/// itself would not do: a spawned child inherits its parent's high-water mark until it execs,
/// and the test process holds the big payloads. Ignored, so that it only runs when asked for.
#[test]
#[ignore = "a helper process that json_streams_a_big_payload_in_little_memory starts"]
#[allow(unsafe_code)]
fn peak_rss_probe() {
    let cmd = std::env::var_os(PROBE_CMD).expect("run by peak_rss_kib, which sets the command");
    let cmd: Vec<String> = serde_json::from_str(cmd.to_str().unwrap()).unwrap();
    let out = std::fs::File::create(std::env::var_os(PROBE_OUT).unwrap()).unwrap();
    let status = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(out)
        .status()
        .unwrap();
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is valid for writes for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    // SAFETY: getrusage succeeded, so it filled in `usage` (zeroed before anyway).
    let maxrss = u64::try_from(unsafe { usage.assume_init() }.ru_maxrss).unwrap();
    // Linux and the BSDs count in KiB, macOS in bytes.
    let kib = if cfg!(target_os = "macos") {
        maxrss / 1024
    } else {
        maxrss
    };
    let code = status.code().unwrap_or(-1);
    std::fs::write(
        std::env::var_os(PROBE_RESULT).unwrap(),
        format!("{code} {kib}"),
    )
    .unwrap();
}

/// Runs `qspool ARGS` in `env` through `peak_rss_probe`; returns its exit code, standard
/// output and peak resident set size in KiB.
fn peak_rss_kib(env: &Env, args: &[&str]) -> (i32, Vec<u8>, u64) {
    let out = env.scratch().join("probe.out");
    let result = env.scratch().join("probe.result");
    let mut cmd = vec![qspool_bin(), "--spool", env.spool().to_str().unwrap()];
    cmd.extend_from_slice(args);
    let probe = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "pop::peak_rss_probe",
            "--test-threads=1",
        ])
        .env_remove("QSPOOL_DIR")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", env.scratch().join("home"))
        .env(PROBE_CMD, serde_json::to_string(&cmd).unwrap())
        .env(PROBE_OUT, &out)
        .env(PROBE_RESULT, &result)
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "probe: {}{}",
        stdout(&probe),
        stderr(&probe)
    );
    let result = std::fs::read_to_string(&result).unwrap();
    let (code, kib) = result.split_once(' ').unwrap();
    (
        code.parse().unwrap(),
        std::fs::read(&out).unwrap(),
        kib.parse().unwrap(),
    )
}

/// Decodes standard base64 with a lookup table: `base64_decode` is too slow for 64 MiB.
fn fast_base64_decode(s: &[u8]) -> Vec<u8> {
    let mut value = [255u8; 256];
    for (i, &c) in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        .iter()
        .enumerate()
    {
        value[usize::from(c)] = i as u8;
    }
    assert_eq!(s.len() % 4, 0);
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for g in s.chunks_exact(4) {
        let pad = g.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in &g[..4 - pad] {
            let v = value[usize::from(c)];
            assert_ne!(v, 255, "not base64: {c:#x}");
            n = (n << 6) | u32::from(v);
        }
        n <<= 6 * pad;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    out
}

#[test]
fn json_streams_a_big_payload_in_little_memory() {
    const MIB: usize = 1024 * 1024;
    let env = Env::new();
    // 64 MiB of text full of characters to escape, and of multibyte characters that straddle
    // every read boundary sooner or later (the pattern's length is odd); then 16 MiB that is
    // not UTF-8 (a truncated character at the very end), smaller only to keep the test quick.
    let pattern = "h\u{e9}llo \"w\u{f6}rld\"\n\t\\ \u{0}\u{20ac}\u{1d11e}/";
    let mut text = pattern.repeat(64 * MIB / pattern.len() + 1).into_bytes();
    text.truncate(64 * MIB);
    while std::str::from_utf8(&text).is_err() {
        text.pop();
    }
    let mut binary = pattern.repeat(16 * MIB / pattern.len()).into_bytes();
    binary.extend_from_slice(b"\xf0\x9d\x84");
    assert_exit(&env.run_stdin(&["push", "--no-sync"], &text), 0);
    assert_exit(&env.run_stdin(&["push", "--no-sync"], &binary), 0);

    let (code, out, peak_kib) = peak_rss_kib(&env, &["pop", "--json", "-n", "2", "--ack"]);
    assert_eq!(code, 0);
    // Holding the text whole (let alone its encoding) would take 64 MiB at least; it takes
    // about 5 MiB.
    assert!(
        peak_kib < 16 * 1024,
        "pop --json of 80 MiB of payloads peaked at {peak_kib} KiB"
    );

    let mut objs = out.split(|&b| b == b'\n');
    let v: Value = serde_json::from_slice(objs.next().unwrap()).unwrap();
    assert_eq!(v["size"], text.len());
    assert!(v.get("body_base64").is_none());
    assert!(v["body"].as_str().unwrap().as_bytes() == text, "text body");
    let v: Value = serde_json::from_slice(objs.next().unwrap()).unwrap();
    assert_eq!(v["size"], binary.len());
    assert!(v.get("body").is_none());
    let decoded = fast_base64_decode(v["body_base64"].as_str().unwrap().as_bytes());
    assert!(decoded == binary, "binary body");
    assert_eq!(objs.next(), Some(&b""[..]));
    assert_eq!(objs.next(), None);
    assert_eq!(env.names("done").len(), 2);
}

/// A batch (`-n`) is leased in one walk of the bucket tree: it must still come out in queue
/// order across buckets, skip delayed messages, dead-letter exhausted ones on the way, and stop
/// at what is visible.
#[test]
fn a_batch_comes_in_queue_order_across_buckets() {
    let env = Env::init(&["--max-attempts", "2"]);
    let mut pushed = Vec::new();
    for round in 0..4 {
        let text: String = (0..6).map(|i| format!("r{round} m{i}\n")).collect();
        let out = env.run_stdin(&["push", "--lines"], text.as_bytes());
        assert_exit(&out, 0);
        pushed.extend(lines(&out));
        // Another millisecond, so another bucket.
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    assert_exit(&env.run(&["push", "--delay", "1h", "later"]), 0);
    // The first message is taken and released, then the spool allows one attempt only: it is
    // exhausted in new/, and the batch dead-letters it on its way rather than delivering it.
    let first = env.pop_json(&[]);
    assert_exit(&env.run(&["requeue", &receipt(&first)]), 0);
    assert_exit(&env.run(&["init", "--max-attempts", "1"]), 0);
    assert!(env.names("dead").is_empty());
    let out = env.run(&["pop", "--json", "-n", "100"]);
    assert_exit(&out, 0);
    let got: Vec<String> = parse_lines(&out).iter().map(id).collect();
    let first_id = id(&first);
    let want: Vec<String> = pushed.iter().filter(|i| **i != first_id).cloned().collect();
    assert_eq!(got, want);
    assert_eq!(env.names("dead").len(), 1);
    assert_eq!(env.names("leased").len(), want.len());
    assert_eq!(env.stats()["delayed"], 1);
}

//! `qspool push`: arguments, standard input, --lines, --null, --delay, --no-sync, modes, failures.

use crate::harness::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

/// Pops everything visible, in order, as raw payloads.
fn drain(env: &Env) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    loop {
        let out = env.run(&["pop", "--ack"]);
        match out.status.code() {
            Some(0) => got.push(out.stdout),
            Some(3) => {
                assert!(out.stdout.is_empty());
                return got;
            }
            _ => panic!("pop failed: {}", stderr(&out)),
        }
    }
}

fn bytes(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// The `v` (visible-at millisecond) field of a file name in `new/`.
fn visible_ms(name: &str) -> u64 {
    name.split(',')
        .find_map(|f| f.strip_prefix('v'))
        .unwrap_or_else(|| panic!("no visible-at field in {name:?}"))
        .parse()
        .unwrap()
}

#[test]
fn each_text_is_one_message_and_ids_come_back_in_order() {
    let env = Env::new();
    let ids = env.push_all(&["first", "second message", "third"]);
    for id in &ids {
        assert_id(id);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "ids must be distinct and sort in push order");

    // The files in new/ carry exactly those ids, and each holds its text.
    let files = env.new_files();
    assert_eq!(files.len(), 3);
    let mut by_id: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            (id_of(&name).to_owned(), std::fs::read(p).unwrap())
        })
        .collect();
    by_id.sort();
    assert_eq!(
        by_id,
        vec![
            (ids[0].clone(), b"first".to_vec()),
            (ids[1].clone(), b"second message".to_vec()),
            (ids[2].clone(), b"third".to_vec()),
        ]
    );

    // Popping returns them in push order, with the ids that push printed.
    for (i, want) in ["first", "second message", "third"].iter().enumerate() {
        let v = env.pop_json(&["--ack"]);
        assert_eq!(v["id"], ids[i].as_str());
        assert_eq!(v["body"], *want);
    }
    env.assert_empty();
}

#[test]
fn text_arguments_do_not_read_standard_input() {
    let env = Env::new();
    let out = env.run_stdin(&["push", "from-arg"], b"from-stdin");
    assert_exit(&out, 0);
    assert_eq!(lines(&out).len(), 1);
    assert_eq!(drain(&env), bytes(&["from-arg"]));
}

#[test]
fn ids_of_separate_pushes_sort_in_push_order() {
    let env = Env::new();
    let ids: Vec<String> = (0..15).map(|i| env.push(&format!("m{i}"))).collect();
    for w in ids.windows(2) {
        assert!(w[0] < w[1], "{} then {}", w[0], w[1]);
    }
    let want: Vec<Vec<u8>> = (0..15).map(|i| format!("m{i}").into_bytes()).collect();
    assert_eq!(drain(&env), want);
}

#[test]
fn standard_input_is_one_binary_message_round_tripped_exactly() {
    let env = Env::new();
    // Every byte value, NULs, invalid UTF-8, CR/LF: one message, untouched.
    let mut payload: Vec<u8> = (0..=255u8).collect();
    payload.extend_from_slice(b"\0\0\xff\xfe\xc3\x28 line\r\nnext\n\0");
    let out = env.run_stdin(&["push"], &payload);
    assert_exit(&out, 0);
    let ids = lines(&out);
    assert_eq!(ids.len(), 1, "one message, one id");
    assert_id(&ids[0]);
    assert_eq!(env.new_files().len(), 1);

    let out = env.run(&["pop"]);
    assert_exit(&out, 0);
    assert_eq!(out.stdout, payload);
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(&out));
}

#[test]
fn non_utf8_payload_comes_back_base64_in_json() {
    let env = Env::new();
    let payload = b"\xff\x00abc\xfe";
    assert_exit(&env.run_stdin(&["push"], payload), 0);
    let v = env.pop_json(&[]);
    assert!(v.get("body").is_none(), "{v}");
    assert_eq!(
        base64_decode(v["body_base64"].as_str().unwrap()),
        payload.to_vec()
    );
}

#[test]
fn empty_messages_are_allowed() {
    let env = Env::new();
    // From an argument...
    let id = env.push("");
    assert_id(&id);
    // ...and from empty standard input.
    let out = env.run_stdin(&["push"], b"");
    assert_exit(&out, 0);
    assert_eq!(lines(&out).len(), 1);
    assert_eq!(env.new_files().len(), 2);
    for f in env.new_files() {
        assert_eq!(std::fs::metadata(&f).unwrap().len(), 0);
    }

    let v = env.pop_json(&["--ack"]);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["body"], "");
    let out = env.run(&["pop"]);
    assert_exit(&out, 0);
    assert!(out.stdout.is_empty());
    env.assert_empty();
}

#[test]
fn a_multi_megabyte_payload_round_trips() {
    let env = Env::new();
    // 6 MiB plus a few bytes, pseudo-random so that a misplaced block would show.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let payload: Vec<u8> = (0..6 * 1024 * 1024 + 7)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let out = env.run_stdin(&["push"], &payload);
    assert_exit(&out, 0);
    let files = env.new_files();
    assert_eq!(files.len(), 1);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().len(),
        payload.len() as u64
    );
    let got = env.pop_raw();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "payload differs");
}

#[test]
fn lines_strips_only_the_newline_and_skips_empty_lines() {
    let env = Env::new();
    let input = b"alpha\nbeta\r\n\n\n  \n\ttab\x00nul\n\xffraw\nlast-without-newline";
    let out = env.run_stdin(&["push", "--lines"], input);
    assert_exit(&out, 0);
    let ids = lines(&out);
    assert_eq!(ids.len(), 6, "{ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids);
    let want: Vec<Vec<u8>> = vec![
        b"alpha".to_vec(),
        b"beta\r".to_vec(),
        b"  ".to_vec(),
        b"\ttab\x00nul".to_vec(),
        b"\xffraw".to_vec(),
        b"last-without-newline".to_vec(),
    ];
    assert_eq!(drain(&env), want);
}

#[test]
fn lines_with_only_empty_lines_pushes_nothing() {
    let env = Env::new();
    for input in [&b""[..], b"\n", b"\n\n\n"] {
        let out = env.run_stdin(&["push", "--lines"], input);
        assert_exit(&out, 0);
        assert!(out.stdout.is_empty(), "{}", stdout(&out));
    }
    assert!(env.new_files().is_empty());
    env.assert_empty();
}

#[test]
fn lines_pushes_many_messages_in_order() {
    let env = Env::new();
    let input: String = (0..3000).map(|i| format!("line {i}\n")).collect();
    let out = env.run_stdin(&["push", "--lines", "--no-sync"], input.as_bytes());
    assert_exit(&out, 0);
    let ids = lines(&out);
    assert_eq!(ids.len(), 3000);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "distinct and in push order");
    assert_eq!(env.new_files().len(), 3000);
    // The first and last come out first and last.
    let v = env.pop_json(&["-n", "1"]);
    assert_eq!(v["body"], "line 0");
    assert_eq!(v["id"], ids[0].as_str());
    let out = env.run(&["pop", "--json", "-n", "5000"]);
    assert_exit(&out, 0);
    let objs = lines(&out);
    assert_eq!(objs.len(), 2999);
    let last: serde_json::Value = serde_json::from_str(objs.last().unwrap()).unwrap();
    assert_eq!(last["body"], "line 2999");
    assert_eq!(last["id"], ids[2999].as_str());
}

#[test]
fn null_splits_on_nul_and_keeps_newlines() {
    let env = Env::new();
    let input = b"one\0two\nstill two\0\0\r\n\0last";
    let out = env.run_stdin(&["push", "--null"], input);
    assert_exit(&out, 0);
    assert_eq!(lines(&out).len(), 4);
    assert_eq!(
        drain(&env),
        bytes(&["one", "two\nstill two", "\r\n", "last"])
    );

    // -0 is the short form; a trailing NUL ends the last record.
    let out = env.run_stdin(&["push", "-0"], b"x\0y\0");
    assert_exit(&out, 0);
    assert_eq!(lines(&out).len(), 2);
    assert_eq!(drain(&env), bytes(&["x", "y"]));
}

#[test]
fn text_with_lines_or_null_is_a_usage_error() {
    let env = Env::new();
    for args in [
        &["push", "--lines", "text"][..],
        &["push", "text", "--lines"],
        &["push", "--null", "text"],
        &["push", "--lines", "--null"],
    ] {
        let out = env.run_stdin(args, b"a\nb\n");
        assert_exit(&out, 2);
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
    // Nothing was pushed: the spool was not even created.
    assert!(!env.spool().exists());
}

#[test]
fn bad_delay_is_a_usage_error() {
    let env = Env::new();
    for bad in ["soon", "-5", "1.5s", "5x", ""] {
        let out = env.run(&["push", "--delay", bad, "x"]);
        assert_exit(&out, 2);
        assert!(out.stdout.is_empty());
    }
    assert!(!env.spool().exists());
}

#[test]
fn delayed_messages_are_not_visible() {
    let env = Env::new();
    let before = now_ms();
    let out = env.run(&["push", "--delay", "1h", "later", "later too"]);
    let after = now_ms();
    assert_exit(&out, 0);
    let ids = lines(&out);
    assert_eq!(ids.len(), 2);

    // Their visible-at time is an hour out, and they sit in that time's bucket.
    for f in env.new_files() {
        let name = f.file_name().unwrap().to_str().unwrap();
        let v = visible_ms(name);
        assert!(
            (before + 3_600_000..=after + 3_600_000).contains(&v),
            "visible at {v}, pushed between {before} and {after}"
        );
        let rel = f.strip_prefix(env.spool().join("new")).unwrap();
        let want = format!(
            "{:07}/{:03}/{:03}/{name}",
            v / 1_000_000,
            (v / 1000) % 1000,
            v % 1000
        );
        assert_eq!(rel.to_str().unwrap(), want);
    }

    // Pop finds nothing and writes nothing.
    let r = env.scratch().join("receipt");
    let out = env.run(&["pop", "--receipt-file", r.to_str().unwrap()]);
    assert_exit(&out, 3);
    assert!(out.stdout.is_empty());
    assert!(!r.exists());

    let s = env.stats();
    assert_eq!(s["delayed"], 2, "{s}");
    assert_eq!(s["ready"], 0, "{s}");
    assert_eq!(s["leased"], 0, "{s}");

    // An undelayed message pushed after them is delivered first.
    env.push("now");
    assert_eq!(env.pop_raw(), b"now");
    env.assert_empty();
}

#[test]
fn delay_accepts_compound_durations_and_zero() {
    let env = Env::new();
    let before = now_ms();
    assert_exit(&env.run(&["push", "--delay", "1m30s", "x"]), 0);
    let after = now_ms();
    let f = env.new_files();
    let v = visible_ms(f[0].file_name().unwrap().to_str().unwrap());
    assert!((before + 90_000..=after + 90_000).contains(&v), "{v}");

    // --delay 0 and a bare 0 are visible at once.
    assert_exit(&env.run(&["push", "--delay", "0", "now"]), 0);
    assert_exit(&env.run(&["push", "--delay", "0s", "now too"]), 0);
    assert_eq!(env.pop_raw(), b"now");
    assert_eq!(env.pop_raw(), b"now too");
    env.assert_empty();
    assert_eq!(env.stats()["delayed"], 1);
}

#[test]
fn lines_with_delay_delays_every_line() {
    let env = Env::new();
    let out = env.run_stdin(&["push", "--lines", "--delay", "5m"], b"a\nb\nc\n");
    assert_exit(&out, 0);
    assert_eq!(lines(&out).len(), 3);
    env.assert_empty();
    assert_eq!(env.stats()["delayed"], 3);
}

#[test]
fn no_sync_still_pushes() {
    let env = Env::new();
    let out = env.run(&["push", "--no-sync", "a", "b"]);
    assert_exit(&out, 0);
    assert_eq!(lines(&out).len(), 2);
    let out = env.run_stdin(&["push", "--no-sync"], b"\x00stdin\xff");
    assert_exit(&out, 0);
    let out = env.run_stdin(&["push", "--no-sync", "--lines"], b"c\nd");
    assert_exit(&out, 0);
    assert_eq!(lines(&out).len(), 2);
    let mut want = bytes(&["a", "b"]);
    want.push(b"\x00stdin\xff".to_vec());
    want.extend(bytes(&["c", "d"]));
    assert_eq!(drain(&env), want);
}

#[test]
fn push_creates_a_missing_spool_even_several_levels_deep() {
    let env = Env::new();
    let deep = env.spool().join("a/b/c");
    let out = env.run_at(&deep, &["push", "hello"]);
    assert_exit(&out, 0);
    for d in ["tmp", "new", "leased", "done", "dead"] {
        assert!(deep.join(d).is_dir(), "{d}/ missing");
    }
    let out = env.run_at(&deep, &["pop"]);
    assert_exit(&out, 0);
    assert_eq!(out.stdout, b"hello");
}

/// Asserts every directory in the spool is 0700 and every file 0600.
fn assert_private(env: &Env) {
    let tree = env.tree();
    assert!(tree.len() > 6, "{tree:?}");
    for (path, meta) in tree {
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
        } else {
            assert!(meta.is_file(), "{} is not a file", path.display());
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
        }
    }
}

fn modes_whatever_the_umask(mask: &str) {
    let env = Env::new();
    let run = |args: &[&str], input: &[u8]| {
        let out = env.run_umask(mask, args, input);
        assert_ne!(out.status.code(), Some(99), "sh could not set umask {mask}");
        out
    };
    assert_exit(&run(&["init", "--lease", "1h"], b""), 0);
    assert_exit(&run(&["push", "one", "two", "three"], b""), 0);
    assert_exit(&run(&["push"], b"from stdin"), 0);
    assert_exit(&run(&["push", "--lines"], b"l1\nl2\n"), 0);
    assert_exit(&run(&["push", "--delay", "1d", "later"], b""), 0);
    let out = run(&["pop", "--json"], b"");
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_exit(&run(&["ack", v["receipt"].as_str().unwrap()], b""), 0);
    assert_exit(&run(&["pop"], b""), 0);
    // A requeue makes a fresh bucket under new/ for "now".
    let out = run(&["pop", "--json"], b"");
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert_exit(&run(&["requeue", v["receipt"].as_str().unwrap()], b""), 0);
    assert_eq!(env.names("done").len(), 1);
    assert_eq!(env.names("leased").len(), 1);
    assert_eq!(env.stats()["ready"], 4);
    assert!(env.spool().join("qspool.json").is_file());
    assert_private(&env);
}

#[test]
fn modes_are_private_under_a_permissive_umask() {
    modes_whatever_the_umask("000");
}

#[test]
fn modes_are_exact_under_an_odd_umask() {
    // 0277 takes the owner's write bit away: qspool must still end with 0700 and 0600.
    modes_whatever_the_umask("277");
}

#[test]
fn modes_are_exact_when_the_spool_is_made_by_push() {
    let env = Env::new();
    assert_exit(&env.run_umask("000", &["push", "x"], b""), 0);
    assert_exit(&env.run_umask("027", &["push", "y"], b""), 0);
    assert_private(&env);
}

#[test]
fn a_failed_read_leaves_nothing_behind() {
    let env = Env::init(&[]);
    env.push("earlier");
    // Standard input is a directory: reading it fails after the tmp/ file was made.
    let dir = std::fs::File::open(env.scratch()).unwrap();
    let out = env.std_cmd(&["push"]).stdin(dir).output().unwrap();
    assert_exit(&out, 1);
    let line = one_error_line(&out);
    // The failure is named for what failed: the read, not the tmp/ file it was copied into.
    assert!(line.starts_with("qspool: read standard input: "), "{line}");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert!(env.names("tmp").is_empty(), "{:?}", env.names("tmp"));
    assert_eq!(env.new_files().len(), 1);
    assert_eq!(env.pop_raw(), b"earlier");
}

#[test]
fn a_failed_rename_leaves_nothing_in_new_or_tmp() {
    let env = Env::init(&[]);
    // Plain files where the top-level buckets of "a day from now" would be: the rename into
    // new/ must fail. (Two, in case the push crosses a bucket boundary.)
    let k = (now_ms() + 86_400_000) / 1_000_000;
    for b in [k, k + 1] {
        std::fs::write(env.spool().join("new").join(format!("{b:07}")), b"").unwrap();
    }
    let out = env.run(&["push", "--delay", "1d", "doomed"]);
    assert_exit(&out, 1);
    one_error_line(&out);
    assert!(out.stdout.is_empty());
    assert!(env.names("tmp").is_empty(), "{:?}", env.names("tmp"));
    let files = env.new_files();
    assert_eq!(files.len(), 2, "only the planted files: {files:?}");
    for f in files {
        assert_eq!(f.parent().unwrap(), env.spool().join("new"));
    }
}

#[test]
fn a_push_that_fails_part_way_keeps_exactly_what_it_printed() {
    if !strace_works("a_push_that_fails_part_way_keeps_exactly_what_it_printed") {
        return;
    }
    let env = Env::init(&[]);
    // The second message's rename into new/ fails, as on a disk gone bad.
    let mut child = std::process::Command::new("strace")
        .args(["-f", "-o", "/dev/null", "-e", "trace=renameat2"])
        .args(["-e", "inject=renameat2:error=EIO:when=2"])
        .arg(qspool_bin())
        .arg("--spool")
        .arg(env.spool())
        .args(["push", "--lines"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    input.write_all(b"kept\n").unwrap();
    input.flush().unwrap();
    // Its id is printed once it is durable, before push reads on.
    let mut first = String::new();
    output.read_line(&mut first).unwrap();
    let first = first.trim_end().to_owned();
    assert_id(&first);

    input.write_all(b"lost 1\nlost 2\n").unwrap();
    drop(input);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut output, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let err = one_error_line(&out);
    assert!(err.contains("Input/output error"), "{err}");
    assert_eq!(rest, "", "no id printed for a message that failed");

    assert!(
        env.names("tmp").is_empty(),
        "the failed message's file is removed"
    );
    let files = env.new_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let v = env.pop_json(&[]);
    assert_eq!(v["id"], first.as_str());
    assert_eq!(v["body"], "kept");
    env.assert_empty();
}

/// The state directories are held open from the start: one swapped for another directory, or
/// for a link out of the spool, while a push runs changes nothing about where it writes.
#[test]
fn a_state_directory_swapped_mid_push_does_not_redirect_it() {
    let env = Env::init(&[]);
    let mut child = env
        .std_cmd(&["push", "--lines"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    input.write_all(b"first\n").unwrap();
    input.flush().unwrap();
    let mut first = String::new();
    output.read_line(&mut first).unwrap();

    let outside = env.scratch().join("outside");
    std::fs::create_dir(&outside).unwrap();
    for d in ["tmp", "new"] {
        let path = env.spool().join(d);
        std::fs::rename(&path, env.scratch().join(format!("{d}.saved"))).unwrap();
        std::os::unix::fs::symlink(&outside, &path).unwrap();
    }
    input.write_all(b"second\n").unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written through the links"
    );
    for d in ["tmp", "new"] {
        let path = env.spool().join(d);
        std::fs::remove_file(&path).unwrap();
        std::fs::rename(env.scratch().join(format!("{d}.saved")), &path).unwrap();
    }
    assert_eq!(env.new_files().len(), 2);
    assert_eq!(env.pop_raw(), b"first");
    assert_eq!(env.pop_raw(), b"second");
}

#[test]
fn text_arguments_are_bytes_not_options() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    // A TEXT that is not UTF-8 is pushed as its bytes.
    let raw = std::ffi::OsStr::from_bytes(b"\xff\xfe not utf-8");
    let out = env.std_cmd(&["push"]).arg(raw).output().unwrap();
    assert_exit(&out, 0);
    // After `--`, option-looking words are messages.
    let out = env.run(&["push", "--", "--lines", "-n"]);
    assert_exit(&out, 0);
    assert_eq!(lines(&out).len(), 2);
    assert_eq!(
        drain(&env),
        vec![
            b"\xff\xfe not utf-8".to_vec(),
            b"--lines".to_vec(),
            b"-n".to_vec()
        ]
    );
}

#[test]
fn file_pushes_each_named_file_as_one_message_in_order() {
    let env = Env::new();
    let dir = env.scratch().join("in");
    std::fs::create_dir(&dir).unwrap();
    let payloads: [&[u8]; 3] = [b"{\"user\":1}\n", b"", b"bin\0\xff\xfe"];
    let mut paths = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let path = dir.join(format!("{i}.json"));
        std::fs::write(&path, p).unwrap();
        paths.push(path.to_str().unwrap().to_owned());
    }
    let args: Vec<&str> = ["push", "--file"]
        .into_iter()
        .chain(paths.iter().map(String::as_str))
        .collect();
    let out = env.run(&args);
    assert_exit(&out, 0);
    assert_eq!(lines(&out).len(), 3);
    assert_eq!(drain(&env), payloads.map(<[u8]>::to_vec));
    // The files are the user's: push reads them and leaves them where they were.
    for (path, p) in paths.iter().zip(payloads) {
        assert_eq!(std::fs::read(path).unwrap(), p);
    }
}

#[test]
fn file_stops_at_the_first_unreadable_file_and_keeps_what_it_printed() {
    let env = Env::new();
    let good = env.scratch().join("good");
    std::fs::write(&good, "first").unwrap();
    let missing = env.scratch().join("missing");
    let dir = env.scratch().join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    for bad in [&missing, &dir] {
        let out = env.run(&[
            "push",
            "--file",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
        ]);
        assert_exit(&out, 1);
        // The message before the failure is durable and its id was printed; nothing else is.
        assert_eq!(lines(&out).len(), 1);
        let err = one_error_line(&out);
        assert!(err.contains(bad.to_str().unwrap()), "{err}");
        assert_eq!(drain(&env), bytes(&["first"]));
        assert!(env.names("tmp").is_empty());
    }
}

#[test]
fn file_needs_at_least_one_file_and_excludes_lines() {
    let env = Env::new();
    assert_exit(&env.run(&["push", "--file"]), 2);
    assert_exit(&env.run(&["push", "--file", "--lines"]), 2);
    assert!(!env.spool().exists());
}

/// A group commit shares its buckets: 1,000 lines read in one go are one group, whose messages
/// take a visible-at time 128 at a time, so they land in at most 8 leaf buckets (one
/// directory fsync each, not one per millisecond the push took) and a pop never has to read a
/// leaf of the whole group. They still come back in push order.
#[test]
fn a_large_group_shares_few_buckets_and_keeps_its_order() {
    let env = Env::init(&[]);
    let text: String = (0..1000).map(|i| format!("m{i}\n")).collect();
    let out = env.run_stdin(&["push", "--lines"], text.as_bytes());
    assert_exit(&out, 0);
    let ids = lines(&out);
    assert_eq!(ids.len(), 1000);
    let files = env.new_files();
    assert_eq!(files.len(), 1000);
    let mut leaves: std::collections::BTreeMap<_, Vec<String>> = Default::default();
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap().to_owned();
        leaves.entry(f.parent().unwrap()).or_default().push(name);
    }
    assert!(
        leaves.len() <= 8,
        "{} leaf buckets for one group of 1,000",
        leaves.len()
    );
    // No message is visible later than it was made (the id starts with the push time in
    // microseconds), and a leaf takes more than 128 only of messages made within its own
    // 10 ms slot.
    for names in leaves.values_mut() {
        names.sort();
        for (i, n) in names.iter().enumerate() {
            let made_ms = n[..n.find('.').unwrap()].parse::<u64>().unwrap() / 1000;
            assert!(visible_ms(n) <= made_ms, "{n}");
            if i >= 128 {
                assert_eq!(made_ms - made_ms % 10, visible_ms(n), "{n}");
            }
        }
    }
    let out = env.run(&["pop", "--json", "-n", "1000"]);
    assert_exit(&out, 0);
    let got: Vec<String> = parse_lines(&out).iter().map(id).collect();
    assert_eq!(got, ids);
}

/// One-shot pushes without delay share a leaf per 10 ms slot rather than making one each; a
/// delayed push keeps its exact time.
#[test]
fn undelayed_pushes_share_a_ten_millisecond_bucket() {
    let env = Env::init(&[]);
    let before = now_ms();
    for i in 0..20 {
        env.push(&format!("m{i}"));
    }
    let after = now_ms();
    let files = env.new_files();
    let leaves: std::collections::BTreeSet<_> = files.iter().map(|f| f.parent().unwrap()).collect();
    for f in &files {
        let v = visible_ms(f.file_name().unwrap().to_str().unwrap());
        assert_eq!(v % 10, 0, "{f:?}");
        assert!(before - before % 10 <= v && v <= after, "{f:?}");
    }
    // One leaf per slot the pushes spanned, not one per millisecond.
    let slots = (after - (before - before % 10)) / 10 + 1;
    assert!(leaves.len() as u64 <= slots, "{} slots: {leaves:?}", slots);
}

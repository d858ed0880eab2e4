//! `--spool nats://…`: the commands on a JetStream queue of a real nats-server, with the same
//! assertions as on a directory where the semantics are the same; the address grammar; and
//! the fencing JetStream lacks, which qspool adds.

use crate::checker::History;
use crate::harness::{Env, assert_id, lines, now_ms, parse_lines, rfc3339_ms, stderr, stdout};
use crate::nats_server::{Js, raw};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

fn pop_one(js: &Js, extra: &[&str]) -> Value {
    let out = js.q(&[&["pop", "--json"], extra].concat()).expect(0);
    let v = parse_lines(&out);
    assert_eq!(v.len(), 1, "{}", stdout(&out));
    v.into_iter().next().unwrap()
}

fn receipt(v: &Value) -> String {
    v["receipt"].as_str().unwrap().to_owned()
}

fn stats(js: &Js) -> Value {
    serde_json::from_str(&stdout(&js.q(&["stats", "--json"]).expect(0))).unwrap()
}

// ---- addresses (no server needed) -------------------------------------------------------

#[test]
fn unknown_url_schemes_are_refused_and_never_become_directories() {
    let env = Env::new();
    let cwd = env.scratch().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    for addr in [
        "redis://h/q",
        "amqp://h:5672/q",
        "nast://127.0.0.1/q",
        "x:",
        "nats:q",
    ] {
        for args in [&["init"][..], &["push", "m"], &["pop"], &["stats"]] {
            let out = raw(&["--spool", addr], args)
                .current_dir(&cwd)
                .env("HOME", env.scratch())
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(2),
                "{addr} {args:?}: {}",
                stderr(&out)
            );
            let err = crate::harness::one_error_line(&out);
            assert!(err.contains("spool address"), "{err}");
        }
    }
    let out = raw(&["--spool", "nast://h/q"], &["stats"])
        .output()
        .unwrap();
    let unknown = crate::harness::one_error_line(&out);
    assert!(unknown.contains("unknown scheme \"nast\""), "{unknown}");
    assert!(unknown.contains("nats:// and tls://"), "{unknown}");
    assert!(
        std::fs::read_dir(&cwd).unwrap().next().is_none(),
        "a refused address made something in the working directory"
    );
}

#[test]
fn qspool_dir_may_hold_a_url_and_is_refused_like_spool() {
    let env = Env::new();
    let cwd = env.scratch().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let out = std::process::Command::new(crate::harness::qspool_bin())
        .current_dir(&cwd)
        .env("QSPOOL_DIR", "redis://localhost/q")
        .env("HOME", env.scratch())
        .args(["push", "m"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown scheme \"redis\""));
    assert!(std::fs::read_dir(&cwd).unwrap().next().is_none());
}

#[test]
fn a_directory_named_like_a_url_is_written_with_a_dot_slash() {
    let env = Env::new();
    let cwd = env.scratch().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    for dir in ["./x:", "./nats:"] {
        let run = |args: &[&str]| {
            std::process::Command::new(crate::harness::qspool_bin())
                .current_dir(&cwd)
                .env_remove("QSPOOL_DIR")
                .env("HOME", env.scratch())
                .arg("--spool")
                .arg(dir)
                .args(args)
                .output()
                .unwrap()
        };
        assert_eq!(run(&["init"]).status.code(), Some(0));
        assert_eq!(run(&["push", "m"]).status.code(), Some(0));
        assert_eq!(stdout(&run(&["pop"])), "m");
        assert!(cwd.join(&dir[2..]).join("new").is_dir());
    }
}

#[test]
fn a_password_never_appears_in_an_error() {
    let env = Env::new();
    let port = crate::nats_server::free_port();
    let url = format!("nats://alice:hunter2@127.0.0.1:{port}/q");
    for args in [&["push", "m"][..], &["stats"], &["init", "--lease", "bad"]] {
        let out = env.qspool(args).at(Path::new(&url)).output();
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0));
        assert!(!err.contains("hunter2"), "{err}");
    }
    let line = env.qspool(&["stats"]).at(Path::new(&url)).fails(1);
    assert!(line.contains("alice:***@127.0.0.1"), "{line}");
    assert!(line.contains("cannot connect"), "{line}");
    let slash = format!("nats://alice:hun/ter2@127.0.0.1:{port}/q");
    let line = env.qspool(&["stats"]).at(Path::new(&slash)).fails(1);
    assert!(
        !line.contains("ter2") && line.contains("alice:***@"),
        "{line}"
    );
    let bad = format!("nats://alice:hunter2@127.0.0.1:{port}/a.b");
    let line = env.qspool(&["stats"]).at(Path::new(&bad)).fails(2);
    assert!(
        !line.contains("hunter2") && line.contains("alice:***@"),
        "{line}"
    );
}

#[test]
fn replicas_belong_to_jetstream_queues() {
    let env = Env::new();
    let line = env.qspool(&["init", "--replicas", "3"]).fails(2);
    assert!(line.contains("only a JetStream queue"), "{line}");
    assert!(!env.spool().exists());
}

// ---- the commands -----------------------------------------------------------------------

#[test]
fn init_creates_the_queue_and_keeps_what_it_is_not_given() {
    let Some(js) = Js::start(
        "init_creates_the_queue",
        &["--max-attempts", "3", "--lease", "7s"],
    ) else {
        return;
    };
    let out = stdout(&js.q(&["init", "--dedup-window", "1m"]).expect(0));
    assert_eq!(
        out,
        format!(
            "{}: max-attempts 3, lease 7s, dedup-window 1m, replicas 1\n",
            js.url
        )
    );
    // Before init, every command names the missing queue.
    let other = js.url.replace("/jobs", "/other");
    let line = js.env.qspool(&["push", "m"]).at(Path::new(&other)).fails(1);
    assert!(
        line.contains("no such queue") && line.contains("init"),
        "{line}"
    );
}

#[test]
fn push_takes_arguments_stdin_lines_nul_and_files_and_prints_ids_once_stored() {
    let Some(js) = Js::start("push_forms", &[]) else {
        return;
    };
    let ids = lines(&js.q(&["push", "one", "two"]).expect(0));
    assert_eq!(ids.len(), 2);
    ids.iter().for_each(|i| assert_id(i));
    let stdin = lines(&js.q(&["push"]).stdin(b"from\nstdin").expect(0));
    assert_eq!(stdin.len(), 1);
    let l = lines(&js.q(&["push", "--lines"]).stdin(b"a\n\nb\nc").expect(0));
    assert_eq!(
        l.len(),
        3,
        "empty lines are skipped, the last needs no newline"
    );
    let z = lines(&js.q(&["push", "--null"]).stdin(b"x\0y\0").expect(0));
    assert_eq!(z.len(), 2);
    let f = js.env.scratch().join("body");
    std::fs::write(&f, [0u8, 1, 2, 255]).unwrap();
    let files = lines(&js.q(&["push", "--file", f.to_str().unwrap()]).expect(0));
    assert_eq!(files.len(), 1);
    let json = parse_lines(&js.q(&["push", "--json", "j"]).expect(0));
    assert_eq!(json[0]["pushed"], true);
    assert_eq!(stats(&js)["ready"], 10);

    let mut bodies = Vec::new();
    let all = parse_lines(&js.q(&["pop", "--json", "-n", "20", "--ack"]).expect(0));
    for v in &all {
        bodies.push(
            v["body"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("b64:{}", v["body_base64"].as_str().unwrap())),
        );
    }
    assert_eq!(
        bodies,
        [
            "one",
            "two",
            "from\nstdin",
            "a",
            "b",
            "c",
            "x",
            "y",
            "b64:AAEC/w==",
            "j"
        ],
        "in push order, bytes exact"
    );
    assert_eq!(all[0]["id"], ids[0].as_str());
    let missing = js.q(&["push", "--file", "/nonexistent/x"]).fails(1);
    assert!(missing.contains("/nonexistent/x"), "{missing}");
}

#[test]
fn pop_hands_out_the_payload_and_the_same_json_as_on_a_directory() {
    let Some(js) = Js::start("pop_json", &["--lease", "30s"]) else {
        return;
    };
    js.q(&["pop"]).expect(3);
    let id = lines(&js.q(&["push", "héllo"]).expect(0)).remove(0);
    let before = now_ms();
    let v = pop_one(&js, &[]);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let dir = Env::init(&[]);
    dir.push("x");
    let want = dir.pop_json(&[]);
    let mut want_keys: Vec<&str> = want
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut got_keys = keys.clone();
    want_keys.sort_unstable();
    got_keys.sort_unstable();
    assert_eq!(
        got_keys, want_keys,
        "the same keys as a directory's pop --json"
    );
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["attempt"], 1);
    assert_eq!(v["body"], "héllo");
    assert_eq!(v["size"], 6);
    let exp = rfc3339_ms(v["lease_expires_at"].as_str().unwrap());
    assert!(exp >= before + 29_000 && exp <= now_ms() + 30_000, "{v}");
    assert!(receipt(&v).starts_with(&format!("{id},s")));
    js.q(&["ack", &receipt(&v)]).expect(0);
    // Raw payload, exactly the bytes.
    js.q(&["push", "raw bytes\n"]).expect(0);
    assert_eq!(stdout(&js.q(&["pop", "--ack"]).expect(0)), "raw bytes\n");
    js.q(&["pop"]).expect(3);
    let line = js.q(&["pop", "-n", "2"]).fails(2);
    assert!(line.contains("needs --json"), "{line}");
}

#[test]
fn pop_writes_the_receipt_file_and_removes_a_stale_one() {
    let Some(js) = Js::start("pop_receipt_file", &[]) else {
        return;
    };
    let file = js.env.scratch().join("receipt");
    std::fs::write(&file, "stale\n").unwrap();
    js.q(&["pop", "--receipt-file", file.to_str().unwrap()])
        .expect(3);
    assert!(!file.exists(), "nothing popped: no receipt left");
    js.q(&["push", "m"]).expect(0);
    assert_eq!(
        stdout(
            &js.q(&["pop", "--receipt-file", file.to_str().unwrap()])
                .expect(0)
        ),
        "m"
    );
    let r = std::fs::read_to_string(&file).unwrap();
    js.q(&["ack", r.trim_end()]).expect(0);
}

#[test]
fn pop_wait_long_polls_until_a_push_or_the_limit() {
    let Some(js) = Js::start("pop_wait", &[]) else {
        return;
    };
    let t = std::time::Instant::now();
    js.q(&["pop", "--wait=700ms"]).expect(3);
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(600), "{waited:?}");
    let waiter = js
        .std_cmd(&["pop", "--wait=20s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    js.q(&["push", "late"]).expect(0);
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "late");
}

#[test]
fn ack_twice_and_stale_receipts_exit_4_and_malformed_ones_exit_2() {
    let Some(js) = Js::start("ack_paths", &[]) else {
        return;
    };
    js.q(&["push", "a", "b"]).expect(0);
    let a = receipt(&pop_one(&js, &[]));
    js.q(&["ack", &a]).expect(0);
    let line = js.q(&["ack", &a]).fails(4);
    assert!(
        line.contains("lease not held") && line.contains(&a),
        "{line}"
    );
    for bad in [
        "",
        "nope",
        "../../etc/passwd",
        "1796656155812586.8279.00000000.531260fc.vm",
    ] {
        let line = js.q(&["ack", bad]).fails(2);
        assert!(line.contains("malformed receipt"), "{line}");
    }
    // A directory receipt is not a JetStream one.
    let dir = Env::init(&[]);
    dir.push("x");
    let dr = receipt(&dir.pop_json(&[]));
    js.q(&["ack", &dr]).fails(2);
    // One bad receipt among good ones: nothing is acked.
    let b = receipt(&pop_one(&js, &[]));
    js.q(&["ack", &b, "bad"]).fails(2);
    js.q(&["ack", &b]).expect(0);
    // A receipt for a message that never was.
    let ghost = format!("{},s999,r999", b.split(',').next().unwrap());
    js.q(&["ack", &ghost]).fails(4);
    assert_eq!(stats(&js)["ready"], 0);
    assert_eq!(stats(&js)["leased"], 0);
}

#[test]
fn requeue_with_delay_hides_the_message_until_then() {
    let Some(js) = Js::start("requeue_delay", &[]) else {
        return;
    };
    let id = lines(&js.q(&["push", "m"]).expect(0)).remove(0);
    let r = receipt(&pop_one(&js, &[]));
    js.q(&["requeue", "--delay", "1500ms", &r]).expect(0);
    js.q(&["pop"]).expect(3);
    js.q(&["requeue", &r]).fails(4);
    let v = pop_one(&js, &["--wait=5s"]);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["attempt"], 2);
    js.q(&["requeue", &receipt(&v)]).expect(0);
    let v = pop_one(&js, &[]);
    assert_eq!(v["attempt"], 3);
    let line = js.q(&["requeue", "--expired"]).fails(2);
    assert!(line.contains("redelivers"), "{line}");
}

#[test]
fn extend_replaces_the_receipt_and_the_old_one_stops_working() {
    let Some(js) = Js::start("extend", &["--lease", "2s"]) else {
        return;
    };
    js.q(&["push", "m"]).expect(0);
    let old = receipt(&pop_one(&js, &[]));
    std::thread::sleep(Duration::from_millis(1200));
    let new = stdout(&js.q(&["extend", &old]).expect(0))
        .trim_end()
        .to_owned();
    assert_ne!(new, old);
    js.q(&["extend", &old]).fails(4);
    // Past the first lease's end, the extended one still holds.
    std::thread::sleep(Duration::from_millis(1200));
    js.q(&["pop"]).expect(3);
    js.q(&["ack", &old]).fails(4);
    js.q(&["ack", &new]).expect(0);
    let line = js.q(&["extend", "--lease", "5m", &new]).fails(2);
    assert!(line.contains("not served on a JetStream queue"), "{line}");
}

#[test]
fn a_lease_that_expires_is_redelivered_and_max_attempts_dead_letters_it() {
    let Some(js) = Js::start("expiry", &["--lease", "1s", "--max-attempts", "2"]) else {
        return;
    };
    let id = lines(&js.q(&["push", "m"]).expect(0)).remove(0);
    let first = pop_one(&js, &[]);
    assert_eq!(first["attempt"], 1);
    std::thread::sleep(Duration::from_millis(1300));
    let second = pop_one(&js, &[]);
    assert_eq!(
        (second["id"].as_str(), second["attempt"].as_u64()),
        (Some(id.as_str()), Some(2))
    );
    // The first holder's receipt is fenced off: it can neither ack nor extend.
    js.q(&["ack", &receipt(&first)]).fails(4);
    js.q(&["extend", &receipt(&first)]).fails(4);
    std::thread::sleep(Duration::from_millis(1300));
    js.q(&["pop"]).expect(3);
    let s = stats(&js);
    assert_eq!(
        (s["dead"].as_u64(), s["ready"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    js.q(&["ack", &receipt(&second)]).fails(4);
    assert_eq!(
        stdout(&js.q(&["dlq-replay", &id]).expect(0)),
        format!("{id}\n")
    );
    let back = pop_one(&js, &[]);
    assert_eq!(
        (back["id"].as_str(), back["attempt"].as_u64()),
        (Some(id.as_str()), Some(1))
    );
    assert_eq!(back["body"], "m");
    js.q(&["ack", &receipt(&back)]).expect(0);
    assert_eq!(stats(&js)["dead"], 0);
}

#[test]
fn bury_dead_letters_and_dlq_replay_brings_back() {
    let Some(js) = Js::start("bury", &["--max-attempts", "2"]) else {
        return;
    };
    let ids = lines(&js.q(&["push", "a", "b", "c"]).expect(0));
    let all = parse_lines(&js.q(&["pop", "--json", "-n", "3"]).expect(0));
    let rs: Vec<String> = all.iter().map(receipt).collect();
    js.q(&["bury", &rs[0], &rs[1]]).expect(0);
    js.q(&["bury", &rs[0]]).fails(4);
    // The last attempt's requeue dead-letters too, as on a directory.
    js.q(&["requeue", &rs[2]]).expect(0);
    let c = pop_one(&js, &[]);
    assert_eq!(c["attempt"], 2);
    js.q(&["requeue", &receipt(&c)]).expect(0);
    let s = stats(&js);
    assert_eq!(s["dead"], 3, "{s}");
    let line = js
        .q(&[
            "dlq-replay",
            &ids[0],
            "1796656155812586.8279.00000000.531260fc.vm",
        ])
        .output();
    assert_eq!(line.status.code(), Some(4));
    assert_eq!(stdout(&line), format!("{}\n", ids[0]));
    js.q(&["dlq-replay", "not-an-id"]).fails(2);
    assert_eq!(lines(&js.q(&["dlq-replay", "--all"]).expect(0)), ids[1..]);
    let back = parse_lines(&js.q(&["pop", "--json", "-n", "5", "--ack"]).expect(0));
    let mut got: Vec<&str> = back.iter().map(|v| v["id"].as_str().unwrap()).collect();
    got.sort_unstable();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want);
    assert!(back.iter().all(|v| v["attempt"] == 1));
}

#[test]
fn stats_counts_ready_leased_and_dead_in_every_form() {
    let Some(js) = Js::start("stats", &["--max-attempts", "1"]) else {
        return;
    };
    js.q(&["push", "a", "b", "c", "d"]).expect(0);
    let r = receipt(&pop_one(&js, &[]));
    js.q(&["bury", &r]).expect(0);
    pop_one(&js, &[]);
    let s = stats(&js);
    assert_eq!(
        (
            s["ready"].as_u64(),
            s["leased"].as_u64(),
            s["dead"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{s}"
    );
    let text = stdout(&js.q(&["stats"]).expect(0));
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().take(2).eq(["ready", "2"])),
        "{text}"
    );
    let prom = stdout(&js.q(&["stats", "--prometheus"]).expect(0));
    let label = format!("spool=\"{}\"", js.url);
    assert!(
        prom.contains(&format!("qspool_messages{{{label},state=\"ready\"}} 2\n")),
        "{prom}"
    );
    assert!(
        prom.contains(&format!("qspool_messages{{{label},state=\"dead\"}} 1\n")),
        "{prom}"
    );
    let out = js.env.scratch().join("metrics.prom");
    js.q(&["stats", "--prometheus", "--output", out.to_str().unwrap()])
        .expect(0);
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("qspool_messages")
    );
}

#[test]
fn what_jetstream_cannot_serve_is_refused_in_one_line() {
    let Some(js) = Js::start("refusals", &[]) else {
        return;
    };
    for args in [
        &["push", "--delay", "5s", "m"][..],
        &["push", "--key", "k", "m"],
        &["push", "--group", "g", "m"],
        &["pop", "--lease", "5m"],
        &["init", "--rate", "5/s"],
        &["init", "--retain-done", "1h"],
        &["pause"],
        &["resume"],
        &["purge", "--dead", "--yes"],
        &["fsck"],
        &["replay", "--done", "--all"],
        &["work", "--lease", "5m", "--", "true"],
    ] {
        let line = js.q(args).fails(2);
        assert!(
            line.contains("not served on a JetStream queue"),
            "{args:?}: {line}"
        );
    }
    assert_eq!(
        stats(&js)["ready"],
        0,
        "nothing was pushed by a refused push"
    );
}

#[test]
fn list_and_show_read_the_queue_without_consuming_it() {
    let Some(js) = Js::start("list_show", &["--max-attempts", "1"]) else {
        return;
    };
    let ids = lines(&js.q(&["push", "a", "bb", "ccc"]).expect(0));
    let leased = pop_one(&js, &[]);
    let buried = pop_one(&js, &[]);
    js.q(&["bury", &receipt(&buried)]).expect(0);
    let listed = parse_lines(&js.q(&["list", "--json"]).expect(0));
    let got: Vec<(&str, &str, u64)> = listed
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap(),
                v["state"].as_str().unwrap(),
                v["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (ids[0].as_str(), "leased", 1),
            (ids[1].as_str(), "dead", 2),
            (ids[2].as_str(), "ready", 3)
        ]
    );
    assert_eq!(listed[0]["lease_expires_at"], leased["lease_expires_at"]);
    assert_eq!(listed[0]["attempt"], 1);
    let text = lines(&js.q(&["list", "dead"]).expect(0));
    assert_eq!(text.len(), 1);
    assert!(
        text[0].starts_with("dead") && text[0].contains(&ids[1]),
        "{text:?}"
    );
    assert_eq!(lines(&js.q(&["list", "--limit", "1"]).expect(0)).len(), 1);
    // Nothing was consumed by looking.
    assert_eq!(stats(&js)["ready"], 1);
    assert_eq!(stdout(&js.q(&["show", &ids[2]]).expect(0)), "ccc");
    let shown: Value =
        serde_json::from_str(&stdout(&js.q(&["show", "--json", &ids[1]]).expect(0))).unwrap();
    assert_eq!(
        (shown["state"].as_str(), shown["body"].as_str()),
        (Some("dead"), Some("bb"))
    );
    let line = js
        .q(&["show", "1796656155812586.8279.00000000.531260fc.vm"])
        .fails(4);
    assert!(line.contains("no message with id"), "{line}");
    js.q(&["show", "../etc"]).fails(2);
    assert_eq!(stats(&js)["ready"], 1);
}

// ---- fencing: what the engine does, and what qspool adds ---------------------------------

/// Measures the engine, not qspool: an ack sent on an old delivery's reply subject after the
/// message was delivered again. nats-server 2.9 takes it and removes the message while the
/// second holder still works on it, which is why qspool fences leases itself. If this starts
/// failing, the server fences on its own: docs/JETSTREAM.md's promise table must change.
#[test]
fn the_engine_takes_an_ack_from_an_earlier_delivery() {
    let Some(js) = Js::start("engine_fencing", &["--lease", "1s"]) else {
        return;
    };
    js.q(&["push", "m"]).expect(0);
    let first = pop_one(&js, &[]);
    let seq = receipt(&first);
    let seq = seq
        .split(",s")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let reply = fence_reply(&js, &seq);
    std::thread::sleep(Duration::from_millis(1300));
    let second = pop_one(&js, &[]);
    assert_eq!(second["attempt"], 2);
    // The raw ack of delivery 1, as a client without qspool's fence would send it.
    raw_publish(js.server.port, &reply, b"+ACK");
    std::thread::sleep(Duration::from_millis(300));
    let s = stats(&js);
    assert_eq!(
        (s["ready"].as_u64(), s["leased"].as_u64()),
        (Some(0), Some(0)),
        "the server kept the message after the stale ack: it fences now; {s}"
    );
    // qspool's own receipt for delivery 1 was refused before it reached the server.
    js.q(&["ack", &receipt(&first)]).fails(4);
}

/// The reply subject a delivery's fence records (key SEQ of the lease bucket).
fn fence_reply(js: &Js, seq: &str) -> String {
    let subject = format!("$JS.API.DIRECT.GET.KV_QSPOOL-LEASES_jobs.$KV.QSPOOL-LEASES_jobs.{seq}");
    let value = raw_request(js.server.port, &subject);
    let text = String::from_utf8(value).unwrap();
    let reply = text.rsplit(' ').next().unwrap().trim().to_owned();
    assert!(reply.starts_with("$JS.ACK."), "{text}");
    reply
}

/// One request over the plain NATS protocol; returns the reply's payload.
fn raw_request(port: u16, subject: &str) -> Vec<u8> {
    use std::io::{BufRead, BufReader, Read, Write};
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("INFO"), "{line}");
    write!(
        w,
        "CONNECT {{\"verbose\":false,\"headers\":true,\"no_responders\":true}}\r\nSUB _INBOX.t 1\r\nPUB {subject} _INBOX.t 0\r\n\r\nPING\r\n"
    )
    .unwrap();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.first().copied() {
            Some("HMSG") => {
                let hdr: usize = parts[parts.len() - 2].parse().unwrap();
                let total: usize = parts[parts.len() - 1].parse().unwrap();
                let mut buf = vec![0; total + 2];
                r.read_exact(&mut buf).unwrap();
                return buf[hdr..total].to_vec();
            }
            Some("MSG") => {
                let total: usize = parts[parts.len() - 1].parse().unwrap();
                let mut buf = vec![0; total + 2];
                r.read_exact(&mut buf).unwrap();
                return buf[..total].to_vec();
            }
            Some("PING") => w.write_all(b"PONG\r\n").unwrap(),
            _ => {}
        }
    }
}

fn raw_publish(port: u16, subject: &str, payload: &[u8]) {
    use std::io::{BufRead, BufReader, Write};
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    write!(
        w,
        "CONNECT {{\"verbose\":false}}\r\nPUB {subject} {}\r\n",
        payload.len()
    )
    .unwrap();
    w.write_all(payload).unwrap();
    w.write_all(b"\r\nPING\r\n").unwrap();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.starts_with("PONG") {
            return;
        }
    }
}

// ---- many consumers -----------------------------------------------------------------------

#[test]
fn four_consumers_on_2000_messages_get_each_exactly_once() {
    let Some(js) = Js::start("four_consumers", &["--lease", "60s"]) else {
        return;
    };
    let history = History::new(js.env.scratch());
    let bodies: Vec<String> = (0..2000).map(|i| format!("m{i:04}")).collect();
    for chunk in bodies.chunks(500) {
        for b in chunk {
            history.push_attempt(b.as_bytes());
        }
        let input = chunk.join("\n") + "\n";
        let ids = lines(&js.q(&["push", "--lines"]).stdin(input.as_bytes()).expect(0));
        assert_eq!(ids.len(), chunk.len());
        for (id, b) in ids.iter().zip(chunk) {
            history.push_ok(id, b.as_bytes());
        }
    }
    std::thread::scope(|s| {
        for w in 0..4 {
            let (js, history) = (&js, &history);
            s.spawn(move || {
                let who = format!("consumer{w}");
                loop {
                    let out = js.q(&["pop", "--json", "-n", "25"]).output();
                    match out.status.code() {
                        Some(3) => return,
                        Some(0) => {}
                        other => panic!("{who}: pop exited {other:?}: {}", stderr(&out)),
                    }
                    let got = parse_lines(&out);
                    let mut rs = Vec::new();
                    for v in &got {
                        let id = v["id"].as_str().unwrap();
                        let body = v["body"].as_str().unwrap();
                        history.delivered(
                            &who,
                            id,
                            v["attempt"].as_u64().unwrap(),
                            body.as_bytes(),
                        );
                        rs.push(receipt(v));
                    }
                    let args: Vec<&str> = std::iter::once("ack")
                        .chain(rs.iter().map(String::as_str))
                        .collect();
                    js.q(&args).expect(0);
                    for v in &got {
                        history.acked(&who, v["id"].as_str().unwrap());
                    }
                }
            });
        }
    });
    // The queue is drained: judge the history against an empty spool.
    let empty = js.env.scratch().join("drained");
    for d in ["tmp", "new", "leased", "done", "dead"] {
        std::fs::create_dir_all(empty.join(d)).unwrap();
    }
    let v = history.check(&empty);
    v.assert_ok();
    assert_eq!(
        (v.pushed, v.delivered, v.duplicates, v.acked),
        (2000, 2000, 0, 2000),
        "{}",
        v.summary()
    );
    let s = stats(&js);
    assert_eq!(
        (s["ready"].as_u64(), s["leased"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
}

// ---- a three-node cluster ------------------------------------------------------------------

/// The ids a `pop --json` printed, whatever its exit code.
fn ids_printed(out: &std::process::Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect()
}

/// The stream's leader, as the server names it (`n0`…), asked of any live node.
fn stream_leader(port: u16) -> Option<String> {
    let info = raw_request(port, "$JS.API.STREAM.INFO.QSPOOL_jobs");
    let v: Value = serde_json::from_slice(&info).ok()?;
    v["cluster"]["leader"].as_str().map(str::to_owned)
}

#[test]
fn a_replicated_queue_keeps_every_acknowledged_message_when_its_leader_dies() {
    use crate::nats_server::NatsCluster;
    if !crate::nats_server::nats_server_here("cluster") {
        return;
    }
    let env = Env::new();
    let mut cluster = NatsCluster::start(env.scratch());
    let url = cluster.url("jobs");
    let q = |args: &[&str]| {
        raw(&["--spool", &url], args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // The cluster elects its meta leader after the nodes start: init waits for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = q(&["init", "--replicas", "3", "--lease", "5s"]);
        if out.status.code() == Some(0) {
            assert!(stdout(&out).contains("replicas 3"), "{}", stdout(&out));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "init: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let leader = (0..100)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            stream_leader(cluster.nodes[0].port)
        })
        .expect("a stream leader");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let pushed = std::sync::Mutex::new(Vec::<String>::new());
    let delivered = std::sync::Mutex::new(Vec::<String>::new());
    let (failed_pushes, killed_at) = std::thread::scope(|s| {
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let (q, stop, pushed) = (&q, &stop, &pushed);
                s.spawn(move || {
                    let mut failed = 0;
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let body = format!("p{p}-{i}");
                        i += 1;
                        let out = q(&["push", &body]);
                        match out.status.code() {
                            Some(0) => pushed.lock().unwrap().push(stdout(&out).trim().to_owned()),
                            _ => failed += 1,
                        }
                    }
                    failed
                })
            })
            .collect();
        for _ in 0..2 {
            let (q, stop, delivered) = (&q, &stop, &delivered);
            s.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let out = q(&["pop", "--json", "-n", "10", "--ack"]);
                    // What was printed was delivered, even when the ack then failed (that
                    // message comes again after its lease).
                    delivered.lock().unwrap().extend(ids_printed(&out));
                    if out.status.code() != Some(0) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        let i: usize = leader.trim_start_matches('n').parse().unwrap();
        let before = pushed.lock().unwrap().len();
        cluster.nodes[i].kill();
        // The survivors elect a new leader (seconds; longer on a loaded machine), then the
        // work goes on.
        let resumed = std::time::Instant::now() + Duration::from_secs(40);
        while pushed.lock().unwrap().len() < before + 50 && std::time::Instant::now() < resumed {
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(1));
        let after = pushed.lock().unwrap().len();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let failed: u64 = producers.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(
            after > before + 20,
            "pushes went on after the leader died: {before} → {after}"
        );
        (failed, before)
    });
    // Drain what is left through the surviving nodes, leases that a failed ack left included.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = q(&["pop", "--json", "-n", "200", "--ack", "--wait=1s"]);
        delivered.lock().unwrap().extend(ids_printed(&out));
        if out.status.code() == Some(3) {
            let s: Value =
                serde_json::from_str(&stdout(&q(&["stats", "--json"]))).unwrap_or_default();
            if s["ready"] == 0 && s["leased"] == 0 {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queue did not drain"
        );
    }
    let pushed = pushed.into_inner().unwrap();
    let delivered: std::collections::BTreeSet<String> =
        delivered.into_inner().unwrap().into_iter().collect();
    let lost: Vec<&String> = pushed
        .iter()
        .filter(|id| !delivered.contains(*id))
        .collect();
    eprintln!(
        "cluster: {} pushed ({} before the kill, {failed_pushes} refused during the election), {} delivered",
        pushed.len(),
        killed_at,
        delivered.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged pushes lost: {} of {}: {lost:?}",
        lost.len(),
        pushed.len()
    );
}

// ---- regressions found in review -----------------------------------------------------------

#[test]
fn a_receipt_of_another_queue_is_refused_even_with_the_same_sequence() {
    let Some(js) = Js::start("cross_queue", &[]) else {
        return;
    };
    let other = js.url.replace("/jobs", "/other");
    let q2 = |args: &[&str]| js.env.qspool(args).at(Path::new(&other));
    q2(&["init"]).expect(0);
    js.q(&["push", "a"]).expect(0);
    q2(&["push", "b"]).expect(0);
    let ra = receipt(&pop_one(&js, &[]));
    let out = q2(&["pop", "--json"]).expect(0);
    let rb = receipt(&parse_lines(&out)[0]);
    // Both are sequence 1, fence revision 1 of their own bucket.
    assert_eq!(
        ra.rsplit(',').collect::<Vec<_>>()[..2],
        rb.rsplit(',').collect::<Vec<_>>()[..2]
    );
    let line = q2(&["ack", &ra]).fails(4);
    assert!(line.contains("another one"), "{line}");
    q2(&["ack", &rb]).expect(0);
    js.q(&["ack", &ra]).expect(0);
}

#[test]
fn a_queue_made_again_is_not_blocked_by_the_old_queues_fences() {
    let Some(js) = Js::start("recreated", &["--lease", "2s", "--max-attempts", "3"]) else {
        return;
    };
    js.q(&["push", "old"]).expect(0);
    for _ in 0..2 {
        pop_one(&js, &[]);
        std::thread::sleep(Duration::from_millis(2100));
    }
    let deleted = raw_request(js.server.port, "$JS.API.STREAM.DELETE.QSPOOL_jobs");
    assert!(String::from_utf8_lossy(&deleted).contains("\"success\":true"));
    let out = stdout(&js.q(&["init"]).expect(0));
    assert!(
        out.contains("max-attempts 5, lease 30s"),
        "a queue made again has the defaults: {out}"
    );
    js.q(&["init", "--lease", "2s"]).expect(0);
    let id = lines(&js.q(&["push", "new"]).expect(0)).remove(0);
    let v = pop_one(&js, &[]);
    assert_eq!(
        (v["id"].as_str(), v["attempt"].as_u64()),
        (Some(id.as_str()), Some(1))
    );
}

#[test]
fn init_does_not_reset_settings_it_cannot_read() {
    let Some(mut js) = Js::start("init_keep", &["--lease", "7s", "--max-attempts", "3"]) else {
        return;
    };
    js.server.kill();
    js.q(&["init", "--dedup-window", "1m"]).fails(1);
    js.server.restart();
    let out = stdout(&js.q(&["init"]).expect(0));
    assert!(out.contains("max-attempts 3, lease 7s"), "{out}");
}

#[test]
fn a_server_gone_mid_command_ends_it_instead_of_hanging_it() {
    let Some(mut js) = Js::start("server_gone", &[]) else {
        return;
    };
    let mut waiting = js
        .std_cmd(&["pop", "--wait=60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    js.server.kill();
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(st) = waiting.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(40) {
            let _ = waiting.kill();
            panic!("pop --wait still running 40 s after the server died");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1));
}

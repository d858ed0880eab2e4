//! `qspool fsck`: every kind of finding, reported without --repair (which changes nothing) and
//! set aside in corrupt/ or fixed with it, never losing a message or following a link.

use crate::harness::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

fn fake_id(n: u32) -> String {
    format!("1700000000000000.4242.{n:08x}.00000000.fsck")
}

/// Writes a message-like file with the mode qspool gives its files, whatever the umask.
fn write_file(path: &Path, body: &[u8]) {
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// `fsck --json` plus `extra`: the output and the one object it printed.
fn fsck_json(env: &Env, extra: &[&str]) -> (Output, Value) {
    let out = run(env, &[&["fsck", "--json"], extra].concat());
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    (out, v)
}

/// The findings of a `fsck --json` object.
fn findings(v: &Value) -> &Vec<Value> {
    v["findings"].as_array().unwrap()
}

/// The findings of `kind`, as (path, detail, repaired, action).
fn of_kind(v: &Value, kind: &str) -> Vec<(String, String, bool, Option<String>)> {
    findings(v)
        .iter()
        .filter(|f| f["kind"] == kind)
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["detail"].as_str().unwrap().to_owned(),
                f["repaired"].as_bool().unwrap(),
                f["action"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Asserts a plain `fsck` finds nothing: exit 0, `fsck: clean`, and the same in JSON.
fn assert_clean(env: &Env) {
    let out = run(env, &["fsck"]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "fsck: clean\n");
    let (out, v) = fsck_json(env, &[]);
    assert_exit(&out, 0);
    assert_eq!(v["clean"], true, "{v}");
    assert_eq!(findings(&v).len(), 0, "{v}");
    assert_eq!(v["repaired"], 0, "{v}");
}

/// Runs `fsck --json --repair`, asserts every finding was repaired (exit 0), and returns the
/// object.
fn repair_all(env: &Env) -> Value {
    let (out, v) = fsck_json(env, &["--repair"]);
    assert_exit(&out, 0);
    assert_eq!(v["clean"], true, "{v}");
    assert!(findings(&v).iter().all(|f| f["repaired"] == true), "{v}");
    assert_eq!(v["repaired"].as_u64().unwrap() as usize, findings(&v).len());
    v
}

/// Every entry under the spool with its lstat type, mode, inode, owner, link count and mtime.
fn snapshot(env: &Env) -> Vec<(PathBuf, u32, u64, u32, u64, i64)> {
    let mut v: Vec<_> = env
        .tree()
        .into_iter()
        .map(|(p, m)| {
            (
                p,
                m.mode(),
                m.ino(),
                m.uid(),
                m.nlink(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000,
            )
        })
        .collect();
    v.sort();
    v
}

/// A spool with one message in each of ready, delayed, leased, done and dead. Returns the ids
/// in that order.
fn full_spool() -> (Env, [String; 5]) {
    let env = Env::init(&[]);
    let done = env.push("done");
    let r = receipt(&env.pop_json(&[]));
    assert_exit(&env.run(&["ack", &r]), 0);
    let dead = env.push("dead");
    let r = receipt(&env.pop_json(&[]));
    assert_exit(&env.run(&["bury", &r]), 0);
    let leased = env.push("leased");
    env.pop_json(&["--lease", "5m"]);
    let ready = env.push("ready");
    let out = env.run(&["push", "--delay", "5m", "delayed"]);
    assert_exit(&out, 0);
    let delayed = stdout(&out).trim_end().to_owned();
    (env, [ready, delayed, leased, done, dead])
}

fn corrupt(env: &Env) -> PathBuf {
    env.spool().join("corrupt")
}

#[test]
fn a_spool_with_messages_in_every_state_is_clean() {
    let (env, _) = full_spool();
    let s = env.stats();
    for k in ["ready", "delayed", "leased", "done", "dead"] {
        assert_eq!(s[k], 1, "{k}: {s}");
    }
    assert_clean(&env);
    let (out, v) = fsck_json(&env, &["--repair"]);
    assert_exit(&out, 0);
    assert_eq!(v["clean"], true);
    assert_eq!(v["spool"], env.spool().display().to_string());
    assert!(!corrupt(&env).exists(), "corrupt/ is made only when needed");
}

#[test]
fn a_tmp_file_older_than_36_hours_is_an_orphan_and_a_younger_one_is_not() {
    let env = Env::init(&[]);
    let old = format!("{},a0,v1700000000000", fake_id(1));
    let young = format!("{},a0,v1700000000001", fake_id(2));
    write_file(&env.spool().join("tmp").join(&old), b"half a push");
    write_file(&env.spool().join("tmp").join(&young), b"a push going on");
    let f = fs::File::options()
        .write(true)
        .open(env.spool().join("tmp").join(&old))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(40 * 3600))
        .unwrap();
    drop(f);

    let (out, v) = fsck_json(&env, &[]);
    assert_exit(&out, 1);
    assert_eq!(findings(&v).len(), 1, "{v}");
    let got = of_kind(&v, "tmp-orphan");
    assert_eq!(got[0].0, format!("tmp/{old}"));
    assert!(got[0].1.contains("1d16h"), "{}", got[0].1);
    assert!(!got[0].2);
    let human = run(&env, &["fsck"]);
    assert_exit(&human, 1);
    assert!(
        stdout(&human).starts_with("tmp-orphan  "),
        "{}",
        stdout(&human)
    );
    assert!(
        stdout(&human).ends_with("fsck: 1 finding\n"),
        "{}",
        stdout(&human)
    );
    one_error_line(&human);

    let v = repair_all(&env);
    assert_eq!(
        of_kind(&v, "tmp-orphan")[0].3.as_deref(),
        Some(format!("moved to corrupt/tmp-{old}").as_str())
    );
    assert_eq!(env.names("tmp"), vec![young]);
    assert_eq!(
        fs::read(corrupt(&env).join(format!("tmp-{old}"))).unwrap(),
        b"half a push"
    );
    let mode = fs::metadata(corrupt(&env)).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    assert_clean(&env);
}

#[test]
fn names_outside_the_grammar_for_where_they_are_are_foreign() {
    let (env, [ready, ..]) = full_spool();
    let sp = env.spool();
    let now = now_ms();
    // Well-formed, but its v is not its bucket's millisecond.
    let stray = format!("{},a0,v{:013}", fake_id(1), now + 1);
    fs::create_dir_all(bucket(sp, now + 2)).unwrap();
    write_file(&bucket(sp, now + 2).join(&stray), b"wrong bucket");
    let planted = [
        ("leased/garbage".to_owned(), b"x".as_slice()),
        (
            format!("done/{},a0,v1700000000000", fake_id(2)),
            b"a ready name in done",
        ),
        (format!("dead/{}", fake_id(3)), b"a bare id"),
        ("tmp/notes.txt".to_owned(), b"tmp junk"),
        (
            format!("new/{},a0,v1700000000000", fake_id(4)),
            b"maildir style",
        ),
    ];
    for (rel, body) in &planted {
        write_file(&sp.join(rel), body);
    }
    fs::create_dir(sp.join("new").join("abc")).unwrap();
    let stray_rel = bucket(sp, now + 2)
        .join(&stray)
        .strip_prefix(sp)
        .unwrap()
        .display()
        .to_string();

    let (out, v) = fsck_json(&env, &[]);
    assert_exit(&out, 1);
    let mut paths: Vec<String> = of_kind(&v, "foreign-name")
        .into_iter()
        .map(|f| f.0)
        .collect();
    paths.sort();
    let mut want: Vec<String> = planted.iter().map(|(r, _)| r.clone()).collect();
    want.push("new/abc".into());
    want.push(stray_rel.clone());
    want.sort();
    assert_eq!(paths, want, "{v}");
    assert_eq!(findings(&v).len(), want.len(), "{v}");
    let detail = &of_kind(&v, "foreign-name")
        .into_iter()
        .find(|f| f.0 == stray_rel)
        .unwrap()
        .1;
    assert!(
        detail.contains(
            &bucket(sp, now + 1)
                .strip_prefix(sp.join("new"))
                .unwrap()
                .display()
                .to_string()
        ),
        "{detail}"
    );

    repair_all(&env);
    for (rel, body) in &planted {
        assert!(
            fs::symlink_metadata(sp.join(rel)).is_err(),
            "{rel} still there"
        );
        let name = rel.replace('/', "-");
        assert_eq!(
            &fs::read(corrupt(&env).join(&name)).unwrap(),
            body,
            "{name}"
        );
    }
    assert!(corrupt(&env).join("new-abc").is_dir());
    assert_eq!(
        fs::read(corrupt(&env).join(stray_rel.replace('/', "-"))).unwrap(),
        b"wrong bucket"
    );
    assert_clean(&env);
    // The real messages are all still there.
    let s = env.stats();
    for k in ["ready", "delayed", "leased", "done", "dead"] {
        assert_eq!(s[k], 1, "{k}: {s}");
    }
    assert_eq!(s["foreign"], 0, "{s}");
    assert_eq!(id(&env.pop_json(&[])), ready);
}

#[test]
fn links_directories_fifos_and_hard_links_where_messages_belong_are_not_files() {
    let env = Env::init(&[]);
    let sp = env.spool();
    let target = env.scratch().join("outside");
    write_file(&target, b"outside the spool");
    let now = now_ms();
    let leaf = bucket(sp, now);
    fs::create_dir_all(&leaf).unwrap();
    let link = format!("leased/{},a1,l1700000000000,t0000000000000001", fake_id(1));
    let dir = format!("done/{},a1,f1700000000000", fake_id(2));
    let fifo = format!("dead/{},a1,f1700000000000", fake_id(3));
    let hard = leaf
        .join(format!("{},a0,v{now:013}", fake_id(4)))
        .strip_prefix(sp)
        .unwrap()
        .display()
        .to_string();
    let tmp_link = format!("tmp/{},a0,v1700000000000", fake_id(5));
    std::os::unix::fs::symlink(&target, sp.join(&link)).unwrap();
    std::os::unix::fs::symlink(&target, sp.join(&tmp_link)).unwrap();
    fs::create_dir(sp.join(&dir)).unwrap();
    write_file(&sp.join(&dir).join("inside"), b"inside");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(sp.join(&fifo))
            .status()
            .unwrap()
            .success()
    );
    fs::hard_link(&target, sp.join(&hard)).unwrap();
    // A level-1 bucket name that is a link to a directory outside, and a level-2 one that is a
    // file.
    let level1 = format!("new/{:07}", now / 1_000_000 + 1);
    std::os::unix::fs::symlink(env.scratch(), sp.join(&level1)).unwrap();
    let level2 = leaf.parent().unwrap().parent().unwrap().join("999");
    let level2 = level2.strip_prefix(sp).unwrap().display().to_string();
    write_file(&sp.join(&level2), b"a file as a bucket");

    let (out, v) = fsck_json(&env, &[]);
    assert_exit(&out, 1);
    let mut got: Vec<String> = of_kind(&v, "not-a-file").into_iter().map(|f| f.0).collect();
    got.sort();
    let mut want = vec![
        link.clone(),
        dir.clone(),
        fifo.clone(),
        hard.clone(),
        tmp_link.clone(),
        level1.clone(),
        level2.clone(),
    ];
    want.sort();
    assert_eq!(got, want, "{v}");
    assert_eq!(findings(&v).len(), want.len(), "{v}");
    let details: Vec<String> = of_kind(&v, "not-a-file").into_iter().map(|f| f.1).collect();
    for what in [
        "a symbolic link",
        "a directory",
        "a FIFO",
        "a file with 2 hard links",
    ] {
        assert!(
            details.iter().any(|d| d.starts_with(what)),
            "{what}: {details:?}"
        );
    }

    repair_all(&env);
    for rel in &want {
        assert!(
            fs::symlink_metadata(sp.join(rel)).is_err(),
            "{rel} still there"
        );
        let moved = corrupt(&env).join(rel.replace('/', "-"));
        assert!(
            fs::symlink_metadata(&moved).is_ok(),
            "{} missing",
            moved.display()
        );
    }
    let moved_link = corrupt(&env).join(link.replace('/', "-"));
    assert!(
        fs::symlink_metadata(&moved_link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(&moved_link).unwrap(), target);
    assert_eq!(
        fs::read(corrupt(&env).join(dir.replace('/', "-")).join("inside")).unwrap(),
        b"inside"
    );
    assert_eq!(fs::read(&target).unwrap(), b"outside the spool");
    assert_eq!(
        fs::metadata(&target).unwrap().nlink(),
        2,
        "the hard link was moved, not removed"
    );
    assert!(
        env.scratch().join("spool").is_dir(),
        "the linked directory is untouched"
    );
    assert_clean(&env);
    env.assert_empty();
}

#[test]
fn a_symlink_planted_as_a_message_is_set_aside_and_its_target_left_untouched() {
    let (env, [ready, ..]) = full_spool();
    let target = env.scratch().join("precious");
    write_file(&target, b"do not touch");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o666)).unwrap();
    let before = fs::metadata(&target).unwrap();
    let now = now_ms() - 10;
    let leaf = bucket(env.spool(), now);
    fs::create_dir_all(&leaf).unwrap();
    let name = format!("{},a0,v{now:013}", fake_id(1));
    std::os::unix::fs::symlink(&target, leaf.join(&name)).unwrap();

    let (out, v) = fsck_json(&env, &[]);
    assert_exit(&out, 1);
    assert_eq!(of_kind(&v, "not-a-file").len(), 1, "{v}");
    assert_eq!(findings(&v).len(), 1, "{v}");

    let v = repair_all(&env);
    let action = of_kind(&v, "not-a-file")[0].3.clone().unwrap();
    let moved_name = action.strip_prefix("moved to corrupt/").unwrap();
    let moved = corrupt(&env).join(moved_name);
    assert!(
        fs::symlink_metadata(&moved)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(&moved).unwrap(), target);
    assert!(fs::symlink_metadata(leaf.join(&name)).is_err());
    let after = fs::metadata(&target).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"do not touch");
    assert_eq!(after.mode(), before.mode(), "no chmod through the link");
    assert_eq!(after.ino(), before.ino());
    assert_eq!(after.mtime(), before.mtime());
    assert_clean(&env);
    assert_eq!(id(&env.pop_json(&[])), ready);
}

#[test]
fn a_duplicated_id_keeps_the_copy_furthest_along() {
    let (env, [ready, _, leased, done, _]) = full_spool();
    let sp = env.spool();
    // The done message's id is back in new/ (a copy), and the leased one's in dead/.
    let now = now_ms() - 10;
    let leaf = bucket(sp, now);
    fs::create_dir_all(&leaf).unwrap();
    let copy = format!("{done},a0,v{now:013}");
    write_file(&leaf.join(&copy), b"done");
    let dead_copy = format!("{leased},a1,f1700000000000");
    write_file(&sp.join("dead").join(&dead_copy), b"leased");
    let done_name = env.names("done")[0].clone();
    let leased_name = env.names("leased")[0].clone();

    let (out, v) = fsck_json(&env, &[]);
    assert_exit(&out, 1);
    let got = of_kind(&v, "duplicate-id");
    assert_eq!(got.len(), 2, "{v}");
    assert_eq!(findings(&v).len(), 2, "{v}");
    let copy_rel = leaf
        .join(&copy)
        .strip_prefix(sp)
        .unwrap()
        .display()
        .to_string();
    let of_copy = got.iter().find(|f| f.0 == copy_rel).expect("the new/ copy");
    assert!(
        of_copy.1.contains(&format!("done/{done_name}")),
        "{}",
        of_copy.1
    );
    // dead is further along than leased: the leased copy is the lesser one.
    let of_leased = got
        .iter()
        .find(|f| f.0 == lease_rel(&leased_name))
        .expect("the leased copy");
    assert!(
        of_leased.1.contains(&format!("dead/{dead_copy}")),
        "{}",
        of_leased.1
    );

    repair_all(&env);
    assert_eq!(env.names("done"), vec![done_name]);
    assert_eq!(env.names("dead").len(), 2);
    assert!(env.names("leased").is_empty());
    assert!(fs::symlink_metadata(leaf.join(&copy)).is_err());
    assert_eq!(
        fs::read(corrupt(&env).join(copy_rel.replace('/', "-"))).unwrap(),
        b"done"
    );
    assert_eq!(
        fs::read(corrupt(&env).join(lease_rel(&leased_name).replace('/', "-"))).unwrap(),
        b"leased"
    );
    assert_clean(&env);
    // The ready message is delivered; the done one is not delivered again.
    assert_eq!(id(&env.pop_json(&[])), ready);
    env.assert_empty();
}

#[test]
fn a_lease_more_than_12_hours_ahead_is_reported_and_stays() {
    let env = Env::init(&[]);
    let far = now_ms() + 48 * 3_600_000;
    let near = now_ms() + 3_600_000;
    let far_name = format!("{},a1,l{far:013},t00000000000000aa", fake_id(1));
    let near_name = format!("{},a1,l{near:013},t00000000000000bb", fake_id(2));
    write_file(&env.spool().join("leased").join(&far_name), b"far");
    write_file(&env.spool().join("leased").join(&near_name), b"near");

    let (out, v) = fsck_json(&env, &[]);
    assert_exit(&out, 1);
    let got = of_kind(&v, "lease-too-far");
    assert_eq!(got.len(), 1, "{v}");
    assert_eq!(findings(&v).len(), 1, "{v}");
    assert_eq!(got[0].0, format!("leased/{far_name}"));
    assert!(got[0].1.contains("more than 12h"), "{}", got[0].1);

    let (out, v) = fsck_json(&env, &["--repair"]);
    assert_exit(&out, 1);
    one_error_line(&out);
    assert_eq!(v["clean"], false);
    assert_eq!(v["repaired"], 0);
    let got = of_kind(&v, "lease-too-far");
    assert!(!got[0].2);
    assert!(
        got[0]
            .3
            .as_deref()
            .unwrap()
            .contains("does not change leases"),
        "{v}"
    );
    assert_eq!(env.names("leased"), {
        let mut n = vec![far_name, near_name];
        n.sort();
        n
    });
    assert!(!corrupt(&env).exists());
    let human = run(&env, &["fsck", "--repair"]);
    assert_exit(&human, 1);
    assert!(
        stdout(&human).ends_with("fsck: 1 finding, 0 repaired, 1 remaining\n"),
        "{}",
        stdout(&human)
    );
}

#[test]
fn group_or_other_writable_directories_and_messages_get_their_modes_back() {
    let (env, _) = full_spool();
    let sp = env.spool();
    let done_file = sp.join("done").join(&env.names("done")[0]);
    let leaf = env.new_files()[0].parent().unwrap().to_path_buf();
    fs::set_permissions(sp.join("done"), fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&leaf, fs::Permissions::from_mode(0o770)).unwrap();
    fs::set_permissions(&done_file, fs::Permissions::from_mode(0o666)).unwrap();
    // Readable by others is not a finding.
    fs::set_permissions(sp.join("dead"), fs::Permissions::from_mode(0o755)).unwrap();

    let (out, v) = fsck_json(&env, &[]);
    assert_exit(&out, 1);
    let mut got: Vec<String> = of_kind(&v, "mode").into_iter().map(|f| f.0).collect();
    got.sort();
    let rel = |p: &Path| p.strip_prefix(sp).unwrap().display().to_string();
    let mut want = vec!["done".to_owned(), rel(&leaf), rel(&done_file)];
    want.sort();
    assert_eq!(got, want, "{v}");
    assert_eq!(findings(&v).len(), 3, "{v}");

    let v = repair_all(&env);
    assert!(
        of_kind(&v, "mode")
            .iter()
            .all(|f| f.3.as_deref().unwrap().starts_with("chmod 0"))
    );
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&sp.join("done")), 0o700);
    assert_eq!(mode(&leaf), 0o700);
    assert_eq!(mode(&done_file), 0o600);
    assert_eq!(mode(&sp.join("dead")), 0o755);
    assert!(!corrupt(&env).exists());
    assert_clean(&env);
}

#[test]
fn an_entry_owned_by_another_user_is_reported_and_left_alone() {
    let (env, _) = full_spool();
    let sp = env.spool();
    let done_file = sp.join("done").join(&env.names("done")[0]);
    if let Err(e) = std::os::unix::fs::chown(&done_file, Some(65534), Some(65534)) {
        eprintln!("skipped: chown needs root ({e})");
        return;
    }
    let (out, v) = fsck_json(&env, &[]);
    assert_exit(&out, 1);
    let got = of_kind(&v, "owner");
    assert_eq!(got.len(), 1, "{v}");
    assert_eq!(findings(&v).len(), 1, "{v}");
    assert_eq!(got[0].0, format!("done/{}", env.names("done")[0]));
    assert!(got[0].1.contains("uid 65534"), "{}", got[0].1);

    let (out, v) = fsck_json(&env, &["--repair"]);
    assert_exit(&out, 1);
    let got = of_kind(&v, "owner");
    assert!(!got[0].2);
    assert!(
        got[0]
            .3
            .as_deref()
            .unwrap()
            .contains("does not change owners"),
        "{v}"
    );
    assert_eq!(fs::metadata(&done_file).unwrap().uid(), 65534);
    assert!(!corrupt(&env).exists());
}

#[test]
fn fsck_without_repair_changes_nothing() {
    let (env, [_, _, _, done, _]) = full_spool();
    let sp = env.spool();
    write_file(&sp.join("new").join("junk"), b"junk");
    write_file(&sp.join("leased").join("garbage"), b"garbage");
    std::os::unix::fs::symlink("/etc/passwd", sp.join("done").join("link")).unwrap();
    write_file(
        &sp.join("dead").join(format!("{done},a1,f1700000000000")),
        b"dup",
    );
    fs::set_permissions(sp.join("tmp"), fs::Permissions::from_mode(0o777)).unwrap();
    let before = snapshot(&env);
    let (out, v) = fsck_json(&env, &[]);
    assert_exit(&out, 1);
    assert_eq!(findings(&v).len(), 5, "{v}");
    assert!(
        findings(&v)
            .iter()
            .all(|f| f["repaired"] == false && f["action"].is_null())
    );
    assert_exit(&run(&env, &["fsck"]), 1);
    assert_eq!(snapshot(&env), before);
    assert!(!corrupt(&env).exists());
}

#[test]
fn what_is_in_corrupt_is_never_a_finding() {
    let env = Env::init(&[]);
    let c = corrupt(&env);
    fs::create_dir(&c).unwrap();
    write_file(&c.join("anything"), b"x");
    std::os::unix::fs::symlink("/nonexistent", c.join("dangling")).unwrap();
    fs::set_permissions(c.join("anything"), fs::Permissions::from_mode(0o666)).unwrap();
    assert_clean(&env);
}

#[test]
fn a_second_repair_of_the_same_name_gets_a_numeric_suffix() {
    let env = Env::init(&[]);
    write_file(&env.spool().join("new").join("junk"), b"first");
    repair_all(&env);
    write_file(&env.spool().join("new").join("junk"), b"second");
    let v = repair_all(&env);
    assert_eq!(
        of_kind(&v, "foreign-name")[0].3.as_deref(),
        Some("moved to corrupt/new-junk.1")
    );
    assert_eq!(fs::read(corrupt(&env).join("new-junk")).unwrap(), b"first");
    assert_eq!(
        fs::read(corrupt(&env).join("new-junk.1")).unwrap(),
        b"second"
    );
}

#[test]
fn a_missing_spool_or_state_directory_is_one_error_line() {
    let env = Env::new();
    let out = run(&env, &["fsck"]);
    assert_exit(&out, 1);
    assert!(one_error_line(&out).contains("no spool at"));
    assert!(out.stdout.is_empty());

    let env = Env::init(&[]);
    fs::remove_dir(env.spool().join("dead")).unwrap();
    let out = run(&env, &["fsck", "--repair"]);
    assert_exit(&out, 1);
    assert!(one_error_line(&out).contains("dead: missing"));
    assert!(!corrupt(&env).exists());
    assert!(
        !env.spool().join("dead").exists(),
        "fsck does not make state directories"
    );
}

/// A root that others may write to is refused by every other command, and fsck is how it is
/// put right: it reports the root and repair takes the write bits away.
#[test]
fn a_root_writable_by_others_is_refused_until_fsck_repairs_it() {
    let env = Env::init(&[]);
    let sp = env.spool();
    fs::set_permissions(sp, fs::Permissions::from_mode(0o777)).unwrap();
    let out = env.run(&["push", "x"]);
    assert_exit(&out, 1);
    let err = one_error_line(&out);
    assert!(err.contains("writable by others"), "{err}");
    assert!(err.contains("fsck --repair"), "{err}");
    let (out, v) = fsck_json(&env, &[]);
    assert_exit(&out, 1);
    let f = findings(&v);
    assert_eq!(f.len(), 1, "{v}");
    assert_eq!(f[0]["kind"], "mode");
    assert_eq!(f[0]["path"], ".");
    let (out, _) = fsck_json(&env, &["--repair"]);
    assert_exit(&out, 0);
    assert_eq!(
        fs::metadata(sp).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_exit(&env.run(&["push", "x"]), 0);
}

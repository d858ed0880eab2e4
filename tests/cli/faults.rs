//! Faults from below: power loss on a real filesystem, a full disk, injected I/O errors, a
//! read-only remount and running out of file descriptors.

use crate::checker::{self, History};
use crate::harness::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Environment: root, tools, tiers, the binary under test.

/// Whether missing privileges or tools must fail the test instead of skipping it (CI).
fn strict() -> bool {
    std::env::var("QSPOOL_TEST_NEEDS_ROOT_TOOLS").as_deref() == Ok("1")
}

/// Whether a test that mounts may run: it needs root and every tool in `tools`.
fn need_root(tools: &[&str]) -> bool {
    let uid = Command::new("id").arg("-u").output().ok();
    let root = uid.is_some_and(|o| o.stdout == b"0\n");
    needs(tools, root)
}

/// Whether the test may run: it needs every tool in `tools` on the PATH.
fn need(tools: &[&str]) -> bool {
    needs(tools, true)
}

/// Says why on stderr when a test may not run, or panics when CI demands that it runs.
fn needs(tools: &[&str], root: bool) -> bool {
    let mut missing = Vec::new();
    if !root {
        missing.push("root".to_owned());
    }
    for tool in tools {
        let found = std::env::var_os("PATH").is_some_and(|p| {
            std::env::split_paths(&p)
                .chain(["/usr/sbin".into(), "/sbin".into()])
                .any(|d| d.join(tool).is_file())
        });
        if !found {
            missing.push((*tool).to_owned());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("skipped: needs {}", missing.join(", "));
    assert!(!strict(), "QSPOOL_TEST_NEEDS_ROOT_TOOLS=1 but {why}");
    eprintln!("{why}");
    false
}

/// The qspool executable these tests judge: `QSPOOL_BIN_UNDER_TEST` when set (to show that a
/// deliberately broken build fails them), else the one cargo built.
fn bin() -> PathBuf {
    std::env::var_os("QSPOOL_BIN_UNDER_TEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(qspool_bin()))
}

/// A qspool command against `spool`, with no inherited spool settings.
fn q(spool: &Path, args: &[&str]) -> Command {
    let bin = bin();
    let mut c = spool_command(&[bin.as_os_str()], spool, args);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs `c` with `input` on standard input; a process still running after `limit` is killed
/// (a straggler must never hang the suite), and then reads as killed by a signal.
fn run_limited(mut c: Command, input: Option<&[u8]>, limit: Duration) -> Output {
    if input.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().expect("spawn");
    if let Some(bytes) = input {
        let mut stdin = child.stdin.take().unwrap();
        // A process that fails early closes its end; that is its business, not ours.
        let _ = stdin.write_all(bytes);
    }
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() || start.elapsed() > limit {
            let _ = child.kill();
            return child.wait_with_output().expect("collect output");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn run_q(spool: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
    run_limited(q(spool, args), input, Duration::from_secs(60))
}

/// Runs a system tool; panics with its output when it fails.
fn tool(prog: &str, args: &[&str]) -> Output {
    let o = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// A small random generator, seeded from the clock (the seed is printed so a failure can be
/// replayed with `QSPOOL_FAULT_SEED`).
struct Rng(u64);

impl Rng {
    fn new(what: &str) -> Rng {
        let seed = std::env::var("QSPOOL_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| now_ms() ^ u64::from(std::process::id()) << 20);
        eprintln!("{what}: seed {seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A unique, self-checking body: its name, then filler derived from it, `len` bytes in all.
fn body(tag: &str, len: usize) -> Vec<u8> {
    let mut b = format!("{tag}:").into_bytes();
    let mut x = tag
        .bytes()
        .fold(7u32, |h, c| h.wrapping_mul(31).wrapping_add(c.into()));
    while b.len() < len.max(tag.len() + 2) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        b.push(b'a' + (x >> 16) as u8 % 26);
    }
    b
}

// ---------------------------------------------------------------------------------------------
// Mounts that clean up after themselves, panics included.

/// A filesystem mounted for one test under its own tempdir: a tmpfs, or an image file on a
/// loop device. Dropping it unmounts (lazily, so a straggler cannot keep it) and detaches.
struct Mount {
    point: PathBuf,
    fstype: String,
    opts: String,
    loopdev: Option<String>,
}

impl Mount {
    fn tmpfs(dir: &Path, opts: &str) -> Mount {
        let point = dir.join("mnt");
        std::fs::create_dir_all(&point).unwrap();
        let m = Mount {
            point,
            fstype: "tmpfs".into(),
            opts: opts.into(),
            loopdev: None,
        };
        m.mount();
        m
    }

    /// A fresh `fstype` filesystem of `mb` MiB in an image file in `dir`.
    fn image(dir: &Path, fstype: &str, mb: u64, opts: &str) -> Mount {
        let img = dir.join(format!("{fstype}.img"));
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(mb << 20).unwrap();
        drop(f);
        let img_s = img.to_str().unwrap();
        match fstype {
            "ext4" => tool("mkfs.ext4", &["-q", "-F", img_s]),
            "xfs" => tool("mkfs.xfs", &["-q", "-f", img_s]),
            _ => panic!("no mkfs for {fstype}"),
        };
        let point = dir.join("mnt");
        std::fs::create_dir_all(&point).unwrap();
        let dev = tool("losetup", &["-f", "--show", img_s]);
        let m = Mount {
            point,
            fstype: fstype.into(),
            opts: opts.into(),
            loopdev: Some(stdout(&dev).trim().to_owned()),
        };
        m.mount();
        m
    }

    fn source(&self) -> &str {
        self.loopdev.as_deref().unwrap_or("tmpfs")
    }

    fn mount(&self) {
        let mut args = vec!["-t", &self.fstype];
        if !self.opts.is_empty() {
            args.extend(["-o", &self.opts]);
        }
        args.extend([self.source(), self.point.to_str().unwrap()]);
        tool("mount", &args);
    }

    fn umount(&self) {
        tool("umount", &[self.point.to_str().unwrap()]);
    }

    /// `mount -o remount,OPTS`: read-only and back.
    fn remount(&self, opts: &str) {
        let o = format!("remount,{opts}");
        tool("mount", &["-o", &o, self.point.to_str().unwrap()]);
    }

    /// Stops the filesystem dead, as a power cut would: nothing more reaches the device, and
    /// what its journal had not committed is gone (`shutdown` without `-f` flushes nothing).
    fn power_cut(&self) {
        tool(
            "xfs_io",
            &["-x", "-c", "shutdown", self.point.to_str().unwrap()],
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let p = self.point.to_str().unwrap().to_owned();
        // Only what is still mounted here; errors cannot be raised from a drop.
        let mounted = std::fs::read_to_string("/proc/self/mounts")
            .map(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(p.as_str())))
            .unwrap_or(false);
        if mounted {
            let _ = Command::new("umount").args(["-l", &p]).output();
        }
        if let Some(dev) = &self.loopdev {
            let _ = Command::new("losetup").args(["-d", dev]).output();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the spool back.

/// Every message file of the spool (tmp/ excluded): (state, file name, bytes). Unreadable files
/// are reported as such rather than skipped.
fn messages(spool: &Path) -> Vec<(String, String, Vec<u8>)> {
    fn walk(dir: &Path, state: &str, out: &mut Vec<(String, String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(&p, state, out);
            } else {
                let name = e.file_name().into_string().unwrap();
                let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                out.push((state.to_owned(), name, bytes));
            }
        }
    }
    let mut out = Vec::new();
    for state in ["new", "leased", "done", "dead"] {
        walk(&spool.join(state), state, &mut out);
    }
    out
}

fn tmp_names(spool: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(spool.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// The durability promise after a crash: every message whose push returned 0 is in exactly one
/// state with exactly its bytes, and every message file is whole: non-empty here (every body of
/// these tests is) and the body of some push attempt.
fn assert_intact(
    spool: &Path,
    acked_pushes: &BTreeMap<String, Vec<u8>>,
    attempts: &BTreeSet<Vec<u8>>,
) {
    let mut by_id: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (state, name, bytes) in messages(spool) {
        assert!(!bytes.is_empty(), "empty message file {state}/{name}");
        assert!(
            attempts.contains(&bytes),
            "{state}/{name} holds bytes no push sent: {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        );
        by_id
            .entry(id_of(&name).to_owned())
            .or_default()
            .push((state, bytes));
    }
    let mut lost = Vec::new();
    for (id, want) in acked_pushes {
        match by_id.get(id).map(Vec::as_slice) {
            None | Some([]) => lost.push(id.clone()),
            Some([(_, got)]) => assert!(got == want, "{id}: bytes differ from what was pushed"),
            Some(many) => panic!(
                "{id} is in {} places: {:?}",
                many.len(),
                many.iter().map(|m| &m.0).collect::<Vec<_>>()
            ),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged pushes are gone after the power cut (tmp/ holds {:?}): {lost:?}",
        lost.len(),
        acked_pushes.len(),
        tmp_names(spool)
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Power loss.

/// What one run of producers and consumers has seen, shared between their threads.
struct Load {
    spool: PathBuf,
    h: Arc<History>,
    /// Pushes that returned 0: id -> body.
    pushed: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Every body a push was attempted with.
    attempts: Mutex<BTreeSet<Vec<u8>>>,
    /// (consumer, id) of every delivery since the last power cut.
    delivered: Mutex<Vec<(String, String)>>,
    /// The receipt of every lease a pop handed out.
    receipts: Mutex<BTreeSet<String>>,
    /// Commands that failed while nothing was wrong, or failed untidily.
    complaints: Mutex<Vec<String>>,
    /// How many commands failed for each cause (the end of their error line).
    causes: Mutex<BTreeMap<String, usize>>,
    /// Set once the fault is in: failures are expected from then on.
    faulted: AtomicBool,
    /// Set from just before a power cut until the filesystem is mounted again.
    cut: AtomicBool,
    serial: AtomicU64,
}

impl Load {
    fn new(spool: &Path, h: Arc<History>) -> Arc<Load> {
        Arc::new(Load {
            spool: spool.to_owned(),
            h,
            pushed: Mutex::default(),
            attempts: Mutex::default(),
            delivered: Mutex::default(),
            receipts: Mutex::default(),
            causes: Mutex::default(),
            complaints: Mutex::default(),
            faulted: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            serial: AtomicU64::new(0),
        })
    }

    /// Judges a command that did not succeed: it must fail tidily, and only once the fault is in.
    fn failed(&self, what: &str, o: &Output) {
        let err = stderr(o);
        let cause = err.trim_end().rsplit(": ").next().unwrap_or_default();
        *self
            .causes
            .lock()
            .unwrap()
            .entry(cause.to_owned())
            .or_default() += 1;
        // One line per error; a pop may add one for the expired leases it could not reclaim
        // before the error that stopped it.
        let tidy = o.status.code() == Some(1)
            && !err.is_empty()
            && err.lines().all(|l| l.starts_with("qspool: "))
            && !err.contains("panicked");
        if !tidy || !self.faulted.load(Ordering::SeqCst) {
            self.complaints.lock().unwrap().push(format!(
                "{what}: exit {:?}, stderr {err:?} (fault in: {})",
                o.status.code(),
                self.faulted.load(Ordering::SeqCst)
            ));
        }
    }

    /// Pushes `n` fresh bodies: one argument when `n` is 1, else one `push --lines` batch.
    /// Records the attempt before and the ids after, as the history wants.
    fn push(&self, who: &str, n: usize, rng: &mut Rng) {
        let bodies: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let k = self.serial.fetch_add(1, Ordering::SeqCst);
                body(&format!("{who}-{k}"), 8 + rng.below(6000) as usize)
            })
            .collect();
        for b in &bodies {
            self.attempts.lock().unwrap().insert(b.clone());
            self.h.push_attempt(b);
        }
        let o = if n == 1 {
            let arg = String::from_utf8(bodies[0].clone()).unwrap();
            run_limited(
                q(&self.spool, &["push", &arg]),
                None,
                Duration::from_secs(10),
            )
        } else {
            let input = bodies.join(&b'\n');
            run_limited(
                q(&self.spool, &["push", "--lines"]),
                Some(&input),
                Duration::from_secs(10),
            )
        };
        let ids = lines(&o);
        if o.status.code() == Some(0) {
            assert_eq!(ids.len(), n, "push printed {ids:?}");
        } else {
            self.failed(&format!("push by {who}"), &o);
        }
        // A real power cut stops the pusher too. This one lives on, and a filesystem that is
        // shut down may still answer a directory fsync with success (xfs does when nothing of
        // that directory is pinned in its log any more), so a push that returned after the
        // cut proves nothing: its outcome is unknown.
        if self.cut.load(Ordering::SeqCst) {
            return;
        }
        // Ids printed before a failure are durable too (earlier commits of one --lines run).
        for (id, b) in ids.iter().zip(&bodies) {
            if o.status.code() == Some(0) || n > 1 {
                self.h.push_ok(id, b);
                self.pushed.lock().unwrap().insert(id.clone(), b.clone());
            }
        }
    }

    /// One consumer step: pop, then mostly ack, sometimes requeue. False when the queue was
    /// empty.
    fn consume(&self, who: &str, rng: &mut Rng) -> bool {
        let popped = Instant::now();
        let o = run_limited(
            q(&self.spool, &["pop", "--json", "--lease", "5s"]),
            None,
            Duration::from_secs(10),
        );
        match o.status.code() {
            Some(0) => {}
            Some(3) => return false,
            _ => {
                self.failed(&format!("pop by {who}"), &o);
                return false;
            }
        }
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let (id, rc) = (id(&v), receipt(&v));
        let payload = v["body"].as_str().unwrap_or_default().as_bytes().to_vec();
        self.h
            .delivered(who, &id, v["attempt"].as_u64().unwrap(), &payload);
        self.delivered
            .lock()
            .unwrap()
            .push((who.to_owned(), id.clone()));
        self.receipts.lock().unwrap().insert(rc.clone());
        let requeue = rng.below(8) == 0;
        let verb = if requeue { "requeue" } else { "ack" };
        let stalled = popped.elapsed() > Duration::from_secs(2);
        if stalled {
            // Stalled (a loaded machine) for long enough that the lease may run out before the
            // ack lands, and another pop may take the message back first; that is expiry doing
            // its job, so say so before it can happen.
            self.h.lease_ended(who, &id, "stalled near its expiry");
        } else if requeue {
            // Before, not after: once requeued, another consumer may have it before this
            // thread can write anything down.
            self.h.lease_ended(who, &id, "requeued");
        }
        let o = run_limited(q(&self.spool, &[verb, &rc]), None, Duration::from_secs(10));
        if o.status.code() == Some(0) {
            if !requeue {
                self.h.acked(who, &id);
            }
        } else if stalled && o.status.code() == Some(4) {
            // The lease did run out and was taken back: exit 4, as fencing demands.
        } else {
            self.failed(&format!("{verb} by {who}"), &o);
            if !requeue {
                // This consumer gives the message up; its lease runs out.
                self.h.lease_ended(who, &id, "ack failed");
            }
        }
        true
    }

    fn causes(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut self.causes.lock().unwrap())
    }

    fn complaints(&self) -> Vec<String> {
        self.complaints.lock().unwrap().clone()
    }
}

/// Producers and consumers run on `fs` on a loop device; at a random moment its power is cut.
/// After each cut, every push that returned 0 must be back, whole, when it is mounted again;
/// after the last, a drain must satisfy the history checker.
///
/// Half the rounds cut while producers are mid-push. The other half first let the producers
/// finish, then push once more and cut at once: that push's renames are then the only ones its
/// commit made durable (the journal commits on every fsync, so the producers' own fsyncs would
/// otherwise make an unsynced rename of another push durable by chance), which makes a missing
/// directory fsync lose it on every such round.
fn power_loss(fs: &str) {
    let mkfs = format!("mkfs.{fs}");
    if !need_root(&[&mkfs, "xfs_io", "losetup", "mount", "umount"]) {
        return;
    }
    let rounds = if soak() { 24 } else { 4 };
    let dir = tempfile::tempdir().unwrap();
    // A long commit interval: only fsyncs make anything durable, as on a busy disk in the
    // instant before a cut.
    let (mb, opts) = match fs {
        "ext4" => (64, "commit=120"),
        _ => (320, ""),
    };
    let m = Mount::image(dir.path(), fs, mb, opts);
    let spool = m.point.join("spool");
    let o = run_q(&spool, &["init", "--lease", "2s"], None);
    assert_exit(&o, 0);
    let h = History::new(&dir.path().join("history"));
    let load = Load::new(&spool, h.clone());
    let mut rng = Rng::new(&format!("power_loss_{fs}"));
    eprintln!("power_loss_{fs}: history in {}", h.path().display());
    let mut cut_mid_push = 0;
    let mut failures = 0;
    for round in 0..rounds {
        load.faulted.store(false, Ordering::SeqCst);
        let stop_producers = Arc::new(AtomicBool::new(false));
        let stop_consumers = Arc::new(AtomicBool::new(false));
        let mut producers = Vec::new();
        let mut consumers = Vec::new();
        for p in 0..2 {
            let (load, stop) = (load.clone(), stop_producers.clone());
            let mut r = Rng(rng.next() | 1);
            producers.push(std::thread::spawn(move || {
                let who = format!("r{round}p{p}");
                while !stop.load(Ordering::SeqCst) {
                    // Some groups larger than a commit fsyncs file by file: their contents
                    // rest on one syncfs.
                    let n = match r.below(8) {
                        0 => 3,
                        1 => 20,
                        _ => 1,
                    };
                    load.push(&who, n, &mut r);
                }
            }));
        }
        for c in 0..2 {
            let (load, stop) = (load.clone(), stop_consumers.clone());
            let mut r = Rng(rng.next() | 1);
            consumers.push(std::thread::spawn(move || {
                let who = format!("r{round}c{c}");
                while !stop.load(Ordering::SeqCst) {
                    if !load.consume(&who, &mut r) {
                        std::thread::sleep(Duration::from_millis(3));
                    }
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(150 + rng.below(500)));
        let tail = round % 2 == 0;
        if tail {
            stop_producers.store(true, Ordering::SeqCst);
            for t in producers.drain(..) {
                t.join().unwrap();
            }
            // One message, or a group that syncs its contents with one syncfs.
            let n = if round % 4 == 0 { 1 } else { 20 };
            load.push(&format!("r{round}tail"), n, &mut rng);
        } else {
            cut_mid_push += 1;
        }
        load.faulted.store(true, Ordering::SeqCst);
        load.cut.store(true, Ordering::SeqCst);
        m.power_cut();
        stop_producers.store(true, Ordering::SeqCst);
        stop_consumers.store(true, Ordering::SeqCst);
        for t in producers.into_iter().chain(consumers) {
            t.join().unwrap();
        }
        // A cut may undo any lease, ack or requeue since the journal's last commit: every
        // delivery of this round may come again, and that is no fault.
        for (who, id) in load.delivered.lock().unwrap().drain(..) {
            h.lease_ended(&who, &id, "power cut");
        }
        // A shut-down ext4 answers some calls as a filesystem gone read-only.
        let causes = load.causes();
        let other: Vec<_> = causes
            .keys()
            .filter(|c| {
                !c.starts_with("Input/output error") && !c.starts_with("Read-only file system")
            })
            .collect();
        assert!(other.is_empty(), "failures for other causes: {causes:?}");
        failures += causes.values().sum::<usize>();
        m.umount();
        m.mount();
        load.cut.store(false, Ordering::SeqCst);
        assert_intact(
            &spool,
            &load.pushed.lock().unwrap(),
            &load.attempts.lock().unwrap(),
        );
        let fsck = run_q(&spool, &["fsck"], None);
        assert_exit(&fsck, 0);
    }
    let complaints = load.complaints();
    assert!(complaints.is_empty(), "{complaints:#?}");
    checker::drain(&spool, &h, Duration::from_secs(30));
    let verdict = h.check(&spool);
    eprintln!(
        "power_loss_{fs}: {rounds} cuts ({cut_mid_push} mid-push), {failures} commands failed after a cut, {}",
        verdict.summary()
    );
    verdict.assert_ok();
}

#[test]
fn power_loss_on_ext4_keeps_every_acknowledged_push() {
    power_loss("ext4");
}

#[test]
fn power_loss_on_xfs_keeps_every_acknowledged_push() {
    power_loss("xfs");
}

// ---------------------------------------------------------------------------------------------
// 2. A full disk: no room for data, then no inodes.

/// Asserts a tidy ENOSPC failure: exit 1 and one `qspool: ` line naming a path in the spool and
/// the cause.
fn assert_no_space(o: &Output, spool: &Path) {
    assert_exit(o, 1);
    let line = one_error_line(o);
    assert!(
        line.contains(spool.to_str().unwrap()),
        "the error names no path in the spool: {line}"
    );
    assert!(line.contains("No space left on device"), "{line}");
}

/// The ids of every message in new/.
fn ready_ids(spool: &Path) -> BTreeSet<String> {
    messages(spool)
        .into_iter()
        .filter(|m| m.0 == "new")
        .map(|m| id_of(&m.1).to_owned())
        .collect()
}

/// Pops and acks everything visible, checking each payload against `pushed`; returns how many.
fn drain_checked(spool: &Path, pushed: &BTreeMap<String, Vec<u8>>) -> usize {
    let mut n = 0;
    loop {
        let o = run_q(spool, &["pop", "--json"], None);
        if o.status.code() == Some(3) {
            return n;
        }
        assert_exit(&o, 0);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let want = pushed
            .get(&id(&v))
            .unwrap_or_else(|| panic!("popped unknown {v}"));
        assert_eq!(v["body"].as_str().unwrap().as_bytes(), want.as_slice());
        assert_exit(&run_q(spool, &["ack", &receipt(&v)], None), 0);
        n += 1;
    }
}

/// Fills what is left of the filesystem at `dir` with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(28), "filling: {e}");
            return p;
        }
    }
}

fn push_one(spool: &Path, b: &[u8], pushed: &mut BTreeMap<String, Vec<u8>>) -> Output {
    let o = run_q(spool, &["push"], Some(b));
    if o.status.code() == Some(0) {
        let ids = lines(&o);
        assert_eq!(ids.len(), 1, "{ids:?}");
        pushed.insert(ids[0].clone(), b.to_vec());
    }
    o
}

#[test]
fn a_full_disk_fails_push_cleanly_and_keeps_the_queue_working() {
    if !need_root(&["mount", "umount"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = Mount::tmpfs(dir.path(), "size=1m");
    let spool = m.point.join("spool");
    assert_exit(&run_q(&spool, &["init"], None), 0);
    let mut pushed = BTreeMap::new();
    for i in 0..3 {
        assert_exit(
            &push_one(&spool, &body(&format!("small{i}"), 100), &mut pushed),
            0,
        );
    }
    let held = run_q(&spool, &["pop", "--json"], None);
    assert_exit(&held, 0);
    let held: Value = serde_json::from_slice(&held.stdout).unwrap();

    // A payload bigger than the disk: it fails while writing, and leaves nothing behind.
    let o = push_one(&spool, &body("huge", 2 << 20), &mut pushed);
    assert_no_space(&o, &spool);
    assert!(tmp_names(&spool).is_empty(), "tmp/ {:?}", tmp_names(&spool));

    // A stream of lines overflows part way: exactly the messages whose ids were printed are
    // in new/, each whole.
    let before = ready_ids(&spool);
    let batch: Vec<Vec<u8>> = (0..1500).map(|i| body(&format!("line{i}"), 1000)).collect();
    let o = run_q(&spool, &["push", "--lines"], Some(&batch.join(&b'\n')));
    assert_no_space(&o, &spool);
    let printed = lines(&o);
    assert!(
        !printed.is_empty() && printed.len() < batch.len(),
        "{}",
        printed.len()
    );
    for (id, b) in printed.iter().zip(&batch) {
        pushed.insert(id.clone(), b.clone());
    }
    let after = ready_ids(&spool);
    let added: BTreeSet<String> = after.difference(&before).cloned().collect();
    assert_eq!(added, printed.iter().cloned().collect::<BTreeSet<_>>());
    assert!(tmp_names(&spool).is_empty(), "tmp/ {:?}", tmp_names(&spool));
    assert_intact(&spool, &pushed, &pushed.values().cloned().collect());

    // Not a byte left: even a small push fails, but leasing, acking and requeueing need no
    // space and go on.
    let filler = fill(&m.point);
    assert_no_space(&push_one(&spool, b"tiny", &mut pushed), &spool);
    assert!(tmp_names(&spool).is_empty(), "tmp/ {:?}", tmp_names(&spool));
    assert_exit(&run_q(&spool, &["ack", &receipt(&held)], None), 0);
    let v =
        serde_json::from_slice::<Value>(&run_q(&spool, &["pop", "--json"], None).stdout).unwrap();
    assert_exit(&run_q(&spool, &["requeue", &receipt(&v)], None), 0);
    let full_drain = drain_checked(&spool, &pushed);
    assert_eq!(
        full_drain,
        pushed.len() - 1,
        "every message but the acked one is delivered"
    );

    // Space again (the filler, and what was acked): push works.
    std::fs::remove_file(filler).unwrap();
    assert_exit(&run_q(&spool, &["purge", "--done"], None), 0);
    assert_exit(&push_one(&spool, b"after", &mut pushed), 0);
    assert_eq!(drain_checked(&spool, &pushed), 1);
    assert_exit(&run_q(&spool, &["fsck"], None), 0);
}

#[test]
fn running_out_of_inodes_fails_push_cleanly_and_keeps_the_queue_working() {
    if !need_root(&["mount", "umount"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = Mount::tmpfs(dir.path(), "nr_inodes=64");
    let spool = m.point.join("spool");
    assert_exit(&run_q(&spool, &["init"], None), 0);
    // One inode held back, to be freed later for a push that can create its file but not its
    // bucket.
    let spare = m.point.join("spare");
    std::fs::write(&spare, b"").unwrap();
    let mut pushed = BTreeMap::new();
    let mut i = 0;
    let failed = loop {
        let o = push_one(&spool, &body(&format!("m{i}"), 50), &mut pushed);
        if o.status.code() != Some(0) {
            break o;
        }
        i += 1;
        assert!(i < 1000, "64 inodes never ran out");
    };
    assert_no_space(&failed, &spool);
    assert!(tmp_names(&spool).is_empty(), "tmp/ {:?}", tmp_names(&spool));
    assert_eq!(ready_ids(&spool), pushed.keys().cloned().collect());

    // One inode free: the file is created, its bucket (an hour ahead) cannot be; the file goes.
    std::fs::remove_file(&spare).unwrap();
    let late = body("late", 50);
    let o = run_q(&spool, &["push", "--delay", "1h"], Some(&late));
    assert_no_space(&o, &spool);
    assert!(
        stderr(&o).contains("rename"),
        "failed before its bucket: {}",
        stderr(&o)
    );
    assert!(tmp_names(&spool).is_empty(), "tmp/ {:?}", tmp_names(&spool));
    assert_intact(&spool, &pushed, &pushed.values().cloned().collect());

    // Delivery needs no inode; purging what was acked frees them, and push works again.
    assert_eq!(drain_checked(&spool, &pushed), pushed.len());
    let o = run_q(&spool, &["purge", "--done"], None);
    assert_exit(&o, 0);
    assert_exit(&push_one(&spool, &late, &mut pushed), 0);
    assert_eq!(drain_checked(&spool, &pushed), 1);
    assert_exit(&run_q(&spool, &["fsck"], None), 0);
}

// ---------------------------------------------------------------------------------------------
// 3. I/O errors injected by strace, one failing call at a time.

/// The calls whose failure is injected: every write, every flush to disk, every rename.
const INJECTED: [&str; 7] = [
    "write",
    "fsync",
    "fdatasync",
    "syncfs",
    "rename",
    "renameat",
    "renameat2",
];

/// Every command that changes the spool, as `prepare` knows them.
const CASES: [&str; 12] = [
    "push",
    "push --lines",
    "push --lines, a large group",
    "pop",
    "pop --receipt-file",
    "ack",
    "requeue",
    "extend",
    "bury",
    "dlq-replay",
    "requeue --expired",
    "work",
];

/// One command under test, run in a spool prepared for it.
struct Setup {
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    /// Bodies the command itself pushes (attempts, recorded before it runs).
    pushes: Vec<Vec<u8>>,
}

/// A spool with messages in the states `case` needs, recorded in `h`; returns the command.
fn prepare(spool: &Path, h: &History, case: &str) -> Setup {
    let push = |tag: &str| -> String {
        let b = body(tag, 40);
        h.push_attempt(&b);
        let o = run_q(spool, &["push"], Some(&b));
        assert_exit(&o, 0);
        let id = stdout(&o).trim().to_owned();
        h.push_ok(&id, &b);
        id
    };
    let pop = |lease: &str| -> (String, String) {
        let o = run_q(spool, &["pop", "--json", "--lease", lease], None);
        assert_exit(&o, 0);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let b = v["body"].as_str().unwrap().as_bytes().to_vec();
        h.delivered("setup", &id(&v), v["attempt"].as_u64().unwrap(), &b);
        (id(&v), receipt(&v))
    };
    assert_exit(&run_q(spool, &["init"], None), 0);
    let mut s = Setup {
        args: Vec::new(),
        stdin: None,
        pushes: Vec::new(),
    };
    let strs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    match case {
        "push" => {
            let b = body("pushed", 40);
            s.args = vec!["push".into(), String::from_utf8(b.clone()).unwrap()];
            s.pushes = vec![b];
        }
        "push --lines" | "push --lines, a large group" => {
            // A large group's contents are made durable by one syncfs, not a fsync each.
            let n = if case == "push --lines" { 3 } else { 12 };
            s.pushes = (0..n).map(|i| body(&format!("line{i}"), 40)).collect();
            s.stdin = Some(s.pushes.join(&b'\n'));
            s.args = strs(&["push", "--lines"]);
        }
        "pop" | "pop --receipt-file" => {
            push("ready1");
            push("ready2");
            s.args = strs(&["pop", "--json"]);
            if case == "pop --receipt-file" {
                let rf = spool.with_file_name("receipt");
                s.args = vec![
                    "pop".into(),
                    "--receipt-file".into(),
                    rf.display().to_string(),
                ];
            }
        }
        "ack" | "requeue" | "bury" | "extend" => {
            push("held");
            let (_, r) = pop("30s");
            s.args = vec![case.into(), r];
            if case == "extend" {
                s.args.extend(strs(&["--lease", "40s"]));
            }
        }
        "dlq-replay" => {
            push("buried");
            let (id, r) = pop("30s");
            assert_exit(&run_q(spool, &["bury", &r], None), 0);
            h.lease_ended("setup", &id, "buried");
            s.args = vec!["dlq-replay".into(), id];
        }
        "requeue --expired" => {
            push("expired");
            push("ready");
            let (id, _) = pop("1ms");
            h.lease_ended("setup", &id, "expired");
            std::thread::sleep(Duration::from_millis(5));
            s.args = strs(&["requeue", "--expired"]);
        }
        "work" => {
            push("worked");
            s.args = strs(&["work", "--", "true"]);
        }
        _ => panic!("no case {case}"),
    }
    s
}

/// `strace -f -qq -o TRACE -e trace=...` around qspool: with `inject`, the `when`th call of
/// `syscall` (in each process) fails with EIO. Returns the output and the trace.
fn straced(spool: &Path, s: &Setup, syscall: &str, inject: Option<u64>) -> (Output, String) {
    let trace = spool.with_file_name(format!("trace.{syscall}"));
    let mut c = Command::new("strace");
    c.arg("-f")
        .arg("-qq")
        .arg("-o")
        .arg(&trace)
        .arg(format!("-etrace={syscall},close,openat,fcntl"));
    if let Some(n) = inject {
        c.arg(format!("-einject={syscall}:error=EIO:when={n}"));
    }
    c.arg(bin())
        .env_remove("QSPOOL_DIR")
        .env_remove("XDG_STATE_HOME")
        .arg("--spool")
        .arg(spool)
        .args(&s.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let o = run_limited(c, s.stdin.as_deref(), Duration::from_secs(60));
    let t = std::fs::read_to_string(&trace).unwrap_or_default();
    (o, t)
}

/// How many calls of `syscall` the busiest process of the trace made (`when` counts per
/// process).
fn calls(trace: &str, syscall: &str) -> u64 {
    let mut per_pid: BTreeMap<&str, u64> = BTreeMap::new();
    for l in trace.lines() {
        let mut w = l.splitn(2, ' ');
        let (pid, rest) = (w.next().unwrap(), w.next().unwrap_or("").trim_start());
        if rest.starts_with(&format!("{syscall}(")) {
            *per_pid.entry(pid).or_default() += 1;
        }
    }
    per_pid.into_values().max().unwrap_or(0)
}

/// Whether the injected failure hit an fsync of a directory (the fd was last opened with
/// `O_DIRECTORY`): for a push, one of the commit's fsyncs after its rename.
fn injected_on_directory(trace: &str) -> bool {
    let mut opened: BTreeMap<String, bool> = BTreeMap::new();
    for l in trace.lines() {
        let rest = l.split_once(' ').map_or("", |(_, r)| r.trim_start());
        let result = rest.rsplit("= ").next().filter(|fd| !fd.starts_with('-'));
        if rest.starts_with("openat(") {
            if let Some(fd) = result {
                opened.insert(fd.trim().to_owned(), rest.contains("O_DIRECTORY"));
            }
        } else if let Some(args) = rest.strip_prefix("fcntl(")
            && rest.contains("F_DUPFD")
        {
            // A held descriptor is a duplicate of the one opened.
            let from = args.split(',').next().unwrap_or_default();
            let dir = opened.get(from).copied().unwrap_or(false);
            if let Some(fd) = result {
                opened.insert(fd.trim().to_owned(), dir);
            }
        } else if rest.contains("(INJECTED)") {
            let fd = rest
                .split_once('(')
                .and_then(|(_, r)| r.split(')').next())
                .unwrap_or_default();
            return opened.get(fd).copied().unwrap_or(false);
        }
    }
    false
}

/// An fsync that failed must not be retried on the same descriptor and then trusted: after the
/// injected failure on fd N, a later successful `fsync(N)` needs a `close(N)` in between (the
/// number then names another file).
fn fsync_retried(trace: &str) -> Option<String> {
    let mut failed: BTreeMap<(String, String), bool> = BTreeMap::new();
    for l in trace.lines() {
        let mut w = l.splitn(2, ' ');
        let (pid, rest) = (
            w.next().unwrap().to_owned(),
            w.next().unwrap_or("").trim_start(),
        );
        let fd_of = |call: &str| {
            rest.strip_prefix(call)
                .and_then(|r| r.split(')').next())
                .map(str::to_owned)
        };
        if let Some(fd) = fd_of("fsync(").or_else(|| fd_of("fdatasync(")) {
            if rest.contains("(INJECTED)") {
                failed.insert((pid, fd), true);
            } else if failed.get(&(pid, fd.clone())) == Some(&true) && rest.ends_with("= 0") {
                return Some(l.to_owned());
            }
        } else if let Some(fd) = fd_of("close(") {
            failed.remove(&(pid, fd));
        }
    }
    None
}

/// The names in leased/.
/// The lease files in `leased/`'s buckets (and any flat in `leased/` itself).
fn leased(spool: &Path) -> BTreeSet<String> {
    files_under(&spool.join("leased"))
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect()
}

/// A command run while one of its steps was made to fail.
struct Failed<'a> {
    case: &'a str,
    setup: &'a Setup,
    out: &'a Output,
    spool: &'a Path,
    leased_before: &'a BTreeSet<String>,
    what: &'a str,
    /// What the error line must name.
    cause: &'a str,
    /// Whether the failed step was one the command may shrug off.
    may_succeed: bool,
}

/// Judges a command whose step failed: it failed tidily, printed no id it did not make durable,
/// handed out no payload whose lease it gave back, stranded no lease, and left a spool that the
/// history checker accepts after a drain. Returns what was wrong, one line each.
fn judge_failed(f: &Failed, h: &History) -> Vec<String> {
    let (case, o, spool, what) = (f.case, f.out, f.spool, f.what);
    let mut findings = Vec::new();
    let code = o.status.code();
    let err = stderr(o);
    let tidy = (err.lines().count() == 1 || case == "work")
        && err.lines().all(|l| l.starts_with("qspool: "))
        && err.contains(f.cause);
    match code {
        Some(1) if !tidy => findings.push(format!("{what}: stderr {err:?}")),
        Some(1) => {}
        Some(0) if f.may_succeed => {}
        _ => findings.push(format!("{what}: exit {code:?}, stderr {err:?}")),
    }
    // Ids printed are durable messages: a push that failed printed at most those of the
    // messages committed before the failure, never all of them.
    let printed = lines(o);
    if case.starts_with("push") {
        if code != Some(0) && printed.len() >= f.setup.pushes.len() {
            findings.push(format!("{what}: printed {printed:?} and failed"));
        }
        for (id, b) in printed.iter().zip(&f.setup.pushes) {
            h.push_ok(id, b);
        }
        // A push that failed removes its file from tmp/.
        let tmp = tmp_names(spool);
        if !tmp.is_empty() {
            findings.push(format!("{what}: left {tmp:?} in tmp/"));
        }
    }
    let leased_after = leased(spool);
    if case.starts_with("pop") && code != Some(0) {
        if !o.stdout.is_empty() {
            // Its lease is given back: a payload that still reached the reader would be worked
            // on while another consumer may hold it.
            findings.push(format!(
                "{what}: failed, released its lease, yet wrote {:?}",
                stdout(o)
            ));
        } else if leased_after != *f.leased_before {
            // A pop that failed holds nothing: what it leased it gave back.
            findings.push(format!(
                "{what}: stranded lease {:?}",
                leased_after.difference(f.leased_before).collect::<Vec<_>>()
            ));
        }
    }
    // A lease the command was to end: acked, or ended otherwise (a requeue whose fsync failed
    // after its rename has moved the message all the same).
    for r in f.leased_before.difference(&leased_after) {
        if case == "ack" && code == Some(0) {
            h.acked("setup", id_of(r));
        } else {
            h.lease_ended("setup", id_of(r), &format!("{case} exited {code:?}"));
        }
    }
    // A lease the command failed to end is still held, by its receipt.
    for r in &leased_after {
        let a = run_q(spool, &["ack", r], None);
        if a.status.code() == Some(0) {
            h.acked("setup", id_of(r));
        }
    }
    checker::drain(spool, h, Duration::from_secs(10));
    let v = h.check(spool);
    if !v.failures().is_empty() {
        findings.push(format!("{what}: {:?}", v.failures()));
    }
    findings
}

/// Every command, every write, flush and rename it makes failing in turn with EIO: the command
/// must then fail (exit 1, one line naming the cause), print no id it did not make durable,
/// strand no lease, and leave a spool the history checker accepts after a drain.
#[test]
fn an_io_error_at_any_step_fails_the_command_and_keeps_the_spool_whole() {
    if !need(&["strace"]) {
        return;
    }
    let mut findings = Vec::new();
    let mut injected = 0;
    let mut dir_fsyncs: BTreeMap<&str, usize> = BTreeMap::new();
    let mut syncfs_failed: BTreeMap<&str, usize> = BTreeMap::new();
    for case in CASES {
        for syscall in INJECTED {
            let dir = tempfile::tempdir().unwrap();
            let spool = dir.path().join("spool");
            let h = History::new(&dir.path().join("baseline"));
            let s = prepare(&spool, &h, case);
            let (o, t) = straced(&spool, &s, syscall, None);
            assert_exit(&o, 0);
            let n = calls(&t, syscall);
            if n > 0 {
                eprintln!("io errors: {case}: {n} {syscall}");
            }
            for when in 1..=n {
                let dir = tempfile::tempdir().unwrap();
                let spool = dir.path().join("spool");
                let h = History::new(&dir.path().join("history"));
                let s = prepare(&spool, &h, case);
                let leased_before = leased(&spool);
                for b in &s.pushes {
                    h.push_attempt(b);
                }
                let (o, t) = straced(&spool, &s, syscall, Some(when));
                let Some(hit) = t.lines().find(|l| l.contains("(INJECTED)")) else {
                    continue;
                };
                injected += 1;
                let what = format!("{case} with {syscall} #{when} failing [{hit}]");
                // What a command says on standard error about its progress is best effort;
                // everything else it writes, flushes or renames is a step.
                let diagnostic = hit.contains(" write(2,");
                if syscall == "fsync" && injected_on_directory(&t) {
                    *dir_fsyncs.entry(case).or_default() += 1;
                }
                if syscall == "syncfs" {
                    *syncfs_failed.entry(case).or_default() += 1;
                }
                if let Some(l) = fsync_retried(&t) {
                    findings.push(format!("{what}: fsync retried and trusted: {l}"));
                }
                findings.extend(judge_failed(
                    &Failed {
                        case,
                        setup: &s,
                        out: &o,
                        spool: &spool,
                        leased_before: &leased_before,
                        what: &what,
                        cause: "Input/output error",
                        may_succeed: diagnostic,
                    },
                    &h,
                ));
            }
        }
    }
    eprintln!(
        "io errors: {injected} injected, directory fsyncs among them {dir_fsyncs:?}, \
         syncfs {syncfs_failed:?}"
    );
    // The fsyncs that make a push's rename durable are among those that failed.
    assert!(
        dir_fsyncs.get("push").is_some_and(|&n| n >= 2),
        "{dir_fsyncs:?}"
    );
    assert!(dir_fsyncs.contains_key("push --lines"), "{dir_fsyncs:?}");
    // A large group's contents rest on its one syncfs, and that failing was tried too.
    assert!(
        dir_fsyncs.contains_key("push --lines, a large group")
            && syncfs_failed.contains_key("push --lines, a large group"),
        "{dir_fsyncs:?} {syncfs_failed:?}"
    );
    assert!(injected > 40, "only {injected} faults were injected");
    assert!(
        findings.is_empty(),
        "{} findings:\n{}",
        findings.len(),
        findings.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 4. A spool that turns read-only under its users, and a process out of file descriptors.

/// Producers and consumers run while the spool's filesystem is remounted read-only, then
/// read-write. Meanwhile every command fails tidily; no lease is left in leased/ that no pop
/// handed out; and once writable, everything works again and nothing was lost.
#[test]
fn a_read_only_remount_mid_run_fails_tidily_and_work_resumes() {
    if !need_root(&["mount", "umount"]) {
        return;
    }
    let rounds = if soak() { 10 } else { 2 };
    let dir = tempfile::tempdir().unwrap();
    let m = Mount::tmpfs(dir.path(), "size=64m");
    let spool = m.point.join("spool");
    assert_exit(&run_q(&spool, &["init", "--lease", "2s"], None), 0);
    let h = History::new(&dir.path().join("history"));
    let load = Load::new(&spool, h.clone());
    let mut rng = Rng::new("read_only_remount");
    let mut refused = 0;
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for k in 0..4 {
            let (load, stop) = (load.clone(), stop.clone());
            let mut r = Rng(rng.next() | 1);
            threads.push(std::thread::spawn(move || {
                let who = format!("r{round}t{k}");
                while !stop.load(Ordering::SeqCst) {
                    if k < 2 {
                        load.push(&who, 1 + 2 * (r.below(3) == 0) as usize, &mut r);
                    } else if !load.consume(&who, &mut r) {
                        std::thread::sleep(Duration::from_millis(3));
                    }
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(100 + rng.below(300)));
        load.faulted.store(true, Ordering::SeqCst);
        // A remount to read-only is refused while a file is open for writing: a push
        // writing its payload. Try until it lands between two.
        let start = Instant::now();
        let ro = loop {
            let o = Command::new("mount")
                .args(["-o", "remount,ro", m.point.to_str().unwrap()])
                .output()
                .unwrap();
            if o.status.success() {
                break true;
            }
            refused += 1;
            if start.elapsed() > Duration::from_secs(20) {
                break false;
            }
        };
        assert!(ro, "the remount to read-only never got through");
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
        // Everything in leased/ now was handed out by a pop that succeeded.
        let handed = load.receipts.lock().unwrap().clone();
        let stranded: Vec<String> = leased(&spool).difference(&handed).cloned().collect();
        assert!(
            stranded.is_empty(),
            "leases no pop handed out: {stranded:?}"
        );
        m.remount("rw");
        load.faulted.store(false, Ordering::SeqCst);
        let complaints = load.complaints();
        assert!(complaints.is_empty(), "{complaints:#?}");
        let causes = load.causes();
        eprintln!("read_only_remount: round {round}, failures {causes:?}");
        // Failures came, and each for the one reason there was.
        assert!(!causes.is_empty(), "nothing failed on a read-only spool");
        let other: Vec<_> = causes
            .keys()
            .filter(|c| !c.starts_with("Read-only file system"))
            .collect();
        assert!(other.is_empty(), "failures for other causes: {causes:?}");
        // Writable again: a push and a pop both work at once.
        load.push(&format!("r{round}after"), 1, &mut rng);
        assert!(load.consume(&format!("r{round}after"), &mut rng));
        let complaints = load.complaints();
        assert!(complaints.is_empty(), "{complaints:#?}");
    }
    checker::drain(&spool, &h, Duration::from_secs(30));
    let verdict = h.check(&spool);
    eprintln!(
        "read_only_remount: {rounds} remounts ({refused} refused while busy), {}",
        verdict.summary()
    );
    verdict.assert_ok();
}

/// Every command under a limit of `n` open files, for each `n` from where the loader can start
/// up to where the command succeeds: it fails with one line naming the cause, strands no lease,
/// and leaves a spool the history checker accepts.
#[test]
fn too_few_file_descriptors_fail_each_command_tidily() {
    if !need(&["prlimit"]) {
        return;
    }
    let mut findings = Vec::new();
    let mut refused = 0;
    for case in CASES {
        for n in 3..64 {
            let dir = tempfile::tempdir().unwrap();
            let spool = dir.path().join("spool");
            let h = History::new(&dir.path().join("history"));
            let s = prepare(&spool, &h, case);
            let leased_before = leased(&spool);
            for b in &s.pushes {
                h.push_attempt(b);
            }
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}"))
                .arg("--")
                .arg(bin())
                .env_remove("QSPOOL_DIR")
                .env_remove("XDG_STATE_HOME")
                .arg("--spool")
                .arg(&spool)
                .args(&s.args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let o = run_limited(c, s.stdin.as_deref(), Duration::from_secs(60));
            if o.status.code() == Some(127) && stderr(&o).contains("shared") {
                // The dynamic loader itself ran out; qspool never started.
                continue;
            }
            let ok = o.status.code() == Some(0);
            if !ok {
                refused += 1;
            }
            let what = format!("{case} with {n} file descriptors");
            findings.extend(judge_failed(
                &Failed {
                    case,
                    setup: &s,
                    out: &o,
                    spool: &spool,
                    leased_before: &leased_before,
                    what: &what,
                    cause: "Too many open files",
                    may_succeed: true,
                },
                &h,
            ));
            if ok {
                break;
            }
        }
    }
    eprintln!("file descriptors: {refused} commands refused");
    assert!(refused >= CASES.len(), "only {refused} commands ran out");
    assert!(
        findings.is_empty(),
        "{} findings:\n{}",
        findings.len(),
        findings.join("\n")
    );
}

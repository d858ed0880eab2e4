//! The history checker: every adversarial test records what it pushed, delivered and acked, and
//! this module decides whether the run lost, invented or duplicated a message.

use crate::harness::lease_rel;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A run's history: JSON lines in a file, appended under a Mutex (shared via Arc between
/// threads). The file is there to be read when a run fails; the checker judges the events kept
/// in memory, in the order they were recorded.
pub struct History {
    path: PathBuf,
    inner: Mutex<(File, Vec<Value>)>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A body as it is stored in an event: readable when it is UTF-8, hex otherwise.
fn body_fields(body: &[u8]) -> (String, Value) {
    match std::str::from_utf8(body) {
        Ok(s) => ("body".into(), Value::String(s.into())),
        Err(_) => ("body_hex".into(), Value::String(hex(body))),
    }
}

fn body_of(ev: &Value) -> Vec<u8> {
    if let Some(s) = ev["body"].as_str() {
        s.as_bytes().to_vec()
    } else {
        unhex(ev["body_hex"].as_str().unwrap_or(""))
    }
}

impl History {
    /// Creates `dir/history.jsonl` (truncating an old one).
    pub fn new(dir: &Path) -> Arc<History> {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("history.jsonl");
        let file = File::create(&path).unwrap();
        Arc::new(History {
            path,
            inner: Mutex::new((file, Vec::new())),
        })
    }

    /// Where the history is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&self, mut ev: Value, body: Option<&[u8]>) {
        if let Some(b) = body {
            let (k, v) = body_fields(b);
            ev[k] = v;
        }
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let line = ev.to_string() + "\n";
        g.0.write_all(line.as_bytes()).unwrap();
        g.1.push(ev);
    }

    /// Called BEFORE a push is run: bodies are unique per push attempt, so a push whose outcome
    /// is unknown (killed, crashed, I/O error) can still be recognised if its message turns up.
    pub fn push_attempt(&self, body: &[u8]) {
        self.record(json!({"ev": "push_attempt"}), Some(body));
    }

    /// The push exited 0 and printed this id for this body.
    pub fn push_ok(&self, id: &str, body: &[u8]) {
        self.record(json!({"ev": "push_ok", "id": id}), Some(body));
    }

    /// A pop (by `who`) gave this message, with this attempt number.
    pub fn delivered(&self, who: &str, id: &str, attempt: u64, body: &[u8]) {
        self.record(
            json!({"ev": "delivered", "who": who, "id": id, "attempt": attempt}),
            Some(body),
        );
    }

    /// `who`'s ack of `id` exited 0.
    pub fn acked(&self, who: &str, id: &str) {
        self.record(json!({"ev": "acked", "who": who, "id": id}), None);
    }

    /// The holder's lease ended without an ack: it was SIGKILLed, its lease expired, it was
    /// stopped, the clock jumped, it requeued. A later re-delivery of `id` is then explained.
    pub fn lease_ended(&self, who: &str, id: &str, why: &str) {
        self.record(
            json!({"ev": "lease_ended", "who": who, "id": id, "why": why}),
            None,
        );
    }

    pub fn events(&self) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .clone()
    }

    /// Judges the history against the spool's final state (call after the drain, on a spool
    /// nobody is changing any more).
    pub fn check(&self, spool: &Path) -> Verdict {
        judge(&self.events(), spool)
    }
}

#[derive(Debug, Default)]
pub struct Verdict {
    /// pushes that returned 0
    pub pushed: usize,
    /// deliveries
    pub delivered: usize,
    /// deliveries beyond the first per id
    pub duplicates: usize,
    /// ids delivered again with no lease_ended of the previous holder in between
    pub unexplained: Vec<String>,
    /// push_ok ids not in done/ or dead/ after the drain (and not delivered+acked)
    pub lost: Vec<String>,
    /// delivered ids/bodies never attempted, or a delivered body that is not its id's
    pub unexpected: Vec<String>,
    /// an id with files in two states (or twice in one)
    pub two_states: Vec<String>,
    /// a message file whose bytes are not the body of some push attempt, or empty
    pub partial: Vec<String>,
    /// files in tmp/ (allowed only from pushes that never returned 0)
    pub tmp_leftovers: Vec<String>,
    /// tmp/ files whose id a push printed: a push reported success for a message it left behind
    pub tmp_from_pushed: Vec<String>,
    /// entries in a state directory that are not messages of the grammar (and not buckets)
    pub foreign: Vec<String>,
    /// acks that exited 0
    pub acked: usize,
    /// per duplicate: the id and the `why` of the lease_ended that explained it
    pub explained: Vec<(String, String)>,
    /// messages left in each state after the drain (`new`, `leased`, `done`, `dead`)
    pub states: BTreeMap<String, usize>,
}

impl Verdict {
    /// Everything that breaks a promise, one line each; empty when the run kept them all.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let mut add = |what: &str, v: &[String]| {
            if !v.is_empty() {
                let shown: Vec<&String> = v.iter().take(10).collect();
                f.push(format!("{what} ({}): {shown:?}", v.len()));
            }
        };
        add("lost", &self.lost);
        add("unexpected", &self.unexpected);
        add("unexplained duplicates", &self.unexplained);
        add("in two states", &self.two_states);
        add("partial or empty", &self.partial);
        add(
            "tmp/ leftover of a push that returned 0",
            &self.tmp_from_pushed,
        );
        add("foreign entries", &self.foreign);
        f
    }

    /// Panics with a readable summary when any promise was broken.
    pub fn assert_ok(&self) {
        let f = self.failures();
        assert!(
            f.is_empty(),
            "history check failed: {}\n  {}",
            self.summary(),
            f.join("\n  ")
        );
    }

    pub fn summary(&self) -> String {
        let explained = if self.unexplained.is_empty() {
            "all explained".to_owned()
        } else {
            format!("{} unexplained", self.unexplained.len())
        };
        let mut whys: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, w) in &self.explained {
            *whys.entry(w.as_str()).or_default() += 1;
        }
        format!(
            "messages {}, deliveries {}, acks {}, duplicates {} ({explained}{}), lost {}, \
             unexpected {}, two states {}, partial {}, tmp leftovers {} ({} of pushes that \
             returned 0), foreign {}, final states {:?}",
            self.pushed,
            self.delivered,
            self.acked,
            self.duplicates,
            if whys.is_empty() {
                String::new()
            } else {
                format!(": {whys:?}")
            },
            self.lost.len(),
            self.unexpected.len(),
            self.two_states.len(),
            self.partial.len(),
            self.tmp_leftovers.len(),
            self.tmp_from_pushed.len(),
            self.foreign.len(),
            self.states,
        )
    }
}

/// Which state a name belongs to, by its suffix: `Some(true)` when it has the grammar of
/// `dir`'s state. The id's inner grammar is left to qspool's own tests; here the point is to
/// find files that are not messages at all.
fn well_formed(dir: &str, name: &str) -> bool {
    let mut parts = name.split(',');
    let id = parts.next().unwrap_or("");
    let mut fields: Vec<&str> = parts.collect();
    if id.split('.').count() != 5 || name.starts_with('.') {
        return false;
    }
    // An optional dedup key hash, then an optional group hash, end any state's name.
    for tag in ['g', 'k'] {
        if let Some(k) = fields.last().and_then(|f| f.strip_prefix(tag)) {
            if k.len() != 16 || !k.bytes().all(|c| c.is_ascii_hexdigit()) {
                return false;
            }
            fields.pop();
        }
    }
    let tags: Vec<char> = fields.iter().filter_map(|f| f.chars().next()).collect();
    let digits = |f: &str| f.len() > 1 && f[1..].bytes().all(|c| c.is_ascii_digit());
    let nums_ok = fields
        .iter()
        .filter(|f| !f.starts_with('t'))
        .all(|f| digits(f));
    nums_ok
        && match dir {
            "tmp" | "new" => tags == ['a', 'v'],
            "leased" => tags == ['a', 'l', 't'],
            "done" | "dead" => tags == ['a', 'f'],
            _ => false,
        }
}

/// Every plain entry under `spool/state`, new/'s bucket tree walked, as (path in the spool,
/// file name). Directories under new/ are buckets; anywhere else they are foreign.
fn entries(spool: &Path, state: &str, foreign: &mut Vec<String>) -> Vec<(String, String)> {
    fn walk(
        root: &Path,
        rel: &str,
        depth: usize,
        out: &mut Vec<(String, String)>,
        foreign: &mut Vec<String>,
    ) {
        let Ok(rd) = std::fs::read_dir(root.join(rel)) else {
            foreign.push(format!("{rel} (unreadable or missing)"));
            return;
        };
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let path = format!("{rel}/{name}");
            let meta = std::fs::symlink_metadata(root.join(&path)).unwrap();
            // new/ is three bucket levels deep, leased/ two (FORMAT.md §2).
            let tree = if rel.starts_with("new") {
                3
            } else if rel.starts_with("leased") {
                2
            } else {
                0
            };
            let bucket_level = depth < tree;
            // A lease sits in the bucket of its expiry, or flat in leased/ (an earlier layout).
            let in_place = !rel.starts_with("leased")
                || depth == 0
                || (well_formed("leased", &name) && lease_rel(&name) == path);
            if meta.is_dir() && bucket_level {
                walk(root, &path, depth + 1, out, foreign);
            } else if meta.is_file() && (!bucket_level || (tree == 2 && depth == 0)) && in_place {
                out.push((path, name));
            } else {
                foreign.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(spool, state, 0, &mut out, foreign);
    out
}

fn judge(events: &[Value], spool: &Path) -> Verdict {
    let mut v = Verdict::default();
    let mut attempted: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut pushed: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut acked: BTreeSet<String> = BTreeSet::new();
    // Per id: the holder of the last delivery, and whether its lease ended since.
    let mut holder: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    let mut delivered_ids: BTreeSet<String> = BTreeSet::new();

    for ev in events {
        let id = ev["id"].as_str().unwrap_or("").to_owned();
        let who = ev["who"].as_str().unwrap_or("").to_owned();
        match ev["ev"].as_str().unwrap_or("") {
            "push_attempt" => {
                attempted.insert(body_of(ev));
            }
            "push_ok" => {
                let body = body_of(ev);
                if !attempted.contains(&body) {
                    v.unexpected
                        .push(format!("{id}: push_ok without a push_attempt of its body"));
                }
                pushed.insert(id, body);
            }
            "delivered" => {
                v.delivered += 1;
                let body = body_of(ev);
                match pushed.get(&id) {
                    Some(b) if *b != body => v
                        .unexpected
                        .push(format!("{id}: delivered with a body other than pushed")),
                    None if !attempted.contains(&body) => v
                        .unexpected
                        .push(format!("{id}: delivered a body never pushed")),
                    _ => {}
                }
                if !delivered_ids.insert(id.clone()) {
                    v.duplicates += 1;
                    match holder.get(&id) {
                        Some((_, Some(why))) => v.explained.push((id.clone(), why.clone())),
                        Some((prev, None)) => v.unexplained.push(format!(
                            "{id}: delivered to {who} while {prev}'s lease had not ended"
                        )),
                        None => unreachable!(),
                    }
                }
                holder.insert(id, (who, None));
            }
            "acked" => {
                v.acked += 1;
                acked.insert(id);
            }
            "lease_ended" => {
                if let Some((h, ended)) = holder.get_mut(&id)
                    && *h == who
                {
                    *ended = Some(ev["why"].as_str().unwrap_or("").to_owned());
                }
            }
            other => panic!("unknown history event {other:?}: {ev}"),
        }
    }
    v.pushed = pushed.len();

    // The spool: where each id is, and whether each message file holds a pushed body.
    let mut locations: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut foreign = Vec::new();
    for state in ["new", "leased", "done", "dead"] {
        for (path, name) in entries(spool, state, &mut foreign) {
            if !well_formed(state, &name) {
                foreign.push(path);
                continue;
            }
            *v.states.entry(state.to_owned()).or_default() += 1;
            let id = name.split(',').next().unwrap().to_owned();
            let bytes = std::fs::read(spool.join(&path)).unwrap_or_default();
            let fine = match pushed.get(&id) {
                Some(b) => *b == bytes,
                None => attempted.contains(&bytes),
            };
            if !fine {
                v.partial
                    .push(format!("{path}: {} bytes, not a pushed body", bytes.len()));
            }
            locations.entry(id).or_default().push(path);
        }
    }
    for (path, name) in entries(spool, "tmp", &mut foreign) {
        if !well_formed("tmp", &name) {
            foreign.push(path);
            continue;
        }
        let id = name.split(',').next().unwrap().to_owned();
        if pushed.contains_key(&id) {
            v.tmp_from_pushed.push(path.clone());
        }
        if let Some(other) = locations.get(&id) {
            v.two_states.push(format!("{id}: {path} and {other:?}"));
        }
        v.tmp_leftovers.push(path);
    }
    v.foreign = foreign;
    for (id, places) in &locations {
        if places.len() > 1 {
            v.two_states.push(format!("{id}: {places:?}"));
        }
    }
    for id in pushed.keys() {
        let finished = locations.get(id).is_some_and(|p| {
            p.iter()
                .any(|p| p.starts_with("done/") || p.starts_with("dead/"))
        });
        if !finished && !acked.contains(id) {
            let at = locations.get(id).map(|p| p.join(" ")).unwrap_or_default();
            v.lost.push(format!("{id} (at: {at:?})"));
        }
    }
    v
}

/// `qspool --spool SPOOL ARGS`, run through `wrapper` (a command and its arguments, such as
/// `faketime -f +3h`) when it is not empty.
fn qspool_at(wrapper: &[&str], spool: &Path, args: &[&str]) -> std::process::Output {
    let bin = crate::harness::qspool_bin();
    let mut program: Vec<&std::ffi::OsStr> = wrapper.iter().map(std::ffi::OsStr::new).collect();
    program.push(std::ffi::OsStr::new(bin));
    crate::harness::spool_command(&program, spool, args)
        .stdin(Stdio::null())
        .output()
        .expect("run qspool")
}

fn anything_under(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let p = e.path();
            !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) || anything_under(&p)
        })
    })
}

/// Drains the spool: reclaims expired leases and pops+acks until empty, recording into the
/// history as `drain`, waiting (polling) for leases that have not expired yet and delayed
/// messages, up to `deadline`. What is still there then is left for the checker to report.
pub fn drain(spool: &Path, h: &History, deadline: Duration) {
    drain_via(&[], spool, h, deadline);
}

/// `drain`, with every qspool run through `wrapper` (e.g. `["faketime", "-f", "+3h"]`, to
/// drain a spool whose messages were written by a clock that ran ahead).
pub fn drain_via(wrapper: &[&str], spool: &Path, h: &History, deadline: Duration) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        let _ = qspool_at(wrapper, spool, &["requeue", "--expired"]);
        let o = qspool_at(
            wrapper,
            spool,
            &["pop", "--json", "-n", "200", "--lease", "10m"],
        );
        match o.status.code() {
            Some(0) => {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let mut receipts = Vec::new();
                for line in text.lines() {
                    let m: Value = serde_json::from_str(line).unwrap();
                    let id = m["id"].as_str().unwrap();
                    let body = match m["body"].as_str() {
                        Some(s) => s.as_bytes().to_vec(),
                        None => crate::harness::base64_decode(m["body_base64"].as_str().unwrap()),
                    };
                    h.delivered("drain", id, m["attempt"].as_u64().unwrap(), &body);
                    receipts.push((id.to_owned(), m["receipt"].as_str().unwrap().to_owned()));
                }
                // One ack for the batch; only when it fails is each receipt tried alone, to
                // tell which lease was not held.
                let mut all = vec!["ack"];
                all.extend(receipts.iter().map(|(_, r)| r.as_str()));
                if qspool_at(wrapper, spool, &all).status.success() {
                    for (id, _) in &receipts {
                        h.acked("drain", id);
                    }
                    continue;
                }
                for (id, r) in receipts {
                    let a = qspool_at(wrapper, spool, &["ack", &r]);
                    if a.status.success() {
                        h.acked("drain", &id);
                    } else {
                        eprintln!(
                            "drain: ack {r} exited {:?}: {}",
                            a.status.code(),
                            String::from_utf8_lossy(&a.stderr)
                        );
                        h.lease_ended("drain", &id, "drain ack failed");
                    }
                }
            }
            Some(3) => {
                let waiting =
                    anything_under(&spool.join("leased")) || anything_under(&spool.join("new"));
                if !waiting {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            c => {
                eprintln!(
                    "drain: pop exited {c:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    eprintln!("drain: deadline {deadline:?} reached with messages left");
}

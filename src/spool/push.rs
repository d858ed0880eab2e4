//! Delivery into the spool, Maildir's way: write in `tmp/`, make it durable, rename into `new/`,
//! fsync the directory. Messages pushed together share one group commit: their contents are
//! made durable together, they share a bucket, and its directories are fsynced once.

use super::durable::{self, BucketDirs, Src};
use super::groups::{GroupLock, Placed};
use super::idgen::IdGen;
use super::keys::{Claim, Place};
use super::name::{Bucket, Id, KeyHash, Ready};
use super::{Dir, Spool, at, lease, now_us};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// A commit is due once this many distinct directories wait for their fsync: each is held open
/// until then, and a long run must not run out of file descriptors.
const MAX_HELD_DIRS: usize = 128;

/// A commit of at most this many messages fsyncs each file; a larger one syncs their
/// filesystem once (`syncfs`), which costs about one fsync however many files it covers.
/// Below it, fsyncs touch only our own files, and a busy filesystem's other dirty data does not
/// delay a small push.
const FSYNC_EACH_MAX: usize = 8;

/// A commit is due once this many messages wait for it, so that a fast producer's ids come in
/// steady batches and the names held in memory stay bounded.
const MAX_GROUP: usize = 4096;

/// A message pushed without delay takes a visible-at time rounded down to a multiple of this
/// many milliseconds. It is visible at once either way, and one-shot pushes of the same 10 ms
/// then share a leaf bucket instead of each making one (a new directory inode) that the pop
/// emptying it removes again: that cost most of a shell loop's push beyond the process start.
const SLOT_MS: u64 = 10;

/// Messages of a group share a visible-at time, and so a bucket, until this many have; the
/// next ones take the time of their own slot. A pop reads a whole leaf bucket, so a
/// leaf of a whole large group would make every pop of it slower; this many keeps a pop's
/// cost flat while the group's directory fsyncs stay few.
const PER_BUCKET: usize = 128;

/// The base a message whose own slot is `slot` takes, given the group's `base` so far (its
/// time and how many took it), with the new count (FORMAT.md §5.1 step 1). A full bucket gives
/// way to the current slot. A base later than the slot (the clock was stepped back) is never
/// kept: a message must not wait beyond its delay.
fn next_base(base: Option<(u64, usize)>, slot: u64) -> (u64, usize) {
    match base {
        Some((ms, n)) if ms <= slot && (n < PER_BUCKET || ms == slot) => (ms, n + 1),
        _ => (slot, 1),
    }
}

/// A group of pushes that share one commit. Ids are handed out only by `commit`, once every
/// message before it is durable.
pub struct Batch<'a> {
    spool: &'a Spool,
    sync: bool,
    ids: IdGen,
    /// The visible-at time (ms, before the delay) that messages of this group take, and how
    /// many have taken it: one bucket whose directories are opened and fsynced once.
    base: Option<(u64, usize)>,
    /// The bucket of the last message, reused while messages share their visible-at time.
    last: Option<(u64, BucketDirs)>,
    /// Directories to fsync at commit, by (device, inode): a bucket a pop removed and a pusher
    /// made again is another directory, and both are synced.
    held: HashMap<(u64, u64), (PathBuf, File)>,
    /// Written to `tmp/`, not yet durable nor renamed (durable pushes only).
    staged: Vec<Staged>,
    /// In `new/`, their ids to print at the commit.
    pending: Vec<Id>,
    /// The copy buffer for bodies that are read, made on first use.
    buf: Vec<u8>,
    /// The dedup key of this batch's one message, locked until the batch is dropped.
    claim: Option<Claim>,
    /// Print each id as a JSON object rather than a line.
    json: bool,
    /// The group every message of this batch joins: its hash and name.
    group_of: Option<(KeyHash, Vec<u8>)>,
    /// Its lock, taken by the first rename into the group and held until the end of that
    /// commit: never across a read of the input, which may block for ever.
    group: Option<GroupLock>,
}

/// A message written to `tmp/` and waiting for the commit.
struct Staged {
    ready: Ready,
    name: String,
    /// Its file, while the commit may still fsync files one by one.
    file: Option<File>,
}

/// A message's bytes: in memory already (an argument, a line), or to be read.
pub enum Body<'b> {
    Bytes(&'b [u8]),
    Reader(&'b mut dyn Read),
}

/// Which side of a copy failed: the message's source, or its file in `tmp/`.
enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

impl<'a> Batch<'a> {
    pub fn new(spool: &'a Spool, sync: bool) -> Batch<'a> {
        Batch {
            spool,
            sync,
            ids: IdGen::new(),
            base: None,
            last: None,
            held: HashMap::new(),
            staged: Vec::new(),
            pending: Vec::new(),
            buf: Vec::new(),
            claim: None,
            json: false,
            group_of: None,
            group: None,
        }
    }

    /// Puts every message of the batch into the group `lock` holds, in order: the first as
    /// the head if none is out, the others behind it.
    pub fn set_group(&mut self, name: &[u8]) {
        self.group_of = Some((KeyHash::of(name), name.to_vec()));
    }

    /// Gives the batch's message the key `claim` holds, and records it there before the
    /// message becomes visible. The batch then holds one message.
    pub fn set_claim(&mut self, claim: Claim) {
        self.claim = Some(claim);
    }

    /// Prints ids as `{"id": ..., "pushed": true}` objects (with `key` when keyed).
    pub fn set_json(&mut self, json: bool) {
        self.json = json;
    }

    /// How many messages wait for `commit`.
    pub fn pending(&self) -> usize {
        self.staged.len() + self.pending.len()
    }

    /// Whether the group is big enough that the caller should commit now. Where `syncfs` does
    /// not report write errors (before Linux 5.8), a group never outgrows the fsync of each
    /// file.
    pub fn commit_due(&self) -> bool {
        self.pending() >= MAX_GROUP
            || (self.staged.len() >= FSYNC_EACH_MAX && !crate::os::syncfs_reports_errors())
    }

    /// Writes one message from `body` (called `source` in errors) into `tmp/`, visible
    /// `delay_ms` after its base (`SLOT_MS`, `PER_BUCKET`). Without sync it is renamed into
    /// `new/` at once; with sync, by the commit. On failure nothing of this message is left in
    /// `tmp/` or `new/`.
    pub fn add(&mut self, body: Body<'_>, source: &str, delay_ms: u64) -> Result<()> {
        let now = now_us();
        let id = self.ids.next(now);
        let now_ms = now / 1000;
        // Delayed messages keep their exact time: rounding would make them visible early.
        let slot = if delay_ms == 0 {
            now_ms - now_ms % SLOT_MS
        } else {
            now_ms
        };
        let taken = next_base(self.base, slot);
        self.base = Some(taken);
        let base = taken.0;
        let ready = Ready {
            id,
            attempts: 0,
            visible_ms: lease::deadline(base, delay_ms),
            key: self.claim.as_ref().map(Claim::hash),
            group: self.group_of.as_ref().map(|g| g.0),
        };
        let name = ready.to_string();
        let tmp_dir = self.spool.fd(Dir::Tmp)?;
        let written = durable::create_new(tmp_dir, &name)
            .map_err(CopyError::Write)
            .and_then(|mut file| {
                match body {
                    Body::Bytes(b) => file.write_all(b).map_err(CopyError::Write)?,
                    Body::Reader(r) => copy_body(r, &mut file, &mut self.buf)?,
                }
                Ok(file)
            });
        let file = match written {
            Ok(f) => f,
            Err(e) => {
                let _ = at::unlink(tmp_dir, &name);
                return Err(match e {
                    CopyError::Read(e) => anyhow::Error::new(e).context(format!("read {source}")),
                    CopyError::Write(e) => anyhow::Error::new(e).context(format!(
                        "write {}",
                        self.spool.dir(Dir::Tmp).join(&name).display()
                    )),
                });
            }
        };
        if !self.sync {
            drop(file);
            return self.rename(ready, &name);
        }
        let file = if self.staged.len() < FSYNC_EACH_MAX {
            Some(file)
        } else {
            // The commit will sync the filesystem instead: the files need not stay open.
            for s in &mut self.staged {
                s.file = None;
            }
            None
        };
        self.staged.push(Staged { ready, name, file });
        Ok(())
    }

    /// Renames `tmp/<name>` into its bucket in `new/`, keeping the bucket's directories for the
    /// commit's fsync; on failure removes the `tmp/` file.
    fn rename(&mut self, ready: Ready, name: &str) -> Result<()> {
        let tmp_dir = self.spool.fd(Dir::Tmp)?;
        let parts = Bucket::of(ready.visible_ms).parts();
        let reuse = match self.last.take() {
            Some((v, b)) if v == ready.visible_ms => Some(b),
            _ => None,
        };
        // Levels this push makes are not fsynced one by one: the commit fsyncs every level
        // before any id is printed, and an fsync here would hold a fresh, empty level open to
        // removal by pops for as long as the disk takes.
        let new_root = self.spool.dir(Dir::New);
        let src = Src { dir: tmp_dir, name };
        let new_dir = self.spool.fd(Dir::New)?;
        if let Some(claim) = &self.claim
            && let Err(e) = claim.record(Place::New(ready.clone()))
        {
            let _ = at::unlink(tmp_dir, name);
            return Err(e);
        }
        if let Some((hash, group)) = &self.group_of
            && self.group.is_none()
        {
            match self.spool.lock_group(*hash, group, true) {
                Ok(Some(g)) => self.group = Some(g),
                Ok(None) => {}
                Err(e) => {
                    let _ = at::unlink(tmp_dir, name);
                    return Err(e);
                }
            }
        }
        if let Some(g) = &mut self.group {
            let placed = g.place(tmp_dir, name, &ready, self.sync);
            // The group's directory got a `head` or a waiting message: it is fsynced with
            // the others before any id is printed.
            if self.sync && placed.is_ok() {
                let st =
                    at::fstat(g.dir()).with_context(|| format!("stat {}", g.path().display()))?;
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    self.held.entry((st.dev, st.ino))
                {
                    slot.insert((g.path().to_path_buf(), g.dir().try_clone()?));
                }
            }
            match placed {
                Ok(Placed::Head) => {}
                Ok(Placed::Waiting) => {
                    self.pending.push(ready.id);
                    return Ok(());
                }
                Err(e) => {
                    let _ = at::unlink(tmp_dir, name);
                    return Err(e);
                }
            }
        }
        match durable::rename_into_bucket(src, new_dir, &new_root, &parts, name, reuse) {
            Ok(mut bucket) => {
                // A bucket reused from the last message is held already; one opened afresh
                // (a pop may have removed the old one) is another directory.
                if self.sync && !bucket.held {
                    bucket.held = true;
                    self.hold(&bucket)
                        .with_context(|| format!("open {}", bucket.leaf().display()))?;
                }
                self.last = Some((ready.visible_ms, bucket));
                self.pending.push(ready.id);
                Ok(())
            }
            Err(e) => {
                let _ = at::unlink(tmp_dir, name);
                // The group's head is not out after all: the next message may be it.
                if let Some(g) = &mut self.group {
                    g.forget_head();
                }
                Err(e).with_context(|| {
                    format!(
                        "rename {} into {}",
                        self.spool.dir(Dir::Tmp).join(name).display(),
                        new_root
                            .join(Bucket::of(ready.visible_ms).rel_path())
                            .display()
                    )
                })
            }
        }
    }

    /// Keeps the bucket's directories open until the commit fsyncs them.
    fn hold(&mut self, bucket: &BucketDirs) -> io::Result<()> {
        for (path, dir) in bucket.dirs() {
            let st = at::fstat(dir)?;
            if let std::collections::hash_map::Entry::Vacant(slot) =
                self.held.entry((st.dev, st.ino))
            {
                slot.insert((path.clone(), dir.try_clone()?));
            }
        }
        Ok(())
    }

    /// Makes the staged files' contents durable: each file's fsync, or one `syncfs` for a
    /// large group. A failure is never retried: whatever the kernel dropped is gone.
    fn sync_staged(&self, staged: &[Staged]) -> Result<()> {
        if staged.iter().all(|s| s.file.is_some()) {
            for s in staged {
                if let Some(f) = &s.file {
                    f.sync_all().with_context(|| {
                        format!("sync {}", self.spool.dir(Dir::Tmp).join(&s.name).display())
                    })?;
                }
            }
            return Ok(());
        }
        at::syncfs(self.spool.fd(Dir::Tmp)?).with_context(|| {
            format!(
                "sync the filesystem of {}",
                self.spool.dir(Dir::Tmp).display()
            )
        })
    }

    /// fsyncs every held directory once. On failure the messages renamed so far are in `new/`
    /// but may not survive a crash: their ids are forgotten, never printed.
    fn sync_held(&mut self) -> Result<()> {
        // The fsyncs go to held descriptors, not paths: a pop may already have leased these
        // messages and removed their emptied bucket, and that must not fail the push.
        let held = std::mem::take(&mut self.held);
        // The next message into the last bucket must hold its directories again.
        if let Some((_, b)) = &mut self.last {
            b.held = false;
        }
        for (path, dir) in held.values() {
            if let Err(e) = dir.sync_all() {
                self.pending.clear();
                return Err(e).with_context(|| format!("sync {}", path.display()));
            }
        }
        Ok(())
    }

    /// Makes every added message durable, then prints their ids to `out`, one per line: the
    /// staged files' contents first (`sync_staged`), then their renames into `new/`, then one
    /// fsync per directory they went into. If a sync fails no id of the group is printed; if a
    /// rename fails, the messages renamed before it are committed and printed, those after it
    /// are removed from `tmp/`, and the error is returned.
    pub fn commit(&mut self, out: &mut dyn Write) -> Result<()> {
        self.base = None;
        let staged = std::mem::take(&mut self.staged);
        let mut failed = None;
        if !staged.is_empty() {
            if let Err(e) = self.sync_staged(&staged) {
                let tmp_dir = self.spool.fd(Dir::Tmp)?;
                for s in &staged {
                    let _ = at::unlink(tmp_dir, &s.name);
                }
                return Err(e);
            }
            let mut staged = staged.into_iter();
            while let Some(s) = staged.next() {
                drop(s.file);
                let step = self.rename(s.ready, &s.name).and_then(|()| {
                    if self.held.len() >= MAX_HELD_DIRS {
                        self.sync_held()?;
                    }
                    Ok(())
                });
                if let Err(e) = step {
                    let tmp_dir = self.spool.fd(Dir::Tmp)?;
                    for rest in staged.by_ref() {
                        let _ = at::unlink(tmp_dir, &rest.name);
                    }
                    failed = Some(e);
                    break;
                }
            }
        }
        if self.pending.is_empty() {
            // Nothing renamed: nothing to fsync, and the group's lock (whose descriptor a held
            // directory may share) goes now.
            self.group = None;
            self.held.clear();
            return failed.map_or(Ok(()), Err);
        }
        let synced = self.sync_held();
        // Durable (or failed): the group may move on, and others may push into it.
        self.group = None;
        synced?;
        // Waiting pops wake on this; best effort, as they look again on their own anyway.
        let _ = at::touch(self.spool.fd(Dir::New)?);
        // One write for the whole group: a write per id would cost a system call per message.
        let mut text = Vec::with_capacity(self.pending.len() * 48);
        for id in self.pending.drain(..) {
            if self.json {
                let key = self.claim.as_ref().map(Claim::key);
                text.extend_from_slice(pushed_json(&id, true, key).as_bytes());
            } else {
                text.extend_from_slice(id.as_str().as_bytes());
            }
            text.push(b'\n');
        }
        out.write_all(&text)
            .and_then(|()| out.flush())
            .context("write ids to standard output")?;
        failed.map_or(Ok(()), Err)
    }
}

/// One `push --json` object: the id, whether this push added it (`false`: its key was held
/// already, and this is the holder's id), and the key when there is one.
pub fn pushed_json(id: &Id, pushed: bool, key: Option<&[u8]>) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("id".into(), id.as_str().into());
    obj.insert("pushed".into(), pushed.into());
    if let Some(k) = key {
        obj.insert("key".into(), String::from_utf8_lossy(k).into_owned().into());
    }
    serde_json::Value::Object(obj).to_string()
}

/// Streams the body into the file through `buf` (made once per batch), so a payload of any
/// size passes in constant memory.
fn copy_body(body: &mut dyn Read, file: &mut File, buf: &mut Vec<u8>) -> Result<(), CopyError> {
    if buf.is_empty() {
        buf.resize(64 * 1024, 0);
    }
    loop {
        let n = match body.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        file.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

#[cfg(test)]
mod tests {
    use super::{PER_BUCKET, next_base};

    #[test]
    fn a_group_shares_its_base_until_the_bucket_is_full_then_takes_its_own_slot() {
        assert_eq!(next_base(None, 1_000), (1_000, 1));
        assert_eq!(next_base(Some((1_000, 5)), 1_010), (1_000, 6));
        // Full: a later slot starts a new base; the same slot keeps filling the one it has.
        assert_eq!(next_base(Some((1_000, PER_BUCKET)), 1_010), (1_010, 1));
        assert_eq!(
            next_base(Some((1_000, PER_BUCKET)), 1_000),
            (1_000, PER_BUCKET + 1)
        );
    }

    #[test]
    fn a_base_later_than_the_slot_is_dropped_after_the_clock_steps_back() {
        assert_eq!(next_base(Some((5_000, 3)), 1_000), (1_000, 1));
        assert_eq!(next_base(Some((5_000, PER_BUCKET)), 1_000), (1_000, 1));
    }
}

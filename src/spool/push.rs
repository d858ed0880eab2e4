//! Delivery into the spool, Maildir's way: write in `tmp/`, fsync, rename into `new/`, fsync the
//! directory. Messages pushed together share one group commit of the directories they touched.

use super::durable::{self, BucketDirs, Src};
use super::idgen::IdGen;
use super::name::{Bucket, Id, Ready};
use super::{Dir, Spool, at, lease, now_us};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// A commit is due once this many distinct directories wait for their fsync: each is held open
/// until then, and a long `--lines` run must not run out of file descriptors.
const MAX_HELD_DIRS: usize = 128;

/// A group of pushes whose directory fsyncs are shared. Ids are handed out only by `commit`,
/// once every message before it is durable.
pub struct Batch<'a> {
    spool: &'a Spool,
    sync: bool,
    ids: IdGen,
    /// The bucket of the last message, reused while messages share their millisecond.
    last: Option<(u64, BucketDirs)>,
    /// Directories to fsync at commit, by (device, inode): a bucket a pop removed and a pusher
    /// made again is another directory, and both are synced.
    held: HashMap<(u64, u64), (PathBuf, File)>,
    pending: Vec<Id>,
    /// The copy buffer for bodies that are read, made on first use.
    buf: Vec<u8>,
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
            last: None,
            held: HashMap::new(),
            pending: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// How many messages wait for `commit`.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether enough directories are held open that the caller should commit now.
    pub fn commit_due(&self) -> bool {
        self.held.len() >= MAX_HELD_DIRS
    }

    /// Writes one message from `body` (called `source` in errors) and renames it into `new/`,
    /// visible `delay_ms` from now. On failure nothing of this message is left in `tmp/` or
    /// `new/`.
    pub fn add(&mut self, body: Body<'_>, source: &str, delay_ms: u64) -> Result<()> {
        let now = now_us();
        let id = self.ids.next(now);
        let ready = Ready {
            id,
            attempts: 0,
            visible_ms: lease::at(now / 1000, delay_ms),
        };
        let name = ready.to_string();
        let tmp_dir = self.spool.fd(Dir::Tmp);
        let tmp = || self.spool.dir(Dir::Tmp).join(&name);
        let written = durable::create_new(tmp_dir, &name)
            .map_err(CopyError::Write)
            .and_then(|mut file| {
                match body {
                    Body::Bytes(b) => file.write_all(b).map_err(CopyError::Write)?,
                    Body::Reader(r) => copy_body(r, &mut file, &mut self.buf)?,
                }
                if self.sync {
                    file.sync_all().map_err(CopyError::Write)?;
                }
                Ok(())
            });
        if let Err(e) = written {
            let _ = at::unlink(tmp_dir, &name);
            return Err(match e {
                CopyError::Read(e) => anyhow::Error::new(e).context(format!("read {source}")),
                CopyError::Write(e) => {
                    anyhow::Error::new(e).context(format!("write {}", tmp().display()))
                }
            });
        }
        let parts = Bucket::of(ready.visible_ms).parts();
        let reuse = match self.last.take() {
            Some((v, b)) if v == ready.visible_ms => Some(b),
            _ => None,
        };
        // Levels this push makes are not fsynced one by one: the commit fsyncs every level
        // before any id is printed, and an fsync here would hold a fresh, empty level open to
        // removal by pops for as long as the disk takes.
        let new_root = self.spool.dir(Dir::New);
        let src = Src {
            dir: tmp_dir,
            name: &name,
        };
        let new_dir = self.spool.fd(Dir::New);
        match durable::rename_into_bucket(src, new_dir, &new_root, &parts, &name, false, reuse) {
            Ok(bucket) => {
                if self.sync {
                    self.hold(&bucket)
                        .with_context(|| format!("open {}", bucket.leaf().display()))?;
                }
                self.last = Some((ready.visible_ms, bucket));
                self.pending.push(ready.id);
                Ok(())
            }
            Err(e) => {
                let _ = at::unlink(tmp_dir, &name);
                Err(e).with_context(|| {
                    format!(
                        "rename {} into {}",
                        tmp().display(),
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

    /// Makes every added message durable (one fsync per directory they went through), then
    /// prints their ids to `out`, one per line. If a directory fsync fails no id is printed:
    /// those messages are in `new/` but may not survive a crash, as `docs/FORMAT.md` describes.
    pub fn commit(&mut self, out: &mut dyn Write) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // The fsyncs go to held descriptors, not paths: a pop may already have leased these
        // messages and removed their emptied bucket, and that must not fail the push.
        let held = std::mem::take(&mut self.held);
        for (path, dir) in held.values() {
            if let Err(e) = dir.sync_all() {
                // These messages are in new/ but may not survive a crash: their ids are never
                // printed, so nobody takes them for durable.
                self.pending.clear();
                return Err(e).with_context(|| format!("sync {}", path.display()));
            }
        }
        // Waiting pops wake on this; best effort, as they look again on their own anyway.
        let _ = at::touch(self.spool.fd(Dir::New));
        // One write for the whole group: stdout is line-buffered, and a write per id would
        // cost a system call per message.
        let mut text = Vec::with_capacity(self.pending.len() * 48);
        for id in self.pending.drain(..) {
            text.extend_from_slice(id.as_str().as_bytes());
            text.push(b'\n');
        }
        out.write_all(&text)
            .and_then(|()| out.flush())
            .context("write ids to standard output")?;
        Ok(())
    }
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

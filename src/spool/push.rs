//! Delivery into the spool, Maildir's way: write in `tmp/`, fsync, rename into `new/`, fsync the
//! directory. Messages pushed together share one group commit of the directories they touched.

use super::durable;
use super::idgen::IdGen;
use super::name::{Bucket, Id, Ready};
use super::{Dir, Spool, lease, now_us};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// A group of pushes whose directory fsyncs are shared. Ids are handed out only by `commit`,
/// once every message before it is durable.
pub struct Batch {
    sync: bool,
    ids: IdGen,
    new_root: PathBuf,
    tmp_dir: PathBuf,
    touched: BTreeSet<PathBuf>,
    pending: Vec<Id>,
}

impl Batch {
    pub fn new(spool: &Spool, sync: bool) -> Batch {
        Batch {
            sync,
            ids: IdGen::new(),
            new_root: spool.dir(Dir::New),
            tmp_dir: spool.dir(Dir::Tmp),
            touched: BTreeSet::new(),
            pending: Vec::new(),
        }
    }

    /// How many messages wait for `commit`.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Writes one message from `body` and renames it into `new/`, visible `delay_ms` from now.
    /// On failure nothing of this message is left in `tmp/` or `new/`.
    pub fn add(&mut self, body: &mut dyn Read, delay_ms: u64) -> Result<()> {
        let now = now_us();
        let id = self.ids.next(now);
        let ready = Ready {
            id,
            attempts: 0,
            visible_ms: lease::at(now / 1000, delay_ms),
        };
        let name = ready.to_string();
        let tmp = self.tmp_dir.join(&name);
        let mut write = || -> io::Result<()> {
            let mut file = durable::create_new(&tmp)?;
            copy_body(body, &mut file)?;
            if self.sync {
                file.sync_all()?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("write {}", tmp.display()));
        }
        let parts = Bucket::of(ready.visible_ms).parts();
        match durable::rename_into_bucket(&tmp, &self.new_root, &parts, &name, self.sync) {
            Ok(leaf) => {
                self.touched.insert(leaf);
                self.pending.push(ready.id);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e).with_context(|| {
                    format!(
                        "rename {} into {}",
                        tmp.display(),
                        self.new_root
                            .join(Bucket::of(ready.visible_ms).rel_path())
                            .display()
                    )
                })
            }
        }
    }

    /// Makes every added message durable (one fsync per touched directory), then prints their
    /// ids to `out`, one per line. If a directory fsync fails no id is printed: those messages
    /// are in `new/` but may not survive a crash, as `docs/FORMAT.md` describes.
    pub fn commit(&mut self, out: &mut dyn Write) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.sync {
            let mut synced = BTreeSet::new();
            for leaf in self.touched.clone() {
                let mut dir = Some(leaf.as_path());
                while let Some(d) = dir {
                    if synced.insert(d.to_path_buf())
                        && let Err(e) = durable::sync_dir(d)
                    {
                        // These messages are in new/ but may not survive a crash: their ids
                        // are never printed, so nobody takes them for durable.
                        self.pending.clear();
                        self.touched.clear();
                        return Err(e).with_context(|| format!("sync {}", d.display()));
                    }
                    if d == self.new_root {
                        break;
                    }
                    dir = d.parent();
                }
            }
        }
        self.touched.clear();
        for id in self.pending.drain(..) {
            writeln!(out, "{id}").context("write ids to standard output")?;
        }
        out.flush().context("write ids to standard output")?;
        Ok(())
    }
}

/// Streams the body into the file, so a payload of any size passes in constant memory.
fn copy_body(body: &mut dyn Read, file: &mut std::fs::File) -> io::Result<u64> {
    io::copy(body, file)
}

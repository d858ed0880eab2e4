//! `leased/`'s bucket tree by expiry: where a lease's file is, from its name alone (or, for a
//! lease an earlier release wrote flat, in `leased/` itself), and the walks of the tree: the
//! reclaim that looks only at buckets whose time has passed, and the full one that counts.

use super::at::{self, Stat};
use super::durable::{self, BucketDirs, Src, is_missing};
use super::lease;
use super::name::{LEASED_DEPTH, Leased, lease_bucket_start, lease_parts};
use super::ready::remove_if_settled;
use super::transition::Released;
use super::walk::{self, Listed, Node, NotBucket, Visit};
use super::{Dir, Spool};
use anyhow::{Context, Result};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What `reclaim_expired` did, and when the next lease it saw will expire.
#[derive(Debug, Default)]
pub struct Reclaimed {
    pub moved: Vec<(super::name::Id, Released)>,
    /// No later than the earliest expiry of a lease still live (the start of the first bucket
    /// in the future, when the walk did not enter it); `None` when there is none.
    pub next_expiry_ms: Option<u64>,
}

/// One entry of `leased/`'s tree, as a walk met it.
pub struct Entry<'a> {
    /// The directory that holds it (a bucket, or `leased/` itself) and that directory's path.
    pub dir: &'a File,
    pub dir_path: &'a Path,
    pub name: &'a OsStr,
    /// The lease its name is, when it is a leased-name in its own bucket, or a flat lease in
    /// `leased/` itself; `None` for anything else (foreign).
    pub lease: Option<Leased>,
}

impl Entry<'_> {
    /// Its `lstat`; `None` when another process moved it since the listing.
    pub fn stat(&self) -> Result<Option<Stat>> {
        let c = CString::new(self.name.as_bytes()).unwrap_or_default();
        match at::stat_c(self.dir, &c) {
            Ok(st) => Ok(Some(st)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => {
                Err(e).with_context(|| format!("lstat {}", self.dir_path.join(self.name).display()))
            }
        }
    }
}

/// Where `rename_to_lease` put a lease: in its bucket (kept for the next lease of the same
/// second), or flat in `leased/`; and whether the bucket levels it made were fsynced. When
/// they were not, the lease exists (and is the caller's), but a crash could undo it.
pub struct Placed {
    pub bucket: Option<BucketDirs>,
    pub synced: io::Result<()>,
}

impl Spool {
    /// Renames `src` to lease `to`: into the bucket of its expiry, made when missing (`reuse`:
    /// that bucket, opened by the last lease), then fsyncs the parents of the levels it made.
    /// When no bucket can be made because the filesystem is out of space or inodes (`ENOSPC`,
    /// `EDQUOT`), the lease goes flat into `leased/` itself, where the earlier layout put every
    /// lease: a full disk must still drain, and a rename needs no new inode. `NotFound`: `src`
    /// is gone, somebody else moved it first.
    pub(crate) fn rename_to_lease(
        &self,
        src: Src<'_>,
        to: &Leased,
        reuse: Option<BucketDirs>,
    ) -> io::Result<Placed> {
        let leased = self.fd(Dir::Leased)?;
        let name = to.to_string();
        let moved = durable::rename_into_bucket(
            src,
            leased,
            &self.dir(Dir::Leased),
            &lease_parts(to.expires_ms),
            &name,
            reuse,
        );
        match moved {
            Ok(mut bucket) => {
                let synced = bucket.sync_made_once();
                Ok(Placed {
                    bucket: Some(bucket),
                    synced,
                })
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => {
                at::rename_noreplace(src.dir, src.name, leased, &name)?;
                Ok(Placed {
                    bucket: None,
                    synced: Ok(()),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// A lease's path, for what is said to people (a receipt is a lease's name, and its
    /// bucket follows from its expiry).
    pub fn leased_path(&self, r: &Leased) -> PathBuf {
        let [a, b] = lease_parts(r.expires_ms);
        self.dir(Dir::Leased).join(a).join(b).join(r.to_string())
    }

    /// Where a lease found by a walk is, for what is said to people: its bucket's path, or
    /// `leased/` itself for a flat lease of the earlier layout that is there, whatever it is.
    pub fn found_lease_path(&self, r: &Leased) -> PathBuf {
        let flat = self.dir(Dir::Leased).join(r.to_string());
        let in_bucket = || {
            let parts = lease_parts(r.expires_ms);
            let dir = durable::open_bucket(self.fd(Dir::Leased)?, &parts)?;
            at::stat(&dir, &r.to_string())
        };
        let is_flat = || at::stat(self.fd(Dir::Leased)?, &r.to_string());
        if in_bucket().is_err() && is_flat().is_ok() {
            flat
        } else {
            self.leased_path(r)
        }
    }

    /// The directory that holds lease `r`'s file: its bucket, or `leased/` itself for a flat
    /// lease of the earlier layout. `None` when neither holds it: the lease is no longer held.
    /// A bucket level or an entry under the receipt that is not what it should be (a link, a
    /// directory) is an error naming it, never followed.
    pub(crate) fn lease_dir(&self, r: &Leased) -> Result<Option<File>> {
        let name = r.to_string();
        let leased = self.fd(Dir::Leased)?;
        let parts = lease_parts(r.expires_ms);
        let bucket_path = self.dir(Dir::Leased).join(&parts[0]).join(&parts[1]);
        match durable::open_bucket(leased, &parts) {
            Ok(dir) => match durable::lstat_plain(&dir, &name) {
                Ok(_) => return Ok(Some(dir)),
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(e).context(bucket_path.join(&name).display().to_string()),
            },
            Err(e) if is_missing(&e) => {}
            Err(e) => {
                return Err(durable::not_a_dir(e, &bucket_path))
                    .with_context(|| format!("open {}", bucket_path.display()));
            }
        }
        match durable::lstat_plain(leased, &name) {
            Ok(_) => Ok(Some(leased.try_clone().context("duplicate a descriptor")?)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e).context(self.dir(Dir::Leased).join(&name).display().to_string()),
        }
    }

    /// `open_payload` of a lease this process holds: what `pop` and `work` hand out.
    pub fn open_leased(&self, l: &Leased) -> io::Result<(File, u64)> {
        let parts = lease_parts(l.expires_ms);
        let name = l.to_string();
        match durable::open_bucket(self.fd(Dir::Leased)?, &parts) {
            Ok(dir) => match durable::open_message(&dir, &name) {
                Err(e) if is_missing(&e) => {}
                other => return other,
            },
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(durable::not_a_dir(e, &self.leased_path(l))),
        }
        durable::open_message(self.fd(Dir::Leased)?, &name)
    }

    /// Returns every lease expired at `now` to `new/` (or `dead/` after its last attempt).
    /// Only buckets whose first millisecond has passed are listed: with no lease expired, this
    /// costs a listing of `leased/` and of the current thousand seconds' bucket, whatever the
    /// number of live leases. Leases that somebody else moves first are skipped: the rename
    /// decides. A lease that cannot be moved (say, a foreign file blocks its bucket in `new/`)
    /// is passed to `failed` and the others still go: one bad entry must not stop the
    /// reclaiming, nor the pop that does it. `ours`: leases the caller holds and keeps alive
    /// itself (a worker's running CMDs), which are never reclaimed by it, however short.
    pub fn reclaim_expired(
        &self,
        now: u64,
        ours: &dyn Fn(&Leased) -> bool,
        failed: &mut dyn FnMut(anyhow::Error),
    ) -> Result<Reclaimed> {
        let mut expired = Vec::new();
        let mut next = None;
        let mut bad = Vec::new();
        let later = self.walk_leases(Some(now), Some(&mut bad), &mut |e| {
            let Some(l) = e.lease else {
                return Ok(());
            };
            if ours(&l) {
                return Ok(());
            }
            if !lease::is_expired(l.expires_ms, now) {
                next = lease::earliest(next, Some(l.expires_ms));
                return Ok(());
            }
            // A foreign file under a lease-shaped name is reported by `stats`, never moved.
            if durable::lstat_plain(e.dir, &l.to_string()).is_ok() {
                expired.push(l);
            }
            Ok(())
        })?;
        // A bucket that cannot be read is reported, and does not keep the others' expired
        // leases from going back.
        for e in bad {
            failed(e);
        }
        // Oldest expiry first: they reach `new/` in the order their leases ran out.
        expired.sort_by_key(|l| l.expires_ms);
        let mut done = Reclaimed {
            moved: Vec::new(),
            next_expiry_ms: lease::earliest(next, later),
        };
        for r in expired {
            match self.release(&r, 0) {
                Ok(Some(to)) => done.moved.push((r.id, to)),
                Ok(None) => {}
                Err(e) => failed(e.context(format!("reclaim expired lease of {}", r.id))),
            }
        }
        Ok(done)
    }

    /// Calls `f` with every entry of `leased/`'s tree (flat leases in `leased/` itself too),
    /// bucket by bucket in time order. With `until`, buckets that start after it are passed
    /// by, and empty buckets whose time has passed are removed, so that later walks do not list
    /// them again; it returns the earliest start of the buckets it passed by. With `bad`, a
    /// bucket that cannot be opened or listed goes there and the walk goes on; without, it
    /// ends the walk as an error.
    pub(crate) fn walk_leases(
        &self,
        until: Option<u64>,
        bad: Option<&mut Vec<anyhow::Error>>,
        f: &mut dyn FnMut(Entry<'_>) -> Result<()>,
    ) -> Result<Option<u64>> {
        let path = self.dir(Dir::Leased);
        let mut v = Leases {
            until,
            next: None,
            bad,
            f,
        };
        walk::walk(
            &walk::top(self.fd(Dir::Leased)?, &path, LEASED_DEPTH),
            &mut v,
        )?;
        Ok(v.next)
    }
}

/// A walk of `leased/`'s tree: see `walk_leases`.
struct Leases<'f, 'g, 'b> {
    until: Option<u64>,
    next: Option<u64>,
    bad: Option<&'b mut Vec<anyhow::Error>>,
    f: &'f mut (dyn FnMut(Entry<'_>) -> Result<()> + 'g),
}

impl Visit for Leases<'_, '_, '_> {
    type Stop = std::convert::Infallible;

    fn bucket(&mut self, b: &Listed<'_>) -> ControlFlow<Self::Stop, bool> {
        match self.until {
            Some(now) if b.start > now => {
                self.next = lease::earliest(self.next, Some(b.start));
                ControlFlow::Continue(false)
            }
            _ => ControlFlow::Continue(true),
        }
    }

    fn foreign(&mut self, parent: &Node<'_>, name: &OsStr, why: NotBucket) -> Result<()> {
        // In `leased/` itself, a leased-name is a lease an earlier release wrote flat: still a
        // lease, acked, extended, reclaimed and counted like the others.
        let flat = parent.level == 0 && why == NotBucket::Name;
        let lease = name
            .to_str()
            .filter(|_| flat)
            .and_then(|n| Leased::parse(n).ok());
        (self.f)(Entry {
            dir: parent.dir,
            dir_path: parent.path,
            name,
            lease,
        })
    }

    fn leaf(&mut self, leaf: &Node<'_>) -> Result<ControlFlow<Self::Stop>> {
        let mut names = Vec::new();
        at::for_each_raw(leaf.dir, |name, _| names.push(name.to_vec()))
            .with_context(|| format!("list {}", leaf.path.display()))?;
        for raw in &names {
            let name = OsStr::from_bytes(raw);
            // The bucket is the expiry's second; a name that disagrees with it is foreign.
            let lease = name
                .to_str()
                .and_then(|n| Leased::parse(n).ok())
                .filter(|l| lease_bucket_start(l.expires_ms) == leaf.base);
            (self.f)(Entry {
                dir: leaf.dir,
                dir_path: leaf.path,
                name,
                lease,
            })?;
        }
        Ok(ControlFlow::Continue(()))
    }

    fn failed(&mut self, e: anyhow::Error) -> Result<()> {
        match self.bad.as_deref_mut() {
            Some(bad) => {
                bad.push(e);
                Ok(())
            }
            None => Err(e),
        }
    }

    /// As in `new/`: an empty bucket goes once its time and a grace have passed, so that one
    /// a lease or an extension is making, level by level, does not vanish under it (one that
    /// loses that race anyway makes it again).
    fn left(&mut self, child: &Node<'_>) {
        if let Some(now) = self.until {
            remove_if_settled(child, now);
        }
    }
}

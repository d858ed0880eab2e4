//! Every state change after push, each one `rename(2)` of one file from an exact source name.
//!
//! The exact source name is the fence: a receipt whose lease was reclaimed, re-leased, acked or
//! extended names a file that no longer exists, so its rename fails and nothing moves.

use super::durable::{self, Src, is_missing};
use super::keys::Place;
use super::lease::{self, Release};
use super::name::{Bucket, Ended, Id, KeyHash, Leased, Ready};
use super::{Dir, Spool, at, now_ms};
use anyhow::{Context, Result};
use std::fs::File;
use std::path::PathBuf;

/// A move into `new/` that happened, but whose new bucket levels could not be fsynced: the
/// message is there and may be taken, yet a crash could still put it back where it was (which
/// at-least-once allows: it is then delivered again, never lost).
#[derive(Debug)]
pub struct NotDurable {
    pub moved_to: PathBuf,
    pub err: std::io::Error,
}

impl std::fmt::Display for NotDurable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "moved to {}, but not durably: sync its bucket: {}",
            self.moved_to.display(),
            self.err
        )
    }
}

impl std::error::Error for NotDurable {}

/// Where a released lease went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Released {
    Requeued { visible_ms: u64 },
    Dead,
}

impl Spool {
    /// leased → done. `false` when the lease is no longer held.
    pub fn ack(&self, r: &Leased) -> Result<bool> {
        let done = Ended {
            id: r.id.clone(),
            attempts: r.attempt,
            at_ms: now_ms(),
            key: r.key,
            group: r.group,
        };
        self.move_leased(r, Dir::Done, &done)
    }

    /// leased → dead on purpose, whatever attempts remain (a poison message).
    pub fn bury(&self, r: &Leased) -> Result<bool> {
        self.move_leased(
            r,
            Dir::Dead,
            &self.dead_name(&r.id, r.attempt, (r.key, r.group)),
        )
    }

    /// Ends a lease without an ack: back to `new/` after `delay_ms`, or to `dead/` after the last
    /// attempt. `None` when the lease is no longer held.
    pub fn release(&self, r: &Leased, delay_ms: u64) -> Result<Option<Released>> {
        let now = now_ms();
        match lease::on_release(r.attempt, self.config.max_attempts, now, delay_ms) {
            Release::DeadLetter => Ok(self.bury(r)?.then_some(Released::Dead)),
            Release::Requeue { visible_ms } => {
                let ready = Ready {
                    id: r.id.clone(),
                    attempts: r.attempt,
                    visible_ms,
                    key: r.key,
                    group: r.group,
                };
                let name = r.to_string();
                let Some(from) = self.lease_dir(r)? else {
                    return Ok(None);
                };
                let _held = self.hold_group(r.group);
                match self.rename_to_new(&from, &name, &ready, true) {
                    Ok(Ok(())) => Ok(Some(Released::Requeued { visible_ms })),
                    Ok(Err(not_durable)) => Err(anyhow::Error::new(not_durable)
                        .context(format!("requeue {}", self.leased_path(r).display()))),
                    Err(e) if is_missing(&e) => Ok(None),
                    Err(e) => {
                        Err(e).with_context(|| format!("requeue {}", self.leased_path(r).display()))
                    }
                }
            }
        }
    }

    /// Gives a lease back as if it had never been taken: the attempt is not counted and the
    /// message is visible at once. Only for a lease whose payload reached nobody (its CMD could
    /// not be started). `false` when the lease is no longer held.
    pub fn unlease(&self, r: &Leased) -> Result<bool> {
        let ready = Ready {
            id: r.id.clone(),
            attempts: r.attempt.saturating_sub(1),
            visible_ms: now_ms(),
            key: r.key,
            group: r.group,
        };
        let name = r.to_string();
        let Some(from) = self.lease_dir(r)? else {
            return Ok(false);
        };
        let _held = self.hold_group(r.group);
        match self.rename_to_new(&from, &name, &ready, true) {
            Ok(Ok(())) => Ok(true),
            Ok(Err(not_durable)) => Err(anyhow::Error::new(not_durable)
                .context(format!("give back {}", self.leased_path(r).display()))),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => {
                Err(e).with_context(|| format!("give back {}", self.leased_path(r).display()))
            }
        }
    }

    /// Replaces a lease by a new one expiring `lease_ms` from now, in the bucket of its new
    /// expiry: one rename. The old receipt dies with it. With the new lease comes, when the
    /// bucket levels the rename made could not be fsynced, why: the lease is held under its
    /// new receipt all the same, but a crash could undo the move.
    pub fn extend(
        &self,
        r: &Leased,
        lease_ms: u64,
    ) -> Result<Option<(Leased, Option<NotDurable>)>> {
        let next = Leased {
            id: r.id.clone(),
            attempt: r.attempt,
            expires_ms: lease::deadline(now_ms(), lease_ms),
            token: super::idgen::random_u64(),
            key: r.key,
            group: r.group,
        };
        let Some(from) = self.lease_dir(r)? else {
            return Ok(None);
        };
        let src = r.to_string();
        let held = self.hold_group(r.group);
        let moved = self.rename_to_lease(
            Src {
                dir: &from,
                name: &src,
            },
            &next,
            None,
        );
        match moved {
            Ok(placed) => {
                drop(held);
                if next.key.is_some() {
                    self.key_moved(Place::Leased(next.clone()));
                }
                let not_durable = placed.synced.err().map(|err| NotDurable {
                    moved_to: self.leased_path(&next),
                    err,
                });
                Ok(Some((next, not_durable)))
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("extend {}", self.leased_path(r).display())),
        }
    }

    /// dead → new (or, `from` done/, done → new) with the attempt count reset and the id
    /// unchanged. `false` when it was not there.
    pub fn replay(&self, from: Dir, ended: &Ended) -> Result<bool> {
        debug_assert!(matches!(from, Dir::Dead | Dir::Done));
        let name = ended.to_string();
        if !self.check_source(from, &name)? {
            return Ok(false);
        }
        let ready = Ready {
            id: ended.id.clone(),
            attempts: 0,
            visible_ms: now_ms(),
            key: ended.key,
            group: ended.group,
        };
        let path = self.dir(from).join(&name);
        // A grouped message rejoins its group, behind its head if one is out; as the head, it
        // moves under the group's lock.
        // A keyed message takes its key again, first (the key's lock before the group's, as
        // a push takes them), held locked across the move.
        let _key = self.key_replaying(&ready);
        let rejoined = match self.group_rejoin(self.fd(from)?, &name, &ready) {
            Ok(r) => r,
            // Replayed by another process meanwhile.
            Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(is_missing) => {
                return Ok(false);
            }
            Err(e) => return Err(e.context(format!("replay {}", path.display()))),
        };
        let Some(mut lock) = rejoined else {
            return Ok(true);
        };
        // The record was pointed there already, under a lock this process holds.
        let moved = self.rename_to_new(self.fd(from)?, &name, &ready, false);
        if !matches!(moved, Ok(Ok(()))) {
            // The head that was not made visible after all.
            if let Some(g) = &mut lock {
                g.forget_head();
            }
        }
        match moved {
            Ok(Ok(())) => Ok(true),
            Ok(Err(not_durable)) => {
                Err(anyhow::Error::new(not_durable).context(format!("replay {}", path.display())))
            }
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("replay {}", path.display())),
        }
    }

    /// Removes the acked messages whose time in `done/` is past the spool's `retain_done_ms` at
    /// `now`, passing each one's id to `removed`. Only plain files under done-names are removed;
    /// one that cannot be removed is passed to `failed` and the others still go.
    pub fn expire_done(
        &self,
        now: u64,
        removed: &mut dyn FnMut(Id) -> Result<()>,
        failed: &mut dyn FnMut(anyhow::Error),
    ) -> Result<()> {
        // Streamed, not listed first: done/ may hold a day of traffic.
        let mut result = Ok(());
        at::for_each(self.fd(Dir::Done)?, |name, _| {
            if result.is_err() {
                return;
            }
            let Some(e) = name.and_then(|n| Ended::parse(n).ok()) else {
                return;
            };
            if !self.past_retention(&e, now) {
                return;
            }
            match self.remove_done(&e) {
                Ok(()) => result = removed(e.id),
                Err(err) if is_missing(&err) => {}
                Err(err) => failed(anyhow::Error::new(err).context(format!(
                    "remove {}",
                    self.dir(Dir::Done).join(e.to_string()).display()
                ))),
            }
        })
        .with_context(|| format!("list {}", self.dir(Dir::Done).display()))?;
        result
    }

    /// Whether an acked message is past the spool's retention at `now`.
    fn past_retention(&self, done: &Ended, now: u64) -> bool {
        done.at_ms.saturating_add(self.config.retain_done_ms) <= now
    }

    /// Deletes `done/<done>`, a plain file only: a foreign entry under that name is refused.
    fn remove_done(&self, done: &Ended) -> std::io::Result<()> {
        durable::remove_plain(self.fd(Dir::Done)?, &done.to_string())
    }

    /// Rings the doorbell: touches `new/`, which waiting pops watch, after a message went in.
    /// Best effort: a waiter that misses it still looks again within `wait::RECHECK`.
    pub(crate) fn ring(&self) {
        if let Ok(new) = self.fd(Dir::New) {
            let _ = at::touch(new);
        }
    }

    fn dead_name(&self, id: &Id, attempts: u32, tags: (Option<KeyHash>, Option<KeyHash>)) -> Ended {
        Ended {
            id: id.clone(),
            attempts,
            at_ms: now_ms(),
            key: tags.0,
            group: tags.1,
        }
    }

    /// Renames `leased/<r>` to `<to>/<ended>`. `false` when the source is gone.
    fn move_leased(&self, r: &Leased, to: Dir, ended: &Ended) -> Result<bool> {
        let src = r.to_string();
        let name = &ended.to_string();
        let Some(from) = self.lease_dir(r)? else {
            return Ok(false);
        };
        match at::rename_noreplace(&from, &src, self.fd(to)?, name) {
            Ok(()) => {
                if ended.key.is_some() {
                    self.key_moved(if to == Dir::Done {
                        Place::Done(ended.clone())
                    } else {
                        Place::Dead(ended.clone())
                    });
                }
                if let Some(g) = ended.group {
                    self.group_ended(g, &ended.id);
                }
                Ok(true)
            }
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "rename {} to {}",
                    self.leased_path(r).display(),
                    self.dir(to).join(name).display()
                )
            }),
        }
    }

    /// `false` when `<dir>/<name>` does not exist; an error when it exists but is not a plain
    /// file.
    fn check_source(&self, dir: Dir, name: &str) -> Result<bool> {
        match durable::lstat_plain(self.fd(dir)?, name) {
            Ok(_) => Ok(true),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| self.dir(dir).join(name).display().to_string()),
        }
    }

    /// Renames `<from>/<name>` into its bucket under `new/`, rings the doorbell, then fsyncs the
    /// parents of the bucket levels it made, since a rename that outlived a crash must not
    /// point into a directory that did not. `Ok(Err(_))`: the message has moved, and may be
    /// taken at once, but that fsync failed, so a crash could still undo the move.
    fn rename_to_new(
        &self,
        from: &File,
        name: &str,
        ready: &Ready,
        note_key: bool,
    ) -> std::io::Result<std::result::Result<(), NotDurable>> {
        let bucket = durable::rename_into_bucket(
            Src { dir: from, name },
            self.fd(Dir::New)?,
            &self.dir(Dir::New),
            &Bucket::of(ready.visible_ms).parts(),
            &ready.to_string(),
            None,
        )?;
        if note_key && ready.key.is_some() {
            self.key_moved(Place::New(ready.clone()));
        }
        self.ring();
        Ok(bucket.sync_made().map_err(|err| NotDurable {
            moved_to: bucket.leaf().join(ready.to_string()),
            err,
        }))
    }

    /// The UTF-8 names in a state directory; others cannot be ours and are skipped.
    pub fn list_names(&self, d: Dir) -> Result<Vec<String>> {
        at::names(self.fd(d)?).with_context(|| format!("list {}", self.dir(d).display()))
    }
}

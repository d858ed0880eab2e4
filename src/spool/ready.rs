//! Finding and leasing the message that has been visible longest, without listing all of `new/`.
//!
//! `new/` is a three-level tree of buckets by visible-at millisecond. A pop walks it in order,
//! listing one directory per level, and stops at the first bucket that lies in the future: the
//! work done is bounded by the bucket fan-out and by one millisecond's worth of messages, not by
//! the queue's depth.

use super::durable::{self, BucketDirs, Src, is_missing};
use super::keys::Place;
use super::lease;
use super::name::{BUCKET_SPANS, Ended, Leased, NEW_DEPTH, Ready, lease_bucket_start};
use super::walk::{self, Listed, Node, NotBucket, Visit};
use super::{Dir, Spool, at};
use anyhow::{Context, Result};
use std::ffi::OsStr;
use std::fs::File;
use std::ops::ControlFlow;
use std::path::Path;

/// A message that this process now holds the lease of.
pub struct Lease {
    pub leased: Leased,
    pub enqueued_us: u64,
}

/// What a look for the next message found.
pub enum Take {
    Leased(Lease),
    /// Nothing is visible now. `next_ms`: when the earliest delayed message may become visible
    /// (an instant no later than its visible-at); `None` when nothing is delayed either.
    Nothing {
        next_ms: Option<u64>,
    },
}

/// What one walk is after, and what it has leased so far.
struct Want<'v> {
    now: u64,
    lease_ms: u64,
    max: usize,
    got: &'v mut Vec<Lease>,
    /// The `leased/` bucket the last lease went into, by its first millisecond: a batch's
    /// leases share their expiry, and so one bucket, opened once.
    bucket: Option<(u64, BucketDirs)>,
}

/// Why a walk stopped before the end of the tree.
enum Step {
    /// It leased as many messages as were wanted.
    Full,
    /// The earliest remaining bucket starts at this instant, after `now`: nothing is visible.
    Future(u64),
}

impl Spool {
    /// Leases the longest-visible message for `lease_ms`. Messages that have used up their
    /// attempts are dead-lettered on the way. When nothing is visible at `now`, says when to
    /// look again: the start of the first bucket in the future, which costs nothing more to find.
    pub fn take(&self, now: u64, lease_ms: u64) -> Result<Take> {
        let mut got = Vec::with_capacity(1);
        let next_ms = match self.take_many(now, lease_ms, 1, &mut got) {
            Ok(next) => next,
            Err(e) => {
                // A lease taken before the failure reaches nobody: give it back at once.
                for l in &got {
                    let _ = self.release(&l.leased, 0);
                }
                return Err(e);
            }
        };
        Ok(match got.pop() {
            Some(l) => Take::Leased(l),
            None => Take::Nothing { next_ms },
        })
    }

    /// Leases up to `max` of the longest-visible messages, in queue order, into `got`, in one
    /// walk of the tree: a batch costs one listing per bucket, not one walk per message. When
    /// it got fewer, returns the start of the first bucket in the future, if any.
    pub fn take_many(
        &self,
        now: u64,
        lease_ms: u64,
        max: usize,
        got: &mut Vec<Lease>,
    ) -> Result<Option<u64>> {
        let want = Want {
            now,
            lease_ms,
            max: got.len() + max,
            got,
            bucket: None,
        };
        if max == 0 {
            return Ok(None);
        }
        let new_root = self.dir(Dir::New);
        let mut pop = Pop { spool: self, want };
        Ok(
            match walk::walk(
                &walk::top(self.fd(Dir::New)?, &new_root, NEW_DEPTH),
                &mut pop,
            )? {
                ControlFlow::Break(Step::Future(at)) => Some(at),
                ControlFlow::Break(Step::Full) | ControlFlow::Continue(()) => None,
            },
        )
    }

    fn lease_in_leaf(&self, node: &Node<'_>, want: &mut Want<'_>) -> Result<ControlFlow<Step>> {
        let (leaf, leaf_path, visible_ms) = (node.dir, node.path, node.base);
        let settled = node.st.is_some_and(|st| settled_at(st.mtime_ms, want.now));
        let (now, lease_ms) = (want.now, want.lease_ms);
        let mut taken = 0;
        // The bucket is the visible-at time; a name that disagrees with its bucket is foreign.
        let names = list_dir(leaf, leaf_path)?;
        let mut ready: Vec<Ready> = names
            .iter()
            .filter_map(|n| Ready::parse(n).ok())
            .filter(|r| r.visible_ms == visible_ms)
            .collect();
        ready.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        for r in ready {
            let src = r.to_string();
            match durable::lstat_plain(leaf, &src) {
                Ok(_) => {}
                // Leased or removed by another process since the listing.
                Err(e) if is_missing(&e) => continue,
                // Foreign: counted by `stats`, never delivered.
                Err(e) if durable::is_not_plain(&e) => continue,
                // EIO, EACCES: an error, never an entry passed over.
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("lstat {}", leaf_path.join(&src).display()));
                }
            }
            if !lease::may_lease(r.attempts, self.config.max_attempts) {
                let dead = Ended {
                    id: r.id.clone(),
                    attempts: r.attempts,
                    at_ms: now,
                    key: r.key,
                    group: r.group,
                };
                match at::rename_noreplace(leaf, &src, self.fd(Dir::Dead)?, &dead.to_string()) {
                    Ok(()) => {
                        if let Some(g) = dead.group {
                            self.group_ended(g, &dead.id);
                        }
                        if dead.key.is_some() {
                            self.key_moved(Place::Dead(dead));
                        }
                        continue;
                    }
                    Err(e) if is_missing(&e) => continue,
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("dead-letter {}", leaf_path.join(&src).display())
                        });
                    }
                }
            }
            let leased = Leased {
                id: r.id.clone(),
                attempt: r.attempts + 1,
                expires_ms: lease::deadline(now, lease_ms),
                token: super::idgen::random_u64(),
                key: r.key,
                group: r.group,
            };
            let start = lease_bucket_start(leased.expires_ms);
            let reuse = match want.bucket.take() {
                Some((s, b)) if s == start => Some(b),
                _ => None,
            };
            let Ok(held) = self.try_hold_group(r.group) else {
                continue;
            };
            let moved = self.rename_to_lease(
                Src {
                    dir: leaf,
                    name: &src,
                },
                &leased,
                reuse,
            );
            match moved {
                Ok(placed) => {
                    drop(held);
                    if leased.key.is_some() {
                        self.key_moved(Place::Leased(leased.clone()));
                    }
                    want.bucket = placed.bucket.map(|b| (start, b));
                    want.got.push(Lease {
                        enqueued_us: r.id.enqueued_us(),
                        leased,
                    });
                    // A lease in a bucket level a crash could undo would take the message
                    // with it: the caller releases what it got.
                    placed.synced.with_context(|| {
                        format!("lease {}: sync its bucket", leaf_path.join(&src).display())
                    })?;
                    taken += 1;
                    if want.got.len() < want.max {
                        continue;
                    }
                    if taken == names.len() && settled && may_remove(visible_ms, 1, now) {
                        // We took every entry of the leaf: remove it now rather than have the
                        // next pop list it empty. Fails harmlessly if a push just arrived.
                        if let Some((parent, name)) = node.parent {
                            let _ = at::rmdir(parent, name);
                        }
                    }
                    return Ok(ControlFlow::Break(Step::Full));
                }
                // Another process leased it first; try the next one.
                Err(e) if is_missing(&e) => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("lease {}", leaf_path.join(&src).display()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// A pop's walk: in time order, up to the first bucket in the future, leasing in the leaves.
struct Pop<'s, 'v> {
    spool: &'s Spool,
    want: Want<'v>,
}

impl Visit for Pop<'_, '_> {
    type Stop = Step;

    fn bucket(&mut self, b: &Listed<'_>) -> ControlFlow<Step, bool> {
        if lease::is_visible(b.start, self.want.now) {
            ControlFlow::Continue(true)
        } else {
            ControlFlow::Break(Step::Future(b.start))
        }
    }

    // Foreign entries are counted by `stats` and set aside by `fsck`; a pop passes them by.
    fn foreign(&mut self, _: &Node<'_>, _: &OsStr, _: NotBucket) -> Result<()> {
        Ok(())
    }

    fn leaf(&mut self, leaf: &Node<'_>) -> Result<ControlFlow<Step>> {
        self.spool.lease_in_leaf(leaf, &mut self.want)
    }

    /// Empty buckets are removed so later pops do not list them again, but only once their
    /// time has passed and they have not changed for a while: a pusher makes its bucket level
    /// by level, and a fresh empty level must not vanish under it. One that loses this race
    /// anyway finds its bucket gone and makes it anew.
    fn left(&mut self, child: &Node<'_>) {
        remove_if_settled(child, self.want.now);
    }
}

/// Removes the bucket a walk just left, if its span and the grace are over and it has not
/// changed for the grace (`REMOVE_GRACE_MS`): in `new/` and in `leased/` alike. `rmdir` fails
/// harmlessly on one that is not empty.
pub(super) fn remove_if_settled(child: &Node<'_>, now: u64) {
    let settled = child.st.is_some_and(|st| settled_at(st.mtime_ms, now));
    let span = BUCKET_SPANS[child.level - 1];
    if let Some((parent, name)) = child.parent
        && settled
        && may_remove(child.base, span, now)
    {
        let _ = at::rmdir(parent, name);
    }
}

/// How long after its span, and after its last change, a bucket is left alone, so that pushers
/// still making it (one level at a time) do not lose it. Empty buckets that recent are listed,
/// not removed.
pub(super) const REMOVE_GRACE_MS: u64 = 25;

/// Whether a directory last changed at `changed_ms` has been left alone for the grace period.
pub(super) fn settled_at(changed_ms: u64, now: u64) -> bool {
    changed_ms.saturating_add(REMOVE_GRACE_MS) <= now
}

/// Whether an empty bucket spanning `span` ms from `start` may be removed at `now`.
pub(super) fn may_remove(start: u64, span: u64, now: u64) -> bool {
    start.saturating_add(span).saturating_add(REMOVE_GRACE_MS) <= now
}

/// The names in an open bucket. One removed under us since we opened it lists as empty.
fn list_dir(dir: &File, path: &Path) -> Result<Vec<String>> {
    at::names(dir).with_context(|| format!("list {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_removed_only_after_their_span_and_the_grace() {
        // A leaf (1 ms) for millisecond 1000.
        assert!(!may_remove(1000, 1, 1000));
        assert!(!may_remove(1000, 1, 1000 + REMOVE_GRACE_MS));
        assert!(may_remove(1000, 1, 1001 + REMOVE_GRACE_MS));
        // The current second and the current 1000 s window are never removed.
        assert!(!may_remove(5_000, 1_000, 5_999));
        assert!(!may_remove(0, 1_000_000, 999_999));
        assert!(may_remove(0, 1_000_000, 1_000_000 + REMOVE_GRACE_MS));
    }
}

//! Finding and leasing the message that has been visible longest, without listing all of `new/`.
//!
//! `new/` is a three-level tree of buckets by visible-at millisecond. A pop walks it in order,
//! listing one directory per level, and stops at the first bucket that lies in the future: the
//! work done is bounded by the bucket fan-out and by one millisecond's worth of messages, not by
//! the queue's depth.

use super::durable::{self, is_missing};
use super::lease;
use super::name::{BUCKET_SPANS, Ended, Leased, Ready, bucket_level};
use super::transition::list_names;
use super::{Dir, Spool};
use anyhow::{Context, Result};
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

/// What the walk found at its leftmost edge.
enum Step {
    Leased(Box<Lease>),
    /// The earliest remaining bucket starts at this instant, after `now`: nothing is visible.
    Future(u64),
    /// This subtree held nothing leasable.
    Exhausted,
}

impl Spool {
    /// Leases the longest-visible message for `lease_ms`. Messages that have used up their
    /// attempts are dead-lettered on the way. When nothing is visible at `now`, says when to
    /// look again: the start of the first bucket in the future, which costs nothing more to find.
    pub fn take(&self, now: u64, lease_ms: u64) -> Result<Take> {
        let new_root = self.dir(Dir::New);
        Ok(match self.walk(&new_root, 0, 0, now, lease_ms, false)? {
            Step::Leased(l) => Take::Leased(*l),
            Step::Future(at) => Take::Nothing { next_ms: Some(at) },
            Step::Exhausted => Take::Nothing { next_ms: None },
        })
    }

    /// `settled`: `dir` had not changed for the grace period when its parent looked at it.
    fn walk(
        &self,
        dir: &Path,
        level: usize,
        base: u64,
        now: u64,
        lease_ms: u64,
        settled: bool,
    ) -> Result<Step> {
        if level == BUCKET_SPANS.len() {
            return self.lease_in_leaf(dir, base, now, lease_ms, settled);
        }
        let mut children: Vec<(u64, String)> = list_dir_or_empty(dir)?
            .into_iter()
            .filter_map(|n| bucket_level(&n, level).map(|v| (v, n)))
            .collect();
        children.sort_unstable();
        for (value, name) in children {
            let start = base + value * BUCKET_SPANS[level];
            if !lease::is_visible(start, now) {
                return Ok(Step::Future(start));
            }
            let child = dir.join(&name);
            // A bucket must be a real directory: a symlink could lead the walk out of the spool
            // (`stats` counts it as foreign). One that vanished was emptied by another pop.
            let meta = match std::fs::symlink_metadata(&child) {
                Ok(m) if m.file_type().is_dir() => m,
                _ => continue,
            };
            let child_settled = settled_at(&meta, now);
            match self.walk(&child, level + 1, start, now, lease_ms, child_settled)? {
                Step::Exhausted => {
                    // Empty buckets are removed so later pops do not list them again, but only
                    // once their time has passed and they have not changed for a while: a
                    // pusher makes its bucket level by level, and a fresh empty level must not
                    // vanish under it. One that loses this race anyway finds its bucket gone
                    // and makes it anew.
                    if child_settled && may_remove(start, BUCKET_SPANS[level], now) {
                        let _ = std::fs::remove_dir(&child);
                    }
                }
                other => return Ok(other),
            }
        }
        Ok(Step::Exhausted)
    }

    fn lease_in_leaf(
        &self,
        leaf: &Path,
        visible_ms: u64,
        now: u64,
        lease_ms: u64,
        settled: bool,
    ) -> Result<Step> {
        // The bucket is the visible-at time; a name that disagrees with its bucket is foreign.
        let names = list_dir_or_empty(leaf)?;
        let mut ready: Vec<Ready> = names
            .iter()
            .filter_map(|n| Ready::parse(n).ok())
            .filter(|r| r.visible_ms == visible_ms)
            .collect();
        ready.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        for r in ready {
            let src = leaf.join(r.to_string());
            match durable::lstat_plain(&src) {
                Ok(_) => {}
                Err(e) if is_missing(&e) => continue,
                Err(_) => continue, // foreign: counted by `stats`, never delivered
            }
            if !lease::may_lease(r.attempts, self.config.max_attempts) {
                let dead = Ended {
                    id: r.id.clone(),
                    attempts: r.attempts,
                    at_ms: now,
                };
                match durable::rename_noreplace(&src, &self.dir(Dir::Dead).join(dead.to_string())) {
                    Ok(()) => continue,
                    Err(e) if is_missing(&e) => continue,
                    Err(e) => {
                        return Err(e).with_context(|| format!("dead-letter {}", src.display()));
                    }
                }
            }
            let leased = Leased {
                id: r.id.clone(),
                attempt: r.attempts + 1,
                expires_ms: lease::at(now, lease_ms),
                token: super::idgen::random_u64(),
            };
            match durable::rename_noreplace(&src, &self.leased_path(&leased)) {
                Ok(()) => {
                    if names.len() == 1 && settled && may_remove(visible_ms, 1, now) {
                        // We took the leaf's only entry: remove the leaf now rather than have
                        // the next pop list it empty. Fails harmlessly if a push just arrived.
                        let _ = std::fs::remove_dir(leaf);
                    }
                    return Ok(Step::Leased(Box::new(Lease {
                        enqueued_us: r.id.enqueued_us(),
                        leased,
                    })));
                }
                // Another process leased it first; try the next one.
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Err(e).with_context(|| format!("lease {}", src.display())),
            }
        }
        Ok(Step::Exhausted)
    }
}

/// How long after its span, and after its last change, a bucket is left alone, so that pushers
/// still making it (one level at a time) do not lose it. Empty buckets that recent are listed,
/// not removed.
const REMOVE_GRACE_MS: u64 = 25;

/// Whether a directory, as `lstat` saw it, has been left alone for the grace period at `now`.
fn settled_at(meta: &std::fs::Metadata, now: u64) -> bool {
    let changed_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(u64::MAX, |d| d.as_millis() as u64);
    changed_ms.saturating_add(REMOVE_GRACE_MS) <= now
}

/// Whether an empty bucket spanning `span` ms from `start` may be removed at `now`.
fn may_remove(start: u64, span: u64, now: u64) -> bool {
    start.saturating_add(span).saturating_add(REMOVE_GRACE_MS) <= now
}

/// A bucket that vanished under us (removed by another pop) is simply empty.
fn list_dir_or_empty(dir: &Path) -> Result<Vec<String>> {
    match list_names(dir) {
        Ok(v) => Ok(v),
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(is_missing) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
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

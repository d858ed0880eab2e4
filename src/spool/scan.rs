//! Walking a spool's messages by state without reading any payload: what `stats` counts and
//! `list` shows.

use super::at::{self, Stat};
use super::durable::{self, is_plain};
use super::lease;
use super::name::{BUCKET_SPANS, Ended, Id, Leased, Ready, bucket_level};
use super::{Dir, Spool};
use anyhow::{Context, Result};
use std::fs::File;
use std::path::Path;

/// The six state counts partition the messages; `foreign` counts what is not a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub ready: u64,
    pub delayed: u64,
    pub leased: u64,
    pub expired: u64,
    pub done: u64,
    pub dead: u64,
    pub foreign: u64,
    /// Enqueue time of the oldest ready message, in microseconds.
    pub oldest_ready_us: Option<u64>,
    /// Messages per state (in the order of `State::ALL`) by time since their first push: one
    /// count per bound of `AGE_BOUNDS_S`, then one for all older (the shape of a queue at a
    /// glance, as qshape shows a mail queue).
    pub by_age: [[u64; AGE_BOUNDS_S.len() + 1]; 6],
    /// The live leases that expire soonest, up to `SOONEST`: (expiry ms, id), soonest first.
    pub soonest: Vec<(u64, Id)>,
    /// Payload bytes per state, in the order of `State::ALL`.
    pub bytes: [u64; 6],
    /// Per state, in the order of `State::ALL`, when its oldest message was first pushed (for
    /// done and dead: when the earliest of them entered that state), in microseconds.
    pub oldest_us: [Option<u64>; 6],
}

impl Counts {
    /// Counts one entry of a scan at `now`: a message, or a foreign entry (`None`).
    pub fn add(&mut self, seen: Option<Seen>, now: u64) {
        let c = self;
        let Some(m) = seen else {
            c.foreign += 1;
            return;
        };
        let i = m.state as usize;
        c.bytes[i] = c.bytes[i].saturating_add(m.size);
        let t = m.id.enqueued_us();
        // Done and dead messages are as old as their time in that state (their name has it):
        // what retention and purges go by, and what an operator asks of dead letters.
        let since = match m.state {
            State::Done | State::Dead => m.at_ms.saturating_mul(1000),
            _ => t,
        };
        c.oldest_us[i] = Some(c.oldest_us[i].map_or(since, |o| o.min(since)));
        c.by_age[i][age_bucket(now.saturating_sub(t / 1000))] += 1;
        match m.state {
            State::Ready => {
                c.ready += 1;
                c.oldest_ready_us = Some(c.oldest_ready_us.map_or(t, |o| o.min(t)));
            }
            State::Delayed => c.delayed += 1,
            State::Leased => {
                c.leased += 1;
                // A bounded insert: memory stays the same whatever the number of leases.
                let at = c.soonest.partition_point(|(e, _)| *e <= m.at_ms);
                if at < SOONEST {
                    c.soonest.insert(at, (m.at_ms, m.id));
                    c.soonest.truncate(SOONEST);
                }
            }
            State::Expired => c.expired += 1,
            State::Done => c.done += 1,
            State::Dead => c.dead += 1,
        }
    }

    /// The number of messages in `state`.
    pub fn of(&self, state: State) -> u64 {
        match state {
            State::Ready => self.ready,
            State::Delayed => self.delayed,
            State::Leased => self.leased,
            State::Expired => self.expired,
            State::Done => self.done,
            State::Dead => self.dead,
        }
    }
}

/// Upper bounds, in seconds, of the age buckets of `Counts::by_age`: qshape's, from 5 minutes
/// doubling to 640.
pub const AGE_BOUNDS_S: [u64; 8] = [300, 600, 1200, 2400, 4800, 9600, 19_200, 38_400];

/// How many of the soonest-expiring leases `Counts::soonest` keeps.
pub const SOONEST: usize = 3;

/// The `by_age` bucket of a message that is `age_ms` old.
pub fn age_bucket(age_ms: u64) -> usize {
    AGE_BOUNDS_S
        .iter()
        .position(|&b| age_ms <= b * 1000)
        .unwrap_or(AGE_BOUNDS_S.len())
}

/// The state of a message, as `stats` and `list` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Ready,
    Delayed,
    Leased,
    Expired,
    Done,
    Dead,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Ready,
        State::Delayed,
        State::Leased,
        State::Expired,
        State::Done,
        State::Dead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Delayed => "delayed",
            State::Leased => "leased",
            State::Expired => "expired",
            State::Done => "done",
            State::Dead => "dead",
        }
    }
}

/// One message as a scan sees it: from its name and its `lstat`, never its payload.
#[derive(Clone, Debug)]
pub struct Seen {
    pub state: State,
    pub id: Id,
    /// Leases so far (ready, delayed, done, dead), or this lease's number (leased, expired).
    pub attempts: u32,
    /// Visible-at (ready, delayed), lease expiry (leased, expired) or finish time (done, dead).
    pub at_ms: u64,
    pub size: u64,
}

impl Spool {
    /// Counts every state at `now`. Only directory listings and `lstat`: it works read-only.
    pub fn count(&self, now: u64) -> Result<Counts> {
        let mut c = Counts::default();
        self.scan(now, &mut |seen| c.add(seen, now))?;
        Ok(c)
    }

    /// Calls `f` with every message of the spool at `now` (state by state, in directory order),
    /// and with `None` for every foreign entry. Well-formed names in `tmp/` are pushes in
    /// progress, neither messages nor foreign.
    pub fn scan(&self, now: u64, f: &mut dyn FnMut(Option<Seen>)) -> Result<()> {
        for_each_entry(self.fd(Dir::Tmp), &self.dir(Dir::Tmp), |e, name| {
            if !(Ready::parse(name).is_ok() && e.plain()) {
                f(None);
            }
        })?;
        self.scan_new(self.fd(Dir::New), &self.dir(Dir::New), 0, 0, now, f)?;
        for_each_entry(
            self.fd(Dir::Leased),
            &self.dir(Dir::Leased),
            |e, name| match Leased::parse(name) {
                Ok(l) if e.plain() => f(Some(Seen {
                    state: if lease::is_expired(l.expires_ms, now) {
                        State::Expired
                    } else {
                        State::Leased
                    },
                    id: l.id,
                    attempts: l.attempt,
                    at_ms: l.expires_ms,
                    size: e.st.size,
                })),
                _ => f(None),
            },
        )?;
        for (dir, state) in [(Dir::Done, State::Done), (Dir::Dead, State::Dead)] {
            for_each_entry(self.fd(dir), &self.dir(dir), |e, name| {
                match Ended::parse(name) {
                    Ok(x) if e.plain() => f(Some(Seen {
                        state,
                        id: x.id,
                        attempts: x.attempts,
                        at_ms: x.at_ms,
                        size: e.st.size,
                    })),
                    _ => f(None),
                }
            })?;
        }
        Ok(())
    }

    /// `scan` of `new/` alone (ready and delayed messages, and the foreign entries there): for a
    /// caller that needs only those, without listing and `lstat`ing every other state.
    pub fn scan_new_tree(&self, now: u64, f: &mut dyn FnMut(Option<Seen>)) -> Result<()> {
        self.scan_new(self.fd(Dir::New), &self.dir(Dir::New), 0, 0, now, f)
    }

    #[allow(clippy::too_many_arguments)]
    fn scan_new(
        &self,
        dir: &File,
        path: &Path,
        level: usize,
        base: u64,
        now: u64,
        f: &mut dyn FnMut(Option<Seen>),
    ) -> Result<()> {
        let mut subdirs = Vec::new();
        for_each_entry(dir, path, |e, name| {
            if level < BUCKET_SPANS.len() {
                match bucket_level(name, level) {
                    Some(v) if e.is_dir() => {
                        subdirs.push((base + v * BUCKET_SPANS[level], name.to_owned()))
                    }
                    _ => f(None),
                }
                return;
            }
            match Ready::parse(name) {
                // The bucket is the visible-at time; a name that disagrees with it is foreign.
                Ok(r) if r.visible_ms == base && e.plain() => f(Some(Seen {
                    state: if lease::is_visible(r.visible_ms, now) {
                        State::Ready
                    } else {
                        State::Delayed
                    },
                    id: r.id,
                    attempts: r.attempts,
                    at_ms: r.visible_ms,
                    size: e.st.size,
                })),
                _ => f(None),
            }
        })?;
        for (start, name) in subdirs {
            let child_path = path.join(&name);
            // A bucket swapped for a link since the listing is not followed; one removed by a
            // pop meanwhile is simply empty.
            let child = match at::open_dir(dir, &name) {
                Ok(c) => c,
                Err(e) if durable::is_missing(&e) => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    f(None);
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("open {}", child_path.display())),
            };
            self.scan_new(&child, &child_path, level + 1, start, now, f)?;
        }
        Ok(())
    }
}

/// One directory entry as `lstat` saw it: links are seen as links, never followed.
struct Entry {
    st: Stat,
}

impl Entry {
    fn plain(&self) -> bool {
        is_plain(&self.st)
    }

    fn is_dir(&self) -> bool {
        self.st.is_dir()
    }
}

/// Calls `f` on each entry. An entry that vanishes while we look was moved by another process:
/// it is counted where it arrived, or in that race not at all, but never as foreign. A name
/// that is not UTF-8 cannot be qspool's and comes as `\u{fffd}`, foreign.
fn for_each_entry(dir: &File, path: &Path, mut f: impl FnMut(&Entry, &str)) -> Result<()> {
    let mut failed = None;
    at::for_each(dir, |name, _| {
        if failed.is_some() {
            return;
        }
        let Some(name) = name else {
            // Not UTF-8: lstat cannot be asked by this name here, and it is foreign anyway.
            let st = Stat::foreign();
            f(&Entry { st }, "\u{fffd}");
            return;
        };
        match at::stat(dir, name) {
            Ok(st) => f(&Entry { st }, name),
            Err(e) if durable::is_missing(&e) => {}
            Err(e) => {
                failed = Some(
                    anyhow::Error::new(e).context(format!("lstat {}", path.join(name).display())),
                )
            }
        }
    })
    .with_context(|| format!("list {}", path.display()))?;
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_buckets_are_inclusive_upper_bounds() {
        assert_eq!(age_bucket(0), 0);
        assert_eq!(age_bucket(300_000), 0);
        assert_eq!(age_bucket(300_001), 1);
        assert_eq!(age_bucket(2_400_000), 3);
        assert_eq!(age_bucket(38_400_000), 7);
        assert_eq!(age_bucket(38_400_001), 8);
        assert_eq!(age_bucket(u64::MAX), 8);
    }
}

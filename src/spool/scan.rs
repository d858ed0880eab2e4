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

    /// Adds the counts of another part of the same scan.
    pub fn merge(&mut self, o: Counts) {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        self.ready += o.ready;
        self.delayed += o.delayed;
        self.leased += o.leased;
        self.expired += o.expired;
        self.done += o.done;
        self.dead += o.dead;
        self.foreign += o.foreign;
        self.oldest_ready_us = min(self.oldest_ready_us, o.oldest_ready_us);
        for i in 0..6 {
            for (a, b) in self.by_age[i].iter_mut().zip(o.by_age[i]) {
                *a += b;
            }
            self.bytes[i] = self.bytes[i].saturating_add(o.bytes[i]);
            self.oldest_us[i] = min(self.oldest_us[i], o.oldest_us[i]);
        }
        self.soonest.extend(o.soonest);
        self.soonest.sort();
        self.soonest.truncate(SOONEST);
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
        self.scan_flat(Dir::Tmp, now, f)?;
        self.scan_new(self.fd(Dir::New), &self.dir(Dir::New), 0, 0, now, f)?;
        for d in [Dir::Leased, Dir::Done, Dir::Dead] {
            self.scan_flat(d, now, f)?;
        }
        Ok(())
    }

    /// `scan` spread over up to `threads` threads, each feeding a sink of its own (made by
    /// `sink`), in no particular order; returns the sinks. The work is cut into the flat state
    /// directories and the one-second buckets of `new/`, taken in turn by whichever thread is
    /// free: a deep queue's listing and `lstat`s are shared between the cores.
    pub fn scan_parallel<S: Send>(
        &self,
        now: u64,
        threads: usize,
        sink: &(dyn Fn() -> S + Sync),
        feed: &(dyn Fn(&mut S, Option<Seen>) + Sync),
    ) -> Result<Vec<S>> {
        let mut first = sink();
        let mut jobs: Vec<Job> = [Dir::Tmp, Dir::Leased, Dir::Done, Dir::Dead]
            .into_iter()
            .map(Job::Flat)
            .collect();
        self.second_buckets(&mut jobs, &mut |x| feed(&mut first, x))?;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = |s: &mut S| -> Result<()> {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = jobs.get(i) else {
                    return Ok(());
                };
                let f = &mut |x| feed(s, x);
                match job {
                    Job::Flat(d) => self.scan_flat(*d, now, f)?,
                    Job::Second { parts, base } => self.scan_second(parts, *base, now, f)?,
                }
            }
        };
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads.max(1))
                .map(|_| {
                    scope.spawn(|| {
                        let mut s = sink();
                        work(&mut s).map(|()| s)
                    })
                })
                .collect();
            let mut sinks = vec![];
            let mine = work(&mut first);
            for h in helpers {
                match h.join() {
                    Ok(r) => sinks.push(r?),
                    Err(p) => std::panic::resume_unwind(p),
                }
            }
            mine?;
            sinks.push(first);
            Ok(sinks)
        })
    }

    /// Lists `new/` and its first level, passing foreign entries there to `f`, and adds a job
    /// for every one-second bucket found.
    fn second_buckets(&self, jobs: &mut Vec<Job>, f: &mut dyn FnMut(Option<Seen>)) -> Result<()> {
        let new_path = self.dir(Dir::New);
        let mut firsts = Vec::new();
        for_each_entry(self.fd(Dir::New), &new_path, |e, name| {
            match bucket_level(name, 0) {
                Some(v) if e.is_dir() => firsts.push((v * BUCKET_SPANS[0], name.to_owned())),
                _ => f(None),
            }
        })?;
        for (base, name) in firsts {
            let path = new_path.join(&name);
            let Some(dir) = open_bucket(self.fd(Dir::New), &name, &path, f)? else {
                continue;
            };
            for_each_entry(&dir, &path, |e, second| match bucket_level(second, 1) {
                Some(v) if e.is_dir() => jobs.push(Job::Second {
                    parts: [name.clone(), second.to_owned()],
                    base: base + v * BUCKET_SPANS[1],
                }),
                _ => f(None),
            })?;
        }
        Ok(())
    }

    /// Scans one one-second bucket, `new/<parts>`, and the leaves in it.
    fn scan_second(
        &self,
        parts: &[String; 2],
        base: u64,
        now: u64,
        f: &mut dyn FnMut(Option<Seen>),
    ) -> Result<()> {
        let first_path = self.dir(Dir::New).join(&parts[0]);
        let Some(first) = open_bucket(self.fd(Dir::New), &parts[0], &first_path, f)? else {
            return Ok(());
        };
        let path = first_path.join(&parts[1]);
        let Some(second) = open_bucket(&first, &parts[1], &path, f)? else {
            return Ok(());
        };
        self.scan_new(&second, &path, 2, base, now, f)
    }

    /// Calls `f` with every entry of one flat state directory: `tmp/`, `leased/`, `done/` or
    /// `dead/`.
    fn scan_flat(&self, d: Dir, now: u64, f: &mut dyn FnMut(Option<Seen>)) -> Result<()> {
        let (dir, path) = (self.fd(d), self.dir(d));
        match d {
            Dir::Tmp => for_each_entry(dir, &path, |e, name| {
                if !(Ready::parse(name).is_ok() && e.plain()) {
                    f(None);
                }
            }),
            Dir::Leased => for_each_entry(dir, &path, |e, name| match Leased::parse(name) {
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
            }),
            Dir::Done | Dir::Dead => {
                let state = if d == Dir::Done {
                    State::Done
                } else {
                    State::Dead
                };
                for_each_entry(dir, &path, |e, name| match Ended::parse(name) {
                    Ok(x) if e.plain() => f(Some(Seen {
                        state,
                        id: x.id,
                        attempts: x.attempts,
                        at_ms: x.at_ms,
                        size: e.st.size,
                    })),
                    _ => f(None),
                })
            }
            Dir::New => self.scan_new(dir, &path, 0, 0, now, f),
        }
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
            let Some(child) = open_bucket(dir, &name, &child_path, f)? else {
                continue;
            };
            self.scan_new(&child, &child_path, level + 1, start, now, f)?;
        }
        Ok(())
    }
}

/// A piece of a parallel scan.
enum Job {
    /// A flat state directory.
    Flat(Dir),
    /// A one-second bucket of `new/`: its two names under `new/`, and its first millisecond.
    Second { parts: [String; 2], base: u64 },
}

/// Opens a bucket listed in `dir`. A bucket swapped for a link since the listing is foreign
/// (passed to `f`) and not followed; one removed by a pop meanwhile is simply empty (`None`).
fn open_bucket(
    dir: &File,
    name: &str,
    path: &Path,
    f: &mut dyn FnMut(Option<Seen>),
) -> Result<Option<File>> {
    match at::open_dir(dir, name) {
        Ok(c) => Ok(Some(c)),
        Err(e) if durable::is_missing(&e) => Ok(None),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
            f(None);
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("open {}", path.display())),
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
    fn counts_merged_from_parts_equal_counts_of_the_whole() {
        let now = 1_795_833_091_123 + 3_600_000;
        let seen: Vec<Seen> = (0..60u64)
            .map(|i| Seen {
                state: State::ALL[(i % 6) as usize],
                id: Id::parse(&format!(
                    "{}.42.{i:08}.deadbeef.box",
                    1_795_833_091_123_456 + i * 7_919_000
                ))
                .unwrap(),
                attempts: 1,
                at_ms: now - 1000 + (i * 37) % 2000,
                size: i * 3,
            })
            .collect();
        let mut whole = Counts::default();
        let mut parts = [Counts::default(), Counts::default(), Counts::default()];
        for (i, m) in seen.iter().enumerate() {
            whole.add(Some(m.clone()), now);
            parts[i % 3].add(Some(m.clone()), now);
        }
        whole.add(None, now);
        parts[1].add(None, now);
        let mut merged = Counts::default();
        for p in parts {
            merged.merge(p);
        }
        assert_eq!(merged, whole);
    }

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

//! Walking a spool's messages by state without reading any payload: what `stats` counts and
//! `list` shows.

use super::durable::is_plain;
use super::lease;
use super::name::{Ended, Id, KeyHash, Leased, NEW_DEPTH, Ready};
use super::walk::{self, Listed, Node, NotBucket, Visit};
use super::{Dir, Spool};
use anyhow::Result;
use std::ffi::OsStr;
use std::ops::ControlFlow;

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
        let t = m.id().enqueued_us();
        // Done and dead messages are as old as their time in that state (their name has it):
        // what retention and purges go by, and what an operator asks of dead letters.
        let since = match m.state {
            State::Done | State::Dead => m.named_ms().saturating_mul(1000),
            _ => t,
        };
        c.oldest_us[i] = lease::earliest(c.oldest_us[i], Some(since));
        c.by_age[i][age_bucket(now.saturating_sub(t / 1000))] += 1;
        match m.state {
            State::Ready => {
                c.ready += 1;
                c.oldest_ready_us = lease::earliest(c.oldest_ready_us, Some(t));
            }
            State::Delayed => c.delayed += 1,
            State::Leased => {
                c.leased += 1;
                // A bounded insert: memory stays the same whatever the number of leases.
                let expires_ms = m.named_ms();
                let at = c.soonest.partition_point(|(e, _)| *e <= expires_ms);
                if at < SOONEST {
                    c.soonest.insert(at, (expires_ms, m.id().clone()));
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
        self.ready += o.ready;
        self.delayed += o.delayed;
        self.leased += o.leased;
        self.expired += o.expired;
        self.done += o.done;
        self.dead += o.dead;
        self.foreign += o.foreign;
        self.oldest_ready_us = lease::earliest(self.oldest_ready_us, o.oldest_ready_us);
        for i in 0..6 {
            for (a, b) in self.by_age[i].iter_mut().zip(o.by_age[i]) {
                *a += b;
            }
            self.bytes[i] = self.bytes[i].saturating_add(o.bytes[i]);
            self.oldest_us[i] = lease::earliest(self.oldest_us[i], o.oldest_us[i]);
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

    /// The state named `name` (as `name` gives it).
    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.name() == name)
    }

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

/// A message's name, parsed: what its fields mean depends on the state directory it lies in.
#[derive(Clone, Debug)]
pub enum Named {
    /// In `new/`: ready or delayed.
    Ready(Ready),
    /// In `leased/`: a live or an expired lease.
    Leased(Leased),
    /// In `done/`: acked.
    Done(Ended),
    /// In `dead/`: dead-lettered or buried.
    Dead(Ended),
}

impl Named {
    pub fn id(&self) -> &Id {
        match self {
            Named::Ready(r) => &r.id,
            Named::Leased(l) => &l.id,
            Named::Done(e) | Named::Dead(e) => &e.id,
        }
    }

    /// The hash of its dedup key, if it has one.
    pub fn key(&self) -> Option<KeyHash> {
        match self {
            Named::Ready(r) => r.key,
            Named::Leased(l) => l.key,
            Named::Done(e) | Named::Dead(e) => e.key,
        }
    }

    /// The hash of its group, if it has one.
    pub fn group(&self) -> Option<KeyHash> {
        match self {
            Named::Ready(r) => r.group,
            Named::Leased(l) => l.group,
            Named::Done(e) | Named::Dead(e) => e.group,
        }
    }

    /// Leases so far (ready, delayed, done, dead), or this lease's number (leased, expired).
    pub fn attempts(&self) -> u32 {
        match self {
            Named::Ready(r) => r.attempts,
            Named::Leased(l) => l.attempt,
            Named::Done(e) | Named::Dead(e) => e.attempts,
        }
    }

    /// The one time its name records: visible-at in `new/`, expiry in `leased/`, the finish
    /// time in `done/` and `dead/`.
    pub fn named_ms(&self) -> u64 {
        match self {
            Named::Ready(r) => r.visible_ms,
            Named::Leased(l) => l.expires_ms,
            Named::Done(e) | Named::Dead(e) => e.at_ms,
        }
    }

    /// Its state at `now`: where it lies, and for `new/` and `leased/`, whether its time has
    /// come.
    pub fn state_at(&self, now: u64) -> State {
        match self {
            Named::Ready(r) if lease::is_visible(r.visible_ms, now) => State::Ready,
            Named::Ready(_) => State::Delayed,
            Named::Leased(l) if lease::is_expired(l.expires_ms, now) => State::Expired,
            Named::Leased(_) => State::Leased,
            Named::Done(_) => State::Done,
            Named::Dead(_) => State::Dead,
        }
    }

    /// The state directory it lies in.
    pub fn dir(&self) -> Dir {
        match self {
            Named::Ready(_) => Dir::New,
            Named::Leased(_) => Dir::Leased,
            Named::Done(_) => Dir::Done,
            Named::Dead(_) => Dir::Dead,
        }
    }

    /// Its file name, byte for byte what the spool holds: every name is parsed from one that
    /// round-trips (see `name`'s tests).
    pub fn file_name(&self) -> String {
        match self {
            Named::Ready(r) => r.to_string(),
            Named::Leased(l) => l.to_string(),
            Named::Done(e) | Named::Dead(e) => e.to_string(),
        }
    }
}

/// One message as a scan sees it: from its name and its `lstat`, never its payload.
#[derive(Clone, Debug)]
pub struct Seen {
    pub state: State,
    pub name: Named,
    pub size: u64,
}

impl Seen {
    pub fn id(&self) -> &Id {
        self.name.id()
    }

    pub fn attempts(&self) -> u32 {
        self.name.attempts()
    }

    pub fn named_ms(&self) -> u64 {
        self.name.named_ms()
    }

    fn of(name: Named, size: u64, now: u64) -> Seen {
        Seen {
            state: name.state_at(now),
            name,
            size,
        }
    }
}

/// A scan's visit of `new/`: every message and foreign entry to `f`; with `jobs`, the
/// one-second buckets are not entered but handed out as jobs of a parallel scan.
struct Scanner<'f, 'j> {
    now: u64,
    f: &'f mut dyn FnMut(Option<Seen>),
    jobs: Option<&'j mut Vec<Job>>,
}

impl Visit for Scanner<'_, '_> {
    type Stop = std::convert::Infallible;

    fn bucket(&mut self, b: &Listed<'_>) -> ControlFlow<Self::Stop, bool> {
        let Some(jobs) = self.jobs.as_deref_mut() else {
            return ControlFlow::Continue(true);
        };
        match b.parent.parent {
            Some((_, first)) if b.parent.level == 1 => {
                jobs.push(Job::Second {
                    parts: [first.to_owned(), b.name.to_owned()],
                    base: b.start,
                });
                ControlFlow::Continue(false)
            }
            _ => ControlFlow::Continue(true),
        }
    }

    fn foreign(&mut self, _: &Node<'_>, _: &OsStr, _: NotBucket) -> Result<()> {
        (self.f)(None);
        Ok(())
    }

    fn leaf(&mut self, leaf: &Node<'_>) -> Result<ControlFlow<Self::Stop>> {
        let (now, f) = (self.now, &mut *self.f);
        walk::for_each_entry(leaf.dir, leaf.path, |name, st| {
            match name.to_str().map(Ready::parse) {
                // The bucket is the visible-at time; a name that disagrees with it is foreign.
                Some(Ok(r)) if r.visible_ms == leaf.base && is_plain(st) => {
                    f(Some(Seen::of(Named::Ready(r), st.size, now)))
                }
                _ => f(None),
            }
        })?;
        Ok(ControlFlow::Continue(()))
    }
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
        self.scan_new_tree(now, f)?;
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
        let new_path = self.dir(Dir::New);
        let mut gather = Scanner {
            now,
            f: &mut |x| feed(&mut first, x),
            jobs: Some(&mut jobs),
        };
        let _ = walk::walk(
            &walk::top(self.fd(Dir::New)?, &new_path, NEW_DEPTH),
            &mut gather,
        )?;
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

    /// Scans one one-second bucket, `new/<parts>`, and the leaves in it.
    fn scan_second(
        &self,
        parts: &[String; 2],
        base: u64,
        now: u64,
        f: &mut dyn FnMut(Option<Seen>),
    ) -> Result<()> {
        let new_path = self.dir(Dir::New);
        let Some(first) = walk::open_path(self.fd(Dir::New)?, &new_path, &parts[..1])? else {
            return Ok(());
        };
        let path = new_path.join(&parts[0]).join(&parts[1]);
        let second = match walk::open_child(&first, &parts[1], &path)? {
            walk::Child::Dir(d) => d,
            walk::Child::Gone => return Ok(()),
            // Swapped for a link or a file since the listing: foreign, never followed.
            walk::Child::NotADir => {
                f(None);
                return Ok(());
            }
        };
        let node = Node {
            dir: &second,
            path: &path,
            parent: Some((&first, &parts[1])),
            level: 2,
            depth: NEW_DEPTH,
            base,
            st: None,
        };
        let _ = walk::walk(&node, &mut Scanner { now, f, jobs: None })?;
        Ok(())
    }

    /// Calls `f` with every entry of one state directory: `tmp/`, `done/` or `dead/` (flat), or
    /// `new/` or `leased/` (trees).
    fn scan_flat(&self, d: Dir, now: u64, f: &mut dyn FnMut(Option<Seen>)) -> Result<()> {
        match d {
            Dir::New => return self.scan_new_tree(now, f),
            Dir::Leased => return self.scan_leased(now, f),
            _ => {}
        }
        let (dir, path) = (self.fd(d)?, self.dir(d));
        walk::for_each_entry(dir, &path, |name, st| {
            let (name, plain) = (name.to_str().unwrap_or(""), is_plain(st));
            match d {
                Dir::Tmp => {
                    if !(Ready::parse(name).is_ok() && plain) {
                        f(None);
                    }
                }
                _ => match Ended::parse(name) {
                    Ok(e) if plain => {
                        let name = if d == Dir::Dead {
                            Named::Dead(e)
                        } else {
                            Named::Done(e)
                        };
                        f(Some(Seen::of(name, st.size, now)))
                    }
                    _ => f(None),
                },
            }
        })
    }

    /// `scan` of `leased/`'s tree: live and expired leases, and the foreign entries there.
    fn scan_leased(&self, now: u64, f: &mut dyn FnMut(Option<Seen>)) -> Result<()> {
        self.walk_leases(None, None, &mut |e| {
            match (e.stat()?, e.lease) {
                (None, _) => {}
                (Some(st), Some(l)) if is_plain(&st) => {
                    f(Some(Seen::of(Named::Leased(l), st.size, now)))
                }
                (Some(_), _) => f(None),
            }
            Ok(())
        })?;
        Ok(())
    }

    /// `scan` of `new/` alone (ready and delayed messages, and the foreign entries there): for a
    /// caller that needs only those, without listing and `lstat`ing every other state.
    pub fn scan_new_tree(&self, now: u64, f: &mut dyn FnMut(Option<Seen>)) -> Result<()> {
        let new_path = self.dir(Dir::New);
        let mut scanner = Scanner { now, f, jobs: None };
        let _ = walk::walk(
            &walk::top(self.fd(Dir::New)?, &new_path, NEW_DEPTH),
            &mut scanner,
        )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_merged_from_parts_equal_counts_of_the_whole() {
        let now = 1_795_833_091_123 + 3_600_000;
        let seen: Vec<Seen> = (0..60u64)
            .map(|i| {
                let state = State::ALL[(i % 6) as usize];
                let id = Id::parse(&format!(
                    "{}.42.{i:08}.deadbeef.box",
                    1_795_833_091_123_456 + i * 7_919_000
                ))
                .unwrap();
                let ms = now - 1000 + (i * 37) % 2000;
                let name = match state {
                    State::Ready | State::Delayed => Named::Ready(Ready {
                        id,
                        attempts: 1,
                        visible_ms: ms,
                        key: None,
                        group: None,
                    }),
                    State::Leased | State::Expired => Named::Leased(Leased {
                        id,
                        attempt: 1,
                        expires_ms: ms,
                        token: i,
                        key: None,
                        group: None,
                    }),
                    State::Done | State::Dead => Named::Done(Ended {
                        id,
                        attempts: 1,
                        at_ms: ms,
                        key: None,
                        group: None,
                    }),
                };
                Seen {
                    state,
                    name,
                    size: i * 3,
                }
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

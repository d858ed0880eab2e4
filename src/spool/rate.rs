//! Rate limits: the token bucket as pure functions of `now`, and the spool-wide bucket's state
//! file (`rate` in the spool root, FORMAT.md §2.4), shared by every process under `flock`.

use super::{Spool, at, durable};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::fs::FileExt;

/// The state file's name in the spool root.
pub const FILE_NAME: &str = "rate";
/// The most starts a limit may allow per period, and the largest burst.
pub const MAX_COUNT: u64 = 1_000_000;
/// The longest period of a limit: a day.
pub const MAX_PER_MS: u64 = 86_400_000;
/// The width of the slots in which starts are counted, for `stats`' current rate.
pub const SLOT_MS: u64 = 10_000;
/// A clock step back larger than this is taken as the new time; a smaller one (two processes'
/// clocks read a few milliseconds apart, one of them descheduled) is not a step at all.
pub const STEP_BACK_MS: u64 = 5_000;

/// A limit: at most `count` starts per `per_ms`, with up to `burst` at once after a quiet spell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub count: u64,
    pub per_ms: u64,
    pub burst: u64,
}

impl Rate {
    /// Parses `N/s`, `N/m`, `N/h`, `N/d` or `N/DUR` (`5/10s`); the burst is 1 until set.
    pub fn parse(s: &str) -> std::result::Result<Rate, String> {
        let (n, per) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: a rate is N/s, N/m, N/h or N/DUR, as in 100/s"))?;
        let count: u64 = n
            .parse()
            .ok()
            .filter(|c| (1..=MAX_COUNT).contains(c))
            .ok_or_else(|| format!("{s:?}: the count is a whole number from 1 to {MAX_COUNT}"))?;
        let per_ms = match per {
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => MAX_PER_MS,
            dur => crate::duration::parse_ms(dur).map_err(|e| format!("{s:?}: {e}"))?,
        };
        if !(1..=MAX_PER_MS).contains(&per_ms) {
            return Err(format!("{s:?}: the period is from 1ms to 1d"));
        }
        Ok(Rate {
            count,
            per_ms,
            burst: 1,
        })
    }

    /// What `init` and `stats` print: `100/s`, or `100/s burst 20`.
    pub fn describe(&self) -> String {
        let per = match self.per_ms {
            1000 => "s".to_owned(),
            60_000 => "m".to_owned(),
            3_600_000 => "h".to_owned(),
            MAX_PER_MS => "d".to_owned(),
            ms => crate::duration::format_ms(ms),
        };
        match self.burst {
            1 => format!("{}/{per}", self.count),
            b => format!("{}/{per} burst {b}", self.count),
        }
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        if !(1..=MAX_COUNT).contains(&self.count)
            || !(1..=MAX_COUNT).contains(&self.burst)
            || !(1..=MAX_PER_MS).contains(&self.per_ms)
        {
            return Err(format!(
                "a rate's count and burst are 1 to {MAX_COUNT}, its period 1ms to 1d"
            ));
        }
        Ok(())
    }

    /// Credit is kept in units of 1/`per_ms` token: a millisecond adds `count` units and one
    /// start costs `per_ms`, so the arithmetic is exact.
    fn cap(&self) -> u64 {
        self.burst.saturating_mul(self.per_ms)
    }

    /// A bucket as a new limit starts it: full.
    pub fn full(&self, now: u64) -> Bucket {
        Bucket {
            credit: self.cap(),
            at_ms: now,
            ..Bucket::default()
        }
    }

    /// `b` brought up to `now`. A time a little behind the bucket's (`STEP_BACK_MS`) adds
    /// nothing and keeps the bucket's: credit for the same milliseconds is never earned twice.
    /// A clock stepped back further moves the bucket's time back with it and adds nothing, so
    /// that a step back never holds the queue until the clock catches up.
    fn refill(&self, b: Bucket, now: u64) -> Bucket {
        let at_ms = if now < b.at_ms && b.at_ms - now <= STEP_BACK_MS {
            b.at_ms
        } else {
            now
        };
        let gained = now.saturating_sub(b.at_ms).saturating_mul(self.count);
        Bucket {
            credit: b.credit.saturating_add(gained).min(self.cap()),
            at_ms,
            ..b
        }
    }

    /// A bucket kept for the limit `old`, carried over to this one: the whole starts it held,
    /// up to this burst, and its time and counts. A limit changed by `init` while consumers
    /// run is then neither a fresh burst nor a stall.
    fn carry_over(&self, old: &Rate, b: Bucket) -> Bucket {
        Bucket {
            credit: (b.credit / old.per_ms).min(self.burst) * self.per_ms,
            ..b
        }
    }

    /// Takes up to `want` starts at `now`: the bucket after, how many were granted, and, when
    /// fewer than wanted, the instant at which the next start will be allowed.
    pub fn take(&self, b: Bucket, now: u64, want: u64) -> (Bucket, u64, Option<u64>) {
        let mut b = self.refill(b, now);
        let granted = want.min(b.credit / self.per_ms);
        b.credit -= granted * self.per_ms;
        b = b.record(now, granted);
        let next = (granted < want).then(|| {
            let missing = self.per_ms - b.credit % self.per_ms;
            b.at_ms
                .max(now)
                .saturating_add(missing.div_ceil(self.count))
        });
        (b, granted, next)
    }

    /// Gives back `n` starts taken at `now` and not used (a pop that found fewer messages).
    pub fn give_back(&self, b: Bucket, now: u64, n: u64) -> Bucket {
        let mut b = self.refill(b, now);
        b.credit = b
            .credit
            .saturating_add(n.saturating_mul(self.per_ms))
            .min(self.cap());
        if b.slot == now / SLOT_MS {
            b.slot_count = b.slot_count.saturating_sub(n);
        }
        b
    }
}

/// A token bucket, and the count of starts in the current and the previous slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub credit: u64,
    pub at_ms: u64,
    /// The slot (`now / SLOT_MS`) that `slot_count` counts.
    pub slot: u64,
    pub slot_count: u64,
    /// Starts in the slot just before `slot`.
    pub prev_count: u64,
}

impl Bucket {
    fn record(self, now: u64, n: u64) -> Bucket {
        let slot = now / SLOT_MS;
        match slot.checked_sub(self.slot) {
            Some(0) => Bucket {
                slot_count: self.slot_count.saturating_add(n),
                ..self
            },
            Some(1) => Bucket {
                slot,
                slot_count: n,
                prev_count: self.slot_count,
                ..self
            },
            _ => Bucket {
                slot,
                slot_count: n,
                prev_count: 0,
                ..self
            },
        }
    }

    /// Starts per second over the last full slot before `now`.
    pub fn per_second(&self, now: u64) -> f64 {
        let last_full = match (now / SLOT_MS).checked_sub(self.slot) {
            Some(0) => self.prev_count,
            Some(1) => self.slot_count,
            _ => 0,
        };
        last_full as f64 * 1000.0 / SLOT_MS as f64
    }
}

/// What one look at the spool-wide limit granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub granted: u64,
    /// When fewer than wanted were granted: when the next start will be allowed.
    pub next_ms: Option<u64>,
}

/// The state file's one line: the limit it was kept for, then the bucket, in fixed widths so
/// that every update is one write of the same bytes' length at offset 0.
fn format_state(r: &Rate, b: &Bucket) -> String {
    format!(
        "qspool-rate 1 {:07}/{:08}/{:07} {:020} {:013} {:013} {:020} {:020}\n",
        r.count, r.per_ms, r.burst, b.credit, b.at_ms, b.slot, b.slot_count, b.prev_count
    )
}

/// The bucket of a state file, carried over to `r` if it was kept for another limit; `None`
/// for anything else (no file, a write cut short by a crash, garbage): the bucket then starts
/// full. Only the first line counts.
fn parse_state(text: &str, r: &Rate) -> Option<Bucket> {
    let line = text.split_inclusive('\n').next()?;
    let mut f = line.strip_suffix('\n')?.split(' ');
    if (f.next()?, f.next()?) != ("qspool-rate", "1") {
        return None;
    }
    let mut limit = f.next()?.split('/').map(str::parse::<u64>);
    let kept = Rate {
        count: limit.next()?.ok()?,
        per_ms: limit.next()?.ok()?,
        burst: limit.next()?.ok()?,
    };
    let mut n = || f.next()?.parse::<u64>().ok();
    let b = Bucket {
        credit: n()?,
        at_ms: n()?,
        slot: n()?,
        slot_count: n()?,
        prev_count: n()?,
    };
    if f.next().is_some() || kept.check().is_err() || b.credit > kept.cap() {
        return None;
    }
    Some(if kept == *r {
        b
    } else {
        r.carry_over(&kept, b)
    })
}

impl Spool {
    /// Takes up to `want` starts from the spool-wide limit, if the spool has one (all of
    /// `want` if not), at the time read under the lock. The state file is read and rewritten under an exclusive `flock`, which
    /// the kernel drops when its holder dies: a crash can leave no lock behind, and a torn
    /// write only refills the bucket.
    pub fn take_starts(&self, want: u64) -> Result<Grant> {
        let Some(rate) = self.config.rate else {
            return Ok(Grant {
                granted: want,
                next_ms: None,
            });
        };
        let (granted, next_ms) = self.with_bucket(&rate, |b, now| {
            let (b, granted, next) = rate.take(b, now, want);
            (b, (granted, next))
        })?;
        Ok(Grant { granted, next_ms })
    }

    /// Gives back `n` starts that `take_starts` granted and that were not used.
    pub fn give_back_starts(&self, n: u64) -> Result<()> {
        match self.config.rate {
            Some(rate) if n > 0 => {
                self.with_bucket(&rate, |b, now| (rate.give_back(b, now, n), ()))
            }
            _ => Ok(()),
        }
    }

    /// The spool-wide limit and the bucket as it is at `now`, for `stats`; `None` without a
    /// limit. Only read: `stats` works on spools it may not change.
    pub fn rate_state(&self, now: u64) -> Result<Option<(Rate, Bucket)>> {
        let Some(rate) = self.config.rate else {
            return Ok(None);
        };
        let path = self.root().join(FILE_NAME);
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        let bucket = match at::open(Some(&self.root_dir), &at::c_name(FILE_NAME)?, flags, 0) {
            Ok(mut f) => read_state(&mut f, &rate)
                .with_context(|| path.display().to_string())?
                .map_or_else(|| rate.full(now), |b| rate.refill(b, now)),
            Err(e) if durable::is_missing(&e) => rate.full(now),
            Err(e) => return Err(refusal(e, &path)),
        };
        Ok(Some((rate, bucket)))
    }

    /// Runs `f` on the bucket and the time, both read under the lock (a time read before it
    /// could be older than the one the last holder wrote), and writes what it returns.
    fn with_bucket<T>(&self, rate: &Rate, f: impl FnOnce(Bucket, u64) -> (Bucket, T)) -> Result<T> {
        let path = self.root().join(FILE_NAME);
        let flags =
            libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        let mut file = at::open(
            Some(&self.root_dir),
            &at::c_name(FILE_NAME)?,
            flags,
            durable::FILE_MODE,
        )
        .map_err(|e| refusal(e, &path))?;
        let io = (|| -> Result<T> {
            file.lock().context("lock")?;
            let now = super::now_ms();
            let b = read_state(&mut file, rate)?.unwrap_or_else(|| rate.full(now));
            let (b, out) = f(b, now);
            let line = format_state(rate, &b);
            // Not synced: after a power loss the bucket refills, which a limit can afford. The
            // truncation drops whatever a foreign writer left past the line.
            file.write_all_at(line.as_bytes(), 0).context("write")?;
            file.set_len(line.len() as u64).context("truncate")?;
            Ok(out)
        })();
        io.with_context(|| path.display().to_string())
    }
}

/// The bucket in an opened state file; only a plain file is read, and only its first line.
fn read_state(file: &mut File, rate: &Rate) -> Result<Option<Bucket>> {
    let st = at::fstat(file)?;
    if !st.is_file() {
        bail!("not a regular file; refusing to use it");
    }
    let mut text = String::new();
    file.rewind()?;
    // A line is under 150 bytes; more is not ours, and is read no further.
    let _ = (&*file).take(256).read_to_string(&mut text);
    Ok(parse_state(&text, rate))
}

fn refusal(e: std::io::Error, path: &std::path::Path) -> anyhow::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        anyhow::anyhow!("{}: a symbolic link; refusing to follow it", path.display())
    } else if e.raw_os_error() == Some(libc::EISDIR) {
        anyhow::anyhow!("{}: not a regular file; refusing to use it", path.display())
    } else {
        anyhow::Error::new(e).context(format!("open {}", path.display()))
    }
}

/// A limit kept in memory, for `work --rate`: the same bucket, for one process.
#[derive(Debug)]
pub struct Local {
    pub rate: Rate,
    bucket: Bucket,
}

impl Local {
    pub fn new(rate: Rate, now: u64) -> Local {
        Local {
            rate,
            bucket: rate.full(now),
        }
    }

    pub fn take(&mut self, now: u64, want: u64) -> Grant {
        let (b, granted, next_ms) = self.rate.take(self.bucket, now, want);
        self.bucket = b;
        Grant { granted, next_ms }
    }

    pub fn give_back(&mut self, now: u64, n: u64) {
        self.bucket = self.rate.give_back(self.bucket, now, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str, burst: u64) -> Rate {
        Rate {
            burst,
            ..Rate::parse(s).unwrap()
        }
    }

    #[test]
    fn parses_and_describes_limits() {
        assert_eq!(rate("100/s", 1).per_ms, 1000);
        assert_eq!(rate("5/m", 1).per_ms, 60_000);
        assert_eq!(rate("2/h", 1).per_ms, 3_600_000);
        assert_eq!(rate("3/10s", 1).per_ms, 10_000);
        assert_eq!(rate("100/s", 20).describe(), "100/s burst 20");
        assert_eq!(rate("3/10s", 1).describe(), "3/10s");
        for bad in [
            "",
            "100",
            "0/s",
            "x/s",
            "100/",
            "100/x",
            "2000000/s",
            "1/2d",
            "-1/s",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_full_bucket_grants_the_burst_then_paces() {
        let r = rate("10/s", 3);
        let b = r.full(1000);
        let (b, got, next) = r.take(b, 1000, 5);
        assert_eq!((got, next), (3, Some(1100)));
        let (b, got, next) = r.take(b, 1099, 1);
        assert_eq!((got, next), (0, Some(1100)));
        let (b, got, next) = r.take(b, 1100, 1);
        assert_eq!((got, next), (1, None));
        // A long quiet spell refills to the burst, never beyond.
        let (_, got, _) = r.take(b, 100_000, 10);
        assert_eq!(got, 3);
    }

    #[test]
    fn over_any_span_starts_stay_within_rate_and_burst() {
        let r = rate("7/s", 2);
        let mut b = r.full(0);
        let mut starts = 0;
        for now in (0..60_000).step_by(3) {
            let (nb, got, _) = r.take(b, now, 4);
            b = nb;
            starts += got;
        }
        assert!(starts <= 7 * 60 + 2, "{starts}");
        assert!(starts >= 7 * 60 - 1, "{starts}");
    }

    #[test]
    fn a_clock_that_steps_back_does_not_hold_the_queue() {
        let r = rate("1/s", 1);
        let t = 10_000_000;
        let (b, got, _) = r.take(r.full(t), t, 1);
        assert_eq!(got, 1);
        // An hour back: the next start comes a second after the new time, not an hour later.
        let back = t - 3_600_000;
        let (b, got, next) = r.take(b, back, 1);
        assert_eq!((got, next), (0, Some(back + 1000)));
        let (_, got, _) = r.take(b, back + 1000, 1);
        assert_eq!(got, 1);
    }

    #[test]
    fn a_time_a_little_behind_the_bucket_earns_nothing_twice() {
        // Callers whose clocks lag by a few milliseconds, interleaved: never more than the rate.
        let r = rate("100/s", 20);
        let mut b = r.full(0);
        let mut starts = 0;
        for i in 0..60_000u64 {
            let now = if i % 2 == 0 { i } else { i.saturating_sub(3) };
            let (nb, got, _) = r.take(b, now, 1);
            b = nb;
            starts += got;
        }
        assert!(starts <= 100 * 60 + 20, "{starts}");
        assert!(starts >= 100 * 60 - 1, "{starts}");
    }

    #[test]
    fn a_changed_limit_carries_the_bucket_over() {
        let old = rate("1/10s", 1);
        let new = rate("1/9s", 1);
        let (b, got, _) = old.take(old.full(0), 0, 1);
        assert_eq!(got, 1);
        let line = format_state(&old, &b);
        // Read for the new limit: empty, not full.
        let carried = parse_state(&line, &new).unwrap();
        assert_eq!(new.take(carried, 10, 1).1, 0);
        // And a full bucket keeps no more than the new burst.
        let big = rate("10/s", 10);
        let line = format_state(&big, &big.full(0));
        let carried = parse_state(&line, &rate("10/s", 2)).unwrap();
        assert_eq!(rate("10/s", 2).take(carried, 0, 10).1, 2);
    }

    #[test]
    fn given_back_starts_are_credited_and_uncounted() {
        let r = rate("1/s", 2);
        let (b, got, _) = r.take(r.full(0), 0, 2);
        assert_eq!(got, 2);
        let b = r.give_back(b, 0, 1);
        assert_eq!(b.slot_count, 1);
        let (_, got, _) = r.take(b, 0, 2);
        assert_eq!(got, 1);
    }

    #[test]
    fn the_current_rate_is_the_last_full_slot() {
        let r = rate("1000/s", 1000);
        let mut b = r.full(0);
        for now in 0..SLOT_MS {
            b = r.take(b, now, 1).0;
        }
        assert_eq!(b.per_second(SLOT_MS - 1), 0.0);
        // One start a millisecond for a whole slot: 1000 a second.
        assert_eq!(b.per_second(SLOT_MS + 5), 1000.0);
        assert_eq!(b.per_second(3 * SLOT_MS), 0.0);
    }

    #[test]
    fn the_state_line_round_trips_and_anything_else_is_a_full_bucket() {
        let r = rate("100/s", 20);
        let b = Bucket {
            credit: 1234,
            at_ms: 1_700_000_000_000,
            slot: 170_000_000,
            slot_count: 5,
            prev_count: 9,
        };
        let line = format_state(&r, &b);
        assert!(line.len() < 150, "{}", line.len());
        assert_eq!(parse_state(&line, &r), Some(b));
        // Junk after the line (no writer of qspool's leaves any) does not count.
        assert_eq!(parse_state(&format!("{line}junk\nmore"), &r), Some(b));
        assert_eq!(parse_state(&line[..line.len() - 3], &r), None);
        assert_eq!(parse_state("", &r), None);
        assert_eq!(parse_state(&line.replace("1234", "9999999999"), &r), None);
    }
}

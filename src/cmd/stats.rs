//! `qspool stats`: the shape of a spool at a glance, for people, for scripts (JSON) and for
//! Prometheus.

use crate::cli::StatsArgs;
use crate::duration::format_ms;
use crate::encode::rfc3339_ms;
use crate::exit::Code;
use crate::spool::rate::{Bucket, Rate};
use crate::spool::scan::{AGE_BOUNDS_S, Counts, State};
use crate::spool::{Spool, durable, now_ms, now_us, uses};
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::Path;

#[derive(Serialize)]
struct Report {
    ready: u64,
    delayed: u64,
    leased: u64,
    expired: u64,
    done: u64,
    dead: u64,
    foreign: u64,
    oldest_ready_age_seconds: Option<f64>,
    oldest_dead_age_seconds: Option<f64>,
    /// Payload bytes per state.
    bytes: PerState<u64>,
    /// Time since the oldest message of each state was first pushed; null for an empty state.
    oldest_age_seconds: PerState<Option<f64>>,
    /// Messages per state by age since first push, in the buckets of `bounds_seconds` (inclusive
    /// upper bounds), then one for all older.
    age_histogram: Histogram,
    /// The live leases that expire soonest, soonest first.
    soonest_expiring_leases: Vec<Expiring>,
    paused: bool,
    paused_since: Option<String>,
    /// The spool-wide rate limit (`init --rate`), null without one.
    rate_limit: Option<RateLimit>,
    /// Groups (`push --group`) with a message out, and the messages waiting behind them.
    groups: Groups,
}

#[derive(Serialize)]
struct Groups {
    active: u64,
    waiting: u64,
}

#[derive(Serialize)]
struct RateLimit {
    /// As `init --rate` takes it: `100/s`.
    rate: String,
    per_second: f64,
    burst: u64,
    /// Leases started per second, over the last full 10-second slot.
    current_per_second: f64,
    /// Leases that could start at once now.
    available: u64,
}

/// What holds consumption back: the pause and the rate limit, read (never changed) by stats.
struct Control {
    paused_since: Option<u64>,
    rate: Option<(Rate, Bucket)>,
    now: u64,
    /// Active groups and waiting messages (`Spool::group_counts`).
    groups: (u64, u64),
}

impl Control {
    fn rate_limit(&self) -> Option<RateLimit> {
        self.rate.map(|(r, b)| RateLimit {
            rate: r.describe(),
            per_second: r.count as f64 * 1000.0 / r.per_ms as f64,
            burst: r.burst,
            current_per_second: b.per_second(self.now),
            available: b.credit / r.per_ms,
        })
    }
}

#[derive(Serialize)]
struct Histogram {
    bounds_seconds: Vec<u64>,
    #[serde(flatten)]
    by_state: PerState<Vec<u64>>,
}

/// One value per state, in the order `stats` always uses.
#[derive(Serialize)]
struct PerState<T> {
    ready: T,
    delayed: T,
    leased: T,
    expired: T,
    done: T,
    dead: T,
}

impl<T> PerState<T> {
    fn of(f: impl Fn(State) -> T) -> PerState<T> {
        PerState {
            ready: f(State::Ready),
            delayed: f(State::Delayed),
            leased: f(State::Leased),
            expired: f(State::Expired),
            done: f(State::Done),
            dead: f(State::Dead),
        }
    }
}

#[derive(Serialize)]
struct Expiring {
    id: String,
    lease_expires_at: String,
    expires_in_seconds: f64,
}

/// The most threads a scan uses: beyond a few, they only queue for the same directories.
const MAX_THREADS: usize = 4;

pub fn run(root: &Path, args: &StatsArgs) -> Result<Code> {
    let spool = Spool::open(root, uses::ALL)?;
    let Some(every) = args.watch else {
        return once(&spool, root, args, false);
    };
    // Until interrupted: SIGINT's default action is the way out, and nothing is held.
    let tty = std::io::stdout().is_terminal();
    loop {
        once(&spool, root, args, tty)?;
        std::thread::sleep(std::time::Duration::from_millis(every));
    }
}

/// One look at the spool, printed (or written to `--output`). `redraw`: clear the terminal
/// first, for `--watch`.
fn once(spool: &Spool, root: &Path, args: &StatsArgs, redraw: bool) -> Result<Code> {
    let now = now_ms();
    // Two or more threads share a deep queue's listing (the cost is in the kernel, per entry).
    let threads = crate::os::cpus().min(MAX_THREADS);
    // Retention before counting, since a spool without the cron job must not grow without
    // bound. Best effort, as stats works on spools it may not change: what cannot be removed
    // is counted.
    let _ = spool.expire_done(now, &mut |_| Ok(()), &mut |_| {});
    let _ = spool.expire_keys(now);
    let parts = spool.scan_parallel(now, threads, &Counts::default, &|c, seen| c.add(seen, now))?;
    let mut c = Counts::default();
    for part in parts {
        c.merge(part);
    }
    let ctl = Control {
        paused_since: spool.paused()?,
        rate: spool.rate_state(now)?,
        now,
        groups: spool.group_counts()?,
    };
    let label = if args.prometheus {
        std::path::absolute(root)
            .with_context(|| format!("resolve spool path {}", root.display()))?
            .to_string_lossy()
            .into_owned()
    } else {
        root.display().to_string()
    };
    emit(&c, &ctl, &label, args, redraw)
}

/// What a JetStream queue's server tells `stats` (`jetstream::queue::Queue::counts`): ready is
/// not yet delivered; leased is delivered and not settled (leased, or waiting for redelivery:
/// JetStream does not tell these apart); bytes and oldest times (µs) of the live and dead
/// streams.
pub(crate) struct Remote {
    pub ready: u64,
    pub leased: u64,
    pub dead: u64,
    pub live_bytes: u64,
    pub dead_bytes: u64,
    pub oldest_live_us: Option<u64>,
    pub oldest_dead_us: Option<u64>,
}

/// `stats` of a JetStream queue, in the same three forms and with the same names. The server
/// does not tell ready from delayed or leased from expired, keeps no acked messages, and has no
/// per-message ages: those are 0 (the live stream's bytes and oldest age count under ready).
pub(crate) fn render_remote(url: &str, r: &Remote, args: &StatsArgs) -> Result<Code> {
    let now = now_ms();
    let mut c = Counts {
        ready: r.ready,
        leased: r.leased,
        dead: r.dead,
        ..Counts::default()
    };
    c.bytes[State::Ready as usize] = r.live_bytes;
    c.bytes[State::Dead as usize] = r.dead_bytes;
    c.oldest_us[State::Ready as usize] = r.oldest_live_us;
    c.oldest_us[State::Dead as usize] = r.oldest_dead_us;
    c.oldest_ready_us = r.oldest_live_us;
    let ctl = Control {
        paused_since: None,
        rate: None,
        now,
        groups: (0, 0),
    };
    emit(&c, &ctl, url, args, false)
}

/// Prints (or writes to `--output`) one look; `shown` names the spool in Prometheus labels and
/// the `--watch` header.
fn emit(c: &Counts, ctl: &Control, shown: &str, args: &StatsArgs, redraw: bool) -> Result<Code> {
    let now = ctl.now;
    let text = if args.prometheus {
        let text = prometheus(c, ctl, shown, now_us());
        if let Some(file) = &args.output {
            write_atomically(file, text.as_bytes())
                .with_context(|| format!("write {}", file.display()))?;
            return Ok(Code::Ok);
        }
        text
    } else if args.json {
        serde_json::to_string(&report(c, ctl, now_us()))? + "\n"
    } else {
        let mut t = String::new();
        if redraw {
            t.push_str("\x1b[H\x1b[2J");
        }
        if args.watch.is_some() {
            t.push_str(&format!("{shown}  {}\n\n", rfc3339_ms(now)));
        }
        t.push_str(&human(c, ctl, now_us()));
        if args.watch.is_some() && !redraw {
            t.push('\n');
        }
        t
    };
    let mut out = crate::output::stdout()?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("write to standard output")?;
    Ok(Code::Ok)
}

/// Seconds since `then_us`, to the millisecond.
fn age_s(now_us: u64, then_us: u64) -> f64 {
    (now_us.saturating_sub(then_us) as f64 / 1e3).round() / 1e3
}

fn report(c: &Counts, ctl: &Control, now_us: u64) -> Report {
    let oldest = |s: State| c.oldest_us[s as usize].map(|t| age_s(now_us, t));
    Report {
        ready: c.ready,
        delayed: c.delayed,
        leased: c.leased,
        expired: c.expired,
        done: c.done,
        dead: c.dead,
        foreign: c.foreign,
        oldest_ready_age_seconds: oldest(State::Ready),
        oldest_dead_age_seconds: oldest(State::Dead),
        bytes: PerState::of(|s| c.bytes[s as usize]),
        oldest_age_seconds: PerState::of(oldest),
        age_histogram: Histogram {
            bounds_seconds: AGE_BOUNDS_S.to_vec(),
            by_state: PerState::of(|s| c.by_age[s as usize].to_vec()),
        },
        soonest_expiring_leases: c
            .soonest
            .iter()
            .map(|(at, id)| Expiring {
                id: id.to_string(),
                lease_expires_at: rfc3339_ms(*at),
                expires_in_seconds: (at.saturating_mul(1000).saturating_sub(now_us) as f64 / 1e3)
                    .round()
                    / 1e3,
            })
            .collect(),
        paused: ctl.paused_since.is_some(),
        paused_since: ctl.paused_since.map(rfc3339_ms),
        rate_limit: ctl.rate_limit(),
        groups: Groups {
            active: ctl.groups.0,
            waiting: ctl.groups.1,
        },
    }
}

/// A duration for people: whole seconds from ten seconds on, where milliseconds are noise.
fn rounded(ms: u64) -> String {
    format_ms(if ms >= 10_000 { ms / 1000 * 1000 } else { ms })
}

/// The table for people: one row per state with its count, bytes, the age of its oldest
/// message and the qshape histogram; then foreign entries and the leases expiring soonest.
fn human(c: &Counts, ctl: &Control, now_us: u64) -> String {
    let age = |us: Option<u64>| match us {
        Some(t) => rounded(now_us.saturating_sub(t) / 1000),
        None => "-".to_owned(),
    };
    let mut out = format!(
        "{:<8} {:>9} {:>11} {:>8} ",
        "state", "count", "bytes", "oldest"
    );
    // In minutes, as qshape labels them.
    for b in AGE_BOUNDS_S {
        out.push_str(&format!("{:>6}", format!("{}m", b / 60)));
    }
    out.push_str(&format!("{:>7}\n", "older"));
    for s in State::ALL {
        let i = s as usize;
        out.push_str(&format!(
            "{:<8} {:>9} {:>11} {:>8} ",
            s.name(),
            c.of(s),
            c.bytes[i],
            age(c.oldest_us[i])
        ));
        let (last, rest) = c.by_age[i].split_last().expect("buckets");
        for n in rest {
            out.push_str(&format!("{n:>6}"));
        }
        out.push_str(&format!("{last:>7}\n"));
    }
    out.push_str(&format!("foreign  {:>9}\n", c.foreign));
    if ctl.groups.0 > 0 || ctl.groups.1 > 0 {
        out.push_str(&format!(
            "groups   {} active, {} messages waiting behind their heads\n",
            ctl.groups.0, ctl.groups.1
        ));
    }
    if let Some(since) = ctl.paused_since {
        out.push_str(&format!("paused   since {}\n", rfc3339_ms(since)));
    }
    if let Some(r) = ctl.rate_limit() {
        out.push_str(&format!(
            "rate     limit {}, now {:.1}/s, {} available\n",
            r.rate, r.current_per_second, r.available
        ));
    }
    if !c.soonest.is_empty() {
        out.push_str("leases expiring soonest\n");
        for (at, id) in &c.soonest {
            let ms = at.saturating_sub(now_us / 1000);
            out.push_str(&format!("  {id}  in {}\n", rounded(ms)));
        }
    }
    out
}

/// The node_exporter textfile format (Prometheus text exposition 0.0.4). Every series carries
/// the spool's path, so that several spools on one host make distinct series; a value that
/// does not exist (the oldest age of an empty state) has no sample at all.
fn prometheus(c: &Counts, ctl: &Control, spool: &str, now_us: u64) -> String {
    let label = format!("spool=\"{}\"", escape_label(spool));
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: &[(Option<&str>, String)]| {
        if samples.is_empty() {
            return;
        }
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (state, value) in samples {
            match state {
                Some(s) => out.push_str(&format!("{name}{{{label},state=\"{s}\"}} {value}\n")),
                None => out.push_str(&format!("{name}{{{label}}} {value}\n")),
            }
        }
    };
    let per_state = |f: &dyn Fn(State) -> Option<String>| -> Vec<(Option<&str>, String)> {
        State::ALL
            .iter()
            .filter_map(|&s| f(s).map(|v| (Some(s.name()), v)))
            .collect()
    };
    family(
        "qspool_messages",
        "Messages in the spool, by state.",
        &per_state(&|s| Some(c.of(s).to_string())),
    );
    family(
        "qspool_bytes",
        "Payload bytes of the messages in the spool, by state.",
        &per_state(&|s| Some(c.bytes[s as usize].to_string())),
    );
    family(
        "qspool_oldest_message_age_seconds",
        "Time since the oldest message in each state was first pushed (done, dead: since it got there).",
        &per_state(&|s| {
            c.oldest_us[s as usize].map(|t| format!("{:.3}", now_us.saturating_sub(t) as f64 / 1e6))
        }),
    );
    family(
        "qspool_foreign_entries",
        "Entries in the spool that are not messages (see qspool stats).",
        &[(None, c.foreign.to_string())],
    );
    family(
        "qspool_groups_active",
        "Groups (push --group) with a message ready, delayed or leased.",
        &[(None, ctl.groups.0.to_string())],
    );
    family(
        "qspool_waiting_messages",
        "Messages waiting behind the head of their group, not yet ready.",
        &[(None, ctl.groups.1.to_string())],
    );
    family(
        "qspool_paused",
        "1 while consumption is paused (qspool pause), else 0.",
        &[(None, u8::from(ctl.paused_since.is_some()).to_string())],
    );
    let since = ctl.paused_since.map(|ms| format!("{:.3}", ms as f64 / 1e3));
    family(
        "qspool_paused_since_seconds",
        "When consumption was paused, in seconds since the Unix epoch (only while paused).",
        &since.map(|v| (None, v)).into_iter().collect::<Vec<_>>(),
    );
    if let Some(r) = ctl.rate_limit() {
        family(
            "qspool_rate_limit_per_second",
            "The spool-wide limit on leases started per second (init --rate).",
            &[(None, format!("{}", r.per_second))],
        );
        family(
            "qspool_rate_burst",
            "How many leases the spool-wide limit lets start at once after a quiet spell.",
            &[(None, r.burst.to_string())],
        );
        family(
            "qspool_rate_current_per_second",
            "Leases started per second under the spool-wide limit, over the last full 10 s.",
            &[(None, format!("{}", r.current_per_second))],
        );
    }
    out
}

/// A label value as the exposition format wants it: backslash, double quote and newline
/// escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Replaces `file` with `text` in one rename (`durable::replace_file`), so that a collector
/// reading it never sees half a file; the temporary name does not end in `.prom`, which the
/// textfile collector would read. 0644: the collector runs as another user, and no payload is
/// in here. The directory is opened as the user named it; the file itself is never followed.
fn write_atomically(file: &Path, text: &[u8]) -> std::io::Result<()> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name");
    let name = file
        .file_name()
        .ok_or_else(invalid)?
        .to_str()
        .ok_or_else(invalid)?;
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::File::open(parent)?;
    durable::replace_file(&dir, name, text, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"/a"b\c"#), r#"/a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
    }

    #[test]
    fn an_empty_spool_has_counts_but_no_ages() {
        let ctl = Control {
            paused_since: None,
            rate: None,
            now: 0,
            groups: (0, 0),
        };
        let text = prometheus(&Counts::default(), &ctl, "/s", 0);
        assert!(text.contains("qspool_messages{spool=\"/s\",state=\"ready\"} 0\n"));
        assert!(!text.contains("qspool_oldest_message_age_seconds"));
        assert!(text.contains("qspool_foreign_entries{spool=\"/s\"} 0\n"));
    }
}

//! `qspool stats`: messages per state, the age of the oldest ready one, and foreign entries.

use crate::cli::StatsArgs;
use crate::duration::format_ms;
use crate::exit::Code;
use crate::spool::scan::AGE_BOUNDS_S;
use crate::spool::{Spool, now_ms, now_us};
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
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
    /// Ready messages by age since first push, youngest first.
    ready_by_age: Vec<AgeBucket>,
}

#[derive(Serialize)]
struct AgeBucket {
    /// Inclusive upper bound of the bucket; null for the last, which has none.
    max_age_seconds: Option<u64>,
    count: u64,
}

pub fn run(root: &Path, args: &StatsArgs) -> Result<Code> {
    let spool = Spool::open(root)?;
    let c = spool.count(now_ms())?;
    let age = c
        .oldest_ready_us
        .map(|t| now_us().saturating_sub(t) as f64 / 1e6)
        .map(|s| (s * 1000.0).round() / 1000.0);
    let report = Report {
        ready: c.ready,
        delayed: c.delayed,
        leased: c.leased,
        expired: c.expired,
        done: c.done,
        dead: c.dead,
        foreign: c.foreign,
        oldest_ready_age_seconds: age,
        ready_by_age: c
            .ready_by_age
            .iter()
            .enumerate()
            .map(|(i, &count)| AgeBucket {
                max_age_seconds: AGE_BOUNDS_S.get(i).copied(),
                count,
            })
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    let text = if args.json {
        serde_json::to_string(&report)? + "\n"
    } else {
        human(&report)
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("write to standard output")?;
    Ok(Code::Ok)
}

fn human(r: &Report) -> String {
    let age = match r.oldest_ready_age_seconds {
        // Past a minute, milliseconds are noise.
        Some(s) if s >= 60.0 => format_ms(s as u64 * 1000),
        Some(s) => format_ms((s * 1000.0) as u64),
        None => "-".to_owned(),
    };
    let mut out = format!(
        "ready     {}\ndelayed   {}\nleased    {}\nexpired   {}\ndone      {}\ndead      {}\nforeign   {}\noldest ready age  {age}\n",
        r.ready, r.delayed, r.leased, r.expired, r.done, r.dead, r.foreign
    );
    out.push_str("backlog  ");
    for b in &r.ready_by_age {
        match b.max_age_seconds {
            Some(s) => out.push_str(&format!("<={}:{} ", format_ms(s * 1000), b.count)),
            None => out.push_str(&format!("older:{}", b.count)),
        }
    }
    out.push('\n');
    out
}

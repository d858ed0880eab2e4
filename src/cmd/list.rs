//! `qspool list`: the messages of a spool, one line each, without reading a payload (mailq).

use crate::cli::{ListArgs, StateArg};
use crate::duration::format_ms;
use crate::encode::{rfc3339_ms, rfc3339_us};
use crate::exit::Code;
use crate::spool::scan::{Seen, State};
use crate::spool::{Spool, now_ms};
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

#[derive(Serialize)]
struct Line<'a> {
    state: &'static str,
    id: &'a str,
    attempts: u32,
    enqueued_at: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    visible_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
}

pub fn run(root: &Path, args: &ListArgs) -> Result<Code> {
    let wanted: Vec<State> = if !args.states.is_empty() {
        args.states.iter().map(|s| state_of(*s)).collect()
    } else if args.all {
        State::ALL.to_vec()
    } else {
        State::ALL
            .into_iter()
            .filter(|s| *s != State::Done)
            .collect()
    };
    let spool = Spool::open(root)?;
    let now = now_ms();
    let mut seen = Vec::new();
    spool.scan(now, &mut |m| {
        if let Some(m) = m.filter(|m| wanted.contains(&m.state)) {
            seen.push(m);
        }
    })?;
    seen.sort_unstable_by(|a, b| (a.state, &a.id).cmp(&(b.state, &b.id)));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for m in &seen {
        let text = if args.json {
            serde_json::to_string(&json_line(m))?
        } else {
            human_line(m, now)
        };
        writeln!(out, "{text}").context("write to standard output")?;
    }
    out.flush().context("write to standard output")?;
    Ok(Code::Ok)
}

fn state_of(s: StateArg) -> State {
    match s {
        StateArg::Ready => State::Ready,
        StateArg::Delayed => State::Delayed,
        StateArg::Leased => State::Leased,
        StateArg::Expired => State::Expired,
        StateArg::Done => State::Done,
        StateArg::Dead => State::Dead,
    }
}

fn json_line(m: &Seen) -> Line<'_> {
    let at = Some(rfc3339_ms(m.at_ms));
    let (mut visible_at, mut lease_expires_at, mut finished_at) = (None, None, None);
    match m.state {
        State::Ready | State::Delayed => visible_at = at,
        State::Leased | State::Expired => lease_expires_at = at,
        State::Done | State::Dead => finished_at = at,
    }
    Line {
        state: m.state.name(),
        id: m.id.as_str(),
        attempts: m.attempts,
        enqueued_at: rfc3339_us(m.id.enqueued_us()),
        size: m.size,
        visible_at,
        lease_expires_at,
        finished_at,
    }
}

fn human_line(m: &Seen, now: u64) -> String {
    let age = format_ms(round(now.saturating_sub(m.id.enqueued_us() / 1000)));
    let when = match m.state {
        State::Ready => String::new(),
        State::Delayed => format!(
            "visible in {}",
            format_ms(round(m.at_ms.saturating_sub(now)))
        ),
        State::Leased => format!(
            "expires in {}",
            format_ms(round(m.at_ms.saturating_sub(now)))
        ),
        State::Expired => format!(
            "expired {} ago",
            format_ms(round(now.saturating_sub(m.at_ms)))
        ),
        State::Done | State::Dead => {
            format!(
                "ended {} ago",
                format_ms(round(now.saturating_sub(m.at_ms)))
            )
        }
    };
    format!(
        "{:<8} {}  a{:<3} {:>9} {:>10}B  {when}",
        m.state.name(),
        m.id,
        m.attempts,
        age,
        m.size
    )
    .trim_end()
    .to_owned()
}

/// Whole seconds past a minute, milliseconds below: what a person reading a queue wants.
fn round(ms: u64) -> u64 {
    if ms >= 60_000 { ms / 1000 * 1000 } else { ms }
}

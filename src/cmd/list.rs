//! `qspool list`: the messages of a spool, one line each, without reading a payload (mailq).

use crate::cli::ListArgs;
use crate::duration::format_ms;
use crate::encode::{rfc3339_ms, rfc3339_us};
use crate::exit::Code;
use crate::spool::name::{Id, KeyHash};
use crate::spool::scan::{Seen, State};
use crate::spool::{Spool, now_ms, uses};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BinaryHeap;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

#[derive(Serialize)]
struct Line<'a> {
    id: &'a str,
    state: &'static str,
    /// Leases so far (ready, delayed, done, dead), or this lease's number (leased, expired).
    attempt: u32,
    enqueued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    visible_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    /// When the message entered its present state, where the name records it: the finish time
    /// of done and dead messages, the visible-at of ready ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    state_since: Option<String>,
    size: u64,
    /// The dedup key (`push --key`) of a keyed message; `null` when its record is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Option<String>>,
}

/// What a line says of one message, whichever backend holds it.
pub(crate) struct View<'a> {
    pub state: State,
    pub id: &'a Id,
    pub attempts: u32,
    /// The time the state is about: visible-at, lease expiry, or finish time (ms).
    pub at_ms: u64,
    pub size: u64,
    pub enqueued_us: u64,
}

impl Seen {
    fn view(&self) -> View<'_> {
        View {
            state: self.state,
            id: self.id(),
            attempts: self.attempts(),
            at_ms: self.named_ms(),
            size: self.size,
            enqueued_us: self.id().enqueued_us(),
        }
    }
}

/// The states `list` shows: those asked for, else all but done (all with --all).
pub(crate) fn wanted_states(args: &ListArgs) -> Vec<State> {
    if !args.states.is_empty() {
        args.states.clone()
    } else if args.all {
        State::ALL.to_vec()
    } else {
        State::ALL
            .into_iter()
            .filter(|s| *s != State::Done)
            .collect()
    }
}

pub fn run(root: &Path, args: &ListArgs) -> Result<Code> {
    let wanted = wanted_states(args);
    let spool = Spool::open(root, uses::ALL)?;
    let now = now_ms();
    let limit = args.limit.unwrap_or(usize::MAX);
    // With --limit, only the `limit` oldest are kept as the scan goes (a max-heap on the id,
    // which sorts by enqueue time): memory follows the limit, not the spool.
    let mut oldest: BinaryHeap<ById> = BinaryHeap::new();
    spool.scan(now, &mut |m| {
        if let Some(m) = m.filter(|m| wanted.contains(&m.state)) {
            if oldest.len() < limit {
                oldest.push(ById(m));
            } else if oldest.peek().is_some_and(|top| m.id() < top.0.id()) {
                oldest.pop();
                oldest.push(ById(m));
            }
        }
    })?;
    // Oldest enqueued first, across states.
    let seen: Vec<Seen> = oldest.into_sorted_vec().into_iter().map(|b| b.0).collect();
    let mut out = std::io::BufWriter::new(crate::output::stdout()?);
    let mut keys = KeyTexts::new(&spool);
    for m in &seen {
        let key = keys.of(m.name.key());
        writeln!(out, "{}", line(&m.view(), now, key, args.json)?)
            .context("write to standard output")?;
    }
    out.flush().context("write to standard output")?;
    Ok(Code::Ok)
}

/// One line of `list`, for people or (`json`) for scripts.
pub(crate) fn line(
    v: &View<'_>,
    now: u64,
    key: Option<Option<String>>,
    json: bool,
) -> Result<String> {
    Ok(if json {
        serde_json::to_string(&json_line(v, key))?
    } else {
        human_line(v, now, key)
    })
}

/// The keys of the messages listed, each read from its record once.
pub(crate) struct KeyTexts<'s> {
    spool: &'s Spool,
    known: HashMap<KeyHash, Option<String>>,
}

impl<'s> KeyTexts<'s> {
    pub(crate) fn new(spool: &'s Spool) -> KeyTexts<'s> {
        KeyTexts {
            spool,
            known: HashMap::new(),
        }
    }

    /// `None`: no key; `Some(None)`: a key whose record is gone.
    pub(crate) fn of(&mut self, hash: Option<KeyHash>) -> Option<Option<String>> {
        let hash = hash?;
        let spool = self.spool;
        Some(
            self.known
                .entry(hash)
                .or_insert_with(|| {
                    spool
                        .key_text(hash)
                        .map(|k| String::from_utf8_lossy(&k).into_owned())
                })
                .clone(),
        )
    }
}

fn json_line<'v>(m: &View<'v>, key: Option<Option<String>>) -> Line<'v> {
    let at = Some(rfc3339_ms(m.at_ms));
    let (mut visible_at, mut lease_expires_at, mut finished_at) = (None, None, None);
    let mut state_since = None;
    match m.state {
        State::Ready => {
            visible_at = at.clone();
            state_since = at;
        }
        State::Delayed => visible_at = at,
        State::Leased | State::Expired => lease_expires_at = at,
        State::Done | State::Dead => {
            finished_at = at.clone();
            state_since = at;
        }
    }
    Line {
        id: m.id.as_str(),
        state: m.state.name(),
        attempt: m.attempts,
        enqueued_at: rfc3339_us(m.enqueued_us),
        visible_at,
        lease_expires_at,
        finished_at,
        state_since,
        size: m.size,
        key,
    }
}

/// A message ordered by its id alone, for the heap of the oldest.
struct ById(Seen);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

impl Eq for ById {}

impl PartialOrd for ById {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ById {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.id().cmp(other.0.id())
    }
}

fn human_line(m: &View<'_>, now: u64, key: Option<Option<String>>) -> String {
    let age = format_ms(round(now.saturating_sub(m.enqueued_us / 1000)));
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
    // Escaped: a key is the producer's bytes, and must not drive the terminal.
    let key = match key {
        Some(Some(k)) => format!("key \"{}\"", k.escape_debug()),
        Some(None) => "key (record gone)".to_owned(),
        None => String::new(),
    };
    let tail = [when, key]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("  ");
    format!(
        "{:<8} {}  a{:<3} {:>9} {:>10}B  {tail}",
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

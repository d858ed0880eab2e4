//! `qspool replay --done` (done → new) and the body it shares with `dlq-replay` (dead → new):
//! attempts reset, ids unchanged, each id printed once it is back in the queue.

use super::parse_ids;
use crate::cli::ReplayArgs;
use crate::exit::{Code, Tally, not_found};
use crate::spool::name::Ended;
use crate::spool::scan::Named;
use crate::spool::transition::NotDurable;
use crate::spool::{Dir, Spool, now_ms, uses};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub fn run(root: &Path, args: &ReplayArgs) -> Result<Code> {
    let pick = if args.all {
        Pick::All
    } else if let Some(dur) = args.since {
        Pick::EndedSince(now_ms().saturating_sub(dur))
    } else {
        Pick::Ids(&args.ids)
    };
    replay(root, Dir::Done, pick, args.limit)
}

/// Which of the ended messages to replay.
pub enum Pick<'a> {
    All,
    /// Those that ended (were acked or dead-lettered) at or after this millisecond.
    EndedSince(u64),
    Ids(&'a [String]),
}

/// Replays the messages of `pick` from `from` (done/ or dead/) into new/, oldest (by id) first,
/// at most `limit` of them.
pub fn replay(root: &Path, from: Dir, pick: Pick<'_>, limit: Option<usize>) -> Result<Code> {
    let wanted = match pick {
        Pick::Ids(ids) => parse_ids(ids)?,
        _ => Vec::new(),
    };
    let spool = Spool::open(
        root,
        if from == Dir::Dead {
            uses::REPLAY
        } else {
            uses::REPLAY_DONE
        },
    )?;
    let from_dir = spool.state_path(from);
    // One listing, keyed by id, oldest first.
    let ended: BTreeMap<_, _> = spool
        .list_ended(from == Dir::Dead)?
        .into_iter()
        .filter_map(|m| match m {
            Named::Dead(e) | Named::Done(e) => Some((e.id.clone(), e)),
            _ => None,
        })
        .collect();
    let limit = limit.unwrap_or(usize::MAX);
    let mut tally = Tally::default();
    let mut out = crate::output::stdout()?;
    let mut one = |e: &Ended, tally: &mut Tally| -> Result<()> {
        match spool.replay(from, e) {
            Ok(true) => writeln!(out, "{}", e.id)
                .and_then(|()| out.flush())
                .context("write to standard output"),
            Ok(false) => {
                tally.fail(not_there(from, e.id.as_str(), &from_dir));
                Ok(())
            }
            Err(err) => {
                // It is in new/ and may be taken already: say so, beside the error.
                if err.downcast_ref::<NotDurable>().is_some() {
                    writeln!(out, "{}", e.id)
                        .and_then(|()| out.flush())
                        .context("write to standard output")?;
                }
                tally.fail(err);
                Ok(())
            }
        }
    };
    match pick {
        Pick::All => {
            for e in ended.values().take(limit) {
                one(e, &mut tally)?;
            }
        }
        Pick::EndedSince(since) => {
            for e in ended.values().filter(|e| e.at_ms >= since).take(limit) {
                one(e, &mut tally)?;
            }
        }
        Pick::Ids(_) => {
            let mut seen = std::collections::HashSet::new();
            for id in wanted.iter().filter(|id| seen.insert(*id)).take(limit) {
                match ended.get(id) {
                    Some(e) => one(e, &mut tally)?,
                    None => tally.fail(not_there(from, id.as_str(), &from_dir)),
                }
            }
        }
    }
    Ok(tally.code())
}

fn not_there(from: Dir, id: &str, dir: &Path) -> anyhow::Error {
    let what = if from == Dir::Dead { "dead" } else { "acked" };
    not_found(format!("{}: no {what} message with id {id}", dir.display()))
}

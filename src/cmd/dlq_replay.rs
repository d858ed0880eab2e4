//! `qspool dlq-replay`: dead → new, attempts reset, ids unchanged.

use super::parse_ids;
use crate::cli::DlqReplayArgs;
use crate::exit::{Code, Tally, not_found};
use crate::spool::name::Ended;
use crate::spool::scan::Named;
use crate::spool::transition::NotDurable;
use crate::spool::{Dir, Spool, uses};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub fn run(root: &Path, args: &DlqReplayArgs) -> Result<Code> {
    let wanted = parse_ids(&args.ids)?;
    let spool = Spool::open(root, uses::REPLAY)?;
    let dead_dir = spool.state_path(Dir::Dead);
    // One listing of dead/, keyed by id, oldest first.
    let dead: BTreeMap<_, _> = spool
        .list_ended(true)?
        .into_iter()
        .filter_map(|m| match m {
            Named::Dead(e) => Some((e.id.clone(), e)),
            _ => None,
        })
        .collect();
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut tally = Tally::default();
    let mut out = crate::output::stdout()?;
    let mut replay = |e: &Ended, tally: &mut Tally| -> Result<()> {
        match spool.replay(e) {
            Ok(true) => writeln!(out, "{}", e.id)
                .and_then(|()| out.flush())
                .context("write to standard output"),
            Ok(false) => {
                tally.fail(not_dead(&e.id.to_string(), &dead_dir));
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
    if args.all {
        for e in dead.values().take(limit) {
            replay(e, &mut tally)?;
        }
    } else {
        let mut seen = std::collections::HashSet::new();
        for id in wanted.iter().filter(|id| seen.insert(*id)).take(limit) {
            match dead.get(id) {
                Some(e) => replay(e, &mut tally)?,
                None => tally.fail(not_dead(id.as_str(), &dead_dir)),
            }
        }
    }
    Ok(tally.code())
}

fn not_dead(id: &str, dead_dir: &Path) -> anyhow::Error {
    not_found(format!(
        "{}: no dead message with id {id}",
        dead_dir.display()
    ))
}

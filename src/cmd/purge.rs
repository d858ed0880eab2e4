//! `qspool purge`: delete messages from done/, dead/ or new/ for good.

use crate::cli::PurgeArgs;
use crate::cmd::parse_ids;
use crate::exit::{Code, Tally, not_found, usage};
use crate::spool::name::Id;
use crate::spool::scan::{Named, State};
use crate::spool::{Dir, Spool, durable, now_ms};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

pub fn run(root: &Path, args: &PurgeArgs) -> Result<Code> {
    let only: BTreeSet<Id> = parse_ids(&args.ids)?.into_iter().collect();
    if (args.ready || args.dead) && only.is_empty() && !args.yes {
        // Nobody has handled these: deleting all of them must be meant.
        return Err(usage(
            "purging every ready or dead message needs --yes, or the ids to purge",
        ));
    }
    let uses: Vec<Dir> = [
        (args.ready, Dir::New),
        (args.done, Dir::Done),
        (args.dead, Dir::Dead),
    ]
    .iter()
    .filter(|s| s.0)
    .map(|s| s.1)
    .collect();
    let spool = Spool::open(root, &uses)?;
    let now = now_ms();
    let cutoff = now.saturating_sub(args.older_than);
    let mut victims: Vec<(Id, Named)> = Vec::new();
    let wanted = |id: &Id| only.is_empty() || only.contains(id);
    if args.ready {
        // The walk sees plain files only: anything else in new/ is foreign, never a message.
        spool.scan_new_tree(now, &mut |seen| {
            let Some(m) = seen else {
                return;
            };
            // A delayed message has not been waiting at all yet.
            let old_enough = args.older_than == 0 || m.named_ms() <= cutoff;
            if matches!(m.state, State::Ready | State::Delayed) && old_enough && wanted(m.id()) {
                victims.push((m.id().clone(), m.name));
            }
        })?;
    }
    for (on, dead) in [(args.done, false), (args.dead, true)] {
        if !on {
            continue;
        }
        // Every name of ours is a candidate, so that a foreign file under one (a link, a hard
        // link) is reported below as refused, not passed over in silence.
        for m in spool.list_ended(dead)? {
            if m.named_ms() <= cutoff && wanted(m.id()) {
                victims.push((m.id().clone(), m));
            }
        }
    }
    victims.sort_by(|a, b| (&a.0, a.1.dir()).cmp(&(&b.0, b.1.dir())));

    let mut out = crate::output::stdout()?;
    let mut tally = Tally::default();
    let mut removed = BTreeSet::new();
    for (id, m) in victims {
        // Foreign files under our names (links, hard links) are refused, never deleted.
        match spool.remove(&m) {
            Ok(()) => {
                writeln!(out, "{id}").context("write to standard output")?;
                removed.insert(id);
            }
            // Moved meanwhile (leased, acked, replayed): it is no longer what was asked for.
            Err(e) if durable::is_missing(&e) => {}
            Err(e) => tally.fail(
                anyhow::Error::new(e).context(format!("remove {}", spool.path_of(&m).display())),
            ),
        }
    }
    out.flush().context("write to standard output")?;
    for id in only.difference(&removed) {
        tally.fail(not_found(format!(
            "{id}: no such message in {}{}",
            states(args),
            if args.older_than > 0 {
                " old enough"
            } else {
                ""
            }
        )));
    }
    Ok(tally.code())
}

/// The states a purge looks in, as its error messages name them.
fn states(args: &PurgeArgs) -> String {
    let names: Vec<&str> = [
        (args.ready, "new/"),
        (args.done, "done/"),
        (args.dead, "dead/"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| *n)
    .collect();
    names.join(" or ")
}

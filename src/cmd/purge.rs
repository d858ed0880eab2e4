//! `qspool purge`: delete messages from done/, dead/ or new/ for good.

use crate::cli::PurgeArgs;
use crate::cmd::parse_ids;
use crate::exit::{Code, NotFound, Tally, Usage};
use crate::spool::name::{Bucket, Ended, Id, Ready};
use crate::spool::scan::State;
use crate::spool::{Dir, Spool, durable, now_ms};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// Where a message to purge is: a state directory, or its bucket in `new/`.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    State(Dir),
    Bucket(u64),
}

pub fn run(root: &Path, args: &PurgeArgs) -> Result<Code> {
    let only: BTreeSet<Id> = parse_ids(&args.ids)?.into_iter().collect();
    if (args.ready || args.dead) && only.is_empty() && !args.yes {
        // Nobody has handled these: deleting all of them must be meant.
        return Err(Usage(
            "purging every ready or dead message needs --yes, or the ids to purge".into(),
        )
        .into());
    }
    let spool = Spool::open(root)?;
    let now = now_ms();
    let cutoff = now.saturating_sub(args.older_than);
    let mut victims: Vec<(Id, Place, String)> = Vec::new();
    let wanted = |id: &Id| only.is_empty() || only.contains(id);
    if args.ready {
        // The walk sees plain files only: anything else in new/ is foreign, never a message.
        spool.scan_new_tree(now, &mut |seen| {
            let Some(m) = seen else {
                return;
            };
            // A delayed message has not been waiting at all yet.
            let old_enough = args.older_than == 0 || m.at_ms <= cutoff;
            if matches!(m.state, State::Ready | State::Delayed) && old_enough && wanted(&m.id) {
                let ready = Ready {
                    id: m.id.clone(),
                    attempts: m.attempts,
                    visible_ms: m.at_ms,
                };
                victims.push((m.id, Place::Bucket(m.at_ms), ready.to_string()));
            }
        })?;
    }
    for (on, dir) in [(args.done, Dir::Done), (args.dead, Dir::Dead)] {
        if !on {
            continue;
        }
        // Every name of ours is a candidate, so that a foreign file under one (a link, a hard
        // link) is reported below as refused, not passed over in silence.
        for e in spool
            .list_names(dir)?
            .iter()
            .filter_map(|n| Ended::parse(n).ok())
        {
            if e.at_ms <= cutoff && wanted(&e.id) {
                victims.push((e.id.clone(), Place::State(dir), e.to_string()));
            }
        }
    }
    victims.sort();

    let mut out = crate::exit::stdout()?;
    let mut tally = Tally::default();
    let mut removed = BTreeSet::new();
    for (id, dir, name) in victims {
        let (path, removed_it) = match dir {
            Place::State(d) => (
                spool.dir(d).join(&name),
                durable::remove_plain(spool.fd(d), &name),
            ),
            Place::Bucket(visible_ms) => {
                let bucket = Bucket::of(visible_ms);
                (
                    spool.dir(Dir::New).join(bucket.rel_path()).join(&name),
                    durable::open_bucket(spool.fd(Dir::New), &bucket.parts())
                        .and_then(|leaf| durable::remove_plain(&leaf, &name)),
                )
            }
        };
        // Foreign files under our names (links, hard links) are refused, never deleted.
        match removed_it {
            Ok(()) => {
                writeln!(out, "{id}").context("write to standard output")?;
                removed.insert(id);
            }
            // Moved meanwhile (leased, acked, replayed): it is no longer what was asked for.
            Err(e) if durable::is_missing(&e) => {}
            Err(e) => {
                tally.fail(anyhow::Error::new(e).context(format!("remove {}", path.display())))
            }
        }
    }
    out.flush().context("write to standard output")?;
    for id in only.difference(&removed) {
        tally.fail(
            NotFound(format!(
                "{id}: no such message in {}{}",
                states(args),
                if args.older_than > 0 {
                    " old enough"
                } else {
                    ""
                }
            ))
            .into(),
        );
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

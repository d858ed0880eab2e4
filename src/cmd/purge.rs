//! `qspool purge`: delete finished messages from done/ or dead/ for good.

use crate::cli::PurgeArgs;
use crate::exit::{Code, Tally};
use crate::spool::name::Ended;
use crate::spool::transition::list_names;
use crate::spool::{Dir, Spool, durable, now_ms};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

pub fn run(root: &Path, args: &PurgeArgs) -> Result<Code> {
    let spool = Spool::open(root)?;
    let cutoff = now_ms().saturating_sub(args.older_than);
    let mut out = std::io::stdout().lock();
    let mut tally = Tally::default();
    let dirs = [(args.done, Dir::Done), (args.dead, Dir::Dead)];
    for dir in dirs
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, d)| spool.dir(*d))
    {
        let mut names: Vec<Ended> = list_names(&dir)?
            .iter()
            .filter_map(|n| Ended::parse(n).ok())
            .filter(|e| e.at_ms <= cutoff)
            .collect();
        names.sort_by(|a, b| a.id.cmp(&b.id));
        for e in names {
            let path = dir.join(e.to_string());
            // Foreign files under our names (links, hard links) are refused, never deleted.
            let removed = durable::lstat_plain(&path).and_then(|_| std::fs::remove_file(&path));
            match removed {
                Ok(()) => writeln!(out, "{}", e.id).context("write to standard output")?,
                Err(err) if durable::is_missing(&err) => {}
                Err(err) => tally
                    .fail(anyhow::Error::new(err).context(format!("remove {}", path.display()))),
            }
        }
    }
    out.flush().context("write to standard output")?;
    Ok(tally.code())
}

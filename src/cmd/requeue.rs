//! `qspool requeue`: release leases early, or reclaim every expired one (and old tmp/ leftovers).

use super::{lease_not_held, parse_receipts};
use crate::cli::RequeueArgs;
use crate::exit::{Code, Tally};
use crate::spool::transition::Released;
use crate::spool::{Spool, now_ms, uses};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

pub fn run(root: &Path, args: &RequeueArgs) -> Result<Code> {
    if args.expired {
        return reclaim(root);
    }
    let receipts = parse_receipts(&args.receipts)?;
    let spool = Spool::open(root, uses::REQUEUE)?;
    let mut tally = Tally::default();
    for r in &receipts {
        match spool.release(r, args.delay) {
            Ok(Some(_)) => {}
            Ok(None) => tally.fail(lease_not_held(r, &spool.leased_path(r))),
            Err(e) => tally.fail(e.context(format!("requeue {}", r.id))),
        }
    }
    Ok(tally.code())
}

fn reclaim(root: &Path) -> Result<Code> {
    let spool = Spool::open(root, uses::ALL)?;
    let mut out = crate::output::stdout()?;
    let mut tally = Tally::default();
    for (id, to) in spool
        .reclaim_expired(now_ms(), &|_| false, &mut |e| tally.fail(e))?
        .moved
    {
        let what = match to {
            Released::Requeued { .. } => "requeued",
            Released::Dead => "dead",
        };
        writeln!(out, "{what} {id}").context("write to standard output")?;
    }
    spool.expire_done(
        now_ms(),
        &mut |id| writeln!(out, "purged {id}").context("write to standard output"),
        &mut |e| tally.fail(e),
    )?;
    // Housekeeping, left for the next run when the spool already failed us once: records of
    // keys that nothing holds any more, so keys/ does not grow without bound; groups whose
    // next message a crash kept from becoming the head.
    if tally.code() == Code::Ok
        && let Err(e) = spool.expire_keys(now_ms())
    {
        tally.fail(e);
    }
    if tally.code() == Code::Ok {
        match spool.repair_groups(now_ms(), &mut |e| tally.fail(e)) {
            Ok(n) if n > 0 => {
                writeln!(out, "repaired {n} groups").context("write to standard output")?;
            }
            Ok(_) => {}
            Err(e) => tally.fail(e),
        }
    }
    spool.tidy_tmp(now_ms(), &mut |path| {
        writeln!(out, "removed {}", path.display()).context("write to standard output")
    })?;
    out.flush().context("write to standard output")?;
    Ok(tally.code())
}

//! `qspool extend`: a lease replaced by one expiring DUR from now, under a new receipt.

use super::{lease_not_held, parse_receipts};
use crate::cli::ExtendArgs;
use crate::exit::Code;
use crate::spool::{Spool, uses};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

pub fn run(root: &Path, args: &ExtendArgs) -> Result<Code> {
    let r = parse_receipts(std::slice::from_ref(&args.receipt))?.remove(0);
    let spool = Spool::open(root, uses::EXTEND)?;
    let lease_ms = args.lease.unwrap_or(spool.config.lease_ms);
    match spool.extend(&r, lease_ms)? {
        Some((next, not_durable)) => {
            let mut out = crate::output::stdout()?;
            writeln!(out, "{next}")
                .and_then(|()| out.flush())
                .with_context(|| format!("write new receipt {next} to standard output"))?;
            // The new receipt is printed first: it holds the lease either way.
            match not_durable {
                None => Ok(Code::Ok),
                Some(nd) => Err(anyhow::Error::new(nd).context(format!("extend {r}"))),
            }
        }
        None => Err(lease_not_held(&r, &spool.leased_path(&r))),
    }
}

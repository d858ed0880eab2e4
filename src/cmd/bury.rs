//! `qspool bury`: leased → dead, on purpose.

use super::{lease_not_held, parse_receipts};
use crate::cli::BuryArgs;
use crate::exit::{Code, Tally};
use crate::spool::{Spool, uses};
use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path, args: &BuryArgs) -> Result<Code> {
    let receipts = parse_receipts(&args.receipts)?;
    let spool = Spool::open(root, uses::BURY)?;
    let mut tally = Tally::default();
    for r in &receipts {
        match spool.bury(r) {
            Ok(true) => {}
            Ok(false) => tally.fail(lease_not_held(r, &spool.leased_path(r))),
            Err(e) => tally.fail(e.context(format!("bury {}", r.id))),
        }
    }
    Ok(tally.code())
}

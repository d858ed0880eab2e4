//! `qspool ack`: leased → done.

use super::{lease_not_held, parse_receipts};
use crate::cli::AckArgs;
use crate::exit::{Code, Tally};
use crate::spool::{Spool, uses};
use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path, args: &AckArgs) -> Result<Code> {
    let receipts = parse_receipts(&args.receipts)?;
    let spool = Spool::open(root, uses::ACK)?;
    let mut tally = Tally::default();
    for r in &receipts {
        match spool.ack(r) {
            Ok(true) => {}
            Ok(false) => tally.fail(lease_not_held(r, &spool.leased_path(r))),
            Err(e) => tally.fail(e.context(format!("ack {}", r.id))),
        }
    }
    Ok(tally.code())
}

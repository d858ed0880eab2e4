//! `qspool bury`: leased → dead, on purpose.

use super::settle_each;
use crate::cli::BuryArgs;
use crate::exit::Code;
use crate::spool::{Spool, uses};
use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path, args: &BuryArgs) -> Result<Code> {
    settle_each(root, uses::BURY, &args.receipts, "bury", Spool::bury)
}

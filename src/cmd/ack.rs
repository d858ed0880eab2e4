//! `qspool ack`: leased → done.

use super::settle_each;
use crate::cli::AckArgs;
use crate::exit::Code;
use crate::spool::{Spool, uses};
use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path, args: &AckArgs) -> Result<Code> {
    settle_each(root, uses::ACK, &args.receipts, "ack", Spool::ack)
}

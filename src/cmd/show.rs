//! `qspool show`: one message's payload, found by its id in any state, read without a lease.

use crate::cli::ShowArgs;
use crate::exit::{Code, NotFound};
use anyhow::Result;
use std::path::Path;

pub fn run(_root: &Path, args: &ShowArgs) -> Result<Code> {
    Err(NotFound(format!("{}: not implemented yet", args.id)).into())
}

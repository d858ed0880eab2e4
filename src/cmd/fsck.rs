//! `qspool fsck`: check a spool against docs/FORMAT.md, and repair what can be set aside.

use crate::cli::FsckArgs;
use crate::exit::Code;
use anyhow::{Result, bail};
use std::path::Path;

pub fn run(root: &Path, _args: &FsckArgs) -> Result<Code> {
    bail!("{}: fsck is not built yet", root.display())
}

//! `qspool resume`: restart consumption after `qspool pause`, and wake the waiters.

use crate::cli::ResumeArgs;
use crate::exit::Code;
use crate::spool::{Dir, Spool};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

pub fn run(root: &Path, _args: &ResumeArgs) -> Result<Code> {
    // new/ is the doorbell the waiters watch.
    let spool = Spool::open(root, &[Dir::New])?;
    let what = if spool.resume()? {
        "resumed"
    } else {
        "not paused"
    };
    let mut out = crate::output::stdout()?;
    writeln!(out, "{}: {what}", spool.root().display())
        .and_then(|()| out.flush())
        .context("write to standard output")?;
    Ok(Code::Ok)
}

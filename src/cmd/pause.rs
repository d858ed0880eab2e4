//! `qspool pause`: stop all consumption until `qspool resume`.

use crate::cli::PauseArgs;
use crate::encode::rfc3339_ms;
use crate::exit::Code;
use crate::spool::{Spool, now_ms};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

pub fn run(root: &Path, _args: &PauseArgs) -> Result<Code> {
    let spool = Spool::open(root, &[])?;
    let (since, _) = spool.pause(now_ms())?;
    let mut out = crate::output::stdout()?;
    writeln!(
        out,
        "{}: paused since {}",
        spool.root().display(),
        rfc3339_ms(since)
    )
    .and_then(|()| out.flush())
    .context("write to standard output")?;
    Ok(Code::Ok)
}

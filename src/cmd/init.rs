//! `qspool init`: create a spool and store its defaults.

use crate::cli::InitArgs;
use crate::exit::Code;
use crate::output;
use crate::spool::Spool;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// A settings file that cannot be read or is not valid is replaced: init is how a spool whose
/// every other command fails on it gets repaired.
pub fn run(root: &Path, args: &InitArgs) -> Result<Code> {
    let (spool, refused) = Spool::create_repairing(root)?;
    let mut cfg = spool.config;
    if let Some(n) = args.max_attempts {
        cfg.max_attempts = n;
    }
    if let Some(l) = args.lease {
        cfg.lease_ms = l;
    }
    if let Some(r) = args.retain_done {
        cfg.retain_done_ms = r;
    }
    if cfg != spool.config || !spool.has_settings_file() || refused.is_some() {
        spool.store_config(&cfg)?;
    }
    if let Some(why) = refused {
        output::say(&format!("{why:#}; replaced with {}", cfg.describe()));
    }
    let mut out = output::stdout()?;
    writeln!(out, "{}: {}", spool.root().display(), cfg.describe())
        .and_then(|()| out.flush())
        .context("write to standard output")?;
    Ok(Code::Ok)
}

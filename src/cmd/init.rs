//! `qspool init`: create a spool and store its defaults.

use crate::cli::InitArgs;
use crate::duration::format_ms;
use crate::exit::Code;
use crate::spool::Spool;
use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path, args: &InitArgs) -> Result<Code> {
    let spool = Spool::create(root)?;
    let mut cfg = spool.config;
    if let Some(n) = args.max_attempts {
        cfg.max_attempts = n;
    }
    if let Some(l) = args.lease {
        cfg.lease_ms = l;
    }
    let settings_missing = !root.join(crate::spool::config::FILE_NAME).exists();
    if cfg != spool.config || settings_missing {
        cfg.store(root)?;
    }
    println!(
        "{}: max-attempts {}, lease {}",
        spool.root().display(),
        cfg.max_attempts,
        format_ms(cfg.lease_ms)
    );
    Ok(Code::Ok)
}

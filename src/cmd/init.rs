//! `qspool init`: create a spool and store its defaults.

use crate::cli::{InitArgs, RateSetting};
use crate::exit::{Code, usage};
use crate::output;
use crate::spool::Spool;
use crate::spool::rate::Rate;
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
    if let Some(w) = args.dedup_window {
        cfg.dedup_window_ms = w;
    }
    match (args.rate, args.burst) {
        (Some(RateSetting::Off), Some(_)) => {
            return Err(usage("--burst needs a rate; --rate off removes the limit"));
        }
        (Some(RateSetting::Off), None) => cfg.rate = None,
        (Some(RateSetting::Limit(r)), burst) => {
            // A new rate keeps the burst already set, unless given one.
            let kept = cfg.rate.map_or(1, |old| old.burst);
            cfg.rate = Some(Rate {
                burst: burst.unwrap_or(kept),
                ..r
            });
        }
        (None, Some(b)) => match &mut cfg.rate {
            Some(r) => r.burst = b,
            None => return Err(usage("--burst needs a rate: give --rate too")),
        },
        (None, None) => {}
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

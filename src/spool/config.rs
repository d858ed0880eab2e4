//! The spool's settings file, `qspool.json` in the spool root: defaults other commands use.

use super::durable;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

pub const FILE_NAME: &str = "qspool.json";
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_LEASE_MS: u64 = 30_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// How many times one message may be leased before it is dead-lettered.
    pub max_attempts: u32,
    /// Lease length when a command is not given `--lease`.
    pub lease_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            lease_ms: DEFAULT_LEASE_MS,
        }
    }
}

impl Config {
    /// Reads the settings of the spool at `root`; a spool without the file has the defaults.
    pub fn load(root: &Path) -> Result<Config> {
        let path = root.join(FILE_NAME);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if durable::is_missing(&e) => return Ok(Config::default()),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let cfg: Config = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not valid settings", path.display()))?;
        if cfg.max_attempts == 0 || cfg.lease_ms == 0 {
            anyhow::bail!(
                "{}: max_attempts and lease_ms must be at least 1",
                path.display()
            );
        }
        Ok(cfg)
    }

    /// Replaces the settings file atomically: written beside it under a dot-name, fsynced, renamed.
    pub fn store(&self, root: &Path) -> Result<()> {
        let path = root.join(FILE_NAME);
        let tmp = root.join(format!(".{FILE_NAME}.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            let mut f = durable::create_new(&tmp)?;
            let mut text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
            text.push(b'\n');
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            durable::sync_dir(root)
        };
        write()
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
            .with_context(|| format!("write {}", path.display()))
    }
}

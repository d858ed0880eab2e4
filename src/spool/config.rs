//! The spool's settings file, `qspool.json` in the spool root: defaults other commands use.

use super::{at, durable};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Read;
use std::path::Path;

pub const FILE_NAME: &str = "qspool.json";
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_LEASE_MS: u64 = 30_000;
pub const DEFAULT_RETAIN_DONE_MS: u64 = 86_400_000;
/// Five minutes, as SQS FIFO queues.
pub const DEFAULT_DEDUP_WINDOW_MS: u64 = 300_000;
/// The most of the settings file that is read: it is a few dozen bytes when qspool writes it.
const MAX_SIZE: u64 = 64 * 1024;

/// A settings file that is there but unusable as settings: wrong content, or not a plain file.
#[derive(Debug)]
pub struct BadSettings(pub String);

impl std::fmt::Display for BadSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadSettings {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// How many times one message may be leased before it is dead-lettered.
    pub max_attempts: u32,
    /// Lease length when a command is not given `--lease`.
    pub lease_ms: u64,
    /// How long an acked message stays in `done/` before `requeue --expired` or `stats`
    /// removes it; a file written before this setting existed gets the default.
    pub retain_done_ms: u64,
    /// The spool-wide limit on starts (leases) per period, which every `pop` and `work` on the
    /// spool obeys together (`rate::Rate`); none when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<super::rate::Rate>,
    /// How long an acked message keeps holding its dedup key (`push --key`).
    pub dedup_window_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            lease_ms: DEFAULT_LEASE_MS,
            retain_done_ms: DEFAULT_RETAIN_DONE_MS,
            rate: None,
            dedup_window_ms: DEFAULT_DEDUP_WINDOW_MS,
        }
    }
}

impl Config {
    /// Reads the settings of the spool at `root`; a spool without the file has the defaults.
    /// Every error starts with the file's path. A file whose content or kind is wrong fails with
    /// a `BadSettings`, which `init` may repair; an I/O error (EIO, EMFILE, EACCES) does not, so
    /// that a passing failure never costs the stored settings.
    pub fn load(root_dir: &File, root: &Path) -> Result<Config> {
        let path = root.join(FILE_NAME);
        let bad =
            |why: String| anyhow::Error::new(BadSettings(format!("{}: {why}", path.display())));
        let text = match read_settings(root_dir) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(Config::default()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(bad(e.to_string()));
            }
            Err(e) => return Err(e).with_context(|| path.display().to_string()),
        };
        let cfg: Config =
            serde_json::from_slice(&text).map_err(|e| bad(format!("not valid settings: {e}")))?;
        if cfg.max_attempts == 0 || cfg.lease_ms == 0 {
            return Err(bad("max_attempts and lease_ms must be at least 1".into()));
        }
        if cfg.lease_ms > crate::duration::MAX_LEASE_MS {
            return Err(bad("lease_ms is at most 43200000 (12h)".into()));
        }
        if let Some(Err(why)) = cfg.rate.map(|r| r.check()) {
            return Err(bad(why));
        }
        Ok(cfg)
    }

    /// How `init` prints settings: `max-attempts 5, lease 30s, retain-done 1d, dedup-window 5m`,
    /// and the rate
    /// limit when there is one (`, rate 100/s burst 20`).
    pub fn describe(&self) -> String {
        let rate = self
            .rate
            .map(|r| format!(", rate {}", r.describe()))
            .unwrap_or_default();
        format!(
            "max-attempts {}, lease {}, retain-done {}, dedup-window {}{rate}",
            self.max_attempts,
            crate::duration::format_ms(self.lease_ms),
            crate::duration::format_ms(self.retain_done_ms),
            crate::duration::format_ms(self.dedup_window_ms)
        )
    }

    /// Replaces the settings file atomically (`durable::replace_file`).
    pub fn store(&self, root_dir: &File, root: &Path) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        durable::replace_file(root_dir, FILE_NAME, &text, durable::FILE_MODE)
            .with_context(|| format!("write {}", root.join(FILE_NAME).display()))
    }
}

/// The settings file's bytes, `None` if there is none. Only a plain file is read, and only up to
/// `MAX_SIZE`: a symlink is not followed, and a FIFO or device there cannot hang the command
/// (`O_NONBLOCK`) or make it read without end.
fn read_settings(root_dir: &File) -> std::io::Result<Option<Vec<u8>>> {
    let refuse = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let file = at::open(Some(root_dir), &at::c_name(FILE_NAME)?, flags, 0);
    let file = match file {
        Ok(f) => f,
        Err(e) if durable::is_missing(&e) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refuse("a symbolic link; refusing to follow it"));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(refuse("not a regular file"));
    }
    let too_big = || refuse("larger than 64 KiB");
    if meta.len() > MAX_SIZE {
        return Err(too_big());
    }
    // Room for the whole file and one byte more: one read takes it, a second sees the end.
    let mut text = Vec::with_capacity(meta.len() as usize + 1);
    file.take(MAX_SIZE + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_SIZE {
        return Err(too_big());
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_bad(e: &anyhow::Error) -> bool {
        e.downcast_ref::<BadSettings>().is_some()
    }

    #[test]
    fn wrong_content_is_bad_settings_but_an_io_error_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let root_dir = File::open(root).unwrap();
        assert_eq!(Config::load(&root_dir, root).unwrap(), Config::default());
        for text in [
            "garbage",
            "{\"max_attempts\":0}",
            "{\"lease_ms\":0}",
            "\"text\"",
        ] {
            std::fs::write(root.join(FILE_NAME), text).unwrap();
            let e = Config::load(&root_dir, root).unwrap_err();
            assert!(is_bad(&e), "{text}: {e:#}");
            assert!(format!("{e:#}").starts_with(&root.join(FILE_NAME).display().to_string()));
        }
        std::fs::remove_file(root.join(FILE_NAME)).unwrap();
        std::fs::create_dir(root.join(FILE_NAME)).unwrap();
        assert!(is_bad(&Config::load(&root_dir, root).unwrap_err()));
        // Reading through a path that cannot be opened (ENOTDIR here) is an I/O error, not
        // bad settings: `init` must not overwrite anything on its account.
        let file = root.join("plain");
        std::fs::write(&file, b"").unwrap();
        let e = Config::load(&File::open(&file).unwrap(), &file).unwrap_err();
        assert!(!is_bad(&e), "{e:#}");
    }
}

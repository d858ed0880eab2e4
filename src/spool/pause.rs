//! Pausing consumption: the `paused` file in the spool root (FORMAT.md §2.4). Its presence alone
//! pauses, so that a look costs one `fstatat` and a crash cannot leave half a pause.

use super::{Spool, at, durable, name::MAX_MS};
use anyhow::{Context, Result, bail};
use std::io::Read;

pub const FILE_NAME: &str = "paused";

impl Spool {
    /// Since when consumption is paused (milliseconds since the epoch), `None` when it is not.
    /// Anything but a plain file under the name is refused, never followed.
    pub fn paused(&self) -> Result<Option<u64>> {
        let path = self.root().join(FILE_NAME);
        let st = match at::stat(&self.root_dir, FILE_NAME) {
            Ok(st) => st,
            Err(e) if durable::is_missing(&e) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
        };
        if st.is_symlink() {
            bail!("{}: a symbolic link; refusing to follow it", path.display());
        }
        if !st.is_file() {
            bail!("{}: not a regular file; refusing to use it", path.display());
        }
        // The time written in it; the file's mtime if it holds something else (a `touch`).
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        let mut text = String::new();
        if let Ok(f) = at::open(Some(&self.root_dir), &at::c_name(FILE_NAME)?, flags, 0) {
            let _ = f.take(64).read_to_string(&mut text);
        }
        Ok(Some(parse_since(&text).unwrap_or(st.mtime_ms)))
    }

    /// Pauses consumption from `now` on, durably. Pausing a paused spool keeps its first time,
    /// also when two pauses race: the file goes in with `RENAME_NOREPLACE`, so the first stays.
    /// Returns since when it is paused and whether this call paused it.
    pub fn pause(&self, now: u64) -> Result<(u64, bool)> {
        if let Some(since) = self.paused()? {
            return Ok((since, false));
        }
        let path = self.root().join(FILE_NAME);
        let text = format!("{now:013}\n");
        let placed = durable::create_file(
            &self.root_dir,
            FILE_NAME,
            text.as_bytes(),
            durable::FILE_MODE,
        )
        .with_context(|| format!("write {}", path.display()))?;
        if placed {
            return Ok((now, true));
        }
        Ok((self.paused()?.unwrap_or(now), false))
    }

    /// Resumes consumption, durably, and wakes every waiting pop and worker. `false` when the
    /// spool was not paused.
    pub fn resume(&self) -> Result<bool> {
        if self.paused()?.is_none() {
            return Ok(false);
        }
        let path = self.root().join(FILE_NAME);
        match at::unlink(&self.root_dir, FILE_NAME) {
            Ok(()) => {}
            Err(e) if durable::is_missing(&e) => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("remove {}", path.display())),
        }
        self.ring();
        self.root_dir
            .sync_all()
            .with_context(|| format!("sync {}", self.root().display()))?;
        Ok(true)
    }
}

/// The pause file's text: 13 digits of milliseconds and a newline.
fn parse_since(text: &str) -> Option<u64> {
    let digits = text.strip_suffix('\n')?;
    (digits.len() == 13 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
        .filter(|&ms| ms <= MAX_MS)
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn only_the_written_form_is_a_time() {
        assert_eq!(parse_since("1700000000000\n"), Some(1_700_000_000_000));
        for bad in [
            "",
            "\n",
            "1700000000000",
            "170000000000\n",
            "x700000000000\n",
        ] {
            assert_eq!(parse_since(bad), None, "{bad:?}");
        }
    }
}

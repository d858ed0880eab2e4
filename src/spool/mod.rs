//! The spool directory: its layout, how it is opened or created, and its clock.

pub mod config;
pub mod durable;
pub mod idgen;
pub mod lease;
pub mod name;
pub mod push;
pub mod ready;
pub mod scan;
pub mod transition;

use anyhow::{Context, Result, bail};
use config::Config;
use std::path::{Path, PathBuf};

/// The five state directories, in the order they are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Tmp,
    New,
    Leased,
    Done,
    Dead,
}

impl Dir {
    pub const ALL: [Dir; 5] = [Dir::Tmp, Dir::New, Dir::Leased, Dir::Done, Dir::Dead];

    pub fn name(self) -> &'static str {
        match self {
            Dir::Tmp => "tmp",
            Dir::New => "new",
            Dir::Leased => "leased",
            Dir::Done => "done",
            Dir::Dead => "dead",
        }
    }
}

/// An opened spool: its root and its settings, read once per command.
pub struct Spool {
    root: PathBuf,
    pub config: Config,
}

impl Spool {
    /// Opens an existing spool; a missing one is an error, so that a typo is not an empty queue.
    pub fn open(root: &Path) -> Result<Spool> {
        check_layout(root)?;
        Ok(Spool {
            config: Config::load(root)?,
            root: root.to_path_buf(),
        })
    }

    /// Opens a spool, creating it (directories 0700) when it is missing or incomplete.
    pub fn create(root: &Path) -> Result<Spool> {
        ensure_layout(root)?;
        Ok(Spool {
            config: Config::load(root)?,
            root: root.to_path_buf(),
        })
    }

    /// Like `create`, but a settings file that is unusable as settings (`BadSettings`: wrong
    /// content, or not a plain file) is no error: the spool gets the defaults, and why the file
    /// was refused is returned beside it, for `init` to replace the file. An I/O error reading it
    /// is still an error: a passing failure must not cost the stored settings.
    pub fn create_repairing(root: &Path) -> Result<(Spool, Option<anyhow::Error>)> {
        ensure_layout(root)?;
        let (config, refused) = match Config::load(root) {
            Ok(c) => (c, None),
            Err(e) if e.downcast_ref::<config::BadSettings>().is_some() => {
                (Config::default(), Some(e))
            }
            Err(e) => return Err(e),
        };
        let spool = Spool {
            config,
            root: root.to_path_buf(),
        };
        Ok((spool, refused))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, d: Dir) -> PathBuf {
        self.root.join(d.name())
    }
}

/// Checks that `root` is a spool: a directory with every state directory, none a link.
fn check_layout(root: &Path) -> Result<()> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{}: not a directory", root.display()),
        Err(e) if durable::is_missing(&e) => bail!("no spool at {}", root.display()),
        Err(e) => return Err(e).with_context(|| format!("open spool {}", root.display())),
    }
    if !root.join(Dir::New.name()).exists() && !root.join(config::FILE_NAME).exists() {
        bail!("no spool at {}", root.display());
    }
    for d in Dir::ALL {
        check_state_dir(&root.join(d.name()))?;
    }
    Ok(())
}

/// Checks the layout, making what is missing first if it is not complete: the common case, an
/// existing spool, costs no more than `open`.
fn ensure_layout(root: &Path) -> Result<()> {
    if check_layout(root).is_ok() {
        return Ok(());
    }
    make_layout(root)?;
    check_layout(root)
}

/// Makes whatever is missing of a spool at `root` (directories 0700). A non-empty directory
/// that has nothing of a spool is refused.
fn make_layout(root: &Path) -> Result<()> {
    match std::fs::read_dir(root) {
        Ok(mut entries) => {
            // The first entry is read before looking for a spool's: an entry a concurrent
            // qspool made (it makes tmp/ first) is then always seen as part of a spool.
            let non_empty = entries.next().is_some();
            let is_spool = || {
                Dir::ALL
                    .iter()
                    .map(|d| d.name())
                    .chain([config::FILE_NAME])
                    .any(|n| std::fs::symlink_metadata(root.join(n)).is_ok())
            };
            if non_empty && !is_spool() {
                bail!(
                    "{}: a non-empty directory that is not a spool; refusing to make one there",
                    root.display()
                );
            }
        }
        Err(e) if durable::is_missing(&e) => make_root(root)?,
        Err(e) => return Err(e).with_context(|| format!("open spool {}", root.display())),
    }
    let mut created = false;
    for d in Dir::ALL {
        let path = root.join(d.name());
        created |=
            durable::make_dir(&path).with_context(|| format!("create {}", path.display()))?;
    }
    if created {
        durable::sync_dir(root).with_context(|| format!("sync {}", root.display()))?;
    }
    Ok(())
}

fn make_root(root: &Path) -> Result<()> {
    // Each missing ancestor is made 0700 outright, as `mkdir -p` would make it usable: a
    // restrictive umask must not leave a parent we cannot create the next level in.
    let missing: Vec<&Path> = root
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
        .collect();
    for dir in missing.iter().rev() {
        durable::make_dir(dir).with_context(|| format!("create spool {}", root.display()))?;
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent {
            durable::sync_dir(parent).with_context(|| format!("sync {}", parent.display()))?;
        }
    }
    Ok(())
}

/// A state directory must be a real directory: a symlink there could lead qspool anywhere.
fn check_state_dir(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => {
            bail!("{}: a symbolic link; refusing to follow it", path.display())
        }
        Ok(_) => bail!("{}: not a directory", path.display()),
        Err(e) if durable::is_missing(&e) => {
            bail!("{}: missing; not a complete spool", path.display())
        }
        Err(e) => Err(e).with_context(|| format!("open {}", path.display())),
    }
}

/// How old a file in `tmp/` must be before it counts as left behind by a crashed push rather
/// than a push in progress (Maildir's rule): `requeue --expired` removes such files, and `fsck`
/// reports them.
pub const TMP_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(36 * 3600);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

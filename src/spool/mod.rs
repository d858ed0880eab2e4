//! The spool directory: its layout, how it is opened or created, and its clock.

pub mod at;
pub mod check;
pub mod config;
pub mod durable;
pub mod idgen;
pub mod lease;
pub mod message;
pub mod name;
pub mod push;
pub mod ready;
pub mod scan;
pub mod transition;
pub mod walk;

use anyhow::{Context, Result, bail};
use config::Config;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The five state directories, in the order they are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

/// An opened spool: its root, a descriptor of each state directory, and its settings, read
/// once per command. Every access inside the spool goes through these descriptors, so a state
/// directory swapped for a link after the open cannot redirect anything.
pub struct Spool {
    root: PathBuf,
    root_dir: File,
    dirs: [File; 5],
    pub config: Config,
}

/// Whether the caller trusts a spool that another user owns or others may write to
/// (`--trust-spool`); set once, before any spool is opened.
static TRUST_FOREIGN: AtomicBool = AtomicBool::new(false);

/// Lets this process use spools owned by another user or writable by others.
pub fn trust_foreign_spools(yes: bool) {
    TRUST_FOREIGN.store(yes, Ordering::Relaxed);
}

impl Spool {
    /// Opens an existing spool; a missing one is an error, so that a typo is not an empty queue.
    pub fn open(root: &Path) -> Result<Spool> {
        Spool::open_checked(root, true)
    }

    /// Opens an existing spool whatever its owners and modes: for `fsck`, which reports (and
    /// repairs) what `open` would refuse, and never follows a link either.
    pub fn open_to_inspect(root: &Path) -> Result<Spool> {
        Spool::open_checked(root, false)
    }

    fn open_checked(root: &Path, check_trust: bool) -> Result<Spool> {
        let (root_dir, dirs) = open_layout(root, check_trust)?;
        Ok(Spool {
            config: Config::load(&root_dir, root)?,
            root: root.to_path_buf(),
            root_dir,
            dirs,
        })
    }

    /// Opens a spool, creating it (directories 0700) when it is missing or incomplete.
    pub fn create(root: &Path) -> Result<Spool> {
        let (root_dir, dirs) = ensure_layout(root)?;
        Ok(Spool {
            config: Config::load(&root_dir, root)?,
            root: root.to_path_buf(),
            root_dir,
            dirs,
        })
    }

    /// Like `create`, but a settings file that is unusable as settings (`BadSettings`: wrong
    /// content, or not a plain file) is no error: the spool gets the defaults, and why the file
    /// was refused is returned beside it, for `init` to replace the file. An I/O error reading it
    /// is still an error: a passing failure must not cost the stored settings.
    pub fn create_repairing(root: &Path) -> Result<(Spool, Option<anyhow::Error>)> {
        let (root_dir, dirs) = ensure_layout(root)?;
        let (config, refused) = match Config::load(&root_dir, root) {
            Ok(c) => (c, None),
            Err(e) if e.downcast_ref::<config::BadSettings>().is_some() => {
                (Config::default(), Some(e))
            }
            Err(e) => return Err(e),
        };
        let spool = Spool {
            config,
            root: root.to_path_buf(),
            root_dir,
            dirs,
        };
        Ok((spool, refused))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the spool has a settings file (of any kind) rather than the defaults.
    pub fn has_settings_file(&self) -> bool {
        at::stat(&self.root_dir, config::FILE_NAME).is_ok()
    }

    /// Replaces the spool's settings file with `cfg`, durably.
    pub fn store_config(&self, cfg: &Config) -> Result<()> {
        cfg.store(&self.root_dir, &self.root)
    }

    /// A state directory's path, for messages only: accesses go through `fd`.
    fn dir(&self, d: Dir) -> PathBuf {
        self.root.join(d.name())
    }

    /// A state directory's open descriptor.
    fn fd(&self, d: Dir) -> &File {
        &self.dirs[d as usize]
    }
}

/// Opens `root` and each state directory in it, none through a link, and checks that the
/// spool is one this user may trust.
fn open_layout(root: &Path, trust_check: bool) -> Result<(File, [File; 5])> {
    let c_root = std::ffi::CString::new(root.as_os_str().as_bytes())
        .map_err(|_| anyhow::anyhow!("{}: path contains NUL", root.display()))?;
    // The root itself is opened as the user named it, links included: that is their choice.
    let root_dir = match at::open(None, &c_root, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        Ok(f) => f,
        Err(e) if durable::is_missing(&e) => bail!("no spool at {}", root.display()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            bail!("{}: not a directory", root.display())
        }
        Err(e) => return Err(e).with_context(|| format!("open spool {}", root.display())),
    };
    let present = |n: &str| !matches!(at::stat(&root_dir, n), Err(e) if durable::is_missing(&e));
    if !present(Dir::New.name()) && !present(config::FILE_NAME) {
        bail!("no spool at {}", root.display());
    }
    if trust_check {
        check_trust(&root_dir, root)?;
    }
    let open = |d: Dir| -> Result<File> {
        let path = root.join(d.name());
        let dir = match at::open_dir(&root_dir, d.name()) {
            Ok(dir) => dir,
            Err(e) => return Err(state_dir_error(&root_dir, d, &path, e)),
        };
        if trust_check {
            check_trust(&dir, &path)?;
        }
        Ok(dir)
    };
    let dirs = [
        open(Dir::Tmp)?,
        open(Dir::New)?,
        open(Dir::Leased)?,
        open(Dir::Done)?,
        open(Dir::Dead)?,
    ];
    Ok((root_dir, dirs))
}

/// Why a state directory could not be opened, in words.
fn state_dir_error(root_dir: &File, d: Dir, path: &Path, e: std::io::Error) -> anyhow::Error {
    if durable::is_missing(&e) {
        return anyhow::anyhow!("{}: missing; not a complete spool", path.display());
    }
    if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) {
        return match at::stat(root_dir, d.name()) {
            Ok(st) if st.is_symlink() => {
                anyhow::anyhow!("{}: a symbolic link; refusing to follow it", path.display())
            }
            _ => anyhow::anyhow!("{}: not a directory", path.display()),
        };
    }
    anyhow::Error::new(e).context(format!("open {}", path.display()))
}

/// A spool directory that another user owns, or that others may write to, could be changed
/// under us by them; it is refused unless the caller said it trusts it. Root's own directories
/// are trusted, as they are for `sshd`: only root could change them anyway.
fn check_trust(dir: &File, path: &Path) -> Result<()> {
    if TRUST_FOREIGN.load(Ordering::Relaxed) {
        return Ok(());
    }
    let st = at::fstat(dir).with_context(|| format!("stat {}", path.display()))?;
    let me = crate::os::euid();
    if st.uid != me && st.uid != 0 {
        bail!(
            "{}: owned by uid {}, not by you (uid {me}) or root; refusing to use it \
             (--trust-spool to use it anyway)",
            path.display(),
            st.uid
        );
    }
    if st.perms() & 0o002 != 0 {
        bail!(
            "{}: writable by others (mode {:04o}); refusing to use it (`qspool fsck --repair` \
             fixes it; --trust-spool uses it anyway)",
            path.display(),
            st.perms()
        );
    }
    Ok(())
}

/// Opens the layout, making what is missing first if it is not complete: the common case, an
/// existing spool, costs no more than `open`.
fn ensure_layout(root: &Path) -> Result<(File, [File; 5])> {
    if let Ok(opened) = open_layout(root, true) {
        return Ok(opened);
    }
    make_layout(root)?;
    open_layout(root, true)
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
    let root_dir = File::open(root).with_context(|| format!("open spool {}", root.display()))?;
    check_trust(&root_dir, root)?;
    let mut created = false;
    for d in Dir::ALL {
        match at::mkdir(&root_dir, d.name(), durable::DIR_MODE) {
            Ok(()) => created = true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| format!("create {}", root.join(d.name()).display()));
            }
        }
    }
    if created {
        root_dir
            .sync_all()
            .with_context(|| format!("sync {}", root.display()))?;
    }
    Ok(())
}

fn make_root(root: &Path) -> Result<()> {
    // Each missing ancestor is made 0700, as `mkdir -p` would make it usable: the umask is 077
    // (see `crate::os::restrict_umask`), so no parent is left that we cannot create in.
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

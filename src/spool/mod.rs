//! The spool directory: its layout, how it is opened or created, and its clock.

pub mod at;
pub mod check;
pub mod config;
pub mod durable;
pub mod groups;
pub mod idgen;
pub mod keys;
pub mod lease;
pub mod leased;
pub mod message;
pub mod name;
pub mod pause;
pub mod push;
pub mod rate;
pub mod ready;
pub mod scan;
pub mod transition;
pub mod walk;

use anyhow::{Context, Result, bail};
use config::Config;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
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

/// The state directories each kind of command uses, which it names when it opens the spool:
/// what it opens and trust-checks before anything else, and all it opens.
pub mod uses {
    use super::Dir;
    pub const PUSH: &[Dir] = &[Dir::Tmp, Dir::New];
    /// Leasing, dead-lettering a message past its attempts, reclaiming expired leases.
    pub const POP: &[Dir] = &[Dir::New, Dir::Leased, Dir::Dead];
    pub const POP_ACK: &[Dir] = &[Dir::New, Dir::Leased, Dir::Dead, Dir::Done];
    pub const ACK: &[Dir] = &[Dir::Leased, Dir::Done];
    pub const BURY: &[Dir] = &[Dir::Leased, Dir::Dead];
    pub const EXTEND: &[Dir] = &[Dir::Leased];
    /// Back to `new/`, or to `dead/` after the last attempt.
    pub const REQUEUE: &[Dir] = &[Dir::New, Dir::Leased, Dir::Dead];
    pub const REPLAY: &[Dir] = &[Dir::New, Dir::Dead];
    /// `replay --done`: done → new.
    pub const REPLAY_DONE: &[Dir] = &[Dir::New, Dir::Done];
    /// Every state a message can be in, but `tmp/`: `work`, `show`.
    pub const MESSAGES: &[Dir] = &[Dir::New, Dir::Leased, Dir::Done, Dir::Dead];
    /// `stats`, `list`, `requeue --expired`.
    pub const ALL: &[Dir] = &Dir::ALL;
}

/// An opened spool: its root, a descriptor of each state directory it uses, and its settings,
/// read once per command. Every access inside the spool goes through these descriptors, so a
/// state directory swapped for a link after the open cannot redirect anything.
pub struct Spool {
    root: PathBuf,
    root_dir: File,
    /// Each state directory, opened and trust-checked at most once: those the command named at
    /// the open, before anything else; any other on its first use.
    dirs: [OnceLock<File>; 5],
    /// `keys/`, opened on first use by a keyed push or a keyed message's move.
    keys: OnceLock<File>,
    /// `groups/`, likewise, for grouped pushes and the moves of grouped messages.
    groups: OnceLock<File>,
    trust_check: bool,
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
    /// Opens an existing spool and the state directories in `uses`; a missing spool is an
    /// error, so that a typo is not an empty queue. A command names the directories it uses, so
    /// that it opens and checks those and no others (and refuses a spool it may not trust
    /// before it does anything).
    pub fn open(root: &Path, uses: &[Dir]) -> Result<Spool> {
        Spool::open_checked(root, uses, true)
    }

    /// Opens an existing spool and every state directory, whatever their owners and modes: for
    /// `fsck`, which reports (and repairs) what `open` would refuse, and never follows a link
    /// either.
    pub fn open_to_inspect(root: &Path) -> Result<Spool> {
        Spool::open_checked(root, &Dir::ALL, false)
    }

    fn open_checked(root: &Path, uses: &[Dir], trust_check: bool) -> Result<Spool> {
        let (root_dir, dirs) = open_layout(root, uses, trust_check)?;
        Ok(Spool {
            config: Config::load(&root_dir, root)?,
            root: root.to_path_buf(),
            root_dir,
            dirs,
            keys: OnceLock::new(),
            groups: OnceLock::new(),
            trust_check,
        })
    }

    /// Opens a spool and the state directories in `uses`, creating the spool (directories
    /// 0700) when it is missing, or completing it when one of those is.
    pub fn create(root: &Path, uses: &[Dir]) -> Result<Spool> {
        let (root_dir, dirs) = ensure_layout(root, uses)?;
        Ok(Spool {
            config: Config::load(&root_dir, root)?,
            root: root.to_path_buf(),
            root_dir,
            dirs,
            keys: OnceLock::new(),
            groups: OnceLock::new(),
            trust_check: true,
        })
    }

    /// Like `create` of every state directory, but a settings file that is unusable as settings
    /// (`BadSettings`: wrong content, or not a plain file) is no error: the spool gets the
    /// defaults, and why the file was refused is returned beside it, for `init` to replace the
    /// file. An I/O error reading it is still an error: a passing failure must not cost the
    /// stored settings.
    pub fn create_repairing(root: &Path) -> Result<(Spool, Option<anyhow::Error>)> {
        let (root_dir, dirs) = ensure_layout(root, &Dir::ALL)?;
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
            keys: OnceLock::new(),
            groups: OnceLock::new(),
            trust_check: true,
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

    /// `keys/`, opened (and with `create`, made when missing) on first use; `None` when it
    /// does not exist and `create` is false. Never through a link, and trust-checked like the
    /// state directories.
    fn keys_dir(&self, create: bool) -> Result<Option<&File>> {
        self.root_subdir(&self.keys, keys::DIR_NAME, create)
    }

    /// `groups/`, as `keys_dir`.
    fn groups_dir(&self, create: bool) -> Result<Option<&File>> {
        self.root_subdir(&self.groups, groups::DIR_NAME, create)
    }

    fn root_subdir<'s>(
        &'s self,
        cell: &'s OnceLock<File>,
        name: &str,
        create: bool,
    ) -> Result<Option<&'s File>> {
        if let Some(f) = cell.get() {
            return Ok(Some(f));
        }
        let path = self.root.join(name);
        let dir = match at::open_dir(&self.root_dir, name) {
            Ok(d) => d,
            Err(e) if durable::is_missing(&e) && create => {
                match at::mkdir(&self.root_dir, name, durable::DIR_MODE) {
                    Ok(()) => self
                        .root_dir
                        .sync_all()
                        .with_context(|| format!("sync {}", self.root.display()))?,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("create {}", path.display()));
                    }
                }
                at::open_dir(&self.root_dir, name)
                    .map_err(|e| state_dir_error_at(&self.root_dir, name, &path, e))?
            }
            Err(e) if durable::is_missing(&e) => return Ok(None),
            Err(e) => return Err(state_dir_error_at(&self.root_dir, name, &path, e)),
        };
        if self.trust_check {
            check_trust(&dir, &path)?;
        }
        Ok(Some(cell.get_or_init(|| dir)))
    }

    /// A state directory's path, for messages only: accesses go through `fd`.
    fn dir(&self, d: Dir) -> PathBuf {
        self.root.join(d.name())
    }

    /// A state directory's open descriptor, opened now if the command did not name it at the
    /// open. Failing that is never `NotFound`, which callers read as "that message is gone".
    fn fd(&self, d: Dir) -> std::io::Result<&File> {
        let cell = &self.dirs[d as usize];
        if let Some(f) = cell.get() {
            return Ok(f);
        }
        let f = open_state_dir(&self.root_dir, &self.root, d, self.trust_check)
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        Ok(cell.get_or_init(|| f))
    }
}

/// Opens `root` and each state directory of `uses` in it, none through a link, and checks
/// that the spool is one this user may trust.
fn open_layout(
    root: &Path,
    uses: &[Dir],
    trust_check: bool,
) -> Result<(File, [OnceLock<File>; 5])> {
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
    // A command that uses new/ learns from opening it that this is a spool; the others ask.
    if !uses.contains(&Dir::New) && !present(Dir::New.name()) && !present(config::FILE_NAME) {
        bail!("no spool at {}", root.display());
    }
    if trust_check {
        check_trust(&root_dir, root)?;
    }
    // Every state directory is checked, in order, before anything else is done: those the
    // command uses are opened, the others need only their `lstat` (one call, not three).
    let dirs: [OnceLock<File>; 5] = Default::default();
    for d in Dir::ALL {
        let checked = if uses.contains(&d) {
            open_state_dir(&root_dir, root, d, trust_check)
                .map(|dir| drop(dirs[d as usize].set(dir)))
        } else {
            check_state_dir(&root_dir, root, d, trust_check)
        };
        if let Err(e) = checked {
            if !present(Dir::New.name()) && !present(config::FILE_NAME) {
                bail!("no spool at {}", root.display());
            }
            return Err(e);
        }
    }
    Ok((root_dir, dirs))
}

/// Opens one state directory, never through a link, and checks that this user may trust it.
fn open_state_dir(root_dir: &File, root: &Path, d: Dir, trust_check: bool) -> Result<File> {
    let path = root.join(d.name());
    let dir = match at::open_dir(root_dir, d.name()) {
        Ok(dir) => dir,
        Err(e) => return Err(state_dir_error(root_dir, d, &path, e)),
    };
    if trust_check {
        check_trust(&dir, &path)?;
    }
    Ok(dir)
}

/// What `open_state_dir` refuses, from the directory's `lstat` alone, without opening it.
fn check_state_dir(root_dir: &File, root: &Path, d: Dir, trust_check: bool) -> Result<()> {
    let path = root.join(d.name());
    let st = at::stat(root_dir, d.name()).map_err(|e| state_dir_error(root_dir, d, &path, e))?;
    if st.is_symlink() {
        bail!("{}: a symbolic link; refusing to follow it", path.display());
    }
    if !st.is_dir() {
        bail!("{}: not a directory", path.display());
    }
    if trust_check && !TRUST_FOREIGN.load(Ordering::Relaxed) {
        trusted(&st, &path)?;
    }
    Ok(())
}

/// Why a state directory could not be opened, in words.
fn state_dir_error(root_dir: &File, d: Dir, path: &Path, e: std::io::Error) -> anyhow::Error {
    if durable::is_missing(&e) {
        return anyhow::anyhow!("{}: missing; not a complete spool", path.display());
    }
    state_dir_error_at(root_dir, d.name(), path, e)
}

/// Why a directory of the spool's root could not be opened: a link, not a directory, or the
/// error itself.
fn state_dir_error_at(
    root_dir: &File,
    name: &str,
    path: &Path,
    e: std::io::Error,
) -> anyhow::Error {
    if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) {
        return match at::stat(root_dir, name) {
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
    trusted(&st, path)
}

/// `check_trust` of what `fstat` or `lstat` said of a directory.
fn trusted(st: &at::Stat, path: &Path) -> Result<()> {
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
fn ensure_layout(root: &Path, uses: &[Dir]) -> Result<(File, [OnceLock<File>; 5])> {
    if let Ok(opened) = open_layout(root, uses, true) {
        return Ok(opened);
    }
    make_layout(root)?;
    open_layout(root, uses, true)
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

/// Microseconds since the Unix epoch, clamped to the largest the grammar can write (16 digits,
/// in the year 2286; FORMAT.md §3.1), so that no clock makes a name qspool would call foreign.
/// Every time qspool writes comes from here or from `lease::deadline`, which clamps the same way.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(u128::from(name::MAX_US)) as u64)
}

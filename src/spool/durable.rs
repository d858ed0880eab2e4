//! Durable, link-refusing file I/O: the only place that creates, opens, renames or fsyncs.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// How often a rename into a bucket is retried when a concurrent pop removes the empty bucket
/// between our mkdir and our rename. Each retry needs another process to win a race against us.
const BUCKET_RETRIES: usize = 64;

/// Creates one directory with mode 0700 whatever the umask. Returns whether it was created.
pub fn make_dir(path: &Path) -> io::Result<bool> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => {
            // The umask may have taken bits from 0700; set them outright.
            fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// fsyncs a directory so that the entries made in it survive a power loss.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Creates a file that must not exist yet, mode 0600 whatever the umask.
pub fn create_new(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Opens a message file for reading, refusing anything but a plain, singly linked file.
/// `O_NONBLOCK` keeps a FIFO planted in the spool from hanging us.
pub fn open_message(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                not_plain("a symbolic link")
            } else {
                e
            }
        })?;
    check_plain(&file.metadata()?)?;
    Ok(file)
}

/// `lstat`s a would-be message: it must be a regular file with one link, never a link to one.
pub fn lstat_plain(path: &Path) -> io::Result<fs::Metadata> {
    let meta = fs::symlink_metadata(path)?;
    check_plain(&meta)?;
    Ok(meta)
}

/// Whether `meta` (from `lstat`) describes something qspool may treat as a message.
pub fn is_plain(meta: &fs::Metadata) -> bool {
    meta.file_type().is_file() && meta.nlink() == 1
}

fn check_plain(meta: &fs::Metadata) -> io::Result<()> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        Err(not_plain("a symbolic link"))
    } else if !ft.is_file() {
        Err(not_plain("not a regular file"))
    } else if meta.nlink() != 1 {
        Err(not_plain("a file with more than one hard link"))
    } else {
        Ok(())
    }
}

fn not_plain(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what}, not a message; refusing to touch it"),
    )
}

/// Whether an I/O error is "no such file or directory".
pub fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// A bucket opened level by level: the directory fds of `new/` and of each level down to the
/// leaf, each opened relative to its parent without following links. Renames go into the leaf's
/// fd, so a level swapped for a link can never redirect a message out of the spool; fsyncs go to
/// the fds, so they still work when a pop has since emptied and removed the bucket.
pub struct BucketDirs {
    /// `new/`, then each level: (path, open directory).
    dirs: Vec<(PathBuf, File)>,
    /// Indexes into `dirs` of the parents of levels this process made.
    made_in: Vec<usize>,
}

impl BucketDirs {
    /// Opens (and when missing, makes, mode 0700) `new_root/<parts>`. Nothing is fsynced here:
    /// a fresh level stays empty, and open to removal by pops, until the rename into it, so the
    /// caller syncs after that (`sync_made`, or a push's commit).
    pub fn open(new_root: &Path, parts: &[String; 3]) -> io::Result<BucketDirs> {
        'again: for _ in 0..BUCKET_RETRIES {
            let mut dirs = vec![(new_root.to_path_buf(), open_dir_at(None, new_root)?)];
            let mut made_in = Vec::new();
            for part in parts {
                let (parent_path, parent) = dirs.last().expect("new/ is first");
                let path = parent_path.join(part);
                let dir = match open_dir_at(Some(parent), Path::new(part)) {
                    Ok(d) => d,
                    Err(e) if is_missing(&e) => match make_dir_at(parent, part) {
                        Ok(d) => {
                            made_in.push(dirs.len() - 1);
                            d
                        }
                        // Another process made it first: open theirs.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            match open_dir_at(Some(parent), Path::new(part)) {
                                Ok(d) => d,
                                Err(e) if is_missing(&e) => continue 'again,
                                Err(e) => return Err(not_a_dir(e, &path)),
                            }
                        }
                        // A pop removed the parent after we opened it: start from the top.
                        Err(e) if is_missing(&e) => continue 'again,
                        Err(e) => return Err(e),
                    },
                    Err(e) => return Err(not_a_dir(e, &path)),
                };
                dirs.push((path, dir));
            }
            return Ok(BucketDirs { dirs, made_in });
        }
        Err(gave_up(new_root))
    }

    pub fn leaf(&self) -> &Path {
        &self.dirs.last().expect("a leaf").0
    }

    /// Every directory from `new/` down to the leaf, with its path.
    pub fn dirs(&self) -> &[(PathBuf, File)] {
        &self.dirs
    }

    /// fsyncs the parent of every level this process made, so that those levels survive a crash.
    pub fn sync_made(&self) -> io::Result<()> {
        for &i in &self.made_in {
            self.dirs[i].1.sync_all()?;
        }
        Ok(())
    }

    /// Renames `src` into the leaf as `name`, never over an existing entry.
    pub fn rename_in(&self, src: &Path, name: &str) -> io::Result<()> {
        let leaf = &self.dirs.last().expect("a leaf").1;
        renameat_noreplace(None, src, Some(leaf), Path::new(name))
    }
}

/// Renames `src` into `new_root/<bucket>/<name>`, making the bucket when it is missing, and
/// returns the open bucket. `reuse` is a bucket opened earlier for the same `parts`. With
/// `sync_made`, the levels it made are fsynced once the message is in them.
/// `NotFound` from here means `src` itself is gone: somebody else moved it first.
pub fn rename_into_bucket(
    src: &Path,
    new_root: &Path,
    parts: &[String; 3],
    name: &str,
    sync_made: bool,
    reuse: Option<BucketDirs>,
) -> io::Result<BucketDirs> {
    let mut reuse = reuse;
    for _ in 0..BUCKET_RETRIES {
        let bucket = match reuse.take() {
            Some(b) => b,
            None => BucketDirs::open(new_root, parts)?,
        };
        match bucket.rename_in(src, name) {
            Ok(()) => {
                if sync_made {
                    bucket.sync_made()?;
                }
                return Ok(bucket);
            }
            // Either `src` is gone, or a pop emptied and removed the leaf after we opened it.
            Err(e) if is_missing(&e) => match fs::symlink_metadata(src) {
                Ok(_) => continue,
                Err(e2) if is_missing(&e2) => return Err(e),
                Err(e2) => return Err(e2),
            },
            Err(e) => return Err(e),
        }
    }
    Err(gave_up(new_root))
}

fn gave_up(new_root: &Path) -> io::Error {
    io::Error::other(format!(
        "{}: a bucket kept disappearing; gave up after {BUCKET_RETRIES} tries",
        new_root.display()
    ))
}

fn not_a_dir(e: io::Error, path: &Path) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: not a real directory; refusing to follow it",
                path.display()
            ),
        ),
        _ => e,
    }
}

fn c_path(p: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn fd_or_cwd(dir: Option<&File>) -> libc::c_int {
    use std::os::fd::AsRawFd;
    dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd)
}

/// `openat(dir, path, O_DIRECTORY | O_NOFOLLOW)`: a directory, never through a final link.
#[allow(unsafe_code)]
fn open_dir_at(dir: Option<&File>, path: &Path) -> io::Result<File> {
    use std::os::fd::FromRawFd;
    let c = c_path(path)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c` is a valid NUL-terminated string; the fd is checked before it is owned.
    let fd = unsafe { libc::openat(fd_or_cwd(dir), c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `mkdirat(dir, name, 0700)`, then the new directory opened and set to 0700 whatever the umask.
#[allow(unsafe_code)]
fn make_dir_at(dir: &File, name: &str) -> io::Result<File> {
    let c = c_path(Path::new(name))?;
    // SAFETY: `c` is a valid NUL-terminated string and `dir` an open directory.
    if unsafe { libc::mkdirat(fd_or_cwd(Some(dir)), c.as_ptr(), DIR_MODE as libc::mode_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let made = open_dir_at(Some(dir), Path::new(name))?;
    made.set_permissions(fs::Permissions::from_mode(DIR_MODE))?;
    Ok(made)
}

/// `renameat2(…, RENAME_NOREPLACE)`, relative to directory fds (`None`: the working directory).
#[allow(unsafe_code)]
fn renameat_noreplace(
    from_dir: Option<&File>,
    from: &Path,
    to_dir: Option<&File>,
    to: &Path,
) -> io::Result<()> {
    let (s, d) = (c_path(from)?, c_path(to)?);
    let (fd_s, fd_d) = (fd_or_cwd(from_dir), fd_or_cwd(to_dir));
    // SAFETY: both strings are valid and NUL-terminated; the fds are open or AT_FDCWD.
    let rc = unsafe { libc::renameat2(fd_s, s.as_ptr(), fd_d, d.as_ptr(), libc::RENAME_NOREPLACE) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // Filesystems without RENAME_NOREPLACE: names are unique by construction.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            // SAFETY: as above.
            if unsafe { libc::renameat(fd_s, s.as_ptr(), fd_d, d.as_ptr()) } == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
        _ => Err(err),
    }
}

/// Renames only if the destination does not exist yet, so that no foreign file is ever clobbered.
pub fn rename_noreplace(src: &Path, dst: &Path) -> io::Result<()> {
    renameat_noreplace(None, src, None, dst)
}

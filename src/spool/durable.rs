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

/// Makes `new_root/<bucket>` exist. When `sync`, every level that was created is made durable by
/// fsyncing its parent, so a message renamed into it cannot outlive its directory after a crash.
pub fn make_bucket(new_root: &Path, parts: &[String; 3], sync: bool) -> io::Result<PathBuf> {
    let mut dir = new_root.to_path_buf();
    for part in parts {
        let parent = dir.clone();
        dir.push(part);
        if make_dir(&dir)? && sync {
            sync_dir(&parent)?;
        }
    }
    Ok(dir)
}

/// Renames `src` into `new_root/<bucket>/<name>`, making the bucket when it is missing.
/// `NotFound` from here means `src` itself is gone: somebody else moved it first.
pub fn rename_into_bucket(
    src: &Path,
    new_root: &Path,
    parts: &[String; 3],
    name: &str,
    sync: bool,
) -> io::Result<PathBuf> {
    let leaf: PathBuf = parts.iter().fold(new_root.to_path_buf(), |p, s| p.join(s));
    let dst = leaf.join(name);
    check_bucket(new_root, parts)?;
    for _ in 0..BUCKET_RETRIES {
        match rename_noreplace(src, &dst) {
            Ok(()) => return Ok(leaf),
            Err(e) if is_missing(&e) => {
                // Either the bucket is missing (a pop removed it when it was empty) or `src` is.
                match fs::symlink_metadata(src) {
                    Ok(_) => match make_bucket(new_root, parts, sync) {
                        // A pop removed a level we were about to make a child in: try again.
                        Err(e3) if !is_missing(&e3) => return Err(e3),
                        _ => {}
                    },
                    Err(e2) if is_missing(&e2) => return Err(e),
                    Err(e2) => return Err(e2),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{}: the bucket kept disappearing; gave up after {BUCKET_RETRIES} tries",
        leaf.display()
    )))
}

/// Refuses a bucket path with a symlink or non-directory in it: a rename through a planted link
/// would put the message outside the spool, where no pop finds it. Missing levels are fine.
fn check_bucket(new_root: &Path, parts: &[String; 3]) -> io::Result<()> {
    let mut dir = new_root.to_path_buf();
    for part in parts {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: not a real directory; refusing to follow it",
                        dir.display()
                    ),
                ));
            }
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Renames only if the destination does not exist yet, so that no foreign file is ever clobbered.
#[allow(unsafe_code)]
pub fn rename_noreplace(src: &Path, dst: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
    };
    let (s, d) = (c(src)?, c(dst)?);
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            s.as_ptr(),
            libc::AT_FDCWD,
            d.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // Filesystems without RENAME_NOREPLACE: names are unique by construction, so plain rename.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => fs::rename(src, dst),
        _ => Err(err),
    }
}

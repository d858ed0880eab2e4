//! Link-refusing file helpers that the spool's operations share: making the root, creating a
//! fresh file, opening or removing only a plain message file, and renaming into a bucket made
//! level by level (whose new levels it fsyncs when asked).
//!
//! Not the only place that creates, renames or fsyncs: the state directories and `corrupt/`
//! are made elsewhere; the moves that do not enter `new/` (lease, dead-letter, ack, bury,
//! extend, quarantine) and the settings file's replacement call `at` directly; a push's commit,
//! spool creation, the settings file and `fsck` do their own fsyncs.

use super::at::{self, Stat};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;
/// How many times one rename into a bucket opens the bucket afresh, because a concurrent pop
/// removed an empty level between our mkdir and our rename, before it gives up (FORMAT.md §5.1
/// step 5). Each retry needs another process to win a race against us.
const BUCKET_RETRIES: usize = 64;

/// Creates one directory, mode 0700 at creation (the process umask is 077, see
/// `crate::os::restrict_umask`). Returns whether it was created. For the spool root and its
/// missing ancestors only, which the user named by path; everything inside uses `at::mkdir`.
pub fn make_dir(path: &Path) -> io::Result<bool> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// fsyncs a directory by path (an ancestor of a spool root qspool made).
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Creates `dir/name`, which must not exist yet, mode 0600 at creation; never through a link.
pub fn create_new(dir: &File, name: &str) -> io::Result<File> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    at::open(Some(dir), &at::c_name(name)?, flags, FILE_MODE)
}

/// Replaces `dir/name` with `text` in one rename, so that a reader never sees half a file: the
/// text is written to `.<name>.<pid>` beside it (which never ends in the name's own extension),
/// set to `mode` whatever the umask, fsynced, renamed over `name`, and the rename fsynced. A
/// leftover of this process id from an earlier crash is removed first; on failure the
/// temporary file is removed and `name` is as it was.
pub fn replace_file(dir: &File, name: &str, text: &[u8], mode: u32) -> io::Result<()> {
    place_file(dir, name, text, mode, false).map(|_| ())
}

/// `replace_file`, but an existing `name` is kept (`RENAME_NOREPLACE`): `false` when one was
/// there, and nothing changed.
pub fn create_file(dir: &File, name: &str, text: &[u8], mode: u32) -> io::Result<bool> {
    place_file(dir, name, text, mode, true)
}

fn place_file(dir: &File, name: &str, text: &[u8], mode: u32, keep: bool) -> io::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let tmp = format!(".{name}.{}", std::process::id());
    let write = || -> io::Result<bool> {
        let _ = at::unlink(dir, &tmp);
        let mut f = create_new(dir, &tmp)?;
        if mode != FILE_MODE {
            f.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        f.write_all(text)?;
        f.sync_all()?;
        if keep {
            match at::rename_noreplace(dir, &tmp, dir, name) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                placed => placed?,
            }
        } else {
            at::rename_replace(dir, &tmp, name)?;
        }
        dir.sync_all().map(|()| true)
    };
    let placed = write();
    if !matches!(placed, Ok(true)) {
        let _ = at::unlink(dir, &tmp);
    }
    placed
}

/// Opens `dir/name` for reading, refusing anything but a plain, singly linked file, and says
/// how big it is. `O_NONBLOCK` keeps a FIFO planted in the spool from hanging us.
pub fn open_message(dir: &File, name: &str) -> io::Result<(File, u64)> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let file = at::open(Some(dir), &at::c_name(name)?, flags, 0).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            not_plain("a symbolic link")
        } else {
            e
        }
    })?;
    let st = at::fstat(&file)?;
    check_plain(&st)?;
    Ok((file, st.size))
}

/// `lstat`s a would-be message: it must be a regular file with one link, never a link to one.
pub fn lstat_plain(dir: &File, name: &str) -> io::Result<Stat> {
    let st = at::stat(dir, name)?;
    check_plain(&st)?;
    Ok(st)
}

/// Whether `st` (from `lstat`) describes something qspool may treat as a message.
pub fn is_plain(st: &Stat) -> bool {
    st.is_file() && st.nlink == 1
}

fn check_plain(st: &Stat) -> io::Result<()> {
    if st.is_symlink() {
        Err(not_plain("a symbolic link"))
    } else if !st.is_file() {
        Err(not_plain("not a regular file"))
    } else if st.nlink != 1 {
        Err(not_plain("a file with more than one hard link"))
    } else {
        Ok(())
    }
}

/// Removes `dir/name` if it is a plain message file; a foreign entry under that name is refused.
pub fn remove_plain(dir: &File, name: &str) -> io::Result<()> {
    lstat_plain(dir, name)?;
    at::unlink(dir, name)
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
    /// Whether a push already holds these directories for its commit's fsync.
    pub held: bool,
}

impl BucketDirs {
    /// Opens (and when missing, makes, mode 0700) `new/<parts>`, `new_dir` being `new/` open at
    /// `new_path`. Nothing is fsynced here: a fresh level stays empty, and open to removal by
    /// pops, until the rename into it, so the caller syncs after that (`sync_made`, or a push's
    /// commit). Each start from the top, when a pop removed a level under it, spends one of
    /// `tries`, which the caller's own retries share: one operation gives up after
    /// `BUCKET_RETRIES` in all.
    fn open(
        new_dir: &File,
        new_path: &Path,
        parts: &[String],
        tries: &mut usize,
    ) -> io::Result<BucketDirs> {
        'again: while *tries > 0 {
            *tries -= 1;
            let mut dirs = vec![(new_path.to_path_buf(), new_dir.try_clone()?)];
            let mut made_in = Vec::new();
            for part in parts {
                let (parent_path, parent) = dirs.last().expect("new/ is first");
                let path = parent_path.join(part);
                let dir = match at::open_dir(parent, part) {
                    Ok(d) => d,
                    Err(e) if is_missing(&e) => match at::mkdir(parent, part, DIR_MODE) {
                        Ok(()) => match at::open_dir(parent, part) {
                            Ok(d) => {
                                made_in.push(dirs.len() - 1);
                                d
                            }
                            Err(e) if is_missing(&e) => continue 'again,
                            Err(e) => return Err(not_a_dir(e, &path)),
                        },
                        // Another process made it first: open theirs.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            match at::open_dir(parent, part) {
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
            return Ok(BucketDirs {
                dirs,
                made_in,
                held: false,
            });
        }
        Err(gave_up(new_path))
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

    /// `sync_made`, once: later renames into the same bucket, reusing it, make no level.
    pub fn sync_made_once(&mut self) -> io::Result<()> {
        self.sync_made()?;
        self.made_in.clear();
        Ok(())
    }

    /// Renames `src_dir/src` into the leaf as `name`, never over an existing entry.
    pub fn rename_in(&self, src_dir: &File, src: &str, name: &str) -> io::Result<()> {
        let leaf = &self.dirs.last().expect("a leaf").1;
        at::rename_noreplace(src_dir, src, leaf, name)
    }
}

/// Opens the existing bucket `new/<parts>` level by level, never through a link, making
/// nothing: a missing level is `NotFound`.
pub fn open_bucket(new_dir: &File, parts: &[String]) -> io::Result<File> {
    let mut dir = at::open_dir(new_dir, &parts[0])?;
    for part in &parts[1..] {
        dir = at::open_dir(&dir, part)?;
    }
    Ok(dir)
}

/// Where a message moves from: a state directory (or a bucket) and the file's name in it.
#[derive(Clone, Copy)]
pub struct Src<'a> {
    pub dir: &'a File,
    pub name: &'a str,
}

/// Renames `src` into `new/<bucket>/<name>`, making the bucket when it is missing, and returns
/// the open bucket. `reuse` is a bucket opened earlier for the same `parts`. The levels it made
/// are not fsynced here: the caller does that once the message is in them (`sync_made`).
/// `NotFound` from here means `src` itself is gone: somebody else moved it first.
pub fn rename_into_bucket(
    src: Src<'_>,
    new_dir: &File,
    new_path: &Path,
    parts: &[String],
    name: &str,
    reuse: Option<BucketDirs>,
) -> io::Result<BucketDirs> {
    let mut reuse = reuse;
    let mut tries = BUCKET_RETRIES;
    while tries > 0 {
        let bucket = match reuse.take() {
            Some(b) => {
                tries -= 1;
                b
            }
            None => BucketDirs::open(new_dir, new_path, parts, &mut tries)?,
        };
        match bucket.rename_in(src.dir, src.name, name) {
            Ok(()) => return Ok(bucket),
            // Either `src` is gone, or a pop emptied and removed the leaf after we opened it.
            Err(e) if is_missing(&e) => match at::stat(src.dir, src.name) {
                Ok(_) => continue,
                Err(e2) if is_missing(&e2) => return Err(e),
                Err(e2) => return Err(e2),
            },
            Err(e) => return Err(e),
        }
    }
    Err(gave_up(new_path))
}

fn gave_up(new_root: &Path) -> io::Error {
    io::Error::other(format!(
        "{}: a bucket kept disappearing; gave up after {BUCKET_RETRIES} tries",
        new_root.display()
    ))
}

/// Turns the errors of opening a directory without following links into a clear refusal.
pub fn not_a_dir(e: io::Error, path: &Path) -> io::Error {
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

/// Whether an error is `check_plain`'s refusal: the entry is there but is not a message.
pub fn is_not_plain(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}

//! Directory-relative system calls: every open, stat, rename and removal inside a spool names
//! a directory descriptor and one plain name, never a joined path, so no entry swapped for a
//! link can redirect it.
//!
//! std has no `*at()` calls, so these are thin wrappers over `libc`; each checks its result and
//! owns any descriptor it returns. With `crate::os`, this is one of the two modules that hold
//! `unsafe`: each function that needs it allows it on its own, and each block says why it is
//! sound.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

/// What `fstatat(…, AT_SYMLINK_NOFOLLOW)` or `fstat` said about an entry.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub size: u64,
    pub mtime_ms: u64,
    pub dev: u64,
    pub ino: u64,
}

impl Stat {
    fn of(st: &libc::stat) -> Stat {
        let mtime_ms = (st.st_mtime.max(0) as u64)
            .saturating_mul(1000)
            .saturating_add(st.st_mtime_nsec.max(0) as u64 / 1_000_000);
        Stat {
            mode: st.st_mode,
            nlink: st.st_nlink,
            uid: st.st_uid,
            size: st.st_size.max(0) as u64,
            mtime_ms,
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }

    /// What stands for an entry that cannot be qspool's and was not looked at (a name that is
    /// not UTF-8): neither a file nor a directory.
    pub fn foreign() -> Stat {
        Stat {
            mode: 0,
            nlink: 0,
            uid: 0,
            size: 0,
            mtime_ms: 0,
            dev: 0,
            ino: 0,
        }
    }

    fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }

    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }

    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }

    pub fn is_fifo(&self) -> bool {
        self.kind() == libc::S_IFIFO
    }

    pub fn is_socket(&self) -> bool {
        self.kind() == libc::S_IFSOCK
    }

    pub fn is_device(&self) -> bool {
        matches!(self.kind(), libc::S_IFBLK | libc::S_IFCHR)
    }

    /// Permission bits only.
    pub fn perms(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// The type of a directory entry as `getdents64` reported it (`d_type`); `Unknown` on
/// filesystems that do not say, where the caller must `stat` to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    Dir,
    File,
    Other,
    Unknown,
}

pub fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `openat(dir, name, flags | O_CLOEXEC, mode)`. Only O_CLOEXEC is added: O_NOFOLLOW is the
/// caller's to pass, as every caller inside a spool does; the spool root alone is opened
/// without it, because the user named it, links included. `dir` `None` is the working
/// directory, for that root only.
#[allow(unsafe_code)]
pub fn open(dir: Option<&File>, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<File> {
    let at = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    let flags = flags | libc::O_CLOEXEC;
    // SAFETY: `name` is a NUL-terminated string borrowed for the call, which only reads it;
    // `at` is AT_FDCWD or the descriptor of `dir`, borrowed and so open until we return.
    let fd = check(unsafe { libc::openat(at, name.as_ptr(), flags, mode as libc::c_uint) })?;
    // SAFETY: `fd` was just returned by openat (checked), and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// A directory under `dir`, never through a link (ELOOP or ENOTDIR then).
pub fn open_dir(dir: &File, name: &str) -> io::Result<File> {
    open_dir_c(dir, &c_name(name)?)
}

/// `open_dir` for a name that may not be UTF-8 (a foreign entry).
pub fn open_dir_c(dir: &File, name: &CStr) -> io::Result<File> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    open(Some(dir), name, flags, 0)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn stat(dir: &File, name: &str) -> io::Result<Stat> {
    stat_c(dir, &c_name(name)?)
}

/// `stat` for a name that may not be UTF-8.
#[allow(unsafe_code)]
pub fn stat_c(dir: &File, c: &CStr) -> io::Result<Stat> {
    // SAFETY: `libc::stat` is plain integers: all zeros is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated string borrowed for the call, which only reads it; `st`
    // is writable for a whole `stat`, all fstatat writes; `dir` is borrowed, so open.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(Stat::of(&st))
}

/// `fstat` of an open file or directory.
#[allow(unsafe_code)]
pub fn fstat(file: &File) -> io::Result<Stat> {
    // SAFETY: `libc::stat` is plain integers: all zeros is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable for a whole `stat`, all fstat writes; `file` is borrowed, so its
    // descriptor is open.
    check(unsafe { libc::fstat(file.as_raw_fd(), &mut st) })?;
    Ok(Stat::of(&st))
}

/// `mkdirat(dir, name, mode)`: the umask is already 077 (see `crate::os::restrict_umask`), so
/// the mode is exact at creation.
#[allow(unsafe_code)]
pub fn mkdir(dir: &File, name: &str, mode: u32) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call, which only reads it;
    // `dir` is borrowed, so its descriptor is open.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) }).map(|_| ())
}

/// `unlinkat(dir, name, 0)`: a file (or a link itself, never its target).
#[allow(unsafe_code)]
pub fn unlink(dir: &File, name: &str) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call, which only reads it;
    // `dir` is borrowed, so its descriptor is open.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) }).map(|_| ())
}

/// `unlinkat(dir, name, AT_REMOVEDIR)`: an empty directory.
#[allow(unsafe_code)]
pub fn rmdir(dir: &File, name: &str) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call, which only reads it;
    // `dir` is borrowed, so its descriptor is open.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) }).map(|_| ())
}

/// `renameat2(…, RENAME_NOREPLACE)` between two directories; where the filesystem lacks the
/// flag, a plain `renameat` (qspool's names are unique by construction). `EXDEV` is an error:
/// a move between filesystems is never turned into a copy.
pub fn rename_noreplace(from_dir: &File, from: &str, to_dir: &File, to: &str) -> io::Result<()> {
    rename_noreplace_c(from_dir, &c_name(from)?, to_dir, &c_name(to)?)
}

/// `rename_noreplace` for names that may not be UTF-8.
#[allow(unsafe_code)]
pub fn rename_noreplace_c(from_dir: &File, s: &CStr, to_dir: &File, d: &CStr) -> io::Result<()> {
    let (fd_s, fd_d) = (from_dir.as_raw_fd(), to_dir.as_raw_fd());
    // SAFETY: both names are NUL-terminated strings borrowed for the call, which only reads
    // them; both directories are borrowed, so their descriptors are open.
    let rc = unsafe { libc::renameat2(fd_s, s.as_ptr(), fd_d, d.as_ptr(), libc::RENAME_NOREPLACE) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            // SAFETY: the same names and descriptors as the renameat2 above, still borrowed.
            check(unsafe { libc::renameat(fd_s, s.as_ptr(), fd_d, d.as_ptr()) }).map(|_| ())
        }
        _ => Err(err),
    }
}

/// `renameat` that may replace `to` (the settings file only).
#[allow(unsafe_code)]
pub fn rename_replace(dir: &File, from: &str, to: &str) -> io::Result<()> {
    let (s, d) = (c_name(from)?, c_name(to)?);
    let fd = dir.as_raw_fd();
    // SAFETY: `s` and `d` are NUL-terminated strings that outlive the call, which only reads
    // them; `dir` is borrowed, so its descriptor is open.
    check(unsafe { libc::renameat(fd, s.as_ptr(), fd, d.as_ptr()) }).map(|_| ())
}

/// Writes back everything dirty on the filesystem that holds `file`, and flushes the device
/// (`syncfs`). Since Linux 5.8 it also reports a writeback error of any file of that filesystem
/// since `file` was opened, so one call stands for the fsyncs of many files.
#[allow(unsafe_code)]
pub fn syncfs(file: &File) -> io::Result<()> {
    // SAFETY: syncfs takes only a descriptor, open because `file` is borrowed.
    check(unsafe { libc::syncfs(file.as_raw_fd()) }).map(|_| ())
}

/// Sets a file's or directory's times to now (`futimens` with NULL): write permission suffices.
#[allow(unsafe_code)]
pub fn touch(file: &File) -> io::Result<()> {
    // SAFETY: a NULL `times` means "now", so no memory of ours is read; `file` is borrowed, so
    // its descriptor is open.
    check(unsafe { libc::futimens(file.as_raw_fd(), std::ptr::null()) }).map(|_| ())
}

/// Calls `f` with each entry of `dir` but `.` and `..`, as UTF-8 (other names cannot be
/// qspool's and come as `None`, so that callers can still count them as foreign). The listing
/// reads `dir`'s own descriptor from its start (`getdents64`, no extra open), so a descriptor
/// must not be listed by two threads at once; it stays usable for `*at` calls meanwhile. A
/// directory removed since it was opened lists as empty.
pub fn for_each(dir: &File, mut f: impl FnMut(Option<&str>, EntryType)) -> io::Result<()> {
    for_each_raw(dir, |name, kind| match std::str::from_utf8(name) {
        Ok(n) => f(Some(n), kind),
        Err(_) => f(None, kind),
    })
}

/// `for_each` with every name as its bytes, UTF-8 or not.
#[allow(unsafe_code)]
pub fn for_each_raw(dir: &File, mut f: impl FnMut(&[u8], EntryType)) -> io::Result<()> {
    let fd = dir.as_raw_fd();
    // SAFETY: lseek takes only numbers; `dir` is borrowed, so its descriptor is open.
    if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes, all getdents64 may write, and lives
        // through the call; `fd` is open, as above. The records are then read by safe,
        // bounds-checked indexing.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd,
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The directory was removed after we opened it (a bucket a pop emptied): it has no
            // entries left to list.
            if e.kind() == io::ErrorKind::NotFound {
                return Ok(());
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(());
        }
        let mut off = 0usize;
        while off < n as usize {
            // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name NUL-terminated.
            let rec = &buf[off..n as usize];
            let reclen = u16::from_ne_bytes([rec[16], rec[17]]) as usize;
            let kind = match rec[18] {
                libc::DT_DIR => EntryType::Dir,
                libc::DT_REG => EntryType::File,
                libc::DT_UNKNOWN => EntryType::Unknown,
                _ => EntryType::Other,
            };
            let name = &rec[19..reclen.min(rec.len())];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                f(name, kind);
            }
            if reclen == 0 {
                return Err(io::Error::other("getdents64 returned an empty record"));
            }
            off += reclen;
        }
    }
}

/// The UTF-8 names in `dir` but `.` and `..`.
pub fn names(dir: &File) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for_each(dir, |n, _| {
        if let Some(n) = n {
            out.push(n.to_owned());
        }
    })?;
    Ok(out)
}

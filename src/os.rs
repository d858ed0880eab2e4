//! The Linux calls std does not wrap, outside the spool's own `*at()` calls: signalfd, inotify,
//! poll, process-group signals, the watchdog of `work`'s CMDs, sealed in-memory files, the umask, the effective user, the host name, the CPU count and
//! the kernel release.
//!
//! With `spool::at` (the spool's directory-relative calls), this is one of the two modules
//! that hold `unsafe`; each function that needs it allows it on its own, and each block says
//! why it is sound. Every call's result is checked here.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use libc::{SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGTERM};

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Signals delivered as readable data instead of handlers: the process blocks them, and a
/// poll on this descriptor says when one is pending. The mask is per thread, so this must be
/// made before any thread is started; children get an empty mask back from std's spawn.
pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    #[allow(unsafe_code)]
    pub fn block(signals: &[libc::c_int]) -> io::Result<Signals> {
        if signals.contains(&SIGCHLD) {
            // An ignored SIGCHLD, inherited from a parent that set it, makes the kernel reap
            // children itself: their exits would never be seen. Other signals keep what was
            // inherited, so that `nohup` still means what it says.
            // SAFETY: SIG_DFL installs no handler, so no code of ours can run in signal context.
            if unsafe { libc::signal(SIGCHLD, libc::SIG_DFL) } == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
        }
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `set` is on this stack and writable for its whole size; sigemptyset fills it
        // in (checked) before any sigaddset reads it.
        unsafe {
            check(libc::sigemptyset(set.as_mut_ptr()))?;
            for &s in signals {
                check(libc::sigaddset(set.as_mut_ptr(), s))?;
            }
        }
        // SAFETY: sigemptyset succeeded above, so every byte of `set` is written.
        let set = unsafe { set.assume_init() };
        // SAFETY: `set` is initialised and only read; a NULL old set asks for nothing back.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: fd -1 asks for a new descriptor; `set` is initialised and only read.
        let fd =
            check(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
        Ok(Signals {
            // SAFETY: `fd` was just returned by signalfd (checked), and nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The signals pending now, in arrival order (each standard signal at most once).
    #[allow(unsafe_code)]
    pub fn take(&self) -> io::Result<Vec<libc::c_int>> {
        let mut got = Vec::new();
        let size = size_of::<libc::signalfd_siginfo>();
        loop {
            let mut info = std::mem::MaybeUninit::<libc::signalfd_siginfo>::uninit();
            // SAFETY: `info` is writable for `size` bytes, all that read may write; the fd is
            // owned by `self` and so open.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), size) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(got),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if n as usize != size {
                return Ok(got);
            }
            // SAFETY: the read filled all `size` bytes of `info` (checked just above).
            got.push(unsafe { info.assume_init() }.ssi_signo as libc::c_int);
        }
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Makes `cmd`'s child lead a new session (and so a new process group, whose id is its pid)
/// with no signal blocked. `Signals::block` blocks them in qspool, and a child inherits the
/// mask: a CMD that blocked SIGTERM could never be asked to stop. The new session has no
/// controlling terminal, so a CMD that tries to prompt on one fails at once instead of being
/// stopped, holding its lease, until someone notices.
#[allow(unsafe_code)]
pub fn start_detached(cmd: &mut std::process::Command, watchdog: Option<libc::c_int>) {
    use std::os::unix::process::CommandExt;
    let umask = USER_UMASK.load(Ordering::Relaxed) as libc::mode_t;
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it calls only setsid, send, umask, sigemptyset and
    // sigprocmask, allocates nothing (an error is a bare errno), takes no lock, and touches
    // nothing but its own stack and the `umask` it owns by copy. sigemptyset fills `set`
    // (checked) before sigprocmask reads it.
    unsafe {
        cmd.pre_exec(move || {
            let pgid = check(libc::setsid())?;
            // Registered before exec, so no instant of CMD's own code runs unguarded; the
            // socket is close-on-exec, so CMD does not keep it. A dead watchdog is no reason
            // not to run CMD: work starts another and registers its CMDs again.
            if let Some(fd) = watchdog {
                send_record(fd, b'+', pgid as u32);
            }
            libc::umask(umask);
            let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            check(libc::sigemptyset(set.as_mut_ptr()))?;
            check(libc::sigprocmask(
                libc::SIG_SETMASK,
                set.as_ptr(),
                std::ptr::null_mut(),
            ))?;
            Ok(())
        });
    }
}

/// A process that outlives `work` only to kill what `work` started: the process groups of
/// the running CMDs, each registered by the CMD itself before its exec (`start_detached`), or
/// by `guard`, and dropped with `release`. It reads them from a socket whose other end only
/// `work` holds (close-on-exec, so no CMD keeps it past its exec); when `work` dies, by SIGKILL
/// too, the kernel closes that end, the watchdog reads end-of-file, sends SIGKILL to every
/// group still registered and exits. It inherits `work`'s blocked SIGTERM,
/// SIGINT and SIGHUP, so only SIGKILL (or end-of-file) ends it. It holds no lease: leases are
/// names in the spool, not open files or locks.
pub struct Watchdog {
    pid: u32,
    /// The write end; `None` once dropped, which is what ends the watchdog.
    tx: Option<File>,
}

/// One record on the watchdog's socket: `+` (guard), `-` (release) or `?` (forget groups that
/// are empty), then a process group id in native order. The socket is SOCK_SEQPACKET: each
/// record arrives whole and alone, whoever sent it. It is a socket rather than a pipe so that
/// a send to a dead watchdog fails with EPIPE (MSG_NOSIGNAL) instead of raising SIGPIPE in a
/// CMD not yet exec'd.
const RECORD: usize = 5;
/// More than the most CMDs one `work` runs at once (`-j` is at most 1024).
const MAX_GROUPS: usize = 2048;
/// How long the watchdog rests between batches of records: far below the 100 ms in which the
/// death of `work` must take its CMDs along, and long enough to batch a busy `work`'s records.
const WATCH_PAUSE_NS: libc::c_long = 5_000_000;

impl Watchdog {
    /// Forks the watchdog. Call it while the process is single-threaded (it is, in `work`):
    /// the child runs only raw system calls on its own stack, never std, until `_exit`.
    #[allow(unsafe_code)]
    pub fn start() -> io::Result<Watchdog> {
        let mut fds = [0 as libc::c_int; 2];
        let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
        // SAFETY: `fds` has room for the two descriptors socketpair writes.
        check(unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) })?;
        let [rx, tx] = fds;
        // SAFETY: fork takes no arguments; the child below calls only async-signal-safe
        // functions (close, read, kill, _exit) and allocates nothing.
        let pid = match check(unsafe { libc::fork() }) {
            Ok(pid) => pid,
            Err(e) => {
                // SAFETY: both descriptors were just made by socketpair and are ours to close.
                unsafe {
                    libc::close(rx);
                    libc::close(tx);
                }
                return Err(e);
            }
        };
        if pid == 0 {
            // SAFETY: in the forked child: it closes its copy of work's end (or the socket
            // would never reach end-of-file) and the standard streams (a reader of work's
            // output must see its end when work ends), then never returns.
            unsafe {
                libc::close(tx);
                for fd in 0..=2 {
                    libc::close(fd);
                }
                watch(rx)
            }
        }
        // SAFETY: `rx` is the parent's copy of the watchdog's end, closed once here; `tx` is
        // a descriptor socketpair made that nothing else owns.
        let tx = unsafe {
            libc::close(rx);
            File::from_raw_fd(tx)
        };
        Ok(Watchdog {
            pid: pid as u32,
            tx: Some(tx),
        })
    }

    /// The watchdog's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// From now on, `pgid` is killed if `work` dies.
    pub fn guard(&self, pgid: u32) -> io::Result<()> {
        self.send(b'+', pgid)
    }

    /// `pgid` is no longer ours to kill: call it after its leader has exited and its group
    /// was sent SIGKILL, but before the leader is reaped, so that the id cannot be reused
    /// meanwhile.
    pub fn release(&self, pgid: u32) -> io::Result<()> {
        self.send(b'-', pgid)
    }

    /// Forgets every registered group that has no process left: after a CMD that registered
    /// itself (`start_detached`) failed to start, whose pid qspool never learns.
    pub fn prune(&self) -> io::Result<()> {
        self.send(b'?', 0)
    }

    /// The descriptor a CMD registers itself on, between its fork and its exec.
    pub fn fd(&self) -> Option<libc::c_int> {
        self.tx.as_ref().map(AsRawFd::as_raw_fd)
    }

    fn send(&self, op: u8, pgid: u32) -> io::Result<()> {
        let fd = self.fd().ok_or(io::ErrorKind::BrokenPipe)?;
        check(send_record(fd, op, pgid)).map(|_| ())
    }

    /// Reaps a watchdog that has exited (it was killed on its own), so that another can be
    /// started; `false` while it runs.
    #[allow(unsafe_code)]
    pub fn reap_if_dead(&self) -> io::Result<bool> {
        if !has_exited(self.pid)? {
            return Ok(false);
        }
        let mut status = 0;
        // SAFETY: `status` is a writable int, all that waitpid writes.
        check(unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, 0) })?;
        Ok(true)
    }
}

impl Drop for Watchdog {
    /// Ends the watchdog as `work` ends, and waits for it: it reads end-of-file, has nothing
    /// left to kill when every CMD was released, and exits at once.
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        drop(self.tx.take());
        let mut status = 0;
        // SAFETY: `status` is a writable int, all that waitpid writes.
        unsafe {
            libc::waitpid(self.pid as libc::pid_t, &mut status, 0);
        }
    }
}

/// Sends one record; async-signal-safe, for the CMD's side of its fork too. -1 and errno on
/// failure.
#[allow(unsafe_code)]
fn send_record(fd: libc::c_int, op: u8, pgid: u32) -> libc::c_int {
    let mut record = [op; RECORD];
    let id = pgid.to_ne_bytes();
    record[1] = id[0];
    record[2] = id[1];
    record[3] = id[2];
    record[4] = id[3];
    // SAFETY: send reads `RECORD` bytes of `record`, which lives on this stack frame.
    let sent = unsafe { libc::send(fd, record.as_ptr().cast(), RECORD, libc::MSG_NOSIGNAL) };
    if sent == RECORD as isize { 0 } else { -1 }
}

/// The watchdog's whole life, in the forked child: collect groups until end-of-file, kill
/// every one still registered, exit.
#[allow(unsafe_code)]
unsafe fn watch(rx: libc::c_int) -> ! {
    let mut groups = [0 as libc::pid_t; MAX_GROUPS];
    let mut count = 0;
    // After a record, what else is queued is read without waiting, and then the watchdog
    // pauses before it waits again: a busy `work` then wakes it a few hundred times a second
    // at most, not twice per CMD, and its death is still seen within a pause.
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: WATCH_PAUSE_NS,
    };
    let mut flags = 0;
    loop {
        let mut record = [0u8; RECORD];
        // SAFETY: recv writes at most `RECORD` bytes into `record`, which it owns.
        let n = unsafe { libc::recv(rx, record.as_mut_ptr().cast(), RECORD, flags) };
        if n < 0 {
            // SAFETY: errno is read from this thread's own location.
            match unsafe { *libc::__errno_location() } {
                libc::EINTR => continue,
                libc::EAGAIN => {
                    // SAFETY: nanosleep reads `pause`, which this function owns; an early
                    // return (a signal) only shortens the pause.
                    unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
                    flags = 0;
                    continue;
                }
                _ => break,
            }
        }
        if n == 0 {
            break;
        }
        flags = libc::MSG_DONTWAIT;
        if n as usize != RECORD {
            continue;
        }
        let pgid = u32::from_ne_bytes([record[1], record[2], record[3], record[4]]);
        let pgid = libc::pid_t::try_from(pgid).unwrap_or(0);
        match record[0] {
            b'+' if pgid > 1 && count < MAX_GROUPS => {
                groups[count] = pgid;
                count += 1;
            }
            b'-' => {
                if let Some(i) = groups[..count].iter().position(|&g| g == pgid) {
                    count -= 1;
                    groups[i] = groups[count];
                }
            }
            b'?' => {
                let mut i = 0;
                while i < count {
                    // SAFETY: signal 0 only asks whether the group has a process.
                    let gone = unsafe { libc::kill(-groups[i], 0) } < 0
                        // SAFETY: as above.
                        && unsafe { *libc::__errno_location() } == libc::ESRCH;
                    if gone {
                        count -= 1;
                        groups[i] = groups[count];
                    } else {
                        i += 1;
                    }
                }
            }
            _ => {}
        }
    }
    for &g in &groups[..count] {
        // SAFETY: kill takes two numbers; every `g` is above 1, so never our own group (0)
        // nor every process (-1).
        unsafe {
            libc::kill(-g, SIGKILL);
        }
    }
    // SAFETY: _exit ends the process without running anything of the parent's (no atexit
    // handlers, no buffered output flushed twice).
    unsafe { libc::_exit(0) }
}

/// The process group of `pid`.
#[allow(unsafe_code)]
pub fn process_group(pid: u32) -> io::Result<u32> {
    let pid = id_from(pid, 1, "no such process")?;
    // SAFETY: getpgid takes a number and touches no memory of ours.
    check(unsafe { libc::getpgid(pid) }).map(|g| g as u32)
}

/// An inotify watch on one directory's attribute changes: the doorbell writers ring by
/// touching the directory (see `spool::at::touch`). Attribute changes of its entries (a bucket
/// a push made or renamed into) also wake it; that costs a waiter one look too many, nothing
/// more.
pub struct DirWatch {
    fd: OwnedFd,
}

impl DirWatch {
    #[allow(unsafe_code)]
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        // SAFETY: inotify_init1 takes only flags and touches no memory of ours.
        let fd = check(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) })?;
        // SAFETY: `fd` was just returned by inotify_init1 (checked), and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let c = c_path(dir)?;
        let mask = libc::IN_ATTRIB | libc::IN_ONLYDIR | libc::IN_DONT_FOLLOW;
        // SAFETY: `c` is a NUL-terminated string that outlives the call, which only reads it;
        // `fd` is the open inotify descriptor owned here.
        check(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) })?;
        Ok(DirWatch { fd })
    }

    /// Reads and discards every pending event: a waiter only needs to know that one came.
    #[allow(unsafe_code)]
    pub fn drain(&self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: `buf` is writable for `buf.len()` bytes, all that read may write; the fd
            // is owned by `self` and so open.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                continue;
            }
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
    }
}

impl AsFd for DirWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Waits until one of `fds` is readable or `timeout` passes (`None`: no limit). Returns which
/// are readable; all `false` after a time-out or an interrupting signal.
#[allow(unsafe_code)]
pub fn poll(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut set: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Rounded up, so that a wake-up is never early by a fraction of a millisecond.
    let ms = timeout.map_or(-1, |t| {
        t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int
    });
    // SAFETY: `set` holds exactly `set.len()` initialised entries, writable (poll fills in
    // `revents`) and alive through the call; each fd is borrowed, so open until we return.
    let rc = unsafe { libc::poll(set.as_mut_ptr(), set.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(set.iter().map(|p| rc > 0 && p.revents != 0).collect())
}

/// Whether the child `pid` has exited, without reaping it: until it is reaped its pid, and so
/// its process group id, cannot be reused, and the rest of its group can still be signalled.
#[allow(unsafe_code)]
pub fn has_exited(pid: u32) -> io::Result<bool> {
    let pid = libc::id_t::from(pid);
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` is writable for a whole siginfo_t, all that waitid may write.
    check(unsafe { libc::waitid(libc::P_PID, pid, info.as_mut_ptr(), flags) })?;
    // With WNOHANG, si_pid stays 0 while the child runs (the struct was zeroed).
    // SAFETY: an all-zero siginfo_t (plain integers) is valid, and waitid either left it so or
    // filled it in for a child's exit, whose si_pid is the field `si_pid()` reads.
    Ok(unsafe { info.assume_init().si_pid() } != 0)
}

/// Sends `signal` to the one process `pid`; one already gone is no error.
pub fn kill(pid: u32, signal: libc::c_int) -> io::Result<()> {
    send(id_from(pid, 1, "no such process")?, signal)
}

/// Sends `signal` to every process in the group `pgid`. A group that is already gone is no
/// error: what the signal was for has happened.
pub fn kill_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    // Never -0 (our own group) or -1 (every process we may signal).
    send(-id_from(pgid, 2, "no such process group")?, signal)
}

/// `id` as a pid_t, refused below `min`.
fn id_from(id: u32, min: libc::pid_t, what: &str) -> io::Result<libc::pid_t> {
    match libc::pid_t::try_from(id) {
        Ok(id) if id >= min => Ok(id),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, what.to_owned())),
    }
}

/// kill(2) of `target` (a pid, or minus a group id), where ESRCH means done already.
#[allow(unsafe_code)]
fn send(target: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes two numbers and touches no memory of ours.
    match check(unsafe { libc::kill(target, signal) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r.map(|_| ()),
    }
}

/// The umask the user started qspool with, restored for the CMDs `work` starts.
static USER_UMASK: AtomicU32 = AtomicU32::new(0o022);

/// Sets the umask to 077 for the whole process, so that everything qspool creates in a spool
/// has its exact mode (0600 files, 0700 directories) at creation, with no later chmod, whatever
/// umask the user has: no file is ever briefly more open than it should be.
#[allow(unsafe_code)]
pub fn restrict_umask() {
    // SAFETY: umask takes a number, touches no memory of ours and cannot fail.
    let old = unsafe { libc::umask(0o077) };
    USER_UMASK.store(old as u32, Ordering::Relaxed);
}

/// How many CPUs this process may run on (`sched_getaffinity`), at least 1. Unlike std's
/// `available_parallelism`, it reads no file: a command inside a spool touches nothing else.
#[allow(unsafe_code)]
pub fn cpus() -> usize {
    // SAFETY: cpu_set_t is an array of integers: all zeros is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable for the size passed, all that the kernel may write.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return 1;
    }
    // SAFETY: CPU_COUNT only reads the set it is lent, which is initialised (zeroed, then
    // filled in by the kernel).
    (unsafe { libc::CPU_COUNT(&set) } as usize).max(1)
}

/// The effective user id, asked once: the trust check of every state directory needs it, and
/// qspool never changes it.
#[allow(unsafe_code)]
pub fn euid() -> u32 {
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // SAFETY: geteuid takes nothing, touches no memory of ours and cannot fail.
    *EUID.get_or_init(|| unsafe { libc::geteuid() })
}

/// Whether `syncfs(2)` reports writeback errors (Linux 5.8 and later). Before that it returned
/// 0 even when a file's data could not be written, so it cannot stand for their fsyncs.
#[allow(unsafe_code)]
pub fn syncfs_reports_errors() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        // SAFETY: utsname is arrays of c_char: all zeros is a valid value for uname to fill in.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `u` is writable for its whole size, all that uname writes.
        if unsafe { libc::uname(&mut u) } != 0 {
            return false;
        }
        // SAFETY: uname succeeded, so `release` holds a NUL-terminated string within its
        // array; `u` outlives the borrowed `release`, which is copied out below.
        let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
        release_at_least(&release.to_string_lossy(), (5, 8))
    })
}

/// Whether a kernel release string ("6.1.0-18-amd64") is at least `major.minor`. An unreadable
/// one is taken for an old kernel: the cautious answer.
fn release_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// This host's name (gethostname), empty if it cannot be had: it only tells hosts apart in ids.
#[allow(unsafe_code)]
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for `buf.len()` bytes, and gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    // A name that filled the buffer may lack its NUL: then it is the whole buffer.
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Clears O_NONBLOCK, which messages are opened with (so that a FIFO planted in the spool
/// cannot block the open): a CMD reading its standard input must see an ordinary file.
#[allow(unsafe_code)]
pub fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL takes no pointer; `fd` is borrowed from `file`, so open for the call.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: F_SETFL takes an integer argument; `fd` is open, as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) }).map(|_| ())
}

/// `fd`, for the NATS client's runtime to wait on: a copy of the descriptor, owned by what
/// is returned, so that it stays open for as long as the runtime watches it.
#[cfg(feature = "jetstream")]
#[allow(unsafe_code)]
pub fn watched(fd: BorrowedFd<'_>) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    let owned = fd.try_clone_to_owned()?;
    // SAFETY: the AsyncFd owns `owned`, so the descriptor it registers stays open and names the
    // same open file for the AsyncFd's whole life, which is all `register` asks.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE)
    }
    .map_err(io::Error::from)
}

/// A sealed in-memory file holding `bytes`, positioned at its start: what a CMD of `work` on
/// a queue with no files reads as its standard input, seekable and of known size like a
/// message file. The seals keep CMD from changing what a retry would read.
#[cfg(feature = "jetstream")]
#[allow(unsafe_code)]
pub fn sealed_file(bytes: &[u8]) -> io::Result<File> {
    use std::io::{Seek, Write};
    let name = c"qspool-message";
    // SAFETY: `name` is a NUL-terminated string that outlives the call; the flags are plain
    // integers.
    let fd = check(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(bytes)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS takes an integer argument; `file` owns the open descriptor.
    check(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    file.rewind()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_rings_a_watch_and_a_timeout_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DirWatch::new(dir.path()).unwrap();
        let quiet = poll(&[watch.as_fd()], Some(Duration::from_millis(1))).unwrap();
        assert_eq!(quiet, [false]);
        crate::spool::at::touch(&File::open(dir.path()).unwrap()).unwrap();
        let rung = poll(&[watch.as_fd()], Some(Duration::from_secs(5))).unwrap();
        assert_eq!(rung, [true]);
        watch.drain();
        let drained = poll(&[watch.as_fd()], Some(Duration::ZERO)).unwrap();
        assert_eq!(drained, [false]);
    }

    #[test]
    fn an_exit_is_seen_without_reaping() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !has_exited(pid).unwrap() {
            assert!(std::time::Instant::now() < deadline, "never exited");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Still unreaped: the status is there for `wait`, and asking again says the same.
        assert!(has_exited(pid).unwrap());
        assert_eq!(child.wait().unwrap().code(), Some(7));
    }

    #[test]
    fn kernel_releases_compare_by_major_then_minor() {
        assert!(release_at_least("6.18.44-fc-v669", (5, 8)));
        assert!(release_at_least("5.8.0", (5, 8)));
        assert!(release_at_least("5.10.0-28-amd64", (5, 8)));
        assert!(!release_at_least("5.4.0-150-generic", (5, 8)));
        assert!(!release_at_least("4.19.0", (5, 8)));
        assert!(!release_at_least("", (5, 8)));
        assert!(!release_at_least("garbage", (5, 8)));
    }

    /// `unsafe_code` is denied crate-wide, so every `unsafe` needs an allow: where the allows
    /// are is where the unsafe code is. Clippy's `undocumented_unsafe_blocks` checks the
    /// `SAFETY:` comments.
    #[test]
    fn unsafe_is_allowed_only_here_and_in_spool_at_and_per_function() {
        let allow = concat!("allow(", "unsafe_code)");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut holders = Vec::new();
        let mut todo = vec![src.clone()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    todo.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let rel = path
                    .strip_prefix(&src)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                assert!(
                    !text.contains(&format!("#![{allow}]")),
                    "{rel}: a module-wide allow"
                );
                if text.contains(allow) {
                    holders.push(rel);
                }
            }
        }
        holders.sort();
        assert_eq!(holders, ["os.rs", "spool/at.rs"]);
    }

    #[test]
    fn groups_zero_and_one_are_refused() {
        assert!(kill_group(0, 0).is_err());
        assert!(kill_group(1, 0).is_err());
        assert!(kill_group(u32::MAX, 0).is_err());
    }
}

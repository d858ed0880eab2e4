//! Waiting for a message without spinning: the doorbell on `new/`, the instants at which
//! delayed messages and leases come due, and a slow re-check for whatever rings no bell.

use crate::os::{self, DirWatch};
use crate::spool::Spool;
pub use crate::spool::lease::earliest;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// The longest a waiter sleeps without looking at the spool, when the doorbell works: it
/// covers a writer that does not ring it (another tool, a file moved in by hand) and a ring
/// lost to a full inotify queue.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The same, when the doorbell cannot be watched (no inotify, or its limits reached): a poll
/// this often keeps the wake-up within the 100 ms qspool promises, at a few syscalls a tick.
pub const POLL: Duration = Duration::from_millis(50);

pub struct Waiter {
    watch: Option<DirWatch>,
    deadline: Option<Instant>,
}

impl Waiter {
    /// Starts watching before the caller's first look at the queue, so that a push between
    /// that look and the sleep still wakes it. `limit_ms`: give up after this long.
    pub fn new(spool: &Spool, limit_ms: Option<u64>) -> Waiter {
        Waiter {
            // Without inotify the waiter polls; nothing is refused for it.
            watch: DirWatch::new(&spool.doorbell_path()).ok(),
            deadline: limit_ms.map(|ms| Instant::now() + Duration::from_millis(ms)),
        }
    }

    /// The descriptor to poll for the doorbell, if there is one.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.watch.as_ref().map(AsFd::as_fd)
    }

    /// Forgets the rings heard so far.
    pub fn drain(&self) {
        if let Some(w) = &self.watch {
            w.drain();
        }
    }

    /// How long to sleep before looking again, given that something comes due at wall-clock
    /// millisecond `due_ms` (a delayed message or a lease expiry). `None` once the limit has
    /// passed.
    pub fn timeout(&self, now_ms: u64, due_ms: Option<u64>) -> Option<Duration> {
        let now = Instant::now();
        let mut sleep = if self.watch.is_some() { RECHECK } else { POLL };
        if let Some(due) = due_ms {
            sleep = sleep.min(Duration::from_millis(due.saturating_sub(now_ms)));
        }
        match self.deadline {
            Some(d) if d <= now => None,
            Some(d) => Some(sleep.min(d - now)),
            None => Some(sleep),
        }
    }

    /// Sleeps until the doorbell rings, `due_ms` comes, or the re-check is due. `false` once
    /// the limit has passed: the caller should look one last time and give up.
    pub fn sleep(&self, now_ms: u64, due_ms: Option<u64>) -> std::io::Result<bool> {
        let Some(t) = self.timeout(now_ms, due_ms) else {
            return Ok(false);
        };
        let fds: Vec<BorrowedFd<'_>> = self.fd().into_iter().collect();
        os::poll(&fds, Some(t))?;
        self.drain();
        Ok(true)
    }
}

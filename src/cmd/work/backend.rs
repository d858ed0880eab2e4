//! What `work` asks of a queue, and a directory's answers: the loop in `work` runs the same
//! on a spool directory and on a JetStream queue (`jetstream::work`).

use crate::os;
use crate::spool::name::{Id, Leased};
use crate::spool::rate::Grant;
use crate::spool::ready::Take;
use crate::spool::transition::Released;
use crate::spool::{Spool, durable, now_ms};
use crate::wait::{Waiter, earliest};
use anyhow::{Result, anyhow};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// One lease held by `work`, whatever holds it.
pub trait Hold: Clone {
    fn id(&self) -> &Id;
    fn attempt(&self) -> u32;
    /// When the lease runs out, in milliseconds since the epoch.
    fn expires_ms(&self) -> u64;
}

impl Hold for Leased {
    fn id(&self) -> &Id {
        &self.id
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }

    fn expires_ms(&self) -> u64 {
        self.expires_ms
    }
}

/// What one take found.
pub enum Taken<L> {
    /// Leased, with what CMD reads as its standard input: the payload and nothing else.
    Leased(L, File),
    /// Leased, but the lease ran out before its payload could be opened.
    Gone(L),
    /// Leased, but its payload cannot be read: this attempt fails, and the next message goes
    /// on.
    Unreadable(L, anyhow::Error),
    /// Nothing is visible. `next_ms`: when something may be (a delayed message, a retry).
    Nothing { next_ms: Option<u64> },
}

/// The queue `work` runs on. Every method that settles or extends answers `false` or `None`
/// when the lease is no longer held (exit 4 elsewhere), and an error only for a failure.
pub trait Backend {
    type Lease: Hold;

    /// `QSPOOL_SPOOL` for CMD: where a `qspool` run by CMD finds the same queue.
    fn env(&self) -> &OsStr;
    /// The queue, as messages name it.
    fn describe(&self) -> String;
    /// `Some(since)` while consumption is paused.
    fn paused(&mut self) -> Result<Option<u64>>;
    /// Brings back expired leases other than `ours`; returns the next expiry, if known.
    fn reclaim(&mut self, ours: &dyn Fn(&Id) -> bool) -> Option<u64>;
    /// One start from a limit shared by every consumer of the queue.
    fn take_start(&mut self) -> Result<Grant>;
    fn give_back_start(&mut self) -> Result<()>;
    /// Leases one message. `room`: how many this worker could start now, a hint for a backend
    /// that leases in batches.
    fn take(&mut self, lease_ms: u64, room: usize) -> Result<Taken<Self::Lease>>;
    fn ack(&mut self, l: &Self::Lease) -> Result<bool>;
    fn bury(&mut self, l: &Self::Lease) -> Result<bool>;
    /// Back to the queue after `delay_ms`, or to the dead letters after the last attempt.
    fn release(&mut self, l: &Self::Lease, delay_ms: u64) -> Result<Option<Released>>;
    /// Back to the queue, untouched: CMD never saw it.
    fn unlease(&mut self, l: &Self::Lease) -> Result<bool>;
    /// The renewed lease, and a warning when it is held but could be undone by a crash or was
    /// not fully renewed.
    fn extend(
        &mut self,
        l: &Self::Lease,
        lease_ms: u64,
    ) -> Result<Option<(Self::Lease, Option<anyhow::Error>)>>;
    /// Sleeps until `signals` is readable, `sleep` passes, or (with `bell`) a message may have
    /// come; `due_ms` is the `next_ms` of the last look.
    fn wait(
        &mut self,
        signals: BorrowedFd<'_>,
        bell: bool,
        due_ms: Option<u64>,
        sleep: Option<Duration>,
    ) -> std::io::Result<()>;
    /// The loop is over: give back whatever was leased and not started.
    fn finish(&mut self) {}
}

/// A spool directory.
pub struct Dir {
    pub spool: Spool,
    /// Absolute, so that a CMD that changes directory still finds it.
    pub env: OsString,
    pub waiter: Option<Waiter>,
}

impl Backend for Dir {
    type Lease = Leased;

    fn env(&self) -> &OsStr {
        &self.env
    }

    fn describe(&self) -> String {
        self.spool.root().display().to_string()
    }

    fn paused(&mut self) -> Result<Option<u64>> {
        self.spool.paused()
    }

    fn reclaim(&mut self, ours: &dyn Fn(&Id) -> bool) -> Option<u64> {
        // As in pop: reclaiming is a courtesy, and a lease that cannot be moved is reported
        // without holding up this worker.
        let ours = |r: &Leased| ours(&r.id);
        match self
            .spool
            .reclaim_expired(now_ms(), &ours, &mut |e| crate::output::report(&e))
        {
            Ok(r) => r.next_expiry_ms,
            Err(e) => {
                crate::output::report(&e);
                None
            }
        }
    }

    fn take_start(&mut self) -> Result<Grant> {
        self.spool.take_starts(1)
    }

    fn give_back_start(&mut self) -> Result<()> {
        self.spool.give_back_starts(1)
    }

    fn take(&mut self, lease_ms: u64, _room: usize) -> Result<Taken<Leased>> {
        let leased = match self.spool.take(now_ms(), lease_ms)? {
            Take::Nothing { next_ms } => return Ok(Taken::Nothing { next_ms }),
            Take::Leased(l) => l.leased,
        };
        let opened = self
            .spool
            .open_leased(&leased)
            .and_then(|(f, _)| os::set_blocking(&f).map(|()| f));
        Ok(match opened {
            Ok(f) => Taken::Leased(leased, f),
            // Only a lease shorter than the time this took can be gone already.
            Err(e) if durable::is_missing(&e) => Taken::Gone(leased),
            Err(e) => {
                let path = self.spool.leased_path(&leased);
                Taken::Unreadable(
                    leased,
                    anyhow!(e).context(format!("open {}", path.display())),
                )
            }
        })
    }

    fn ack(&mut self, l: &Leased) -> Result<bool> {
        self.spool.ack(l)
    }

    fn bury(&mut self, l: &Leased) -> Result<bool> {
        self.spool.bury(l)
    }

    fn release(&mut self, l: &Leased, delay_ms: u64) -> Result<Option<Released>> {
        self.spool.release(l, delay_ms)
    }

    fn unlease(&mut self, l: &Leased) -> Result<bool> {
        self.spool.unlease(l)
    }

    fn extend(
        &mut self,
        l: &Leased,
        lease_ms: u64,
    ) -> Result<Option<(Leased, Option<anyhow::Error>)>> {
        Ok(self
            .spool
            .extend(l, lease_ms)?
            .map(|(next, nd)| (next, nd.map(anyhow::Error::new))))
    }

    fn wait(
        &mut self,
        signals: BorrowedFd<'_>,
        bell: bool,
        due_ms: Option<u64>,
        mut sleep: Option<Duration>,
    ) -> std::io::Result<()> {
        let bell = self.waiter.as_ref().filter(|_| bell);
        if let Some(w) = bell {
            sleep = earliest(sleep, w.timeout(now_ms(), due_ms));
        }
        let mut fds: Vec<BorrowedFd<'_>> = vec![signals];
        fds.extend(bell.and_then(Waiter::fd));
        os::poll(&fds, sleep)?;
        if let Some(w) = bell {
            w.drain();
        }
        Ok(())
    }
}

//! `qspool work` on a JetStream queue: `cmd::work`'s loop, over `Queue`. CMD reads each
//! payload from a sealed in-memory file; a heartbeat is the server's "in progress" and a new
//! fence; a worker with `--wait` keeps one pull request open on the server, so that a push, a
//! retry coming due or an expired lease reaches it without polling.

use super::names::Receipt;
use super::queue::{Held, Missing, Queue};
use super::{Connect, Rt, runtime};
use crate::address::NatsUrl;
use crate::cli::WorkArgs;
use crate::cmd::work::backend::{Backend, Hold, Taken};
use crate::exit::{Code, code_of};
use crate::os;
use crate::output::report;
use crate::spool::name::Id;
use crate::spool::now_ms;
use crate::spool::rate::Grant;
use crate::spool::transition::Released;
use crate::wait::earliest;
use anyhow::{Result, anyhow};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long the server holds a waiting worker's pull request before it is renewed.
const HOLD: Duration = Duration::from_secs(30);

/// The first and the longest pause between tries while the server cannot be reached.
const RETRY_FIRST_MS: u64 = 200;
const RETRY_MAX_MS: u64 = 30_000;

pub fn run(url: &NatsUrl, how: &Connect, args: &WorkArgs, spool: &OsStr) -> Result<Code> {
    // Before the runtime: its threads must inherit the blocked signals, and the watchdog is
    // forked while qspool is one thread.
    let ready = crate::cmd::work::prepare(args)?;
    let rt = runtime()?;
    // A worker that waits runs for days: it rides out a server restart instead of giving up.
    let waiting = args.wait.is_some();
    let mut q = rt.block_on(Queue::connect_with(url, how, waiting))?;
    rt.block_on(q.open_consumer())?;
    let lease_ms = q.lease_ms()?;
    let backend = Js {
        rt,
        q: Arc::new(q),
        env: spool.to_owned(),
        waiting,
        stash: VecDeque::new(),
        pending: None,
        sent_at: 0,
        arrived: None,
        outage: None,
    };
    Ok(crate::cmd::work::drive(backend, args, ready, lease_ms))
}

/// A lease on JetStream: its receipt, and the delivery count as the attempt.
#[derive(Clone)]
pub struct JsLease {
    receipt: Receipt,
    attempt: u32,
    expires_ms: u64,
}

impl Hold for JsLease {
    fn id(&self) -> &Id {
        &self.receipt.id
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }

    fn expires_ms(&self) -> u64 {
        self.expires_ms
    }
}

struct Js {
    rt: Rt,
    q: Arc<Queue>,
    env: OsString,
    waiting: bool,
    /// Leased in one batch, not yet started: taken first.
    stash: VecDeque<Held>,
    /// The open pull request of a waiting worker: while it is out, the next message goes to
    /// it, so no other fetch is sent.
    pending: Option<JoinHandle<Result<Vec<Held>>>>,
    /// `Queue::reconnects` when the open pull request was sent.
    sent_at: u64,
    /// What the pull request brought, when it came during a wait.
    arrived: Option<Result<Vec<Held>>>,
    /// While the server cannot be reached: when to try again, and the pause after that.
    outage: Option<(u64, u64)>,
}

/// A settle's answer, with a lost lease (exit 4 elsewhere) as `None`.
fn held<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if code_of(&e) == Code::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Js {
    fn lease_of(h: &Held) -> JsLease {
        JsLease {
            receipt: h.receipt.clone(),
            attempt: u32::try_from(h.attempt).unwrap_or(u32::MAX),
            expires_ms: h.expires_ms,
        }
    }

    fn start(h: &Held) -> Taken<JsLease> {
        let l = Js::lease_of(h);
        if now_ms() >= h.expires_ms {
            return Taken::Gone(l);
        }
        match os::sealed_file(&h.payload) {
            Ok(f) => Taken::Leased(l, f),
            Err(e) => {
                let e = anyhow!(e).context(format!("hold the payload of {} in memory", l.id()));
                Taken::Unreadable(l, e)
            }
        }
    }

    /// A fetch failed. Without --wait that ends the work; with it, a server that cannot be
    /// reached is said once and tried again with backoff, and the messages stay on the server.
    fn failed(&mut self, e: anyhow::Error) -> Result<Taken<JsLease>> {
        if !self.waiting || e.downcast_ref::<Missing>().is_some() {
            return Err(e);
        }
        let now = now_ms();
        let pause = match self.outage {
            None => {
                report(&anyhow!(
                    "{e:#}; the messages stay on the server, and work tries again until it answers"
                ));
                RETRY_FIRST_MS
            }
            Some((_, pause)) => (pause * 2).min(RETRY_MAX_MS),
        };
        self.outage = Some((now + pause, pause));
        Ok(Taken::Nothing {
            next_ms: Some(now + pause),
        })
    }

    fn recovered(&mut self) {
        if self.outage.take().is_some() {
            crate::output::say(&format!("{}: the server answers again", self.q.url));
        }
    }

    /// What the pull request brought, into the stash (or as the error it ended with).
    fn absorb(&mut self, got: Result<Vec<Held>>) -> Result<()> {
        let held = got?;
        self.recovered();
        self.stash.extend(held);
        Ok(())
    }
}

impl Backend for Js {
    type Lease = JsLease;

    fn env(&self) -> &OsStr {
        &self.env
    }

    fn describe(&self) -> String {
        self.q.url.to_string()
    }

    fn paused(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }

    fn reclaim(&mut self, _ours: &dyn Fn(&Id) -> bool) -> Option<u64> {
        // The server redelivers what ran out, to the open pull request if there is one.
        None
    }

    fn take_start(&mut self) -> Result<Grant> {
        Ok(Grant {
            granted: 1,
            next_ms: None,
        })
    }

    fn give_back_start(&mut self) -> Result<()> {
        Ok(())
    }

    fn take(&mut self, _lease_ms: u64, room: usize) -> Result<Taken<JsLease>> {
        if let Some(h) = self.stash.pop_front() {
            return Ok(Js::start(&h));
        }
        let got = match self.arrived.take() {
            Some(got) => Some(got),
            None => match self.pending.take() {
                Some(p) if p.is_finished() => Some(
                    self.rt
                        .block_on(p)
                        .unwrap_or_else(|e| Err(anyhow!("{}: fetch: {e}", self.q.url))),
                ),
                Some(p) => {
                    self.pending = Some(p);
                    return Ok(Taken::Nothing { next_ms: None });
                }
                None => None,
            },
        };
        if let Some(got) = got {
            if let Err(e) = self.absorb(got) {
                return self.failed(e);
            }
            if let Some(h) = self.stash.pop_front() {
                return Ok(Js::start(&h));
            }
        }
        if let Some((at, _)) = self.outage
            && now_ms() < at
        {
            return Ok(Taken::Nothing { next_ms: Some(at) });
        }
        let got = self.rt.block_on(self.q.lease(room, None));
        if let Err(e) = self.absorb(got) {
            return self.failed(e);
        }
        Ok(match self.stash.pop_front() {
            Some(h) => Js::start(&h),
            None => Taken::Nothing { next_ms: None },
        })
    }

    fn ack(&mut self, l: &JsLease) -> Result<bool> {
        held(self.rt.block_on(self.q.ack(&l.receipt))).map(|r| r.is_some())
    }

    fn bury(&mut self, l: &JsLease) -> Result<bool> {
        held(self.rt.block_on(self.q.bury(&l.receipt))).map(|r| r.is_some())
    }

    fn release(&mut self, l: &JsLease, delay_ms: u64) -> Result<Option<Released>> {
        let dead = held(self.rt.block_on(self.q.requeue(&l.receipt, delay_ms)))?;
        Ok(dead.map(|dead| {
            if dead {
                Released::Dead
            } else {
                Released::Requeued {
                    visible_ms: now_ms() + delay_ms,
                }
            }
        }))
    }

    fn unlease(&mut self, l: &JsLease) -> Result<bool> {
        held(self.rt.block_on(self.q.give_back(&l.receipt))).map(|r| r.is_some())
    }

    fn extend(
        &mut self,
        l: &JsLease,
        _lease_ms: u64,
    ) -> Result<Option<(JsLease, Option<anyhow::Error>)>> {
        let renewed = held(self.rt.block_on(self.q.extend(&l.receipt)))?;
        Ok(renewed.map(|(h, warning)| {
            let next = JsLease {
                receipt: h.receipt,
                attempt: l.attempt,
                expires_ms: h.expires_ms,
            };
            (next, warning)
        }))
    }

    fn wait(
        &mut self,
        signals: BorrowedFd<'_>,
        bell: bool,
        due_ms: Option<u64>,
        mut sleep: Option<Duration>,
    ) -> std::io::Result<()> {
        if !bell {
            // Stopping, failed or done: what was leased and not started goes back now, not
            // after the grace, and the open request is dropped so that nothing more comes.
            self.give_back_unstarted();
        }
        if let (true, Some(due)) = (bell, due_ms) {
            sleep = earliest(
                sleep,
                Some(Duration::from_millis(due.saturating_sub(now_ms()))),
            );
        }
        let reconnects = Arc::clone(&self.q.reconnects);
        let now_count = reconnects.count.load(Ordering::SeqCst);
        if self.pending.is_some() && self.sent_at != now_count {
            // Sent before the last reconnect: a restarted server has forgotten it.
            if let Some(p) = self.pending.take() {
                p.abort();
            }
        }
        let quiet = self.stash.is_empty() && self.arrived.is_none() && self.outage.is_none();
        if bell && quiet && self.pending.is_none() {
            let q = Arc::clone(&self.q);
            self.sent_at = now_count;
            self.pending = Some(self.rt.spawn(async move { q.lease(1, Some(HOLD)).await }));
        }
        let mut pending = self.pending.take();
        let (woke, arrived) = self.rt.block_on(async {
            let watched = match os::watched(signals) {
                Ok(w) => w,
                Err(e) => return (Err(e), None),
            };
            let timer = async {
                match sleep {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            let rung = reconnects.rung.notified();
            if reconnects.count.load(Ordering::SeqCst) != now_count {
                return (Ok(()), None);
            }
            let came = async {
                match pending.as_mut() {
                    Some(p) => p.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = watched.readable() => (r.map(|_| ()), None),
                () = timer => (Ok(()), None),
                () = rung => (Ok(()), None),
                got = came => (Ok(()), Some(got)),
            }
        });
        match arrived {
            Some(got) => {
                self.arrived =
                    Some(got.unwrap_or_else(|e| Err(anyhow!("{}: fetch: {e}", self.q.url))));
            }
            None => self.pending = pending,
        }
        woke
    }

    fn finish(&mut self) {
        self.give_back_unstarted();
        if let Err(e) = self.rt.block_on(self.q.flush()) {
            report(&e);
        }
    }
}

impl Js {
    fn give_back_unstarted(&mut self) {
        let mut left: Vec<Held> = self.stash.drain(..).collect();
        if let Some(p) = self.pending.take() {
            if p.is_finished() {
                self.arrived = Some(
                    self.rt
                        .block_on(p)
                        .unwrap_or_else(|e| Err(anyhow!("{}: fetch: {e}", self.q.url))),
                );
            } else {
                // The server drops a request whose reply subject nobody listens to any more.
                p.abort();
            }
        }
        if let Some(Ok(got)) = self.arrived.take() {
            left.extend(got);
        }
        for h in left {
            if let Err(e) = self.rt.block_on(self.q.give_back(&h.receipt)) {
                report(&e.context(format!(
                    "give back {}, leased and not run; it returns when its lease expires",
                    h.receipt.id
                )));
            }
        }
    }
}

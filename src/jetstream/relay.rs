//! `qspool relay`: a local spool forwarded to a JetStream queue, each message acked locally
//! only after the server's PubAck for it.

use super::queue::{Connect, Queue};
use super::runtime;
use crate::address::{self, Address};
use crate::cli::RelayArgs;
use crate::exit::{Code, usage};
use crate::os::{self, SIGINT, SIGTERM, Signals};
use crate::spool::ready::Lease;
use crate::spool::{Spool, now_ms, uses};
use crate::wait::Waiter;
use anyhow::{Context, Result, anyhow};
use std::future::IntoFuture;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// The first wait after a failed batch; it doubles up to `BACKOFF_MAX`.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a batch waits for its PubAcks before it counts the server as unreachable.
const ACK_WAIT: Duration = Duration::from_secs(10);
/// The most one batch (its publishes and their PubAcks) may take.
const BATCH_WAIT: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Tally {
    relayed: u64,
    /// Local acks that found their lease gone: the message was published and will be again;
    /// the queue's duplicate window drops the copy.
    lost_acks: u64,
    /// Messages the server refused (too big) or that could not be read: back locally, their
    /// attempt counted.
    rejected: u64,
}

pub fn run(root: &std::path::Path, a: &RelayArgs, how: &Connect) -> Result<Code> {
    let url = match address::parse(std::ffi::OsStr::new(&a.to))? {
        Address::Nats(u) => u,
        Address::Dir(_) => {
            return Err(usage(format!(
                "relay --to {:?}: not a nats:// or tls:// URL",
                address::redact(&a.to)
            )));
        }
    };
    // Before the runtime starts any thread, so that every thread has them blocked.
    let signals = Signals::block(&[SIGTERM, SIGINT]).context("block SIGTERM and SIGINT")?;
    let spool = Spool::create(root, uses::POP_ACK)?;
    let rt = runtime()?;
    let q = rt.block_on(Queue::connect_with(&url, how, a.wait.is_some()));
    let q = match q {
        Ok(q) => q,
        Err(e) => {
            return Err(e.context(format!(
                "relay: the messages stay in {}",
                spool.root().display()
            )));
        }
    };
    let waiter = a.wait.map(|_| Waiter::new(&spool, None));
    let mut tally = Tally::default();
    let mut backoff = BACKOFF_MIN;
    let mut outage: Option<Instant> = None;
    let mut idle_since = Instant::now();
    let started = Instant::now();
    let lease_ms = spool.config.lease_ms;
    let k = a.concurrency as usize;
    let code = loop {
        if stop_asked(&signals)? {
            break Code::Ok;
        }
        let mut leases = Vec::new();
        let due = take(&spool, lease_ms, k, &mut leases)?;
        if leases.is_empty() {
            let Some(w) = &waiter else {
                break Code::Ok;
            };
            // --wait=IDLE counts from the last message relayed, not from the start.
            if let Some(idle) = a.wait.flatten()
                && idle_since.elapsed() >= Duration::from_millis(idle)
            {
                break Code::Ok;
            }
            sleep(w, &signals, due)?;
            continue;
        }
        // A disconnected client may hold a publish back (its buffer full): the whole batch is
        // bounded, so an outage is noticed and SIGTERM is heard.
        let outcomes = rt.block_on(async {
            tokio::time::timeout(BATCH_WAIT, publish(&q, &spool, &leases))
                .await
                .unwrap_or_else(|_| {
                    leases
                        .iter()
                        .map(|_| Outcome::Unsent(anyhow!("{url}: no PubAck within {BATCH_WAIT:?}")))
                        .collect()
                })
        });
        let mut unsent = None;
        for (l, o) in leases.iter().zip(outcomes) {
            match o {
                Outcome::Stored => {
                    if spool.ack(&l.leased)? {
                        tally.relayed += 1;
                    } else {
                        tally.lost_acks += 1;
                    }
                }
                Outcome::Rejected(e) => {
                    tally.rejected += 1;
                    crate::output::report(&e.context(format!("relay {}", l.leased.id)));
                    let delay = 1000u64 << l.leased.attempt.min(8);
                    if let Err(e) = spool.release(&l.leased, delay) {
                        crate::output::report(&e);
                    }
                }
                Outcome::Unsent(e) => {
                    unsent.get_or_insert(e);
                    give_back(&spool, &[l]);
                }
            }
        }
        let Some(e) = unsent else {
            if let Some(since) = outage.take() {
                crate::output::say(&format!(
                    "{url}: reachable again after {}; relaying",
                    crate::duration::format_ms(since.elapsed().as_millis() as u64)
                ));
            }
            backoff = BACKOFF_MIN;
            idle_since = Instant::now();
            continue;
        };
        if outage.is_none() {
            crate::output::say(&format!(
                "{e:#}; the messages stay in {} and relay retries",
                spool.root().display()
            ));
            outage = Some(Instant::now());
        }
        if waiter.is_none() {
            break Code::Error;
        }
        if interruptible_sleep(&signals, backoff)? {
            break Code::Ok;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    };
    let flushed = rt.block_on(q.flush());
    if !a.quiet || code != Code::Ok {
        let secs = started.elapsed().as_secs_f64();
        let mut line = format!("relayed {} messages to {url} in {secs:.1}s", tally.relayed);
        if tally.lost_acks > 0 {
            line.push_str(&format!(
                "; {} were published but their local lease was gone (the queue drops the copy)",
                tally.lost_acks
            ));
        }
        if tally.rejected > 0 {
            line.push_str(&format!(
                "; {} could not be relayed and went back to {} (an attempt each)",
                tally.rejected,
                spool.root().display()
            ));
        }
        if code == Code::Error {
            line.push_str(&format!(
                "; the server could not be reached, the rest stay in {}",
                spool.root().display()
            ));
        }
        crate::output::say(&line);
    }
    if code == Code::Ok {
        flushed?;
    }
    Ok(code)
}

/// Leases up to `k` messages as pop does (expired leases reclaimed first), unless the spool is
/// paused. Returns when something may next become visible, when nothing was.
fn take(spool: &Spool, lease_ms: u64, k: usize, leases: &mut Vec<Lease>) -> Result<Option<u64>> {
    if spool.paused()?.is_some() {
        return Ok(None);
    }
    crate::cmd::pop::take(spool, lease_ms, k as u64, leases)
}

/// What became of one lease's message in a batch.
enum Outcome {
    Stored,
    /// The server will never take it as it is (too big, refused), or it cannot be read here:
    /// the attempt counts, so that it ends in the local dead letters instead of blocking the
    /// outbox.
    Rejected(anyhow::Error),
    /// Not carried: the network or the server's state, retried later uncounted.
    Unsent(anyhow::Error),
}

/// Whether a publish failure is the message's own fault rather than the network's.
fn rejects_message(e: &async_nats::jetstream::context::PublishError) -> bool {
    use async_nats::jetstream::context::PublishErrorKind as K;
    matches!(e.kind(), K::MaxPayloadExceeded | K::Other)
}

/// Publishes every lease's message, all in flight at once, and says what became of each.
async fn publish(q: &Queue, spool: &Spool, leases: &[Lease]) -> Vec<Outcome> {
    let mut in_flight = Vec::with_capacity(leases.len());
    for l in leases {
        let path = spool.leased_path(&l.leased);
        let read = spool.open_leased(&l.leased).and_then(|(mut file, size)| {
            let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            file.read_to_end(&mut body).map(|_| body)
        });
        let body = match read {
            Ok(b) => b,
            Err(e) => {
                let e = anyhow::Error::new(e).context(format!("read {}", path.display()));
                in_flight.push(Err(Outcome::Rejected(e)));
                continue;
            }
        };
        let id = &l.leased.id;
        match q
            .publish(
                id,
                l.enqueued_us,
                Some(u64::from(l.leased.attempt)),
                body.into(),
            )
            .await
        {
            Ok(ack) => in_flight.push(Ok(ack)),
            Err(e) if rejects_message(&e) => {
                in_flight.push(Err(Outcome::Rejected(q.not_stored(id, &e))));
            }
            Err(e) => in_flight.push(Err(Outcome::Unsent(q.not_stored(id, &e)))),
        }
    }
    let mut outcomes = Vec::with_capacity(leases.len());
    for (l, sent) in leases.iter().zip(in_flight) {
        let ack = match sent {
            Ok(ack) => ack,
            Err(o) => {
                outcomes.push(o);
                continue;
            }
        };
        outcomes.push(
            match tokio::time::timeout(ACK_WAIT, ack.into_future()).await {
                Ok(Ok(_)) => Outcome::Stored,
                Ok(Err(e)) if rejects_message(&e) => {
                    Outcome::Rejected(q.not_stored(&l.leased.id, &e))
                }
                Ok(Err(e)) => Outcome::Unsent(q.not_stored(&l.leased.id, &e)),
                Err(_) => Outcome::Unsent(anyhow!("{}: no PubAck within {ACK_WAIT:?}", q.url)),
            },
        );
    }
    outcomes
}

/// Gives leases back uncounted: a message the network did not carry has not been attempted.
fn give_back(spool: &Spool, leases: &[&Lease]) {
    for l in leases {
        if let Err(e) = spool.unlease(&l.leased) {
            crate::output::report(&e);
        }
    }
}

fn stop_asked(signals: &Signals) -> Result<bool> {
    Ok(!signals.take().context("read signals")?.is_empty())
}

/// Sleeps until the doorbell rings, `due`, the re-check, or a signal.
fn sleep(w: &Waiter, signals: &Signals, due: Option<u64>) -> Result<()> {
    let t = w.timeout(now_ms(), due).unwrap_or(Duration::ZERO);
    let mut fds: Vec<BorrowedFd<'_>> = vec![signals.as_fd()];
    fds.extend(w.fd());
    os::poll(&fds, Some(t)).context("wait for messages")?;
    w.drain();
    Ok(())
}

/// Sleeps `d` unless a signal comes first; true when one did.
fn interruptible_sleep(signals: &Signals, d: Duration) -> Result<bool> {
    let ready = os::poll(&[signals.as_fd()], Some(d)).context("wait to retry")?;
    if ready.first().copied().unwrap_or(false) {
        return stop_asked(signals);
    }
    Ok(false)
}

//! The commands on a JetStream queue (`--spool nats://…`): the same arguments, output and exit
//! codes as on a directory, over `queue::Queue`. What JetStream cannot serve is refused here,
//! with exit 2 and one line saying why, before the server is contacted.

pub mod names;
mod queue;
pub mod relay;
mod work;

use crate::address::NatsUrl;
use crate::cli::{
    AckArgs, BuryArgs, Command, DlqReplayArgs, ExtendArgs, InitArgs, ListArgs, PopArgs, PushArgs,
    RequeueArgs, ShowArgs, StatsArgs,
};
use crate::cmd::push::Sink;
use crate::exit::{Code, Tally, not_found, usage};
use crate::spool::idgen::IdGen;
use crate::spool::name::Id;
use crate::spool::now_us;
use crate::spool::push::{Body, pushed_json};
use crate::spool::scan::State;
use anyhow::{Context, Result};
use names::Receipt;
pub use queue::Connect;
use queue::{Held, Queue};
use std::ffi::OsStr;
use std::future::IntoFuture;
use std::io::Write;
use std::time::Duration;

/// Runs one command on a JetStream queue.
/// `spool`: the address as given, for a CMD of `work` to reach the same queue.
pub fn run(url: &NatsUrl, how: &Connect, command: &Command, spool: &OsStr) -> Result<Code> {
    refuse(command)?;
    if let Command::Work(a) = command {
        // Its own setup: signals are blocked before the runtime starts.
        return work::run(url, how, a, spool);
    }
    let rt = runtime()?;
    let mut q = rt.block_on(Queue::connect(url, how))?;
    if matches!(
        command,
        Command::Pop(_)
            | Command::Ack(_)
            | Command::Requeue(_)
            | Command::Extend(_)
            | Command::Bury(_)
            | Command::List(_)
            | Command::Show(_)
    ) {
        rt.block_on(q.open_consumer())?;
    }
    let code = match command {
        Command::Init(a) => init(&rt, &q, a),
        Command::Push(a) => push(&rt, &q, a),
        Command::Pop(a) => pop(&rt, &q, a),
        Command::Ack(a) => ack(&rt, &q, a),
        Command::Requeue(a) => requeue(&rt, &q, a),
        Command::Extend(a) => extend(&rt, &q, a),
        Command::Bury(a) => bury(&rt, &q, a),
        Command::Stats(a) => stats(&rt, &q, a),
        Command::DlqReplay(a) => dlq_replay(&rt, &q, a),
        Command::List(a) => list(&rt, &q, a),
        Command::Show(a) => show(&rt, &q, a),
        _ => unreachable!("refused above"),
    };
    // Acks and publishes still buffered reach the server before the exit, even after an error.
    let flushed = rt.block_on(q.flush());
    let code = code?;
    flushed?;
    Ok(code)
}

type Rt = tokio::runtime::Runtime;

/// One thread: a command is one conversation with the server, and a second thread would only
/// cost its start.
fn runtime() -> Result<Rt> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the NATS client's runtime")
}

fn not_served(what: &str, why: &str) -> anyhow::Error {
    usage(format!("{what}: not served on a JetStream queue: {why}"))
}

/// Every command and flag this backend cannot honour, refused before anything is sent.
fn refuse(command: &Command) -> Result<()> {
    let delivery =
        "JetStream sets the lease as the consumer's ack wait; change it with `init --lease`";
    match command {
        Command::Init(a) => {
            if a.retain_done.is_some() {
                return Err(not_served(
                    "init --retain-done",
                    "an acked message leaves a work-queue stream at once",
                ));
            }
            if a.rate.is_some() || a.burst.is_some() {
                return Err(not_served(
                    "init --rate",
                    "JetStream limits bytes per second per consumer, not leases",
                ));
            }
        }
        Command::Push(a) => {
            if a.delay > 0 {
                return Err(not_served(
                    "push --delay",
                    "nats-server 2.9 has no delayed delivery (`requeue --delay` is served)",
                ));
            }
            if a.key.is_some() {
                return Err(not_served(
                    "push --key",
                    "the stream's duplicate window counts from the push, not from the ack",
                ));
            }
            if a.group.is_some() {
                return Err(not_served(
                    "push --group",
                    "one pull consumer cannot hold a group back while its head is out",
                ));
            }
        }
        Command::Pop(a) if a.lease.is_some() => return Err(not_served("pop --lease", delivery)),
        Command::Extend(a) if a.lease.is_some() => {
            return Err(not_served("extend --lease", delivery));
        }
        Command::Stats(_)
        | Command::Pop(_)
        | Command::Extend(_)
        | Command::Ack(_)
        | Command::Requeue(_)
        | Command::Bury(_)
        | Command::DlqReplay(_) => {}
        Command::List(_) | Command::Show(_) => {}
        Command::Relay(_) => {
            return Err(usage(
                "relay: --spool names the local spool it reads, and --to the JetStream queue",
            ));
        }
        Command::Work(a) if a.lease.is_some() => {
            return Err(not_served("work --lease", delivery));
        }
        Command::Work(_) => {}
        Command::Replay(_) => {
            return Err(not_served(
                "replay --done",
                "an acked message leaves a work-queue stream at once",
            ));
        }
        Command::Pause(_) | Command::Resume(_) => {
            return Err(not_served(
                command_name(command),
                "nats-server 2.9 cannot pause a consumer",
            ));
        }
        Command::Purge(_) | Command::Fsck(_) => {
            return Err(not_served(
                command_name(command),
                "it reads and changes a directory's files",
            ));
        }
    }
    if let Command::Requeue(a) = command
        && a.expired
    {
        // Nothing to do: the server redelivers what ran out; saying so beats a silent 0.
        return Err(not_served(
            "requeue --expired",
            "the server itself redelivers a message whose lease ran out",
        ));
    }
    Ok(())
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Pause(_) => "pause",
        Command::Resume(_) => "resume",
        Command::Purge(_) => "purge",
        Command::Fsck(_) => "fsck",
        _ => "this command",
    }
}

fn print(line: &str) -> Result<()> {
    let mut out = crate::output::stdout()?;
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("write to standard output")
}

fn parse_receipts(texts: &[String]) -> Result<Vec<Receipt>> {
    texts
        .iter()
        .map(|t| Receipt::parse(t).map_err(|e| usage(format!("malformed receipt {t:?}: {e}"))))
        .collect()
}

fn init(rt: &Rt, q: &Queue, a: &InitArgs) -> Result<Code> {
    let s = rt.block_on(q.init(
        a.max_attempts,
        a.lease,
        a.dedup_window,
        a.replicas.map(|r| r as usize),
    ))?;
    print(&format!("{}: {}", q.url, s.describe()))?;
    Ok(Code::Ok)
}

/// Publishes stay in flight until `commit`, which waits for each PubAck in order and prints
/// the id of each one the server stored.
struct Publisher<'a> {
    rt: &'a Rt,
    q: &'a Queue,
    ids: IdGen,
    sync: bool,
    json: bool,
    in_flight: Vec<(Id, async_nats::jetstream::context::PublishAckFuture)>,
}

/// In flight at once before a push waits for their acks: enough to fill the pipe to the
/// server, few enough that a failure loses little work.
const MAX_IN_FLIGHT: usize = 256;

impl Sink for Publisher<'_> {
    fn add(&mut self, body: Body<'_>, source: &str, _delay_ms: u64) -> Result<()> {
        let payload = match body {
            Body::Bytes(b) => bytes::Bytes::copy_from_slice(b),
            Body::Reader(r) => {
                let mut v = Vec::new();
                r.read_to_end(&mut v)
                    .with_context(|| format!("read {source}"))?;
                bytes::Bytes::from(v)
            }
        };
        let now = now_us();
        let id = self.ids.next(now);
        let ack = self
            .rt
            .block_on(self.q.publish(&id, now, None, payload))
            .map_err(|e| self.q.not_stored(&id, &e))?;
        self.in_flight.push((id, ack));
        Ok(())
    }

    fn commit_due(&self) -> bool {
        self.in_flight.len() >= MAX_IN_FLIGHT
    }

    fn pending(&self) -> usize {
        self.in_flight.len()
    }

    fn commit(&mut self, out: &mut dyn Write) -> Result<()> {
        let mut text = String::new();
        let mut failed = None;
        for (id, ack) in self.in_flight.drain(..) {
            if failed.is_some() {
                continue;
            }
            if self.sync {
                if let Err(e) = self.rt.block_on(ack.into_future()) {
                    failed = Some(self.q.not_stored(&id, &e));
                    continue;
                }
            } else {
                drop(ack);
            }
            let line = if self.json {
                pushed_json(&id, true, None)
            } else {
                id.to_string()
            };
            text.push_str(&line);
            text.push('\n');
        }
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .context("write ids to standard output")?;
        failed.map_or(Ok(()), Err)
    }
}

fn push(rt: &Rt, q: &Queue, a: &PushArgs) -> Result<Code> {
    let mut p = Publisher {
        rt,
        q,
        ids: IdGen::new(),
        sync: !a.no_sync,
        json: a.json,
        in_flight: Vec::new(),
    };
    let mut out = crate::output::stdout()?;
    let added = crate::cmd::push::add_all(&mut p, &mut out, a);
    let committed = p.commit(&mut out);
    added?;
    committed?;
    Ok(Code::Ok)
}

fn pop(rt: &Rt, q: &Queue, a: &PopArgs) -> Result<Code> {
    if a.count > 1 && !a.json {
        return Err(usage(
            "-n N needs --json: raw payloads cannot be told apart",
        ));
    }
    if let Some(f) = &a.receipt_file {
        crate::cmd::pop::remove_receipt_file(f)
            .with_context(|| format!("remove old receipt file {}", f.display()))?;
    }
    let want = a.count as usize;
    let deadline = a
        .wait
        .map(|limit| limit.map(|ms| std::time::Instant::now() + Duration::from_millis(ms)));
    let held = loop {
        let wait = match deadline {
            None => None,
            // The server holds a request up to this long; a longer wait asks again.
            Some(None) => Some(Duration::from_secs(30)),
            Some(Some(d)) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                Some(left.min(Duration::from_secs(30)))
            }
        };
        let held = rt.block_on(q.lease(want, wait))?;
        let out_of_time = match deadline {
            None => true,
            Some(None) => false,
            Some(Some(d)) => std::time::Instant::now() >= d,
        };
        if !held.is_empty() || out_of_time {
            break held;
        }
    };
    if held.is_empty() {
        return Ok(Code::Empty);
    }
    if let Err(e) = deliver(&held, a) {
        // A payload that did not reach its reader goes back now, not at the lease's end.
        for h in &held {
            let _ = rt.block_on(q.requeue(&h.receipt, 0));
        }
        if let Some(f) = &a.receipt_file {
            let _ = crate::cmd::pop::remove_receipt_file(f);
        }
        return Err(e);
    }
    if a.ack {
        let acks = rt.block_on(futures_util::future::join_all(
            held.iter().map(|h| q.ack(&h.receipt)),
        ));
        for r in acks {
            r.map_err(|e| {
                if crate::exit::code_of(&e) == Code::NotFound {
                    not_found(format!(
                        "{}: lease lost before the ack; the message will be delivered again",
                        q.url
                    ))
                } else {
                    e
                }
            })?;
        }
    }
    Ok(Code::Ok)
}

fn deliver(held: &[Held], a: &PopArgs) -> Result<()> {
    if let Some(file) = &a.receipt_file {
        let text: String = held.iter().map(|h| format!("{}\n", h.receipt)).collect();
        crate::cmd::pop::write_receipts(file, text.as_bytes())
            .with_context(|| format!("write receipt file {}", file.display()))?;
    }
    let mut out = crate::output::stdout()?;
    if !a.json {
        for h in held {
            out.write_all(&h.payload)
                .context("write to standard output")?;
        }
        return out.flush().context("write to standard output");
    }
    let mut buf = Vec::new();
    for h in held {
        let head = crate::cmd::pop::json_head(
            h.receipt.id.as_str(),
            &h.receipt.to_string(),
            h.attempt,
            h.enqueued_us,
            h.expires_ms,
            None,
            None,
        )?;
        let mut body = std::io::Cursor::new(&h.payload[..]);
        crate::encode::json::write_json(
            &mut buf,
            &mut body,
            h.payload.len() as u64,
            &head,
            h.receipt.id.as_str(),
            crate::encode::json::CHUNK,
        )?;
    }
    out.write_all(&buf)
        .and_then(|()| out.flush())
        .context("write to standard output")
}

/// Settles every receipt at once (each is a few round trips, and they do not depend on each
/// other), then reports failures in the order given, going on past them, as on a directory.
fn settle_each<'a, F, Fut>(rt: &Rt, texts: &'a [String], verb: &str, settle: F) -> Result<Code>
where
    F: Fn(Receipt) -> Fut,
    Fut: Future<Output = Result<()>> + 'a,
{
    let receipts = parse_receipts(texts)?;
    let ids: Vec<Id> = receipts.iter().map(|r| r.id.clone()).collect();
    let results = rt.block_on(futures_util::future::join_all(
        receipts.into_iter().map(settle),
    ));
    let mut tally = Tally::default();
    for (id, r) in ids.iter().zip(results) {
        if let Err(e) = r {
            let e = if crate::exit::code_of(&e) == Code::NotFound {
                e
            } else {
                e.context(format!("{verb} {id}"))
            };
            tally.fail(e);
        }
    }
    Ok(tally.code())
}

fn ack(rt: &Rt, q: &Queue, a: &AckArgs) -> Result<Code> {
    settle_each(rt, &a.receipts, "ack", |r| async move { q.ack(&r).await })
}

fn bury(rt: &Rt, q: &Queue, a: &BuryArgs) -> Result<Code> {
    settle_each(rt, &a.receipts, "bury", |r| async move { q.bury(&r).await })
}

fn requeue(rt: &Rt, q: &Queue, a: &RequeueArgs) -> Result<Code> {
    let delay = a.delay;
    settle_each(rt, &a.receipts, "requeue", |r| async move {
        q.requeue(&r, delay).await.map(|_| ())
    })
}

fn extend(rt: &Rt, q: &Queue, a: &ExtendArgs) -> Result<Code> {
    let r = parse_receipts(std::slice::from_ref(&a.receipt))?.remove(0);
    let (next, progressed) = rt.block_on(q.extend(&r))?;
    print(&next.receipt.to_string())?;
    // The new receipt holds the fence either way; the server's timer may not have restarted.
    match progressed {
        None => Ok(Code::Ok),
        Some(e) => Err(e.context(format!("extend {r}"))),
    }
}

fn dlq_replay(rt: &Rt, q: &Queue, a: &DlqReplayArgs) -> Result<Code> {
    let wanted: Vec<Id> = crate::cmd::parse_ids(&a.ids)?;
    let dead = rt.block_on(q.dead_letters())?;
    let limit = a.limit.unwrap_or(usize::MAX);
    let mut tally = Tally::default();
    let mut replayed = 0;
    let one = |d: &queue::Dead, tally: &mut Tally| -> Result<()> {
        match rt.block_on(q.replay(d)) {
            Ok(()) => print(d.id.as_str()),
            Err(e) => {
                tally.fail(e);
                Ok(())
            }
        }
    };
    if a.all {
        for d in dead.iter().take(limit) {
            one(d, &mut tally)?;
        }
    } else {
        let mut seen = std::collections::HashSet::new();
        for id in wanted.iter().filter(|id| seen.insert(*id)) {
            if replayed >= limit {
                break;
            }
            // Every dead letter with the id: a message buried twice (after a replay) has two.
            let mut found = false;
            for d in dead.iter().filter(|d| &d.id == id) {
                found = true;
                one(d, &mut tally)?;
            }
            if found {
                replayed += 1;
            } else {
                tally.fail(not_found(format!(
                    "{}: no dead message with id {id}",
                    q.url
                )));
            }
        }
    }
    Ok(tally.code())
}

fn stats(rt: &Rt, q: &Queue, a: &StatsArgs) -> Result<Code> {
    loop {
        let c = rt.block_on(q.counts())?;
        crate::cmd::stats::render_remote(&q.url.to_string(), &c, a)?;
        match a.watch {
            None => return Ok(Code::Ok),
            Some(every) => std::thread::sleep(Duration::from_millis(every)),
        }
    }
}

/// Every message the queue holds, live and dead, as `list` shows a directory's: read with
/// direct gets, nothing consumed. A live message with a fence is leased (or expired, once its
/// lease ran out); one without is ready, its attempts unknown (0).
struct Entry {
    state: State,
    id: Id,
    attempts: u32,
    at_ms: u64,
    enqueued_us: u64,
    payload: bytes::Bytes,
}

fn entries(rt: &Rt, q: &Queue, states: &[State]) -> Result<Vec<Entry>> {
    let now = crate::spool::now_ms();
    let mut all = Vec::new();
    let live_states = [State::Ready, State::Leased, State::Expired];
    if states.iter().any(|s| live_states.contains(s)) {
        for m in rt.block_on(q.live())? {
            let (state, attempts, at_ms) = match &m.fence {
                Some(f) if f.expires_ms > now => (State::Leased, f.delivered, f.expires_ms),
                Some(f) => (State::Expired, f.delivered, f.expires_ms),
                None => (State::Ready, 0, m.stored_ms),
            };
            all.push(Entry {
                state,
                id: m.id,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                at_ms,
                enqueued_us: m.enqueued_us,
                payload: m.payload,
            });
        }
    }
    if states.contains(&State::Dead) {
        for d in rt.block_on(q.dead_letters())? {
            all.push(Entry {
                state: State::Dead,
                id: d.id,
                attempts: u32::try_from(d.attempt).unwrap_or(u32::MAX),
                at_ms: d.dead_ms,
                enqueued_us: d.enqueued_us,
                payload: d.payload,
            });
        }
    }
    all.retain(|e| states.contains(&e.state));
    // Oldest enqueued first, across states, as on a directory.
    all.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(all)
}

fn list(rt: &Rt, q: &Queue, a: &ListArgs) -> Result<Code> {
    let now = crate::spool::now_ms();
    let mut text = String::new();
    for e in entries(rt, q, &crate::cmd::list::wanted_states(a))?
        .iter()
        .take(a.limit.unwrap_or(usize::MAX))
    {
        let view = crate::cmd::list::View {
            state: e.state,
            id: &e.id,
            attempts: e.attempts,
            at_ms: e.at_ms,
            size: e.payload.len() as u64,
            enqueued_us: e.enqueued_us,
        };
        text.push_str(&crate::cmd::list::line(&view, now, None, a.json)?);
        text.push('\n');
    }
    let mut out = crate::output::stdout()?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("write to standard output")?;
    Ok(Code::Ok)
}

fn show(rt: &Rt, q: &Queue, a: &ShowArgs) -> Result<Code> {
    let id = crate::cmd::parse_ids(std::slice::from_ref(&a.id))?.remove(0);
    let all = entries(
        rt,
        q,
        &[State::Ready, State::Leased, State::Expired, State::Dead],
    )?;
    let Some(e) = all.iter().find(|e| e.id == id) else {
        return Err(not_found(format!("{}: no message with id {id}", q.url)));
    };
    let mut out = crate::output::stdout()?;
    if a.json {
        let head =
            crate::cmd::show::show_head(&id, e.state, e.attempts, e.at_ms, e.enqueued_us, None)?;
        let mut buf = Vec::new();
        crate::encode::json::write_json(
            &mut buf,
            &mut std::io::Cursor::new(&e.payload[..]),
            e.payload.len() as u64,
            &head,
            &format!("message {id}"),
            crate::encode::json::CHUNK,
        )?;
        out.write_all(&buf)
    } else {
        out.write_all(&e.payload)
    }
    .and_then(|()| out.flush())
    .context("write to standard output")?;
    Ok(Code::Ok)
}

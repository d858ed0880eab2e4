//! `qspool pop`: lease the longest-visible messages and hand over their payloads.

use super::list::KeyTexts;
use crate::cli::PopArgs;
use crate::encode::json::{CHUNK, write_json};
use crate::encode::{rfc3339_ms, rfc3339_us};
use crate::exit::{Code, not_found, usage};
use crate::spool::name::Leased;
use crate::spool::ready::Lease;
use crate::spool::{Spool, durable, now_ms, uses};
use crate::wait::{Waiter, earliest};
use anyhow::{Context, Result};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn run(root: &Path, args: &PopArgs) -> Result<Code> {
    if args.count > 1 && !args.json {
        return Err(usage(
            "-n N needs --json: raw payloads cannot be told apart",
        ));
    }
    if let Some(f) = &args.receipt_file {
        // A receipt left from an earlier pop must not be acked for this one: with nothing to
        // pop, or on an error, the file is absent afterwards.
        remove_receipt_file(f)
            .with_context(|| format!("remove old receipt file {}", f.display()))?;
    }
    let spool = Spool::create(root, if args.ack { uses::POP_ACK } else { uses::POP })?;
    let lease_ms = args.lease.unwrap_or(spool.config.lease_ms);
    let waiter = args.wait.map(|limit| Waiter::new(&spool, limit));

    let mut leases = Vec::new();
    let mut held = None;
    let taken = (|| -> Result<()> {
        loop {
            let (due, why) = match gate(&spool, args.count)? {
                Gate::Open(granted) => {
                    let taken = take(&spool, lease_ms, granted, &mut leases);
                    // Starts not used, failure or not, go back: a pop holds none it did not use.
                    let unused = granted.saturating_sub(leases.len() as u64);
                    let given_back = spool.give_back_starts(unused);
                    let due = taken?;
                    given_back?;
                    (due, None)
                }
                Gate::Held(why, due) => (due, Some(why)),
            };
            held = why;
            match &waiter {
                Some(w) if leases.is_empty() => {
                    if !w.sleep(now_ms(), due).context("wait for a message")? {
                        return Ok(());
                    }
                }
                _ => return Ok(()),
            }
        }
    })();
    if let Err(e) = taken.and_then(|()| deliver(&spool, &leases, args)) {
        // Never keep a lease whose payload did not reach its reader: release it now (it counts
        // as an attempt, like every lease) instead of leaving it to expire.
        for l in &leases {
            let _ = spool.release(&l.leased, 0);
        }
        if let Some(f) = &args.receipt_file {
            let _ = remove_receipt_file(f);
        }
        return Err(e);
    }
    if leases.is_empty() {
        if let Some(why) = held {
            crate::output::say(&format!("{}: {why}", spool.root().display()));
        }
        return Ok(Code::Empty);
    }
    if args.ack {
        for l in &leases {
            if !spool.ack(&l.leased)? {
                return Err(not_found(format!(
                    "{}: lease lost before the ack; the message will be delivered again",
                    spool.leased_path(&l.leased).display()
                )));
            }
        }
    }
    Ok(Code::Ok)
}

/// Why nothing may be taken now, and when that may change.
enum Gate {
    /// This many leases may be started.
    Open(u64),
    Held(String, Option<u64>),
}

/// Whether this pop may lease now, and how many: a paused spool holds every pop (until the
/// resume rings the doorbell), and a spool-wide rate limit grants its starts.
fn gate(spool: &Spool, count: u32) -> Result<Gate> {
    if let Some(since) = spool.paused()? {
        let why = format!(
            "paused since {}; `qspool resume` restarts consumption",
            rfc3339_ms(since)
        );
        return Ok(Gate::Held(why, None));
    }
    let grant = spool.take_starts(u64::from(count))?;
    let now = now_ms();
    if grant.granted > 0 {
        return Ok(Gate::Open(grant.granted));
    }
    let rate = spool.config.rate.map(|r| r.describe()).unwrap_or_default();
    let next = grant.next_ms.unwrap_or(now);
    let why = format!(
        "rate limit {rate} reached; the next lease is allowed in {}ms",
        next.saturating_sub(now)
    );
    Ok(Gate::Held(why, Some(next)))
}

/// Reclaims expired leases, then leases up to `count` messages into `leases`. When it got
/// none, returns when something may next become visible: a delayed message or a lease expiry.
pub(crate) fn take(
    spool: &Spool,
    lease_ms: u64,
    count: u64,
    leases: &mut Vec<Lease>,
) -> Result<Option<u64>> {
    // Reclaiming is a courtesy to the queue: a lease it cannot move is reported, and this pop
    // still delivers what is ready.
    let next_expiry =
        match spool.reclaim_expired(now_ms(), &|_| false, &mut |e| crate::output::report(&e)) {
            Ok(r) => r.next_expiry_ms,
            Err(e) => {
                crate::output::report(&e);
                None
            }
        };
    let want = (count as usize).saturating_sub(leases.len());
    let next_ms = spool.take_many(now_ms(), lease_ms, want, leases)?;
    Ok(earliest(next_ms, next_expiry))
}

/// Removes a receipt file an earlier pop left. Only a regular file is removed: anything else
/// given as FILE (`/dev/null`, a FIFO, a symlink) is the user's and is left alone.
pub(crate) fn remove_receipt_file(f: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(f) {
        Ok(m) if m.file_type().is_file() => match std::fs::remove_file(f) {
            Err(e) if !durable::is_missing(&e) => Err(e),
            _ => Ok(()),
        },
        Err(e) if !durable::is_missing(&e) => Err(e),
        _ => Ok(()),
    }
}

fn deliver(spool: &Spool, leases: &[Lease], args: &PopArgs) -> Result<()> {
    if leases.is_empty() {
        return Ok(());
    }
    if let Some(file) = &args.receipt_file {
        let text: String = leases.iter().map(|l| format!("{}\n", l.leased)).collect();
        write_receipts(file, text.as_bytes())
            .with_context(|| format!("write receipt file {}", file.display()))?;
    }
    // Never through std's buffered handle (see `output::stdout`): after a failed write, a payload
    // must not reach the reader once its lease is given back. Objects are gathered into big
    // writes; a raw payload goes straight from its file (io::copy may let the kernel copy it).
    let mut out = io::BufWriter::with_capacity(CHUNK, crate::output::stdout()?);
    let written = write_all_leases(spool, leases, args, &mut out);
    if written.is_err() {
        // What is still buffered is dropped, not written.
        let _ = out.into_parts();
    }
    written
}

fn write_all_leases(
    spool: &Spool,
    leases: &[Lease],
    args: &PopArgs,
    out: &mut io::BufWriter<std::fs::File>,
) -> Result<()> {
    let mut keys = KeyTexts::new(spool);
    for l in leases {
        let path = spool.leased_path(&l.leased);
        let (mut file, size) = spool
            .open_leased(&l.leased)
            .map_err(|e| lost_or(e, &path))?;
        if args.json {
            let group = l.leased.group.map(|g| {
                spool
                    .group_text(g)
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
            });
            let head = head(&l.leased, l.enqueued_us, keys.of(l.leased.key), group)?;
            let name = path.display().to_string();
            write_json(out, &mut file, size, &head, &name, CHUNK)?;
        } else {
            out.flush().context("write to standard output")?;
            io::copy(&mut file, out.get_mut())
                .with_context(|| format!("write {} to standard output", path.display()))?;
        }
    }
    out.flush().context("write to standard output")
}

/// The fields of a `pop --json` object that come before `size`, in their order of output.
fn head(
    leased: &Leased,
    enqueued_us: u64,
    key: Option<Option<String>>,
    group: Option<Option<String>>,
) -> Result<Vec<(&'static str, String)>> {
    json_head(
        leased.id.as_str(),
        &leased.to_string(),
        u64::from(leased.attempt),
        enqueued_us,
        leased.expires_ms,
        key,
        group,
    )
}

/// `pop --json`'s leading fields, shared by every backend so that they cannot drift apart.
pub(crate) fn json_head(
    id: &str,
    receipt: &str,
    attempt: u64,
    enqueued_us: u64,
    expires_ms: u64,
    key: Option<Option<String>>,
    group: Option<Option<String>>,
) -> Result<Vec<(&'static str, String)>> {
    let mut fields = vec![
        ("id", serde_json::to_string(id)?),
        ("receipt", serde_json::to_string(receipt)?),
        ("attempt", serde_json::to_string(&attempt)?),
        (
            "enqueued_at",
            serde_json::to_string(&rfc3339_us(enqueued_us))?,
        ),
        (
            "lease_expires_at",
            serde_json::to_string(&rfc3339_ms(expires_ms))?,
        ),
    ];
    if let Some(key) = key {
        fields.push(("key", serde_json::to_string(&key)?));
    }
    if let Some(group) = group {
        fields.push(("group", serde_json::to_string(&group)?));
    }
    Ok(fields)
}

pub(crate) fn write_receipts(path: &Path, text: &[u8]) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text)?;
    f.flush()
}

/// A leased file gone before we opened it means a lease so short that it expired and was
/// reclaimed in between: that is a lost lease (exit 4), not an I/O failure.
fn lost_or(e: io::Error, path: &Path) -> anyhow::Error {
    if durable::is_missing(&e) {
        not_found(format!(
            "{}: lease expired and was reclaimed before its payload was read; use a longer --lease",
            path.display()
        ))
    } else {
        anyhow::Error::new(e).context(format!("open {}", path.display()))
    }
}

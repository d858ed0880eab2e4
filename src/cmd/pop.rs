//! `qspool pop`: lease the longest-visible messages and hand over their payloads.

use crate::cli::PopArgs;
use crate::encode::{base64, rfc3339_ms, rfc3339_us};
use crate::exit::{Code, NotFound, Usage};
use crate::spool::ready::Lease;
use crate::spool::{Spool, durable, now_ms};
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Serialize)]
struct Delivery<'a> {
    id: &'a str,
    receipt: String,
    attempt: u32,
    enqueued_at: String,
    lease_expires_at: String,
    size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
}

pub fn run(root: &Path, args: &PopArgs) -> Result<Code> {
    if args.count > 1 && !args.json {
        return Err(Usage("-n N needs --json: raw payloads cannot be told apart".into()).into());
    }
    if let Some(f) = &args.receipt_file {
        // A receipt left from an earlier pop must not be acked for this one: with nothing to
        // pop, or on an error, the file is absent afterwards.
        remove_receipt_file(f)
            .with_context(|| format!("remove old receipt file {}", f.display()))?;
    }
    let spool = Spool::create(root)?;
    let lease_ms = args.lease.unwrap_or(spool.config.lease_ms);
    // Reclaiming is a courtesy to the queue: a lease it cannot move is reported, and this pop
    // still delivers what is ready.
    let reclaimed = spool.reclaim_expired(now_ms(), &mut |e| crate::exit::report(&e));
    if let Err(e) = reclaimed {
        crate::exit::report(&e);
    }

    let mut leases = Vec::new();
    let taken = (|| -> Result<()> {
        for _ in 0..args.count {
            match spool.lease_next(now_ms(), lease_ms)? {
                Some(l) => leases.push(l),
                None => break,
            }
        }
        Ok(())
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
        return Ok(Code::Empty);
    }
    if args.ack {
        for l in &leases {
            if !spool.ack(&l.leased)? {
                return Err(NotFound(format!(
                    "{}: lease lost before the ack; the message will be delivered again",
                    spool.leased_path(&l.leased).display()
                ))
                .into());
            }
        }
    }
    Ok(Code::Ok)
}

/// Removes a receipt file an earlier pop left. Only a regular file is removed: anything else
/// given as FILE (`/dev/null`, a FIFO, a symlink) is the user's and is left alone.
fn remove_receipt_file(f: &Path) -> io::Result<()> {
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
    let mut out = io::stdout().lock();
    for l in leases {
        let path = spool.leased_path(&l.leased);
        let mut file = durable::open_message(&path).map_err(|e| lost_or(e, &path))?;
        if args.json {
            let mut body = Vec::new();
            file.read_to_end(&mut body)
                .with_context(|| format!("read {}", path.display()))?;
            let size = body.len();
            let (text, b64) = match String::from_utf8(body) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(base64(e.as_bytes()))),
            };
            let d = Delivery {
                id: l.leased.id.as_str(),
                receipt: l.leased.to_string(),
                attempt: l.leased.attempt,
                enqueued_at: rfc3339_us(l.enqueued_us),
                lease_expires_at: rfc3339_ms(l.leased.expires_ms),
                size,
                body: text,
                body_base64: b64,
            };
            let mut line = serde_json::to_vec(&d)?;
            line.push(b'\n');
            out.write_all(&line)
                .with_context(|| format!("write {} to standard output", path.display()))?;
        } else {
            io::copy(&mut file, &mut out)
                .with_context(|| format!("write {} to standard output", path.display()))?;
        }
    }
    out.flush().context("write to standard output")
}

fn write_receipts(path: &Path, text: &[u8]) -> io::Result<()> {
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
        NotFound(format!(
            "{}: lease expired and was reclaimed before its payload was read; use a longer --lease",
            path.display()
        ))
        .into()
    } else {
        anyhow::Error::new(e).context(format!("open {}", path.display()))
    }
}

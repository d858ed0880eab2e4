//! `qspool pop`: lease the longest-visible messages and hand over their payloads.

use crate::cli::PopArgs;
use crate::encode::{Base64Encoder, Utf8Check, json_escape_into, rfc3339_ms, rfc3339_us};
use crate::exit::{Code, NotFound, Usage};
use crate::spool::name::Leased;
use crate::spool::ready::Lease;
use crate::spool::{Spool, durable, now_ms, uses};
use crate::wait::{Waiter, earliest};
use anyhow::{Context, Result};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How many payload bytes `--json` output reads at a time: its memory use does not depend on
/// the size of a payload.
pub(crate) const CHUNK: usize = 64 * 1024;

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
    let spool = Spool::create(root, if args.ack { uses::POP_ACK } else { uses::POP })?;
    let lease_ms = args.lease.unwrap_or(spool.config.lease_ms);
    let waiter = args.wait.map(|limit| Waiter::new(&spool, limit));

    let mut leases = Vec::new();
    let taken = (|| -> Result<()> {
        loop {
            let due = take(&spool, lease_ms, args.count, &mut leases)?;
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

/// Reclaims expired leases, then leases up to `count` messages into `leases`. When it got
/// none, returns when something may next become visible: a delayed message or a lease expiry.
fn take(spool: &Spool, lease_ms: u64, count: u32, leases: &mut Vec<Lease>) -> Result<Option<u64>> {
    // Reclaiming is a courtesy to the queue: a lease it cannot move is reported, and this pop
    // still delivers what is ready.
    let next_expiry =
        match spool.reclaim_expired(now_ms(), &|_| false, &mut |e| crate::exit::report(&e)) {
            Ok(r) => r.next_expiry_ms,
            Err(e) => {
                crate::exit::report(&e);
                None
            }
        };
    let want = (count as usize).saturating_sub(leases.len());
    let next_ms = spool.take_many(now_ms(), lease_ms, want, leases)?;
    Ok(earliest(next_ms, next_expiry))
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
    // Never through std's buffered handle (see `exit::stdout`): after a failed write, a payload
    // must not reach the reader once its lease is given back. Objects are gathered into big
    // writes; a raw payload goes straight from its file (io::copy may let the kernel copy it).
    let mut out = io::BufWriter::with_capacity(CHUNK, crate::exit::stdout()?);
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
    for l in leases {
        let path = spool.leased_path(&l.leased);
        let (mut file, size) = spool
            .open_leased(&l.leased)
            .map_err(|e| lost_or(e, &path))?;
        if args.json {
            let head = head(&l.leased, l.enqueued_us)?;
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
fn head(leased: &Leased, enqueued_us: u64) -> Result<Vec<(&'static str, String)>> {
    Ok(vec![
        ("id", serde_json::to_string(leased.id.as_str())?),
        ("receipt", serde_json::to_string(&leased.to_string())?),
        ("attempt", serde_json::to_string(&leased.attempt)?),
        (
            "enqueued_at",
            serde_json::to_string(&rfc3339_us(enqueued_us))?,
        ),
        (
            "lease_expires_at",
            serde_json::to_string(&rfc3339_ms(leased.expires_ms))?,
        ),
    ])
}

/// Writes one `--json` object and its newline: the fields of `head` (each key with its value
/// already serialized as JSON), `size`, then `body`, the payload as a JSON string when it is
/// valid UTF-8, or else `body_base64`. `body` is `size` bytes long and read `chunk` bytes at a
/// time, twice: once to tell whether it is UTF-8, and again, from the start, to encode it, so
/// that no payload is ever held in memory whole. The output is exactly what serde_json would
/// make of the whole object. Errors name the message as `name`.
pub(crate) fn write_json<R: Read + Seek, W: Write>(
    out: &mut W,
    body: &mut R,
    size: u64,
    head: &[(&str, String)],
    name: &str,
    chunk: usize,
) -> Result<()> {
    let read_ctx = || format!("read {name}");
    let write_ctx = || format!("write {name} to standard output");
    if let Some(small) = usize::try_from(size).ok().filter(|&s| s < chunk) {
        return write_small_json(out, body, small, head, name);
    }
    let mut buf = vec![0; chunk.max(1)];

    // Pass 1: is it UTF-8? (Stops at the first byte that says no.)
    let mut check = Utf8Check::default();
    let mut seen = 0u64;
    let utf8 = loop {
        let n = read_some(body, &mut buf).with_context(read_ctx)?;
        if n == 0 {
            break check.finish();
        }
        seen += n as u64;
        if !check.feed(&buf[..n]) {
            break false;
        }
    };
    if utf8 && seen != size {
        return Err(changed(name));
    }
    body.seek(SeekFrom::Start(0)).with_context(read_ctx)?;

    let mut line = object_head(head, size, utf8);
    out.write_all(&line).with_context(write_ctx)?;

    // Pass 2: the payload, encoded piece by piece. It is checked again as it goes: a payload
    // that changed in between must not make invalid JSON (messages never change, but a
    // foreign tool might write to one).
    let mut check = Utf8Check::default();
    let mut b64 = Base64Encoder::default();
    let mut seen = 0u64;
    loop {
        let n = read_some(body, &mut buf).with_context(read_ctx)?;
        if n == 0 {
            break;
        }
        seen += n as u64;
        let data = &buf[..n];
        line.clear();
        if utf8 {
            if !check.feed(data) {
                return Err(changed(name));
            }
            json_escape_into(data, &mut line);
        } else {
            b64.feed(data, &mut line);
        }
        out.write_all(&line).with_context(write_ctx)?;
    }
    if seen != size || (utf8 && !check.finish()) {
        return Err(changed(name));
    }
    line.clear();
    b64.finish(&mut line);
    line.extend_from_slice(b"\"}\n");
    out.write_all(&line).with_context(write_ctx)
}

/// The start of a `--json` object, up to the opening quote of `body` or `body_base64`.
fn object_head(head: &[(&str, String)], size: u64, utf8: bool) -> Vec<u8> {
    let mut line = Vec::with_capacity(512);
    line.push(b'{');
    let size_field = ("size", size.to_string());
    for (key, value) in head.iter().chain([&size_field]) {
        line.extend_from_slice(format!("\"{key}\":{value},").as_bytes());
    }
    line.extend_from_slice(if utf8 {
        b"\"body\":\""
    } else {
        b"\"body_base64\":\""
    });
    line
}

/// `write_json` for a payload smaller than a chunk: read once into memory (a short read of a
/// regular file is its end, so one `read` usually does), then written whole, with no second
/// pass and no seek.
fn write_small_json<R: Read, W: Write>(
    out: &mut W,
    body: &mut R,
    size: usize,
    head: &[(&str, String)],
    name: &str,
) -> Result<()> {
    // One byte more than the payload, to see that it grew.
    let mut buf = vec![0; size + 1];
    let mut n = 0;
    while n < size {
        let got = read_some(body, &mut buf[n..]).with_context(|| format!("read {name}"))?;
        if got == 0 {
            break;
        }
        n += got;
    }
    if n != size {
        return Err(changed(name));
    }
    let data = &buf[..size];
    let utf8 = std::str::from_utf8(data).is_ok();
    let mut line = object_head(head, size as u64, utf8);
    if utf8 {
        json_escape_into(data, &mut line);
    } else {
        let mut b64 = Base64Encoder::default();
        b64.feed(data, &mut line);
        b64.finish(&mut line);
    }
    line.extend_from_slice(b"\"}\n");
    out.write_all(&line)
        .with_context(|| format!("write {name} to standard output"))
}

/// `read`, retried when a signal interrupts it.
fn read_some(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            res => return res,
        }
    }
}

/// The error for a payload that changed while `--json` output read it.
fn changed(name: &str) -> anyhow::Error {
    anyhow::anyhow!("read {name}: the payload changed while it was read")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::base64;
    use crate::encode::tests::{Rng, samples};
    use std::io::Cursor;

    /// The object `pop --json` printed when it held the payload in memory: the streamed output
    /// must be byte for byte the same.
    #[derive(serde::Serialize)]
    struct Delivery<'a> {
        id: &'a str,
        receipt: &'a str,
        attempt: u32,
        enqueued_at: &'a str,
        lease_expires_at: &'a str,
        size: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        body: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        body_base64: Option<String>,
    }

    const ENQUEUED_US: u64 = 1_795_828_985_009_846;

    fn leased() -> Leased {
        Leased {
            id: crate::spool::name::Id::parse("1795828985009846.1435.00000000.2470bf32.vm")
                .unwrap(),
            attempt: 3,
            expires_ms: 1_795_829_015_009,
            token: 0x0a1b_2c3d,
        }
    }

    fn expected(payload: &[u8]) -> Vec<u8> {
        let l = leased();
        let text = std::str::from_utf8(payload).ok();
        let d = Delivery {
            id: l.id.as_str(),
            receipt: &l.to_string(),
            attempt: l.attempt,
            enqueued_at: &rfc3339_us(ENQUEUED_US),
            lease_expires_at: &rfc3339_ms(l.expires_ms),
            size: payload.len(),
            body: text,
            body_base64: text.is_none().then(|| base64(payload)),
        };
        let mut line = serde_json::to_vec(&d).unwrap();
        line.push(b'\n');
        line
    }

    fn streamed(payload: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = Cursor::new(payload);
        write_json(
            &mut out,
            &mut body,
            payload.len() as u64,
            &head(&leased(), ENQUEUED_US).unwrap(),
            "leased/x",
            chunk,
        )
        .unwrap();
        out
    }

    #[test]
    fn streamed_json_is_what_serde_json_makes_of_the_whole_payload() {
        let mut rng = Rng::new(4);
        let mut payloads = samples(&mut rng);
        // Longer ones, so that small chunks see many boundaries.
        for _ in 0..30 {
            let text: String = (0..rng.below(300))
                .map(|_| ['x', '"', '\n', '\u{e9}', '\u{20ac}', '\u{1d11e}', '\0'][rng.below(7)])
                .collect();
            payloads.push(text.into_bytes());
        }
        for _ in 0..10 {
            payloads.push((0..rng.below(300)).map(|_| rng.next() as u8).collect());
        }
        for p in &payloads {
            let want = expected(p);
            for chunk in [1, 2, 3, 4, 5, 6, 7, 8, 13, 64, CHUNK] {
                let got = streamed(p, chunk);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{p:?} in chunks of {chunk}"
                );
                assert_eq!(got, want, "{p:?} in chunks of {chunk}");
            }
        }
    }

    #[test]
    fn a_character_across_a_chunk_boundary_stays_text() {
        // A 4-byte character at every offset around the boundary of 64 KiB chunks, and a
        // truncated one at the very end (not UTF-8, so base64).
        for before in CHUNK - 4..=CHUNK {
            let mut p = vec![b'a'; before];
            p.extend("\u{1d11e}\"\u{20ac}".bytes());
            p.extend(vec![b'b'; CHUNK - 3]);
            p.extend("\u{e9}".bytes());
            assert_eq!(streamed(&p, CHUNK), expected(&p), "{before} bytes before");
            let v: serde_json::Value = serde_json::from_slice(&streamed(&p, CHUNK)).unwrap();
            assert_eq!(v["body"].as_str().unwrap().as_bytes(), &p[..]);
            p.pop();
            let v: serde_json::Value = serde_json::from_slice(&streamed(&p, CHUNK)).unwrap();
            assert!(v.get("body").is_none(), "{before}");
            assert_eq!(v["body_base64"], base64(&p));
            assert_eq!(v["size"], p.len());
        }
    }

    #[test]
    fn a_payload_that_changes_size_is_an_error() {
        for payload in [&b"text"[..], b"\xff\xfe"] {
            let mut out = Vec::new();
            let err = write_json(
                &mut out,
                &mut Cursor::new(payload),
                payload.len() as u64 + 1,
                &head(&leased(), ENQUEUED_US).unwrap(),
                "leased/x",
                CHUNK,
            )
            .unwrap_err();
            assert!(format!("{err:#}").contains("leased/x"), "{err:#}");
            // Never a complete object that would pass for the message.
            assert!(!out.ends_with(b"\n"), "{}", String::from_utf8_lossy(&out));
        }
    }

    /// A writer that fails after `room` bytes.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_names_the_message() {
        let payload = vec![b'z'; 3 * CHUNK + 1];
        for room in [0, 10, CHUNK, 3 * CHUNK + 200] {
            let err = write_json(
                &mut Full { room },
                &mut Cursor::new(&payload),
                payload.len() as u64,
                &head(&leased(), ENQUEUED_US).unwrap(),
                "leased/x",
                CHUNK,
            )
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                "write leased/x to standard output",
                "{room}: {err:#}"
            );
            let io = err.downcast_ref::<io::Error>().unwrap();
            assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
        }
    }
}

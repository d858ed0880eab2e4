//! The streaming `--json` writer of `pop` and `show`: one message as one JSON object, its
//! payload read and encoded a chunk at a time so that no payload is held in memory whole.

use super::{Base64Encoder, Utf8Check, json_escape_into};
use anyhow::{Context, Result};
use std::io::{self, Read, Seek, SeekFrom, Write};

/// How many payload bytes `--json` output reads at a time: its memory use does not depend on
/// the size of a payload.
pub(crate) const CHUNK: usize = 64 * 1024;

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

    // The fields of a `pop --json` object before `size`.
    const ID: &str = "1795828985009846.1435.00000000.2470bf32.vm";
    const RECEIPT: &str = "1795828985009846.1435.00000000.2470bf32.vm.3.1795829015009.0a1b2c3d";
    const ATTEMPT: u32 = 3;
    const ENQUEUED_AT: &str = "2026-11-28T01:23:05.009Z";
    const EXPIRES_AT: &str = "2026-11-28T01:23:35.009Z";

    fn head() -> Vec<(&'static str, String)> {
        let json = |v: &str| serde_json::to_string(v).unwrap();
        vec![
            ("id", json(ID)),
            ("receipt", json(RECEIPT)),
            ("attempt", ATTEMPT.to_string()),
            ("enqueued_at", json(ENQUEUED_AT)),
            ("lease_expires_at", json(EXPIRES_AT)),
        ]
    }

    fn expected(payload: &[u8]) -> Vec<u8> {
        let text = std::str::from_utf8(payload).ok();
        let d = Delivery {
            id: ID,
            receipt: RECEIPT,
            attempt: ATTEMPT,
            enqueued_at: ENQUEUED_AT,
            lease_expires_at: EXPIRES_AT,
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
            &head(),
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
                &head(),
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
                &head(),
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

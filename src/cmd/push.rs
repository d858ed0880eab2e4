//! `qspool push`: messages from arguments, standard input, or its lines.

use crate::cli::PushArgs;
use crate::exit::{Code, usage};
use crate::spool::push::{Batch, Body, pushed_json};
use crate::spool::{Spool, groups, keys, now_ms, uses};
use anyhow::{Context, Result};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn run(root: &Path, args: &PushArgs) -> Result<Code> {
    if let Some(key) = &args.key {
        keys::check_key(key.as_bytes()).map_err(|why| usage(format!("--key: {why}")))?;
        if args.text.len() > 1 {
            return Err(usage(format!(
                "--key names one message, and {} were given; push each with its own key",
                args.text.len()
            )));
        }
    }
    if let Some(g) = &args.group {
        groups::check_group(g.as_bytes()).map_err(|why| usage(format!("--group: {why}")))?;
    }
    let spool = Spool::create(root, uses::PUSH)?;
    let mut batch = Batch::new(&spool, !args.no_sync);
    batch.set_json(args.json);
    let mut out = crate::output::stdout()?;
    if let Some(key) = &args.key {
        let claim = spool.claim_key(key.as_bytes(), !args.no_sync)?;
        if let Some(id) = claim.holder(&spool, now_ms())? {
            // Held: this push adds nothing, and says which message has the key.
            let line = if args.json {
                pushed_json(&id, false, Some(claim.key()))
            } else {
                id.to_string()
            };
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .context("write ids to standard output")?;
            return Ok(Code::Ok);
        }
        batch.set_claim(claim);
    }
    if let Some(g) = &args.group {
        batch.set_group(g.as_bytes());
    }
    let added = add_all(&mut batch, &mut out, args);
    // Whatever happened, what was added is committed, so the ids printed are exactly the
    // messages that are durable, and a message not printed is absent.
    let committed = batch.commit(&mut out);
    added?;
    committed?;
    Ok(Code::Ok)
}

/// Where a push's messages go: a directory's batch, or a JetStream queue's publisher. The
/// input is read the same way for both, and `commit` prints the ids of what is stored.
pub(crate) trait Sink {
    fn add(&mut self, body: Body<'_>, source: &str, delay_ms: u64) -> Result<()>;
    /// True when the next add should wait for a commit.
    fn commit_due(&self) -> bool;
    fn pending(&self) -> usize;
    fn commit(&mut self, out: &mut dyn Write) -> Result<()>;
}

impl Sink for Batch<'_> {
    fn add(&mut self, body: Body<'_>, source: &str, delay_ms: u64) -> Result<()> {
        Batch::add(self, body, source, delay_ms)
    }
    fn commit_due(&self) -> bool {
        Batch::commit_due(self)
    }
    fn pending(&self) -> usize {
        Batch::pending(self)
    }
    fn commit(&mut self, out: &mut dyn Write) -> Result<()> {
        Batch::commit(self, out)
    }
}

pub(crate) fn add_all(batch: &mut impl Sink, out: &mut dyn Write, args: &PushArgs) -> Result<()> {
    if args.file {
        for path in &args.text {
            let shown = Path::new(path).display().to_string();
            let mut file = std::fs::File::open(path).with_context(|| format!("open {shown}"))?;
            batch.add(Body::Reader(&mut file), &shown, args.delay)?;
            // A grouped push holds its group's lock from its first rename to its commit, and
            // the next file may be a FIFO that never ends: it commits file by file.
            if batch.commit_due() || args.group.is_some() {
                batch.commit(out)?;
            }
        }
        return Ok(());
    }
    if !args.text.is_empty() {
        for (i, text) in args.text.iter().enumerate() {
            batch.add(
                Body::Bytes(text.as_bytes()),
                &format!("argument {}", i + 1),
                args.delay,
            )?;
            if batch.commit_due() {
                batch.commit(out)?;
            }
        }
        return Ok(());
    }
    let stdin = io::stdin().lock();
    if !(args.lines || args.null) {
        return batch.add(Body::Reader(&mut { stdin }), "standard input", args.delay);
    }
    let sep = if args.null { b'\0' } else { b'\n' };
    let mut reader = BufReader::with_capacity(256 * 1024, stdin);
    let mut record = Vec::new();
    loop {
        // Commit before a read that may block, so a slow producer's messages do not wait for
        // more input to become durable; a fast one gets one commit per buffer of input.
        // A grouped push commits before any read that may block, even mid-line, so that it
        // never holds its group's lock while it waits for input.
        let may_block =
            reader.buffer().is_empty() || (args.group.is_some() && !reader.buffer().contains(&sep));
        if may_block && batch.pending() > 0 {
            batch.commit(out)?;
        }
        record.clear();
        if reader
            .read_until(sep, &mut record)
            .context("read standard input")?
            == 0
        {
            return Ok(());
        }
        if record.last() == Some(&sep) {
            record.pop();
        }
        if !record.is_empty() {
            batch.add(Body::Bytes(&record), "standard input", args.delay)?;
            if batch.commit_due() {
                batch.commit(out)?;
            }
        }
    }
}

//! One file per subcommand, and the argument checks they share.

pub mod ack;
pub mod bury;
pub mod dlq_replay;
pub mod extend;
pub mod fsck;
pub mod init;
pub mod list;
pub mod pause;
pub mod pop;
pub mod purge;
pub mod push;
pub mod replay;
pub mod requeue;
pub mod resume;
pub mod show;
pub mod stats;
pub mod work;

use crate::exit::{Code, Tally, usage};
use crate::spool::name::{Id, Leased};
use crate::spool::{Dir, Spool};
use anyhow::Result;
use std::path::Path;

/// Checks every receipt before any is used: one malformed receipt means exit 2, nothing moved.
pub fn parse_receipts(texts: &[String]) -> Result<Vec<Leased>> {
    texts
        .iter()
        .map(|t| Leased::parse(t).map_err(|e| usage(format!("malformed receipt {t:?}: {e}"))))
        .collect()
}

/// Checks every id before any is used: one malformed id means exit 2, nothing moved.
pub fn parse_ids(texts: &[String]) -> Result<Vec<Id>> {
    texts
        .iter()
        .map(|t| Id::parse(t).map_err(|e| usage(format!("malformed id {t:?}: {e}"))))
        .collect()
}

/// The message for a receipt whose lease is gone, shared by ack, requeue, extend and bury.
pub fn lease_not_held(r: &Leased, path: &Path) -> anyhow::Error {
    crate::exit::not_found(format!(
        "{}: lease not held (expired and reclaimed, already acked, or replaced by extend); receipt {r}",
        path.display()
    ))
}

/// The body of `ack` and `bury`: checks every receipt, then ends each lease with `settle`
/// (true when the lease was still held), going on past failures; errors are named `verb id`.
pub fn settle_each(
    root: &Path,
    uses: &[Dir],
    texts: &[String],
    verb: &str,
    settle: impl Fn(&Spool, &Leased) -> Result<bool>,
) -> Result<Code> {
    let receipts = parse_receipts(texts)?;
    let spool = Spool::open(root, uses)?;
    let mut tally = Tally::default();
    for r in &receipts {
        match settle(&spool, r) {
            Ok(true) => {}
            Ok(false) => tally.fail(lease_not_held(r, &spool.leased_path(r))),
            Err(e) => tally.fail(e.context(format!("{verb} {}", r.id))),
        }
    }
    Ok(tally.code())
}

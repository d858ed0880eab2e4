//! `qspool dlq-replay`: dead → new, attempts reset, ids unchanged (the body is `replay`'s).

use super::replay::{Pick, replay};
use crate::cli::DlqReplayArgs;
use crate::exit::Code;
use crate::spool::Dir;
use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path, args: &DlqReplayArgs) -> Result<Code> {
    let pick = if args.all {
        Pick::All
    } else {
        Pick::Ids(&args.ids)
    };
    replay(root, Dir::Dead, pick, args.limit)
}

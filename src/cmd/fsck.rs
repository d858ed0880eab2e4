//! `qspool fsck`: report what `Spool::check` found, and with --repair, what `Spool::repair`
//! did about it.

use crate::cli::FsckArgs;
use crate::exit::Code;
use crate::output::say;
use crate::spool::check::Finding;
use crate::spool::{Spool, now_ms};
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

#[derive(Serialize)]
struct JsonFinding<'a> {
    kind: &'static str,
    path: String,
    detail: &'a str,
    repaired: bool,
    action: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    spool: String,
    clean: bool,
    findings: Vec<JsonFinding<'a>>,
    repaired: usize,
}

pub fn run(root: &Path, args: &FsckArgs) -> Result<Code> {
    let spool = Spool::open_to_inspect(root)?;
    // The root may be reached through a link (FORMAT.md §2.1): its owner is its target's.
    let mut findings = spool.check(now_ms())?;
    if args.repair {
        spool.repair(&mut findings);
    }
    let findings = &findings;
    let repaired = findings.iter().filter(|f| f.repaired).count();
    let remaining = findings.len() - repaired;
    let text = if args.json {
        let report = JsonReport {
            spool: root.display().to_string(),
            clean: remaining == 0,
            findings: findings
                .iter()
                .map(|f| JsonFinding {
                    kind: f.kind.name(),
                    path: f.rel.display().to_string(),
                    detail: &f.detail,
                    repaired: f.repaired,
                    action: f.action.as_deref(),
                })
                .collect(),
            repaired,
        };
        serde_json::to_string(&report)? + "\n"
    } else {
        human(findings, args.repair, repaired, remaining)
    };
    let mut out = crate::output::stdout()?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("write to standard output")?;
    if remaining == 0 {
        return Ok(Code::Ok);
    }
    say(&format!(
        "{}: {remaining} {} {}",
        root.display(),
        plural(remaining, "problem"),
        if remaining == 1 { "remains" } else { "remain" },
    ));
    Ok(Code::Error)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

fn human(findings: &[Finding], repair: bool, repaired: usize, remaining: usize) -> String {
    let paths: Vec<String> = findings
        .iter()
        .map(|f| f.rel.display().to_string())
        .collect();
    let width = paths.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for (f, path) in findings.iter().zip(&paths) {
        let detail = match &f.action {
            Some(a) => format!("{}; {a}", f.detail),
            None => f.detail.clone(),
        };
        out.push_str(&format!(
            "{:<13}  {path:<width$}  {}\n",
            f.kind.name(),
            detail.replace(['\n', '\r'], " ")
        ));
    }
    let n = findings.len();
    match (n, repair) {
        (0, _) => out.push_str("fsck: clean\n"),
        (_, false) => out.push_str(&format!("fsck: {n} {}\n", plural(n, "finding"))),
        (_, true) => out.push_str(&format!(
            "fsck: {n} {}, {repaired} repaired, {remaining} remaining\n",
            plural(n, "finding")
        )),
    }
    out
}

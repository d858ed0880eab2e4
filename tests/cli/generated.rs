//! man/ and completions/ are generated from the clap definition and committed; this test
//! regenerates them and fails when the committed copies are stale.
//! `QSPOOL_REGENERATE=1 cargo test --test cli generated` rewrites them.

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use qspool::cli::Cli;
use qspool::exit::Code;
use std::path::{Path, PathBuf};

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "QSPOOL_DIR",
        "The spool directory, when --spool is not given. An empty value counts as unset.",
    ),
    (
        "QSPOOL_TRUST_SPOOL",
        "Set (and not 0, false, no or off) as --trust-spool is: use a spool another user owns \
         or others may write to.",
    ),
    (
        "XDG_STATE_HOME",
        "Base of the default spool, $XDG_STATE_HOME/qspool/default, when it is an absolute path.",
    ),
    (
        "HOME",
        "Without XDG_STATE_HOME, the default spool is $HOME/.local/state/qspool/default.",
    ),
    (
        "QSPOOL_ID, QSPOOL_ATTEMPT, QSPOOL_SPOOL",
        "Set by work in each CMD's environment; see qspool-work(1).",
    ),
];

/// What `work` puts in each CMD's environment, for its own page.
const WORK_ENVIRONMENT: &[(&str, &str)] = &[
    ("QSPOOL_ID", "The message's id, the same on every attempt."),
    (
        "QSPOOL_ATTEMPT",
        "Which lease of the message this is: 1 the first time, 2 on the first retry.",
    ),
    ("QSPOOL_SPOOL", "The spool's absolute path."),
];

/// How `work` treats CMD's exit status and qspool's signals, for its own page.
const WORK_STATUS: &[(&str, &str)] = &[
    ("CMD exits 0", "The message is acked."),
    (
        "CMD exits 100",
        "A permanent failure: the message goes to dead/ at once.",
    ),
    (
        "any other exit, or a signal",
        "The message is requeued, visible again after the backoff, or goes to dead/ after its \
         last attempt.",
    ),
    (
        "SIGTERM, SIGINT or SIGHUP to qspool",
        "No more messages are taken; running CMDs get SIGTERM and may finish within --grace. \
         Then their process groups get SIGKILL and their messages are released at once. A \
         second signal ends the grace.",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "SPOOL/qspool.json",
        "Settings stored by init: max_attempts and lease_ms.",
    ),
    (
        "SPOOL/tmp/",
        "Messages being written. Leftovers older than 36 hours are removed by requeue --expired.",
    ),
    (
        "SPOOL/new/KKKKKKK/SSS/MMM/",
        "Ready and delayed messages, bucketed by the millisecond they become visible. \
         Names: ID,aATTEMPTS,vVISIBLE_MS.",
    ),
    (
        "SPOOL/leased/KKKKKKK/SSS/",
        "Leased messages, bucketed by the second their lease expires. Names, which are also \
         receipts: ID,aATTEMPT,lEXPIRY_MS,tTOKEN; a receipt names its bucket. Leases directly \
         in leased/, as an earlier release kept them, are leases too.",
    ),
    ("SPOOL/done/", "Acked messages: ID,aATTEMPTS,fFINISHED_MS."),
    (
        "SPOOL/dead/",
        "Dead-lettered messages, same names as done/.",
    ),
];

const EXAMPLES: &str = "\
qspool push 'resize /srv/img/42.png'
qspool pop --receipt-file r | ./worker && qspool ack \"$(cat r)\"
seq 1000 | qspool push --lines
qspool stats --json
*/5 * * * * qspool requeue --expired
qspool pop --wait=30s --json
qspool work --wait -j 4 -- ./send-email";

fn section(roff: &mut Roff, title: &str) {
    roff.control("SH", [title]);
}

fn tagged(roff: &mut Roff, items: &[(&str, &str)]) {
    for (tag, text) in items {
        roff.control("TP", []);
        roff.text([bold(*tag)]);
        roff.text([roman(*text)]);
    }
}

fn exit_status(roff: &mut Roff) {
    section(roff, "EXIT STATUS");
    let codes: Vec<(String, &str)> = Code::TABLE
        .iter()
        .map(|(c, m)| ((*c as u8).to_string(), *m))
        .collect();
    let items: Vec<(&str, &str)> = codes.iter().map(|(c, m)| (c.as_str(), *m)).collect();
    tagged(roff, &items);
}

fn examples(roff: &mut Roff, text: &str) {
    section(roff, "EXAMPLES");
    roff.control("nf", []);
    for line in text.lines() {
        roff.text([roman(line.trim_start())]);
        roff.control("br", []);
    }
    roff.control("fi", []);
}

fn render(man: &Man, cmd: &clap::Command, top: bool) -> Vec<u8> {
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    let mut roff = Roff::default();
    if top {
        man.render_subcommands_section(&mut out).unwrap();
        exit_status(&mut roff);
        section(&mut roff, "ENVIRONMENT");
        tagged(&mut roff, ENVIRONMENT);
        section(&mut roff, "FILES");
        roff.text([roman(
            "A spool is one directory. Each message is one file holding exactly the pushed bytes; \
             each state change is one rename(2). docs/FORMAT.md in the source tree is the \
             normative description.",
        )]);
        tagged(&mut roff, FILES);
        examples(&mut roff, EXAMPLES);
    } else {
        let after = cmd
            .get_after_help()
            .map(ToString::to_string)
            .unwrap_or_default();
        let body = after.strip_prefix("Examples:\n").unwrap_or(&after);
        if cmd.get_name() == "work" {
            section(&mut roff, "CMD AND SIGNALS");
            tagged(&mut roff, WORK_STATUS);
            section(&mut roff, "ENVIRONMENT");
            tagged(&mut roff, WORK_ENVIRONMENT);
        }
        examples(&mut roff, body);
        exit_status(&mut roff);
        section(&mut roff, "SEE ALSO");
        roff.text([bold("qspool"), roman("(1)")]);
    }
    roff.to_writer(&mut out).unwrap();
    if top {
        man.render_version_section(&mut out).unwrap();
    }
    out
}

/// Every generated file: its path under the repository and its expected bytes.
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut files = Vec::new();
    let man = Man::new(cmd.clone());
    files.push((
        Path::new("man").join(man.get_filename()),
        render(&man, &cmd, true),
    ));
    for sub in cmd.get_subcommands() {
        let man = Man::new(sub.clone());
        files.push((
            Path::new("man").join(man.get_filename()),
            render(&man, sub, false),
        ));
    }
    for (shell, name) in [
        (Shell::Bash, "qspool.bash"),
        (Shell::Zsh, "_qspool"),
        (Shell::Fish, "qspool.fish"),
        (Shell::Elvish, "qspool.elv"),
        (Shell::PowerShell, "_qspool.ps1"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "qspool", &mut buf);
        files.push((Path::new("completions").join(name), buf));
    }
    files
}

#[test]
fn man_pages_and_completions_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rewrite = std::env::var_os("QSPOOL_REGENERATE").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (rel, want) in generated() {
        let path = root.join(&rel);
        if rewrite {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&want[..]) {
            stale.push(rel.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files: {}\nrun: QSPOOL_REGENERATE=1 cargo test --test cli generated",
        stale.join(", ")
    );
}

#[test]
fn every_subcommand_has_a_man_page_with_examples() {
    for (rel, text) in generated() {
        if rel.starts_with("man") {
            let text = String::from_utf8(text).unwrap();
            assert!(text.contains(".SH EXAMPLES"), "{}", rel.display());
            assert!(text.contains(".SH \"EXIT STATUS\""), "{}", rel.display());
        }
    }
}

#[test]
fn every_subcommand_help_ends_with_two_or_three_examples() {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    for sub in cmd.get_subcommands() {
        let after = sub.get_after_help().map(ToString::to_string);
        let after = after.unwrap_or_default();
        let body = after
            .strip_prefix("Examples:\n")
            .unwrap_or_else(|| panic!("{}: no examples", sub.get_name()));
        let examples: Vec<&str> = body.lines().collect();
        assert!(
            (2..=3).contains(&examples.len()),
            "{}: {} examples",
            sub.get_name(),
            examples.len()
        );
        for line in examples {
            assert!(line.starts_with("  "), "{}: {line:?}", sub.get_name());
            assert!(line.contains("qspool "), "{}: {line:?}", sub.get_name());
        }
    }
}

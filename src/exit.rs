//! The one table of exit codes, and the error kinds that select them.

use std::ffi::OsString;
use std::fmt;

/// Every status qspool exits with. Documented in `--help`, the README and the man page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Code {
    /// Success.
    Ok = 0,
    /// An error: I/O, a missing spool, a refused foreign file, a write to standard output; or
    /// `work`: a CMD failed, was killed, or lost its lease.
    Error = 1,
    /// Usage error or malformed input (a receipt or id outside the name grammar).
    Usage = 2,
    /// `pop`: nothing is visible (after `--wait`, by the time it ran out).
    Empty = 3,
    /// A receipt whose lease is no longer held, or an id not where the command looks.
    NotFound = 4,
}

impl Code {
    /// Every code with its meaning, in order: the source of the help text's table, the man
    /// page's EXIT STATUS section and the README's table.
    pub const TABLE: [(Code, &'static str); 5] = [
        (Code::Ok, "success"),
        (
            Code::Error,
            "error (I/O, missing spool, refused foreign file, failed output); work: a CMD failed",
        ),
        (
            Code::Usage,
            "usage error, or a receipt or id outside qspool's name grammar (nothing was touched)",
        ),
        (
            Code::Empty,
            "pop: nothing is visible, or --wait=DUR ran out",
        ),
        (
            Code::NotFound,
            "a receipt whose lease is no longer held, or an id not where the command looks",
        ),
    ];
}

impl From<Code> for std::process::ExitCode {
    fn from(c: Code) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

/// Malformed input from the command line: exit 2, checked before the filesystem is touched.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Something the command was pointed at is not there: exit 4.
#[derive(Debug)]
pub struct NotFound(pub String);

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// The one place that turns an error into an exit code.
pub fn code_of(err: &anyhow::Error) -> Code {
    if err.downcast_ref::<Usage>().is_some() {
        Code::Usage
    } else if err.downcast_ref::<NotFound>().is_some() {
        Code::NotFound
    } else {
        Code::Error
    }
}

/// Collects the outcome of commands that handle many receipts or ids one by one: each failure
/// is reported on its own line, and the exit code is the most serious one seen.
#[derive(Default)]
pub struct Tally {
    worst: Option<Code>,
}

impl Tally {
    pub fn fail(&mut self, err: anyhow::Error) {
        report(&err);
        let code = code_of(&err);
        self.worst = Some(self.worst.map_or(code, |w| rank(w, code)));
    }

    pub fn code(&self) -> Code {
        self.worst.unwrap_or(Code::Ok)
    }
}

/// An error outranks a not-found: the user must look at the error first.
fn rank(a: Code, b: Code) -> Code {
    let weight = |c: Code| match c {
        Code::Error => 3,
        Code::Usage => 2,
        Code::NotFound => 1,
        _ => 0,
    };
    if weight(a) >= weight(b) { a } else { b }
}

/// Prints an error as one line: `qspool: <what>: <why>`.
pub fn report(err: &anyhow::Error) {
    say(&format!("{err:#}"));
}

/// Writes `qspool: <text>` as one line on standard error, in a single write so that lines of
/// concurrent processes do not interleave. A failed write is ignored: there is nowhere left
/// to report it.
pub fn say(text: &str) {
    use std::io::Write;
    let line = format!("qspool: {}\n", text.replace(['\n', '\r'], " "));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Handles a command line clap refused: `--help`, `--version` and `help` print as clap prints
/// them (exit 0, or 1 if standard output fails); every other case is a usage error, reported as
/// one line with a pointer to the help (exit 2).
pub fn parse_failure(err: &clap::Error) -> Code {
    if !err.use_stderr() {
        return match err.print() {
            Ok(()) => Code::Ok,
            Err(e) => {
                report(&anyhow::Error::new(e).context("write to standard output"));
                Code::Error
            }
        };
    }
    say(&usage_line(err, std::env::args_os()));
    Code::Usage
}

/// clap's message for a usage error, flattened to one line without the `error: ` prefix, the
/// usage block and the "For more information" tip, followed by where to find help: the help of
/// the subcommand `args` name, if they name one.
pub fn usage_line(err: &clap::Error, args: impl IntoIterator<Item = OsString>) -> String {
    use clap::error::ErrorKind;
    let args: Vec<OsString> = args.into_iter().collect();
    let tip = equals_tip(err, &args);
    let help = format!("(see '{} --help')", command_path(args));
    if matches!(
        err.kind(),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return format!("a command is required {help}");
    }
    let rendered = err.render().to_string();
    let text = rendered.strip_prefix("error:").unwrap_or(&rendered);
    let mut message = String::new();
    for line in text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if !message.is_empty() {
            message.push_str(if message.ends_with(':') { " " } else { "; " });
        }
        message.push_str(line);
    }
    if message.is_empty() {
        message.push_str("invalid command line");
    }
    if let Some(tip) = tip {
        message.push_str("; ");
        message.push_str(&tip);
    }
    format!("{message} {help}")
}

/// `--wait 5s` reads as `--wait` and a stray `5s`, since the value is optional, and `work`
/// takes its CMD only after `--`: say how to write them.
fn equals_tip(err: &clap::Error, args: &[OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(stray)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let at = args
        .iter()
        .position(|a| a.to_str() == Some(stray.as_str()))?;
    let before = args.get(at.checked_sub(1)?)?.to_str()?;
    if before == "--wait" {
        return Some(format!("tip: write --wait={stray}"));
    }
    let work = args.iter().any(|a| a == "work") && !args.iter().any(|a| a == "--");
    (work && !stray.starts_with('-')).then(|| format!("tip: CMD goes after '--': work -- {stray}"))
}

/// `qspool SUBCOMMAND` for the subcommand `args` name (as far as clap can tell from a command
/// line it refused), else `qspool`.
fn command_path(args: impl IntoIterator<Item = OsString>) -> String {
    use clap::CommandFactory;
    let sub = crate::cli::Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()
        .and_then(|m| m.subcommand_name().map(str::to_owned))
        .filter(|name| name != "help");
    match sub {
        Some(name) => format!("qspool {name}"),
        None => "qspool".to_owned(),
    }
}

/// Standard output as an unbuffered descriptor of its own. Commands write through it rather
/// than through std's buffered handle, which keeps whatever a failed write left and writes it
/// at exit: after an error (and a lease given back) nothing more may reach the reader.
pub fn stdout() -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    use std::os::fd::AsFd;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .context("open standard output")
}

#[cfg(test)]
mod tests {
    use super::usage_line;
    use clap::Parser;
    use std::ffi::OsString;

    fn line(args: &[&str]) -> String {
        let argv: Vec<OsString> = ["qspool"].iter().chain(args).map(OsString::from).collect();
        let err = crate::cli::Cli::try_parse_from(&argv).expect_err("a usage error");
        usage_line(&err, argv)
    }

    #[test]
    fn usage_errors_are_flattened_to_one_line_with_a_pointer_to_help() {
        for (args, want) in [
            (
                &["ack"][..],
                "the following required arguments were not provided: <RECEIPT>... \
                 (see 'qspool ack --help')",
            ),
            (
                &["nosuch"],
                "unrecognized subcommand 'nosuch' (see 'qspool --help')",
            ),
            (&[], "a command is required (see 'qspool --help')"),
            (
                &["-s", "push", "pop", "-n", "0"],
                "invalid value '0' for '--max <N>': 0 is not in 1..=4294967295 \
                 (see 'qspool pop --help')",
            ),
            (
                &["pop", "--wait", "5s"],
                "unexpected argument '5s' found; tip: write --wait=5s (see 'qspool pop --help')",
            ),
            (
                &["work", "--wait", "1m", "--", "true"],
                "unexpected argument '1m' found; tip: write --wait=1m (see 'qspool work --help')",
            ),
            (
                &["work", "-j", "2", "./send"],
                "unexpected argument './send' found; tip: CMD goes after '--': work -- ./send \
                 (see 'qspool work --help')",
            ),
            (
                &["pus"],
                "unrecognized subcommand 'pus'; tip: a similar subcommand exists: 'push' \
                 (see 'qspool --help')",
            ),
        ] {
            assert_eq!(line(args), want, "{args:?}");
        }
    }
}

//! Command lines clap refused, reported as one line with a pointer to the right help.

use crate::exit::Code;
use std::ffi::OsString;

/// Handles a command line clap refused: `--help`, `--version` and `help` print as clap prints
/// them (exit 0, or 1 if standard output fails); every other case is a usage error, reported as
/// one line with a pointer to the help (exit 2).
pub fn parse_failure(err: &clap::Error) -> Code {
    if !err.use_stderr() {
        return match err.print() {
            Ok(()) => Code::Ok,
            Err(e) => {
                crate::output::report(&anyhow::Error::new(e).context("write to standard output"));
                Code::Error
            }
        };
    }
    crate::output::say(&usage_line(err, std::env::args_os()));
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
                "unrecognized subcommand 'pus'; tip: some similar subcommands exist: 'pause', \
                 'push' (see 'qspool --help')",
            ),
        ] {
            assert_eq!(line(args), want, "{args:?}");
        }
    }
}

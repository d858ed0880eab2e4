//! Entry point: parse the command line, run it, exit with its code.

use clap::{CommandFactory, FromArgMatches};

fn main() -> std::process::ExitCode {
    let mut command = qspool::cli::Cli::command();
    let parsed = command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut m| qspool::cli::Cli::from_arg_matches_mut(&mut m))
        .map_err(|e| e.format(&mut command));
    // The whole command tree (every subcommand's arguments and help) is left to the exit to
    // free: dropping it piece by piece costs a one-shot command more than its own work.
    std::mem::forget(command);
    match parsed {
        Ok(cli) => qspool::run(cli).into(),
        Err(err) => qspool::usage::parse_failure(&err).into(),
    }
}

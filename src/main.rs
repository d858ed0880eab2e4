//! Entry point: parse the command line, run it, exit with its code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    match qspool::cli::Cli::try_parse() {
        Ok(cli) => qspool::run(cli).into(),
        Err(err) => qspool::exit::parse_failure(&err).into(),
    }
}

//! Entry point: parse the command line, run it, exit with its code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    qspool::run(qspool::cli::Cli::parse()).into()
}

//! qspool: a durable, crash-safe work queue in a directory. `run` is the whole program.

pub mod address;
pub mod cli;
mod cmd;
pub mod duration;
mod encode;
pub mod exit;
#[cfg(feature = "jetstream")]
mod jetstream;
mod os;
mod output;
pub mod spool;
pub mod usage;
mod wait;

use anyhow::{Result, bail};
use cli::{Cli, Command};
use exit::Code;
use std::path::PathBuf;

/// Runs one command line; every error is reported here, once, and mapped to its exit code.
pub fn run(cli: Cli) -> Code {
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            output::report(&err);
            exit::code_of(&err)
        }
    }
}

fn dispatch(cli: Cli) -> Result<Code> {
    // Before anything is created: every mode qspool sets is then exact at creation.
    os::restrict_umask();
    spool::trust_foreign_spools(cli.trust_spool);
    let given = match cli.spool {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => default_spool()?,
    };
    let root = match address::parse(given.as_os_str())? {
        address::Address::Dir(root) => root,
        address::Address::Nats(url) => {
            return on_jetstream(&url, cli.nats_creds, &cli.command, given.as_os_str());
        }
    };
    if let Command::Init(a) = &cli.command
        && a.replicas.is_some()
    {
        return Err(exit::usage(
            "init --replicas: only a JetStream queue (--spool nats://…) has replicas",
        ));
    }
    match cli.command {
        Command::Init(a) => cmd::init::run(&root, &a),
        Command::Push(a) => cmd::push::run(&root, &a),
        Command::Pop(a) => cmd::pop::run(&root, &a),
        Command::Ack(a) => cmd::ack::run(&root, &a),
        Command::Requeue(a) => cmd::requeue::run(&root, &a),
        Command::Extend(a) => cmd::extend::run(&root, &a),
        Command::Bury(a) => cmd::bury::run(&root, &a),
        Command::Stats(a) => cmd::stats::run(&root, &a),
        Command::List(a) => cmd::list::run(&root, &a),
        Command::DlqReplay(a) => cmd::dlq_replay::run(&root, &a),
        Command::Replay(a) => cmd::replay::run(&root, &a),
        Command::Pause(a) => cmd::pause::run(&root, &a),
        Command::Resume(a) => cmd::resume::run(&root, &a),
        Command::Purge(a) => cmd::purge::run(&root, &a),
        Command::Work(a) => cmd::work::run(&root, &a),
        Command::Relay(a) => relay(&root, &a, cli.nats_creds),
        Command::Show(a) => cmd::show::run(&root, &a),
        Command::Fsck(a) => cmd::fsck::run(&root, &a),
    }
}

#[cfg(feature = "jetstream")]
fn on_jetstream(
    url: &address::NatsUrl,
    creds: Option<PathBuf>,
    command: &Command,
    given: &std::ffi::OsStr,
) -> Result<Code> {
    jetstream::run(url, &jetstream::Connect { creds }, command, given)
}

#[cfg(feature = "jetstream")]
fn relay(root: &std::path::Path, a: &cli::RelayArgs, creds: Option<PathBuf>) -> Result<Code> {
    jetstream::relay::run(root, a, &jetstream::Connect { creds })
}

#[cfg(not(feature = "jetstream"))]
fn relay(_root: &std::path::Path, _a: &cli::RelayArgs, _creds: Option<PathBuf>) -> Result<Code> {
    Err(exit::usage(
        "relay: this qspool was built without JetStream (cargo feature `jetstream`)",
    ))
}

#[cfg(not(feature = "jetstream"))]
fn on_jetstream(
    url: &address::NatsUrl,
    _creds: Option<PathBuf>,
    _command: &Command,
    _given: &std::ffi::OsStr,
) -> Result<Code> {
    Err(exit::usage(format!(
        "{url}: this qspool was built without JetStream (cargo feature `jetstream`)"
    )))
}

/// `$QSPOOL_DIR`, else `${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default`. Empty values
/// count as unset, and a relative XDG_STATE_HOME is ignored, as the XDG spec asks.
fn default_spool() -> Result<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("QSPOOL_DIR") {
        return Ok(dir);
    }
    let base = match (
        env("XDG_STATE_HOME").filter(|p| p.is_absolute()),
        env("HOME"),
    ) {
        (Some(state), _) => state,
        (None, Some(home)) => home.join(".local/state"),
        (None, None) => bail!("no spool given: set --spool, QSPOOL_DIR or HOME"),
    };
    Ok(base.join("qspool").join("default"))
}

//! The command line: this clap definition is also the help text, the man pages and completions.

use crate::duration;
use crate::spool::rate::Rate;
use crate::spool::scan::State;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

/// The exit-status table shown after `--help`; a test checks it against `exit::Code::TABLE`.
pub const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  error (I/O, missing spool, refused foreign file, failed output); work: qspool failed
  2  usage error, or a receipt or id outside qspool's name grammar (nothing was touched)
  3  pop: nothing is visible, the spool is paused or its rate limit reached (see stderr), or --wait=DUR ran out
  4  a receipt whose lease is no longer held, or an id not where the command looks
  5  work: a CMD failed, was killed or lost its lease (qspool itself did not fail)";

/// A durable, crash-safe work queue in a directory: push, pop, ack.
///
/// A spool is a directory with tmp/ new/ leased/ done/ dead/. Each message is one file holding
/// exactly the pushed bytes; everything else qspool knows is in the file's name, and each state
/// change is one atomic rename. No daemon, no lock on the hot path: any number of processes may
/// push and pop at once, and each message has exactly one holder.
#[derive(Debug, Parser)]
#[command(name = "qspool", version, after_help = EXIT_STATUS, max_term_width = 100)]
pub struct Cli {
    /// The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls://
    /// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default].
    /// Any other URL scheme is refused; a directory named like one is written ./x:
    #[arg(short, long, global = true, value_name = "DIR|URL")]
    pub spool: Option<PathBuf>,

    /// NATS credentials file (a JWT and its nkey seed) for a nats:// spool
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "NATS_CREDS",
        hide_env_values = true
    )]
    pub nats_creds: Option<PathBuf>,

    /// Use the spool even if another user owns it or others may write to it (refused otherwise:
    /// they could change it under you). Root's own spools are always trusted
    #[arg(
        long,
        global = true,
        env = "QSPOOL_TRUST_SPOOL",
        hide_env_values = true,
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub trust_spool: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(InitArgs),
    Push(PushArgs),
    Pop(PopArgs),
    Ack(AckArgs),
    Requeue(RequeueArgs),
    Extend(ExtendArgs),
    Bury(BuryArgs),
    Stats(StatsArgs),
    List(ListArgs),
    DlqReplay(DlqReplayArgs),
    Replay(ReplayArgs),
    Pause(PauseArgs),
    Resume(ResumeArgs),
    Purge(PurgeArgs),
    Work(WorkArgs),
    Relay(RelayArgs),
    Show(ShowArgs),
    Fsck(FsckArgs),
}

/// Create a spool, or change its stored defaults.
///
/// Without init a spool allows 5 attempts, leases for 30s, keeps acked messages for a day and
/// has no rate limit. On an existing spool, init changes only the settings it is given and keeps
/// everything else, messages included.
///
/// With --rate, every pop and every work on the spool share one limit on leases started: three
/// `work -j 8` on a spool with `init --rate 100/s` start at most 100 CMDs a second between
/// them, plus the burst. The shared state is the file `rate` in the spool, updated under a lock
/// that the kernel drops when its holder dies, so no crash can leave the queue held.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool init --max-attempts 3 --lease 2m --dedup-window 1h
  qspool init --rate 100/s --burst 20
  qspool -s /var/spool/mail-out init --rate off")]
pub struct InitArgs {
    /// Leases a message may have before it is dead-lettered (at least 1)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: Option<u32>,

    /// Default lease length, e.g. 30s, 5m, 1m30s
    #[arg(long, value_name = "DUR", value_parser = duration::lease)]
    pub lease: Option<u64>,

    /// How long acked messages stay in done/ before `requeue --expired` (or `stats`) removes
    /// them [default: 1d]
    #[arg(long, value_name = "DUR", value_parser = duration::any)]
    pub retain_done: Option<u64>,

    /// Spool-wide limit on leases started, by every pop and work together: N/s, N/m, N/h or
    /// N/DUR (as in 5/10s); `off` removes it
    #[arg(long, value_name = "RATE", value_parser = rate_or_off)]
    pub rate: Option<RateSetting>,

    /// How many leases the spool-wide limit allows at once after a quiet spell [default: 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub burst: Option<u64>,

    /// How long an acked message keeps its `push --key` from being pushed again [default: 5m]
    #[arg(long, value_name = "DUR", value_parser = duration::any)]
    pub dedup_window: Option<u64>,

    /// JetStream queues only: how many servers keep a copy of each stream (1, 3 or 5 in a
    /// cluster) [default: 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=5))]
    pub replicas: Option<u64>,
}

/// `init --rate`'s value: a limit, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateSetting {
    Off,
    Limit(Rate),
}

fn rate_or_off(text: &str) -> Result<RateSetting, String> {
    match text {
        "off" => Ok(RateSetting::Off),
        t => Rate::parse(t).map(RateSetting::Limit),
    }
}

/// Stop all consumption: pop exits 3 and says why, work holds off, waiting pops keep waiting.
///
/// Pushes go on. The pause is the file `paused` in the spool, written durably, so it holds
/// across reboots until `qspool resume`. Pausing a paused spool keeps the time it was paused.
/// Prints since when the spool is paused.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool pause && ./deploy-new-worker && qspool resume
  qspool -s /var/spool/mail-out pause")]
pub struct PauseArgs {}

/// Restart consumption after `qspool pause`, and wake every waiting pop and work at once.
///
/// Prints `resumed`, or `not paused` (still exit 0) when there was no pause.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool resume
  qspool stats --json | jq -e .paused && qspool resume")]
pub struct ResumeArgs {}

/// Move acked messages back to the queue, attempts reset, ids unchanged. Prints the ids moved.
///
/// Only what done/ still holds can be replayed: acked messages stay there for the spool's
/// retain-done time (1d unless set by `init --retain-done`), then `requeue --expired` or `stats`
/// removes them for good. With --since or --all, messages go back oldest first (by id). Dead
/// messages are replayed by dlq-replay.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool replay --done --since 1h
  qspool replay --done --all --limit 1000
  qspool replay --done 1795833091123456.4242.00000007.9f3c2a1b.web-01")]
pub struct ReplayArgs {
    /// Replay acked messages (from done/)
    #[arg(long, required = true)]
    pub done: bool,

    /// Ids of acked messages
    #[arg(value_name = "ID", required_unless_present_any = ["all", "since"],
          conflicts_with_all = ["all", "since"])]
    pub ids: Vec<String>,

    /// Replay the messages acked within the last DUR
    #[arg(long, value_name = "DUR", value_parser = duration::any, conflicts_with = "all")]
    pub since: Option<u64>,

    /// Replay every acked message still retained
    #[arg(long)]
    pub all: bool,

    /// Replay at most N messages
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// Push messages: each TEXT is one message; with none, standard input is one message.
///
/// Prints the id of each message once it is durable (contents synced, renamed into new/,
/// directory fsynced), one per line, in order. Payloads are binary-safe, of any size, and may
/// be empty. Messages pushed by one command share one group commit: their contents are synced
/// together (one syncfs for more than 8) and their directories fsynced once.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool push 'send welcome mail to ada@example.org'
  qspool push --key \"invoice-$ORDER\" --json \"bill order $ORDER\"
  printf 'create\\nupdate\\n' | qspool push --group customer-42 --lines")]
pub struct PushArgs {
    /// Messages to push, one per argument (with --file, the files whose contents to push)
    #[arg(value_name = "TEXT", conflicts_with_all = ["lines", "null"])]
    pub text: Vec<OsString>,

    /// Each argument names a file; the file's contents is one message
    #[arg(short, long, requires = "text", conflicts_with_all = ["lines", "null"])]
    pub file: bool,

    /// Each line of standard input is one message (empty lines skipped), pushed as one batch
    #[arg(long, conflicts_with = "null")]
    pub lines: bool,

    /// Like --lines, with NUL-separated input, as xargs -0 reads it
    #[arg(short = '0', long)]
    pub null: bool,

    /// Keep the messages invisible for this long, e.g. 90s, 1h
    #[arg(long, value_name = "DUR", value_parser = duration::any, default_value = "0")]
    pub delay: u64,

    /// Skip the fsyncs: faster, but a crash may lose messages whose ids were printed
    #[arg(long)]
    pub no_sync: bool,

    /// Push the message only if no message with this dedup key is ready, delayed or leased, or
    /// was acked within the spool's dedup window (init --dedup-window, 5m by default);
    /// otherwise print that message's id. 1 to 128 bytes; one message per push
    #[arg(long, value_name = "KEY", conflicts_with_all = ["lines", "null"])]
    pub key: Option<OsString>,

    /// Print one JSON object per message: id, pushed (false when --key found the key held,
    /// and id is the holder's), and key
    #[arg(long)]
    pub json: bool,

    /// Deliver the messages of group G one at a time, in push order: while one is out (ready,
    /// delayed or leased), the next waits. 1 to 128 bytes
    #[arg(long, value_name = "G", conflicts_with = "key")]
    pub group: Option<OsString>,
}

/// Lease the message that has been visible longest and print its payload.
///
/// Standard output gets exactly the payload bytes and nothing else. The message stays leased
/// until acked, requeued, or its lease expires; then another pop can have it. Expired leases are
/// reclaimed by pop itself. Exits 3, printing nothing, when nothing is visible.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool pop --receipt-file r | ./worker && qspool ack \"$(cat r)\"
  qspool pop --json -n 10 --lease 5m
  qspool pop --wait=30s --ack >> events.log")]
pub struct PopArgs {
    /// Lease length [default: the spool's, 30s unless set by init]
    #[arg(long, value_name = "DUR", value_parser = duration::lease)]
    pub lease: Option<u64>,

    /// Also write the receipt (one per line with -n) to FILE
    #[arg(long, value_name = "FILE")]
    pub receipt_file: Option<PathBuf>,

    /// Print one JSON object per message: id, receipt, attempt, enqueued_at, lease_expires_at,
    /// size, and body (UTF-8) or body_base64
    #[arg(long)]
    pub json: bool,

    /// Lease up to N messages (needs --json)
    #[arg(short = 'n', long = "max", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,

    /// Ack once the payload is written: at-most-once delivery
    #[arg(long)]
    pub ack: bool,

    /// Block until a message is visible: forever, or at most DUR (then exit 3). The value needs
    /// the `=`, as in --wait=30s
    #[arg(long, value_name = "DUR", num_args = 0..=1, require_equals = true,
          value_parser = duration::any)]
    pub wait: Option<Option<u64>>,
}

/// Acknowledge leased messages: they are done and leave the queue.
///
/// A lease past its expiry that nobody has reclaimed yet can still be acked. A receipt whose
/// lease is no longer held (reclaimed, re-leased, acked, extended) exits 4 and moves nothing.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool ack \"$(cat receipt)\"
  qspool pop --json | jq -r .receipt | xargs qspool ack")]
pub struct AckArgs {
    /// Receipts printed by pop or extend
    #[arg(required = true, value_name = "RECEIPT")]
    pub receipts: Vec<String>,
}

/// Give leases back early (a nack), or return every expired lease to the queue.
///
/// A message whose last attempt this was goes to dead/ instead. A requeued message goes to the
/// back of the queue.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool requeue --delay 1m \"$(cat receipt)\"
  */5 * * * * qspool requeue --expired   # crontab: reclaim leases of crashed workers")]
pub struct RequeueArgs {
    /// Receipts printed by pop or extend
    #[arg(value_name = "RECEIPT", required_unless_present = "expired")]
    pub receipts: Vec<String>,

    /// Keep requeued messages invisible for this long
    #[arg(long, value_name = "DUR", value_parser = duration::any, default_value = "0",
          conflicts_with = "expired")]
    pub delay: u64,

    /// Return every expired lease, print what moved, remove tmp/ leftovers older than 36h, and
    /// purge acked messages past the spool's retain-done time
    #[arg(long, conflicts_with = "receipts")]
    pub expired: bool,
}

/// Extend (or shorten) a lease: it now expires DUR from now. Prints the new receipt.
///
/// The old receipt is dead from then on.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  r=$(qspool extend --lease 5m \"$r\")
  qspool extend --lease 1h \"$(cat receipt)\" > receipt.new && mv receipt.new receipt")]
pub struct ExtendArgs {
    /// Receipt printed by pop or a previous extend
    #[arg(value_name = "RECEIPT")]
    pub receipt: String,

    /// New lease length, counted from now [default: the spool's]
    #[arg(long, value_name = "DUR", value_parser = duration::lease)]
    pub lease: Option<u64>,
}

/// Move leased messages straight to dead/, whatever attempts remain (a poison message).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool bury \"$(cat receipt)\"
  qspool pop --receipt-file r | ./parse || qspool bury \"$(cat r)\"   # unparseable: poison")]
pub struct BuryArgs {
    /// Receipts printed by pop or extend
    #[arg(required = true, value_name = "RECEIPT")]
    pub receipts: Vec<String>,
}

/// The shape of the queue: per state its messages, bytes and oldest, by age; foreign entries.
///
/// One row per state (ready, delayed, leased, expired, done, dead) with its count, payload
/// bytes, the age of its oldest message (for done and dead: the longest time one has been
/// there), and how many are up to 5m, 10m, 20m, 40m, 80m, 160m, 320m and 640m old, or older
/// (ages since the first push, as qshape counts them); then
/// foreign entries and the leases expiring soonest. Never reads a payload and works on a
/// read-only spool; it also removes acked messages past retention, when it may.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool stats --watch=5s
  qspool stats --json | jq .oldest_ready_age_seconds
  qspool stats --prometheus --output /var/lib/node_exporter/textfile/qspool.prom")]
pub struct StatsArgs {
    /// Print one JSON object
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,

    /// Print node_exporter's textfile format: per state the messages, their bytes and the age
    /// of the oldest; and the foreign entries. Each series is labelled with the spool's path
    #[arg(long)]
    pub prometheus: bool,

    /// Write the metrics to FILE instead, atomically (through a temporary file beside it whose
    /// name does not end in .prom), mode 0644
    #[arg(long, value_name = "FILE", requires = "prometheus")]
    pub output: Option<PathBuf>,

    /// Look again every DUR (2s without a value; it needs the `=`) until interrupted: the table
    /// is redrawn on a terminal; JSON and metrics are printed (or written) anew each time
    #[arg(long, value_name = "DUR", num_args = 0..=1, require_equals = true,
          default_missing_value = "2s", value_parser = duration::positive)]
    pub watch: Option<u64>,
}

/// List messages, oldest first (by first push, across states), without reading a payload.
///
/// One line per message: state, id, attempts (leases so far), age since first push, size, and
/// when it becomes visible, when its lease expires, or when it finished. Works on a read-only
/// spool. Receipts are not shown: a listing is not a way to take over someone's lease.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool list
  qspool list dead --json | jq -r .id
  qspool list leased expired")]
pub struct ListArgs {
    /// Only messages in these states [default: all but done]
    #[arg(value_name = "STATE", value_parser = state_parser())]
    pub states: Vec<State>,

    /// Include done (acked) messages too
    #[arg(long, conflicts_with = "states")]
    pub all: bool,

    /// Print one JSON object per message: id, state, attempt, enqueued_at, visible_at,
    /// lease_expires_at or finished_at, state_since (where the name records it), size
    #[arg(long)]
    pub json: bool,

    /// Only the N oldest
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// A message state, as `list` takes it: by the names the spool gives its states.
fn state_parser() -> impl TypedValueParser<Value = State> {
    PossibleValuesParser::new(State::ALL.map(State::name))
        .try_map(|s: String| State::from_name(&s).ok_or("not a state"))
}

/// Check a spool against its format, and with --repair, set aside what does not belong.
///
/// Reports tmp/ leftovers older than 36h, names outside the grammar, links, directories and
/// special files where messages belong, one id in two states, leases expiring more than 12h
/// ahead (a clock that jumped), and wrong modes or owners. --repair moves foreign entries and
/// the lesser copies of duplicated ids into corrupt/, keeping for each id the copy furthest
/// along (done, then dead, then leased, then ready). It never deletes a message and never
/// follows a link. Exits 0 when the spool is clean, 1 when problems remain; what sits in
/// corrupt/ is not a problem.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool fsck
  qspool fsck --repair --json | jq '.findings[] | .path'")]
pub struct FsckArgs {
    /// Set aside foreign entries and duplicate copies in corrupt/, and fix modes
    #[arg(long)]
    pub repair: bool,

    /// Print one JSON object with a findings array
    #[arg(long)]
    pub json: bool,
}

/// Print one message's payload, whatever its state, without leasing it or changing anything.
///
/// Standard output gets exactly the payload bytes, as with pop. The message is found by its id
/// in any state: ready, delayed, leased, expired, done or dead. Works on a read-only spool.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool show 1795833091123456.4242.00000007.9f3c2a1b.web-01 > payload
  qspool list dead --json | jq -r .id | xargs -n1 qspool show --json")]
pub struct ShowArgs {
    /// The message's id
    #[arg(value_name = "ID")]
    pub id: String,

    /// Print one JSON object: id, state, attempt, enqueued_at, the time of its state (visible_at,
    /// lease_expires_at or finished_at), size, and body (UTF-8) or body_base64
    #[arg(long)]
    pub json: bool,
}

/// Move dead messages back to the queue, attempts reset, ids unchanged. Prints the ids moved.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool dlq-replay --all
  qspool dlq-replay 1795833091123456.4242.00000007.9f3c2a1b.web-01")]
pub struct DlqReplayArgs {
    /// Ids of dead messages
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub ids: Vec<String>,

    /// Replay every dead message, oldest first
    #[arg(long)]
    pub all: bool,

    /// Replay at most N messages
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// Delete messages for good: acked (done/), dead-lettered (dead/) or waiting (new/). Prints the
/// ids removed, one per line.
///
/// Deleting every ready or dead message (no ID given) needs --yes: those are messages nobody
/// has handled. Leased messages are never purged; bury them first.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool purge --done --older-than 7d
  qspool purge --dead --yes
  qspool purge --ready 1795833091123456.4242.00000007.9f3c2a1b.web-01")]
#[command(group = clap::ArgGroup::new("which").required(true).multiple(true).args(["done", "dead", "ready"]))]
pub struct PurgeArgs {
    /// Only these messages (in the states chosen)
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,

    /// Purge done/ (acked messages)
    #[arg(long)]
    pub done: bool,

    /// Purge dead/ (dead-lettered messages)
    #[arg(long)]
    pub dead: bool,

    /// Purge new/: ready and delayed messages, never delivered or waiting for a retry
    #[arg(long)]
    pub ready: bool,

    /// Only messages that entered their state at least this long ago (for ready ones: became
    /// visible; delayed ones never qualify)
    #[arg(long, value_name = "DUR", value_parser = duration::any, default_value = "0")]
    pub older_than: u64,

    /// Confirm deleting ready or dead messages without naming them
    #[arg(long)]
    pub yes: bool,
}

/// Forward the local spool to a JetStream queue: the spool as a durable outbox.
///
/// relay leases local messages, publishes each to the queue with Nats-Msg-Id set to its id
/// (and its attempt count and enqueue time as headers), waits for the server's PubAck, and only
/// then acks it locally. A relay killed between the two publishes again later, and the
/// queue's duplicate window (init --dedup-window, 5m) drops the copy. Up to K publishes are in
/// flight at once.
///
/// While the server cannot be reached the messages stay local: relay gives their leases back
/// uncounted, says so once per outage, and retries with backoff; it never dead-letters for the
/// network. Without --wait it relays what is visible and exits, 1 if the server could not be
/// reached (the messages stay for the next run). On SIGTERM or SIGINT it finishes the publishes
/// in flight, acks what the server took, gives the rest back, and exits 0. A summary goes to
/// standard error unless --quiet.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool relay --to nats://queue.example:4222/jobs
  qspool -s /var/spool/outbox relay --to nats://10.0.0.5/jobs --wait -j 512
  qspool relay --to tls://relay:secret@nats.example/jobs --wait=10m --quiet")]
pub struct RelayArgs {
    /// The JetStream queue to forward to: nats://[USER:PASS@]HOST[:PORT]/NAME or tls://…
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// Keep relaying until signalled, or until idle for DUR. The value needs the `=`, as in
    /// --wait=10m
    #[arg(long, value_name = "DUR", num_args = 0..=1, require_equals = true,
          value_parser = duration::any)]
    pub wait: Option<Option<u64>>,

    /// Publishes in flight at once
    #[arg(short = 'j', long, value_name = "K", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub concurrency: u32,

    /// Print nothing but errors and outages
    #[arg(short, long)]
    pub quiet: bool,
}

/// Run CMD once per message, with the payload on its standard input; CMD's exit code decides.
///
/// qspool holds each lease and extends it while CMD runs, so CMD never acks and may take as long
/// as it needs. CMD exits 0: the message is acked. 100: it goes straight to dead/. Any other
/// status, or death by a signal: it is requeued, visible again after the backoff (BASE x
/// 2^(attempt-1), at most CAP), or dead-lettered after its last attempt. CMD's environment
/// carries QSPOOL_ID, QSPOOL_ATTEMPT and QSPOOL_SPOOL. Each CMD leads its own session and
/// process group, without a terminal; when CMD exits, whatever it left running in that group
/// is killed.
///
/// If work itself dies, even by SIGKILL or the OOM killer, every process still in a running
/// CMD's group is killed at once by work's watchdog (a second `qspool work` process that does
/// nothing else; killed alone, work starts another), well before the lease can expire, so no
/// later worker's run overlaps it. What leaves its process group (setsid, a daemonizing double
/// fork) escapes that; under systemd, KillMode=control-group covers it.
///
/// Without --wait, work runs what is visible and exits. On SIGTERM, SIGINT or SIGHUP it takes
/// no more messages and sends SIGTERM to the running CMDs. Those that exit are settled by their
/// status, except that one that dies of that SIGTERM (or exits 143) is requeued at once; those still running
/// after --grace are killed (SIGKILL, to the whole process group) and released at once. A second
/// SIGTERM or SIGINT ends the grace. One line per message goes to standard error, and a summary
/// at the end. Exits 0 when every CMD exited 0, 5 when any failed, was stopped or lost its
/// lease, and 1 when qspool itself failed (the spool, a signal it could not read, a CMD that
/// could not be started), whatever the CMDs did.
///
/// On a JetStream queue (--spool nats://…) work behaves the same: CMD reads the payload from a
/// sealed in-memory file, heartbeats tell the server the message is in progress, and with
/// --wait work keeps a pull request open and rides out a server restart. The lease is the
/// queue's (init --lease), so --lease is refused there.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qspool work -- ./resize-image --width 640
  qspool work --wait -j 4 --lease 2m --rate 100/s -- ./send-email
  qspool work -n 1 --quiet -- sh -c 'curl -fsS -d @- https://example.org/hook'")]
pub struct WorkArgs {
    /// Lease length; extended while CMD runs [default: the spool's, 30s unless set by init]
    /// (directories only)
    #[arg(long, value_name = "DUR", value_parser = duration::lease)]
    pub lease: Option<u64>,

    /// Delay before the first retry of a failed message; it doubles with each attempt
    #[arg(long, value_name = "BASE", value_parser = duration::any, default_value = "1s")]
    pub backoff: u64,

    /// Longest delay between retries
    #[arg(long, value_name = "CAP", value_parser = duration::any, default_value = "5m")]
    pub backoff_max: u64,

    /// How long CMDs may run on after SIGTERM before they are killed
    #[arg(long, value_name = "DUR", value_parser = duration::any, default_value = "30s")]
    pub grace: u64,

    /// Run CMD at most N times (a message retried within the run counts again), then exit
    #[arg(short = 'n', long = "max", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Keep waiting for messages until signalled, or until idle for DUR. The value needs the
    /// `=`, as in --wait=10m
    #[arg(long, value_name = "DUR", num_args = 0..=1, require_equals = true,
          value_parser = duration::any)]
    pub wait: Option<Option<u64>>,

    /// Start at most this many CMDs in this process: N/s, N/m, N/h or N/DUR. A spool-wide limit
    /// (init --rate) holds as well
    #[arg(long, value_name = "RATE", value_parser = Rate::parse)]
    pub rate: Option<Rate>,

    /// How many CMDs --rate lets start at once after a quiet spell [default: 1]
    #[arg(long, value_name = "N", requires = "rate",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub burst: Option<u64>,

    /// Run up to K CMDs at once; with 1, messages run one at a time in queue order
    #[arg(short = 'j', long, value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,

    /// No line per message that was acked, requeued or dead-lettered, and the summary only
    /// when something failed (lost leases, stops and errors are still reported)
    #[arg(short, long)]
    pub quiet: bool,

    /// The program to run for each message, and its arguments, after `--`
    #[arg(value_name = "CMD", required = true, num_args = 1.., last = true,
          allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_every_exit_code() {
        let mut lines = super::EXIT_STATUS.lines().skip(1);
        for (code, meaning) in crate::exit::Code::TABLE {
            let line = lines.next().expect("a line per code");
            assert_eq!(line, format!("  {}  {meaning}", code as u8));
        }
        assert!(lines.next().is_none());
    }
}

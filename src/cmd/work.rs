//! `qspool work`: run CMD once per message, hold its lease while CMD runs, and settle the
//! message by CMD's exit status.
//!
//! One thread, one loop: signals (SIGCHLD among them) arrive through a signalfd, the doorbell
//! through inotify, and heartbeats and kill deadlines are poll time-outs. Nothing here sleeps
//! while a child needs attention.

pub mod backend;

use crate::cli::WorkArgs;
use crate::exit::Code;
use crate::os::{self, Signals};
use crate::output::{report, say};
use crate::spool::rate;
use crate::spool::transition::{NotDurable, Released};
use crate::spool::{Spool, lease, now_ms, uses};
use crate::wait::{Waiter, earliest};
use anyhow::{Context, Result, anyhow};
use backend::{Backend, Hold, Taken};
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The exit status by which CMD says a message can never succeed: it goes to `dead/` at once
/// (qmail's convention).
pub const PERMANENT_FAILURE: i32 = 100;

pub fn run(root: &Path, args: &WorkArgs) -> Result<Code> {
    let ready = prepare(args)?;
    let spool = Spool::create(root, uses::MESSAGES)?;
    let env = std::path::absolute(root)
        .with_context(|| format!("resolve spool path {}", root.display()))?
        .into_os_string();
    let waiter = args.wait.map(|_| Waiter::new(&spool, None));
    let lease_ms = args.lease.unwrap_or(spool.config.lease_ms);
    let dir = backend::Dir { spool, env, waiter };
    Ok(drive(dir, args, ready, lease_ms))
}

/// What `work` sets up before it touches any queue.
pub struct Ready {
    signals: Signals,
    watchdog: os::Watchdog,
}

/// Checks CMD, blocks the signals and starts the watchdog: before a queue is opened, since a
/// backend may start threads.
pub fn prepare(args: &WorkArgs) -> Result<Ready> {
    if args.command.is_empty() {
        // clap requires CMD; this keeps a lease from ever being taken without one.
        return Err(crate::exit::usage("no CMD to run"));
    }
    // Blocked before anything else, so that a signal that comes early is held for the loop
    // rather than killing qspool between a lease and its CMD. Threads started later inherit
    // the mask, so the signals reach only the loop's signalfd.
    let signals = Signals::block(&[os::SIGTERM, os::SIGINT, os::SIGHUP, os::SIGCHLD])
        .context("block signals")?;
    // While qspool is one thread: the watchdog is forked, not exec'd.
    let watchdog = os::Watchdog::start().context("start the watchdog of the CMDs")?;
    Ok(Ready { signals, watchdog })
}

/// Runs CMDs for the messages of `q` until the work is over; the exit code says how it went.
pub fn drive<B: Backend>(q: B, args: &WorkArgs, ready: Ready, lease_ms: u64) -> Code {
    let Ready { signals, watchdog } = ready;
    let mut work = Work {
        q,
        args,
        lease_ms,
        watchdog,
        jobs: Vec::new(),
        started: 0,
        leased: 0,
        outcomes: Outcomes::default(),
        stopping: false,
        broken: false,
        exits_pending: false,
        local_rate: args.rate.map(|r| {
            let burst = args.burst.unwrap_or(r.burst);
            rate::Local::new(rate::Rate { burst, ..r }, now_ms())
        }),
        pause_said: None,
        found_last: true,
    };
    work.run(&signals);
    work.q.finish();
    work.outcomes.summarize(args.quiet, work.leased);
    if work.broken {
        Code::Error
    } else if work.outcomes.all_ok() {
        Code::Ok
    } else {
        Code::Failed
    }
}

/// A CMD running for one leased message.
struct Job<L> {
    child: Child,
    /// The current lease: each heartbeat replaces it.
    lease: L,
    started: Instant,
    next_beat_ms: u64,
    /// When SIGKILL goes to its process group, once it has been asked to stop.
    kill_at: Option<Instant>,
    /// The lease was lost: the message belongs to someone else, whatever CMD does now.
    lost: bool,
    /// qspool sent it SIGTERM (at shutdown) or SIGKILL (after the grace).
    termed: bool,
    killed: bool,
}

impl<L: Hold> Job<L> {
    /// Signals CMD's process group, and CMD itself if it left the group (once, not twice: a
    /// second SIGTERM can cut a cleanup short). Its pid is not reaped until `reap` has seen it
    /// exit and killed what it left behind, so neither id can have been reused meanwhile.
    fn signal(&self, signal: i32) {
        let pid = self.child.id();
        let mut sent = os::kill_group(pid, signal);
        if sent.is_ok() && os::process_group(pid).is_ok_and(|g| g != pid) {
            sent = os::kill(pid, signal);
        }
        if sent.is_ok() && signal == os::SIGTERM {
            // A CMD stopped by a job-control signal could not act on the SIGTERM.
            sent = os::kill_group(pid, os::SIGCONT);
        }
        if let Err(e) = sent {
            report(&anyhow!(e).context(format!(
                "send {} to the CMD of {} (process group {pid})",
                signal_name(signal),
                self.lease.id()
            )));
        }
    }

    fn line(&self, what: &str) {
        say(&format!(
            "{} attempt {}: {what}",
            self.lease.id(),
            self.lease.attempt()
        ));
    }
}

/// What became of each run, for the summary and the exit status.
#[derive(Default)]
struct Outcomes {
    acked: u64,
    retried: u64,
    dead: u64,
    /// Stopped by qspool at shutdown (SIGTERM it died of, or SIGKILL after the grace).
    stopped: u64,
    lost: u64,
    /// Runs whose message could not be settled (an I/O error): it returns on lease expiry.
    unsettled: u64,
}

impl Outcomes {
    fn total(&self) -> u64 {
        self.acked + self.retried + self.dead + self.stopped + self.lost + self.unsettled
    }

    fn all_ok(&self) -> bool {
        self.total() == self.acked
    }

    /// `leased`: how many leases were taken, which differs from the runs when a CMD could
    /// not be started.
    fn summarize(&self, quiet: bool, leased: u64) {
        if quiet && self.all_ok() {
            return;
        }
        let mut parts = vec![format!("{} acked", self.acked)];
        for (n, what) in [
            (self.retried, "requeued"),
            (self.dead, "dead-lettered"),
            (self.stopped, "stopped at shutdown"),
            (self.lost, "lease lost"),
            (self.unsettled, "not settled"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        // A message that fails and comes back within one run of work counts once per run.
        say(&match self.total() {
            0 if leased == 0 => "work: nothing to run".to_owned(),
            0 => "work: no CMD ran".to_owned(),
            1 => format!("work: 1 run: {}", parts.join(", ")),
            n => format!("work: {n} runs: {}", parts.join(", ")),
        });
    }

    fn count(&mut self, to: &Released) {
        match to {
            Released::Requeued { .. } => self.retried += 1,
            Released::Dead => self.dead += 1,
        }
    }
}

/// What one look at the queue found.
struct Look {
    /// Something was leased.
    took: bool,
    /// Nothing more was visible.
    empty: bool,
    /// When something may next become visible: a delayed message or a lease expiry.
    due_ms: Option<u64>,
    /// A rate limit holds the next start until this instant: the loop sleeps until then, with
    /// or without --wait.
    hold_ms: Option<u64>,
}

struct Work<'a, B: Backend> {
    q: B,
    args: &'a WorkArgs,
    lease_ms: u64,
    /// Kills the running CMDs' process groups if this process dies (`os::Watchdog`).
    watchdog: os::Watchdog,
    jobs: Vec<Job<B::Lease>>,
    /// Leases taken so far, against `-n` (a lease given back does not count).
    started: u64,
    /// Every lease taken, for the summary.
    leased: u64,
    outcomes: Outcomes,
    /// A signal came: no more messages are taken.
    stopping: bool,
    /// The spool or CMD failed in a way no retry fixes: no more messages are taken.
    broken: bool,
    /// A SIGCHLD was read and its CMD not yet reaped.
    exits_pending: bool,
    /// `--rate`: this process's own limit on starts.
    local_rate: Option<rate::Local>,
    /// The pause this worker has said it holds off for, by its time: said once per pause.
    pause_said: Option<u64>,
    /// Whether the last look for a message found one.
    found_last: bool,
}

impl<B: Backend> Work<'_, B> {
    fn run(&mut self, signals: &Signals) {
        let waiting = self.args.wait.is_some();
        let idle_limit = self.args.wait.flatten().map(Duration::from_millis);
        let mut idle_since: Option<Instant> = None;
        let mut due_ms = None;
        loop {
            let mut empty = false;
            let mut hold_ms = None;
            if self.may_take() {
                match self.fill(signals) {
                    Ok(look) => {
                        empty = look.empty;
                        due_ms = look.due_ms;
                        hold_ms = look.hold_ms;
                        if look.took {
                            // Work came, even if none of it is running now.
                            idle_since = None;
                        }
                    }
                    Err(e) => {
                        report(&e);
                        self.broken = true;
                    }
                }
            }
            let mut sleep: Option<Duration> = None;
            // Held by the rate limit after the last look found a message: messages wait only for
            // their start, which is not idleness.
            let busy_hold = hold_ms.is_some() && self.found_last;
            if self.jobs.is_empty() && !busy_hold {
                if !self.may_take() || (empty && !waiting) {
                    return;
                }
                let since = *idle_since.get_or_insert_with(Instant::now);
                if let Some(limit) = idle_limit {
                    let idle = since.elapsed();
                    if idle >= limit {
                        return;
                    }
                    sleep = Some(limit - idle);
                }
            } else {
                idle_since = None;
            }

            // Not while a rate limit holds the next start: a message leased now would wait for
            // its start without a heartbeat.
            let bell = waiting && self.may_take() && hold_ms.is_none();
            sleep = earliest(sleep, self.next_deadline());
            if let Some(at) = hold_ms {
                sleep = earliest(
                    sleep,
                    Some(Duration::from_millis(at.saturating_sub(now_ms()))),
                );
            }
            if self.exits_pending {
                // `fill` read the SIGCHLD of a CMD that exited meanwhile: reap it now.
                sleep = Some(Duration::ZERO);
            }
            if let Err(e) = self.q.wait(signals.as_fd(), bell, due_ms, sleep) {
                self.give_up(anyhow!(e).context("wait for CMDs and messages"));
            }
            self.read_signals(signals);
            self.reap();
            self.heartbeat();
            self.kill_overdue();
        }
    }

    fn may_take(&self) -> bool {
        !self.stopping
            && !self.broken
            && self.jobs.len() < self.args.concurrency as usize
            && self.started < self.args.count.unwrap_or(u64::MAX)
    }

    /// Something this loop depends on failed: stop as at a signal, so that no CMD is left
    /// running without its heartbeat. The pause keeps a failure that repeats from spinning.
    fn give_up(&mut self, e: anyhow::Error) {
        report(&e);
        self.broken = true;
        if !self.stopping {
            self.shut_down();
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    fn read_signals(&mut self, signals: &Signals) {
        let got = match signals.take() {
            Ok(got) => got,
            Err(e) => return self.give_up(anyhow!(e).context("read signals")),
        };
        for s in got {
            match s {
                os::SIGCHLD => self.exits_pending = true,
                // A stop already under way: SIGTERM or SIGINT again ends the grace. SIGHUP
                // does not, since some supervisors send it right after SIGTERM.
                os::SIGHUP if self.stopping => {}
                _ if self.stopping => self.hurry(),
                _ => self.shut_down(),
            }
        }
    }

    /// Leases messages and starts their CMDs until every slot is busy or nothing is visible.
    /// Signals and heartbeats are seen between starts: starting many CMDs takes a while.
    fn fill(&mut self, signals: &Signals) -> Result<Look> {
        // A paused spool: nothing is taken, not even an expired lease back. Without --wait
        // this is the end of the work; with it, the resume's doorbell wakes the loop.
        if let Some(since) = self.q.paused()? {
            if self.pause_said != Some(since) {
                self.pause_said = Some(since);
                let then = if self.args.wait.is_some() {
                    "holding off until `qspool resume`"
                } else {
                    "taking nothing (without --wait, work exits once its CMDs end)"
                };
                report(&anyhow!(
                    "{}: paused since {}; {then}",
                    self.q.describe(),
                    crate::encode::rfc3339_ms(since)
                ));
            }
            return Ok(Look {
                took: false,
                empty: true,
                due_ms: None,
                hold_ms: None,
            });
        }
        self.pause_said = None;
        // Never its own running leases: with a lease shorter than the time between two
        // heartbeats' checks, this worker would otherwise take its own message back and run
        // it twice at once.
        let jobs = &self.jobs;
        let ours = |id: &crate::spool::name::Id| jobs.iter().any(|j| j.lease.id() == id);
        let next_expiry = self.q.reclaim(&ours);
        let mut took = false;
        loop {
            self.read_signals(signals);
            self.heartbeat();
            if !self.may_take() {
                return Ok(Look {
                    took,
                    empty: false,
                    due_ms: next_expiry,
                    hold_ms: None,
                });
            }
            if let Some(hold) = self.take_start()? {
                return Ok(Look {
                    took,
                    empty: false,
                    due_ms: next_expiry,
                    hold_ms: Some(hold),
                });
            }
            let taken = self.q.take(self.lease_ms, self.room());
            if taken.is_err() {
                let _ = self.give_back_start();
            }
            match taken? {
                Taken::Nothing { next_ms } => {
                    self.found_last = false;
                    self.give_back_start()?;
                    return Ok(Look {
                        took,
                        empty: true,
                        due_ms: earliest(next_ms, next_expiry),
                        hold_ms: None,
                    });
                }
                got => {
                    took = true;
                    self.found_last = true;
                    self.started += 1;
                    self.leased += 1;
                    self.start(got)?;
                }
            }
        }
    }

    /// How many more CMDs may start now: the slots free, within what `-n` still allows. One
    /// under a local `--rate`, which decides each start on its own.
    fn room(&self) -> usize {
        if self.local_rate.is_some() {
            return 1;
        }
        let slots = (self.args.concurrency as usize).saturating_sub(self.jobs.len());
        let left = self.args.count.unwrap_or(u64::MAX) - self.started;
        slots
            .min(usize::try_from(left).unwrap_or(usize::MAX))
            .max(1)
    }

    /// Takes one start from this worker's `--rate` and from the spool-wide limit. `Some`: the
    /// instant at which a start will next be allowed, none being allowed now.
    fn take_start(&mut self) -> Result<Option<u64>> {
        let now = now_ms();
        if let Some(local) = &mut self.local_rate {
            let grant = local.take(now, 1);
            if grant.granted == 0 {
                return Ok(Some(grant.next_ms.unwrap_or(now + 1)));
            }
        }
        let grant = match self.q.take_start() {
            Ok(g) => g,
            Err(e) => {
                if let Some(local) = &mut self.local_rate {
                    local.give_back(now, 1);
                }
                return Err(e);
            }
        };
        if grant.granted == 0 {
            if let Some(local) = &mut self.local_rate {
                local.give_back(now, 1);
            }
            return Ok(Some(grant.next_ms.unwrap_or(now + 1)));
        }
        Ok(None)
    }

    /// Gives back the start `take_start` took when there was nothing to lease with it.
    fn give_back_start(&mut self) -> Result<()> {
        let now = now_ms();
        if let Some(local) = &mut self.local_rate {
            local.give_back(now, 1);
        }
        self.q.give_back_start()
    }

    /// Starts CMD for a message just leased, its payload file as standard input.
    fn start(&mut self, taken: Taken<B::Lease>) -> Result<()> {
        let (leased, file): (B::Lease, File) = match taken {
            Taken::Leased(l, f) => (l, f),
            Taken::Nothing { .. } => return Ok(()),
            Taken::Gone(leased) => {
                say(&format!(
                    "{} attempt {}: lease expired before CMD could start; the lease is too short",
                    leased.id(),
                    leased.attempt()
                ));
                self.outcomes.lost += 1;
                return Ok(());
            }
            Taken::Unreadable(leased, e) => {
                // This message's own trouble (say, a payload qspool may not read): it fails
                // this attempt like a failing CMD would, and the next message goes on.
                report(&e);
                let delay = self.backoff(&leased);
                match self.q.release(&leased, delay) {
                    Ok(Some(to)) => {
                        say(&format!(
                            "{} attempt {}: not run; {}",
                            leased.id(),
                            leased.attempt(),
                            released(&to, leased.attempt(), delay)
                        ));
                        self.outcomes.count(&to);
                    }
                    Ok(None) => self.outcomes.lost += 1,
                    Err(e) => {
                        report(&e);
                        self.outcomes.unsettled += 1;
                        self.broken = true;
                    }
                }
                return Ok(());
            }
        };
        let (program, cmd_args) = self.args.command.split_first().expect("checked by run");
        let mut cmd = std::process::Command::new(program);
        cmd.args(cmd_args)
            .stdin(Stdio::from(file))
            .env("QSPOOL_ID", leased.id().as_str())
            .env("QSPOOL_ATTEMPT", leased.attempt().to_string())
            .env("QSPOOL_SPOOL", self.q.env());
        os::start_detached(&mut cmd, self.watchdog.fd());
        match cmd.spawn() {
            Ok(child) => {
                // A third into the lease, counted from when it was taken: a lease that waited
                // for its start (leased in a batch) is not left to run out.
                let beat = lease::heartbeat(self.lease_ms);
                let due = leased.expires_ms().saturating_sub(self.lease_ms) + beat;
                self.jobs.push(Job {
                    child,
                    next_beat_ms: due.min(now_ms() + beat),
                    lease: leased,
                    started: Instant::now(),
                    kill_at: None,
                    lost: false,
                    termed: false,
                    killed: false,
                });
                Ok(())
            }
            Err(e) => {
                // The child may have registered its group before its exec failed.
                let _ = self.watchdog.prune();
                // CMD never saw the message: give it back untouched, attempt not counted, so
                // that a mistyped CMD cannot use up the attempts of a whole queue.
                self.started -= 1;
                let back = match self.q.unlease(&leased) {
                    Ok(true) => "given back untouched".to_owned(),
                    Ok(false) => "its lease was lost meanwhile".to_owned(),
                    Err(e) => format!("not given back ({e:#}); it returns when its lease expires"),
                };
                Err(anyhow!(e).context(format!(
                    "run {} for {} ({back})",
                    describe(program),
                    leased.id()
                )))
            }
        }
    }

    fn backoff(&self, leased: &B::Lease) -> u64 {
        lease::backoff(leased.attempt(), self.args.backoff, self.args.backoff_max)
    }

    /// The first SIGTERM, SIGINT or SIGHUP: take no more messages and ask every CMD to stop.
    fn shut_down(&mut self) {
        self.stopping = true;
        let at = Instant::now() + Duration::from_millis(self.args.grace);
        for job in &mut self.jobs {
            if !job.lost {
                // One whose lease was lost has had its SIGTERM already.
                job.signal(os::SIGTERM);
            }
            job.termed = true;
            job.kill_at = earliest(job.kill_at, Some(at));
        }
    }

    /// A second signal: the grace ends now.
    fn hurry(&mut self) {
        let now = Instant::now();
        for job in &mut self.jobs {
            job.kill_at = Some(now);
        }
    }

    /// Settles every job whose CMD has exited. Whatever CMD left running in its process group
    /// is killed first: the message's work is over, and a retry must not overlap with it.
    fn reap(&mut self) {
        self.exits_pending = false;
        self.mind_watchdog();
        let mut i = 0;
        while i < self.jobs.len() {
            let pid = self.jobs[i].child.id();
            match os::has_exited(pid) {
                Ok(false) => i += 1,
                Ok(true) => {
                    let mut job = self.jobs.remove(i);
                    let _ = os::kill_group(pid, os::SIGKILL);
                    // Killed, and not yet reaped, so its id cannot be anyone else's yet. A
                    // watchdog that cannot be told is dead, and its successor is not told.
                    let _ = self.watchdog.release(pid);
                    match job.child.wait() {
                        Ok(status) => self.settle(job, status),
                        Err(e) => self.abandon(job, anyhow!(e)),
                    }
                }
                Err(e) => {
                    // Not ours to wait for any more (reaped elsewhere?): its pid may belong to
                    // another process by now, so it is not signalled.
                    let job = self.jobs.remove(i);
                    let _ = self.watchdog.release(pid);
                    self.abandon(job, anyhow!(e));
                }
            }
        }
    }

    /// A watchdog killed on its own is replaced at once, and told of every CMD still running,
    /// so that the death of this process still takes them along. Without a watchdog no CMD
    /// may run: qspool stops as for a signal.
    fn mind_watchdog(&mut self) {
        match self.watchdog.reap_if_dead() {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => return self.give_up(anyhow!(e).context("check on the watchdog")),
        }
        let old = self.watchdog.pid();
        match os::Watchdog::start() {
            Ok(w) => self.watchdog = w,
            Err(e) => {
                return self.give_up(anyhow!(e).context(format!(
                    "the watchdog (pid {old}) died and another could not be started"
                )));
            }
        }
        for job in &self.jobs {
            if let Err(e) = self.watchdog.guard(job.child.id()) {
                return self.give_up(anyhow!(e).context("register a CMD with the new watchdog"));
            }
        }
        say(&format!(
            "the watchdog (pid {old}) died; pid {} took over, guarding {} running CMD(s)",
            self.watchdog.pid(),
            self.jobs.len()
        ));
    }

    /// A CMD whose exit status cannot be had: its message is released at once.
    fn abandon(&mut self, job: Job<B::Lease>, e: anyhow::Error) {
        report(&e.context(format!("wait for the CMD of {}", job.lease.id())));
        self.broken = true;
        match self.q.release(&job.lease, 0) {
            Ok(Some(to)) => {
                job.line(&format!(
                    "exit status unknown; {}",
                    released(&to, job.lease.attempt(), 0)
                ));
                self.outcomes.count(&to);
            }
            Ok(None) => self.lost_at_end(&job, "exit status unknown"),
            Err(e) => self.failed_to_settle(&job, e),
        }
    }

    fn settle(&mut self, job: Job<B::Lease>, status: ExitStatus) {
        let how = format!(
            "{} after {}",
            exit_text(status),
            seconds(job.started.elapsed())
        );
        if job.lost {
            job.line(&format!(
                "{how}; its lease was lost, so the message was left to its new holder"
            ));
            self.outcomes.lost += 1;
            return;
        }
        // Died of qspool's own stop signal: released at once, as after the kill, so that a CMD
        // that stops when asked is not held back by a backoff.
        let stopped = match (status.signal(), status.code()) {
            (Some(os::SIGKILL), _) if job.killed => Some("killed after the grace"),
            (Some(os::SIGTERM), _) if job.termed => Some("stopped at shutdown"),
            // The shell's way to report the same death, and many runtimes' too.
            (_, Some(c)) if c == 128 + os::SIGTERM && job.termed => Some("stopped at shutdown"),
            _ => None,
        };
        if let Some(why) = stopped {
            match self.q.release(&job.lease, 0) {
                Ok(Some(to)) => {
                    job.line(&format!(
                        "{how}: {why}; {}",
                        released(&to, job.lease.attempt(), 0)
                    ));
                    match to {
                        Released::Requeued { .. } => self.outcomes.stopped += 1,
                        Released::Dead => self.outcomes.dead += 1,
                    }
                }
                Ok(None) => self.lost_at_end(&job, &how),
                Err(e) => self.failed_to_settle(&job, e),
            }
            return;
        }
        let quiet = self.args.quiet;
        match status.code() {
            Some(0) => {
                let ended = self.q.ack(&job.lease);
                self.ended(&job, &how, ended, "acked", |o| &mut o.acked);
            }
            Some(PERMANENT_FAILURE) => {
                let ended = self.q.bury(&job.lease);
                let what = "dead-lettered (permanent failure)";
                self.ended(&job, &how, ended, what, |o| &mut o.dead);
            }
            _ => {
                let delay = self.backoff(&job.lease);
                match self.q.release(&job.lease, delay) {
                    Ok(Some(to)) => {
                        if !quiet {
                            job.line(&format!(
                                "{how}; {}",
                                released(&to, job.lease.attempt(), delay)
                            ));
                        }
                        self.outcomes.count(&to);
                    }
                    Ok(None) => self.lost_at_end(&job, &how),
                    Err(e) => self.failed_to_settle(&job, e),
                }
            }
        }
    }

    /// The lease was gone when CMD's answer came: the message is someone else's now.
    /// What an ack or a bury at the end of a run did: counted in `count`, said as `what`.
    fn ended(
        &mut self,
        job: &Job<B::Lease>,
        how: &str,
        ended: Result<bool>,
        what: &str,
        count: fn(&mut Outcomes) -> &mut u64,
    ) {
        match ended {
            Ok(true) => {
                if !self.args.quiet {
                    job.line(&format!("{how}; {what}"));
                }
                *count(&mut self.outcomes) += 1;
            }
            Ok(false) => self.lost_at_end(job, how),
            Err(e) => self.failed_to_settle(job, e),
        }
    }

    fn lost_at_end(&mut self, job: &Job<B::Lease>, how: &str) {
        job.line(&format!(
            "{how}; but its lease was lost first, so what becomes of the message is up to its \
             new holder"
        ));
        self.outcomes.lost += 1;
    }

    fn failed_to_settle(&mut self, job: &Job<B::Lease>, e: anyhow::Error) {
        let then = if e.downcast_ref::<NotDurable>().is_some() {
            "it is back in the queue, but a crash could still undo that"
        } else {
            "it returns when its lease expires"
        };
        report(&e.context(format!(
            "settle {} attempt {}; {then}",
            job.lease.id(),
            job.lease.attempt()
        )));
        self.outcomes.unsettled += 1;
        self.broken = true;
    }

    /// Extends each lease that is due, and stops the CMDs whose lease turns out to be lost.
    fn heartbeat(&mut self) {
        let beat = lease::heartbeat(self.lease_ms);
        // The new holder may be running the message already: a CMD whose lease is lost gets
        // no more than a heartbeat's time to stop.
        let lost_grace = Duration::from_millis(self.args.grace.min(beat));
        for job in &mut self.jobs {
            let now = now_ms();
            if job.lost || job.next_beat_ms > now {
                continue;
            }
            match self.q.extend(&job.lease, self.lease_ms) {
                Ok(Some((next, not_durable))) => {
                    job.lease = next;
                    job.next_beat_ms = now + beat;
                    if let Some(nd) = not_durable {
                        // Held all the same, under the new receipt; a crash could undo it.
                        report(&nd.context(format!("extend the lease of {}", job.lease.id())));
                    }
                }
                Ok(None) => {
                    job.line(&format!(
                        "lease lost after {}; another worker may have the message now, so CMD \
                         gets SIGTERM and the message is neither acked nor requeued",
                        seconds(job.started.elapsed())
                    ));
                    job.lost = true;
                    if !job.termed {
                        job.signal(os::SIGTERM);
                    }
                    let at = Instant::now() + lost_grace;
                    job.kill_at = earliest(job.kill_at, Some(at));
                }
                Err(e) => {
                    // The lease still has two heartbeats' worth of time: try again then.
                    report(&e.context(format!("extend the lease of {}", job.lease.id())));
                    job.next_beat_ms = now + beat;
                }
            }
        }
    }

    /// SIGKILL to each CMD whose grace has run out.
    fn kill_overdue(&mut self) {
        let now = Instant::now();
        for job in &mut self.jobs {
            if !job.killed && job.kill_at.is_some_and(|at| at <= now) {
                job.signal(os::SIGKILL);
                job.killed = true;
            }
        }
    }

    /// How long until the next heartbeat or kill is due.
    fn next_deadline(&self) -> Option<Duration> {
        let now_wall = now_ms();
        let now = Instant::now();
        let mut next: Option<Duration> = None;
        for job in &self.jobs {
            if !job.lost {
                let beat = Duration::from_millis(job.next_beat_ms.saturating_sub(now_wall));
                next = earliest(next, Some(beat));
            }
            if let (false, Some(at)) = (job.killed, job.kill_at) {
                next = earliest(next, Some(at.saturating_duration_since(now)));
            }
        }
        next
    }
}

/// Where a released message went; `delay_ms` is the backoff it was given.
fn released(to: &Released, attempt: u32, delay_ms: u64) -> String {
    match to {
        Released::Requeued { .. } if delay_ms == 0 => "requeued".into(),
        Released::Requeued { .. } => {
            format!(
                "requeued, retry in {}",
                crate::duration::format_ms(delay_ms)
            )
        }
        Released::Dead => format!("dead-lettered after its last attempt ({attempt})"),
    }
}

/// `exit 3`, or `killed by SIGSEGV`.
fn exit_text(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("killed by {}", signal_name(sig)),
        _ => "ended".into(),
    }
}

fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {sig}"),
    };
    name.into()
}

fn seconds(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

fn describe(program: &OsString) -> String {
    format!("{:?}", program.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_have_their_names() {
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(64), "signal 64");
        assert_eq!(exit_text(ExitStatus::from_raw(3 << 8)), "exit 3");
        assert_eq!(
            exit_text(ExitStatus::from_raw(libc::SIGSEGV)),
            "killed by SIGSEGV"
        );
    }

    #[test]
    fn sleeps_take_the_shorter_limit() {
        let s = |ms| Some(Duration::from_millis(ms));
        assert_eq!(earliest::<Duration>(None, None), None);
        assert_eq!(earliest(s(5), None), s(5));
        assert_eq!(earliest(None, s(7)), s(7));
        assert_eq!(earliest(s(9), s(7)), s(7));
    }
}

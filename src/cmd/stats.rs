//! `qspool stats`: messages per state, the age of the oldest ready one, and foreign entries.

use crate::cli::StatsArgs;
use crate::duration::format_ms;
use crate::exit::Code;
use crate::spool::scan::{AGE_BOUNDS_S, Counts, State};
use crate::spool::{Spool, now_ms, now_us};
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

#[derive(Serialize)]
struct Report {
    ready: u64,
    delayed: u64,
    leased: u64,
    expired: u64,
    done: u64,
    dead: u64,
    foreign: u64,
    oldest_ready_age_seconds: Option<f64>,
    /// Ready messages by age since first push, youngest first.
    ready_by_age: Vec<AgeBucket>,
}

#[derive(Serialize)]
struct AgeBucket {
    /// Inclusive upper bound of the bucket; null for the last, which has none.
    max_age_seconds: Option<u64>,
    count: u64,
}

pub fn run(root: &Path, args: &StatsArgs) -> Result<Code> {
    let spool = Spool::open(root)?;
    // Retention, opportunistically: stats lists done/ anyway, and a spool without the cron job
    // must not grow without bound. Best effort: stats works on a spool it may not change.
    let _ = spool.expire_done(now_ms(), &mut |_| {});
    let c = spool.count(now_ms())?;
    if args.prometheus {
        let spool_dir = std::path::absolute(root)
            .with_context(|| format!("resolve spool path {}", root.display()))?;
        let text = prometheus(&c, &spool_dir.to_string_lossy(), now_us());
        return match &args.output {
            Some(file) => {
                write_atomically(file, text.as_bytes())
                    .with_context(|| format!("write {}", file.display()))?;
                Ok(Code::Ok)
            }
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .context("write to standard output")?;
                Ok(Code::Ok)
            }
        };
    }
    let age = c
        .oldest_ready_us
        .map(|t| now_us().saturating_sub(t) as f64 / 1e6)
        .map(|s| (s * 1000.0).round() / 1000.0);
    let report = Report {
        ready: c.ready,
        delayed: c.delayed,
        leased: c.leased,
        expired: c.expired,
        done: c.done,
        dead: c.dead,
        foreign: c.foreign,
        oldest_ready_age_seconds: age,
        ready_by_age: c
            .ready_by_age
            .iter()
            .enumerate()
            .map(|(i, &count)| AgeBucket {
                max_age_seconds: AGE_BOUNDS_S.get(i).copied(),
                count,
            })
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    let text = if args.json {
        serde_json::to_string(&report)? + "\n"
    } else {
        human(&report)
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("write to standard output")?;
    Ok(Code::Ok)
}

fn human(r: &Report) -> String {
    let age = match r.oldest_ready_age_seconds {
        // Past a minute, milliseconds are noise.
        Some(s) if s >= 60.0 => format_ms(s as u64 * 1000),
        Some(s) => format_ms((s * 1000.0) as u64),
        None => "-".to_owned(),
    };
    let mut out = format!(
        "ready     {}\ndelayed   {}\nleased    {}\nexpired   {}\ndone      {}\ndead      {}\nforeign   {}\noldest ready age  {age}\n",
        r.ready, r.delayed, r.leased, r.expired, r.done, r.dead, r.foreign
    );
    out.push_str("backlog  ");
    for b in &r.ready_by_age {
        match b.max_age_seconds {
            Some(s) => out.push_str(&format!("<={}:{} ", format_ms(s * 1000), b.count)),
            None => out.push_str(&format!("older:{}", b.count)),
        }
    }
    out.push('\n');
    out
}

/// The node_exporter textfile format (Prometheus text exposition 0.0.4). Every series carries
/// the spool's path, so that several spools on one host make distinct series; a value that
/// does not exist (the oldest age of an empty state) has no sample at all.
fn prometheus(c: &Counts, spool: &str, now_us: u64) -> String {
    let label = format!("spool=\"{}\"", escape_label(spool));
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: &[(Option<&str>, String)]| {
        if samples.is_empty() {
            return;
        }
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (state, value) in samples {
            match state {
                Some(s) => out.push_str(&format!("{name}{{{label},state=\"{s}\"}} {value}\n")),
                None => out.push_str(&format!("{name}{{{label}}} {value}\n")),
            }
        }
    };
    let per_state = |f: &dyn Fn(State) -> Option<String>| -> Vec<(Option<&str>, String)> {
        State::ALL
            .iter()
            .filter_map(|&s| f(s).map(|v| (Some(s.name()), v)))
            .collect()
    };
    family(
        "qspool_messages",
        "Messages in the spool, by state.",
        &per_state(&|s| Some(c.of(s).to_string())),
    );
    family(
        "qspool_bytes",
        "Payload bytes of the messages in the spool, by state.",
        &per_state(&|s| Some(c.bytes[s as usize].to_string())),
    );
    family(
        "qspool_oldest_message_age_seconds",
        "Time since the oldest message in each state was first pushed.",
        &per_state(&|s| {
            c.oldest_us[s as usize].map(|t| format!("{:.3}", now_us.saturating_sub(t) as f64 / 1e6))
        }),
    );
    family(
        "qspool_foreign_entries",
        "Entries in the spool that are not messages (see qspool stats).",
        &[(None, c.foreign.to_string())],
    );
    out
}

/// A label value as the exposition format wants it: backslash, double quote and newline
/// escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Replaces `file` with `text` in one rename, so that a collector reading it never sees half a
/// file. The temporary file is beside it (a rename does not cross filesystems) and its name
/// does not end in `.prom`, which the textfile collector would read.
fn write_atomically(file: &Path, text: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let name = file
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = file.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&tmp)?;
        // The collector runs as another user: 0644 whatever the umask. No payload is in here.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"/a"b\c"#), r#"/a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
    }

    #[test]
    fn an_empty_spool_has_counts_but_no_ages() {
        let text = prometheus(&Counts::default(), "/s", 0);
        assert!(text.contains("qspool_messages{spool=\"/s\",state=\"ready\"} 0\n"));
        assert!(!text.contains("qspool_oldest_message_age_seconds"));
        assert!(text.contains("qspool_foreign_entries{spool=\"/s\"} 0\n"));
    }
}

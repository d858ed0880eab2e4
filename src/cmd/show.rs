//! `qspool show`: one message's payload, found by its id in any state, read without a lease.

use super::parse_ids;
use crate::cli::ShowArgs;
use crate::encode::json::{CHUNK, write_json};
use crate::encode::{rfc3339_ms, rfc3339_us};
use crate::exit::{Code, NotFound};
use crate::spool::lease;
use crate::spool::name::{Bucket, Ended, Id, Leased, Ready};
use crate::spool::scan::State;
use crate::spool::{Dir, Spool, at, durable, now_ms};
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A message as its name describes it, and where that name is.
#[derive(Debug)]
struct Found {
    state: State,
    /// Leases so far (ready, delayed, done, dead), or this lease's number (leased, expired).
    attempts: u32,
    /// Visible-at (ready, delayed), lease expiry (leased, expired) or finish time (done, dead).
    at_ms: u64,
    /// Its state directory, and in `new/` its bucket's visible-at.
    dir: Dir,
    bucket_ms: Option<u64>,
    name: String,
    /// For messages only.
    path: PathBuf,
}

pub fn run(root: &Path, args: &ShowArgs) -> Result<Code> {
    let id = parse_ids(std::slice::from_ref(&args.id))?.remove(0);
    let spool = Spool::open(root)?;
    let (found, mut file) = open(&spool, &id)?;
    // Errors past this point name the message by its id, not its path: a leased message's
    // file name is its receipt, and show must not hand that out.
    let name = format!("message {id}");
    let mut out = crate::exit::stdout()?;
    if args.json {
        let size = file
            .metadata()
            .with_context(|| format!("read {name}"))?
            .len();
        write_json(&mut out, &mut file, size, &head(&id, &found)?, &name, CHUNK)?;
    } else {
        io::copy(&mut file, &mut out)
            .with_context(|| format!("write {name} to standard output"))?;
    }
    out.flush().context("write to standard output")?;
    Ok(Code::Ok)
}

/// Finds the message and opens its file. A file gone by the time it is opened was moved by
/// another process (leased, acked, requeued...): one more look finds it where it went.
fn open(spool: &Spool, id: &Id) -> Result<(Found, File)> {
    for _ in 0..2 {
        let Some(found) = find(spool, id, now_ms())? else {
            break;
        };
        let opened = match found.bucket_ms {
            Some(ms) => durable::open_bucket(spool.fd(Dir::New), &Bucket::of(ms).parts())
                .and_then(|leaf| durable::open_message(&leaf, &found.name)),
            None => durable::open_message(spool.fd(found.dir), &found.name),
        };
        match opened {
            Ok((file, _)) => return Ok((found, file)),
            Err(e) if durable::is_missing(&e) => continue,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("open {}", found.path.display())));
            }
        }
    }
    Err(NotFound(format!(
        "{}: no message with id {id}",
        spool.root().display()
    ))
    .into())
}

/// Looks for `id` in every state at `now`. The states are visited in the order messages move
/// through them (new/, leased/, then done/ and dead/), so that a message moving on while we
/// look is still met in one of them. Of several finds (a damaged spool, or that race), the one
/// furthest along wins.
fn find(spool: &Spool, id: &Id, now: u64) -> Result<Option<Found>> {
    let mut found = Vec::new();
    let new_dir = spool.dir(Dir::New);
    spool.scan_new_tree(now, &mut |m| {
        let Some(m) = m.filter(|m| m.id == *id) else {
            return;
        };
        // The scan took only names of the grammar lying in the bucket of their visible-at
        // time, so the name rebuilt from its fields is the one it saw, byte for byte.
        let name = Ready {
            id: m.id,
            attempts: m.attempts,
            visible_ms: m.at_ms,
        };
        found.push(Found {
            state: m.state,
            attempts: m.attempts,
            at_ms: m.at_ms,
            dir: Dir::New,
            bucket_ms: Some(m.at_ms),
            path: new_dir
                .join(name.bucket().rel_path())
                .join(name.to_string()),
            name: name.to_string(),
        });
    })?;
    // leased/, done/ and dead/ are matched by name only, plain files or not: an entry that is
    // not a plain file is then refused by `open_message`, with its path, rather than missed.
    let leased_dir = spool.dir(Dir::Leased);
    for name in names_with_id(spool, Dir::Leased, id)? {
        if let Ok(l) = Leased::parse(&name) {
            found.push(Found {
                state: if lease::is_expired(l.expires_ms, now) {
                    State::Expired
                } else {
                    State::Leased
                },
                attempts: l.attempt,
                at_ms: l.expires_ms,
                dir: Dir::Leased,
                bucket_ms: None,
                path: leased_dir.join(&name),
                name,
            });
        }
    }
    for (d, state) in [(Dir::Done, State::Done), (Dir::Dead, State::Dead)] {
        let dir = spool.dir(d);
        for name in names_with_id(spool, d, id)? {
            if let Ok(e) = Ended::parse(&name) {
                found.push(Found {
                    state,
                    attempts: e.attempts,
                    at_ms: e.at_ms,
                    dir: d,
                    bucket_ms: None,
                    path: dir.join(&name),
                    name,
                });
            }
        }
    }
    let key = |f: &Found| (progress(f.state), f.at_ms, f.path.clone());
    Ok(found.into_iter().max_by_key(key))
}

/// How far along its life a message in `state` is: done beats dead beats a lease beats `new/`.
fn progress(state: State) -> u8 {
    match state {
        State::Ready | State::Delayed => 0,
        State::Leased | State::Expired => 1,
        State::Dead => 2,
        State::Done => 3,
    }
}

/// The names in `dir` that start with `id` and a comma: the only ones that can be its
/// message. Only those are kept, so that a big done/ costs a listing and no more.
fn names_with_id(spool: &Spool, d: Dir, id: &Id) -> Result<Vec<String>> {
    let mut names = Vec::new();
    at::for_each(spool.fd(d), |name, _| {
        if let Some(name) = name.filter(|n| {
            n.strip_prefix(id.as_str())
                .is_some_and(|rest| rest.starts_with(','))
        }) {
            names.push(name.to_owned());
        }
    })
    .with_context(|| format!("list {}", spool.dir(d).display()))?;
    Ok(names)
}

/// The fields of a `show --json` object that come before `size`, in their order of output.
/// There is no receipt: show is not a way to take over someone's lease.
fn head(id: &Id, found: &Found) -> Result<Vec<(&'static str, String)>> {
    let at_key = match found.state {
        State::Ready | State::Delayed => "visible_at",
        State::Leased | State::Expired => "lease_expires_at",
        State::Done | State::Dead => "finished_at",
    };
    Ok(vec![
        ("id", serde_json::to_string(id.as_str())?),
        ("state", serde_json::to_string(found.state.name())?),
        ("attempt", serde_json::to_string(&found.attempts)?),
        (
            "enqueued_at",
            serde_json::to_string(&rfc3339_us(id.enqueued_us()))?,
        ),
        (at_key, serde_json::to_string(&rfc3339_ms(found.at_ms))?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// `show --json` as serde_json would print it whole: the streamed object must match it.
    #[derive(serde::Serialize)]
    struct Shown<'a> {
        id: &'a str,
        state: &'a str,
        attempt: u32,
        enqueued_at: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        visible_at: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        lease_expires_at: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        finished_at: Option<String>,
        size: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        body: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        body_base64: Option<String>,
    }

    #[test]
    fn the_json_object_is_what_serde_json_makes_of_it_in_every_state() {
        let id = Id::parse("1795828985009846.1435.00000000.2470bf32.vm").unwrap();
        let at_ms = 1_795_829_015_009;
        for state in State::ALL {
            for payload in [&b"text \"quoted\"\n\xc3\xa9"[..], b"\xff\x00binary", b""] {
                let found = Found {
                    state,
                    attempts: 2,
                    at_ms,
                    dir: Dir::Done,
                    bucket_ms: None,
                    name: "x".into(),
                    path: PathBuf::from("done/x"),
                };
                let mut got = Vec::new();
                let head = head(&id, &found).unwrap();
                let size = payload.len() as u64;
                write_json(&mut got, &mut Cursor::new(payload), size, &head, "x", 3).unwrap();

                let at = Some(rfc3339_ms(at_ms));
                let text = std::str::from_utf8(payload).ok();
                let mut want = Shown {
                    id: id.as_str(),
                    state: state.name(),
                    attempt: 2,
                    enqueued_at: rfc3339_us(id.enqueued_us()),
                    visible_at: None,
                    lease_expires_at: None,
                    finished_at: None,
                    size: payload.len(),
                    body: text,
                    body_base64: text.is_none().then(|| crate::encode::base64(payload)),
                };
                match state {
                    State::Ready | State::Delayed => want.visible_at = at,
                    State::Leased | State::Expired => want.lease_expires_at = at,
                    State::Done | State::Dead => want.finished_at = at,
                }
                let mut want = serde_json::to_vec(&want).unwrap();
                want.push(b'\n');
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{state:?}"
                );
            }
        }
    }
}

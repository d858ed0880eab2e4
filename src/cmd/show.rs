//! `qspool show`: one message's payload, found by its id in any state, read without a lease.

use super::list::KeyTexts;
use super::parse_ids;
use crate::cli::ShowArgs;
use crate::encode::json::{CHUNK, write_json};
use crate::encode::{rfc3339_ms, rfc3339_us};
use crate::exit::{Code, not_found};
use crate::spool::name::Id;
use crate::spool::scan::{Named, State};
use crate::spool::{Spool, durable, now_ms, uses};
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

pub fn run(root: &Path, args: &ShowArgs) -> Result<Code> {
    let id = parse_ids(std::slice::from_ref(&args.id))?.remove(0);
    let spool = Spool::open(root, uses::MESSAGES)?;
    let (found, mut file) = open(&spool, &id)?;
    // Errors past this point name the message by its id, not its path: a leased message's
    // file name is its receipt, and show must not hand that out.
    let name = format!("message {id}");
    let mut out = crate::output::stdout()?;
    if args.json {
        let size = file
            .metadata()
            .with_context(|| format!("read {name}"))?
            .len();
        write_json(
            &mut out,
            &mut file,
            size,
            &head(&id, &found, KeyTexts::new(&spool).of(found.1.key()))?,
            &name,
            CHUNK,
        )?;
    } else {
        io::copy(&mut file, &mut out)
            .with_context(|| format!("write {name} to standard output"))?;
    }
    out.flush().context("write to standard output")?;
    Ok(Code::Ok)
}

/// Finds the message and opens its file. A file gone by the time it is opened was moved by
/// another process (leased, acked, requeued...): one more look finds it where it went.
fn open(spool: &Spool, id: &Id) -> Result<((State, Named), File)> {
    for _ in 0..2 {
        let Some(found) = spool.find(id, now_ms())? else {
            break;
        };
        match spool.open_payload(&found.1) {
            Ok((file, _)) => return Ok((found, file)),
            Err(e) if durable::is_missing(&e) => continue,
            Err(e) => {
                let path = spool.path_of(&found.1);
                return Err(anyhow::Error::new(e).context(format!("open {}", path.display())));
            }
        }
    }
    Err(not_found(format!(
        "{}: no message with id {id}",
        spool.root().display()
    )))
}

/// The fields of a `show --json` object that come before `size`, in their order of output.
/// There is no receipt: show is not a way to take over someone's lease.
fn head(
    id: &Id,
    (state, found): &(State, Named),
    key: Option<Option<String>>,
) -> Result<Vec<(&'static str, String)>> {
    show_head(
        id,
        *state,
        found.attempts(),
        found.named_ms(),
        id.enqueued_us(),
        key,
    )
}

/// `show --json`'s leading fields, shared by every backend.
pub(crate) fn show_head(
    id: &Id,
    state: State,
    attempts: u32,
    at_ms: u64,
    enqueued_us: u64,
    key: Option<Option<String>>,
) -> Result<Vec<(&'static str, String)>> {
    let at_key = match state {
        State::Ready | State::Delayed => "visible_at",
        State::Leased | State::Expired => "lease_expires_at",
        State::Done | State::Dead => "finished_at",
    };
    let mut fields = vec![
        ("id", serde_json::to_string(id.as_str())?),
        ("state", serde_json::to_string(state.name())?),
        ("attempt", serde_json::to_string(&attempts)?),
        (
            "enqueued_at",
            serde_json::to_string(&rfc3339_us(enqueued_us))?,
        ),
        (at_key, serde_json::to_string(&rfc3339_ms(at_ms))?),
    ];
    if let Some(key) = key {
        fields.push(("key", serde_json::to_string(&key)?));
    }
    Ok(fields)
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
        /// The one time the message's state has, under that state's key.
        #[serde(flatten)]
        at: std::collections::BTreeMap<&'static str, String>,
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
                let named = Named::Done(crate::spool::name::Ended {
                    id: id.clone(),
                    attempts: 2,
                    at_ms,
                    key: None,
                    group: None,
                });
                let found = (state, named);
                let mut got = Vec::new();
                let head = head(&id, &found, None).unwrap();
                let size = payload.len() as u64;
                write_json(&mut got, &mut Cursor::new(payload), size, &head, "x", 3).unwrap();

                let at_key = match state {
                    State::Ready | State::Delayed => "visible_at",
                    State::Leased | State::Expired => "lease_expires_at",
                    State::Done | State::Dead => "finished_at",
                };
                let text = std::str::from_utf8(payload).ok();
                let want = Shown {
                    id: id.as_str(),
                    state: state.name(),
                    attempt: 2,
                    enqueued_at: rfc3339_us(id.enqueued_us()),
                    at: [(at_key, rfc3339_ms(at_ms))].into(),
                    size: payload.len(),
                    body: text,
                    body_base64: text.is_none().then(|| crate::encode::base64(payload)),
                };
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

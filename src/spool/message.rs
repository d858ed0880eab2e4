//! One message by its name: finding it by id, opening its payload, removing it for good, and
//! tidying what crashed pushes left in `tmp/`. Commands reach messages only through these.

use super::durable::{self, is_missing};
use super::name::{Ended, Id, Ready};
use super::scan::{Named, State};
use super::{Dir, Spool, TMP_MAX_AGE, at};
use anyhow::{Context, Result};
use std::fs::File;
use std::io;
use std::path::PathBuf;

impl Spool {
    /// A message's path, for what is said to people only: every access goes through the
    /// spool's descriptors.
    pub fn path_of(&self, m: &Named) -> PathBuf {
        match m {
            Named::Ready(r) => self
                .dir(Dir::New)
                .join(r.bucket().rel_path())
                .join(r.to_string()),
            Named::Leased(l) => self.found_lease_path(l),
            _ => self.dir(m.dir()).join(m.file_name()),
        }
    }

    /// Opens a message's payload for reading, and says how big it is: a plain, singly linked
    /// file only. `NotFound` when it is no longer there (moved by another process).
    pub fn open_payload(&self, m: &Named) -> io::Result<(File, u64)> {
        match m {
            Named::Ready(r) => {
                let leaf = durable::open_bucket(self.fd(Dir::New)?, &r.bucket().parts())?;
                durable::open_message(&leaf, &r.to_string())
            }
            Named::Leased(l) => self.open_leased(l),
            _ => durable::open_message(self.fd(m.dir())?, &m.file_name()),
        }
    }

    /// `lstat` of a message's file where its name says it is. `NotFound` when it is not there.
    pub fn stat_message(&self, m: &Named) -> io::Result<at::Stat> {
        match m {
            Named::Ready(r) => {
                let leaf = durable::open_bucket(self.fd(Dir::New)?, &r.bucket().parts())?;
                at::stat(&leaf, &r.to_string())
            }
            Named::Leased(l) => match self.lease_dir(l) {
                Ok(Some(dir)) => at::stat(&dir, &l.to_string()),
                Ok(None) => Err(io::ErrorKind::NotFound.into()),
                Err(e) => Err(io::Error::other(format!("{e:#}"))),
            },
            _ => at::stat(self.fd(m.dir())?, &m.file_name()),
        }
    }

    /// Deletes a message for good, if it is a plain file: a foreign entry under its name is
    /// refused (`InvalidData`), one already gone is `NotFound`.
    pub fn remove(&self, m: &Named) -> io::Result<()> {
        self.remove_file(m)?;
        self.key_purged(m.key(), m.id());
        if let Some(g) = m.group() {
            self.group_ended(g, m.id());
        }
        Ok(())
    }

    fn remove_file(&self, m: &Named) -> io::Result<()> {
        match m {
            Named::Ready(r) => {
                let leaf = durable::open_bucket(self.fd(Dir::New)?, &r.bucket().parts())?;
                durable::remove_plain(&leaf, &r.to_string())
            }
            Named::Leased(l) => match self.lease_dir(l) {
                Ok(Some(dir)) => durable::remove_plain(&dir, &l.to_string()),
                Ok(None) => Err(io::ErrorKind::NotFound.into()),
                Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("{e:#}"))),
            },
            _ => durable::remove_plain(self.fd(m.dir())?, &m.file_name()),
        }
    }

    /// The names of our grammar in `done/` (or with `dead`, `dead/`), by name only: a foreign
    /// file under one of them is then refused by whatever is done with it, not passed over.
    pub fn list_ended(&self, dead: bool) -> Result<Vec<Named>> {
        let names = self.list_names(if dead { Dir::Dead } else { Dir::Done })?;
        Ok(names
            .iter()
            .filter_map(|n| Ended::parse(n).ok())
            .map(|e| if dead { Named::Dead(e) } else { Named::Done(e) })
            .collect())
    }

    /// Looks for `id` in every state at `now`, with the message's state then. The states are
    /// visited in the order messages move through them (`new/`, `leased/`, then `done/` and
    /// `dead/`), so that a message moving on while we look is still met in one of them. Of
    /// several finds (a damaged spool, or that race), the one furthest along wins.
    pub fn find(&self, id: &Id, now: u64) -> Result<Option<(State, Named)>> {
        let mut found = Vec::new();
        self.scan_new_tree(now, &mut |m| {
            if let Some(m) = m.filter(|m| m.id() == id) {
                found.push((m.state, m.name));
            }
        })?;
        // leased/, done/ and dead/ are matched by name only, plain files or not: an entry that
        // is not a plain file is then refused by `open_payload`, with its path, rather than
        // missed.
        self.walk_leases(None, None, &mut |e| {
            if let Some(l) = e.lease.filter(|l| &l.id == id) {
                let named = Named::Leased(l);
                found.push((named.state_at(now), named));
            }
            Ok(())
        })?;
        for d in [Dir::Done, Dir::Dead] {
            for name in self.names_with_id(d, id)? {
                let named = Ended::parse(&name).ok().map(|e| {
                    if d == Dir::Done {
                        Named::Done(e)
                    } else {
                        Named::Dead(e)
                    }
                });
                if let Some(named) = named {
                    found.push((named.state_at(now), named));
                }
            }
        }
        let key = |(s, m): &(State, Named)| (progress(*s), m.named_ms(), self.path_of(m));
        Ok(found.into_iter().max_by_key(key))
    }

    /// The names in state directory `d` that start with `id` and a comma: the only ones that
    /// can be its message. Only those are kept, so that a big `done/` costs a listing and no
    /// more.
    fn names_with_id(&self, d: Dir, id: &Id) -> Result<Vec<String>> {
        let mut names = Vec::new();
        at::for_each(self.fd(d)?, |name, _| {
            if let Some(name) = name.filter(|n| {
                n.strip_prefix(id.as_str())
                    .is_some_and(|rest| rest.starts_with(','))
            }) {
                names.push(name.to_owned());
            }
        })
        .with_context(|| format!("list {}", self.dir(d).display()))?;
        Ok(names)
    }

    /// Removes what crashed pushes left in `tmp/`: files under our own names, plain, not
    /// modified for at least `TMP_MAX_AGE` at `now` (Maildir's rule). A foreign file there is
    /// never deleted. Each removed file's path goes to `removed`.
    pub fn tidy_tmp(&self, now: u64, removed: &mut dyn FnMut(PathBuf) -> Result<()>) -> Result<()> {
        let tmp = self.fd(Dir::Tmp)?;
        for name in self.list_names(Dir::Tmp)? {
            if Ready::parse(&name).is_err() {
                continue;
            }
            let path = self.dir(Dir::Tmp).join(&name);
            let Ok(st) = durable::lstat_plain(tmp, &name) else {
                continue;
            };
            if st.mtime_ms.saturating_add(TMP_MAX_AGE.as_millis() as u64) > now {
                continue;
            }
            match at::unlink(tmp, &name) {
                Ok(()) => removed(path)?,
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(e).with_context(|| format!("remove {}", path.display())),
            }
        }
        Ok(())
    }

    /// A state directory's path, for a command's "not there" message: where it looked.
    pub fn state_path(&self, d: Dir) -> PathBuf {
        self.dir(d)
    }

    /// The directory whose change is the doorbell (FORMAT.md §5.2): what waiters watch.
    pub fn doorbell_path(&self) -> PathBuf {
        self.dir(Dir::New)
    }
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

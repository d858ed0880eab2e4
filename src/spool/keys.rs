//! Dedup keys (`push --key`): one record per key in `keys/`, named by the key's hash, locked
//! while a push decides, and saying where the message that holds the key was last seen.
//!
//! The record is a pointer, not the truth: the messages' own names are. A push that finds
//! the record's file where the record says believes it at the cost of one `fstatat`; one that
//! does not looks the id up in every state (`Spool::find`), which is slow but only follows a
//! crash or a race. Every move of a keyed message rewrites the record afterwards, best effort,
//! so that the slow path stays rare (FORMAT.md §2.5).

use super::durable::{self, is_missing};
use super::name::{Ended, Id, KeyHash, Leased, Ready};
use super::scan::State;
use super::{Spool, at};
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// The longest key, in bytes: SQS's limit on a deduplication id.
pub const MAX_KEY_LEN: usize = 128;
/// The directory of key records, in the spool's root.
pub const DIR_NAME: &str = "keys";
const MAGIC: &str = "qspool-key 1";
/// The longest record: the header line and the key. Anything longer is refused unread.
const MAX_RECORD: usize = 512;

/// Where a record says the key's message is: the state and the file's name there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    New(Ready),
    Leased(Leased),
    Done(Ended),
    Dead(Ended),
    /// Purged: it is in no state at all.
    Gone(Id),
}

impl Place {
    pub fn id(&self) -> &Id {
        match self {
            Place::New(r) => &r.id,
            Place::Leased(l) => &l.id,
            Place::Done(e) | Place::Dead(e) => &e.id,
            Place::Gone(id) => id,
        }
    }

    /// The key hash its name carries (none for `Gone`, which has only an id).
    fn key(&self) -> Option<KeyHash> {
        match self {
            Place::New(r) => r.key,
            Place::Leased(l) => l.key,
            Place::Done(e) | Place::Dead(e) => e.key,
            Place::Gone(_) => None,
        }
    }

    fn tag(&self) -> &'static str {
        match self {
            Place::New(_) => "new",
            Place::Leased(_) => "leased",
            Place::Done(_) => "done",
            Place::Dead(_) => "dead",
            Place::Gone(_) => "gone",
        }
    }

    fn name(&self) -> String {
        match self {
            Place::New(r) => r.to_string(),
            Place::Leased(l) => l.to_string(),
            Place::Done(e) | Place::Dead(e) => e.to_string(),
            Place::Gone(id) => id.to_string(),
        }
    }

    fn parse(tag: &str, name: &str) -> Option<Place> {
        Some(match tag {
            "new" => Place::New(Ready::parse(name).ok()?),
            "leased" => Place::Leased(Leased::parse(name).ok()?),
            "done" => Place::Done(Ended::parse(name).ok()?),
            "dead" => Place::Dead(Ended::parse(name).ok()?),
            "gone" => Place::Gone(Id::parse(name).ok()?),
            _ => return None,
        })
    }
}

/// A record's content: where its message is, and the key it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub place: Place,
    pub key: Vec<u8>,
}

impl Record {
    /// `qspool-key 1 <state> <name> <key length>\n<key>`. The length makes a tail left by a
    /// longer earlier record (or a torn write) harmless.
    pub fn format(&self) -> Vec<u8> {
        let mut out = format!(
            "{MAGIC} {} {} {}\n",
            self.place.tag(),
            self.place.name(),
            self.key.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.key);
        out
    }

    /// `None` for anything that is not a whole record.
    pub fn parse(text: &[u8]) -> Option<Record> {
        let nl = text.iter().position(|&b| b == b'\n')?;
        let head = std::str::from_utf8(&text[..nl]).ok()?;
        let rest = head.strip_prefix(MAGIC)?.strip_prefix(' ')?;
        let mut f = rest.split(' ');
        let (tag, name, len) = (f.next()?, f.next()?, f.next()?);
        if f.next().is_some() {
            return None;
        }
        let len: usize = len
            .parse()
            .ok()
            .filter(|&n| (1..=MAX_KEY_LEN).contains(&n))?;
        let key = text.get(nl + 1..nl + 1 + len)?.to_vec();
        let place = Place::parse(tag, name)?;
        // A record whose name carries another key's hash is not this key's.
        let hash = match &place {
            Place::Gone(_) => Some(KeyHash::of(&key)),
            p => p.key(),
        };
        (hash == Some(KeyHash::of(&key))).then_some(Record { place, key })
    }
}

/// What a record alone says of its key at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Held by the record's message: acked less than the window ago.
    Held,
    /// Free: its message is dead, purged, or was acked at least the window ago.
    Free,
    /// Held if the message is still where the record says: one `fstatat` tells.
    Look,
}

/// The pure part of the decision: acked messages hold their key for `window_ms` after the
/// ack, whether or not they are still in `done/`; dead and purged ones hold it no more.
pub fn judge(place: &Place, now: u64, window_ms: u64) -> Verdict {
    match place {
        Place::Done(e) if e.at_ms.saturating_add(window_ms) > now => Verdict::Held,
        Place::Done(_) | Place::Dead(_) | Place::Gone(_) => Verdict::Free,
        Place::New(_) | Place::Leased(_) => Verdict::Look,
    }
}

/// Whether a message found in `state`, its name carrying the time `named_ms`, holds its key.
pub fn holds(state: State, named_ms: u64, now: u64, window_ms: u64) -> bool {
    match state {
        State::Ready | State::Delayed | State::Leased | State::Expired => true,
        State::Done => named_ms.saturating_add(window_ms) > now,
        State::Dead => false,
    }
}

/// Checks a key given on the command line.
pub fn check_key(key: &[u8]) -> std::result::Result<(), String> {
    if key.is_empty() {
        return Err("a key is 1 to 128 bytes; this one is empty".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "a key is 1 to {MAX_KEY_LEN} bytes; this one is {}",
            key.len()
        ));
    }
    Ok(())
}

/// A key's record, open and locked (`flock`) for as long as this lives: the push that holds
/// it decides alone whether the key is free, and makes its message durable before anyone else
/// may decide. The kernel drops the lock of a process that dies.
pub struct Claim {
    file: File,
    hash: KeyHash,
    key: Vec<u8>,
    path: PathBuf,
    sync: bool,
}

impl Claim {
    pub fn hash(&self) -> KeyHash {
        self.hash
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The id of the message that holds the key at `now`, if one does. A record of another key
    /// under this hash (a collision) is an error: the push is refused rather than mistaken for
    /// a duplicate.
    pub fn holder(&self, spool: &Spool, now: u64) -> Result<Option<Id>> {
        let text = read_record(&self.file).with_context(|| self.path.display().to_string())?;
        if text.is_empty() {
            return Ok(None);
        }
        let Some(rec) = Record::parse(&text) else {
            // Torn by a crash mid-write, or foreign: nothing to go by, so the key is free.
            return Ok(None);
        };
        if rec.key != self.key {
            bail!(
                "{}: records another key with the same hash; refusing to push under this key",
                self.path.display()
            );
        }
        let window = spool.config.dedup_window_ms;
        let look = match judge(&rec.place, now, window) {
            Verdict::Held => return Ok(Some(rec.place.id().clone())),
            Verdict::Free => return Ok(None),
            Verdict::Look => spool.is_at(&rec.place)?,
        };
        if look {
            return Ok(Some(rec.place.id().clone()));
        }
        // Moved without a record of it (a crash, or a move racing us): find it.
        let id = rec.place.id().clone();
        Ok(match spool.find(&id, now)? {
            Some((state, named)) if holds(state, named.named_ms(), now, window) => {
                let _ = self.write(&place_of(&named));
                Some(id)
            }
            _ => None,
        })
    }

    /// Records `place` as where the key's message is, durably unless the push is `--no-sync`:
    /// before the message becomes visible, so that a key is never held by a message that is
    /// not recorded.
    pub fn record(&self, place: Place) -> Result<()> {
        self.write(&place)
            .with_context(|| format!("write {}", self.path.display()))?;
        if self.sync {
            self.file
                .sync_data()
                .with_context(|| format!("sync {}", self.path.display()))?;
        }
        Ok(())
    }

    fn write(&self, place: &Place) -> io::Result<()> {
        write_record(&self.file, place.clone(), self.key.clone())
    }
}

/// Replaces a record's content in place: one `pwrite` at offset 0, then the length (the file
/// is locked, and its inode is what the lock is on, so it is never replaced by a rename).
fn write_record(file: &File, place: Place, key: Vec<u8>) -> io::Result<()> {
    let text = Record { place, key }.format();
    file.write_all_at(&text, 0)?;
    file.set_len(text.len() as u64)
}

/// The place of a message found by a scan, for its record.
fn place_of(named: &super::scan::Named) -> Place {
    use super::scan::Named;
    match named {
        Named::Ready(r) => Place::New(r.clone()),
        Named::Leased(l) => Place::Leased(l.clone()),
        Named::Done(e) => Place::Done(e.clone()),
        Named::Dead(e) => Place::Dead(e.clone()),
    }
}

fn read_record(file: &File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; MAX_RECORD + 1];
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // Longer than any record: no record (it does not parse), which a push then replaces.
    buf.truncate(n.min(MAX_RECORD));
    Ok(buf)
}

impl Spool {
    /// Opens (making it when missing) and locks the record of `key`. Waits while another push
    /// of the same key decides.
    pub fn claim_key(&self, key: &[u8], sync: bool) -> Result<Claim> {
        let hash = KeyHash::of(key);
        let dir = self.keys_dir(true)?.context("keys/ is missing")?;
        let name = hash.hex();
        let path = self.root().join(DIR_NAME).join(&name);
        loop {
            let file = open_record(dir, &name, true).map_err(|e| refusal(e, &path))?;
            file.lock()
                .with_context(|| format!("lock {}", path.display()))?;
            // Removed (by `expire_keys`) between our open and our lock: that inode is no
            // longer the key's record.
            let st = at::fstat(&file).with_context(|| format!("stat {}", path.display()))?;
            if st.nlink == 0 {
                continue;
            }
            return Ok(Claim {
                file,
                hash,
                key: key.to_vec(),
                path,
                sync,
            });
        }
    }

    /// Whether a recorded place's file is there: one `fstatat`.
    fn is_at(&self, place: &Place) -> Result<bool> {
        let m = match place {
            Place::New(r) => super::scan::Named::Ready(r.clone()),
            Place::Leased(l) => super::scan::Named::Leased(l.clone()),
            _ => return Ok(false),
        };
        match self.stat_message(&m) {
            Ok(st) => Ok(st.is_file()),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("stat {}", self.path_of(&m).display())),
        }
    }

    /// After a keyed message moved to `place`: points its key's record there, if the record
    /// is still this message's. Best effort: a record left behind only costs the next push of
    /// the key a lookup.
    pub(crate) fn key_moved(&self, place: Place) {
        if let Some(hash) = place.key() {
            let id = place.id().clone();
            self.repoint(hash, &id, place);
        }
    }

    /// Whether a `done` or `dead` place's file is still there (an error counts as there).
    fn ended_file_exists(&self, place: &Place) -> bool {
        let m = match place {
            Place::Done(e) => super::scan::Named::Done(e.clone()),
            Place::Dead(e) => super::scan::Named::Dead(e.clone()),
            _ => return false,
        };
        !matches!(self.stat_message(&m), Err(e) if is_missing(&e))
    }

    /// Before a replay moves keyed message `ready` back into `new/`: its key's record, locked,
    /// already pointing at where the message is going, so that a push of the key meanwhile
    /// waits and then finds it held. Hold what is returned until the move is done. `None`
    /// when the record is gone or now names another message (which took the key meanwhile).
    pub(crate) fn key_replaying(&self, ready: &Ready) -> Option<File> {
        self.repoint(ready.key?, &ready.id, Place::New(ready.clone()))
    }

    /// A purged message's key is free at once.
    pub(crate) fn key_purged(&self, hash: Option<KeyHash>, id: &Id) {
        if let Some(hash) = hash {
            self.repoint(hash, id, Place::Gone(id.clone()));
        }
    }

    /// Rewrites key `hash`'s record to `place`, under its lock, if the record still names
    /// message `id`; returns the record, still locked, when it did. Never makes a record:
    /// one that is gone stays gone.
    fn repoint(&self, hash: KeyHash, id: &Id, place: Place) -> Option<File> {
        let dir = self.keys_dir(false).ok()??;
        let file = open_record(dir, &hash.hex(), false).ok()?;
        file.lock().ok()?;
        let rec = Record::parse(&read_record(&file).ok()?)?;
        // Removed by `expire_keys` between our open and our lock: no longer the record.
        if rec.place.id() != id || at::fstat(&file).ok()?.nlink == 0 {
            return None;
        }
        write_record(&file, place, rec.key).ok()?;
        Some(file)
    }

    /// The key that `hash` stands for, from its record; `None` when the record is gone or
    /// unreadable (the message's names still carry the hash).
    pub fn key_text(&self, hash: KeyHash) -> Option<Vec<u8>> {
        let dir = self.keys_dir(false).ok()??;
        let file = open_record(dir, &hash.hex(), false).ok()?;
        let rec = Record::parse(&read_record(&file).ok()?)?;
        (KeyHash::of(&rec.key) == hash).then_some(rec.key)
    }

    /// Removes the records of keys that are free by their record alone at `now` (dead,
    /// purged, or acked at least the window ago), so that `keys/` holds about the keys in use.
    /// A record another process holds locked is left for the next time. Returns how many went.
    pub fn expire_keys(&self, now: u64) -> Result<usize> {
        let Some(dir) = self.keys_dir(false)? else {
            return Ok(0);
        };
        let mut removed = 0;
        for name in at::names(dir).context("list keys/")? {
            if KeyHash::parse_hex(&name).is_err() {
                continue;
            }
            let Ok(file) = open_record(dir, &name, false) else {
                continue;
            };
            if file.try_lock().is_err() {
                continue;
            }
            // Kept while the message's file is still in done/ or dead/: a replay brings it
            // back with its key, and must find the record to take the key again.
            let free = match read_record(&file).ok().and_then(|t| Record::parse(&t)) {
                Some(rec) => {
                    judge(&rec.place, now, self.config.dedup_window_ms) == Verdict::Free
                        && !self.ended_file_exists(&rec.place)
                }
                None => false,
            };
            if free && at::unlink(dir, &name).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Opens a key record, never through a link, and only a plain file.
fn open_record(dir: &File, name: &str, create: bool) -> io::Result<File> {
    let mut flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    if create {
        flags |= libc::O_CREAT;
    }
    let not_plain = || io::Error::new(io::ErrorKind::InvalidData, "not a plain file");
    let file = match at::open(Some(dir), &at::c_name(name)?, flags, durable::FILE_MODE) {
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => return Err(not_plain()),
        r => r?,
    };
    if !at::fstat(&file)?.is_file() {
        return Err(not_plain());
    }
    Ok(file)
}

/// One line naming the record and why it cannot be used.
fn refusal(e: io::Error, path: &std::path::Path) -> anyhow::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        return anyhow::anyhow!("{}: a symbolic link; refusing to follow it", path.display());
    }
    anyhow::Error::new(e).context(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Id {
        Id::parse("1795833091123456.4242.00000007.deadbeef.box-1").unwrap()
    }

    #[test]
    fn records_round_trip_and_a_tail_past_the_key_is_ignored() {
        let key = b"order-1234".to_vec();
        let hash = Some(KeyHash::of(&key));
        let places = [
            Place::New(Ready {
                id: id(),
                attempts: 0,
                visible_ms: 1_795_833_091_120,
                key: hash,
                group: None,
            }),
            Place::Leased(Leased {
                id: id(),
                attempt: 2,
                expires_ms: 1_795_833_121_123,
                token: 7,
                key: hash,
                group: None,
            }),
            Place::Done(Ended {
                id: id(),
                attempts: 1,
                at_ms: 5,
                key: hash,
                group: None,
            }),
            Place::Gone(id()),
        ];
        for place in places {
            let rec = Record {
                place,
                key: key.clone(),
            };
            let mut text = rec.format();
            assert_eq!(Record::parse(&text), Some(rec.clone()));
            text.extend_from_slice(b"stale tail of a longer record");
            assert_eq!(Record::parse(&text), Some(rec));
        }
    }

    #[test]
    fn torn_foreign_and_mismatched_records_are_not_records() {
        let key = b"k".to_vec();
        let rec = Record {
            place: Place::Gone(id()),
            key: key.clone(),
        };
        let text = rec.format();
        for cut in 0..text.len() {
            assert_eq!(Record::parse(&text[..cut]), None, "cut at {cut}");
        }
        // A name carrying another key's hash.
        let other = Record {
            place: Place::Dead(Ended {
                id: id(),
                attempts: 1,
                at_ms: 1,
                key: Some(KeyHash::of(b"other")),
                group: None,
            }),
            key,
        };
        assert_eq!(Record::parse(&other.format()), None);
        assert_eq!(Record::parse(b"qspool-key 2 gone x 1\nk"), None);
        assert_eq!(Record::parse(b"\xff\n"), None);
    }

    #[test]
    fn acked_keys_are_held_for_the_window_then_free() {
        let done = |at_ms| {
            Place::Done(Ended {
                id: id(),
                attempts: 1,
                at_ms,
                key: None,
                group: None,
            })
        };
        assert_eq!(judge(&done(1_000), 1_000, 300_000), Verdict::Held);
        assert_eq!(judge(&done(1_000), 300_999, 300_000), Verdict::Held);
        assert_eq!(judge(&done(1_000), 301_000, 300_000), Verdict::Free);
        assert_eq!(judge(&done(1_000), 1_000, 0), Verdict::Free);
        assert_eq!(judge(&Place::Gone(id()), 0, 300_000), Verdict::Free);
        let r = Ready {
            id: id(),
            attempts: 0,
            visible_ms: 0,
            key: None,
            group: None,
        };
        assert_eq!(judge(&Place::New(r), u64::MAX, 0), Verdict::Look);
        assert!(holds(State::Delayed, 0, u64::MAX, 0));
        assert!(holds(State::Expired, 0, u64::MAX, 0));
        assert!(holds(State::Done, 10, 309, 300));
        assert!(!holds(State::Done, 10, 310, 300));
        assert!(!holds(State::Dead, 10, 10, 300));
    }

    #[test]
    fn the_hash_is_fnv1a_64() {
        // Published FNV-1a test vectors.
        assert_eq!(KeyHash::of(b"").0, 0xcbf2_9ce4_8422_2325);
        assert_eq!(KeyHash::of(b"a").0, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(KeyHash::of(b"foobar").0, 0x8594_4171_f739_67e8);
        assert_eq!(KeyHash::of(b"a").hex(), "af63dc4c8601ec8c");
    }

    #[test]
    fn keys_are_one_to_128_bytes() {
        assert!(check_key(b"").is_err());
        assert!(check_key(&[b'x'; 128]).is_ok());
        assert!(check_key(&[b'x'; 129]).is_err());
        assert!(check_key(b"\xff/../etc").is_ok());
    }
}

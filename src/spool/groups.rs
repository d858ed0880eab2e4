//! Ordered groups (`push --group`): of each group one message at a time is out (ready,
//! delayed or leased), its *head*; the others wait in `groups/<hash>/` in push order, and the
//! end of the head (ack, bury, dead-letter, purge) moves the next one into `new/`.
//!
//! `new/` then holds at most one message per group, so a pop neither lists groups nor passes
//! over the blocked ones: its cost is what it was. The group's directory is locked (`flock`)
//! by whoever places or promotes in it; the `head` file says a head is out (FORMAT.md §2.6).

use super::durable::{self, Src, is_missing};
use super::name::{Id, KeyHash, Ready};
use super::{Dir, Spool, at};
use anyhow::{Context, Result, bail};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// The directory of groups, in the spool's root.
pub const DIR_NAME: &str = "groups";
/// The longest group name, in bytes.
pub const MAX_GROUP_LEN: usize = 128;
/// The file in a group's directory that is there while its head is out.
const HEAD: &str = "head";
const SEQ_DIGITS: usize = 16;
const MAX_SEQ: u64 = 9_999_999_999_999_999;

/// Checks a group given on the command line.
pub fn check_group(group: &[u8]) -> std::result::Result<(), String> {
    if group.is_empty() || group.len() > MAX_GROUP_LEN {
        return Err(format!(
            "a group is 1 to {MAX_GROUP_LEN} bytes; this one is {}",
            group.len()
        ));
    }
    Ok(())
}

/// A message waiting behind its group's head: `w<seq>,<ready-name>` in the group's directory,
/// `seq` 16 digits, counting pushes into the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub seq: u64,
    pub ready: Ready,
}

impl Waiting {
    pub fn parse(s: &str) -> Option<Waiting> {
        let rest = s.strip_prefix('w')?;
        let (seq, name) = rest.split_once(',')?;
        if seq.len() != SEQ_DIGITS || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Waiting {
            seq: seq.parse().ok()?,
            ready: Ready::parse(name).ok()?,
        })
    }
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "w{:016},{}", self.seq, self.ready)
    }
}

/// The `head` file's content: the head's id, then the group's name.
fn head_text(id: &Id, name: &[u8]) -> Vec<u8> {
    let mut t = format!("{id}\n").into_bytes();
    t.extend_from_slice(name);
    t
}

fn parse_head(text: &[u8]) -> (Option<Id>, Vec<u8>) {
    let nl = text.iter().position(|&b| b == b'\n');
    let (id, name) = match nl {
        Some(i) => (&text[..i], text[i + 1..].to_vec()),
        None => (text, Vec::new()),
    };
    let id = std::str::from_utf8(id).ok().and_then(|s| Id::parse(s).ok());
    (id, name)
}

/// Where `GroupLock::place` put a message.
pub enum Placed {
    /// It is the head: the caller renames it into `new/` as any message.
    Head,
    /// It waits in the group's directory, which the caller fsyncs before printing its id.
    Waiting,
}

/// A group's directory, open and locked for as long as this lives.
pub struct GroupLock {
    dir: File,
    hash: KeyHash,
    path: PathBuf,
    /// The group's name, when known (from the command line, or the `head` file).
    name: Vec<u8>,
    head_out: bool,
    next_seq: Option<u64>,
}

impl GroupLock {
    pub fn hash(&self) -> KeyHash {
        self.hash
    }

    pub fn dir(&self) -> &File {
        &self.dir
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Places a message being pushed (now `tmp/<name>`, ready as `ready`): as the head when
    /// none is out, recording it in `head` (fsynced with `sync`) before the caller makes it
    /// visible; otherwise renamed into the group's directory behind the others.
    pub fn place(&mut self, from: &File, name: &str, ready: &Ready, sync: bool) -> Result<Placed> {
        if !self.head_out {
            self.write_head(&ready.id, sync)?;
            // `head`'s entry is durable before the message can be: a power loss must not keep
            // a visible head and lose the file that says it is out.
            if sync {
                self.dir
                    .sync_all()
                    .with_context(|| format!("sync {}", self.path.display()))?;
            }
            self.head_out = true;
            return Ok(Placed::Head);
        }
        let seq = self.next_seq()?;
        if seq > MAX_SEQ {
            bail!(
                "{}: the group's sequence is used up; let it drain first",
                self.path.display()
            );
        }
        let waiting = Waiting {
            seq,
            ready: ready.clone(),
        };
        at::rename_noreplace(from, name, &self.dir, &waiting.to_string())
            .with_context(|| format!("rename {name} into {}", self.path.display()))?;
        self.next_seq = Some(seq + 1);
        Ok(Placed::Waiting)
    }

    /// Undoes `place`'s `Head` when the message could not be made visible after all.
    pub fn forget_head(&mut self) {
        if at::unlink(&self.dir, HEAD).is_ok() {
            self.head_out = false;
        }
    }

    fn write_head(&self, id: &Id, sync: bool) -> Result<()> {
        let path = self.path.join(HEAD);
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let mut f = at::open(
            Some(&self.dir),
            &at::c_name(HEAD)?,
            flags,
            durable::FILE_MODE,
        )
        .with_context(|| format!("open {}", path.display()))?;
        if !at::fstat(&f)?.is_file() {
            bail!("{}: not a plain file", path.display());
        }
        let text = head_text(id, &self.name);
        f.set_len(0)
            .and_then(|()| f.write_all(&text))
            .with_context(|| format!("write {}", path.display()))?;
        if sync {
            f.sync_data()
                .with_context(|| format!("sync {}", path.display()))?;
        }
        Ok(())
    }

    /// The names of the waiting messages, oldest first (by name only: `next` checks the
    /// one it promotes).
    fn waiting(&self) -> Result<Vec<Waiting>> {
        let mut w: Vec<Waiting> = at::names(&self.dir)
            .with_context(|| format!("list {}", self.path.display()))?
            .iter()
            .filter_map(|n| Waiting::parse(n))
            .collect();
        w.sort_by_key(|w| w.seq);
        Ok(w)
    }

    /// The oldest waiting message that is a plain file: a foreign entry under a waiting-name
    /// is never promoted into `new/` (nor does it hold the group up).
    fn next(&self) -> Result<Option<Waiting>> {
        Ok(self
            .waiting()?
            .into_iter()
            .find(|w| durable::lstat_plain(&self.dir, &w.to_string()).is_ok()))
    }

    fn next_seq(&mut self) -> Result<u64> {
        if let Some(s) = self.next_seq {
            return Ok(s);
        }
        let next = self.waiting()?.last().map_or(0, |w| w.seq + 1);
        self.next_seq = Some(next);
        Ok(next)
    }
}

impl Spool {
    /// Opens (with `create`, making) and locks group `hash`'s directory; `None` when it does
    /// not exist and `create` is false. Waits while another process places or promotes in it.
    pub fn lock_group(
        &self,
        hash: KeyHash,
        name: &[u8],
        create: bool,
    ) -> Result<Option<GroupLock>> {
        let Some(groups) = self.groups_dir(create)? else {
            return Ok(None);
        };
        let hex = hash.hex();
        let path = self.root().join(DIR_NAME).join(&hex);
        loop {
            if create {
                match at::mkdir(groups, &hex, durable::DIR_MODE) {
                    // The group's directory outlives a power loss before anything goes in.
                    Ok(()) => groups.sync_all().with_context(|| {
                        format!("sync {}", self.root().join(DIR_NAME).display())
                    })?,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
                }
            }
            let dir = match at::open_dir(groups, &hex) {
                Ok(d) => d,
                Err(e) if is_missing(&e) && !create => return Ok(None),
                Err(e) if is_missing(&e) => continue,
                Err(e) => {
                    return Err(durable::not_a_dir(e, &path)).context(path.display().to_string());
                }
            };
            dir.lock()
                .with_context(|| format!("lock {}", path.display()))?;
            // Removed (emptied by its last promotion) between our open and our lock.
            if at::fstat(&dir)?.nlink == 0 {
                if create {
                    continue;
                }
                return Ok(None);
            }
            let (head_out, head_name) = match read_head(&dir) {
                Ok(Some(text)) => (true, parse_head(&text).1),
                Ok(None) => (false, Vec::new()),
                Err(e) => return Err(e).with_context(|| path.join(HEAD).display().to_string()),
            };
            let name = if name.is_empty() {
                head_name
            } else {
                name.to_vec()
            };
            return Ok(Some(GroupLock {
                dir,
                hash,
                path,
                name,
                head_out,
                next_seq: None,
            }));
        }
    }

    /// Holds group `hash` still (a shared `flock` on its directory) while its head moves
    /// without leaving it (lease, extend, requeue, expiry, give back), so that
    /// `repair_groups`, which takes the lock exclusively, never looks while the head is between
    /// two places. `None` without a group or its directory.
    pub(crate) fn hold_group(&self, hash: Option<KeyHash>) -> Option<File> {
        let groups = self.groups_dir(false).ok()??;
        let dir = at::open_dir(groups, &hash?.hex()).ok()?;
        dir.lock_shared().ok()?;
        Some(dir)
    }

    /// `hold_group` for a pop, which must not wait on one group while it could lease from the
    /// others: `Err(())` when the group's lock is taken exclusively just now (a push into it,
    /// a promotion, a repair), and the pop passes its head by this once.
    pub(crate) fn try_hold_group(&self, hash: Option<KeyHash>) -> Result<Option<File>, ()> {
        let Some(hash) = hash else { return Ok(None) };
        let Some(groups) = self.groups_dir(false).ok().flatten() else {
            return Ok(None);
        };
        let Ok(dir) = at::open_dir(groups, &hash.hex()) else {
            return Ok(None);
        };
        match dir.try_lock_shared() {
            Ok(()) => Ok(Some(dir)),
            Err(std::fs::TryLockError::WouldBlock) => Err(()),
            Err(_) => Ok(None),
        }
    }

    /// After grouped message `id` ended (ack, bury, dead-letter, purge): if it was its group's
    /// head, the next waiting message becomes the head. Best effort after the move that
    /// ended it: a crash in between leaves the group for `repair_groups`.
    pub(crate) fn group_ended(&self, hash: KeyHash, id: &Id) {
        let _ = (|| -> Result<()> {
            let Some(mut g) = self.lock_group(hash, b"", false)? else {
                return Ok(());
            };
            match read_head(&g.dir)?.map(|t| parse_head(&t).0) {
                // No head out, or another message is the head: nothing waits on this one.
                None => Ok(()),
                Some(Some(h)) if &h != id => Ok(()),
                Some(_) => self.promote(&mut g),
            }
        })();
    }

    /// Moves the oldest waiting message of a locked group into `new/` as its head, recording
    /// it in `head` first (so that a crash in between leaves a head file naming a message that
    /// still waits, which `repair_groups` promotes again); with none waiting, removes `head`
    /// and the emptied directory.
    fn promote(&self, g: &mut GroupLock) -> Result<()> {
        let Some(next) = g.next()? else {
            match at::unlink(&g.dir, HEAD) {
                Ok(()) => {}
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(e).context(g.path.join(HEAD).display().to_string()),
            }
            g.head_out = false;
            if let Some(groups) = self.groups_dir(false)? {
                // Fails harmlessly when something was put there meanwhile by another tool.
                let _ = at::rmdir(groups, &g.hash.hex());
            }
            return Ok(());
        };
        // A `head` made afresh (a repair of a group left without one) is made durable with its
        // entry, as a push makes it; one rewritten in place needs neither.
        let fresh = !g.head_out;
        g.write_head(&next.ready.id, fresh)?;
        if fresh {
            g.dir
                .sync_all()
                .with_context(|| format!("sync {}", g.path.display()))?;
        }
        g.head_out = true;
        let name = next.to_string();
        let ready = next.ready.to_string();
        let bucket = durable::rename_into_bucket(
            Src {
                dir: &g.dir,
                name: &name,
            },
            self.fd(Dir::New)?,
            &self.dir(Dir::New),
            &next.ready.bucket().parts(),
            &ready,
            None,
        )
        .with_context(|| format!("promote {}", g.path.join(&name).display()))?;
        self.ring();
        bucket
            .sync_made()
            .with_context(|| format!("promote {}: sync its bucket", g.path.join(&name).display()))
    }

    /// Puts right every group whose head is not out (a crash between a head's end and the
    /// promotion of the next, or between `head`'s write and the push's rename): its oldest
    /// waiting message becomes the head. One walk of `new/` and `leased/` finds the groups that
    /// have a head out; each other group is checked again under its lock. Returns how many
    /// groups were put right.
    pub fn repair_groups(&self, now: u64, failed: &mut dyn FnMut(anyhow::Error)) -> Result<usize> {
        let Some(groups) = self.groups_dir(false)? else {
            return Ok(0);
        };
        let out = self.groups_out(now)?;
        let mut fixed = 0;
        for hex in at::names(groups).context("list groups/")? {
            let Ok(hash) = KeyHash::parse_hex(&hex) else {
                continue;
            };
            if out.contains(&hash) {
                continue;
            }
            // One bad entry is reported and does not keep the others from being put right.
            let one = || -> Result<bool> {
                let Some(mut g) = self.lock_group(hash, b"", false)? else {
                    return Ok(false);
                };
                // Looked at again under the lock: every move of a head that keeps it out holds
                // the lock shared (`hold_group`), so the head is where this walk looks.
                if self.groups_out(now)?.contains(&hash) {
                    return Ok(false);
                }
                if g.head_out || !g.waiting()?.is_empty() {
                    self.promote(&mut g)?;
                    return Ok(true);
                }
                Ok(false)
            };
            match one() {
                Ok(true) => fixed += 1,
                Ok(false) => {}
                Err(e) => failed(e),
            }
        }
        Ok(fixed)
    }

    /// The groups that have a message in `new/` or `leased/`.
    fn groups_out(&self, now: u64) -> Result<HashSet<KeyHash>> {
        let mut out = HashSet::new();
        self.scan_new_tree(now, &mut |m| {
            if let Some(g) = m.and_then(|m| m.name.group()) {
                out.insert(g);
            }
        })?;
        self.walk_leases(None, None, &mut |e| {
            if let Some(g) = e.lease.and_then(|l| l.group) {
                out.insert(g);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// How many groups have a `head`, and how many messages wait behind heads, for `stats`.
    pub fn group_counts(&self) -> Result<(u64, u64)> {
        let Some(groups) = self.groups_dir(false)? else {
            return Ok((0, 0));
        };
        let (mut active, mut waiting) = (0, 0);
        for hex in at::names(groups).context("list groups/")? {
            if KeyHash::parse_hex(&hex).is_err() {
                continue;
            }
            let Ok(dir) = at::open_dir(groups, &hex) else {
                continue;
            };
            let names = at::names(&dir).unwrap_or_default();
            active += u64::from(names.iter().any(|n| n == HEAD));
            waiting += names.iter().filter(|n| Waiting::parse(n).is_some()).count() as u64;
        }
        Ok((active, waiting))
    }

    /// The name of group `hash`, from its `head` file while the group is active.
    pub fn group_text(&self, hash: KeyHash) -> Option<Vec<u8>> {
        let groups = self.groups_dir(false).ok()??;
        let dir = at::open_dir(groups, &hash.hex()).ok()?;
        let text = read_head(&dir).ok()??;
        let name = parse_head(&text).1;
        (KeyHash::of(&name) == hash).then_some(name)
    }

    /// A replayed message of a group rejoins it: as the head when none is out, else behind
    /// the others. `None`: it went to wait, and the caller must not move it into `new/`;
    /// otherwise the caller moves it, holding what is returned (the group's lock, for a
    /// grouped message) until it has.
    pub(crate) fn group_rejoin(
        &self,
        from: &File,
        name: &str,
        ready: &Ready,
    ) -> Result<Option<Option<GroupLock>>> {
        let Some(hash) = ready.group else {
            return Ok(Some(None));
        };
        let mut g = self
            .lock_group(hash, b"", true)?
            .context("groups/ could not be made")?;
        Ok(match g.place(from, name, ready, true)? {
            Placed::Head => Some(Some(g)),
            Placed::Waiting => None,
        })
    }
}

/// The `head` file's content, `None` when there is none. Only a plain file is read.
fn read_head(dir: &File) -> io::Result<Option<Vec<u8>>> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let f = match at::open(Some(dir), &at::c_name(HEAD)?, flags, 0) {
        Ok(f) => f,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    if !at::fstat(&f)?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a plain file",
        ));
    }
    let mut buf = vec![0; 512];
    let n = f.read_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(n: u32) -> Ready {
        Ready {
            id: Id::from_parts(1_795_833_091_123_456 + u64::from(n), 1, n, 0, "h"),
            attempts: 0,
            visible_ms: 1_795_833_091_120,
            key: None,
            group: Some(KeyHash::of(b"g")),
        }
    }

    #[test]
    fn waiting_names_round_trip_and_sort_by_sequence() {
        let w = Waiting {
            seq: 42,
            ready: ready(1),
        };
        let s = w.to_string();
        assert!(s.starts_with("w0000000000000042,"), "{s}");
        assert_eq!(Waiting::parse(&s), Some(w));
        for bad in [
            s.replacen('w', "x", 1),
            s.replacen("0000000000000042", "42", 1),
            s.replacen(",", ";", 1),
            format!("{s}/"),
            "w0000000000000001".to_owned(),
        ] {
            assert_eq!(Waiting::parse(&bad), None, "{bad}");
        }
        let a = Waiting {
            seq: 9,
            ready: ready(2),
        }
        .to_string();
        let b = Waiting {
            seq: 10,
            ready: ready(1),
        }
        .to_string();
        assert!(a < b, "fixed width: byte order is push order");
    }

    #[test]
    fn head_files_name_the_head_and_the_group() {
        let id = ready(3).id;
        let t = head_text(&id, b"customer 7\n");
        assert_eq!(parse_head(&t), (Some(id), b"customer 7\n".to_vec()));
        assert_eq!(parse_head(b"garbage"), (None, Vec::new()));
        assert_eq!(parse_head(b""), (None, Vec::new()));
    }

    #[test]
    fn groups_are_one_to_128_bytes() {
        assert!(check_group(b"").is_err());
        assert!(check_group(&[1; 128]).is_ok());
        assert!(check_group(&[1; 129]).is_err());
    }
}

//! Checking a spool against docs/FORMAT.md, and setting aside what does not belong: what
//! `qspool fsck` reports and repairs.
//!
//! The walk uses `lstat` only and never follows a link. Every finding names one entry. Repairs
//! are renames into `corrupt/` (never over anything, never a delete) and `chmod`s of real
//! directories and plain files, made through a descriptor opened with `O_NOFOLLOW`.

use super::at::{self, Stat};
use super::durable::{DIR_MODE, FILE_MODE, is_plain};
use super::name::{
    BUCKET_WIDTHS, Bucket, Ended, Id, LEASED_DEPTH, Leased, NEW_DEPTH, Ready, lease_bucket_start,
    lease_parts,
};
use super::walk::{self, Node, NotBucket, Visit};
use super::{Dir, Spool, TMP_MAX_AGE};
use crate::duration::{MAX_LEASE_MS, format_ms};
use crate::output::say;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// The quarantine directory in the spool root: fsck's only addition to the layout.
pub const CORRUPT: &str = "corrupt";
/// Longest name fsck makes in `corrupt/`, below the usual NAME_MAX of 255 with room for a suffix.
const MAX_CORRUPT_NAME: usize = 240;
/// Group and other write bits: the mode bits fsck reports.
const LOOSE_BITS: u32 = 0o022;

/// What is wrong with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    TmpOrphan,
    ForeignName,
    NotAFile,
    DuplicateId,
    LeaseTooFar,
    Mode,
    Owner,
}

impl Problem {
    /// Its name in `fsck`'s report.
    pub fn name(self) -> &'static str {
        match self {
            Problem::TmpOrphan => "tmp-orphan",
            Problem::ForeignName => "foreign-name",
            Problem::NotAFile => "not-a-file",
            Problem::DuplicateId => "duplicate-id",
            Problem::LeaseTooFar => "lease-too-far",
            Problem::Mode => "mode",
            Problem::Owner => "owner",
        }
    }
}

/// What `--repair` does about a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fix {
    /// Rename the entry into `corrupt/`.
    SetAside,
    /// chmod a real directory to 0700.
    ChmodDir,
    /// chmod a plain file to 0600.
    ChmodFile,
    /// Nothing fsck may do; the finding stays.
    ReportOnly(&'static str),
}

/// One entry that does not belong, or is not as it should be.
pub struct Finding {
    pub kind: Problem,
    /// Relative to the spool root.
    pub rel: PathBuf,
    pub detail: String,
    fix: Fix,
    /// What a repair did, or why it could not.
    pub action: Option<String>,
    pub repaired: bool,
}

/// A well-formed message where it belongs: a candidate for the duplicate check.
struct Msg {
    rel: PathBuf,
    /// done 3, dead 2, leased 1, new 0: the copy furthest along is kept.
    rank: u8,
    attempts: u32,
    at_ms: u64,
}

struct Check {
    root: PathBuf,
    owner: u32,
    now: u64,
    findings: Vec<Finding>,
    ids: HashMap<Id, Vec<Msg>>,
}

/// A directory entry's name for a system call: names from a listing never hold a NUL.
fn c_os(name: &OsStr) -> CString {
    CString::new(name.as_bytes()).unwrap_or_default()
}

/// What an entry that is not what belongs there is, for a finding's detail.
fn what(st: &Stat) -> String {
    if st.is_symlink() {
        "a symbolic link".into()
    } else if st.is_dir() {
        "a directory".into()
    } else if st.is_fifo() {
        "a FIFO".into()
    } else if st.is_socket() {
        "a socket".into()
    } else if st.is_device() {
        "a device".into()
    } else if st.is_file() && st.nlink != 1 {
        format!("a file with {} hard links", st.nlink)
    } else {
        "a file".into()
    }
}

impl Spool {
    /// Checks the spool at `now` against docs/FORMAT.md: one finding per entry that does not
    /// belong or is not as it should be, in the order of the walk.
    pub fn check(&self, now: u64) -> Result<Vec<Finding>> {
        // The root may be reached through a link (FORMAT.md §2.1): its owner is its target's.
        let owner = at::fstat(&self.root_dir)
            .with_context(|| format!("stat {}", self.root.display()))?
            .uid;
        let mut check = Check {
            root: self.root.clone(),
            owner,
            now,
            findings: Vec::new(),
            ids: HashMap::new(),
        };
        check.walk(self)?;
        Ok(check.findings)
    }

    /// Applies every finding's fix, recording what was done on the finding.
    pub fn repair(&self, findings: &mut [Finding]) {
        repair(&self.root_dir, &self.root, findings);
    }
}

impl Check {
    /// An entry's path relative to the spool root, from its path under it.
    fn rel(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root).unwrap_or(path).to_path_buf()
    }

    fn find(&mut self, kind: Problem, rel: PathBuf, detail: String, fix: Fix) {
        self.findings.push(Finding {
            kind,
            rel,
            detail,
            fix,
            action: None,
            repaired: false,
        });
    }

    fn walk(&mut self, spool: &Spool) -> Result<()> {
        // The root too: one that others may write to is refused by every other command.
        let st = at::fstat(&spool.root_dir)
            .with_context(|| format!("stat {}", spool.root().display()))?;
        self.attributes(PathBuf::from("."), &st, true);
        for d in Dir::ALL {
            let st = at::fstat(spool.fd(d)?)
                .with_context(|| format!("stat {}", spool.dir(d).display()))?;
            self.attributes(PathBuf::from(d.name()), &st, true);
        }
        self.tmp(spool.fd(Dir::Tmp)?)?;
        let new_path = spool.dir(Dir::New);
        let _ = walk::walk(&walk::top(spool.fd(Dir::New)?, &new_path, NEW_DEPTH), self)?;
        let leased_path = spool.dir(Dir::Leased);
        let leased = walk::top(spool.fd(Dir::Leased)?, &leased_path, LEASED_DEPTH);
        let _ = walk::walk(&leased, self)?;
        self.ended(spool.fd(Dir::Done)?, Dir::Done, 3)?;
        self.ended(spool.fd(Dir::Dead)?, Dir::Dead, 2)?;
        self.duplicates();
        Ok(())
    }

    /// Mode and owner of an entry that stays where it is: a state or bucket directory
    /// (`dir`), or a message file.
    fn attributes(&mut self, rel: PathBuf, meta: &Stat, dir: bool) {
        let mode = meta.perms();
        if mode & LOOSE_BITS != 0 {
            let (want, fix) = if dir {
                (DIR_MODE, Fix::ChmodDir)
            } else {
                (FILE_MODE, Fix::ChmodFile)
            };
            self.find(
                Problem::Mode,
                rel.clone(),
                format!("mode {mode:04o}: group or others may write (want {want:04o})"),
                fix,
            );
        }
        if meta.uid != self.owner {
            self.find(
                Problem::Owner,
                rel,
                format!(
                    "owned by uid {}, the spool root by uid {}",
                    meta.uid, self.owner
                ),
                Fix::ReportOnly("fsck does not change owners: chown it by hand"),
            );
        }
    }

    /// A link, directory, special file or hard-linked file where a message belongs, or a
    /// name outside the grammar: returns whether it was reported.
    fn misplaced(&mut self, rel: &Path, meta: &Stat, parsed: bool, want: &str) -> bool {
        if !is_plain(meta) {
            let detail = format!("{}, where a message belongs", what(meta));
            self.find(Problem::NotAFile, rel.to_path_buf(), detail, Fix::SetAside);
            return true;
        }
        if !parsed {
            let detail = format!("not a {want}");
            self.find(
                Problem::ForeignName,
                rel.to_path_buf(),
                detail,
                Fix::SetAside,
            );
            return true;
        }
        false
    }

    fn tmp(&mut self, dir: &File) -> Result<()> {
        for (name, meta) in walk::sorted_entries(dir, &self.root.join(Dir::Tmp.name()))? {
            let rel = Path::new(Dir::Tmp.name()).join(&name);
            let parsed = name.to_str().is_some_and(|n| Ready::parse(n).is_ok());
            if self.misplaced(&rel, &meta, parsed, "ready-name") {
                continue;
            }
            let age_ms = self.now.saturating_sub(meta.mtime_ms);
            if age_ms >= TMP_MAX_AGE.as_millis() as u64 {
                let detail = format!(
                    "not modified for {}: a push that never finished",
                    format_ms(age_ms / 1000 * 1000)
                );
                self.find(Problem::TmpOrphan, rel, detail, Fix::SetAside);
            }
        }
        Ok(())
    }

    /// A lease where it belongs: its bucket, or flat in `leased/` as an earlier release wrote.
    fn lease(&mut self, rel: PathBuf, meta: &Stat, l: Leased) {
        if l.expires_ms > self.now.saturating_add(MAX_LEASE_MS) {
            let detail = format!(
                "expires in {}, more than 12h ahead (a clock that jumped?)",
                format_ms((l.expires_ms - self.now) / 1000 * 1000)
            );
            let fix = Fix::ReportOnly(
                "fsck does not change leases: ack, requeue or bury it with its receipt",
            );
            self.find(Problem::LeaseTooFar, rel.clone(), detail, fix);
        }
        self.attributes(rel.clone(), meta, false);
        self.seen(l.id, rel, 1, l.attempt, l.expires_ms);
    }

    fn lease_leaf(&mut self, leaf: &Node<'_>) -> Result<()> {
        for (name, meta) in walk::sorted_entries(leaf.dir, leaf.path)? {
            let rel = self.rel(&leaf.path.join(&name));
            let lease = name.to_str().and_then(|n| Leased::parse(n).ok());
            if self.misplaced(&rel, &meta, lease.is_some(), "leased-name") {
                continue;
            }
            let l = lease.expect("parsed");
            if lease_bucket_start(l.expires_ms) != leaf.base {
                let [a, b] = lease_parts(l.expires_ms);
                let detail = format!(
                    "expires at {}, which belongs in leased/{a}/{b}, not in this bucket",
                    l.expires_ms
                );
                self.find(Problem::ForeignName, rel, detail, Fix::SetAside);
                continue;
            }
            self.lease(rel, &meta, l);
        }
        Ok(())
    }

    fn ended(&mut self, dir: &File, d: Dir, rank: u8) -> Result<()> {
        for (name, meta) in walk::sorted_entries(dir, &self.root.join(d.name()))? {
            let rel = Path::new(d.name()).join(&name);
            let ended = name.to_str().and_then(|n| Ended::parse(n).ok());
            if self.misplaced(&rel, &meta, ended.is_some(), "ended-name") {
                continue;
            }
            let e = ended.expect("parsed");
            self.attributes(rel.clone(), &meta, false);
            self.seen(e.id, rel, rank, e.attempts, e.at_ms);
        }
        Ok(())
    }

    fn seen(&mut self, id: Id, rel: PathBuf, rank: u8, attempts: u32, at_ms: u64) {
        self.ids.entry(id).or_default().push(Msg {
            rel,
            rank,
            attempts,
            at_ms,
        });
    }

    /// For every id found more than once, keeps the copy furthest along (done, dead, leased,
    /// ready; then the most attempts, then the latest time) and reports the others.
    fn duplicates(&mut self) {
        let mut dups: Vec<(PathBuf, String)> = Vec::new();
        for (_, mut copies) in std::mem::take(&mut self.ids) {
            if copies.len() < 2 {
                continue;
            }
            copies.sort_by(|a, b| {
                (b.rank, b.attempts, b.at_ms)
                    .cmp(&(a.rank, a.attempts, a.at_ms))
                    .then_with(|| a.rel.cmp(&b.rel))
            });
            let kept = copies[0].rel.display().to_string();
            for c in &copies[1..] {
                dups.push((
                    c.rel.clone(),
                    format!("the same id as {kept}, the copy kept"),
                ));
            }
        }
        dups.sort();
        // A lesser copy is set aside: its mode and owner no longer matter.
        self.findings
            .retain(|f| !dups.iter().any(|(rel, _)| *rel == f.rel));
        for (rel, detail) in dups {
            self.find(Problem::DuplicateId, rel, detail, Fix::SetAside);
        }
    }
}

/// fsck's walk of `new/`: every bucket's mode and owner, and every entry that is not a bucket
/// where buckets belong, or not a message of its leaf's time where messages do.
impl Visit for Check {
    type Stop = std::convert::Infallible;

    fn entered(&mut self, node: &Node<'_>) -> Result<()> {
        if let Some(st) = &node.st {
            let rel = self.rel(node.path);
            self.attributes(rel, st, true);
        }
        Ok(())
    }

    fn foreign(&mut self, parent: &Node<'_>, name: &OsStr, why: NotBucket) -> Result<()> {
        let path = parent.path.join(name);
        let meta = match at::stat_c(parent.dir, &c_os(name)) {
            Ok(st) => st,
            // Moved or removed by another process since the listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("lstat {}", path.display())),
        };
        let rel = self.rel(&path);
        // In `leased/` itself, a leased-name is a lease an earlier release wrote flat.
        let flat = parent.depth == LEASED_DEPTH && parent.level == 0 && why == NotBucket::Name;
        if let Some(l) = name
            .to_str()
            .filter(|_| flat)
            .and_then(|n| Leased::parse(n).ok())
        {
            if !self.misplaced(&rel, &meta, true, "leased-name") {
                self.lease(rel, &meta, l);
            }
            return Ok(());
        }
        match why {
            NotBucket::Name => {
                let also = if parent.depth == LEASED_DEPTH && parent.level == 0 {
                    " and leases of the flat layout"
                } else {
                    ""
                };
                let detail = format!(
                    "{}, but only bucket directories ({} digits){also} belong here",
                    what(&meta),
                    BUCKET_WIDTHS[parent.level]
                );
                self.find(Problem::ForeignName, rel, detail, Fix::SetAside);
            }
            // Swapped for a directory since it was opened: looked at by the next check.
            NotBucket::NotADir if meta.is_dir() => {}
            NotBucket::NotADir => {
                let detail = format!("{}, where a bucket directory belongs", what(&meta));
                self.find(Problem::NotAFile, rel, detail, Fix::SetAside);
            }
        }
        Ok(())
    }

    fn leaf(&mut self, leaf: &Node<'_>) -> Result<ControlFlow<Self::Stop>> {
        if leaf.depth == LEASED_DEPTH {
            self.lease_leaf(leaf)?;
            return Ok(ControlFlow::Continue(()));
        }
        let base = leaf.base;
        for (name, meta) in walk::sorted_entries(leaf.dir, leaf.path)? {
            let rel = self.rel(&leaf.path.join(&name));
            let ready = name.to_str().and_then(|n| Ready::parse(n).ok());
            if self.misplaced(&rel, &meta, ready.is_some(), "ready-name") {
                continue;
            }
            let r = ready.expect("parsed");
            if r.visible_ms != base {
                let detail = format!(
                    "visible at {}, which belongs in new/{}, not in this bucket",
                    r.visible_ms,
                    Bucket::of(r.visible_ms).rel_path()
                );
                self.find(Problem::ForeignName, rel, detail, Fix::SetAside);
                continue;
            }
            self.attributes(rel.clone(), &meta, false);
            self.seen(r.id, rel, 0, r.attempts, r.visible_ms);
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// Opens, without following any link, the directory that holds the entry at `rel` (a path
/// inside the spool), and gives the entry's name in it.
fn open_parent(root_dir: &File, rel: &Path) -> std::io::Result<(File, OsString)> {
    let mut parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let name = parts.pop().unwrap_or_default().to_os_string();
    let mut dir = root_dir.try_clone()?;
    for part in parts {
        dir = at::open_dir_c(&dir, &c_os(part))?;
    }
    Ok((dir, name))
}

/// Applies every finding's fix, recording what was done on the finding.
fn repair(root_dir: &File, root: &Path, findings: &mut [Finding]) {
    let mut corrupt: Option<Result<File, String>> = None;
    let mut touched: Vec<PathBuf> = Vec::new();
    for f in findings.iter_mut() {
        let outcome = match f.fix {
            Fix::ReportOnly(why) => Err(why.to_owned()),
            Fix::ChmodDir => {
                chmod(root_dir, &f.rel, true).map(|()| format!("chmod {DIR_MODE:04o}"))
            }
            Fix::ChmodFile => {
                chmod(root_dir, &f.rel, false).map(|()| format!("chmod {FILE_MODE:04o}"))
            }
            Fix::SetAside => {
                let ready = corrupt.get_or_insert_with(|| ensure_corrupt(root_dir, root));
                match ready {
                    Err(e) => Err(format!("not moved: {e}")),
                    Ok(corrupt) => set_aside(root_dir, &f.rel, corrupt).map(|name| {
                        if let Some(parent) = f.rel.parent() {
                            touched.push(parent.to_path_buf());
                        }
                        format!("moved to {CORRUPT}/{}", name.to_string_lossy())
                    }),
                }
            }
        };
        match outcome {
            Ok(action) => {
                f.repaired = true;
                f.action = Some(action);
            }
            Err(why) => f.action = Some(why),
        }
    }
    // Make the moves durable: corrupt/ and every directory an entry left. Best effort: each
    // move is already done, and a crash that undoes one only brings a finding back.
    if let Some(Ok(corrupt)) = &corrupt {
        if let Err(e) = corrupt.sync_all() {
            say(&format!("sync {}: {e}", root.join(CORRUPT).display()));
        }
        touched.sort();
        touched.dedup();
        for rel in touched {
            let synced = open_parent(root_dir, &rel.join("x")).and_then(|(dir, _)| dir.sync_all());
            if let Err(e) = synced {
                say(&format!("sync {}: {e}", root.join(&rel).display()));
            }
        }
    }
}

/// Opens `corrupt/`, making it (0700) when it is missing; refuses one that is not a real
/// directory.
fn ensure_corrupt(root_dir: &File, root: &Path) -> Result<File, String> {
    match at::stat(root_dir, CORRUPT) {
        Ok(m) if m.is_dir() => {}
        Ok(m) => return Err(format!("{CORRUPT}/ is {}, not a directory", what(&m))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            at::mkdir(root_dir, CORRUPT, DIR_MODE)
                .map_err(|e| format!("create {CORRUPT}/: {e}"))?;
            root_dir
                .sync_all()
                .map_err(|e| format!("sync {}: {e}", root.display()))?;
        }
        Err(e) => return Err(format!("lstat {CORRUPT}/: {e}")),
    }
    at::open_dir(root_dir, CORRUPT).map_err(|e| format!("open {CORRUPT}/: {e}"))
}

/// Renames the entry at `rel` (the entry itself, never a link's target) into `corrupt/` under
/// its path in the spool with `/` as `-`, or that with a numeric suffix when the name is taken.
fn set_aside(root_dir: &File, rel: &Path, corrupt: &File) -> Result<OsString, String> {
    let (dir, from) = open_parent(root_dir, rel).map_err(|e| format!("not moved: {e}"))?;
    let mut base: Vec<u8> = rel
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|&b| if b == b'/' { b'-' } else { b })
        .collect();
    if base.len() > MAX_CORRUPT_NAME {
        base.truncate(MAX_CORRUPT_NAME);
    }
    for n in 0u32..10_000 {
        let mut name = base.clone();
        if n > 0 {
            name.extend_from_slice(format!(".{n}").as_bytes());
        }
        let name = OsString::from_vec(name);
        match at::rename_noreplace_c(&dir, &c_os(&from), corrupt, &c_os(&name)) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("not moved: it was gone (moved by another process?)".into());
            }
            Err(e) => return Err(format!("not moved: {e}")),
        }
    }
    Err(format!(
        "not moved: every name for it in {CORRUPT}/ is taken"
    ))
}

/// Sets the mode of a real directory or a plain file through a descriptor opened without
/// following a link, so that an entry swapped for a link since the walk is refused.
fn chmod(root_dir: &File, rel: &Path, dir: bool) -> Result<(), String> {
    let not_changed = |e: std::io::Error| format!("not changed: {e}");
    if rel == Path::new(".") {
        return root_dir
            .set_permissions(std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(not_changed);
    }
    let (parent, name) = open_parent(root_dir, rel).map_err(not_changed)?;
    let flags = libc::O_RDONLY
        | libc::O_NOFOLLOW
        | libc::O_NONBLOCK
        | if dir { libc::O_DIRECTORY } else { 0 };
    let file = at::open(Some(&parent), &c_os(&name), flags, 0).map_err(not_changed)?;
    let meta = at::fstat(&file).map_err(not_changed)?;
    let ok = if dir { meta.is_dir() } else { is_plain(&meta) };
    if !ok {
        return Err(format!("not changed: it is now {}", what(&meta)));
    }
    let mode = if dir { DIR_MODE } else { FILE_MODE };
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(not_changed)
}

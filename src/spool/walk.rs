//! The one walk of a bucket tree (`new/`'s by visible-at, `leased/`'s by expiry), and the one listing of a directory with each entry's
//! `lstat`: what `pop`, `stats`, `list`, `show`, `purge` and `fsck` all go through, so that
//! opening a bucket without following a link, and telling a link from an entry another process
//! removed, is decided in one place.

use super::at::{self, Stat};
use super::durable::is_missing;
use super::name::{BUCKET_SPANS, bucket_level};
use anyhow::{Context, Result};
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// One directory of the bucket tree as the walk reaches it.
pub struct Node<'a> {
    pub dir: &'a File,
    pub path: &'a Path,
    /// The directory holding this one, and this one's name in it (`None` for `new/`).
    pub parent: Option<(&'a File, &'a str)>,
    /// 0 for the state directory, then 1, 2… down to `depth` for a leaf.
    pub level: usize,
    /// The level of the tree's leaves: `NEW_DEPTH` or `LEASED_DEPTH`.
    pub depth: usize,
    /// The first millisecond this directory spans: a leaf's is its messages' visible-at.
    pub base: u64,
    /// The directory's own `fstat`, `None` for the node a walk starts from.
    pub st: Option<Stat>,
}

impl Node<'_> {
    pub fn is_leaf(&self) -> bool {
        self.level == self.depth
    }
}

/// A bucket as its parent's listing names it.
pub struct Listed<'a> {
    pub parent: &'a Node<'a>,
    pub name: &'a str,
    /// The first millisecond it spans.
    pub start: u64,
}

/// Why an entry at a bucket level is not a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotBucket {
    /// Its name is not a bucket name of this level.
    Name,
    /// It has a bucket's name but is not a real directory (a file, a link to a directory...).
    NotADir,
}

/// What a walk does at each place; the walk itself owns the order, the opening and the errors.
pub trait Visit {
    /// What ends a walk early.
    type Stop;

    /// A bucket before it is opened: `Continue(true)` descends into it, `Continue(false)`
    /// passes it by.
    fn bucket(&mut self, _: &Listed<'_>) -> ControlFlow<Self::Stop, bool> {
        ControlFlow::Continue(true)
    }

    /// A bucket just opened (its `st` set), before the walk goes into it.
    fn entered(&mut self, _node: &Node<'_>) -> Result<()> {
        Ok(())
    }

    /// An entry of `parent` that is not a bucket (a name the walk could not open as one, or
    /// not a bucket's name at all); UTF-8 or not.
    fn foreign(&mut self, parent: &Node<'_>, name: &OsStr, why: NotBucket) -> Result<()>;

    /// A leaf: its listing is the visitor's own.
    fn leaf(&mut self, leaf: &Node<'_>) -> Result<ControlFlow<Self::Stop>>;

    /// After the walk went through all of `child` without stopping.
    fn left(&mut self, _child: &Node<'_>) {}

    /// A bucket that could not be opened or walked (`EACCES`, `EIO`…): `Err` ends the walk
    /// with it, as by default; `Ok` passes the bucket by and goes on with the next.
    fn failed(&mut self, e: anyhow::Error) -> Result<()> {
        Err(e)
    }
}

/// Walks the tree below `node` in time order (bucket names are fixed-width digits, so name
/// order is time order), leaves in the visitor's hands.
pub fn walk<V: Visit>(node: &Node<'_>, v: &mut V) -> Result<ControlFlow<V::Stop>> {
    if node.is_leaf() {
        return v.leaf(node);
    }
    let mut names = raw_names(node.dir, node.path)?;
    names.sort_unstable();
    for raw in names {
        let bucket = raw
            .to_str()
            .and_then(|n| bucket_level(n, node.level).map(|v| (n, v)));
        let Some((name, value)) = bucket else {
            v.foreign(node, &raw, NotBucket::Name)?;
            continue;
        };
        let start = node.base + value * BUCKET_SPANS[node.level];
        let listed = Listed {
            parent: node,
            name,
            start,
        };
        match v.bucket(&listed) {
            ControlFlow::Break(b) => return Ok(ControlFlow::Break(b)),
            ControlFlow::Continue(false) => continue,
            ControlFlow::Continue(true) => {}
        }
        let path = node.path.join(name);
        let dir = match open_child(node.dir, name, &path) {
            Ok(Child::Dir(d)) => d,
            Ok(Child::Gone) => continue,
            Ok(Child::NotADir) => {
                v.foreign(node, &raw, NotBucket::NotADir)?;
                continue;
            }
            Err(e) => {
                v.failed(e)?;
                continue;
            }
        };
        // A directory removed since it was opened still answers fstat.
        let st = match at::fstat(&dir).with_context(|| format!("stat {}", path.display())) {
            Ok(st) => st,
            Err(e) => {
                v.failed(e)?;
                continue;
            }
        };
        let child = Node {
            dir: &dir,
            path: &path,
            parent: Some((node.dir, name)),
            level: node.level + 1,
            depth: node.depth,
            base: start,
            st: Some(st),
        };
        v.entered(&child)?;
        match walk(&child, v) {
            Ok(ControlFlow::Break(b)) => return Ok(ControlFlow::Break(b)),
            Ok(ControlFlow::Continue(())) => v.left(&child),
            Err(e) => v.failed(e)?,
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// A directory named in a listing, as opening it without following a link found it.
pub enum Child {
    Dir(File),
    /// Removed since the listing (a pop emptied the bucket): nothing there.
    Gone,
    /// A link, or not a directory: never followed, never a bucket.
    NotADir,
}

/// Opens the directory `name` in `dir` (at `path`, for the error) without following a link.
/// EMFILE, EIO, EACCES and the like are errors, never an empty bucket.
pub fn open_child(dir: &File, name: &str, path: &Path) -> Result<Child> {
    match at::open_dir(dir, name) {
        Ok(d) => Ok(Child::Dir(d)),
        Err(e) if is_missing(&e) => Ok(Child::Gone),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            Ok(Child::NotADir)
        }
        Err(e) => Err(e).with_context(|| format!("open {}", path.display())),
    }
}

/// Opens the bucket `new/<parts>` (at `new_path`) level by level through `open_child`; `None`
/// when any level is gone or is not a real directory.
pub fn open_path(new_dir: &File, new_path: &Path, parts: &[String]) -> Result<Option<File>> {
    let mut dir = new_dir.try_clone().context("duplicate a descriptor")?;
    let mut path = new_path.to_path_buf();
    for part in parts {
        path.push(part);
        match open_child(&dir, part, &path)? {
            Child::Dir(d) => dir = d,
            Child::Gone | Child::NotADir => return Ok(None),
        }
    }
    Ok(Some(dir))
}

/// Every name in `dir`, UTF-8 or not.
fn raw_names(dir: &File, path: &Path) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    at::for_each_raw(dir, |name, _| names.push(OsString::from_vec(name.to_vec())))
        .with_context(|| format!("list {}", path.display()))?;
    Ok(names)
}

/// Calls `f` with each entry of `dir` (at `path`) and its `lstat`, in directory order. An entry
/// that vanishes while we look was moved by another process and is passed by, never taken for
/// a foreign one; any other `lstat` error (EIO, EACCES) ends the listing as an error.
pub fn for_each_entry(dir: &File, path: &Path, mut f: impl FnMut(&OsStr, &Stat)) -> Result<()> {
    let mut failed = None;
    at::for_each_raw(dir, |name, _| {
        if failed.is_some() {
            return;
        }
        // A name from a listing never holds a NUL.
        let c = CString::new(name).unwrap_or_default();
        let name = OsStr::from_bytes(name);
        match at::stat_c(dir, &c) {
            Ok(st) => f(name, &st),
            Err(e) if is_missing(&e) => {}
            Err(e) => {
                failed = Some(
                    anyhow::Error::new(e).context(format!("lstat {}", path.join(name).display())),
                )
            }
        }
    })
    .with_context(|| format!("list {}", path.display()))?;
    failed.map_or(Ok(()), Err)
}

/// `for_each_entry` collected and sorted by name: for reports that must read the same twice.
pub fn sorted_entries(dir: &File, path: &Path) -> Result<Vec<(OsString, Stat)>> {
    let mut out = Vec::new();
    for_each_entry(dir, path, |name, st| out.push((name.to_os_string(), *st)))?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Where a walk of a state directory's tree (`depth` levels deep) starts.
pub fn top<'a>(dir: &'a File, path: &'a Path, depth: usize) -> Node<'a> {
    Node {
        dir,
        path,
        parent: None,
        level: 0,
        depth,
        base: 0,
        st: None,
    }
}

//! `SimFs`: an in-memory [`WalFs`] that tracks what is durable and can simulate a power cut.
//!
//! Model (an inode file system, deliberately pessimistic):
//! - each file (inode) has its visible content and its durable content; writes and `set_len` go
//!   to the visible content and are queued as pending; `sync_data` applies the pending operations
//!   to the durable content;
//! - the directory namespace (path -> inode, and the set of directories) has a visible and a
//!   durable copy; `sync_dir` makes the directory's current entries (files and subdirectories)
//!   durable. A file or directory created but not dir-synced vanishes on a power cut, and so
//!   does everything inside a directory that vanished; a file removed but not dir-synced comes
//!   back;
//! - [`SimFs::power_cut`] replaces the visible state by the durable one (optionally keeping some
//!   unsynced bytes, see [`PowerCut`]) and bumps a generation: every handle opened before the cut
//!   fails from then on, as a process that lost power would. Open the WAL again to recover.
//!
//! The roots (`/`, and `.` for relative paths) always exist.

use super::dir::parent_dir;
use super::file::{WalFile, WalFs};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Granularity at which [`PowerCut::TornPages`] keeps or drops unsynced bytes: the page size of
/// the page cache, which is the unit the kernel writes back independently and in any order.
const PAGE_BYTES: u64 = 4096;

/// What survives of unsynced writes when the power goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerCut {
    /// Every write not covered by a completed sync is lost.
    DropUnsynced,
    /// Per file, a random-length prefix of the unsynced writes survives (possibly cutting a write
    /// in the middle): a torn tail.
    TornPrefix {
        /// Seed of the choice of prefix lengths.
        seed: u64,
    },
    /// Per file, each unsynced 4 KiB page survives or not independently: later bytes may persist
    /// while earlier ones do not, as with out-of-order page-cache write-back.
    TornPages {
        /// Seed of the page choices.
        seed: u64,
    },
}

/// In-memory file system for tests and the deterministic simulator. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    /// All state, behind one lock so every operation is atomic with respect to a power cut.
    state: Arc<Mutex<SimState>>,
}

#[derive(Debug, Default)]
struct SimState {
    /// Bumped by each power cut; handles from an older generation fail.
    generation: u64,
    /// Directories that exist (roots are implicit).
    dirs: BTreeSet<PathBuf>,
    /// Directories whose entry in their parent is durable (as of the parent's last `sync_dir`).
    durable_dirs: BTreeSet<PathBuf>,
    /// Visible namespace: path -> inode number.
    names: BTreeMap<PathBuf, u64>,
    /// Namespace as of the last `sync_dir` of each directory.
    durable_names: BTreeMap<PathBuf, u64>,
    /// Inodes by number (ordered, so power cuts are reproducible from a seed).
    inodes: BTreeMap<u64, Inode>,
    /// Next inode number.
    next_inode: u64,
}

#[derive(Debug, Default)]
struct Inode {
    /// What reads see.
    visible: Vec<u8>,
    /// What survives a power cut.
    durable: Vec<u8>,
    /// Operations since the last sync, in order.
    pending: Vec<Op>,
}

#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

impl Op {
    fn apply(&self, content: &mut Vec<u8>) {
        match self {
            Op::Write { offset, bytes } => write_into(content, *offset, bytes),
            Op::SetLen(len) => content.resize(to_usize(*len), 0),
        }
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).expect("simulated file larger than the address space")
}

fn write_into(content: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let start = to_usize(offset);
    let end = start + bytes.len();
    if content.len() < end {
        content.resize(end, 0);
    }
    content[start..end].copy_from_slice(bytes);
}

/// splitmix64: a tiny deterministic generator, so a seed reproduces a power cut exactly.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock leaves plain data; keep going (tests report the panic).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Simulates losing power with every unsynced write dropped ([`PowerCut::DropUnsynced`]).
    pub fn power_cut(&self) {
        self.power_cut_with(PowerCut::DropUnsynced);
    }

    /// Simulates losing power: the visible state becomes the durable state (plus whatever
    /// unsynced bytes `mode` keeps), and every handle opened before now fails from now on.
    pub fn power_cut_with(&self, mode: PowerCut) {
        let mut st = self.lock();
        let seed = match mode {
            PowerCut::DropUnsynced => 0,
            PowerCut::TornPrefix { seed } | PowerCut::TornPages { seed } => seed,
        };
        let mut rng = SplitMix(seed);
        // A directory survives if its entry, and its parent's, up to a root, are durable.
        let durable_dirs = st.durable_dirs.clone();
        let survives = |dir: &Path| {
            dir.ancestors()
                .all(|d| is_root(d) || durable_dirs.contains(d))
        };
        st.dirs = durable_dirs
            .iter()
            .filter(|d| survives(d))
            .cloned()
            .collect();
        st.durable_dirs = st.dirs.clone();
        let in_dir = |path: &PathBuf| parent_dir(path).is_some_and(|p| survives(&p));
        st.durable_names.retain(|path, _| in_dir(path));
        let reachable: BTreeSet<u64> = st.durable_names.values().copied().collect();
        st.inodes.retain(|ino, _| reachable.contains(ino));
        for inode in st.inodes.values_mut() {
            let mut survived = inode.durable.clone();
            match mode {
                PowerCut::DropUnsynced => {}
                PowerCut::TornPrefix { .. } => keep_prefix(&inode.pending, &mut survived, &mut rng),
                PowerCut::TornPages { .. } => keep_pages(&inode.pending, &mut survived, &mut rng),
            }
            inode.visible = survived.clone();
            inode.durable = survived;
            inode.pending.clear();
        }
        st.names = st.durable_names.clone();
        st.generation += 1;
    }

    /// The visible content of the file at `path`, if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        let ino = st.names.get(path)?;
        st.inodes.get(ino).map(|inode| inode.visible.clone())
    }

    /// Flips every bit of the byte at `offset` of the file at `path`, durably: simulates media
    /// corruption. Returns false if the file or offset does not exist.
    pub fn corrupt_byte(&self, path: &Path, offset: u64) -> bool {
        let mut st = self.lock();
        let Some(ino) = st.names.get(path).copied() else {
            return false;
        };
        let Some(inode) = st.inodes.get_mut(&ino) else {
            return false;
        };
        let at = to_usize(offset);
        if at >= inode.visible.len() || at >= inode.durable.len() {
            return false;
        }
        inode.visible[at] = !inode.visible[at];
        inode.durable[at] = !inode.durable[at];
        true
    }
}

/// Applies a random-length prefix (in bytes) of `pending` to `content`.
fn keep_prefix(pending: &[Op], content: &mut Vec<u8>, rng: &mut SplitMix) {
    let total: u64 = pending
        .iter()
        .map(|op| match op {
            Op::Write { bytes, .. } => bytes.len() as u64,
            Op::SetLen(_) => 0,
        })
        .sum();
    let mut budget = rng.next() % (total + 1);
    for op in pending {
        match op {
            Op::SetLen(_) => op.apply(content),
            Op::Write { offset, bytes } => {
                let kept = budget.min(bytes.len() as u64);
                write_into(content, *offset, &bytes[..to_usize(kept)]);
                budget -= kept;
                if budget == 0 {
                    return;
                }
            }
        }
    }
}

/// Applies each unsynced page of `pending` to `content` with probability one half.
fn keep_pages(pending: &[Op], content: &mut Vec<u8>, rng: &mut SplitMix) {
    for op in pending {
        match op {
            Op::SetLen(_) => op.apply(content),
            Op::Write { offset, bytes } => {
                let mut at = *offset;
                let end = offset + bytes.len() as u64;
                while at < end {
                    let page_end = ((at / PAGE_BYTES) + 1) * PAGE_BYTES;
                    let chunk_end = page_end.min(end);
                    if rng.next() % 2 == 0 {
                        let from = to_usize(at - offset);
                        let to = to_usize(chunk_end - offset);
                        write_into(content, at, &bytes[from..to]);
                    }
                    at = chunk_end;
                }
            }
        }
    }
}

/// Whether `dir` is a root, which always exists.
fn is_root(dir: &Path) -> bool {
    dir.parent().is_none() || dir == Path::new(".")
}

fn stale_handle() -> io::Error {
    io::Error::other("simulated power cut: handle opened before the cut")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no such file: {}", path.display()),
    )
}

/// A handle on one inode, valid for the generation it was opened in.
#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    inode: u64,
    generation: u64,
}

impl SimFile {
    fn with_inode<R>(&self, f: impl FnOnce(&mut Inode) -> io::Result<R>) -> io::Result<R> {
        let mut st = self.fs.lock();
        if st.generation != self.generation {
            return Err(stale_handle());
        }
        let inode = st.inodes.get_mut(&self.inode).ok_or_else(stale_handle)?;
        f(inode)
    }
}

impl WalFile for SimFile {
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.with_inode(|inode| {
            write_into(&mut inode.visible, offset, buf);
            inode.pending.push(Op::Write {
                offset,
                bytes: buf.to_vec(),
            });
            Ok(())
        })
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with_inode(|inode| {
            let start = to_usize(offset);
            let end = start + buf.len();
            if end > inode.visible.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past end of file",
                ));
            }
            buf.copy_from_slice(&inode.visible[start..end]);
            Ok(())
        })
    }

    fn size_bytes(&self) -> io::Result<u64> {
        self.with_inode(|inode| Ok(inode.visible.len() as u64))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with_inode(|inode| {
            inode.visible.resize(to_usize(len), 0);
            inode.pending.push(Op::SetLen(len));
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with_inode(|inode| {
            for op in inode.pending.drain(..) {
                op.apply(&mut inode.durable);
            }
            Ok(())
        })
    }
}

impl SimState {
    fn dir_exists(&self, dir: &Path) -> bool {
        is_root(dir) || self.dirs.contains(dir)
    }
}

impl WalFs for SimFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if st.dir_exists(dir) || st.names.contains_key(dir) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", dir.display()),
            ));
        }
        let parent = parent_dir(dir).ok_or_else(|| not_found(dir))?;
        if !st.dir_exists(&parent) {
            return Err(not_found(&parent));
        }
        st.dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        if !st.dir_exists(dir) {
            return Err(not_found(dir));
        }
        let names = st
            .names
            .keys()
            .filter(|path| parent_dir(path).as_deref() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect();
        Ok(names)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let mut st = self.lock();
        let parent = parent_dir(path).ok_or_else(|| not_found(path))?;
        if !st.dir_exists(&parent) {
            return Err(not_found(&parent));
        }
        if st.names.contains_key(path) || st.dir_exists(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let ino = st.next_inode;
        st.next_inode += 1;
        st.inodes.insert(ino, Inode::default());
        st.names.insert(path.to_path_buf(), ino);
        let generation = st.generation;
        Ok(Box::new(SimFile {
            fs: self.clone(),
            inode: ino,
            generation,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let st = self.lock();
        let ino = *st.names.get(path).ok_or_else(|| not_found(path))?;
        let generation = st.generation;
        Ok(Box::new(SimFile {
            fs: self.clone(),
            inode: ino,
            generation,
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.names
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if !st.dir_exists(dir) {
            return Err(not_found(dir));
        }
        let inside = |path: &PathBuf| parent_dir(path).as_deref() == Some(dir);
        st.durable_names.retain(|path, _| !inside(path));
        let entries: Vec<(PathBuf, u64)> = st
            .names
            .iter()
            .filter(|(path, _)| inside(path))
            .map(|(path, ino)| (path.clone(), *ino))
            .collect();
        st.durable_names.extend(entries);
        st.durable_dirs.retain(|d| !inside(d));
        let subdirs: Vec<PathBuf> = st.dirs.iter().filter(|d| inside(d)).cloned().collect();
        st.durable_dirs.extend(subdirs);
        Ok(())
    }
}

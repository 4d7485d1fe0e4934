//! The sled database of the state machine: its trees, the records of the `meta` tree, and the
//! durable flush used before the Raft log may be purged.

use super::codec::{decode, encode, sled_err};
use super::cold::ColdStore;
use super::keys::{meta_key, tree, LAYOUT_VERSION};
use super::ns::Ns;
use crate::raft_types::{LogId, SnapshotMeta, StoredMembership};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How often sled's background thread syncs its log. Durability of applied state is not needed
/// per apply (the Raft log is durable and is replayed from the recorded last applied index), so
/// this only bounds how much replay a restart needs.
const SLED_FLUSH_EVERY_MS: u64 = 1000;

/// Default sled page-cache budget (`--sled-cache-mb`), in MiB. The hot state lives in the
/// in-memory `LedgerState`; sled serves the append-only event history, read mostly at its
/// tail (the relay, recent listings), so a small cache suffices. sled's own default is 1 GiB.
pub const SLED_CACHE_MB_DEFAULT: u64 = 64;

/// Largest accepted `--sled-cache-mb` (1 TiB): anything above is a typo.
pub const SLED_CACHE_MB_MAX: u64 = 1 << 20;

/// How long an open waits for sled's file lock. A store dropped in this process (an in-process
/// restart) releases the lock only when sled's flusher thread lets go of the database, a moment
/// later; another process holding it is still refused once this has passed.
const SLED_LOCK_WAIT_MS: u64 = 5_000;

/// Opens sled, retrying while its file lock is held (see [`SLED_LOCK_WAIT_MS`]).
fn open_when_unlocked(config: &sled::Config) -> io::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(SLED_LOCK_WAIT_MS);
    loop {
        match config.open().map_err(sled_err) {
            // sled reports the lock as an `Other` error wrapping `WouldBlock`, only in its text.
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// How far the history tables go, written in the same transaction as the rows it describes.
/// The in-memory ledger is NOT stored row by row: after a restart it is the snapshot's ledger
/// brought forward by replaying the log, and apply skips history rows sled already holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppliedMeta {
    /// Last applied log id (None before the first entry).
    pub(crate) last_applied: Option<LogId>,
    /// Last applied membership.
    pub(crate) membership: StoredMembership,
    /// Ledger: last event sequence assigned.
    pub(crate) last_event_seq: u64,
    /// Ledger: last effective timestamp.
    pub(crate) last_timestamp_us: u64,
    /// Ledger: running hash over everything applied.
    pub(crate) applied_hash: [u8; 32],
    /// Postings index: every posting of an event before this seq is in a page (0 or 1: none
    /// yet); an open rebuilds the in-memory tails from the events from here on.
    pub(crate) postings_unpaged_from_seq: u64,
}

/// Where a snapshot file is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotPointer {
    /// Its openraft meta.
    pub(crate) meta: SnapshotMeta,
    /// File name inside the snapshot directory.
    pub(crate) file_name: String,
}

/// The sled database and one handle per tree.
pub(crate) struct Trees {
    /// Directory sled lives in (`<dir>/sm`), for the durable flush.
    pub(crate) path: PathBuf,
    /// The database (owns the trees).
    pub(crate) db: sled::Db,
    /// The one sled tree holding every table below (see `ns`).
    pub(crate) ledger: sled::Tree,
    /// `meta` table.
    pub(crate) meta: Ns,
    /// `events` table.
    pub(crate) events: Ns,
    /// `postings` table.
    pub(crate) postings: Ns,
    /// The cold history (a file beside sled).
    pub(crate) cold: Arc<ColdStore>,
}

impl Trees {
    /// Opens (creating if needed) the sled database at `path` with a page cache of
    /// `cache_bytes`.
    pub(crate) fn open(path: &Path, cache_bytes: u64, cold_dir: &Path) -> io::Result<Self> {
        let config = sled::Config::new()
            .path(path)
            .flush_every_ms(Some(SLED_FLUSH_EVERY_MS))
            .cache_capacity(cache_bytes);
        let db = open_when_unlocked(&config)?;
        let ledger = db.open_tree(tree::LEDGER).map_err(sled_err)?;
        let ns = |prefix: u8| Ns::new(ledger.clone(), prefix);
        let trees = Self {
            path: path.to_path_buf(),
            meta: ns(tree::META),
            events: ns(tree::EVENTS),
            postings: ns(tree::POSTINGS),
            cold: Arc::new(ColdStore::open(cold_dir)?),
            ledger,
            db,
        };
        trees.check_layout()?;
        Ok(trees)
    }

    /// Stamps a fresh database with `LAYOUT_VERSION`; refuses one written by another layout
    /// (its rows would be misread).
    fn check_layout(&self) -> io::Result<()> {
        match self.read_meta::<u32>(meta_key::LAYOUT)? {
            Some(LAYOUT_VERSION) => Ok(()),
            None if self.ledger.is_empty() => {
                self.meta
                    .insert(meta_key::LAYOUT, encode(&LAYOUT_VERSION)?)
                    .map_err(sled_err)?;
                Ok(())
            }
            found => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "state machine at {} has layout {found:?}, this build reads layout \
                     {LAYOUT_VERSION}: wipe the node's data directory and let it rejoin",
                    self.path.display()
                ),
            )),
        }
    }

    /// Reads the applied meta (None on a fresh database).
    pub(crate) fn read_applied(&self) -> io::Result<Option<AppliedMeta>> {
        self.read_meta(meta_key::APPLIED)
    }

    /// Reads a snapshot pointer (`meta_key::SNAPSHOT` or `meta_key::INSTALLING`).
    pub(crate) fn read_pointer(&self, key: &[u8]) -> io::Result<Option<SnapshotPointer>> {
        self.read_meta(key)
    }

    /// Writes (or with None removes) a snapshot pointer.
    pub(crate) fn write_pointer(
        &self,
        key: &[u8],
        ptr: Option<&SnapshotPointer>,
    ) -> io::Result<()> {
        match ptr {
            Some(p) => self.meta.insert(key, encode(p)?).map_err(sled_err)?,
            None => self.meta.remove(key).map_err(sled_err)?,
        };
        Ok(())
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.meta.get(key).map_err(sled_err)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Makes everything written so far durable: sled's `flush` (which only uses
    /// `sync_file_range`), then `sync_all` on every file and directory sled keeps.
    pub(crate) fn flush_durable(&self) -> io::Result<()> {
        self.db.flush().map_err(sled_err)?;
        sync_tree(&self.path)
    }
}

/// `sync_all` on every regular file under `dir` (recursively), then on the directories.
fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            match fs::File::open(entry.path()) {
                Ok(f) => f.sync_all()?,
                // sled may remove an old file of its own between listing and opening.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    sync_dir(dir)
}

/// fsyncs a directory so renames and creations inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod lock_tests {
    use super::Trees;

    /// An in-process reopen while something (here: a thread standing in for sled's flusher)
    /// still holds the previous database waits for the lock instead of failing.
    #[test]
    fn reopen_waits_for_a_database_still_closing() {
        let dir = tempfile::tempdir().unwrap();
        let first = Trees::open(dir.path(), 1 << 20, &dir.path().join("history")).unwrap();
        let held = first.db.clone();
        drop(first);
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let reopened = Trees::open(dir.path(), 1 << 20, &dir.path().join("history"));
        holder.join().unwrap();
        assert!(reopened.is_ok(), "{:?}", reopened.err());
    }
}

//! Project-owned segmented write-ahead log for the Raft log and the vote.
//!
//! Shape (etcd's): CRC32C-framed records in preallocated segment files, appended only; one
//! flusher thread with group commit (one `fdatasync` per round, completions fired in order after
//! it); torn-tail detection on open; truncation and purge as logged records, with whole segments
//! deleted once purged. In a simulation the flusher is a task on the caller's runtime instead
//! ([`Execution::RuntimeOnly`]).
//!
//! Modules, one concept each:
//! - `file`     — [`WalFs`]/[`WalFile`], the narrow storage interface, and [`RealFs`].
//! - `dir`      — [`create_dir_all_durable`]: new directories that survive a power cut.
//! - `sim_fs`   — [`SimFs`], in-memory storage with power cuts, for tests and simulation.
//! - `record`   — record framing, encoding, checking.
//! - `segment`  — segment naming, creation, scanning.
//! - `recovery` — open: torn tail versus corruption, replay.
//! - `index`    — in-memory log index and entry cache.
//! - `shared`   — state shared by callers and the flusher; the read path.
//! - `flusher`  — the writer thread and group commit.
//!
//! Ordering rule: every write (entries, vote, committed, truncate, purge) goes through one queue
//! and one thread, so writes reach the disk in submission order; a completion fires only after
//! the `fdatasync` that covers its records (and those of every earlier write) returned.

mod dir;
mod file;
mod flusher;
mod index;
mod record;
mod recovery;
mod segment;
mod shared;
mod sim_fs;

pub use dir::create_dir_all_durable;
pub use file::{RealFs, WalFile, WalFs};
pub use segment::{segment_seqs_in, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MIN};
pub use sim_fs::{PowerCut, SimFs};

use crate::execution::Execution;
use crate::raft_types::{Entry, LogId, Vote};
use flusher::{Completion, Effect, Flusher, FlusherConfig, Request};
use record::EncodedRecord;
use shared::{Shared, State};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Requests that may wait in the flusher's queue. openraft keeps a bounded number of log writes
/// in flight, so this is rarely reached; when it is, submitters wait (backpressure) instead of
/// the queue, and the memory of encoded entries it holds, growing without limit. 1024 lets a
/// burst of single-entry appends queue up behind one `fdatasync` and join the next round.
const QUEUE_REQUESTS_MAX: usize = 1024;

/// Default number of written entries kept in memory. Replication to a follower and apply read
/// recent entries, enough to cover the usual lag.
pub const ENTRY_CACHE_MAX_DEFAULT: usize = 512;

/// Default bound on the record bytes of the written entries kept in memory. One entry can carry
/// a few thousand coalesced commands (~100-400 KiB as written, about twice that decoded), so
/// 512 of them were ~100-200 MiB; this keeps a full cache near 40 MiB of memory. Older
/// entries are read from disk (the OS page cache).
pub const ENTRY_CACHE_BYTES_MAX_DEFAULT: u64 = 16 << 20;

/// WAL settings.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Size of new segment files (preallocated). At least [`SEGMENT_BYTES_MIN`]. A segment
    /// started for a record larger than this is sized to fit that record.
    pub segment_bytes: u64,
    /// Written entries kept in memory for reads.
    pub entry_cache_max: usize,
    /// Record bytes of the written entries kept in memory for reads.
    pub entry_cache_bytes_max: u64,
    /// TEST ONLY, UNSAFE: never `fdatasync` (files or directories), yet report writes durable.
    /// Exists so the power-cut test can show it detects lost acknowledged writes.
    pub unsafe_skip_sync_for_tests: bool,
    /// Where the WAL's blocking work runs: the flusher on a thread of its own and reads of
    /// evicted entries on tokio's blocking pool, or both on the runtime that opens the WAL
    /// (a flusher task, inline reads).
    pub execution: Execution,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            entry_cache_max: ENTRY_CACHE_MAX_DEFAULT,
            entry_cache_bytes_max: ENTRY_CACHE_BYTES_MAX_DEFAULT,
            unsafe_skip_sync_for_tests: false,
            execution: Execution::Threads,
        }
    }
}

/// Why a WAL could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The storage failed.
    #[error("wal i/o: {0}")]
    Io(#[from] io::Error),
    /// Damage that is not a torn tail (or a record this build cannot read): refuse to start.
    #[error("wal corrupt at {path}:{offset}: {reason}")]
    Corrupt {
        /// Segment (or WAL directory) where it was found.
        path: PathBuf,
        /// Byte offset in that segment.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl From<WalError> for io::Error {
    fn from(e: WalError) -> Self {
        match e {
            WalError::Io(e) => e,
            corrupt @ WalError::Corrupt { .. } => {
                io::Error::new(io::ErrorKind::InvalidData, corrupt.to_string())
            }
        }
    }
}

/// WAL counters since open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalStats {
    /// `fdatasync` calls on segments: one per group-commit round that someone waits on, plus
    /// one per segment rotation.
    pub syncs: u64,
    /// Records written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Segment files currently in the WAL.
    pub segments: u64,
}

/// The write-ahead log: Raft entries, vote, committed log id.
///
/// Writes are submitted from async code and completed by the flusher thread; reads are served
/// from memory or from the segments. Dropping the `Wal` lets the flusher finish what is queued
/// and waits for it (a flusher task finishes it on its runtime).
#[derive(Debug)]
pub struct Wal {
    shared: Arc<Shared>,
    /// Queue to the flusher; `None` only while dropping.
    tx: Option<mpsc::Sender<Request>>,
    /// The flusher's thread; `None` for a flusher task (`Execution::RuntimeOnly`), which ends
    /// by itself once the queue is closed and drained.
    flusher: Option<std::thread::JoinHandle<()>>,
    execution: Execution,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "wal flusher stopped")
}

impl Wal {
    /// Opens (or creates) the WAL in `dir`: recovers its state, repairing a torn tail, and starts
    /// the flusher. Refuses to open a WAL with damage that is not a torn tail.
    pub fn open(fs: Arc<dyn WalFs>, dir: &Path, options: WalOptions) -> Result<Wal, WalError> {
        if options.segment_bytes < SEGMENT_BYTES_MIN {
            let msg = format!(
                "segment_bytes {} is below {SEGMENT_BYTES_MIN}",
                options.segment_bytes
            );
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg).into());
        }
        let runtime = match options.execution {
            Execution::Threads => None,
            Execution::RuntimeOnly => Some(tokio::runtime::Handle::try_current().map_err(|e| {
                io::Error::other(format!("Execution::RuntimeOnly needs a tokio runtime: {e}"))
            })?),
        };
        let rec = recovery::recover(&*fs, dir, &options)?;
        let purged = rec.log.purged();
        let last_log_id = rec.log.last_log_id();
        let files = rec
            .segments
            .iter()
            .map(|s| (s.seq, s.file.clone()))
            .collect();
        let state = State {
            log: rec.log,
            vote: rec.vote,
            committed: rec.committed,
            files,
            poisoned: None,
            next_write_id: 1,
        };
        let shared = Arc::new(Shared::new(state));
        let cfg = FlusherConfig {
            fs,
            dir: dir.to_path_buf(),
            segment_bytes: options.segment_bytes,
            skip_sync: options.unsafe_skip_sync_for_tests,
        };
        let header = (rec.vote, rec.committed, purged);
        let flusher = Flusher::start(
            cfg,
            shared.clone(),
            rec.segments,
            rec.next_seq,
            rec.next_group_seq,
            header,
        )?;
        let (tx, rx) = mpsc::channel(QUEUE_REQUESTS_MAX);
        // `runtime` is set exactly for `Execution::RuntimeOnly`.
        let handle = match runtime {
            None => Some(
                std::thread::Builder::new()
                    .name("wal-flusher".into())
                    .spawn(move || flusher.run(rx))?,
            ),
            Some(runtime) => {
                drop(runtime.spawn(flusher.run_on_runtime(rx)));
                None
            }
        };
        tracing::info!(
            dir = %dir.display(),
            segments = shared.stats.segments.load(Ordering::Relaxed),
            last_log_id = ?last_log_id,
            last_purged_log_id = ?purged,
            "wal: opened"
        );
        Ok(Wal {
            shared,
            tx: Some(tx),
            flusher: handle,
            execution: options.execution,
        })
    }

    /// Queues a write. `build` runs under the state lock, in queue order: it updates the
    /// in-memory state and returns the records.
    async fn submit(
        &self,
        done: Option<Completion>,
        build: impl FnOnce(&mut State) -> io::Result<Vec<(EncodedRecord, Effect)>>,
    ) -> io::Result<()> {
        let tx = self.tx.as_ref().ok_or_else(closed)?;
        let permit = tx.reserve().await.map_err(|_| closed())?;
        let mut st = self.shared.lock();
        if let Some(why) = &st.poisoned {
            return Err(io::Error::other(format!("wal failed earlier: {why}")));
        }
        let records = build(&mut st)?;
        permit.send(Request { records, done });
        Ok(())
    }

    /// Submits a write and waits until it is durable.
    async fn submit_and_wait(
        &self,
        build: impl FnOnce(&mut State) -> io::Result<Vec<(EncodedRecord, Effect)>>,
    ) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        let done: Completion = Box::new(move |result| {
            // The waiter may have been cancelled; nothing else to tell.
            let _ = tx.send(result);
        });
        self.submit(Some(done), build).await?;
        rx.await.map_err(|_| closed())?
    }

    /// Appends entries, which must directly follow the log. They are readable when this returns;
    /// `on_durable` fires once they (and every earlier write) are synced, or with the error.
    ///
    /// Any entry up to the record size limit is accepted, whatever the segment size: one that
    /// does not fit in a segment of the configured size gets a segment sized to fit it.
    pub async fn append<F>(&self, entries: Vec<Entry>, on_durable: F) -> io::Result<()>
    where
        F: FnOnce(io::Result<()>) + Send + 'static,
    {
        let mut records = Vec::with_capacity(entries.len());
        for entry in &entries {
            // Refuses only an entry above the record size limit.
            records.push(EncodedRecord::entry(entry)?);
        }
        self.submit(Some(Box::new(on_durable)), move |st| {
            check_follows(st, &entries)?;
            let mut out = Vec::with_capacity(entries.len());
            for (entry, record) in entries.into_iter().zip(records) {
                let (index, write_id) = (entry.log_id.index, st.next_write_id);
                st.next_write_id += 1;
                let slot = index::Slot {
                    log_id: entry.log_id,
                    loc: None,
                    entry: Some(entry),
                    write_id,
                };
                st.log
                    .push(slot)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                out.push((record, Effect::Entry { index, write_id }));
            }
            Ok(out)
        })
        .await
    }

    /// Saves the vote; returns once it is durable (and readable through [`Wal::vote`]).
    pub async fn save_vote(&self, vote: &Vote) -> io::Result<()> {
        let record = EncodedRecord::vote(vote)?;
        let vote = *vote;
        self.submit_and_wait(move |_| Ok(vec![(record, Effect::Vote(vote))]))
            .await
    }

    /// Records the committed log id. Returns once queued, without waiting for a sync: the
    /// record is written at once but made durable by the next write that waits for one (it
    /// costs no `fdatasync` of its own). Losing it in a crash only means re-applying from an
    /// older committed point, which openraft handles (it is an optimization).
    pub async fn save_committed(&self, committed: Option<LogId>) -> io::Result<()> {
        let record = EncodedRecord::committed(&committed)?;
        self.submit(None, move |st| {
            st.committed = committed;
            Ok(vec![(record, Effect::Committed(committed))])
        })
        .await
    }

    /// Drops every entry after `last` (all for `None`); returns once that is durable.
    pub async fn truncate_after(&self, last: Option<LogId>) -> io::Result<()> {
        let record = EncodedRecord::truncate_after(&last)?;
        self.submit_and_wait(move |st| {
            st.log.truncate_after(last.map(|l| l.index));
            Ok(vec![(record, Effect::TruncateAfter)])
        })
        .await
    }

    /// Purges every entry up to and including `upto`; returns once that is durable and the
    /// segments holding only purged entries are deleted.
    pub async fn purge(&self, upto: LogId) -> io::Result<()> {
        let record = EncodedRecord::purge(&upto)?;
        self.submit_and_wait(move |st| {
            st.log.purge(upto);
            Ok(vec![(record, Effect::Purge(upto))])
        })
        .await
    }

    /// Waits until every write submitted before this call is durable.
    pub async fn sync(&self) -> io::Result<()> {
        self.submit_and_wait(|_| Ok(Vec::new())).await
    }

    /// Last durable vote.
    pub fn vote(&self) -> Option<Vote> {
        self.shared.lock().vote
    }

    /// Last committed log id recorded.
    pub fn committed(&self) -> Option<LogId> {
        self.shared.lock().committed
    }

    /// Last purged log id.
    pub fn last_purged_log_id(&self) -> Option<LogId> {
        self.shared.lock().log.purged()
    }

    /// Log id of the last entry, or the last purged log id if there is no entry.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.shared.lock().log.last_log_id()
    }

    /// `(last purged log id, last log id)`, read together.
    pub fn log_bounds(&self) -> (Option<LogId>, Option<LogId>) {
        let st = self.shared.lock();
        (st.log.purged(), st.log.last_log_id())
    }

    /// Entries with index in `start..end`, at most `max` of them, oldest first. May read the
    /// disk (blocking); see [`Wal::is_cached`].
    pub fn read(&self, start: u64, end: u64, max: usize) -> io::Result<Vec<Entry>> {
        self.shared.read(start, end, max)
    }

    /// Whether reading `start..end` is served from memory alone (no blocking I/O).
    pub fn is_cached(&self, start: u64, end: u64) -> bool {
        self.shared.is_cached(start, end)
    }

    /// Where this WAL's blocking work runs (as opened).
    pub fn execution(&self) -> Execution {
        self.execution
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        let c = &self.shared.stats;
        WalStats {
            syncs: c.syncs.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            segments: c.segments.load(Ordering::Relaxed),
        }
    }
}

/// Checks that `entries` are contiguous and directly follow the log.
fn check_follows(st: &State, entries: &[Entry]) -> io::Result<()> {
    let Some(first) = entries.first() else {
        return Ok(());
    };
    let start = first.log_id.index;
    let expected = st.log.next_index().unwrap_or(start);
    let contiguous = entries
        .iter()
        .enumerate()
        .all(|(i, e)| e.log_id.index == start + i as u64);
    if start != expected || !contiguous {
        let msg = format!(
            "append of {} entries from index {start} leaves a hole (next index is {expected})",
            entries.len()
        );
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    Ok(())
}

impl Drop for Wal {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(handle) = self.flusher.take() {
            if handle.thread().id() == std::thread::current().id() {
                // Dropped by a completion running on the flusher itself: it exits on its own
                // once the queue is drained; joining here would deadlock.
                return;
            }
            if handle.join().is_err() {
                tracing::error!("wal: flusher thread panicked");
            }
        }
    }
}

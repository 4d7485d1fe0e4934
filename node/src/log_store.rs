//! openraft log storage (`RaftLogStorage` + `RaftLogReader`) over the project WAL.
//!
//! Every write goes to the [`Wal`], which serializes entries, vote, committed, truncation and
//! purge through one flusher; `append` reports completion to openraft only after the covering
//! `fdatasync`. `save_vote`, `truncate_after` and `purge` return once durable.
//! `save_committed` returns once queued: the committed log id is an optimization (it lets the
//! state machine be re-applied up to it on restart), and an older value after a crash is safe.

use crate::raft_types::{Entry, IOFlushed, LogId, LogState, TypeConfig, Vote};
use crate::wal::{RealFs, Wal, WalFs, WalOptions, WalStats};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

/// Most entries one `limited_get_log_entries` call returns: a few replication payloads
/// (openraft sends at most `max_payload_entries`, 300 by default, per request), so a lagging
/// follower's catch-up read stays bounded in memory and time.
const LIMITED_READ_ENTRIES_MAX: usize = 1024;

/// Entries read from the log per step when streaming entries to the state machine. openraft's
/// default reads the whole range at once; after a long outage that range holds thousands of
/// entries of up to a few hundred KiB each, so it is read in bounded steps instead.
const APPLY_STREAM_ENTRIES_MAX: u64 = 64;

/// The Raft log store. Cheap to clone: clones share one WAL (the log reader is a clone).
#[derive(Debug, Clone)]
pub struct LogStore {
    wal: Arc<Wal>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir` on the real file system.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        Self::open_with_options(Arc::new(RealFs), dir, WalOptions::default())
    }

    /// Opens (or creates) the log in `dir` on `fs` (e.g. a `SimFs`), with default options.
    pub fn open_with_fs(fs: Arc<dyn WalFs>, dir: &Path) -> io::Result<LogStore> {
        Self::open_with_options(fs, dir, WalOptions::default())
    }

    /// Opens (or creates) the log in `dir` on `fs` with `options`.
    pub fn open_with_options(
        fs: Arc<dyn WalFs>,
        dir: &Path,
        options: WalOptions,
    ) -> io::Result<LogStore> {
        let wal = Wal::open(fs, dir, options)?;
        Ok(LogStore { wal: Arc::new(wal) })
    }

    /// WAL counters (syncs, records, bytes, segments) since open.
    pub fn stats(&self) -> WalStats {
        self.wal.stats()
    }

    /// Reads `start..end` (at most `max` entries); disk reads run where the WAL's execution
    /// says (the blocking pool, or inline).
    async fn read(&self, start: u64, end: u64, max: usize) -> io::Result<Vec<Entry>> {
        if self.wal.is_cached(start, end) {
            return self.wal.read(start, end, max);
        }
        let wal = self.wal.clone();
        let read = move || wal.read(start, end, max);
        self.wal.execution().blocking("wal read", read).await
    }
}

/// `range` as `start..end` (end exclusive).
fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB>(&mut self, range: RB) -> Result<Vec<Entry>, io::Error>
    where
        RB: RangeBounds<u64> + Clone + Debug + OptionalSend,
    {
        let (start, end) = bounds(&range);
        self.read(start, end, usize::MAX).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.wal.vote())
    }

    async fn entries_stream<RB>(
        &mut self,
        range: RB,
    ) -> impl futures::Stream<Item = Result<Entry, io::Error>> + OptionalSend
    where
        RB: RangeBounds<u64> + Clone + Debug + OptionalSend,
    {
        let (start, end) = bounds(&range);
        let store = self.clone();
        let steps = futures::stream::unfold(Some(start), move |next| {
            let store = store.clone();
            async move {
                let from = next?;
                if from >= end {
                    return None;
                }
                let to = end.min(from.saturating_add(APPLY_STREAM_ENTRIES_MAX));
                match store.read(from, to, usize::MAX).await {
                    // Past the end of the log (an unbounded range): done.
                    Ok(entries) if entries.is_empty() => None,
                    Ok(entries) => {
                        let items: Vec<Result<Entry, io::Error>> =
                            entries.into_iter().map(Ok).collect();
                        Some((futures::stream::iter(items), Some(to)))
                    }
                    Err(e) => Some((futures::stream::iter(vec![Err(e)]), None)),
                }
            }
        });
        futures::StreamExt::flatten(steps)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        self.read(start, end, LIMITED_READ_ENTRIES_MAX).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState, io::Error> {
        let (last_purged_log_id, last_log_id) = self.wal.log_bounds();
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.wal.save_vote(vote).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.wal.save_committed(committed).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.wal.committed())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.wal
            .append(entries, move |result| callback.io_completed(result))
            .await
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.wal.truncate_after(last_log_id).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.wal.purge(log_id).await
    }
}

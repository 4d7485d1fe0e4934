//! State shared by the WAL handle (callers) and the flusher thread, and the read path.
//!
//! One mutex guards the in-memory log, the vote, committed and the open segment handles. Callers
//! update the log when they submit (so entries are readable as soon as `append` returns); the
//! flusher fills in entry locations and publishes the vote once they are durable. Disk reads
//! happen outside the lock, through cloned file handles (a segment removed meanwhile stays
//! readable through its open handle).

use super::file::WalFile;
use super::index::{Loc, LogIndex};
use super::record::decode_entry_frame;
use crate::raft_types::{Entry, LogId, Vote};
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Largest single read when fetching adjacent uncached entries: one `pread` per run of adjacent
/// records, capped so a long catch-up read does not allocate one huge buffer.
const READ_RUN_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Counters behind `WalStats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub syncs: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub segments: AtomicU64,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    /// Live log.
    pub log: LogIndex,
    /// Last durable vote.
    pub vote: Option<Vote>,
    /// Last committed log id submitted.
    pub committed: Option<LogId>,
    /// Open segments by sequence number, for reads.
    pub files: BTreeMap<u64, Arc<dyn WalFile>>,
    /// Set after a write failed: why. Every later write fails.
    pub poisoned: Option<String>,
    /// Next append identifier (see `Slot::write_id`).
    pub next_write_id: u64,
}

/// The shared half of the WAL.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Metrics, updated by the flusher.
    pub stats: Counters,
}

/// An uncached entry to fetch from disk.
struct Miss {
    /// Position in the result.
    pos: usize,
    loc: Loc,
    log_id: LogId,
    file: Arc<dyn WalFile>,
}

fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Shared {
    pub fn new(state: State) -> Self {
        let stats = Counters::default();
        stats
            .segments
            .store(state.files.len() as u64, Ordering::Relaxed);
        Self {
            state: Mutex::new(state),
            stats,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock may have left the log half-updated: do not go on.
        self.state
            .lock()
            .expect("wal state lock poisoned by a panic")
    }

    pub fn poisoned(&self) -> Option<String> {
        self.lock().poisoned.clone()
    }

    pub fn poison(&self, why: String) {
        self.lock().poisoned.get_or_insert(why);
    }

    pub fn add_file(&self, seq: u64, file: Arc<dyn WalFile>) {
        self.lock().files.insert(seq, file);
        self.stats.segments.fetch_add(1, Ordering::Relaxed);
    }

    pub fn remove_file(&self, seq: u64) {
        if self.lock().files.remove(&seq).is_some() {
            self.stats.segments.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Publishes a durable round: where its entries are, and its vote.
    pub fn publish(&self, locs: &[(u64, u64, Loc)], vote: Option<Vote>) {
        let mut st = self.lock();
        for &(index, write_id, loc) in locs {
            st.log.set_loc(index, write_id, loc);
        }
        if vote.is_some() {
            st.vote = vote;
        }
        st.log.evict();
    }

    /// Whether every live entry in `start..end` is in memory.
    pub fn is_cached(&self, start: u64, end: u64) -> bool {
        let st = self.lock();
        let live = st.log.live_range();
        (start.max(live.start)..end.min(live.end))
            .all(|i| st.log.get(i).is_some_and(|s| s.entry.is_some()))
    }

    /// Live entries in `start..end`, at most `max` of them, from memory or disk.
    pub fn read(&self, start: u64, end: u64, max: usize) -> io::Result<Vec<Entry>> {
        let mut out: Vec<Option<Entry>> = Vec::new();
        let mut misses = Vec::new();
        {
            let st = self.lock();
            let live = st.log.live_range();
            let from = start.max(live.start);
            let to = end.min(live.end).min(from.saturating_add(max as u64));
            for index in from..to {
                let slot = st.log.get(index).expect("index inside the live range");
                match (&slot.entry, slot.loc) {
                    (Some(entry), _) => out.push(Some(entry.clone())),
                    (None, Some(loc)) => {
                        let file = st.files.get(&loc.seq).cloned().ok_or_else(|| {
                            io::Error::other(format!(
                                "segment {} holding entry {index} is not open",
                                loc.seq
                            ))
                        })?;
                        misses.push(Miss {
                            pos: out.len(),
                            loc,
                            log_id: slot.log_id,
                            file,
                        });
                        out.push(None);
                    }
                    (None, None) => {
                        return Err(io::Error::other(format!(
                            "entry {index} is neither cached nor written"
                        )))
                    }
                }
            }
        }
        let mut first = 0;
        while first < misses.len() {
            let run_end = run_end(&misses, first);
            read_run(&misses[first..run_end], &mut out)?;
            first = run_end;
        }
        debug_assert!(out.iter().all(Option::is_some));
        Ok(out.into_iter().flatten().collect())
    }
}

/// End (exclusive) of the run of adjacent frames starting at `misses[first]`.
fn run_end(misses: &[Miss], first: usize) -> usize {
    let start = misses[first].loc;
    let mut end = first + 1;
    while let Some(next) = misses.get(end) {
        let prev = misses[end - 1].loc;
        let adjacent = next.loc.seq == start.seq && next.loc.offset == prev.offset + prev.len;
        if !adjacent || next.loc.offset + next.loc.len - start.offset > READ_RUN_BYTES_MAX {
            break;
        }
        end += 1;
    }
    end
}

/// Reads one run of adjacent frames with a single read and decodes (and checks) each entry.
fn read_run(run: &[Miss], out: &mut [Option<Entry>]) -> io::Result<()> {
    let (first, last) = (&run[0], &run[run.len() - 1]);
    let start = first.loc.offset;
    let mut buf = vec![0u8; (last.loc.offset + last.loc.len - start) as usize];
    first.file.read_at(start, &mut buf)?;
    for miss in run {
        let at = (miss.loc.offset - start) as usize;
        let frame = &buf[at..at + miss.loc.len as usize];
        let entry = decode_entry_frame(frame).map_err(|why| {
            invalid_data(format!(
                "entry {} at segment {} offset {}: {why}",
                miss.log_id.index, miss.loc.seq, miss.loc.offset
            ))
        })?;
        if entry.log_id != miss.log_id {
            return Err(invalid_data(format!(
                "entry at index {} has log id {}, expected {}",
                miss.log_id.index, entry.log_id, miss.log_id
            )));
        }
        out[miss.pos] = Some(entry);
    }
    Ok(())
}

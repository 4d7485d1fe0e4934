//! Evidence of WAL compaction from the outside: `SegmentWatch` polls every node's `<data>/wal/`
//! directory on a background thread and counts segment-deletion events. Segments are named
//! `wal-<seq:020>.log` with a sequence number that only grows; a purge after a snapshot deletes
//! a prefix of whole segments, so each rise of the lowest sequence number present is one
//! deletion event (two purges between two polls count once: the count is a lower bound).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Pause between two polls of the WAL directories.
const POLL_INTERVAL_MS: u64 = 5;

/// What the watcher saw of one node's WAL directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalSegments {
    /// Segment sequence numbers present at the last poll.
    pub present: BTreeSet<u64>,
    /// Polls in which the lowest sequence number rose (a prefix of segments was deleted).
    pub deletion_events: u64,
    /// Segments seen once and gone later.
    pub segments_deleted: u64,
    /// Most segment files present at once.
    pub files_max: usize,
}

impl WalSegments {
    /// Folds one listing in.
    pub fn observe(&mut self, now: BTreeSet<u64>) {
        let gone = self.present.difference(&now).count() as u64;
        if let (Some(before), Some(after)) = (self.present.first(), now.first()) {
            if after > before {
                self.deletion_events += 1;
            }
        }
        self.segments_deleted += gone;
        self.files_max = self.files_max.max(now.len());
        self.present = now;
    }
}

/// Polls the WAL directories of a set of nodes until dropped.
pub struct SegmentWatch {
    seen: Arc<Mutex<BTreeMap<u64, WalSegments>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SegmentWatch {
    /// Starts watching `dirs` (node id -> that node's `<data>/wal` directory).
    pub fn start(dirs: BTreeMap<u64, PathBuf>) -> Self {
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                for (id, dir) in &dirs {
                    let now = node::wal::segment_seqs_in(dir);
                    let mut m = s.lock().expect("segment watch lock");
                    m.entry(*id)
                        .or_insert_with(WalSegments::default)
                        .observe(now);
                }
                std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
            }
        });
        Self {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// What was seen so far, by node id.
    pub fn snapshot(&self) -> BTreeMap<u64, WalSegments> {
        self.seen.lock().expect("segment watch lock").clone()
    }

    /// Fewest deletion events of any watched node (0 before the first poll).
    pub fn min_deletion_events(&self) -> u64 {
        let m = self.snapshot();
        m.values().map(|w| w.deletion_events).min().unwrap_or(0)
    }
}

impl Drop for SegmentWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

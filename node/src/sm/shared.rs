//! State shared by the store, its snapshot builders and its readers: the in-memory ledger at the
//! last applied index, the sled trees, the watch channels and the snapshot bookkeeping.

use super::meta::{SnapshotPointer, Trees};
use super::migrate::ColdProgress;
use super::postings::PostingsIndex;
use super::snapshot_build::SnapshotBuildStats;
use crate::execution::Execution;
use crate::raft_types::{LogId, StoredMembership};
use ledger::LedgerState;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::watch;

/// The in-memory state at one applied index. Everything a reader returns together comes from
/// one `Live` under one lock, so it is consistent at `last_applied`.
pub(crate) struct Live {
    /// The ledger after applying everything up to `last_applied`.
    pub(crate) ledger: LedgerState,
    /// Last applied log id.
    pub(crate) last_applied: Option<LogId>,
    /// Last applied membership.
    pub(crate) membership: StoredMembership,
    /// Per-account postings of every event up to `last_applied`: time travel and listings.
    pub(crate) postings: PostingsIndex,
    /// Log index up to which sled holds the event blocks. Equal to
    /// the applied index in steady state; ahead of it while a restart replays the log.
    pub(crate) history_index: u64,
}

impl Live {
    /// Index of the last applied entry (0 before the first).
    pub(crate) fn applied_index(&self) -> u64 {
        self.last_applied.as_ref().map_or(0, |l| l.index)
    }
}

/// Everything behind the `Arc` of `StateMachineStore` and `LedgerReader`.
pub(crate) struct Shared {
    /// Directory snapshot files live in.
    pub(crate) snapshot_dir: PathBuf,
    /// Where blocking and background work runs.
    pub(crate) execution: Execution,
    /// sled trees.
    pub(crate) trees: Trees,
    /// In-memory state; written only by apply and install (both on openraft's state-machine task).
    live: RwLock<Live>,
    /// Held shared by readers of the history trees and by snapshot builders, exclusively by
    /// install while it replaces the trees, so nobody sees a half-installed history.
    install_gate: RwLock<()>,
    /// Bumped by every install; a builder captured before an install must not publish.
    install_generation: AtomicU64,
    /// Last applied index, published after its writes are in sled.
    pub(crate) applied_tx: watch::Sender<u64>,
    /// Last event sequence, published after its events are in sled.
    pub(crate) event_seq_tx: watch::Sender<u64>,
    /// Current snapshot, if any.
    snapshot: Mutex<Option<SnapshotPointer>>,
    /// Makes temporary file names unique within this process.
    file_counter: AtomicU64,
    /// The last snapshot this process built.
    last_build: Mutex<Option<SnapshotBuildStats>>,
    /// Held by whoever appends the ledger's sealed history to the cold file (a history move, a
    /// snapshot build): generations go in whole and in order.
    cold_appends: Mutex<()>,
    /// Where the cold file stood after the sealed generations were appended (see `migrate`).
    cold_progress: Mutex<ColdProgress>,
    /// Records a history move has forgotten but is still freeing (they are in RAM until then).
    pub(crate) history_freeing: AtomicU64,
}

/// A panic while the state lock was held may have left the ledger half-applied: crash rather
/// than serve or persist it.
const POISONED: &str = "state machine lock poisoned by an earlier panic";

impl Shared {
    /// Assembles the shared state around an already loaded `Live`.
    pub(crate) fn new(
        snapshot_dir: PathBuf,
        execution: Execution,
        trees: Trees,
        live: Live,
    ) -> Self {
        let applied = live.applied_index();
        let seq = live.ledger.last_event_seq();
        Self {
            snapshot_dir,
            execution,
            trees,
            live: RwLock::new(live),
            install_gate: RwLock::new(()),
            install_generation: AtomicU64::new(0),
            applied_tx: watch::Sender::new(applied),
            event_seq_tx: watch::Sender::new(seq),
            snapshot: Mutex::new(None),
            file_counter: AtomicU64::new(0),
            last_build: Mutex::new(None),
            cold_appends: Mutex::new(()),
            cold_progress: Mutex::new(ColdProgress::default()),
            history_freeing: AtomicU64::new(0),
        }
    }

    /// Shared access to the in-memory state.
    pub(crate) fn live(&self) -> RwLockReadGuard<'_, Live> {
        self.live.read().expect(POISONED)
    }

    /// Shared access to the in-memory state if nobody holds it exclusively now (`None` while
    /// apply or install writes it).
    pub(crate) fn try_live(&self) -> Option<RwLockReadGuard<'_, Live>> {
        match self.live.try_read() {
            Ok(live) => Some(live),
            Err(std::sync::TryLockError::WouldBlock) => None,
            Err(std::sync::TryLockError::Poisoned(_)) => panic!("{POISONED}"),
        }
    }

    /// Exclusive access to the in-memory state (apply and install only).
    pub(crate) fn live_mut(&self) -> RwLockWriteGuard<'_, Live> {
        self.live.write().expect(POISONED)
    }

    /// Shared access to the history trees (readers, snapshot builders).
    pub(crate) fn history_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.install_gate.read().expect(POISONED)
    }

    /// Exclusive access to the history trees (install).
    pub(crate) fn install_gate(&self) -> RwLockWriteGuard<'_, ()> {
        self.install_gate.write().expect(POISONED)
    }

    /// Exclusive right to append sealed history to the cold file.
    pub(crate) fn cold_appends(&self) -> MutexGuard<'_, ()> {
        self.cold_appends.lock().expect(POISONED)
    }

    /// Where the cold file stood after the sealed generations were appended.
    pub(crate) fn cold_progress(&self) -> MutexGuard<'_, ColdProgress> {
        self.cold_progress.lock().expect(POISONED)
    }

    /// Current install generation.
    pub(crate) fn install_generation(&self) -> u64 {
        self.install_generation.load(Ordering::Acquire)
    }

    /// Records that an install replaced the state.
    pub(crate) fn bump_install_generation(&self) {
        self.install_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The current snapshot pointer.
    pub(crate) fn snapshot(&self) -> MutexGuard<'_, Option<SnapshotPointer>> {
        self.snapshot.lock().expect(POISONED)
    }

    /// Records a finished snapshot build.
    pub(crate) fn record_build(&self, stats: SnapshotBuildStats) {
        *self.last_build.lock().expect(POISONED) = Some(stats);
    }

    /// The last snapshot this process built, if any.
    pub(crate) fn last_build(&self) -> Option<SnapshotBuildStats> {
        *self.last_build.lock().expect(POISONED)
    }

    /// A fresh temporary path in the snapshot directory: `<prefix>-<pid>-<nanos>-<n>.tmp`.
    pub(crate) fn temp_path(&self, prefix: &str) -> PathBuf {
        let n = self.file_counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("{prefix}-{}-{nanos}-{n}.tmp", std::process::id());
        self.snapshot_dir.join(name)
    }

    /// A fresh final snapshot file name for a snapshot ending at `index`.
    pub(crate) fn snapshot_file_name(&self, index: u64) -> String {
        let n = self.file_counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("snap-{index:020}-{nanos}-{n}.snap")
    }

    /// Publishes the applied index and event sequence to waiting readers.
    pub(crate) fn publish(&self, applied_index: u64, last_event_seq: u64) {
        self.applied_tx.send_replace(applied_index);
        self.event_seq_tx.send_replace(last_event_seq);
    }
}

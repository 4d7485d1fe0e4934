//! `StateMachineStore`: the openraft state machine. A cheap clone of an `Arc`; openraft owns
//! one, the HTTP layer reads through [`LedgerReader`]s and the network layer asks it where to
//! put incoming snapshots.

use super::apply::{
    apply_chunk, entry_weight, ApplyOrder, Pending, APPLY_CHUNK_COMMANDS_MAX,
    APPLY_CHUNK_ENTRIES_MAX,
};
use super::load::open_shared;
use super::meta::SLED_CACHE_MB_DEFAULT;
use super::reader::LedgerReader;
use super::shared::Shared;
use super::snapshot_build::{current_snapshot, LedgerSnapshotBuilder};
use super::snapshot_file::SnapshotFile;
use super::snapshot_install::install_blocking;
use crate::execution::Execution;
use crate::raft_types::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tunables of a [`StateMachineStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache, in bytes (`--sled-cache-mb`).
    pub sled_cache_bytes: u64,
    /// Where apply chunks, snapshot installs, builds and expansions run: threads, or inline on
    /// the runtime (a simulation). sled keeps its own threads either way.
    pub execution: Execution,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sled_cache_bytes: SLED_CACHE_MB_DEFAULT << 20,
            execution: Execution::Threads,
        }
    }
}

/// The ledger state machine over sled (see the module docs of `sm` for layout and guarantees).
#[derive(Clone)]
pub struct StateMachineStore {
    /// Everything, shared with readers and snapshot builders.
    pub(super) shared: Arc<Shared>,
    /// Which entry indexes apply accepts.
    order: ApplyOrder,
}

impl StateMachineStore {
    /// Opens (or creates) the state machine under `dir` (sled in `dir/sm`, snapshots in
    /// `dir/snapshots`), loading the ledger, finishing an interrupted snapshot install, and
    /// restoring from the snapshot if sled lost writes the snapshot has. Blocking.
    pub fn open(dir: &Path) -> io::Result<Self> {
        Self::open_with(dir, &StoreOptions::default())
    }

    /// [`StateMachineStore::open`] with explicit [`StoreOptions`].
    pub fn open_with(dir: &Path, options: &StoreOptions) -> io::Result<Self> {
        Ok(Self {
            shared: open_shared(dir, options)?,
            order: ApplyOrder::Contiguous,
        })
    }

    /// TEST ONLY, UNSAFE: like [`StateMachineStore::open`], but apply accepts any entry index
    /// above the last applied one instead of exactly the next one. Exists for openraft's
    /// storage conformance suite, whose state-machine cases apply synthetic entries with gaps
    /// (e.g. index 3, then 5) that openraft itself never produces; a real node would lose the
    /// skipped entries' effects.
    pub fn open_accepting_apply_gaps_for_tests(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            shared: open_shared(dir, &StoreOptions::default())?,
            order: ApplyOrder::Increasing,
        })
    }

    /// A read handle for the HTTP layer.
    pub fn reader(&self) -> LedgerReader {
        LedgerReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Directory holding snapshot files.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.shared.snapshot_dir.clone()
    }

    /// A fresh path in the snapshot directory for a snapshot being received. Write the bytes
    /// there, fsync, then hand `SnapshotFile::open(path)` to openraft; install moves it into
    /// place. Leftovers (transfers that never completed) are removed on the next open.
    pub fn new_incoming_snapshot_path(&self) -> PathBuf {
        self.shared.temp_path("incoming")
    }

    /// Makes everything applied so far durable in sled (e.g. on graceful shutdown, to shorten
    /// the log replay of the next start). Blocking.
    pub fn flush(&self) -> io::Result<()> {
        self.shared.trees.flush_durable()
    }
}

/// Runs one apply chunk on the blocking pool: executing thousands of commands and committing
/// their sled batch takes long enough that doing it on a runtime worker starves the tasks that
/// send and answer heartbeats (on 2 cores this caused needless elections under load).
async fn apply_off_runtime(
    shared: &Arc<Shared>,
    chunk: Vec<Pending>,
    order: ApplyOrder,
) -> io::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let shared = Arc::clone(shared);
    let execution = shared.execution;
    let apply = move || apply_chunk(&shared, chunk, order);
    execution.blocking("apply", apply).await
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = LedgerSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let live = self.shared.live();
        Ok((live.last_applied, live.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        let mut chunk: Vec<Pending> = Vec::new();
        let mut commands = 0;
        while let Some(item) = entries.next().await {
            let item = item?;
            commands += entry_weight(&item.0);
            chunk.push(item);
            if chunk.len() == APPLY_CHUNK_ENTRIES_MAX || commands >= APPLY_CHUNK_COMMANDS_MAX {
                apply_off_runtime(&self.shared, std::mem::take(&mut chunk), self.order).await?;
                commands = 0;
            }
        }
        apply_off_runtime(&self.shared, chunk, self.order).await
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        Some(LedgerSnapshotBuilder::capture(Arc::clone(&self.shared)))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        LedgerSnapshotBuilder::capture(Arc::clone(&self.shared))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let shared = Arc::clone(&self.shared);
        let meta = meta.clone();
        // A local file (a handle from a store in this process) is expanded first, as it would
        // be for the network.
        let snapshot = SnapshotFile::open(snapshot.file_to_send().await?)?;
        let execution = shared.execution;
        let install = move || install_blocking(&shared, &meta, &snapshot);
        execution.blocking("snapshot install", install).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        current_snapshot(&self.shared)
    }
}

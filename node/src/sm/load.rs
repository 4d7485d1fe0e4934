//! Opening the store: cut the cold history file back to what the current (local) snapshot
//! references, load the working set from that snapshot, read sled's history mark, open the
//! postings index at it (pages on disk, recent tails from the last events), finish an
//! interrupted install (or install a full file found as the current snapshot), and tidy the
//! snapshot directory. sled that lost history a snapshot relies on is refused: the log before
//! the snapshot may be purged, so only the peers have that history now.

use super::codec::invalid_data;
use super::history::open_postings;
use super::keys::meta_key;
use super::meta::{AppliedMeta, Trees};
use super::postings::PostingsIndex;
use super::shared::{Live, Shared};
use super::snapshot_file::{read_header, HistoryRef, SnapshotFile};
use super::snapshot_install::{install_blocking, verify};
use super::store::StoreOptions;
use crate::wal::{create_dir_all_durable, RealFs};
use ledger::LedgerState;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Opens (or creates) the state machine under `dir`: sled in `dir/sm`, snapshots in
/// `dir/snapshots`.
///
/// The ledger comes back as of the current snapshot (or empty without one); openraft then
/// replays the log from there (`applied_state` reports the snapshot's log id). sled's history
/// mark says which replayed entries already have their rows.
pub(crate) fn open_shared(dir: &Path, options: &StoreOptions) -> io::Result<Arc<Shared>> {
    let sled_dir = dir.join("sm");
    let snapshot_dir = dir.join("snapshots");
    // Durable in their parents, or a power cut could take the directories (and what is synced
    // inside them) away.
    create_dir_all_durable(&RealFs, &sled_dir)?;
    create_dir_all_durable(&RealFs, &snapshot_dir)?;
    remove_files(&snapshot_dir, |name| name.ends_with(".tmp"))?;
    let started = std::time::Instant::now();
    let trees = Trees::open(&sled_dir, options.sled_cache_bytes, &dir.join("history"))?;
    let stores_ms = started.elapsed().as_millis() as u64;
    let installing = trees.read_pointer(meta_key::INSTALLING)?;
    let current = trees.read_pointer(meta_key::SNAPSHOT)?;
    let applied = trees.read_applied()?.unwrap_or_default();
    // A full file as the current snapshot (planted by hand, or left by an older build) is
    // installed again below, like an interrupted install.
    let mut restore = None;
    let current_history = match (&installing, &current) {
        (None, Some(ptr)) => Some(read_header(&snapshot_dir.join(&ptr.file_name))?.history),
        _ => None,
    };
    let live = match (&installing, &current, current_history) {
        // The trees are half replaced: their content is meaningless until reinstalled.
        (Some(_), _, _) => empty_live(&trees),
        (None, Some(ptr), Some(None)) => {
            restore = Some(ptr.clone());
            empty_live(&trees)
        }
        (None, Some(ptr), Some(Some(history))) => {
            let file = SnapshotFile::open(snapshot_dir.join(&ptr.file_name))?;
            if ptr.meta.last_log_id > applied.last_applied {
                return Err(invalid_data(format!(
                    "the history in sled ends before the snapshot {} that relies on it: wipe the \
                     node's data directory and let it rejoin from its peers",
                    ptr.meta
                )));
            }
            // Records moved to the cold file after this snapshot are replayed from the log.
            trees.cold.cut_to(history.cold_end_bytes, history.digest)?;
            let cut_ms = started.elapsed().as_millis() as u64;
            let verified = verify(file.path(), &ptr.meta, &trees.cold)?;
            tracing::info!(
                stores_ms,
                cut_ms,
                verified_ms = started.elapsed().as_millis() as u64,
                "state machine: stores opened, cold history cut, snapshot verified"
            );
            let history_index = history_index(&trees, &applied)?;
            let postings = open_postings(&trees, &applied)?;
            Live {
                ledger: verified.ledger,
                last_applied: ptr.meta.last_log_id,
                membership: ptr.meta.last_membership.clone(),
                postings,
                history_index,
            }
        }
        // No snapshot: the ledger starts empty and the whole log is replayed (records moved
        // to the cold file before a crash are made again).
        (None, _, _) => {
            trees.cold.cut_to(0, ledger::HistoryDigest::default())?;
            Live {
                history_index: history_index(&trees, &applied)?,
                postings: open_postings(&trees, &applied)?,
                ..empty_live(&trees)
            }
        }
    };
    let mut live = live;
    // Every state reads the history that left memory from the cold file; what it holds
    // beyond the state's index (copied before a crash lost the snapshot) stays invisible.
    live.ledger.attach_cold_history(trees.cold.clone());
    live.ledger.set_history_horizon(live.applied_index() + 1);
    let shared = Arc::new(Shared::new(
        snapshot_dir.clone(),
        options.execution,
        trees,
        live,
    ));
    let cold = &shared.trees.cold;
    let history = HistoryRef {
        cold_end_bytes: cold.end_bytes(),
        digest: cold.digest(),
    };
    shared.cold_progress().reset(history);
    shared.snapshot().clone_from(&current);
    if let Some(ptr) = installing {
        tracing::warn!(file = %ptr.file_name, "resuming an interrupted snapshot install");
        let file = SnapshotFile::open(snapshot_dir.join(&ptr.file_name))?;
        install_blocking(&shared, &ptr.meta, &file)?;
    } else if let Some(ptr) = restore {
        tracing::warn!(file = %ptr.file_name, "current snapshot is a full file; installing it");
        let file = SnapshotFile::open(snapshot_dir.join(&ptr.file_name))?;
        install_blocking(&shared, &ptr.meta, &file)?;
    }
    let keep = shared.snapshot().as_ref().map(|p| p.file_name.clone());
    remove_files(&snapshot_dir, |name| {
        name.ends_with(".snap") && Some(name) != keep.as_deref()
    })?;
    Ok(shared)
}

fn empty_live(trees: &Trees) -> Live {
    Live {
        ledger: LedgerState::new(),
        last_applied: None,
        membership: Default::default(),
        postings: PostingsIndex::empty(trees.postings.clone()),
        history_index: 0,
    }
}

/// The history mark recorded in `applied`, checked against the events table it describes.
fn history_index(trees: &Trees, applied: &AppliedMeta) -> io::Result<u64> {
    let last_stored_seq = super::history::last_stored_seq(trees)?;
    if last_stored_seq != applied.last_event_seq {
        return Err(invalid_data(format!(
            "applied meta says event seq {} but the events tree ends at {last_stored_seq}",
            applied.last_event_seq
        )));
    }
    Ok(applied.last_applied.as_ref().map_or(0, |l| l.index))
}

/// Removes files in `dir` whose name satisfies `doomed`.
fn remove_files(dir: &Path, doomed: impl Fn(&str) -> bool) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().is_some_and(&doomed) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

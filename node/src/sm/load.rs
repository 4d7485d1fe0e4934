//! Opening the store: load the ledger from sled, finish an interrupted install, fall back to the
//! snapshot when sled lost writes it had before the snapshot, and tidy the snapshot directory.

use super::codec::{decode, invalid_data, sled_err};
use super::keys::{meta_key, u64_suffix};
use super::meta::Trees;
use super::shared::{Live, Shared};
use super::snapshot_file::SnapshotFile;
use super::snapshot_install::install_blocking;
use ledger::LedgerState;
use ledger::RestoreParts;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Opens (or creates) the state machine under `dir`: sled in `dir/sm`, snapshots in
/// `dir/snapshots`.
pub(crate) fn open_shared(dir: &Path) -> io::Result<Arc<Shared>> {
    let sled_dir = dir.join("sm");
    let snapshot_dir = dir.join("snapshots");
    fs::create_dir_all(&sled_dir)?;
    fs::create_dir_all(&snapshot_dir)?;
    remove_files(&snapshot_dir, |name| name.ends_with(".tmp"))?;
    let trees = Trees::open(&sled_dir)?;
    let installing = trees.read_pointer(meta_key::INSTALLING)?;
    let current = trees.read_pointer(meta_key::SNAPSHOT)?;
    let live = match installing {
        // The trees are half replaced: their content is meaningless until reinstalled.
        Some(_) => empty_live(),
        None => load_live(&trees)?,
    };
    let last_applied = live.last_applied;
    let shared = Arc::new(Shared::new(snapshot_dir.clone(), trees, live));
    shared.snapshot().clone_from(&current);
    if let Some(ptr) = installing {
        tracing::warn!(file = %ptr.file_name, "resuming an interrupted snapshot install");
        let file = SnapshotFile::open(snapshot_dir.join(&ptr.file_name))?;
        install_blocking(&shared, &ptr.meta, &file)?;
    } else if let Some(ptr) = current
        .as_ref()
        .filter(|p| p.meta.last_log_id > last_applied)
    {
        // The log before the snapshot may already be purged: sled lost writes that only the
        // snapshot still has.
        tracing::warn!(file = %ptr.file_name, "state machine is behind its snapshot; restoring it");
        let file = SnapshotFile::open(snapshot_dir.join(&ptr.file_name))?;
        install_blocking(&shared, &ptr.meta, &file)?;
    }
    let keep = shared.snapshot().as_ref().map(|p| p.file_name.clone());
    remove_files(&snapshot_dir, |name| {
        name.ends_with(".snap") && Some(name) != keep.as_deref()
    })?;
    Ok(shared)
}

fn empty_live() -> Live {
    Live {
        ledger: LedgerState::new(),
        last_applied: None,
        membership: Default::default(),
    }
}

/// Rebuilds the in-memory state from the trees and checks it against the applied meta.
fn load_live(trees: &Trees) -> io::Result<Live> {
    let Some(applied) = trees.read_applied()? else {
        return Ok(empty_live());
    };
    let mut parts = RestoreParts {
        last_event_seq: applied.last_event_seq,
        last_timestamp_us: applied.last_timestamp_us,
        applied_hash: applied.applied_hash,
        ..RestoreParts::default()
    };
    for row in trees.accounts.iter() {
        parts.accounts.push(decode(&row.map_err(sled_err)?.1)?);
    }
    for row in trees.transfers.iter() {
        parts.transfers.push(decode(&row.map_err(sled_err)?.1)?);
    }
    for row in trees.idempotency.iter() {
        let (k, v) = row.map_err(sled_err)?;
        let id = String::from_utf8(k.to_vec())
            .map_err(|_| invalid_data("non-utf8 command id".to_owned()))?;
        parts.idempotency.push((id, decode(&v)?));
    }
    let ledger = LedgerState::restore(parts);
    ledger
        .check_invariants()
        .map_err(|v| invalid_data(format!("stored state violates an invariant: {v}")))?;
    let last_stored_seq = match trees.events.last().map_err(sled_err)? {
        Some((k, _)) => u64_suffix(&k).unwrap_or(0),
        None => 0,
    };
    if last_stored_seq != applied.last_event_seq {
        return Err(invalid_data(format!(
            "applied meta says event seq {} but the events tree ends at {last_stored_seq}",
            applied.last_event_seq
        )));
    }
    Ok(Live {
        ledger,
        last_applied: applied.last_applied,
        membership: applied.membership,
    })
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

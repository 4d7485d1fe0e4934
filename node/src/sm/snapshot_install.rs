//! Installing a snapshot: verify the whole file first, then replace every tree and the in-memory
//! ledger while readers of the history are held off, so no reader sees a mix of old and new.
//!
//! Crash safety: the file is moved into the snapshot directory and an `installing` pointer is
//! made durable before any tree is touched. If the process dies mid-install, `open` finds the
//! pointer and installs the same file again; the pointer is removed in the same durable flush
//! that records the installed state.

use super::codec::{encode, invalid_data, sled_err};
use super::history::rebuild_postings;
use super::keys::meta_key;
use super::meta::{sync_dir, AppliedMeta, SnapshotPointer};
use super::ns::NsBatch;
use super::shared::Shared;
use super::snapshot_file::{RecordReader, RowTree, SnapHeader, SnapRecord, SnapshotFile};
use crate::raft_types::SnapshotMeta;
use ledger::LedgerState;
use ledger::RestoreParts;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A snapshot file that passed verification, with the ledger it restores.
pub(crate) struct Verified {
    /// Its header.
    pub(crate) header: SnapHeader,
    /// The ledger rebuilt from its parts (state hash checked against the header).
    pub(crate) ledger: LedgerState,
}

/// Reads the whole file: framing, CRCs, header first, `End` last, meta equal to `expected`,
/// restored ledger's state hash equal to the header's, invariants hold.
pub(crate) fn verify(path: &Path, expected: &SnapshotMeta) -> io::Result<Verified> {
    let mut reader = RecordReader::open(path)?;
    let header = match reader.next_record()? {
        Some(SnapRecord::Header(h)) => h,
        _ => {
            return Err(invalid_data(
                "snapshot does not start with a header".to_owned(),
            ))
        }
    };
    if &header.meta != expected {
        return Err(invalid_data(format!(
            "snapshot file holds {} but {} was expected",
            header.meta, expected
        )));
    }
    let mut parts = RestoreParts {
        last_event_seq: header.last_event_seq,
        last_timestamp_us: header.last_timestamp_us,
        applied_hash: header.applied_hash,
        ..RestoreParts::default()
    };
    while let Some(record) = reader.next_record()? {
        match record {
            SnapRecord::Accounts(v) => parts.accounts.extend(v),
            SnapRecord::Transfers(v) => parts.transfers.extend(v),
            SnapRecord::Idempotency(v) => parts.idempotency.extend(v),
            SnapRecord::Rows { .. } => {}
            SnapRecord::Header(_) | SnapRecord::End { .. } => {
                return Err(invalid_data("misplaced header in snapshot".to_owned()));
            }
        }
    }
    let ledger = LedgerState::restore(parts);
    if ledger.state_hash() != header.state_hash {
        return Err(invalid_data(
            "snapshot state hash does not match its contents".to_owned(),
        ));
    }
    ledger
        .check_invariants()
        .map_err(|v| invalid_data(format!("snapshot violates an invariant: {v}")))?;
    Ok(Verified { header, ledger })
}

/// Installs `file` (described by `meta`) as the whole state and the current snapshot.
pub(crate) fn install_blocking(
    shared: &Shared,
    meta: &SnapshotMeta,
    file: &SnapshotFile,
) -> io::Result<()> {
    let verified = verify(file.path(), meta)?;
    let _gate = shared.install_gate();
    let index = meta.last_log_id.as_ref().map_or(0, |l| l.index);
    let pointer = SnapshotPointer {
        meta: meta.clone(),
        file_name: place_file(shared, file.path(), index)?,
    };
    let path = shared.snapshot_dir.join(&pointer.file_name);
    let trees = &shared.trees;
    trees.write_pointer(meta_key::INSTALLING, Some(&pointer))?;
    trees.flush_durable()?;
    replace_trees(shared, &path)?;
    let applied = AppliedMeta {
        last_applied: meta.last_log_id,
        membership: meta.last_membership.clone(),
        last_event_seq: verified.header.last_event_seq,
        last_timestamp_us: verified.header.last_timestamp_us,
        applied_hash: verified.header.applied_hash,
    };
    trees
        .meta
        .insert(meta_key::APPLIED, encode(&applied)?)
        .map_err(sled_err)?;
    trees.write_pointer(meta_key::SNAPSHOT, Some(&pointer))?;
    trees.write_pointer(meta_key::INSTALLING, None)?;
    trees.flush_durable()?;
    let last_event_seq = verified.ledger.last_event_seq();
    let postings = rebuild_postings(trees, last_event_seq)?;
    {
        let mut live = shared.live_mut();
        live.ledger = verified.ledger;
        live.last_applied = meta.last_log_id;
        live.membership = meta.last_membership.clone();
        live.postings = postings;
        live.history_index = index;
    }
    shared.bump_install_generation();
    let old = shared.snapshot().replace(pointer.clone());
    if let Some(old) = old.filter(|o| o.file_name != pointer.file_name) {
        let _ = fs::remove_file(shared.snapshot_dir.join(old.file_name));
    }
    shared.publish(index, last_event_seq);
    tracing::info!(index, file = %pointer.file_name, "snapshot installed");
    Ok(())
}

/// Puts the snapshot file into the snapshot directory under a final (`.snap`) name and returns
/// that name: a final file already there is kept, an incoming `.tmp` there is renamed, a file
/// elsewhere is copied (the sender keeps its own).
fn place_file(shared: &Shared, path: &Path, index: u64) -> io::Result<String> {
    let dir = fs::canonicalize(&shared.snapshot_dir)?;
    let src = fs::canonicalize(path)?;
    let in_dir = src.parent() == Some(dir.as_path());
    let name = src.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if in_dir && name.ends_with(".snap") {
        return Ok(name.to_owned());
    }
    let final_name = shared.snapshot_file_name(index);
    let final_path = dir.join(&final_name);
    if in_dir {
        fs::rename(&src, &final_path)?;
    } else {
        let tmp: PathBuf = shared.temp_path("copy");
        fs::copy(&src, &tmp)?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &final_path)?;
    }
    sync_dir(&dir)?;
    Ok(final_name)
}

/// Empties every data tree and fills them from the snapshot at `path`.
fn replace_trees(shared: &Shared, path: &Path) -> io::Result<()> {
    let trees = &shared.trees;
    trees.events.clear().map_err(sled_err)?;
    let mut reader = RecordReader::open(path)?;
    while let Some(record) = reader.next_record()? {
        // The ledger parts live in memory (restored by `verify`); only history goes to sled.
        let SnapRecord::Rows { tree, rows } = record else {
            continue;
        };
        let target = match tree {
            RowTree::Events => &trees.events,
        };
        let mut batch = NsBatch::default();
        for (k, v) in rows {
            batch.insert(target, k, v);
        }
        batch.apply(&trees.ledger).map_err(sled_err)?;
    }
    Ok(())
}

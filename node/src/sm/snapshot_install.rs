//! Verifying snapshot files, and installing a full one (from a peer): verify the whole file
//! first, then replace the history (events and postings in sled, the cold history file, which
//! is cut to nothing and refilled with the file's finished records), swap the in-memory ledger
//! (the working set) while readers of the history are held off, so no reader sees a mix of old
//! and new, and write the node's own local snapshot file over the new history. Neither pass
//! holds more than the working set in memory: the file streams.
//!
//! Crash safety: the file is moved into the snapshot directory and an `installing` pointer is
//! made durable before anything is touched. If the process dies mid-install, `open` finds the
//! pointer and installs the same file again; the pointer is removed in the same durable flush
//! that makes the local file current. The full file is deleted after that.

use super::codec::{encode, invalid_data, sled_err};
use super::cold::ColdStore;
use super::history::rebuild_postings;
use super::keys::meta_key;
use super::meta::{sync_dir, AppliedMeta, SnapshotPointer};
use super::ns::NsBatch;
use super::shared::Shared;
use super::snapshot_build::{header_of, write_local};
use super::snapshot_file::{
    HistoryRef, RecordReader, RowTree, SnapHeader, SnapRecord, SnapshotFile,
};
use crate::raft_types::SnapshotMeta;
use ledger::{LedgerState, RestoreParts, StateDigest, TransferStatus};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A snapshot file that passed verification, with the ledger it restores.
pub(crate) struct Verified {
    /// Its header.
    pub(crate) header: SnapHeader,
    /// Its state hash (checked against its contents).
    pub(crate) state_hash: Option<[u8; 32]>,
    /// The working set rebuilt from its parts (accounts, pending transfers, counters), with
    /// `cold` attached for the rest of the history.
    pub(crate) ledger: LedgerState,
}

/// Reads the whole file: framing, CRCs, header first, `End` last, meta equal to `expected`,
/// accounts in id order, the state hash of the parts equal to the file's, invariants hold.
/// Keeps only the working set. A local file holds nothing else, and `cold` must hold exactly
/// the history it references (its length and digest); a full file's finished records are
/// copied to `cold` by the install.
pub(crate) fn verify(
    path: &Path,
    expected: &SnapshotMeta,
    cold: &Arc<ColdStore>,
) -> io::Result<Verified> {
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
    let mut digest = StateDigest::new();
    if let Some(history) = &header.history {
        digest.history(&history.digest);
        // `open` cut the cold file to the snapshot's end and took its digest; a peer that
        // gets this snapshot checks the records against that digest (`snapshot_send`).
        if cold.end_bytes() != history.cold_end_bytes {
            return Err(invalid_data(format!(
                "the cold history has {} bytes, the snapshot references {}",
                cold.end_bytes(),
                history.cold_end_bytes
            )));
        }
    }
    let local = header.history.is_some();
    let history_in_local = || invalid_data("a local snapshot holds finished history".to_owned());
    let order = |e: ledger::DigestOrderError| invalid_data(format!("snapshot: {e}"));
    let mut state_hash = None;
    while let Some(record) = reader.next_record()? {
        if state_hash.is_some() {
            return Err(invalid_data(
                "snapshot has records after its state hash".to_owned(),
            ));
        }
        match record {
            SnapRecord::Accounts(v) => {
                for account in v {
                    digest.account(&account).map_err(order)?;
                    parts.accounts.push(account);
                }
            }
            SnapRecord::Transfers(v) => {
                for transfer in v {
                    digest.transfer(&transfer);
                    if transfer.status == TransferStatus::Pending {
                        parts.transfers.push(transfer);
                    } else if local {
                        return Err(history_in_local());
                    }
                }
            }
            SnapRecord::Idempotency(v) => {
                if local {
                    return Err(history_in_local());
                }
                for (id, entry) in &v {
                    digest.idempotency(id, entry);
                }
            }
            SnapRecord::Rows { .. } if local => return Err(history_in_local()),
            SnapRecord::Rows { .. } => {}
            SnapRecord::StateHash(hash) => state_hash = Some(hash),
            SnapRecord::Header(_) | SnapRecord::End { .. } => {
                return Err(invalid_data("misplaced header in snapshot".to_owned()));
            }
        }
    }
    let computed = digest.finish(header.last_event_seq, header.last_timestamp_us);
    if state_hash != Some(computed) {
        return Err(invalid_data(
            "snapshot state hash does not match its contents".to_owned(),
        ));
    }
    let index = expected.last_log_id.as_ref().map_or(0, |l| l.index);
    let mut ledger = LedgerState::restore(parts);
    ledger.attach_cold_history(cold.clone());
    ledger.set_history_horizon(index + 1);
    ledger
        .check_invariants()
        .map_err(|v| invalid_data(format!("snapshot violates an invariant: {v}")))?;
    Ok(Verified {
        header,
        state_hash,
        ledger,
    })
}

/// Installs `file` (described by `meta`) as the whole state and the current snapshot.
pub(crate) fn install_blocking(
    shared: &Shared,
    meta: &SnapshotMeta,
    file: &SnapshotFile,
) -> io::Result<()> {
    let verified = verify(file.path(), meta, &shared.trees.cold)?;
    if verified.header.history.is_some() {
        return Err(invalid_data(
            "a local snapshot file cannot be installed: its history is on another node".to_owned(),
        ));
    }
    let _gate = shared.install_gate();
    let index = meta.last_log_id.as_ref().map_or(0, |l| l.index);
    let full = SnapshotPointer {
        meta: meta.clone(),
        file_name: place_file(shared, file.path(), index)?,
    };
    let full_path = shared.snapshot_dir.join(&full.file_name);
    let trees = &shared.trees;
    trees.write_pointer(meta_key::INSTALLING, Some(&full))?;
    trees.flush_durable()?;
    let history = replace_history(shared, &full_path)?;
    shared.cold_progress().reset(history);
    let last_event_seq = verified.ledger.last_event_seq();
    let postings = rebuild_postings(trees, last_event_seq)?;
    // The node's own snapshot: the working set over the history just written.
    let pointer = SnapshotPointer {
        meta: meta.clone(),
        file_name: shared.snapshot_file_name(index),
    };
    let path = shared.snapshot_dir.join(&pointer.file_name);
    let tmp = shared.temp_path("local");
    let head = header_of(meta, &verified.ledger, history);
    let local_hash = write_local(&tmp, head, &verified.ledger)?;
    if Some(local_hash) != verified.state_hash {
        let _ = fs::remove_file(&tmp);
        return Err(invalid_data(
            "installed history does not hash to the snapshot's state hash".to_owned(),
        ));
    }
    fs::rename(&tmp, &path)?;
    sync_dir(&shared.snapshot_dir)?;
    let applied = AppliedMeta {
        last_applied: meta.last_log_id,
        membership: meta.last_membership.clone(),
        last_event_seq: verified.header.last_event_seq,
        last_timestamp_us: verified.header.last_timestamp_us,
        applied_hash: verified.header.applied_hash,
        postings_unpaged_from_seq: postings.unpaged_from_seq(),
    };
    trees
        .meta
        .insert(meta_key::APPLIED, encode(&applied)?)
        .map_err(sled_err)?;
    trees.write_pointer(meta_key::SNAPSHOT, Some(&pointer))?;
    trees.write_pointer(meta_key::INSTALLING, None)?;
    trees.flush_durable()?;
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
    let _ = fs::remove_file(&full_path);
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

/// Empties the events table and the cold history and fills them from the full snapshot at
/// `path` (finished transfers and idempotency entries to the cold history, synced); returns
/// the history they make. The working set lives in memory (restored by `verify`).
fn replace_history(shared: &Shared, path: &Path) -> io::Result<HistoryRef> {
    let trees = &shared.trees;
    trees.events.clear().map_err(sled_err)?;
    trees.cold.cut_to(0, ledger::HistoryDigest::default())?;
    let mut reader = RecordReader::open(path)?;
    while let Some(record) = reader.next_record()? {
        match record {
            SnapRecord::Transfers(v) => {
                trees.cold.append_transfers(v.iter())?;
            }
            SnapRecord::Idempotency(v) => {
                trees.cold.append_entries(v.iter())?;
            }
            SnapRecord::Rows { tree, rows } => {
                let target = match tree {
                    RowTree::Events => &trees.events,
                };
                let mut batch = NsBatch::default();
                for (k, v) in rows {
                    batch.insert(target, k, v);
                }
                batch.apply(&trees.ledger).map_err(sled_err)?;
            }
            _ => {}
        }
    }
    trees.cold.sync()?;
    let end = trees.cold.end_bytes();
    Ok(HistoryRef {
        cold_end_bytes: end,
        digest: trees.cold.digest(),
    })
}

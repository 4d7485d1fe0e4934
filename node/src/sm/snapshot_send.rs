//! Expanding a local snapshot file into the full file a peer installs: the local file's
//! working set, then the event blocks up to its last event (sled's `events` table is
//! append-only, so the prefix is stable while apply continues) and the first
//! `cold_end_bytes` of the cold history file (append-only too), then the same state hash.
//!
//! The cold records are summed on the way and must equal the digest the local file recorded:
//! a history that changed under a snapshot is refused, never sent. The full file is written
//! once per local file (`full-<local name>`, beside it) and reused for every peer; it goes
//! away with its local file (a newer build, or the tidy-up at open).

use super::cold::ColdRecord;
use super::keys::u64_key;
use super::meta::sync_dir;
use super::shared::Shared;
use super::snapshot_file::{RecordReader, RecordWriter, RowTree, SnapRecord};
use super::snapshot_file::{SnapHeader, ROWS_PER_RECORD_MAX};
use crate::sm::codec::invalid_data;
use ledger::HistoryDigest;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Prefix of the file name of a full file expanded from a local one.
pub(crate) const FULL_PREFIX: &str = "full-";

/// The full snapshot file for the local file at `local` (itself when it is already full).
pub(crate) fn full_file(shared: &Shared, local: &Path) -> io::Result<PathBuf> {
    // Held shared while reading the store's history: an install (which replaces it) waits.
    let _gate = shared.history_gate();
    let mut reader = RecordReader::open(local)?;
    let header = match reader.next_record()? {
        Some(SnapRecord::Header(h)) => h,
        _ => return Err(invalid_data("snapshot without a header".to_owned())),
    };
    let Some(history) = header.history else {
        return Ok(local.to_path_buf());
    };
    let name = local
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("snapshot");
    let full = shared.snapshot_dir.join(format!("{FULL_PREFIX}{name}"));
    if full.exists() {
        return Ok(full);
    }
    let tmp = shared.temp_path("full");
    let written = write_full(shared, &mut reader, header, history, &tmp);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &full)?;
    sync_dir(&shared.snapshot_dir)?;
    tracing::info!(file = %full.display(), bytes = fs::metadata(&full).map_or(0, |m| m.len()), "full snapshot written for a peer");
    Ok(full)
}

fn write_full(
    shared: &Shared,
    reader: &mut RecordReader,
    header: SnapHeader,
    history: super::snapshot_file::HistoryRef,
    tmp: &Path,
) -> io::Result<()> {
    let last_seq = header.last_event_seq;
    let mut w = RecordWriter::create(tmp)?;
    w.write(&SnapRecord::Header(SnapHeader {
        history: None,
        ..header
    }))?;
    let mut state_hash = None;
    while let Some(record) = reader.next_record()? {
        match record {
            SnapRecord::StateHash(h) => state_hash = Some(h),
            working_set => w.write(&working_set)?,
        }
    }
    let state_hash =
        state_hash.ok_or_else(|| invalid_data("snapshot without a state hash".to_owned()))?;
    let trees = &shared.trees;
    w.write_rows(RowTree::Events, trees.events.range(..=u64_key(last_seq)))?;
    let mut digest = HistoryDigest::default();
    let mut transfers = Vec::with_capacity(ROWS_PER_RECORD_MAX);
    let mut entries = Vec::with_capacity(ROWS_PER_RECORD_MAX);
    for record in trees.cold.records_before(history.cold_end_bytes)? {
        let record = record?;
        record.add_to(&mut digest);
        match record {
            ColdRecord::Transfer(t) => transfers.push(t),
            ColdRecord::Idempotency(id, e) => entries.push((id, e)),
        }
        if transfers.len() == ROWS_PER_RECORD_MAX {
            w.write(&SnapRecord::Transfers(std::mem::take(&mut transfers)))?;
        }
        if entries.len() == ROWS_PER_RECORD_MAX {
            w.write(&SnapRecord::Idempotency(std::mem::take(&mut entries)))?;
        }
    }
    if !transfers.is_empty() {
        w.write(&SnapRecord::Transfers(transfers))?;
    }
    if !entries.is_empty() {
        w.write(&SnapRecord::Idempotency(entries))?;
    }
    if digest != history.digest {
        return Err(invalid_data(format!(
            "cold history up to byte {} does not match the snapshot's digest",
            history.cold_end_bytes
        )));
    }
    w.write(&SnapRecord::StateHash(state_hash))?;
    w.finish()
}

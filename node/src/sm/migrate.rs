//! Moving history out of memory between snapshots: seal the young history (O(1) under the
//! state lock), append the sealed generations to the cold history file, and forget them.
//! No fsync here: the records only have to be durable before a snapshot that relies on them
//! is current, and every snapshot build syncs the file before writing its pointer (a record
//! lost in a crash before that is replayed from the log). Syncing every move put bursts of
//! tens of MB in front of the WAL's own fsyncs. Cheap (one sequential append of what accumulated since the last move) compared with
//! a snapshot build, which rewrites the whole history into its file.
//!
//! Safe at any time: the cold history may run ahead of the last snapshot (a restart cuts it
//! back to the length the snapshot recorded, and the ledger's horizon hides records from after
//! the index being executed), an append skips records the file already holds, and the move
//! holds the history gate, so an install (which replaces the ledger and its sealed
//! generations) cannot run in between. While a captured snapshot is being built, moves wait:
//! the build must append what it captured before anything newer, so that the file's first
//! bytes up to its end then are exactly the snapshot's history.

use super::shared::Shared;
use ledger::Sealed;
use std::io;

/// Moves every finished record held in memory to the cold history; returns how many records
/// were appended (records already in the file are not counted).
pub(crate) fn migrate_history(shared: &Shared) -> io::Result<u64> {
    let _gate = shared.history_gate();
    let _appends = shared.cold_appends();
    let sealed = {
        let mut live = shared.live_mut();
        // Read under the state lock, where a capture sets it: a pending build appends first.
        if shared.build_pending() {
            return Ok(0);
        }
        live.ledger.seal_history();
        live.ledger.sealed_history().to_vec()
    };
    let appended = copy_to_cold(shared, &sealed)?;
    forget(shared, &sealed);
    Ok(appended)
}

/// Appends the records of `sealed` (oldest generation first) to the cold history file; returns
/// how many were new to it. Not synced.
pub(crate) fn copy_to_cold(shared: &Shared, sealed: &[Sealed]) -> io::Result<u64> {
    let mut appended = 0;
    for generation in sealed {
        appended += shared.trees.cold.append_sealed(generation)?;
    }
    Ok(appended)
}

/// Drops `sealed` from the live ledger's memory: call only once the cold file holds them.
pub(crate) fn forget(shared: &Shared, sealed: &[Sealed]) {
    if let Some(last) = sealed.last() {
        let mut live = shared.live_mut();
        live.ledger.forget_sealed_through(last.number());
    }
}

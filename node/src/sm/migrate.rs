//! Moving history out of memory: seal the young history (O(1) under the state lock), append
//! the sealed generations to the cold history file oldest first, and forget them. No fsync here: the
//! records only have to be durable before a snapshot that relies on them is current, and
//! every snapshot build syncs the file before writing its pointer (a record lost in a crash
//! before that is replayed from the log). Syncing every move put bursts of tens of MB in
//! front of the WAL's own fsyncs.
//!
//! Generations go to the file whole and oldest first (under `Shared::cold_appends`), so the
//! file's first bytes up to the end of generation `n` hold exactly the finished history sealed
//! up to `n`. [`ColdProgress`] records that end for the newest generation appended, and for the
//! last generation a pending snapshot captured: a build uses it as the history its snapshot
//! references, whether the build appended that generation itself or a move did before it,
//! and moves never wait for builds.
//!
//! Safe at any time: the cold history may run ahead of the last snapshot (a restart cuts it
//! back to the length the snapshot recorded, and the ledger's horizon hides records from after
//! the index being executed), an append skips records the file already holds, and moves and
//! builds hold the history gate, so an install (which replaces the ledger, its sealed
//! generations and the file) cannot run in between.

use super::shared::Shared;
use super::snapshot_file::HistoryRef;
use ledger::Sealed;
use std::io;
use std::sync::atomic::Ordering;

/// Where the cold file stood after sealed generations were appended.
#[derive(Debug, Default)]
pub(crate) struct ColdProgress {
    /// The newest generation appended whole (0: none since the file was last cut or refilled)
    /// and the history up to its end.
    appended: (u64, HistoryRef),
    /// The last generation a pending snapshot captured, and the history up to its end once it
    /// is appended.
    watched: Option<(u64, Option<HistoryRef>)>,
}

impl ColdProgress {
    /// Starts over at `history` (the file was cut or refilled; generation numbers restart).
    pub(crate) fn reset(&mut self, history: HistoryRef) {
        *self = Self {
            appended: (0, history),
            watched: None,
        };
    }

    /// A snapshot captured the ledger whose newest sealed generation is `last` (None: it had
    /// none, so everything it finished is in the file already). Returns the history it will
    /// reference when that is known already.
    pub(crate) fn watch(&mut self, last: Option<u64>) -> Option<HistoryRef> {
        let (appended, history) = self.appended;
        let watched = match last {
            None => (appended, Some(history)),
            Some(n) if n == appended => (n, Some(history)),
            Some(n) => (n, None),
        };
        self.watched = Some(watched);
        watched.1
    }

    /// The history the pending snapshot references, once its generations are in the file.
    pub(crate) fn take_watched(&mut self) -> Option<HistoryRef> {
        self.watched.take().and_then(|(_, history)| history)
    }

    /// Forgets a capture whose build will not run.
    pub(crate) fn unwatch(&mut self) {
        self.watched = None;
    }

    /// Records that generation `number` is appended whole, the file standing at `history`;
    /// true when that is the end a pending snapshot waits for.
    fn appended(&mut self, number: u64, history: HistoryRef) -> bool {
        self.appended = (number, history);
        match &mut self.watched {
            Some((n, none @ None)) if *n == number => {
                *none = Some(history);
                true
            }
            _ => false,
        }
    }
}

/// Seals the young history as a new generation when it holds at least `min_records` (O(1)
/// under the state lock); true when it did.
pub(crate) fn seal_history_over(shared: &Shared, min_records: usize) -> bool {
    // Checked under the shared lock first: most checks seal nothing, and apply need not wait.
    if shared.live().ledger.young_history_len() < min_records.max(1) {
        return false;
    }
    let mut live = shared.live_mut();
    if live.ledger.young_history_len() < min_records.max(1) {
        return false;
    }
    live.ledger.seal_history();
    true
}

/// Moves the oldest sealed generation to the cold history; returns how many records were
/// appended (records already in the file are not counted), or `None` when no generation is
/// sealed. One generation at a time, so a move is as long as a generation is large and the
/// history bound chooses the priority of each (see `history_bound`).
pub(crate) fn migrate_oldest(shared: &Shared) -> io::Result<Option<u64>> {
    let _gate = shared.history_gate();
    let Some(oldest) = shared.live().ledger.sealed_history().first().cloned() else {
        return Ok(None);
    };
    let oldest = [oldest];
    let appended = {
        let _appends = shared.cold_appends();
        copy_to_cold(shared, &oldest)?
    };
    // The ledger's copy goes under the lock; the records stay in RAM until `oldest` is
    // dropped (a large share of a move's time), and are counted as held until then.
    let freeing = oldest[0].len() as u64;
    shared.history_freeing.fetch_add(freeing, Ordering::AcqRel);
    forget(shared, &oldest);
    drop(oldest);
    shared.history_freeing.fetch_sub(freeing, Ordering::AcqRel);
    Ok(Some(appended))
}

/// Moves every finished record held in memory when it is called to the cold history,
/// generation by generation; returns how many records were appended.
pub(crate) fn migrate_history(shared: &Shared) -> io::Result<u64> {
    seal_history_over(shared, 1);
    let generations = shared.live().ledger.sealed_history().len();
    let mut appended = 0;
    for _ in 0..generations {
        match migrate_oldest(shared)? {
            Some(moved) => appended += moved,
            None => break,
        }
    }
    Ok(appended)
}

/// Appends the generations of `sealed` (oldest first) not yet in the cold history file, each
/// whole, recording where the file stands after each; returns how many records were new to it.
/// Not synced. The caller holds `Shared::cold_appends`.
pub(crate) fn copy_to_cold(shared: &Shared, sealed: &[Sealed]) -> io::Result<u64> {
    let cold = &shared.trees.cold;
    let mut appended = 0;
    for generation in sealed {
        let number = generation.number();
        if number <= shared.cold_progress().appended.0 {
            continue;
        }
        appended += cold.append_sealed(generation)?;
        let history = HistoryRef {
            cold_end_bytes: cold.end_bytes(),
            digest: cold.digest(),
        };
        if shared.cold_progress().appended(number, history) {
            // A pending snapshot will rely on this end: keep it between runs.
            cold.keep_boundary(history.cold_end_bytes);
        }
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

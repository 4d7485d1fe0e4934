//! Building a snapshot while apply continues.
//!
//! The builder is created on openraft's state-machine task between two apply calls, so sled
//! and the in-memory ledger agree at that moment. It seals the ledger's young history (a new
//! sealed generation, O(1)), captures a clone of the ledger (O(1): its maps share structure),
//! the applied log id and membership, and asks `migrate::ColdProgress` to watch for the end of
//! its newest sealed generation in the cold history file. `build_snapshot` then runs on a
//! thread of its own at a lower CPU priority: it appends the captured generations a history
//! move has not appended yet, so the file's first bytes up to that end hold exactly the
//! finished history up to the snapshot, and fsyncs the file. It writes a local snapshot file (`snapshot_file`): the
//! working set (accounts, pending transfers) and a reference to that history (its length in
//! the cold file and its digest) — not the history itself, so the file and the build follow
//! the working set. Events up to the snapshot are in sled's append-only `events` table, which
//! is made durable before the pointer is current. Only then does the live ledger forget the
//! sealed generations. A peer that needs the snapshot gets a full file expanded from this one
//! (`snapshot_send`).

use super::keys::meta_key;
use super::meta::{sync_dir, SnapshotPointer};
use super::migrate::{copy_to_cold, forget};
use super::shared::Shared;
use super::snapshot_file::{HistoryRef, RecordWriter, SnapHeader, SnapRecord, SnapshotFile};
use crate::raft_types::{Snapshot, SnapshotMeta, TypeConfig};
use ledger::{LedgerState, StateDigest};
use openraft::storage::RaftSnapshotBuilder;
use std::fs;
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// Nice value of the snapshot build thread (0 is normal, 19 the lowest priority): under CFS a
/// nice-10 thread gets about a tenth of a contended core, so a build slows apply little and
/// still finishes.
const BUILD_NICE: i32 = 10;

/// What a builder captured when it was created.
struct Capture {
    /// Meta of the snapshot to build.
    meta: SnapshotMeta,
    /// The ledger at `meta.last_log_id`.
    ledger: LedgerState,
    /// Install generation at capture; a later install makes this capture stale.
    generation: u64,
    /// When the capture began (the build time counts the ledger clone too).
    started: Instant,
}

/// What the last snapshot this node built cost (`/cluster/status` `snapshot_build`, the
/// bench's growth phase). Installed snapshots (received from the leader) are not builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotBuildStats {
    /// Log index the snapshot ends at.
    pub index: u64,
    /// Size of the snapshot file.
    pub bytes: u64,
    /// Wall time from the capture (the ledger clone on the state-machine task) until the file
    /// is written and fsynced, sled made durable, and the snapshot published.
    pub build_ms: u64,
}

/// openraft snapshot builder over a consistent capture of the state machine.
pub struct LedgerSnapshotBuilder {
    /// The store.
    shared: Arc<Shared>,
    /// The capture; taken by the first `build_snapshot`.
    capture: Option<Capture>,
}

impl LedgerSnapshotBuilder {
    /// Captures the current applied state. Must run between applies (openraft's state-machine
    /// task guarantees it).
    pub(crate) fn capture(shared: Arc<Shared>) -> Self {
        let started = Instant::now();
        let generation = shared.install_generation();
        let capture = {
            let mut live = shared.live_mut();
            live.ledger.seal_history();
            let last = live.ledger.sealed_history().last().map(|g| g.number());
            if let Some(history) = shared.cold_progress().watch(last) {
                shared.trees.cold.keep_boundary(history.cold_end_bytes);
            }
            Capture {
                meta: SnapshotMeta {
                    last_log_id: live.last_applied,
                    last_membership: live.membership.clone(),
                },
                ledger: live.ledger.clone(),
                generation,
                started,
            }
        };
        Self {
            shared,
            capture: Some(capture),
        }
    }
}

impl Drop for LedgerSnapshotBuilder {
    fn drop(&mut self) {
        // A builder dropped unused (openraft gave up on it) stops watching for its history.
        if self.capture.is_some() {
            self.shared.cold_progress().unwatch();
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for LedgerSnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let capture = self
            .capture
            .take()
            .ok_or_else(|| io::Error::other("snapshot builder used twice"))?;
        let shared = Arc::clone(&self.shared);
        let execution = shared.execution;
        let build = move || {
            let built = build_blocking(&shared, capture);
            shared.cold_progress().unwatch();
            built
        };
        execution
            .background("snapshot-build", BUILD_NICE, build)
            .await
    }
}

/// Appends the captured history to the cold file, writes the local snapshot file, makes sled
/// durable, and publishes it as the current snapshot, unless an equal or newer snapshot is
/// already current (then that one is returned).
fn build_blocking(shared: &Arc<Shared>, capture: Capture) -> io::Result<Snapshot> {
    let _gate = shared.history_gate();
    if shared.install_generation() != capture.generation {
        // An install replaced the state after the capture: the capture no longer matches the
        // trees, and the installed snapshot is newer anyway.
        return current_snapshot(shared)?
            .ok_or_else(|| io::Error::other("state was installed but no snapshot is current"));
    }
    if let Some(cur) = shared.snapshot().as_ref() {
        if cur.meta.last_log_id >= capture.meta.last_log_id {
            let path = shared.snapshot_dir.join(&cur.file_name);
            return Ok(Snapshot {
                meta: cur.meta.clone(),
                snapshot: SnapshotFile::local(path, shared)?,
            });
        }
    }
    let index = capture.meta.last_log_id.as_ref().map_or(0, |l| l.index);
    let sealed = capture.ledger.sealed_history();
    let phase = Instant::now();
    let (history, cold_records) = {
        let _appends = shared.cold_appends();
        // Generations a move appended meanwhile are skipped; the history is where the file
        // stood after the last one captured, whoever appended it.
        let appended = copy_to_cold(shared, sealed)?;
        let history = shared.cold_progress().take_watched().ok_or_else(|| {
            io::Error::other("the captured history is not in the cold file after its append")
        })?;
        (history, appended)
    };
    // Durable before the pointer: a restart from this snapshot reads only its working set and
    // needs every older record on disk.
    let append_ms = phase.elapsed().as_millis() as u64;
    let phase = Instant::now();
    shared.trees.cold.sync()?;
    let cold_sync_ms = phase.elapsed().as_millis() as u64;
    let phase = Instant::now();
    let tmp = shared.temp_path("build");
    let head = header_of(&capture.meta, &capture.ledger, history);
    if let Err(e) = write_local(&tmp, head, &capture.ledger) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let pointer = SnapshotPointer {
        meta: capture.meta.clone(),
        file_name: shared.snapshot_file_name(index),
    };
    let path = shared.snapshot_dir.join(&pointer.file_name);
    fs::rename(&tmp, &path)?;
    sync_dir(&shared.snapshot_dir)?;
    shared
        .trees
        .write_pointer(meta_key::SNAPSHOT, Some(&pointer))?;
    // openraft purges the log up to this snapshot once we return: sled must hold everything the
    // log held up to here (and the pointer) on disk, not just in the page cache.
    let write_ms = phase.elapsed().as_millis() as u64;
    let phase = Instant::now();
    shared.trees.flush_durable()?;
    let sled_flush_ms = phase.elapsed().as_millis() as u64;
    shared.trees.cold.settle_boundary(history.cold_end_bytes);
    forget(shared, sealed);
    let old = shared.snapshot().replace(pointer.clone());
    if let Some(old) = old {
        // Readers (and peers) already streaming an old file keep their open handle.
        let _ = fs::remove_file(shared.snapshot_dir.join(&old.file_name));
        let full = format!("{}{}", super::snapshot_send::FULL_PREFIX, old.file_name);
        let _ = fs::remove_file(shared.snapshot_dir.join(full));
    }
    let stats = SnapshotBuildStats {
        index,
        bytes: fs::metadata(&path).map_or(0, |m| m.len()),
        build_ms: capture.started.elapsed().as_millis() as u64,
    };
    shared.record_build(stats);
    tracing::info!(index, file = %pointer.file_name, bytes = stats.bytes, build_ms = stats.build_ms, append_ms, cold_sync_ms, write_ms, sled_flush_ms, cold_records, "snapshot built");
    Ok(Snapshot {
        meta: pointer.meta,
        snapshot: SnapshotFile::local(path, shared)?,
    })
}

/// The current snapshot as openraft wants it.
pub(crate) fn current_snapshot(shared: &Arc<Shared>) -> io::Result<Option<Snapshot>> {
    let current = shared.snapshot().clone();
    match current {
        None => Ok(None),
        Some(p) => Ok(Some(Snapshot {
            snapshot: SnapshotFile::local(shared.snapshot_dir.join(&p.file_name), shared)?,
            meta: p.meta,
        })),
    }
}

/// The header of a local snapshot of `ledger` at `meta` over `history`.
pub(crate) fn header_of(
    meta: &SnapshotMeta,
    ledger: &LedgerState,
    history: HistoryRef,
) -> SnapHeader {
    SnapHeader {
        meta: meta.clone(),
        last_event_seq: ledger.last_event_seq(),
        last_timestamp_us: ledger.last_timestamp_us(),
        applied_hash: ledger.applied_hash(),
        history: Some(history),
    }
}

/// Writes a local snapshot file at `tmp` (fsynced): `header`, the working set of `ledger`
/// (accounts, pending transfers), and the state hash of those plus the header's history;
/// returns that hash.
pub(crate) fn write_local(
    tmp: &std::path::Path,
    header: SnapHeader,
    ledger: &LedgerState,
) -> io::Result<[u8; 32]> {
    let mut digest = StateDigest::new();
    if let Some(history) = &header.history {
        digest.history(&history.digest);
    }
    let (last_seq, last_ts) = (header.last_event_seq, header.last_timestamp_us);
    let mut w = RecordWriter::create(tmp)?;
    w.write(&SnapRecord::Header(header))?;
    let order = |e: ledger::DigestOrderError| io::Error::other(e.to_string());
    let accounts = ledger.accounts().cloned();
    let digest_a = |a: &ledger::Account| digest.account(a).map_err(order);
    w.write_chunks(accounts, digest_a, SnapRecord::Accounts)?;
    let pending = ledger.pending_transfers().cloned();
    let digest_t = |t: &ledger::Transfer| {
        digest.transfer(t);
        Ok(())
    };
    w.write_chunks(pending, digest_t, SnapRecord::Transfers)?;
    let state_hash = digest.finish(last_seq, last_ts);
    w.write(&SnapRecord::StateHash(state_hash))?;
    w.finish()?;
    Ok(state_hash)
}

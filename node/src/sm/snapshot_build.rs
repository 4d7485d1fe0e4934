//! Building a snapshot while apply continues.
//!
//! The builder is created on openraft's state-machine task between two apply calls, so sled
//! and the in-memory ledger agree at that moment. It seals the ledger's young history (a new
//! sealed generation, O(1)) and captures a clone of the ledger (O(1): its maps share
//! structure), the applied log id and membership, and the last event sequence.
//! `build_snapshot` then runs on a thread of its own at a lower CPU priority (on a loaded host
//! it uses the CPU apply leaves over): it streams the captured ledger — working set, memory
//! tiers and the cold history file (below the capture's horizon, each record once), hashed on
//! the way — then the append-only event blocks up to the captured sequence (blocks at or
//! before it never change), which yields a consistent cut without pausing apply. The postings index is not in
//! the file: it is rebuilt from the events.
//!
//! Then the sealed generations move to disk: their records are appended to the cold history
//! file and it is fsynced (with every earlier move), the snapshot pointer written, sled made
//! durable, and only then does the live ledger forget them. A restart from this snapshot finds
//! every older record in the cold history.

use super::codec::sled_err;
use super::keys::{meta_key, u64_key};
use super::meta::{sync_dir, SnapshotPointer};
use super::migrate::{copy_to_cold, forget};
use super::shared::Shared;
use super::snapshot_file::{
    RecordWriter, RowTree, SnapHeader, SnapRecord, SnapshotFile, ROWS_PER_RECORD_MAX,
};
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

impl RaftSnapshotBuilder<TypeConfig> for LedgerSnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let capture = self
            .capture
            .take()
            .ok_or_else(|| io::Error::other("snapshot builder used twice"))?;
        let shared = Arc::clone(&self.shared);
        let build = move || build_blocking(&shared, capture);
        super::background::run_at_low_priority("snapshot-build", BUILD_NICE, build).await
    }
}

/// Writes the snapshot file, makes sled durable, and publishes it as the current snapshot,
/// unless an equal or newer snapshot is already current (then that one is returned).
fn build_blocking(shared: &Shared, capture: Capture) -> io::Result<Snapshot> {
    let _gate = shared.history_gate();
    if shared.install_generation() != capture.generation {
        // An install replaced the state after the capture: the capture no longer matches the
        // trees, and the installed snapshot is newer anyway.
        return current_snapshot(shared)?
            .ok_or_else(|| io::Error::other("state was installed but no snapshot is current"));
    }
    let index = capture.meta.last_log_id.as_ref().map_or(0, |l| l.index);
    let tmp = shared.temp_path("build");
    let written = write_snapshot(shared, &capture, &tmp);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let mut current = shared.snapshot();
    if let Some(cur) = current.as_ref() {
        if cur.meta.last_log_id >= capture.meta.last_log_id {
            let _ = fs::remove_file(&tmp);
            let path = shared.snapshot_dir.join(&cur.file_name);
            return Ok(Snapshot {
                meta: cur.meta.clone(),
                snapshot: SnapshotFile::open(path)?,
            });
        }
    }
    let pointer = SnapshotPointer {
        meta: capture.meta.clone(),
        file_name: shared.snapshot_file_name(index),
    };
    let path = shared.snapshot_dir.join(&pointer.file_name);
    fs::rename(&tmp, &path)?;
    sync_dir(&shared.snapshot_dir)?;
    // The sealed history goes to the cold file (synced) before the pointer: a restart from this
    // snapshot reads only its working set and needs every older record on disk.
    let sealed = capture.ledger.sealed_history();
    let cold_records = copy_to_cold(shared, sealed)?;
    shared.trees.cold.sync()?;
    shared
        .trees
        .write_pointer(meta_key::SNAPSHOT, Some(&pointer))?;
    // openraft purges the log up to this snapshot once we return: sled must hold everything the
    // log held up to here (and the pointer) on disk, not just in the page cache.
    shared.trees.flush_durable()?;
    forget(shared, sealed);
    if let Some(old) = current.replace(pointer.clone()) {
        // Readers already streaming the old file keep their open handle.
        let _ = fs::remove_file(shared.snapshot_dir.join(old.file_name));
    }
    let stats = SnapshotBuildStats {
        index,
        bytes: fs::metadata(&path).map_or(0, |m| m.len()),
        build_ms: capture.started.elapsed().as_millis() as u64,
    };
    shared.record_build(stats);
    tracing::info!(index, file = %pointer.file_name, bytes = stats.bytes, build_ms = stats.build_ms, cold_records, "snapshot built");
    Ok(Snapshot {
        meta: pointer.meta,
        snapshot: SnapshotFile::open(path)?,
    })
}

/// The current snapshot as openraft wants it.
pub(crate) fn current_snapshot(shared: &Shared) -> io::Result<Option<Snapshot>> {
    let current = shared.snapshot().clone();
    match current {
        None => Ok(None),
        Some(p) => Ok(Some(Snapshot {
            snapshot: SnapshotFile::open(shared.snapshot_dir.join(&p.file_name))?,
            meta: p.meta,
        })),
    }
}

/// Writes header, ledger parts, the event blocks up to the cut and the state hash to `tmp`,
/// fsynced. The parts stream (the cold history from disk) and are hashed on the way.
fn write_snapshot(shared: &Shared, capture: &Capture, tmp: &std::path::Path) -> io::Result<()> {
    let ledger = &capture.ledger;
    let last_seq = ledger.last_event_seq();
    let mut w = RecordWriter::create(tmp)?;
    w.write(&SnapRecord::Header(SnapHeader {
        meta: capture.meta.clone(),
        last_event_seq: last_seq,
        last_timestamp_us: ledger.last_timestamp_us(),
        applied_hash: ledger.applied_hash(),
    }))?;
    let mut digest = StateDigest::new();
    let order = |e: ledger::DigestOrderError| io::Error::other(e.to_string());
    let accounts = ledger.accounts().cloned();
    write_chunks(
        &mut w,
        accounts,
        |a| digest.account(a).map_err(order),
        SnapRecord::Accounts,
    )?;
    let transfers = ledger.transfers().map(|t| t.into_owned());
    let digest_t = |t: &ledger::Transfer| {
        digest.transfer(t);
        Ok(())
    };
    write_chunks(&mut w, transfers, digest_t, SnapRecord::Transfers)?;
    let entries = ledger.idempotency_entries();
    let entries = entries.map(|(id, e)| (id.into_owned(), e.into_owned()));
    let digest_i = |(id, e): &(String, ledger::IdempotencyEntry)| {
        digest.idempotency(id, e);
        Ok(())
    };
    write_chunks(&mut w, entries, digest_i, SnapRecord::Idempotency)?;
    let trees = &shared.trees;
    // Events are keyed by seq and append-only: a prefix range is the cut.
    let events = trees.events.range(..=u64_key(last_seq));
    write_rows(&mut w, RowTree::Events, events, |_| true)?;
    let state_hash = digest.finish(last_seq, ledger.last_timestamp_us());
    w.write(&SnapRecord::StateHash(state_hash))?;
    w.finish()
}

/// Writes `items` as records of at most `ROWS_PER_RECORD_MAX` items each, passing each to
/// `visit` first.
fn write_chunks<T>(
    w: &mut RecordWriter,
    items: impl Iterator<Item = T>,
    mut visit: impl FnMut(&T) -> io::Result<()>,
    record: impl Fn(Vec<T>) -> SnapRecord,
) -> io::Result<()> {
    let mut chunk = Vec::with_capacity(ROWS_PER_RECORD_MAX);
    for item in items {
        visit(&item)?;
        chunk.push(item);
        if chunk.len() == ROWS_PER_RECORD_MAX {
            w.write(&record(std::mem::take(&mut chunk)))?;
        }
    }
    if !chunk.is_empty() {
        w.write(&record(chunk))?;
    }
    Ok(())
}

/// Writes the rows of a sled iterator whose key passes `keep`.
fn write_rows(
    w: &mut RecordWriter,
    tree: RowTree,
    rows: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    keep: impl Fn(&[u8]) -> bool,
) -> io::Result<()> {
    let mut kept = Vec::new();
    for row in rows {
        let (k, v) = row.map_err(sled_err)?;
        if keep(&k) {
            kept.push((k.to_vec(), v.to_vec()));
        }
        if kept.len() == ROWS_PER_RECORD_MAX {
            w.write(&SnapRecord::Rows {
                tree,
                rows: std::mem::take(&mut kept),
            })?;
        }
    }
    if !kept.is_empty() {
        w.write(&SnapRecord::Rows { tree, rows: kept })?;
    }
    Ok(())
}

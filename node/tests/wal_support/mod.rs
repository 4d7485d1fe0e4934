//! Helpers shared by the `wal_*` tests: deterministic entry builders, opening a log store with
//! small segments, durable appends, and reading the whole log and its bounds back.

#![allow(dead_code)]

use ledger::{AccountId, Command, CommandBody};
use node::log_store::LogStore;
use node::raft_types::{Entry, EntryPayload, IOFlushed, LedgerRequest, LogId, TypeConfig};
use node::wal::{RealFs, WalFs, WalOptions, SEGMENT_BYTES_MIN};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Log id of `index` in `term` (leader 1).
pub fn log_id(term: u64, index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(term, 1, index)
}

/// Entry `index` of `term`: one transfer whose memo has `memo_bytes` bytes, a letter that
/// depends on the index (so entries differ and recovery checks contents exactly).
pub fn entry_with_memo(term: u64, index: u64, memo_bytes: usize) -> Entry {
    let letter = (b'a' + (index % 26) as u8) as char;
    let command = Command {
        id: format!("t-{term}-{index}"),
        timestamp_us: 1_700_000_000_000_000 + index,
        body: CommandBody::Transfer {
            from: AccountId::parse("alice").unwrap(),
            to: AccountId::parse("bob").unwrap(),
            amount: 1 + index as i64,
            pending: false,
            timeout_s: None,
            memo: Some(letter.to_string().repeat(memo_bytes)),
        },
    };
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(LedgerRequest {
            commands: vec![command],
        }),
    }
}

/// An ordinary entry of ~200-250 bytes (sizes vary with the index): a 64 KiB segment holds
/// about 300.
pub fn entry(term: u64, index: u64) -> Entry {
    entry_with_memo(term, index, 120 + (index % 50) as usize)
}

/// [`entry`] for every index in `indexes`.
pub fn entries(term: u64, indexes: std::ops::Range<u64>) -> Vec<Entry> {
    indexes.map(|i| entry(term, i)).collect()
}

/// Options with the smallest segments and a small entry cache (reads hit the disk).
pub fn small_segments() -> WalOptions {
    WalOptions {
        segment_bytes: SEGMENT_BYTES_MIN,
        entry_cache_max: 16,
        ..WalOptions::default()
    }
}

/// Opens the store in `dir` on the real file system with [`small_segments`].
pub fn open(dir: &Path) -> io::Result<LogStore> {
    LogStore::open_with_options(Arc::new(RealFs), dir, small_segments())
}

/// Opens the store in `dir` on `fs` with `options`.
pub fn open_on(fs: Arc<dyn WalFs>, dir: &Path, options: WalOptions) -> io::Result<LogStore> {
    LogStore::open_with_options(fs, dir, options)
}

/// Appends and waits for the durability callback; returns the append's or the sync's error.
pub async fn try_append_durable(store: &mut LogStore, batch: Vec<Entry>) -> io::Result<()> {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(batch, IOFlushed::signal(tx)).await?;
    rx.await.unwrap()
}

/// Appends and waits for the durability callback; panics on any error.
pub async fn append_durable(store: &mut LogStore, batch: Vec<Entry>) {
    try_append_durable(store, batch).await.unwrap();
}

/// Appends `term` entries for `indexes`, 100 per durable append.
pub async fn append_range(store: &mut LogStore, term: u64, indexes: std::ops::Range<u64>) {
    let mut start = indexes.start;
    while start < indexes.end {
        let end = (start + 100).min(indexes.end);
        append_durable(store, entries(term, start..end)).await;
        start = end;
    }
}

/// Every live entry, oldest first.
pub async fn all_entries(store: &mut LogStore) -> Vec<Entry> {
    store
        .get_log_reader()
        .await
        .try_get_log_entries(0..)
        .await
        .unwrap()
}

/// `(last purged log id, last log id)`.
pub async fn bounds(store: &mut LogStore) -> (Option<LogId>, Option<LogId>) {
    let state = store.get_log_state().await.unwrap();
    (state.last_purged_log_id, state.last_log_id)
}

/// The segment files in `dir`, in sequence order.
pub fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("wal-"))
        })
        .collect();
    paths.sort();
    paths
}

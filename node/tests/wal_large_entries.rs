//! Entries larger than a segment: with small segments (64 KiB) an ordinary batch entry of a few
//! MiB must still be accepted (a refused append is a fatal storage error for openraft), written
//! to a segment sized to fit it, read back, and recovered after a restart or a power cut next to
//! segments of the normal size. Only a record above the format's hard limit is refused.

mod wal_support;

use node::log_store::LogStore;
use node::raft_types::{Entry, IOFlushed};
use node::wal::{PowerCut, RealFs, SimFs, WalFs, WalOptions, SEGMENT_BYTES_MIN};
use openraft::storage::RaftLogStorage;
use std::io;
use std::path::Path;
use std::sync::Arc;
use wal_support::{all_entries, entry_with_memo, open_on, try_append_durable};

const MIB: usize = 1024 * 1024;

/// The workload: small entries around large ones (1 MiB, 3 MiB, and two in a row).
fn workload() -> Vec<Entry> {
    let sizes = [100, 200, MIB, 150, 3 * MIB, MIB, 120, 64 * 1024, 90];
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| big_entry(i as u64, n))
        .collect()
}

/// Entry `index` (term 1) with a memo of `memo_bytes`.
fn big_entry(index: u64, memo_bytes: usize) -> Entry {
    entry_with_memo(1, index, memo_bytes)
}

fn open_with(fs: Arc<dyn WalFs>, dir: &Path) -> io::Result<LogStore> {
    open_on(fs, dir, options())
}

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: SEGMENT_BYTES_MIN,
        entry_cache_max: 2,
        ..WalOptions::default()
    }
}

#[tokio::test]
async fn entries_larger_than_a_segment_are_written_read_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let expected = workload();
    {
        let mut store = open_with(Arc::new(RealFs), dir.path()).unwrap();
        try_append_durable(&mut store, expected[..4].to_vec())
            .await
            .unwrap();
        for e in &expected[4..] {
            try_append_durable(&mut store, vec![e.clone()])
                .await
                .unwrap();
        }
        assert_eq!(all_entries(&mut store).await, expected);
    }
    let mut sizes: Vec<u64> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(
        sizes[0], SEGMENT_BYTES_MIN,
        "normal segments keep their size"
    );
    assert!(
        *sizes.last().unwrap() > 3 * MIB as u64,
        "a large entry gets a segment sized to fit it: {sizes:?}"
    );
    let mut store = open_with(Arc::new(RealFs), dir.path()).unwrap();
    // Cache of 2: the large entries come back from disk.
    assert_eq!(all_entries(&mut store).await, expected);
    let next = big_entry(expected.len() as u64, 2 * MIB);
    try_append_durable(&mut store, vec![next.clone()])
        .await
        .unwrap();
    drop(store);
    let mut store = open_with(Arc::new(RealFs), dir.path()).unwrap();
    let mut all = expected;
    all.push(next);
    assert_eq!(all_entries(&mut store).await, all);
}

#[tokio::test]
async fn large_entries_survive_power_cuts() {
    let modes = [
        PowerCut::DropUnsynced,
        PowerCut::TornPrefix { seed: 1 },
        PowerCut::TornPrefix { seed: 2 },
        PowerCut::TornPages { seed: 3 },
        PowerCut::TornPages { seed: 4 },
    ];
    for mode in modes {
        let sim = SimFs::new();
        let dir = Path::new("/wal");
        let expected = workload();
        let mut store = open_with(Arc::new(sim.clone()), dir).unwrap();
        for e in &expected {
            try_append_durable(&mut store, vec![e.clone()])
                .await
                .unwrap();
        }
        // One more large entry whose durability is not awaited: the cut may keep any part of it.
        let extra = big_entry(expected.len() as u64, 2 * MIB);
        store
            .append(vec![extra.clone()], IOFlushed::noop())
            .await
            .unwrap();
        sim.power_cut_with(mode);
        drop(store);
        let mut store = open_with(Arc::new(sim.clone()), dir)
            .unwrap_or_else(|e| panic!("{mode:?}: recovery failed: {e}"));
        let recovered = all_entries(&mut store).await;
        let mut submitted = expected.clone();
        submitted.push(extra);
        assert!(
            recovered.len() >= expected.len() && submitted.starts_with(&recovered),
            "{mode:?}: recovered {} entries, not the acknowledged prefix",
            recovered.len()
        );
        // The repaired log takes another large entry and survives a second cut.
        let next = big_entry(recovered.len() as u64, MIB);
        try_append_durable(&mut store, vec![next.clone()])
            .await
            .unwrap();
        drop(store);
        sim.power_cut();
        let mut store = open_with(Arc::new(sim.clone()), dir).unwrap();
        let mut again = recovered;
        again.push(next);
        assert_eq!(all_entries(&mut store).await, again, "{mode:?}");
    }
}

#[tokio::test]
async fn only_an_entry_above_the_record_limit_is_refused() {
    let sim = SimFs::new();
    let dir = Path::new("/wal");
    let mut store = open_with(Arc::new(sim.clone()), dir).unwrap();
    // Just under the 8 MiB payload limit.
    let near_limit = big_entry(0, 8 * MIB - 4096);
    try_append_durable(&mut store, vec![near_limit.clone()])
        .await
        .unwrap();
    let err = store
        .append(vec![big_entry(1, 8 * MIB)], IOFlushed::noop())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    drop(store);
    let mut store = open_with(Arc::new(sim), dir).unwrap();
    assert_eq!(all_entries(&mut store).await, vec![near_limit]);
}

//! Recovery after purges that deleted segments: the first surviving segment's header repeats an
//! older purge point than the one a later purge record sets, so replay starts with entries far
//! past the header's purge point. That must open (and reopen, and take appends at the right
//! index), while a segment missing from the middle of the WAL is still refused as corruption.

mod wal_support;

use node::log_store::LogStore;
use node::raft_types::{IOFlushed, LogId};
use openraft::storage::RaftLogStorage;
use std::io;
use wal_support::{
    all_entries, append_durable, append_range, bounds, entries, entry_with_memo, log_id, open,
    segment_paths,
};

/// Memo bytes of a "large" entry: two such entries never share a 64 KiB segment.
const LARGE_MEMO_BYTES: usize = 40 * 1024;

/// Purges up to `upto` and checks that at least one segment file went away.
async fn purge_deleting_segments(store: &mut LogStore, upto: LogId) {
    let before = store.stats().segments;
    store.purge(upto).await.unwrap();
    let after = store.stats().segments;
    assert!(
        after < before,
        "purge to {upto} deleted no segment ({before} -> {after})"
    );
}

/// Asserts the open was refused as corruption; returns the reason.
fn assert_corrupt(result: io::Result<LogStore>) -> String {
    match result {
        Ok(_) => panic!("a wal with a missing segment was opened"),
        Err(e) => {
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            e.to_string()
        }
    }
}

#[tokio::test]
async fn reopens_after_two_purges_that_deleted_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).unwrap();
        append_range(&mut store, 1, 0..3000).await;
        purge_deleting_segments(&mut store, log_id(1, 500)).await;
        // Segments created from here on repeat "purged 500" in their header.
        append_range(&mut store, 1, 3000..6000).await;
        purge_deleting_segments(&mut store, log_id(1, 5500)).await;
    }
    for round in 0..2 {
        let mut store = open(dir.path()).unwrap_or_else(|e| panic!("reopen {round}: {e}"));
        assert_eq!(all_entries(&mut store).await, entries(1, 5501..6000));
        assert_eq!(
            bounds(&mut store).await,
            (Some(log_id(1, 5500)), Some(log_id(1, 5999)))
        );
    }
    let mut store = open(dir.path()).unwrap();
    append_range(&mut store, 2, 6000..6300).await;
    drop(store);
    let mut store = open(dir.path()).unwrap();
    let mut expected = entries(1, 5501..6000);
    expected.extend(entries(2, 6000..6300));
    assert_eq!(all_entries(&mut store).await, expected);
}

#[tokio::test]
async fn truncation_after_a_purge_survives_segment_deleting_purges() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).unwrap();
        append_range(&mut store, 1, 0..3000).await;
        purge_deleting_segments(&mut store, log_id(1, 1000)).await;
        store.truncate_after(Some(log_id(1, 2000))).await.unwrap();
        append_range(&mut store, 2, 2001..4000).await;
        purge_deleting_segments(&mut store, log_id(2, 2200)).await;
        store.truncate_after(Some(log_id(2, 3500))).await.unwrap();
    }
    let mut store = open(dir.path()).unwrap();
    assert_eq!(all_entries(&mut store).await, entries(2, 2201..3501));
    assert_eq!(
        bounds(&mut store).await,
        (Some(log_id(2, 2200)), Some(log_id(2, 3500)))
    );
    append_range(&mut store, 3, 3501..3600).await;
    drop(store);
    let mut store = open(dir.path()).unwrap();
    let mut expected = entries(2, 2201..3501);
    expected.extend(entries(3, 3501..3600));
    assert_eq!(all_entries(&mut store).await, expected);
}

#[tokio::test]
async fn purge_past_every_entry_then_reopen_continues_at_purged_plus_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).unwrap();
        append_range(&mut store, 1, 0..3000).await;
        purge_deleting_segments(&mut store, log_id(1, 1000)).await;
        // As after installing a snapshot ahead of the log: nothing is left, and the only
        // segment kept holds entries that are all purged.
        purge_deleting_segments(&mut store, log_id(2, 5000)).await;
        assert_eq!(store.stats().segments, 1);
    }
    let mut store = open(dir.path()).unwrap();
    assert!(all_entries(&mut store).await.is_empty());
    assert_eq!(
        bounds(&mut store).await,
        (Some(log_id(2, 5000)), Some(log_id(2, 5000)))
    );
    let hole = store
        .append(entries(3, 5002..5003), IOFlushed::noop())
        .await;
    assert!(hole.is_err(), "an append past purged + 1 leaves a hole");
    append_range(&mut store, 3, 5001..5400).await;
    drop(store);
    for _ in 0..2 {
        let mut store = open(dir.path()).unwrap();
        assert_eq!(all_entries(&mut store).await, entries(3, 5001..5400));
        assert_eq!(
            bounds(&mut store).await,
            (Some(log_id(2, 5000)), Some(log_id(3, 5399)))
        );
    }
}

#[tokio::test]
async fn a_missing_middle_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).unwrap();
        append_range(&mut store, 1, 0..3000).await;
        purge_deleting_segments(&mut store, log_id(1, 500)).await;
        append_range(&mut store, 1, 3000..4000).await;
    }
    let paths = segment_paths(dir.path());
    assert!(paths.len() >= 4, "test needs several segments: {paths:?}");
    std::fs::remove_file(&paths[paths.len() / 2]).unwrap();
    assert_corrupt(open(dir.path()));
}

#[tokio::test]
async fn a_missing_segment_after_an_emptied_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let large = |index| entry_with_memo(1, index, LARGE_MEMO_BYTES);
    {
        let mut store = open(dir.path()).unwrap();
        // Segment 1: entry 0 and a purge that empties the log. Entries 1 and 2 are too large
        // to share a segment: each starts a segment of its own.
        append_durable(&mut store, vec![large(0)]).await;
        store.purge(log_id(1, 0)).await.unwrap();
        append_durable(&mut store, vec![large(1)]).await;
        append_durable(&mut store, vec![large(2)]).await;
    }
    let paths = segment_paths(dir.path());
    assert_eq!(paths.len(), 3, "{paths:?}");
    // Without the segment of entry 1, replay meets entry 2 on an empty log whose purge point
    // is 0: only the end-of-replay check (first entry = purged + 1) can see the hole.
    std::fs::remove_file(&paths[1]).unwrap();
    let why = assert_corrupt(open(dir.path()));
    assert!(why.contains("hole in the log"), "{why}");
}

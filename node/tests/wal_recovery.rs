//! WAL recovery on the real file system: whatever was acknowledged is there after reopening;
//! the vote never regresses; truncation and purge survive a restart; purged segments go away.

mod wal_support;

use node::log_store::LogStore;
use node::raft_types::{IOFlushed, Vote};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use std::path::Path;
use wal_support::{all_entries, append_durable, entries, entry, log_id, open};

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("wal-")
        })
        .count()
}

#[tokio::test]
async fn acknowledged_entries_vote_and_committed_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let expected = entries(1, 0..40);
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        append_durable(&mut store, expected[..10].to_vec()).await;
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        append_durable(&mut store, expected[10..40].to_vec()).await;
        store.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        store.save_committed(Some(log_id(1, 30))).await.unwrap();
        // save_committed does not wait for a sync; a durable write after it covers it.
        store.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(all_entries(&mut store).await, expected);
    assert_eq!(
        store.get_log_reader().await.read_vote().await.unwrap(),
        Some(Vote::new_committed(2, 1))
    );
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 30)));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(
        (state.last_purged_log_id, state.last_log_id),
        (None, Some(log_id(1, 39)))
    );
}

#[tokio::test]
async fn the_vote_never_regresses_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut last = None;
    let mut next_index = 0;
    for term in 1..=6u64 {
        let mut store = open(dir.path()).unwrap();
        let reader_vote = store.get_log_reader().await.read_vote().await.unwrap();
        assert_eq!(reader_vote, last, "vote after restart {term}");
        // Alternate: a vote alone, and a vote after appends.
        if term % 2 == 0 {
            append_durable(&mut store, entries(term, next_index..next_index + 5)).await;
            next_index += 5;
        }
        let vote = Vote::new_committed(term, term % 3);
        store.save_vote(&vote).await.unwrap();
        last = Some(vote);
    }
}

#[tokio::test]
async fn truncate_after_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).unwrap();
        append_durable(&mut store, entries(1, 1..300)).await;
        store.truncate_after(Some(log_id(1, 120))).await.unwrap();
        append_durable(&mut store, entries(2, 121..150)).await;
        // Truncate again, below the first truncation, and to an empty tail.
        store.truncate_after(Some(log_id(2, 140))).await.unwrap();
    }
    let mut store = open(dir.path()).unwrap();
    let mut expected = entries(1, 1..121);
    expected.extend(entries(2, 121..141));
    assert_eq!(all_entries(&mut store).await, expected);
    append_durable(&mut store, entries(3, 141..145)).await;
    drop(store);
    let mut store = open(dir.path()).unwrap();
    expected.extend(entries(3, 141..145));
    assert_eq!(all_entries(&mut store).await, expected);

    store.truncate_after(None).await.unwrap();
    drop(store);
    let mut store = open(dir.path()).unwrap();
    assert!(all_entries(&mut store).await.is_empty());
    assert_eq!(store.get_log_state().await.unwrap().last_log_id, None);
}

#[tokio::test]
async fn purge_survives_reopen_and_deletes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let vote = Vote::new_committed(1, 1);
    {
        let mut store = open(dir.path()).unwrap();
        // The vote is written once, in the first segment, which the purge below deletes: it
        // must survive through the header of a later segment.
        store.save_vote(&vote).await.unwrap();
        for chunk in (0..3000u64).collect::<Vec<_>>().chunks(100) {
            append_durable(
                &mut store,
                entries(1, chunk[0]..chunk[0] + chunk.len() as u64),
            )
            .await;
        }
        let before = store.stats().segments;
        assert!(before >= 4, "test needs several segments, got {before}");
        assert_eq!(segment_files(dir.path()) as u64, before);
        store.purge(log_id(1, 2500)).await.unwrap();
        let after = store.stats().segments;
        assert!(
            after < before,
            "purge deleted no segment ({before} -> {after})"
        );
        assert_eq!(segment_files(dir.path()) as u64, after);
    }
    let mut store = open(dir.path()).unwrap();
    assert_eq!(all_entries(&mut store).await, entries(1, 2501..3000));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(
        (state.last_purged_log_id, state.last_log_id),
        (Some(log_id(1, 2500)), Some(log_id(1, 2999)))
    );
    assert_eq!(
        store.get_log_reader().await.read_vote().await.unwrap(),
        Some(vote)
    );
}

#[tokio::test]
async fn purge_past_the_last_entry_then_append_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path()).unwrap();
        append_durable(&mut store, entries(1, 0..10)).await;
        // As after installing a snapshot: the log restarts after the snapshot's last entry.
        store.purge(log_id(2, 50)).await.unwrap();
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(log_id(2, 50))
        );
        append_durable(&mut store, entries(3, 51..60)).await;
    }
    let mut store = open(dir.path()).unwrap();
    assert_eq!(all_entries(&mut store).await, entries(3, 51..60));
    assert_eq!(
        store.get_log_state().await.unwrap().last_purged_log_id,
        Some(log_id(2, 50))
    );
}

#[tokio::test]
async fn appends_that_leave_a_hole_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).unwrap();
    append_durable(&mut store, entries(1, 0..5)).await;
    let err = store
        .append(entries(1, 6..8), IOFlushed::noop())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let mut gap = entries(1, 5..6);
    gap.push(entry(1, 7));
    assert!(store.append(gap, IOFlushed::noop()).await.is_err());
    assert_eq!(all_entries(&mut store).await, entries(1, 0..5));
}

#[tokio::test]
async fn evicted_entries_are_read_back_from_disk_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).unwrap();
    let expected = entries(4, 1..1000);
    for chunk in expected.chunks(64) {
        append_durable(&mut store, chunk.to_vec()).await;
    }
    // The cache holds 16 entries: nearly all of these come from the segments.
    assert_eq!(all_entries(&mut store).await, expected);
    let mut reader = store.get_log_reader().await;
    assert_eq!(
        reader.try_get_log_entries(500..=510).await.unwrap(),
        expected[499..510].to_vec()
    );
    let limited = reader.limited_get_log_entries(10, 5000).await.unwrap();
    assert!(!limited.is_empty() && limited[0] == expected[9]);
    assert!(expected[9..].starts_with(&limited));
}

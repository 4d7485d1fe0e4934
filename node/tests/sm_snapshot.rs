//! Snapshots: build and install into a fresh store gives the same state and the same history
//! answers; a snapshot built while apply continues holds exactly the state at its captured
//! index; corrupt or mismatched files are refused; an installed store reopens intact.

mod sm_support;

use node::raft_types::SnapshotMeta;
use node::sm::{SnapshotFile, StateMachineStore};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use sm_support::{apply, blank, build_snapshot, fingerprint, membership, Workload};

async fn workload_store(
    seed: u64,
    entries: usize,
) -> (tempfile::TempDir, StateMachineStore, Workload) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let mut w = Workload::new(seed, 6, 2);
    let mut batch = vec![blank(0), membership(1, &[1, 2, 3]), w.opening_entry()];
    batch.extend((0..entries).map(|_| w.next_entry()));
    apply(&mut store, batch).await;
    (dir, store, w)
}

#[tokio::test]
async fn build_then_install_into_a_fresh_store() {
    let (_d1, mut leader, _w) = workload_store(1, 250).await;
    assert!(leader.get_current_snapshot().await.unwrap().is_none());
    let mut builder = leader.try_create_snapshot_builder(true).await.unwrap();
    let snap = builder.build_snapshot().await.unwrap();
    assert_eq!(
        snap.meta.last_log_id,
        leader.applied_state().await.unwrap().0
    );
    let current = leader
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("current snapshot");
    assert_eq!(current.meta, snap.meta);

    let d2 = tempfile::tempdir().unwrap();
    let mut follower = StateMachineStore::open(d2.path()).unwrap();
    follower
        .install_snapshot(&current.meta, current.snapshot)
        .await
        .unwrap();
    assert_eq!(
        follower.applied_state().await.unwrap(),
        leader.applied_state().await.unwrap()
    );
    assert_eq!(
        fingerprint(&follower.reader()),
        fingerprint(&leader.reader())
    );
    assert_eq!(
        follower.get_current_snapshot().await.unwrap().unwrap().meta,
        snap.meta
    );
    // The leader keeps its own file.
    assert!(leader
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap()
        .snapshot
        .path()
        .exists());

    // The installed store reopens to the same state.
    let want = fingerprint(&follower.reader());
    drop(follower);
    let follower = StateMachineStore::open(d2.path()).unwrap();
    assert_eq!(fingerprint(&follower.reader()), want);
}

#[tokio::test]
async fn snapshot_built_during_apply_is_the_state_at_capture() {
    let (_d1, mut leader, mut w) = workload_store(2, 150).await;
    let captured = fingerprint(&leader.reader());
    let captured_meta = leader.applied_state().await.unwrap();
    let mut builder = leader.try_create_snapshot_builder(false).await.unwrap();
    let more: Vec<_> = (0..300).map(|_| w.next_entry()).collect();
    let build = tokio::spawn(async move { builder.build_snapshot().await });
    for chunk in more.chunks(10) {
        apply(&mut leader, chunk.to_vec()).await;
        tokio::task::yield_now().await;
    }
    let snap = build.await.unwrap().unwrap();
    assert_eq!(snap.meta.last_log_id, captured_meta.0);
    assert_eq!(snap.meta.last_membership, captured_meta.1);

    let d2 = tempfile::tempdir().unwrap();
    let mut follower = StateMachineStore::open(d2.path()).unwrap();
    follower
        .install_snapshot(&snap.meta, snap.snapshot)
        .await
        .unwrap();
    assert_eq!(fingerprint(&follower.reader()), captured);

    // The follower then applies the rest of the log and converges with the leader.
    apply(&mut follower, more).await;
    assert_eq!(
        fingerprint(&follower.reader()),
        fingerprint(&leader.reader())
    );
}

#[tokio::test]
async fn newer_snapshot_replaces_older_and_install_through_incoming_path() {
    let (d1, mut leader, mut w) = workload_store(3, 50).await;
    let first = build_snapshot(&mut leader).await;
    apply(&mut leader, (0..50).map(|_| w.next_entry()).collect()).await;
    let second = build_snapshot(&mut leader).await;
    assert!(second.meta.last_log_id > first.meta.last_log_id);
    assert!(
        !first.snapshot.path().exists(),
        "only the latest snapshot is kept"
    );
    let files: Vec<_> = std::fs::read_dir(leader.snapshot_dir()).unwrap().collect();
    assert_eq!(files.len(), 1);
    assert!(leader.snapshot_dir().starts_with(d1.path()));

    // As the network layer does: the full file's bytes into an incoming path, then
    // SnapshotFile::open. The node itself keeps only the working set; the full file carries
    // the history too.
    let sent = second.snapshot.file_to_send().await.unwrap();
    let sent_bytes = std::fs::metadata(&sent).unwrap().len();
    let local_bytes = second.snapshot.size_bytes().unwrap();
    assert!(
        local_bytes * 3 < sent_bytes,
        "local {local_bytes} B, full {sent_bytes} B"
    );
    let d2 = tempfile::tempdir().unwrap();
    let mut follower = StateMachineStore::open(d2.path()).unwrap();
    let incoming = follower.new_incoming_snapshot_path();
    assert!(incoming.starts_with(follower.snapshot_dir()));
    std::fs::copy(&sent, &incoming).unwrap();
    let file = SnapshotFile::open(&incoming).unwrap();
    assert_eq!(file.size_bytes().unwrap(), sent_bytes);
    follower.install_snapshot(&second.meta, file).await.unwrap();
    assert!(!incoming.exists(), "incoming file moved into place");
    assert_eq!(
        fingerprint(&follower.reader()),
        fingerprint(&leader.reader())
    );
}

#[tokio::test]
async fn corrupt_or_mismatched_snapshots_are_refused() {
    let (_d1, mut leader, _w) = workload_store(4, 80).await;
    let snap = build_snapshot(&mut leader).await;
    let bytes = std::fs::read(snap.snapshot.path()).unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let mut follower = StateMachineStore::open(d2.path()).unwrap();
    let before = fingerprint(&follower.reader());

    let write = |name: &str, data: &[u8]| {
        let p = d2.path().join(name);
        std::fs::write(&p, data).unwrap();
        SnapshotFile::open(&p).unwrap()
    };
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let truncated = &bytes[..bytes.len() - 3];
    let mut trailing = bytes.clone();
    trailing.push(0);
    for (name, data) in [
        ("flipped", &flipped[..]),
        ("truncated", truncated),
        ("trailing", &trailing[..]),
    ] {
        let res = follower
            .install_snapshot(&snap.meta, write(name, data))
            .await;
        assert!(res.is_err(), "{name} snapshot must be refused");
    }
    let wrong_meta = SnapshotMeta {
        last_log_id: Some(sm_support::log_id(1)),
        last_membership: snap.meta.last_membership.clone(),
    };
    let res = follower
        .install_snapshot(&wrong_meta, write("ok", &bytes))
        .await;
    assert!(res.is_err(), "meta must match the file");
    assert_eq!(
        fingerprint(&follower.reader()),
        before,
        "a refused install changes nothing"
    );
    assert!(follower.get_current_snapshot().await.unwrap().is_none());
}

/// History leaves memory at a snapshot build and is answered from disk ever after: by the
/// node that built it, after a restart, by a node that installed the snapshot with a page
/// cache far smaller than the history, and by stores that keep applying — all equal to a
/// store that replayed the same log and never built a snapshot.
#[tokio::test]
async fn history_leaves_memory_at_a_snapshot_and_is_answered_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let mut w = Workload::new(11, 8, 2);
    let mut log = vec![blank(0), membership(1, &[1, 2, 3]), w.opening_entry()];
    log.extend((0..300).map(|_| w.next_entry()));
    apply(&mut store, log.clone()).await;
    let in_memory = store.reader().history_in_memory();
    assert!(
        in_memory > 300,
        "history is in memory before a build: {in_memory}"
    );
    let before = fingerprint(&store.reader());

    let snap = build_snapshot(&mut store).await;
    assert_eq!(
        store.reader().history_in_memory(),
        0,
        "the build moved it to disk"
    );
    assert_eq!(store.reader().history_on_disk(), in_memory);
    assert_eq!(fingerprint(&store.reader()), before);

    drop(store);
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    assert_eq!(
        store.reader().history_in_memory(),
        0,
        "a restart loads the working set"
    );
    assert_eq!(fingerprint(&store.reader()), before);

    let small = node::sm::StoreOptions {
        sled_cache_bytes: 64 << 10,
        ..Default::default()
    };
    let d2 = tempfile::tempdir().unwrap();
    let mut installed = StateMachineStore::open_with(d2.path(), &small).unwrap();
    // The restarted store serves its snapshot (expanded from its local file and history).
    sm_support::install_served(&mut store, &mut installed, &snap).await;
    assert_eq!(installed.reader().history_in_memory(), 0);
    assert_eq!(fingerprint(&installed.reader()), before);

    let more: Vec<_> = (0..100).map(|_| w.next_entry()).collect();
    log.extend(more.iter().cloned());
    apply(&mut store, more.clone()).await;
    apply(&mut installed, more).await;
    let d3 = tempfile::tempdir().unwrap();
    let mut replayed = StateMachineStore::open(d3.path()).unwrap();
    apply(&mut replayed, log).await;
    let expected = fingerprint(&replayed.reader());
    assert_eq!(fingerprint(&store.reader()), expected);
    assert_eq!(fingerprint(&installed.reader()), expected);
}

/// History moved to disk between snapshots (the `--history-in-memory-max` bound) is answered
/// from disk, and a restart that replays the log over it — the cold history then holds records
/// from after the snapshot the node resumes at — ends in the same state as a store that kept
/// everything in memory.
#[tokio::test]
async fn history_moved_between_snapshots_survives_a_restart_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let mut w = Workload::new(5, 8, 2);
    let mut log = vec![blank(0), membership(1, &[1, 2, 3]), w.opening_entry()];
    log.extend((0..150).map(|_| w.next_entry()));
    apply(&mut store, log.clone()).await;
    build_snapshot(&mut store).await;
    let more: Vec<_> = (0..150).map(|_| w.next_entry()).collect();
    log.extend(more.iter().cloned());
    apply(&mut store, more).await;
    let moved = store.reader().migrate_history().unwrap();
    assert!(moved > 150, "moved {moved}");
    assert_eq!(store.reader().history_in_memory(), 0);
    let before = fingerprint(&store.reader());

    drop(store);
    let reopened = sm_support::reopen_and_replay(dir.path(), &log).await;
    assert_eq!(reopened.reader().applied_index(), w.next_index - 1);
    assert_eq!(fingerprint(&reopened.reader()), before);
    let d2 = tempfile::tempdir().unwrap();
    let mut replayed = StateMachineStore::open(d2.path()).unwrap();
    apply(&mut replayed, log).await;
    assert_eq!(fingerprint(&replayed.reader()), before);
}

/// A history move between a snapshot's capture and its build appends the captured history and
/// newer records after it: the snapshot must reference exactly what it captured (its full file
/// carries exactly the captured records, so snapshots at one index are equal on every node),
/// and the store must restart from it.
#[tokio::test]
async fn a_move_between_capture_and_build_leaves_the_snapshot_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let mut w = Workload::new(5, 8, 2);
    let mut log = vec![blank(0), membership(1, &[1, 2, 3]), w.opening_entry()];
    log.extend((0..120).map(|_| w.next_entry()));
    apply(&mut store, log.clone()).await;
    let captured = (fingerprint(&store.reader()), store.reader().state_hash());
    let captured_records = store.reader().history_in_memory() + store.reader().history_on_disk();
    let mut builder = store.try_create_snapshot_builder(false).await.unwrap();
    let more: Vec<_> = (0..120).map(|_| w.next_entry()).collect();
    log.extend(more.iter().cloned());
    apply(&mut store, more).await;
    // The move appends the captured generation, then the newer one.
    let moved = store.reader().migrate_history().unwrap();
    assert!(moved > 120, "moved {moved}");
    let snap = builder.build_snapshot().await.unwrap();
    let after_build = fingerprint(&store.reader());

    let d2 = tempfile::tempdir().unwrap();
    let mut installed = StateMachineStore::open(d2.path()).unwrap();
    installed
        .install_snapshot(&snap.meta, snap.snapshot)
        .await
        .unwrap();
    assert_eq!(installed.reader().state_hash().1, captured.1 .1);
    assert_eq!(fingerprint(&installed.reader()), captured.0);
    // Exactly the captured records travelled: none of the later ones the move appended.
    assert_eq!(installed.reader().history_on_disk(), captured_records);

    drop(builder);
    drop(store);
    let reopened = sm_support::reopen_and_replay(dir.path(), &log).await;
    assert_eq!(fingerprint(&reopened.reader()), after_build);
}

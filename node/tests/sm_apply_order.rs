//! Apply order: the state machine applies exactly the entry after its last applied one (index 0
//! first, the entry after a snapshot's last log id after an install or a restart). Anything else
//! means the log and the state machine disagree, and skipping an entry would silently lose its
//! money movements: apply fails with a storage error (which stops openraft's core) and changes
//! nothing, not even the entries of the same call before the offending one.

mod sm_support;

use node::sm::StateMachineStore;
use openraft::storage::RaftStateMachine;
use sm_support::{apply, blank, build_snapshot, fingerprint, membership, try_apply, Workload};
use std::io;

/// A store with entries 0 (membership) and 1..=20 applied; the workload continues at 21.
async fn store_at_20() -> (tempfile::TempDir, StateMachineStore, Workload) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let mut w = Workload::new(9, 4, 1);
    let mut entries = vec![membership(0, &[1]), w.opening_entry()];
    entries.extend((2..=20).map(|_| w.next_entry()));
    apply(&mut store, entries).await;
    assert_eq!(store.reader().applied_index(), 20);
    (dir, store, w)
}

/// Asserts `result` is the refusal of an out-of-order entry.
fn assert_refused(result: io::Result<()>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}: {err}");
    assert!(err.to_string().contains("expected"), "{what}: {err}");
}

#[tokio::test]
async fn an_entry_after_a_gap_is_refused_and_changes_nothing() {
    let (_dir, mut store, mut w) = store_at_20().await;
    let before = (
        fingerprint(&store.reader()),
        store.applied_state().await.unwrap(),
    );
    let skipped = w.next_entry();
    let after_gap = w.next_entry();
    assert_refused(
        try_apply(&mut store, vec![after_gap.clone()]).await,
        "entry 22 right after 20",
    );
    // A gap inside one call: entry 21 is not applied either.
    assert_refused(
        try_apply(&mut store, vec![skipped.clone(), w.next_entry()]).await,
        "entries 21, 23",
    );
    // Non-command entries follow the same rule.
    assert_refused(try_apply(&mut store, vec![blank(25)]).await, "blank 25");
    assert_refused(
        try_apply(&mut store, vec![membership(30, &[1, 2])]).await,
        "membership 30",
    );
    let after = (
        fingerprint(&store.reader()),
        store.applied_state().await.unwrap(),
    );
    assert_eq!(before, after, "a refused apply left traces");
    assert_eq!(store.reader().applied_index(), 20);
    // The right entries still apply.
    apply(&mut store, vec![skipped, after_gap]).await;
    assert_eq!(store.reader().applied_index(), 22);
}

#[tokio::test]
async fn a_fresh_store_starts_at_index_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    assert_refused(try_apply(&mut store, vec![blank(1)]).await, "blank 1 first");
    assert_eq!(store.applied_state().await.unwrap().0, None);
    apply(&mut store, vec![blank(0), blank(1)]).await;
    assert_eq!(store.reader().applied_index(), 1);
}

#[tokio::test]
async fn after_an_install_or_a_restart_apply_continues_after_the_snapshot() {
    let (leader_dir, mut leader, mut w) = store_at_20().await;
    let snap = build_snapshot(&mut leader).await;
    let next = [w.next_entry(), w.next_entry()];

    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = StateMachineStore::open(follower_dir.path()).unwrap();
    apply(&mut follower, vec![membership(0, &[1]), blank(1)]).await;
    follower
        .install_snapshot(&snap.meta, snap.snapshot)
        .await
        .unwrap();
    assert_refused(
        try_apply(&mut follower, vec![next[1].clone()]).await,
        "entry 22 right after a snapshot at 20",
    );
    apply(&mut follower, next.to_vec()).await;
    assert_eq!(follower.reader().applied_index(), 22);

    // A restart loads the snapshot: the replay must start right after it.
    drop(leader);
    let mut reopened = StateMachineStore::open(leader_dir.path()).unwrap();
    assert_eq!(reopened.reader().applied_index(), 20);
    assert_refused(
        try_apply(&mut reopened, vec![next[1].clone()]).await,
        "entry 22 after a restart at 20",
    );
    apply(&mut reopened, next.to_vec()).await;
    assert_eq!(
        fingerprint(&reopened.reader()),
        fingerprint(&follower.reader())
    );
}

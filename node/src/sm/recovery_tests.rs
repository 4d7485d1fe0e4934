//! Crash-recovery tests that need the store's internals: an install interrupted after its
//! marker was made durable, and a sled that lost writes the current snapshot still has.

use super::keys::meta_key;
use super::meta::SnapshotPointer;
use super::StateMachineStore;
use crate::raft_types::{Entry, EntryPayload, LedgerRequest, TypeConfig};
use ledger::{AccountId, Command, CommandBody, Currency};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};

fn entry(index: u64, commands: Vec<Command>) -> Entry {
    Entry {
        log_id: openraft::testing::log_id::<TypeConfig>(1, 1, index),
        payload: EntryPayload::Normal(LedgerRequest { commands }),
    }
}

/// Entry `index` opens account `a{index}` and deposits into it.
fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    let usd = Currency::parse("USD").unwrap();
    range
        .map(|i| {
            let account = AccountId::parse(&format!("a{i}")).unwrap();
            let open = CommandBody::OpenAccount {
                account: account.clone(),
                currency: usd,
                overdraft_limit: 0,
                metadata: "{}".to_owned(),
            };
            let deposit = CommandBody::Deposit {
                account,
                amount: 10 * i as i64,
            };
            let cmd = |id: String, body| Command {
                id,
                timestamp_us: 1_000 * i,
                body,
            };
            entry(
                i,
                vec![cmd(format!("o{i}"), open), cmd(format!("d{i}"), deposit)],
            )
        })
        .collect()
}

/// Entries `0..=last`: the blank entry 0 every log starts with, then `entries(1..=last)`.
fn log_to(last: u64) -> Vec<Entry> {
    let blank = Entry {
        log_id: openraft::testing::log_id::<TypeConfig>(1, 1, 0),
        payload: EntryPayload::Blank,
    };
    let mut log = vec![blank];
    log.extend(entries(1..=last));
    log
}

/// Builds a snapshot of `store` now.
async fn build(store: &mut StateMachineStore) -> crate::raft_types::Snapshot {
    let mut builder = store.get_snapshot_builder().await;
    builder.build_snapshot().await.unwrap()
}

/// Makes `ptr` the current snapshot pointer, durably (as a build or install would).
fn make_current(store: &StateMachineStore, ptr: &SnapshotPointer) {
    let trees = &store.shared.trees;
    trees.write_pointer(meta_key::SNAPSHOT, Some(ptr)).unwrap();
    store.flush().unwrap();
}

async fn apply(store: &mut StateMachineStore, entries: Vec<Entry>) {
    let items = entries.into_iter().map(|e| Ok((e, None)));
    store.apply(futures::stream::iter(items)).await.unwrap();
}

/// Copies the full file of `snap` (what a peer would receive) into `store`'s snapshot dir under
/// a final name and returns its pointer.
async fn plant(store: &StateMachineStore, snap: &crate::raft_types::Snapshot) -> SnapshotPointer {
    let file_name = store.shared.snapshot_file_name(99);
    let full = snap.snapshot.file_to_send().await.unwrap();
    std::fs::copy(full, store.snapshot_dir().join(&file_name)).unwrap();
    SnapshotPointer {
        meta: snap.meta.clone(),
        file_name,
    }
}

#[tokio::test]
async fn interrupted_install_is_resumed_on_open() {
    let d1 = tempfile::tempdir().unwrap();
    let mut leader = StateMachineStore::open(d1.path()).unwrap();
    apply(&mut leader, log_to(40)).await;
    let snap = build(&mut leader).await;

    let d2 = tempfile::tempdir().unwrap();
    let mut follower = StateMachineStore::open(d2.path()).unwrap();
    apply(&mut follower, log_to(5)).await;
    // Crash point: marker durable, trees half replaced.
    let ptr = plant(&follower, &snap).await;
    let trees = &follower.shared.trees;
    trees
        .write_pointer(meta_key::INSTALLING, Some(&ptr))
        .unwrap();
    trees.events.clear().unwrap();
    trees.flush_durable().unwrap();
    drop(follower);

    let mut follower = StateMachineStore::open(d2.path()).unwrap();
    assert_eq!(
        follower.applied_state().await.unwrap(),
        leader.applied_state().await.unwrap()
    );
    assert_eq!(follower.reader().state_hash(), leader.reader().state_hash());
    assert_eq!(
        follower.reader().events_from(1, 1000).unwrap(),
        leader.reader().events_from(1, 1000).unwrap()
    );
    assert!(follower
        .shared
        .trees
        .read_pointer(meta_key::INSTALLING)
        .unwrap()
        .is_none());
    assert_eq!(
        follower.get_current_snapshot().await.unwrap().unwrap().meta,
        snap.meta
    );
}

/// A full file found as the current snapshot (an older build's, or planted by an operator) is
/// installed on open, history included.
#[tokio::test]
async fn a_full_snapshot_found_current_is_installed_on_open() {
    let d1 = tempfile::tempdir().unwrap();
    let mut full = StateMachineStore::open(d1.path()).unwrap();
    apply(&mut full, log_to(30)).await;
    let snap = build(&mut full).await;

    // A store whose sled holds only a prefix (lost writes) but whose snapshot pointer survived.
    let d2 = tempfile::tempdir().unwrap();
    let mut lossy = StateMachineStore::open(d2.path()).unwrap();
    apply(&mut lossy, log_to(12)).await;
    let ptr = plant(&lossy, &snap).await;
    make_current(&lossy, &ptr);
    drop(lossy);

    let mut lossy = StateMachineStore::open(d2.path()).unwrap();
    assert_eq!(
        lossy.applied_state().await.unwrap(),
        full.applied_state().await.unwrap()
    );
    assert_eq!(lossy.reader().state_hash(), full.reader().state_hash());
    // And it continues from there.
    apply(&mut lossy, entries(31..=32)).await;
    apply(&mut full, entries(31..=32)).await;
    assert_eq!(lossy.reader().state_hash(), full.reader().state_hash());
    assert_eq!(
        lossy.reader().events_from(1, 1000).unwrap(),
        full.reader().events_from(1, 1000).unwrap()
    );
    // Its own snapshot is local again: the working set, history left on its disk.
    let own = lossy.get_current_snapshot().await.unwrap().unwrap();
    let header = super::snapshot_file::read_header(own.snapshot.path()).unwrap();
    assert!(header.history.is_some());
}

/// sled that lost history a local snapshot relies on (the log before it may be purged) is
/// refused with a clear error, never served with holes.
#[tokio::test]
async fn sled_behind_its_local_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    apply(&mut store, log_to(12)).await;
    let applied_at_12 = store.shared.trees.read_applied().unwrap().unwrap();
    apply(&mut store, entries(13..=30)).await;
    build(&mut store).await;
    // sled forgets entries 13..=30 (its history mark goes back), the pointer stays.
    let trees = &store.shared.trees;
    let meta = crate::sm::codec::encode(&applied_at_12).unwrap();
    trees.meta.insert(meta_key::APPLIED, meta).unwrap();
    let later = super::keys::u64_key(applied_at_12.last_event_seq + 1);
    for row in trees.events.range(later..) {
        trees.events.remove(row.unwrap().0).unwrap();
    }
    store.flush().unwrap();
    drop(store);
    let err = StateMachineStore::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("rejoin"), "{err}");
}

#[tokio::test]
async fn reopen_starts_at_the_snapshot_and_replay_skips_stored_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    apply(&mut store, log_to(0)).await;
    for i in 1..=10 {
        apply(&mut store, entries(i..=i)).await;
    }
    build(&mut store).await;
    for i in 11..=20 {
        apply(&mut store, entries(i..=i)).await;
    }
    let before = (
        store.applied_state().await.unwrap(),
        store.reader().state_hash(),
        store.reader().events_from(1, 1000).unwrap(),
    );
    drop(store);

    let mut store = StateMachineStore::open(dir.path()).unwrap();
    assert_eq!(
        store.reader().applied_index(),
        10,
        "ledger comes from the snapshot"
    );
    assert_eq!(
        store.shared.live().history_index,
        20,
        "history mark from sled"
    );
    apply(&mut store, entries(11..=20)).await;
    let after = (
        store.applied_state().await.unwrap(),
        store.reader().state_hash(),
        store.reader().events_from(1, 1000).unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(store.shared.live().history_index, 20);
    apply(&mut store, entries(21..=21)).await;
    assert_eq!(
        store.shared.live().history_index,
        21,
        "new entries write history again"
    );
}

#[tokio::test]
async fn a_database_of_another_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateMachineStore::open(dir.path()).unwrap();
    store
        .shared
        .trees
        .meta
        .insert(meta_key::LAYOUT, crate::sm::codec::encode(&1u32).unwrap())
        .unwrap();
    store.flush().unwrap();
    drop(store);
    let err = StateMachineStore::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("layout"), "{err}");
}

/// A crash after a build copied its history to the cold file but before its snapshot was
/// current leaves the cold history AHEAD of the snapshot the node restarts from. The replay
/// must not see those later records (it would take its own commands for retries).
#[tokio::test]
async fn cold_history_ahead_of_the_snapshot_stays_invisible_to_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    apply(&mut store, log_to(10)).await;
    let first = build(&mut store).await;
    let old = store.shared.trees.read_pointer(meta_key::SNAPSHOT).unwrap();
    let old = old.expect("pointer of the first snapshot");
    let kept = dir.path().join("first-snapshot.keep");
    std::fs::copy(first.snapshot.path(), &kept).unwrap();
    apply(&mut store, entries(11..=20)).await;
    build(&mut store).await;
    assert_eq!(store.reader().history_in_memory(), 0);
    let expected = (
        store.reader().state_hash(),
        store.reader().events_from(1, 1000).unwrap(),
    );
    // The second snapshot never became current: the first one is back, the cold records of
    // 11..=20 stay.
    std::fs::rename(&kept, store.shared.snapshot_dir.join(&old.file_name)).unwrap();
    make_current(&store, &old);
    drop(store);

    let mut store = StateMachineStore::open(dir.path()).unwrap();
    assert_eq!(store.reader().applied_index(), 10);
    assert!(
        store.reader().command_result("o11").is_none(),
        "a record from after the snapshot is visible before its entry is replayed"
    );
    apply(&mut store, entries(11..=20)).await;
    let replayed = (
        store.reader().state_hash(),
        store.reader().events_from(1, 1000).unwrap(),
    );
    assert_eq!(replayed, expected);
    assert!(store
        .reader()
        .command_result("o11")
        .is_some_and(|r| !r.replayed));
}

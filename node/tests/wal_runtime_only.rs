//! `Execution::RuntimeOnly`: the WAL does all its work on the thread of the runtime that
//! opened it (no flusher thread, no blocking pool), as a deterministic simulation needs, and
//! keeps every durability rule: what it acknowledged survives a power cut, across segment
//! rotations, a purge and reads of evicted entries. Run twice from the same inputs it leaves
//! the same bytes on disk. The thread check is shown to see a flusher thread when there is one.

mod threads_support;
mod wal_support;

use node::execution::Execution;
use node::log_store::LogStore;
use node::raft_types::Vote;
use node::wal::{SimFs, WalFs, WalOptions};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use threads_support::thread_names;
use wal_support::{all_entries, append_range, bounds, entries, log_id, small_segments};

fn runtime_only() -> WalOptions {
    WalOptions {
        execution: Execution::RuntimeOnly,
        ..small_segments()
    }
}

fn flusher_threads() -> usize {
    thread_names()
        .iter()
        .filter(|n| *n == "wal-flusher")
        .count()
}

/// Every file under `dir` with its bytes.
fn files(fs: &SimFs, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for name in fs.list(dir).unwrap() {
        let file = fs.open(&dir.join(&name)).unwrap();
        let mut bytes = vec![0; file.size_bytes().unwrap() as usize];
        file.read_at(0, &mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

/// A vote, 1,000 entries over many small segments, a purge of the first 600, and a read of
/// evicted entries; returns what the store reads back.
async fn workload(store: &mut LogStore) -> Vec<node::raft_types::Entry> {
    store.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
    append_range(store, 2, 0..1000).await;
    store.purge(log_id(2, 599)).await.unwrap();
    // The entry cache holds 16: these come from the segments.
    let evicted = store
        .get_log_reader()
        .await
        .try_get_log_entries(600..700)
        .await
        .unwrap();
    assert_eq!(evicted, entries(2, 600..700));
    all_entries(store).await
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn runtime_only_wal_keeps_acknowledged_writes_without_threads() {
    let sim = SimFs::new();
    let dir = Path::new("/n1/wal");
    let threads_before = thread_names().len();
    {
        let mut store = LogStore::open_with_options(Arc::new(sim.clone()), dir, runtime_only())
            .expect("open on the runtime");
        assert_eq!(workload(&mut store).await, entries(2, 600..1000));
        assert!(store.stats().segments > 2, "the load rotated segments");
        // No thread was started: no flusher, no blocking pool for the reads of evicted entries.
        assert_eq!(thread_names().len(), threads_before, "{:?}", thread_names());
        assert_eq!(flusher_threads(), 0, "threads: {:?}", thread_names());
    }
    // Everything above was acknowledged: a power cut keeps all of it.
    sim.power_cut();
    let mut store =
        LogStore::open_with_options(Arc::new(sim.clone()), dir, runtime_only()).unwrap();
    assert_eq!(all_entries(&mut store).await, entries(2, 600..1000));
    assert_eq!(
        bounds(&mut store).await,
        (Some(log_id(2, 599)), Some(log_id(2, 999)))
    );
    let vote = store.get_log_reader().await.read_vote().await.unwrap();
    assert_eq!(vote, Some(Vote::new_committed(2, 1)));

    // The check above can see a flusher: the default execution has one.
    let threaded = LogStore::open_with_options(
        Arc::new(SimFs::new()),
        dir,
        WalOptions {
            execution: Execution::Threads,
            ..small_segments()
        },
    )
    .unwrap();
    // A new thread names itself once it runs: give it up to 5 s.
    for _ in 0..500 {
        if flusher_threads() == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(flusher_threads(), 1, "threads: {:?}", thread_names());
    drop(threaded);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_same_writes_leave_the_same_bytes() {
    let dir = Path::new("/n1/wal");
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sim = SimFs::new();
        let mut store =
            LogStore::open_with_options(Arc::new(sim.clone()), dir, runtime_only()).unwrap();
        workload(&mut store).await;
        drop(store);
        tokio::task::yield_now().await;
        runs.push(files(&sim, dir));
    }
    assert!(runs[0].len() > 1, "files: {:?}", runs[0].keys());
    assert!(runs[0] == runs[1], "the two runs left different files");
}

#[test]
fn opening_runtime_only_outside_a_runtime_is_an_error() {
    let err = LogStore::open_with_options(Arc::new(SimFs::new()), Path::new("/w"), runtime_only())
        .expect_err("no runtime to run the flusher on");
    assert!(err.to_string().contains("runtime"), "{err}");
}

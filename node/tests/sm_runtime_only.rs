//! `Execution::RuntimeOnly` in the state machine: apply chunks, a snapshot build, the snapshot's
//! expansion for a peer and its install all run on the runtime's one thread (none of our
//! threads, no blocking pool; sled keeps its own), and give the same state as a store on
//! threads that applied the same log. The thread check is shown to see the blocking pool of a
//! store that uses it (threads are sampled after each step: the pool's stay 10 s after their
//! last task; a build's own thread may already be gone).

mod sm_support;
mod threads_support;

use node::execution::Execution;
use node::sm::{StateMachineStore, StoreOptions};
use sm_support::{apply, blank, build_snapshot, fingerprint, install_served, membership, Workload};
use std::collections::BTreeSet;
use threads_support::thread_names;

/// Threads started since `before` that are ours or tokio's blocking pool (not sled's).
fn threads_started(before: &BTreeSet<String>, seen: &mut BTreeSet<String>) {
    for name in thread_names() {
        let ours = name.starts_with("snapshot-") || name.starts_with("tokio-");
        if ours && !before.contains(&name) {
            seen.insert(name);
        }
    }
}

fn options(execution: Execution) -> StoreOptions {
    StoreOptions {
        execution,
        ..StoreOptions::default()
    }
}

/// Applies a log in chunks, builds a snapshot, installs it into a second store and applies
/// more to both; samples the threads after every step. Returns the two fingerprints and the
/// threads seen.
async fn life(execution: Execution) -> (String, String, BTreeSet<String>) {
    let before: BTreeSet<String> = thread_names().into_iter().collect();
    let mut seen = BTreeSet::new();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut store = StateMachineStore::open_with(d1.path(), &options(execution)).unwrap();
    let mut w = Workload::new(7, 6, 2);
    let mut log = vec![blank(0), membership(1, &[1, 2, 3]), w.opening_entry()];
    log.extend((0..400).map(|_| w.next_entry()));
    for chunk in log.chunks(50) {
        apply(&mut store, chunk.to_vec()).await;
        threads_started(&before, &mut seen);
    }
    let snap = build_snapshot(&mut store).await;
    threads_started(&before, &mut seen);
    let mut installed = StateMachineStore::open_with(d2.path(), &options(execution)).unwrap();
    install_served(&mut store, &mut installed, &snap).await;
    threads_started(&before, &mut seen);
    let more: Vec<_> = (0..50).map(|_| w.next_entry()).collect();
    apply(&mut store, more.clone()).await;
    apply(&mut installed, more).await;
    threads_started(&before, &mut seen);
    (
        format!("{:?}", fingerprint(&store.reader())),
        format!("{:?}", fingerprint(&installed.reader())),
        seen,
    )
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn runtime_only_state_machine_starts_none_of_our_threads() {
    let (built, installed, seen) = life(Execution::RuntimeOnly).await;
    assert!(seen.is_empty(), "threads started: {seen:?}");
    assert_eq!(built, installed, "the installed store differs");

    // Same log on threads: the same state, and the check sees the threads it used.
    let (built_threaded, installed_threaded, seen_threaded) = life(Execution::Threads).await;
    assert_eq!(built, built_threaded, "execution changed the state");
    assert_eq!(installed, installed_threaded);
    // A build's or an expansion's own thread may be gone before a sample; the blocking pool's
    // threads stay 10 s after their last task, so those are always seen.
    assert!(
        seen_threaded.iter().any(|n| n.starts_with("tokio-")),
        "threaded apply runs on the blocking pool: {seen_threaded:?}"
    );
}

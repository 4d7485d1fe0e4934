//! The history bound holds on a saturated host: while every CPU is busy at normal priority
//! and apply keeps adding history, the history held in memory stays within a small multiple
//! of `--history-in-memory-max` (a move started at the lowest priority on a busy host is
//! starved for as long as the host stays busy, and everything applied meanwhile piles up).

mod sm_support;

use node::sm::StateMachineStore;
use sm_support::{apply, blank, membership, Workload};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `--history-in-memory-max` of the test store.
const BOUND_RECORDS: u64 = 4_000;
/// Entries applied per round (one apply call), and rounds: enough for the history to outgrow
/// the bound many times over. The bound is checked every 250 ms, so what the store applies in
/// that time (a few thousand records here) comes on top of it.
const ENTRIES_PER_ROUND: usize = 40;
const ROUNDS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_held_stays_near_its_bound_while_every_cpu_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let mut w = Workload::new(11, 16, 2);
    apply(
        &mut store,
        vec![blank(0), membership(1, &[1, 2, 3]), w.opening_entry()],
    )
    .await;
    let reader = store.reader();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let bound = tokio::spawn(node::history_bound::run(
        reader.clone(),
        BOUND_RECORDS,
        stop_rx,
    ));

    let spinning = Arc::new(AtomicBool::new(true));
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spinners: Vec<_> = (0..cpus * 2)
        .map(|_| {
            let spinning = Arc::clone(&spinning);
            std::thread::spawn(move || {
                while spinning.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();

    let mut held_max = 0;
    for _ in 0..ROUNDS {
        let round = (0..ENTRIES_PER_ROUND).map(|_| w.next_entry()).collect();
        apply(&mut store, round).await;
        held_max = held_max.max(reader.history_in_memory() as u64);
    }
    spinning.store(false, Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
    stop_tx.send(true).unwrap();
    bound.await.unwrap();

    let on_disk = reader.history_on_disk() as u64;
    eprintln!("held at most {held_max} records (bound {BOUND_RECORDS}); {on_disk} on disk");
    assert!(
        on_disk > 15 * BOUND_RECORDS,
        "the load must outgrow the bound many times over to test it: {on_disk} on disk"
    );
    assert!(
        held_max <= 10 * BOUND_RECORDS,
        "held {held_max} records in memory with a bound of {BOUND_RECORDS}"
    );
}

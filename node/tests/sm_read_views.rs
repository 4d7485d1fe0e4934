//! Reads that return an applied index with their data take both from one view: while entries
//! are applied concurrently, `balance_at_time_view` never returns a balance from an entry after
//! its index (and equals the replay at that index), and `account_events_view` never returns an
//! event from an entry after its index.

mod sm_support;

use ledger::{CommandBody, Currency};
use node::sm::StateMachineStore;
use sm_support::{acct, apply, blank, cmd, normal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Entries applied while the reader thread checks views (one deposit of 1 each).
const ENTRIES: u64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_never_hold_data_newer_than_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let a = acct("v-a");
    let open = CommandBody::OpenAccount {
        account: a.clone(),
        currency: Currency::parse("USD").unwrap(),
        overdraft_limit: 0,
        metadata: "{}".into(),
    };
    // A fresh state machine applies from index 0 (openraft's first entry).
    apply(
        &mut store,
        vec![blank(0), normal(1, vec![cmd("open", 1, open)])],
    )
    .await;

    let reader = store.reader();
    let stop = Arc::new(AtomicBool::new(false));
    let checker = std::thread::spawn({
        let (reader, a, stop) = (reader.clone(), a.clone(), stop.clone());
        move || {
            let mut checked = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (index, b) = reader.balance_at_time_view(&a, u64::MAX).unwrap();
                let b = b.expect("account open");
                assert!(
                    b.index <= index,
                    "balance of index {} in view {index}",
                    b.index
                );
                // Entry i (i >= 2) deposits 1: the balance at index i is i - 1.
                assert_eq!(b.balance as u64, index - 1, "balance differs from replay");
                let (index, events) = reader.account_events_view(&a, 0, 1000).unwrap();
                let events = events.expect("account open");
                let newest = events.iter().map(|e| e.index).max().unwrap_or(0);
                assert!(newest <= index, "event of index {newest} in view {index}");
                checked += 1;
            }
            checked
        }
    });
    for i in 2..=ENTRIES + 1 {
        let deposit = CommandBody::Deposit {
            account: a.clone(),
            amount: 1,
        };
        apply(
            &mut store,
            vec![normal(i, vec![cmd(&format!("d{i}"), i, deposit)])],
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let checked = checker.join().expect("checker thread");
    assert!(checked > 0, "the checker ran");
    let (index, b) = reader.balance_at_time_view(&a, u64::MAX).unwrap();
    assert_eq!(
        (index, b.map(|b| b.balance)),
        (ENTRIES + 1, Some(ENTRIES as i64))
    );
}

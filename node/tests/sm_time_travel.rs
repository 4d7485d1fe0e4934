//! Time travel (L8): `balance_at_time` and `balance_at_index` equal a brute-force replay of the
//! event list, for many random points, including before an account existed, exactly at event
//! timestamps, between them, and past the end.

mod sm_support;

use node::sm::StateMachineStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sm_support::{accounts_in, all_events, apply, blank, replay_balance, Workload};

#[tokio::test]
async fn balance_at_time_and_index_match_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let mut w = Workload::new(42, 6, 1);
    // A few entries before the accounts exist, so early points read as "not found".
    let mut entries = vec![
        blank(0),
        w.blank_entry(),
        w.blank_entry(),
        w.opening_entry(),
    ];
    for i in 0..400 {
        entries.push(if i % 97 == 0 {
            w.blank_entry()
        } else {
            w.next_entry()
        });
    }
    for chunk in entries.chunks(25) {
        apply(&mut store, chunk.to_vec()).await;
    }
    let reader = store.reader();
    let events = all_events(&reader);
    assert!(
        events.len() > 500,
        "workload too small: {} events",
        events.len()
    );
    let accounts: Vec<_> = accounts_in(&events).into_iter().collect();
    let ts_min = events.first().unwrap().timestamp_us;
    let ts_max = events.last().unwrap().timestamp_us;
    let index_max = reader.applied_index();
    let mut rng = StdRng::seed_from_u64(9);
    for round in 0..3000 {
        let account = &accounts[rng.random_range(0..accounts.len())];
        let t = match round % 3 {
            0 => rng.random_range(ts_min.saturating_sub(10)..=ts_max + 10),
            // Exactly at, and just before, some event's timestamp.
            1 => events[rng.random_range(0..events.len())].timestamp_us,
            _ => events[rng.random_range(0..events.len())].timestamp_us - 1,
        };
        let want = replay_balance(&events, account, |e| e.timestamp_us <= t);
        let got = reader.balance_at_time(account, t).unwrap();
        assert_eq!(got, want, "balance_at_time({account}, {t})");
        let n = rng.random_range(0..=index_max + 2);
        let want = replay_balance(&events, account, |e| e.index <= n);
        let got = reader.balance_at_index(account, n).unwrap();
        assert_eq!(got, want, "balance_at_index({account}, {n})");
    }
    // The present equals the live balance.
    for account in &accounts {
        let now = reader
            .balance_at_index(account, index_max)
            .unwrap()
            .map(|b| b.balance);
        assert_eq!(
            now,
            reader.account(account).1.map(|a| a.balance),
            "{account}"
        );
    }
}

#[tokio::test]
async fn account_events_pages_cover_the_account_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateMachineStore::open(dir.path()).unwrap();
    let mut w = Workload::new(5, 4, 1);
    let mut entries = vec![blank(0), w.opening_entry()];
    entries.extend((0..200).map(|_| w.next_entry()));
    apply(&mut store, entries).await;
    let reader = store.reader();
    let events = all_events(&reader);
    for account in accounts_in(&events) {
        let want: Vec<_> = events
            .iter()
            .filter(|e| e.kind.accounts().contains(&&account))
            .cloned()
            .collect();
        let mut got = Vec::new();
        loop {
            let after = got.last().map_or(0, |e: &ledger::Event| e.seq);
            let page = reader.account_events(&account, after, 7).unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 7);
            got.extend(page);
        }
        assert_eq!(got, want, "{account}");
    }
}

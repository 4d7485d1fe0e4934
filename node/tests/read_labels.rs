//! Read labels agree with the data under concurrent writes: `GET /v1/accounts/{id}/balance?at=`
//! and `GET /v1/accounts/{id}/events` return data that was applied at or before the index in
//! their `X-Ledger-Index`, and the balance equals the replay at that index (`at_index`).

mod common;

use common::{open_accounts, Http, TestCluster};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Concurrent writers depositing 1 unit each time.
const WRITERS: usize = 4;
/// Deposits per writer.
const DEPOSITS_PER_WRITER: usize = 400;
/// A time after every event: `at` then means "the latest balance", read from the postings.
const FAR_FUTURE: &str = "2999-01-01T00:00:00Z";

async fn writer(h: Http, w: usize) {
    for i in 0..DEPOSITS_PER_WRITER {
        let body = json!({"id": format!("l-{w}-{i}"), "account": "l-a", "amount": 1});
        let r = h.must_post("/v1/deposits", &body).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
}

/// Checks balance and listing labels until `stop`; returns the number of reads checked.
async fn reader(h: Http, stop: Arc<AtomicBool>) -> usize {
    let mut checked = 0;
    let mut after_seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let r = h
            .must_get(&format!(
                "/v1/accounts/l-a/balance?at={FAR_FUTURE}&consistency=stale"
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let label = r.index.expect("X-Ledger-Index");
        let data_index = r.body["index"].as_u64().expect("index");
        assert!(
            data_index <= label,
            "balance?at= holds data of index {data_index} labelled X-Ledger-Index {label}"
        );
        let replay = h
            .must_get(&format!(
                "/v1/accounts/l-a/balance?at_index={label}&consistency=stale"
            ))
            .await;
        assert_eq!(
            replay.body["balance"], r.body["balance"],
            "balance?at= differs from the replay at its X-Ledger-Index {label}"
        );

        let r = h
            .must_get(&format!(
                "/v1/accounts/l-a/events?after_seq={after_seq}&limit=1000&consistency=stale"
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let label = r.index.expect("X-Ledger-Index");
        let events = r.body["events"].as_array().cloned().unwrap_or_default();
        for e in &events {
            let i = e["index"].as_u64().expect("event index");
            assert!(
                i <= label,
                "events listing holds an event of index {i} labelled X-Ledger-Index {label}"
            );
        }
        // Keep the pages short: only the newest events can race with the label.
        if let Some(seq) = events.last().and_then(|e| e["seq"].as_u64()) {
            after_seq = seq.saturating_sub(2);
        }
        checked += 1;
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_labels_never_trail_the_data() {
    let mut tc = TestCluster::start("read-labels", 1, &[], &[]).await;
    let _ = tc.leader().await;
    let h = tc.http(1);
    open_accounts(std::slice::from_ref(&h), &["l-a"], "USD").await;

    tc.phase("writers deposit while readers compare labels with data");
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(reader(h.clone(), stop.clone())))
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(h.clone(), w)))
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    stop.store(true, Ordering::Relaxed);
    let mut checked = 0;
    for r in readers {
        checked += r.await.expect("reader");
    }
    tc.phase(&format!("{checked} read pairs checked"));
    assert!(checked > 0);
    tc.assert_no_panics();
}

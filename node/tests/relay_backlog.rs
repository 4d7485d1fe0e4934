//! The relay when NATS is not there: commands keep committing while no nats-server runs; when
//! one appears, the leader creates the stream and drains the backlog from the log, every event
//! exactly once at stream sequence == event_seq.

mod common;

use common::{deposit, open_accounts, TestCluster};
use readmodel::local::{free_port, nats::LocalNats};
use serde_json::Value;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_drains_when_nats_appears() {
    let dir = tempfile::Builder::new()
        .prefix("relay-backlog-")
        .tempdir()
        .unwrap();
    let port = free_port().unwrap();
    let url = format!("nats://127.0.0.1:{port}");
    let mut tc = TestCluster::start("relay_backlog", 3, &[], &["--nats-url", &url]).await;
    let nodes = tc.https(&[1, 2, 3]);
    tc.phase("writes with no nats-server running");
    open_accounts(&nodes, &["a", "b"], "USD").await;
    for k in 0..40 {
        deposit(
            &nodes,
            &format!("d{k}"),
            if k % 2 == 0 { "a" } else { "b" },
            5,
        )
        .await;
    }
    let leader = tc.leader().await;
    let last = tc.status(leader).await["last_event_seq"].as_u64().unwrap();
    assert!(
        last >= 43,
        "accounts, system account and deposits committed: {last}"
    );

    tc.phase("nats-server starts: the backlog drains");
    let _nats =
        LocalNats::start_on(&dir.path().join("nats"), port).expect("nats-server (install step)");
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        if let Ok(s) = js.get_stream("LEDGER").await {
            if s.get_info()
                .await
                .map(|i| i.state.last_sequence)
                .unwrap_or(0)
                >= last
            {
                break s;
            }
        }
        assert!(Instant::now() < deadline, "backlog not drained within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.state.last_sequence, last, "nothing beyond the log");
    assert_eq!(info.state.messages, last, "every seq exactly once");
    assert!(
        info.config.deny_delete && info.config.deny_purge,
        "stream is append-only"
    );
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.unwrap();
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["seq"].as_u64(), Some(seq), "stream sequence == event_seq");
        assert!(m.subject.starts_with("ledger.events."), "{}", m.subject);
    }
    tc.assert_no_panics();
}

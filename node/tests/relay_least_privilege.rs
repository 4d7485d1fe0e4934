//! The relay as the shipped `deploy/nats.conf` user `raftledger_node`: with only the
//! permissions given there (publish `ledger.events.>`, create/update/inspect stream `LEDGER`)
//! the leader creates the stream and relays every committed event, which the read model's user
//! `raftledger_readmodel` can read; the password never appears in the node's log.

mod common;

use common::{deposit, open_accounts, TestCluster};
use readmodel::access::NatsAccess;
use readmodel::local::deploy_nats::{DeployNats, NODE_PASSWORD, READMODEL_PASSWORD};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_as_the_node_user() {
    let dir = tempfile::Builder::new()
        .prefix("relay-least-privilege-")
        .tempdir()
        .unwrap();
    let nats = DeployNats::start(dir.path(), None).expect("nats-server (install step)");
    let url = nats.url();
    let mut tc = TestCluster::start(
        "relay_least_privilege",
        1,
        &[],
        &[
            "--nats-url",
            &url,
            "--nats-user",
            "raftledger_node",
            "--nats-password",
            NODE_PASSWORD,
        ],
    )
    .await;
    let nodes = tc.https(&[1]);
    open_accounts(&nodes, &["a"], "USD").await;
    deposit(&nodes, "d1", "a", 5).await;
    let leader = tc.leader().await;
    let last = tc.status(leader).await["last_event_seq"].as_u64().unwrap();
    assert!(last >= 2, "events committed: {last}");

    let reader = NatsAccess {
        user: Some("raftledger_readmodel".into()),
        password: Some(READMODEL_PASSWORD.into()),
        ..Default::default()
    };
    let client = reader.options().await.unwrap().connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let head = match js.get_stream("LEDGER").await {
            Ok(mut s) => s.info().await.map(|i| i.state.last_sequence).unwrap_or(0),
            Err(_) => 0,
        };
        if head == last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "relay did not publish {last} events as raftledger_node (head {head})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(&tc.lc.node(1).log_path).unwrap();
    assert!(log.contains("relay.connected"), "{log}");
    assert!(!log.contains(NODE_PASSWORD), "password logged");
}

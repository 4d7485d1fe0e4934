//! Entry size bound on real node processes: client input can never make the leader's log
//! append fail. Many concurrent large-metadata batches (each valid and under the body limit)
//! are coalesced into entries under the entry byte budget, so the leader keeps leading in the
//! same term and accepts the next write; a single request over the budget is a typed 413 that
//! changes nothing; an oversize proposal forwarded over the Raft port is refused by the leader.

mod common;

use common::{deposit, open_accounts, Http, Resp, TestCluster};
use ledger::{AccountId, Command, CommandBody, Currency};
use node::network::wire::path;
use node::network::NetworkFactory;
use node::proposer::{ProposeError, Proposed};
use node::raft_types::NodeAddr;
use serde_json::{json, Value};
use std::time::Duration;

/// Concurrent batches in the flood: together they are ~7x the WAL's 8 MiB record limit.
const FLOOD_BATCHES: usize = 60;
/// Accounts per batch: with 4 KB metadata each, a batch body is ~0.93 MiB (< the 1 MiB limit).
const ACCOUNTS_PER_BATCH: usize = 230;
/// Metadata padding per account: near the 4 KiB metadata limit.
const METADATA_PAD_BYTES: usize = 4000;
/// Per-request timeout of the flood clients: a loaded 2-core machine applies ~55 MiB slowly.
const FLOOD_HTTP_TIMEOUT: Duration = Duration::from_secs(120);
/// Entry budget of the small-budget cluster: one ~0.4 MiB batch is over it.
const SMALL_ENTRY_BYTES_MAX: &str = "262144";

fn big_metadata() -> Value {
    json!({ "pad": "m".repeat(METADATA_PAD_BYTES) })
}

fn account_batch(prefix: &str, n: usize) -> Value {
    let meta = big_metadata();
    let commands: Vec<Value> = (0..n)
        .map(|j| {
            json!({"type": "account", "id": format!("{prefix}-{j}"), "currency": "USD",
                   "metadata": meta})
        })
        .collect();
    json!({ "id": prefix, "commands": commands })
}

/// `(leader, term)` as node `id` reports them.
async fn leader_term(h: &Http) -> (Option<u64>, u64) {
    let s = h.must_get("/cluster/status").await.body;
    (s["leader"].as_u64(), s["term"].as_u64().unwrap_or(0))
}

/// A definite answer to a flood request: 201 with every inner command accepted, or the typed
/// JSON error shape (a refusal or a 503 with Retry-After).
fn definite(r: &Resp, what: &str) {
    if r.status == 201 {
        assert_eq!(r.body["status"], "batch", "{what}: {}", r.text);
        return;
    }
    r.assert_error_shape(what);
    if r.status == 503 {
        assert!(
            r.header("retry-after").is_some(),
            "{what}: 503 without Retry-After"
        );
    } else {
        assert!(
            (400..500).contains(&r.status),
            "{what}: unexpected {} {}",
            r.status,
            r.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_metadata_batches_never_stop_the_leader() {
    // Default Raft timings: large entries are (de)coded off the runtime threads and at most 8
    // go in one AppendEntries, so heartbeats keep flowing. On a starved machine the leader's
    // lease may still lapse for a moment (some batches then get 503 no_leader, a definite,
    // retryable answer), but the leader and its term must survive.
    let mut tc = TestCluster::start("entry-bytes-flood", 3, &[], &[]).await;
    let leader = tc.leader().await;
    let lh = tc.http(leader);
    let before = leader_term(&lh).await;
    assert_eq!(before.0, Some(leader));

    tc.phase(&format!(
        "{FLOOD_BATCHES} concurrent batches of {ACCOUNTS_PER_BATCH} accounts with 4 KB metadata"
    ));
    let flood = Http::with_timeout(&lh.base, FLOOD_HTTP_TIMEOUT);
    let mut tasks = Vec::new();
    for i in 0..FLOOD_BATCHES {
        let (h, body) = (
            flood.clone(),
            account_batch(&format!("fl{i}"), ACCOUNTS_PER_BATCH),
        );
        tasks.push(tokio::spawn(
            async move { h.post("/v1/batches", &body).await },
        ));
    }
    let mut accepted = 0;
    let mut refused = std::collections::BTreeMap::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t
            .await
            .expect("flood task")
            .unwrap_or_else(|e| panic!("batch {i}: transport error {e}"));
        definite(&r, &format!("batch {i}"));
        accepted += usize::from(r.status == 201);
        if r.status != 201 {
            *refused
                .entry(format!("{} {}", r.status, r.code()))
                .or_insert(0) += 1;
        }
    }
    tc.phase(&format!(
        "{accepted}/{FLOOD_BATCHES} batches accepted, refused: {refused:?}"
    ));

    tc.phase("the same leader, in the same term, accepts a normal write");
    let r = lh
        .must_post(
            "/v1/accounts",
            &json!({"id": "after-flood", "currency": "USD"}),
        )
        .await;
    assert_eq!(r.status, 201, "write after the flood: {}", r.text);
    let r = lh
        .must_post(
            "/v1/deposits",
            &json!({"id": "after-flood-dep", "account": "after-flood", "amount": 5}),
        )
        .await;
    assert_eq!(r.status, 201, "deposit after the flood: {}", r.text);
    assert_eq!(
        leader_term(&lh).await,
        before,
        "the leader changed or its term moved"
    );
    let s = lh.must_get("/healthz").await;
    assert_eq!(s.status, 200, "leader healthy: {}", s.text);
    tc.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_entry_budget_is_413_and_changes_nothing() {
    let mut tc = TestCluster::start(
        "entry-bytes-413",
        3,
        &[],
        &["--entry-bytes-max", SMALL_ENTRY_BYTES_MAX],
    )
    .await;
    let leader = tc.leader().await;
    let all = tc.https(&tc.ids());
    open_accounts(&all, &["s-a"], "USD").await;
    deposit(&all, "s-dep", "s-a", 10).await;

    for (k, h) in all.iter().enumerate() {
        tc.phase(&format!(
            "oversize batch on node {} (leader {leader})",
            k + 1
        ));
        let body = account_batch(&format!("big{k}"), 100);
        let mut commands = body["commands"].as_array().cloned().unwrap_or_default();
        commands.push(json!({"type": "deposit", "id": format!("big{k}-dep"),
                             "account": "s-a", "amount": 1}));
        let body = json!({"id": format!("big{k}"), "commands": commands});
        let r = h.must_post("/v1/batches", &body).await;
        r.expect_error("oversize batch", 413, "entry_too_large");
        assert!(
            r.body["error"]["details"]["entry_bytes_max"]
                .as_u64()
                .is_some(),
            "413 names the budget: {}",
            r.text
        );
        let a = h.must_get(&format!("/v1/accounts/big{k}-0")).await;
        a.expect_error("account of a refused batch", 404, "account_not_found");
        let t = h.must_get(&format!("/v1/transfers/big{k}-dep")).await;
        t.expect_error("deposit of a refused batch", 404, "transfer_not_found");
    }
    let b = all[0].must_get("/v1/accounts/s-a").await;
    assert_eq!(b.body["balance"], 10, "nothing moved: {}", b.text);

    tc.phase("a batch under the budget is still accepted");
    let r = all[0]
        .must_post("/v1/batches", &account_batch("small", 20))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    tc.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_forwarded_proposal_is_refused_by_the_leader() {
    let mut tc = TestCluster::start("entry-bytes-forward", 3, &[], &[]).await;
    let leader = tc.leader().await;
    let lh = tc.http(leader);
    let before = leader_term(&lh).await;

    tc.phase("a 9 MiB proposal on the leader's Raft port, as a follower would forward it");
    let meta = big_metadata().to_string();
    let commands: Vec<Command> = (0..2300)
        .map(|j| Command {
            id: format!("fw-{j}"),
            timestamp_us: 0,
            body: CommandBody::OpenAccount {
                account: AccountId::parse(&format!("fw-{j}")).expect("account id"),
                currency: Currency::parse("USD").expect("currency"),
                overdraft_limit: 0,
                metadata: meta.clone(),
            },
        })
        .collect();
    let node = tc.lc.node(leader);
    let addr = NodeAddr {
        api: node.api_url(),
        raft: node.raft_url(),
    };
    let conn = NetworkFactory::new(99, node::config::DEV_CLUSTER_SECRET).connection(leader, &addr);
    let res: Result<Proposed, ProposeError> = conn
        .call(path::PROPOSE, &commands, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("propose call failed: {e}"));
    match res {
        Err(ProposeError::TooLarge { bytes, max }) => {
            assert!(bytes > max, "TooLarge {bytes} <= {max}")
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let a = lh.must_get("/v1/accounts/fw-0").await;
    a.expect_error("account of a refused proposal", 404, "account_not_found");

    tc.phase("the leader still leads in the same term and accepts writes");
    let r = lh
        .must_post(
            "/v1/accounts",
            &json!({"id": "after-fw", "currency": "USD"}),
        )
        .await;
    assert_eq!(
        r.status, 201,
        "write after the refused proposal: {}",
        r.text
    );
    assert_eq!(leader_term(&lh).await, before);
    tc.assert_no_panics();
}

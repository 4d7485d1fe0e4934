//! A follower that misses many large entries (client batches coalesce thousands of commands
//! into one entry) catches up from the log and converges to the leader's state.
//!
//! Regression: with hundreds of such entries per AppendEntries, the request took longer to
//! decode than the RPC timeout, the leader resent it forever and the follower never caught up.

mod common;

use common::{eventually, open_accounts, write_ok, TestCluster, CATCH_UP_WAIT};
use serde_json::json;
use std::time::Duration;

/// Client batches written while the follower is down (each becomes one large entry or more).
const BATCHES: u64 = 150;
/// Transfers per batch request.
const BATCH_TRANSFERS: u64 = 1000;
const ACCOUNTS: [&str; 4] = ["c0", "c1", "c2", "c3"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_catches_up_after_many_large_entries() {
    let mut tc = TestCluster::start("catchup-large", 3, &[], &[]).await;
    let leader = tc.leader().await;
    let lh = tc.http(leader);
    open_accounts(std::slice::from_ref(&lh), &ACCOUNTS, "USD").await;
    for a in ACCOUNTS {
        let dep = json!({"id": format!("cdep-{a}"), "account": a, "amount": 1_000_000_000});
        write_ok(std::slice::from_ref(&lh), 0, "/v1/deposits", &dep).await;
    }
    let victim = tc
        .ids()
        .into_iter()
        .find(|i| *i != leader && *i != 1)
        .expect("follower");
    tc.phase(&format!(
        "stopping follower {victim}; writing {BATCHES} batches of {BATCH_TRANSFERS}"
    ));
    tc.lc.kill(victim);
    for b in 0..BATCHES {
        let commands: Vec<_> = (0..BATCH_TRANSFERS)
            .map(|i| {
                let n = b * BATCH_TRANSFERS + i;
                json!({"type": "transfer", "id": format!("ct-{n}"),
                       "from": ACCOUNTS[(n % 4) as usize], "to": ACCOUNTS[((n + 1) % 4) as usize], "amount": 1})
            })
            .collect();
        let r = write_ok(
            std::slice::from_ref(&lh),
            0,
            "/v1/batches",
            &json!({"commands": commands}),
        )
        .await;
        assert!(r.ok(), "batch {b}: {}", r.text);
    }
    let committed = tc.status(leader).await["committed"]
        .as_u64()
        .expect("committed");
    tc.phase(&format!(
        "restarting follower {victim}; it must reach index {committed}"
    ));
    tc.lc.start(victim).expect("restart follower");
    let vh = tc.http(victim);
    eventually(
        &format!("node {victim} applied >= {committed}"),
        CATCH_UP_WAIT,
        async || {
            tc.assert_no_panics();
            let s = vh.get("/cluster/status").await.ok()?.body;
            (s["applied"].as_u64()? >= committed).then_some(())
        },
    )
    .await;
    tc.wait_same_hash(&tc.ids(), Duration::from_secs(30)).await;
    let b = vh
        .must_get(&format!(
            "/v1/balances?accounts={}&consistency=stale",
            ACCOUNTS.join(",")
        ))
        .await;
    let total: i64 = ACCOUNTS
        .iter()
        .map(|a| b.body["balances"][a].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(
        total, 4_000_000_000,
        "money conserved on the caught-up node: {}",
        b.text
    );
    tc.assert_no_panics();
}

//! A wiped follower rejoins: its data directory is deleted and on restart it catches up to
//! exactly the leader's state (balances, per-account events, state hash). Once from the log
//! (the leader still has every entry), once by snapshot install (the leader has purged its log,
//! with a small snapshot threshold). Every cache is at its smallest and finished history leaves
//! memory after one record, so the state installed and compared is far larger than the caches
//! and answered from disk.

mod common;

use common::{balances, eventually, open_accounts, write_ok, Http, TestCluster, CATCH_UP_WAIT};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Snapshot threshold passed to every node.
const SNAPSHOT_EVERY: &str = "50";
/// Single-command entries written before the wipe (brief: > 200).
const ENTRIES_MIN: u64 = 260;
/// Concurrent writers used to push the log past the leader's purge point (more writers are
/// coalesced into fewer, larger entries, which does not help here).
const PURGE_WRITERS: usize = 4;
/// Upper bound on extra entries written while waiting for the leader to purge its log.
const PURGE_EXTRA_MAX: u64 = 8_000;
const ACCOUNTS: [&str; 4] = ["s0", "s1", "s2", "s3"];
/// Log entries the leader keeps after a snapshot: small, so the wiped node needs a snapshot.
const LOGS_KEPT: &str = "20";

fn node_args() -> Vec<&'static str> {
    vec![
        "--snapshot-every-entries",
        SNAPSHOT_EVERY,
        "--logs-kept-after-snapshot",
        LOGS_KEPT,
        "--history-in-memory-max",
        "1",
        "--sled-cache-mb",
        "1",
        "--wal-cache-mb",
        "1",
    ]
}

fn purged(status: &Value) -> u64 {
    status["purged"].as_u64().unwrap_or(0)
}

async fn account_events(h: &Http, account: &str, min_index: u64) -> Value {
    let r = h
        .must_get(&format!(
            "/v1/accounts/{account}/events?limit=1000&consistency=stale&min_index={min_index}"
        ))
        .await;
    assert_eq!(
        r.status, 200,
        "events of {account} on {}: {}",
        h.base, r.text
    );
    r.body["events"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_follower_rejoins_via_snapshot() {
    let args = node_args();
    let mut tc = TestCluster::start("snapshot", 3, &[], &args).await;
    tc.phase(&format!("node flags: {args:?}"));
    let leader = tc.leader().await;
    let lh = tc.http(leader);
    open_accounts(std::slice::from_ref(&lh), &ACCOUNTS, "USD").await;
    // Funds for the purge writers' s0 -> s1 transfers.
    write_ok(
        std::slice::from_ref(&lh),
        0,
        "/v1/deposits",
        &json!({"id": "seed-s0", "account": "s0", "amount": 1_000_000}),
    )
    .await;

    tc.phase(&format!(
        "writing {ENTRIES_MIN} single deposits, one request at a time"
    ));
    for n in 0..ENTRIES_MIN {
        let a = ACCOUNTS[(n % 4) as usize];
        write_ok(
            std::slice::from_ref(&lh),
            0,
            "/v1/deposits",
            &json!({"id": format!("sd-{n}"), "account": a, "amount": n + 1}),
        )
        .await;
    }
    let st = tc.status(leader).await;
    assert!(
        st["snapshot"].as_u64().is_some(),
        "leader built a snapshot after {ENTRIES_MIN} entries: {st}"
    );

    // The leader keeps a tail of log after each snapshot; a wiped node receives a snapshot
    // only once the leader has purged past index 1. Push the log until it has.
    if purged(&st) == 0 {
        tc.phase("leader has not purged its log yet; writing more until it does");
        let next = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..PURGE_WRITERS)
            .map(|_| {
                let (next, done, lh) = (next.clone(), done.clone(), lh.clone());
                tokio::spawn(async move {
                    while done.load(Ordering::Relaxed) == 0 {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= PURGE_EXTRA_MAX {
                            return;
                        }
                        let body =
                            json!({"id": format!("sx-{n}"), "from": "s0", "to": "s1", "amount": 1});
                        write_ok(std::slice::from_ref(&lh), 0, "/v1/transfers", &body).await;
                    }
                })
            })
            .collect();
        let lh2 = lh.clone();
        let p = eventually(
            "the leader purges its log",
            Duration::from_secs(120),
            async || {
                let s = lh2.get("/cluster/status").await.ok()?.body;
                (purged(&s) > 0).then(|| purged(&s))
            },
        )
        .await;
        done.store(1, Ordering::Relaxed);
        for w in writers {
            w.await.expect("purge writer");
        }
        tc.phase(&format!(
            "leader purged up to {p} after {} extra entries",
            next.load(Ordering::Relaxed)
        ));
    }

    let victim = wipe_and_rejoin(&mut tc, leader, true).await;
    compare_state(&mut tc, leader, victim).await;
    retries_of_the_first_deposit_replay(&tc, &[leader, victim]).await;
    tc.assert_no_panics();
}

/// The very first deposit, retried on `nodes` (one of them restored from a snapshot), returns
/// its original answer; the same id with another body is refused. Both come from each node's
/// own state: the wiped node has the record only through the installed snapshot.
async fn retries_of_the_first_deposit_replay(tc: &TestCluster, nodes: &[u64]) {
    tc.phase("retrying the first deposit on the leader and on the rejoined node");
    let first = json!({"id": "seed-s0", "account": "s0", "amount": 1_000_000});
    let mut answers = Vec::new();
    for &n in nodes {
        let r = tc
            .http(n)
            .post("/v1/deposits", &first)
            .await
            .expect("retry");
        assert_eq!(r.status, 200, "retry on node {n}: {:?}", r.body);
        assert_eq!(r.header("idempotent-replayed"), Some("true"), "node {n}");
        answers.push(r.body);
        let changed = json!({"id": "seed-s0", "account": "s0", "amount": 7});
        let r = tc
            .http(n)
            .post("/v1/deposits", &changed)
            .await
            .expect("reuse");
        r.expect_error(
            &format!("reused id on node {n}"),
            409,
            "idempotency_key_reused",
        );
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
}

/// Wipes a follower other than node 1 (node 1 would re-initialize a cluster from `--peers`),
/// writes once more, restarts it and waits until it applied the leader's committed index.
/// With `expect_install`, asserts the node caught up by installing a snapshot.
async fn wipe_and_rejoin(tc: &mut TestCluster, leader: u64, expect_install: bool) -> u64 {
    let lh = tc.http(leader);
    let victim = tc
        .ids()
        .into_iter()
        .find(|i| *i != leader && *i != 1)
        .expect("a follower other than node 1");
    let log_path = tc.lc.node(victim).log_path.clone();
    let log_len_at_wipe = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0) as usize;
    tc.phase(&format!("wiping follower {victim} and restarting it"));
    tc.lc.wipe(victim).expect("wipe");
    let extra = json!({"id": "after-wipe", "from": "s2", "to": "s3", "amount": 3});
    write_ok(std::slice::from_ref(&lh), 0, "/v1/transfers", &extra).await;
    tc.lc.start(victim).expect("restart wiped node");
    let committed = tc.status(leader).await["committed"]
        .as_u64()
        .expect("committed");
    let vh = tc.http(victim);
    let st = eventually(
        &format!("node {victim} applied >= {committed}"),
        CATCH_UP_WAIT,
        async || {
            // Fail fast, with the reason, if a node panicked (its process keeps running).
            tc.assert_no_panics();
            let health = lh.get("/healthz").await.ok()?;
            assert_eq!(
                health.status, 200,
                "leader {leader} Raft stopped while node {victim} rejoined: {}",
                health.text
            );
            let s = vh.get("/cluster/status").await.ok()?.body;
            (s["applied"].as_u64()? >= committed).then_some(s)
        },
    )
    .await;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let installed = log
        .get(log_len_at_wipe..)
        .unwrap_or("")
        .contains("snapshot installed");
    if expect_install {
        assert!(
            st["snapshot"].as_u64().is_some(),
            "rejoined node reports a snapshot: {st}"
        );
        assert!(installed, "the wiped node caught up without installing a snapshot although the leader had purged its log");
    }
    tc.phase(&format!(
        "node {victim} caught up to {committed} (snapshot installed: {installed})"
    ));
    victim
}

/// Asserts the rejoined node's state equals the leader's.
async fn compare_state(tc: &mut TestCluster, leader: u64, victim: u64) {
    let lh = tc.http(leader);
    let committed = tc.status(leader).await["committed"]
        .as_u64()
        .expect("committed");
    tc.phase("comparing state: balances, per-account events, state hash");
    let vh = tc.http(victim);
    let mut ids: Vec<&str> = ACCOUNTS.to_vec();
    ids.push("@world:USD");
    let q = format!("&consistency=stale&min_index={committed}");
    let (_, on_leader) = balances(&lh, &ids, &q).await;
    let (_, on_victim) = balances(&vh, &ids, &q).await;
    assert_eq!(on_victim, on_leader, "balances on the rejoined node");
    assert_eq!(on_leader.values().sum::<i64>(), 0, "L1");
    for a in ACCOUNTS {
        let (e_leader, e_victim) = (
            account_events(&lh, a, committed).await,
            account_events(&vh, a, committed).await,
        );
        assert!(
            e_leader.as_array().is_some_and(|v| !v.is_empty()),
            "events of {a} on leader"
        );
        assert_eq!(
            e_victim, e_leader,
            "account events of {a} on the rejoined node"
        );
    }
    let at = tc.wait_same_hash(&tc.ids(), CATCH_UP_WAIT).await;
    tc.phase(&format!("all nodes agree on the state hash at index {at}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_follower_rejoins_from_log() {
    let mut tc = TestCluster::start("rejoin-log", 3, &[], &[]).await;
    let leader = tc.leader().await;
    let lh = tc.http(leader);
    open_accounts(std::slice::from_ref(&lh), &ACCOUNTS, "USD").await;
    tc.phase("writing 40 single deposits");
    for n in 0..40u64 {
        let a = ACCOUNTS[(n % 4) as usize];
        write_ok(
            std::slice::from_ref(&lh),
            0,
            "/v1/deposits",
            &json!({"id": format!("ld-{n}"), "account": a, "amount": n + 1}),
        )
        .await;
    }
    let victim = wipe_and_rejoin(&mut tc, leader, false).await;
    compare_state(&mut tc, leader, victim).await;
    let st = tc.status(leader).await;
    assert_eq!(
        st["role"], "leader",
        "the leader survived a follower whose log was reset: {st}"
    );
    tc.assert_no_panics();
}

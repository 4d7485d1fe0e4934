//! Failover tests on real node processes: election, follower forwarding, a restarted follower
//! catching up, and a leader SIGKILL under concurrent writers (no acknowledged transfer lost,
//! none applied twice, money conserved, acked indexes match the log).

mod common;

use common::{
    balances, deposit, eventually, open_accounts, write_ok, write_retry, Http, TestCluster,
    CATCH_UP_WAIT,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Liveness bound of the test (the failover *bar* is measured by the bench, not here).
const NEW_LEADER_COMMIT_WAIT: Duration = Duration::from_secs(10);
/// Concurrent writers during the leader kill.
const WRITERS: usize = 4;
/// Accounts the writers move money between.
const LOAD_ACCOUNTS: [&str; 6] = ["acc0", "acc1", "acc2", "acc3", "acc4", "acc5"];
/// Initial deposit per account: large enough that no transfer is ever refused.
const INITIAL_MINOR: i64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_forwarding_and_restarted_follower_catch_up() {
    let mut tc = TestCluster::start("failover-basic", 3, &[], &[]).await;

    tc.phase("election: exactly one leader, every node agrees, at most one leader per term");
    let leader = tc.leader().await;
    let https = tc.https(&tc.ids());
    eventually(
        "exactly one leader that all nodes name",
        Duration::from_secs(10),
        async || {
            let mut roles = Vec::new();
            for h in &https {
                roles.push(h.get("/cluster/status").await.ok()?.body);
            }
            let mut leaders_by_term: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for s in &roles {
                if s["role"] == "leader" {
                    leaders_by_term
                        .entry(s["term"].as_u64().unwrap_or(0))
                        .or_default()
                        .push(s["id"].as_u64().unwrap_or(0));
                }
            }
            for (term, ls) in &leaders_by_term {
                assert!(
                    ls.len() <= 1,
                    "election safety: term {term} has leaders {ls:?}"
                );
            }
            let leaders: Vec<u64> = leaders_by_term.values().flatten().copied().collect();
            let agreed = roles.iter().all(|s| s["leader"].as_u64() == Some(leader));
            (leaders == vec![leader] && agreed).then_some(())
        },
    )
    .await;

    tc.phase("follower forwarding: writes sent to a follower succeed with 201");
    let followers: Vec<u64> = tc.ids().into_iter().filter(|i| *i != leader).collect();
    let f = tc.http(followers[0]);
    for a in ["alice", "bob"] {
        let r = f
            .must_post("/v1/accounts", &json!({"id": a, "currency": "USD"}))
            .await;
        assert_eq!(r.status, 201, "open {a} via follower: {}", r.text);
    }
    let d = f
        .must_post(
            "/v1/deposits",
            &json!({"id": "dep-alice", "account": "alice", "amount": 100}),
        )
        .await;
    assert_eq!(d.status, 201, "deposit via follower: {}", d.text);
    let t = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "t-ab", "from": "alice", "to": "bob", "amount": 30}),
        )
        .await;
    assert_eq!(t.status, 201, "transfer via follower: {}", t.text);
    assert_eq!(
        t.index,
        t.body["index"].as_u64(),
        "X-Ledger-Index equals body index: {}",
        t.text
    );
    assert_eq!(t.body["status"], "posted");
    for id in tc.ids() {
        let (idx, b) = balances(&tc.http(id), &["alice", "bob"], "").await;
        assert!(
            idx >= t.index.unwrap_or(0),
            "node {id}: linearizable read at {idx} before the write at {:?}",
            t.index
        );
        assert_eq!(
            (b["alice"], b["bob"]),
            (70, 30),
            "node {id} linearizable balances"
        );
    }

    let down = followers[1];
    tc.phase(&format!("kill follower {down}, write more"));
    tc.lc.kill(down);
    let live = tc.https(&[leader, followers[0]]);
    for i in 0..20 {
        deposit(&live, &format!("dep-more-{i}"), "bob", 5).await;
    }
    write_ok(
        &live,
        1,
        "/v1/transfers",
        &json!({"id": "t-ba", "from": "bob", "to": "alice", "amount": 7}),
    )
    .await;
    let (_, expect) = balances(&live[0], &["alice", "bob"], "").await;
    assert_eq!((expect["alice"], expect["bob"]), (77, 30 + 100 - 7));
    let committed = tc.status(leader).await["committed"]
        .as_u64()
        .expect("committed");

    tc.phase(&format!(
        "restart node {down}; it must apply up to the leader's committed {committed}"
    ));
    tc.lc.start(down).expect("restart");
    let st = tc.wait_applied(down, committed, CATCH_UP_WAIT).await;
    assert!(st["applied"].as_u64() >= Some(committed));
    let (idx, got) = balances(&tc.http(down), &["alice", "bob"], "&consistency=stale").await;
    assert!(
        idx >= committed,
        "stale read on the restarted node served at {idx} < {committed}"
    );
    assert_eq!(got, expect, "stale balances on the restarted node");
    let at = tc.wait_same_hash(&tc.ids(), CATCH_UP_WAIT).await;
    tc.phase(&format!("all nodes agree on the state hash at index {at}"));
    tc.assert_no_panics();
}

/// One writer operation and what the client learned about it.
#[derive(Debug, Clone)]
struct Op {
    id: String,
    from: &'static str,
    to: &'static str,
    amount: i64,
    /// `Some(index)` when acknowledged 2xx, `None` when the outcome is unknown.
    acked_index: Option<u64>,
}

async fn writer(
    k: usize,
    nodes: Vec<Http>,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let from_i = (k + n) % LOAD_ACCOUNTS.len();
        let to_i = (from_i + 1 + n % (LOAD_ACCOUNTS.len() - 1)) % LOAD_ACCOUNTS.len();
        let (from, to) = (LOAD_ACCOUNTS[from_i], LOAD_ACCOUNTS[to_i]);
        let amount = 1 + ((n * 7 + k) % 100) as i64;
        let id = format!("w{k}-{n}");
        let body = json!({"id": id, "from": from, "to": to, "amount": amount});
        let (reply, _) = write_retry(
            &nodes,
            k + n,
            "/v1/transfers",
            &body,
            Duration::from_secs(30),
        )
        .await;
        let acked_index = match reply {
            Some(r) if r.ok() => {
                let idx = r.body["index"].as_u64().expect("ack body index");
                assert_eq!(
                    r.index,
                    Some(idx),
                    "{id}: X-Ledger-Index differs from body index: {}",
                    r.text
                );
                assert_eq!(
                    r.body["id"],
                    id.as_str(),
                    "{id}: ack for another id: {}",
                    r.text
                );
                acks.fetch_add(1, Ordering::Relaxed);
                Some(idx)
            }
            Some(r) => panic!("{id}: unexpected definite refusal {} {}", r.status, r.text),
            None => None,
        };
        ops.push(Op {
            id,
            from,
            to,
            amount,
            acked_index,
        });
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_sigkill_under_load_loses_nothing() {
    let mut tc = TestCluster::start("failover-kill", 3, &[], &[]).await;
    let all = tc.https(&tc.ids());
    open_accounts(&all, &LOAD_ACCOUNTS, "USD").await;
    for a in LOAD_ACCOUNTS {
        deposit(&all, &format!("seed-{a}"), a, INITIAL_MINOR).await;
    }

    tc.phase(&format!("{WRITERS} writers running"));
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..WRITERS)
        .map(|k| tokio::spawn(writer(k, all.clone(), stop.clone(), acks.clone())))
        .collect();
    eventually(
        "50 acknowledged transfers before the kill",
        Duration::from_secs(60),
        async || (acks.load(Ordering::Relaxed) >= 50).then_some(()),
    )
    .await;

    let old = tc.leader().await;
    tc.phase(&format!(
        "SIGKILL leader {old} at {} acks",
        acks.load(Ordering::Relaxed)
    ));
    let killed_at = Instant::now();
    tc.lc.kill(old);
    let survivors: Vec<u64> = tc.ids().into_iter().filter(|i| *i != old).collect();
    let live = tc.https(&survivors);
    let probe = json!({"id": "probe-after-kill", "from": "acc0", "to": "acc1", "amount": 1});
    let (reply, attempts) =
        write_retry(&live, 0, "/v1/transfers", &probe, NEW_LEADER_COMMIT_WAIT).await;
    let waited = killed_at.elapsed();
    let reply = reply.unwrap_or_else(|| {
        panic!("no write committed within {NEW_LEADER_COMMIT_WAIT:?} of the leader kill")
    });
    assert!(
        reply.ok(),
        "probe write after kill: {} {}",
        reply.status,
        reply.text
    );
    assert!(
        waited <= NEW_LEADER_COMMIT_WAIT + Duration::from_secs(1),
        "liveness: first commit {waited:?} after kill"
    );
    tc.phase(&format!(
        "a new leader committed a write {waited:?} after the kill ({attempts} attempts)"
    ));
    let probe_op = Op {
        id: "probe-after-kill".into(),
        from: "acc0",
        to: "acc1",
        amount: 1,
        acked_index: reply.body["index"].as_u64(),
    };

    let at_kill = acks.load(Ordering::Relaxed);
    eventually(
        "50 more acks after the kill",
        Duration::from_secs(60),
        async || (acks.load(Ordering::Relaxed) >= at_kill + 50).then_some(()),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut ops = vec![probe_op];
    for h in handles {
        ops.extend(h.await.expect("writer task"));
    }
    let acked = ops.iter().filter(|o| o.acked_index.is_some()).count();
    tc.phase(&format!(
        "writers stopped: {} ops, {acked} acked, {} unknown",
        ops.len(),
        ops.len() - acked
    ));

    let new_leader = tc.leader().await;
    assert_ne!(new_leader, old, "the killed node cannot be leader");
    // The survivors noticed that the leader's process was gone (its Raft port refused
    // connections) and campaigned once its lease ended, rather than waiting out a further
    // election timeout (node::failover).
    let fast_path: Vec<u64> = tc
        .lc
        .nodes
        .iter()
        .filter(|n| survivors.contains(&n.id))
        .filter(|n| {
            std::fs::read_to_string(&n.log_path)
                .unwrap_or_default()
                .contains("failover: pre-vote")
        })
        .map(|n| n.id)
        .collect();
    assert!(
        !fast_path.is_empty(),
        "no survivor campaigned through the failover watch after the leader's SIGKILL"
    );
    let reader = tc.http(survivors[0]);
    let (barrier, _) = balances(&reader, &["acc0"], "").await;
    tc.phase("checking every acknowledged transfer exists at the index it reported");
    let mut model: BTreeMap<String, i64> = LOAD_ACCOUNTS
        .iter()
        .map(|a| (a.to_string(), INITIAL_MINOR))
        .collect();
    for op in &ops {
        let r = reader
            .must_get(&format!(
                "/v1/transfers/{}?consistency=stale&min_index={barrier}",
                op.id
            ))
            .await;
        match (r.status, op.acked_index) {
            (200, acked) => {
                let created = r.body["created_index"].as_u64();
                if let Some(idx) = acked {
                    assert_eq!(
                        created,
                        Some(idx),
                        "L4: {} acked at index {idx} but created_index is {created:?}",
                        op.id
                    );
                }
                assert_eq!(
                    (r.body["from"].as_str(), r.body["to"].as_str()),
                    (Some(op.from), Some(op.to)),
                    "{}",
                    r.text
                );
                assert_eq!(r.body["amount"].as_i64(), Some(op.amount), "{}", r.text);
                assert_eq!(r.body["status"], "posted", "{}", r.text);
                *model.get_mut(op.from).expect("from") -= op.amount;
                *model.get_mut(op.to).expect("to") += op.amount;
            }
            (404, None) => {}
            (404, Some(idx)) => panic!(
                "L4: acknowledged transfer {} (index {idx}) is missing: {}",
                op.id, r.text
            ),
            (s, _) => panic!("GET transfer {}: {s} {}", op.id, r.text),
        }
    }
    let mut ids: Vec<&str> = LOAD_ACCOUNTS.to_vec();
    ids.push("@world:USD");
    let (_, got) = balances(&reader, &ids, "").await;
    let deposits = INITIAL_MINOR * LOAD_ACCOUNTS.len() as i64;
    assert_eq!(
        got["@world:USD"], -deposits,
        "system account holds minus the deposits"
    );
    assert_eq!(
        got.values().sum::<i64>(),
        0,
        "L1: money is conserved: {got:?}"
    );
    for a in LOAD_ACCOUNTS {
        assert_eq!(
            got[a], model[a],
            "balance of {a} equals the replay of the transfers that exist (no double apply)"
        );
    }

    tc.phase(&format!(
        "restart old leader {old}; it catches up and agrees on the state hash"
    ));
    let committed = tc.status(new_leader).await["committed"]
        .as_u64()
        .expect("committed");
    tc.lc.start(old).expect("restart old leader");
    tc.wait_applied(old, committed, CATCH_UP_WAIT).await;
    let (_, on_old) = balances(
        &tc.http(old),
        &ids,
        &format!("&consistency=stale&min_index={committed}"),
    )
    .await;
    assert_eq!(on_old, got, "old leader's balances after catching up");
    let at = tc.wait_same_hash(&tc.ids(), CATCH_UP_WAIT).await;
    tc.phase(&format!("all nodes agree on the state hash at index {at}"));
    tc.assert_no_panics();
}

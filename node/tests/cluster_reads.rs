//! Idempotency and read consistency on real node processes: retried and concurrent duplicate
//! transfers post once (L3); linearizable reads never go back across nodes and respect
//! real-time order (L5); `min_index` gives read-your-writes on a stale read elsewhere.

mod common;

use common::{
    account, deposit, open_accounts, write_ok, write_retry, Http, TestCluster, WRITE_WAIT,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Deposits the writer makes while the reader checks monotonicity.
const WRITES: u64 = 150;
/// Write-then-read-elsewhere rounds of the `min_index` check.
const RYW_ROUNDS: u64 = 30;

fn same_command_body(a: &Value, b: &Value) {
    for k in ["id", "index", "event_seq", "timestamp", "status"] {
        assert_eq!(a[k], b[k], "replayed body differs in {k}: {a} vs {b}");
    }
}

async fn version_and_balance(h: &Http, id: &str) -> (u64, i64) {
    let r = account(h, id, "").await;
    (
        r.body["version"].as_u64().expect("version"),
        r.body["balance"].as_i64().expect("balance"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_retried_transfers_post_once() {
    let tc = TestCluster::start("idempotency", 3, &[], &[]).await;
    let all = tc.https(&tc.ids());
    open_accounts(&all, &["i-a", "i-b"], "USD").await;
    deposit(&all, "i-dep", "i-a", 1000).await;

    tc.phase("the same transfer sent concurrently to two nodes");
    let body = json!({"id": "t-dup", "from": "i-a", "to": "i-b", "amount": 100});
    let (r1, r2) = tokio::join!(
        all[0].post("/v1/transfers", &body),
        all[1].post("/v1/transfers", &body)
    );
    let (r1, r2) = (r1.expect("node 1"), r2.expect("node 2"));
    let mut statuses = [r1.status, r2.status];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 201],
        "one original and one replay: {} / {}",
        r1.text,
        r2.text
    );
    let (orig, replay) = if r1.status == 201 {
        (&r1, &r2)
    } else {
        (&r2, &r1)
    };
    assert_eq!(
        replay.header("idempotent-replayed"),
        Some("true"),
        "replay header: {:?}",
        replay.headers
    );
    assert_eq!(
        orig.header("idempotent-replayed"),
        None,
        "the original is not marked replayed"
    );
    same_command_body(&orig.body, &replay.body);
    assert_eq!(orig.index, replay.index, "same X-Ledger-Index");
    assert_eq!(orig.index, orig.body["index"].as_u64());

    tc.phase("a third, sequential retry on node 3 replays");
    let r3 = all[2].must_post("/v1/transfers", &body).await;
    assert_eq!(r3.status, 200, "{}", r3.text);
    assert_eq!(r3.header("idempotent-replayed"), Some("true"));
    same_command_body(&orig.body, &r3.body);
    assert_eq!(
        version_and_balance(&all[0], "i-a").await,
        (2, 900),
        "i-a: deposit + one posting"
    );
    assert_eq!(
        version_and_balance(&all[0], "i-b").await,
        (1, 100),
        "i-b: one posting"
    );

    tc.phase("a request that times out client-side, then retried with the same id");
    let hasty = Http::with_timeout(&all[1].base, Duration::from_millis(1));
    let tbody = json!({"id": "t-timeout", "from": "i-a", "to": "i-b", "amount": 50});
    let first = hasty.post("/v1/transfers", &tbody).await;
    eprintln!(
        "first attempt (1 ms timeout): {:?}",
        first.as_ref().map(|r| r.status).map_err(|e| e.to_string())
    );
    let again = write_ok(&all, 2, "/v1/transfers", &tbody).await;
    assert!(again.status == 201 || again.status == 200, "{}", again.text);
    let again2 = write_ok(&all, 0, "/v1/transfers", &tbody).await;
    assert_eq!(again2.status, 200, "{}", again2.text);
    same_command_body(&again.body, &again2.body);
    assert_eq!(
        version_and_balance(&all[0], "i-a").await,
        (3, 850),
        "exactly one posting of t-timeout"
    );
    let ev = all[0].must_get("/v1/accounts/i-a/events?limit=1000").await;
    let postings = ev.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["data"]["transfer_id"] == "t-timeout")
        .count();
    assert_eq!(postings, 1, "t-timeout posted once: {}", ev.text);

    tc.phase("same id, different amount -> 409 idempotency_key_reused, nothing moves");
    let reused = json!({"id": "t-dup", "from": "i-a", "to": "i-b", "amount": 101});
    let r = all[1].must_post("/v1/transfers", &reused).await;
    r.expect_error("reused id", 409, "idempotency_key_reused");
    assert!(
        r.index.is_some(),
        "a replicated rejection carries X-Ledger-Index"
    );
    assert_eq!(version_and_balance(&all[0], "i-a").await, (3, 850));
    let t = all[2].must_get("/v1/transfers/t-dup").await;
    assert_eq!(
        t.body["amount"], 100,
        "the original transfer stays: {}",
        t.text
    );

    tc.phase("Idempotency-Key header as the id");
    let hb = json!({"from": "i-a", "to": "i-b", "amount": 5});
    let h1 = all[0]
        .post_raw(
            "/v1/transfers",
            hb.to_string().into_bytes(),
            &[("idempotency-key", "t-hdr")],
        )
        .await
        .expect("post");
    assert_eq!(h1.status, 201, "{}", h1.text);
    assert_eq!(h1.body["id"], "t-hdr");
    let h2 = all[1]
        .must_post(
            "/v1/transfers",
            &json!({"id": "t-hdr", "from": "i-a", "to": "i-b", "amount": 5}),
        )
        .await;
    assert_eq!(
        h2.status, 200,
        "body id equal to an earlier header key replays: {}",
        h2.text
    );
    let mismatch = json!({"id": "other", "from": "i-a", "to": "i-b", "amount": 5});
    let h3 = all[2]
        .post_raw(
            "/v1/transfers",
            mismatch.to_string().into_bytes(),
            &[("idempotency-key", "t-hdr")],
        )
        .await
        .expect("post");
    h3.expect_error("header/body id mismatch", 400, "id_mismatch");
    assert_eq!(version_and_balance(&all[0], "i-a").await, (4, 845));
    tc.assert_no_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_monotonic_and_min_index_reads_your_writes() {
    let tc = TestCluster::start("reads", 3, &[], &[]).await;
    let all = tc.https(&tc.ids());
    open_accounts(&all, &["ctr"], "USD").await;

    tc.phase(&format!(
        "writer: {WRITES} deposits of 1; reader: linearizable reads rotating over nodes"
    ));
    let acked_index = Arc::new(AtomicU64::new(0));
    let acked_count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (all, acked_index, acked_count, done) = (
            all.clone(),
            acked_index.clone(),
            acked_count.clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            for n in 0..WRITES {
                let body = json!({"id": format!("inc-{n}"), "account": "ctr", "amount": 1});
                let r = write_ok(&all, n as usize, "/v1/deposits", &body).await;
                acked_index.fetch_max(r.index.expect("write index"), Ordering::SeqCst);
                acked_count.store(n + 1, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let (mut prev_index, mut prev_balance, mut reads, mut unavailable) = (0u64, 0i64, 0u64, 0u64);
    while !done.load(Ordering::SeqCst) {
        // Everything acknowledged before the read starts must be visible in it (L5).
        let (idx_before, cnt_before) = (
            acked_index.load(Ordering::SeqCst),
            acked_count.load(Ordering::SeqCst),
        );
        let node = &all[(reads % 3) as usize];
        reads += 1;
        let r = node.must_get("/v1/accounts/ctr").await;
        if r.status == 503 {
            unavailable += 1;
            continue;
        }
        assert_eq!(r.status, 200, "read {reads} on {}: {}", node.base, r.text);
        let idx = r.index.expect("X-Ledger-Index on a read");
        let bal = r.body["balance"].as_i64().expect("balance");
        assert!(
            idx >= prev_index,
            "read {reads} on {}: index went back {prev_index} -> {idx}",
            node.base
        );
        assert!(
            bal >= prev_balance,
            "read {reads} on {}: balance went back {prev_balance} -> {bal}",
            node.base
        );
        assert!(
            idx >= idx_before,
            "L5: read on {} at {idx} misses a write acked at {idx_before}",
            node.base
        );
        assert!(
            bal >= cnt_before as i64,
            "L5: balance {bal} misses acked deposits ({cnt_before})"
        );
        assert!(
            r.body["updated_index"].as_u64().is_some_and(|u| u <= idx),
            "updated_index <= read index: {}",
            r.text
        );
        (prev_index, prev_balance) = (idx, bal);
    }
    writer.await.expect("writer");
    tc.phase(&format!(
        "{reads} reads checked ({unavailable} answered 503)"
    ));
    assert!(
        unavailable * 10 <= reads,
        "too many 503s on a healthy cluster: {unavailable} of {reads}"
    );

    tc.phase("read-your-writes: write on node i, stale read with min_index on node i+1");
    let mut expect = WRITES as i64;
    for i in 0..RYW_ROUNDS {
        let (w, r) = (&all[(i % 3) as usize], &all[((i + 1) % 3) as usize]);
        let body = json!({"id": format!("ryw-{i}"), "account": "ctr", "amount": 1});
        let (reply, _) = write_retry(
            std::slice::from_ref(w),
            0,
            "/v1/deposits",
            &body,
            WRITE_WAIT,
        )
        .await;
        let reply = reply.expect("write answered");
        assert_eq!(reply.status, 201, "{}", reply.text);
        let n = reply.index.expect("write X-Ledger-Index");
        expect += 1;
        let got = r
            .must_get(&format!("/v1/accounts/ctr?consistency=stale&min_index={n}"))
            .await;
        assert_eq!(
            got.status, 200,
            "min_index read on {}: {}",
            r.base, got.text
        );
        assert!(
            got.index.is_some_and(|x| x >= n),
            "served at {:?} < min_index {n}",
            got.index
        );
        assert_eq!(
            got.body["balance"], expect,
            "round {i}: the read on {} misses the write at {n}",
            r.base
        );
    }
    let lease = all[1].must_get("/v1/accounts/ctr?consistency=lease").await;
    assert_eq!(lease.status, 200, "lease read: {}", lease.text);
    assert_eq!(lease.body["balance"], expect);
    tc.phase("done");
    tc.assert_no_panics();
}

/// Time travel into settled history needs no ReadIndex round: on a follower cut off from any
/// quorum, a linearizable read at an index it applied, or at a time before its last applied
/// stamp, still answers (that answer can no longer change), while a read of the current state
/// or of a time after its last stamp waits for a barrier it cannot get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_history_answers_without_a_quorum_and_the_present_does_not() {
    let mut tc = TestCluster::start("settled", 3, &[], &[]).await;
    let all = tc.https(&tc.ids());
    open_accounts(&all, &["h"], "USD").await;
    let first = deposit(&all, "h-1", "h", 7).await;
    let (first_index, first_time) = (
        first.index.expect("deposit index"),
        first.body["timestamp"]
            .as_str()
            .expect("deposit timestamp")
            .to_owned(),
    );
    let last = deposit(&all, "h-2", "h", 5).await;
    let last_index = last.index.expect("deposit index");
    let leader = tc.leader().await;
    let follower = *tc
        .ids()
        .iter()
        .find(|id| **id != leader)
        .expect("a follower");
    for id in tc.ids() {
        tc.wait_applied(id, last_index, WRITE_WAIT).await;
    }

    tc.phase("killing every node but one follower: no quorum, no leader to ask");
    for id in tc.ids().into_iter().filter(|id| *id != follower) {
        tc.lc.kill(id);
    }
    let node = tc.http(follower);
    let time = first_time.replace(':', "%3A");
    for query in [format!("at_index={first_index}"), format!("at={time}")] {
        let r = node
            .must_get(&format!("/v1/accounts/h/balance?{query}"))
            .await;
        assert_eq!(r.status, 200, "settled read {query}: {}", r.text);
        assert_eq!(r.body["balance"], 7, "balance at {query}: {}", r.text);
    }
    for query in ["", "?at=2999-01-01T00%3A00%3A00Z"] {
        let r = node
            .must_get(&format!("/v1/accounts/h/balance{query}"))
            .await;
        r.expect_error(
            &format!("unsettled read '{query}' without a quorum"),
            503,
            r.code(),
        );
        assert!(
            ["no_leader", "leader_unavailable"].contains(&r.code()),
            "unsettled read '{query}': {}",
            r.text
        );
    }
    // Stale reads of the present answer as before; the barrier was the only difference.
    let r = node
        .must_get("/v1/accounts/h/balance?consistency=stale")
        .await;
    assert_eq!(r.body["balance"], 12, "{}", r.text);
    tc.assert_no_panics();
}

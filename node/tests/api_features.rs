//! HTTP features on a real 3-node cluster: two-phase transfers, time travel (`at` and
//! `at_index`, L8), the SSE event stream (dense sequence), per-account postings with running
//! balances, atomic and non-atomic batches, health, readiness and metrics.

mod common;

use common::{account, balances, deposit, open_accounts, Http, TestCluster};
use node::api::render::{parse_rfc3339_us, rfc3339_us};
use serde_json::{json, Value};

async fn balance_q(h: &Http, account: &str, q: &str) -> i64 {
    let r = h
        .must_get(&format!("/v1/accounts/{account}/balance?{q}"))
        .await;
    assert_eq!(r.status, 200, "balance?{q}: {}", r.text);
    assert!(r.index.is_some(), "balance read carries X-Ledger-Index");
    r.body["balance"].as_i64().expect("balance")
}

/// Parses an SSE body into `(id, event, data)` triples.
fn sse_events(text: &str) -> Vec<(u64, String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut id, mut ev, mut data) = (None, String::new(), String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("event:") {
                ev = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if let Some(id) = id {
            out.push((id, ev, serde_json::from_str(&data).unwrap_or(Value::Null)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_time_travel_events_batches_ops() {
    let mut tc = TestCluster::start("api-features", 3, &[], &[]).await;
    let leader = tc.leader().await;
    let all = tc.https(&tc.ids());
    let f = tc.http(
        tc.ids()
            .into_iter()
            .find(|i| *i != leader)
            .expect("follower"),
    );
    open_accounts(&all, &["f-a", "f-b"], "USD").await;
    deposit(&all, "f-dep", "f-a", 1000).await;

    tc.phase("two-phase: pending reserves, post moves, void releases");
    let p1 = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "p1", "from": "f-a", "to": "f-b", "amount": 300, "pending": true}),
        )
        .await;
    assert_eq!(p1.status, 201, "{}", p1.text);
    assert_eq!(p1.body["status"], "pending");
    let a = account(&f, "f-a", "").await.body;
    assert_eq!(
        (
            a["balance"].as_i64(),
            a["pending_debits"].as_i64(),
            a["available"].as_i64()
        ),
        (Some(1000), Some(300), Some(700)),
        "{a}"
    );
    let over = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "p-over", "from": "f-a", "to": "f-b", "amount": 701}),
        )
        .await;
    over.expect_error("spending reserved funds", 422, "insufficient_funds");
    let post = f.must_post("/v1/transfers/p1/post", &json!({})).await;
    assert_eq!(post.status, 200, "post: {}", post.text);
    assert_eq!(post.body["status"], "posted");
    assert!(post.index.is_some());
    let again = f.must_post("/v1/transfers/p1/post", &json!({})).await;
    assert_eq!(again.status, 200, "re-post replays: {}", again.text);
    assert_eq!(again.body["index"], post.body["index"]);
    let (_, b) = balances(&f, &["f-a", "f-b"], "").await;
    assert_eq!((b["f-a"], b["f-b"]), (700, 300));
    assert_eq!(
        f.must_get("/v1/transfers/p1").await.body["status"],
        "posted"
    );
    let p2 = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "p2", "from": "f-a", "to": "f-b", "amount": 200, "pending": true}),
        )
        .await;
    assert_eq!(p2.status, 201, "{}", p2.text);
    let void = f.must_post("/v1/transfers/p2/void", &json!({})).await;
    assert_eq!(void.status, 200, "void: {}", void.text);
    assert_eq!(void.body["status"], "voided");
    assert_eq!(
        f.must_get("/v1/transfers/p2").await.body["status"],
        "voided"
    );
    let a = account(&f, "f-a", "").await.body;
    assert_eq!(
        (a["balance"].as_i64(), a["pending_debits"].as_i64()),
        (Some(700), Some(0)),
        "{a}"
    );
    f.must_post("/v1/transfers/p2/post", &json!({}))
        .await
        .expect_error("post a voided transfer", 422, "transfer_not_pending");
    f.must_post("/v1/transfers/nope/post", &json!({}))
        .await
        .expect_error("post unknown", 404, "transfer_not_found");

    tc.phase("time travel: at= and at_index= just before and at a transfer");
    let tt = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "tt", "from": "f-a", "to": "f-b", "amount": 50}),
        )
        .await;
    assert_eq!(tt.status, 201, "{}", tt.text);
    let ts = parse_rfc3339_us(tt.body["timestamp"].as_str().expect("timestamp")).expect("rfc3339");
    let idx = tt.body["index"].as_u64().expect("index");
    for h in &all {
        let wait = format!("&min_index={idx}");
        assert_eq!(
            balance_q(h, "f-a", &format!("at={}{wait}", rfc3339_us(ts - 1))).await,
            700,
            "at T-1µs"
        );
        assert_eq!(
            balance_q(h, "f-a", &format!("at={}{wait}", rfc3339_us(ts))).await,
            650,
            "at T"
        );
        assert_eq!(
            balance_q(h, "f-b", &format!("at={}{wait}", rfc3339_us(ts + 1))).await,
            350,
            "f-b after T"
        );
        assert_eq!(
            balance_q(h, "f-a", &format!("at_index={}", idx - 1)).await,
            700,
            "at_index I-1"
        );
        assert_eq!(
            balance_q(h, "f-a", &format!("at_index={idx}")).await,
            650,
            "at_index I"
        );
        assert_eq!(balance_q(h, "f-a", "").await, 650, "current");
    }
    f.must_get("/v1/accounts/f-a/balance?at=1970-01-01T00:00:01Z")
        .await
        .expect_error("before the account existed", 404, "account_not_found");
    f.must_get("/v1/accounts/f-a/balance?at=yesterday")
        .await
        .expect_error("bad time", 400, "invalid_time");

    tc.phase("account events: postings with running balance");
    let ev = f.must_get("/v1/accounts/f-a/events?limit=1000").await;
    assert_eq!(ev.status, 200, "{}", ev.text);
    assert!(ev.index.is_some(), "events read carries X-Ledger-Index");
    let (mut running, mut last_seq, mut postings) = (0i64, 0u64, 0);
    for e in ev.body["events"].as_array().expect("events") {
        let seq = e["seq"].as_u64().expect("seq");
        assert!(seq > last_seq, "account events ascend: {}", ev.text);
        last_seq = seq;
        if e["type"] != "transfer_posted" {
            continue;
        }
        postings += 1;
        let d = &e["data"];
        let amount = d["amount"].as_i64().expect("amount");
        let after = if d["debit"] == "f-a" {
            running -= amount;
            d["debit_balance_after"].as_i64()
        } else {
            running += amount;
            d["credit_balance_after"].as_i64()
        };
        assert_eq!(after, Some(running), "balance_after of event {seq}: {e}");
    }
    assert_eq!(
        (postings, running),
        (3, 650),
        "f-a postings: deposit, p1 posted, tt"
    );
    let page = f.must_get("/v1/accounts/f-a/events?limit=1").await.body;
    let first = page["events"][0]["seq"].as_u64().expect("first seq");
    let next = f
        .must_get(&format!(
            "/v1/accounts/f-a/events?limit=1&after_seq={first}"
        ))
        .await
        .body;
    assert!(
        next["events"][0]["seq"].as_u64() > Some(first),
        "after_seq pages forward: {next}"
    );

    tc.phase("SSE: from_seq=1&until_seq=N yields exactly N dense events");
    let n = tc.status(leader).await["last_event_seq"]
        .as_u64()
        .expect("last_event_seq");
    assert!(n >= 8, "expected several events, got {n}");
    let lh = tc.http(leader);
    let r = lh
        .must_get(&format!("/v1/events?from_seq=1&until_seq={n}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = sse_events(&r.text);
    assert_eq!(events.len() as u64, n, "exactly N events:\n{}", r.text);
    for (k, (id, kind, data)) in events.iter().enumerate() {
        assert_eq!(*id, k as u64 + 1, "dense sequence");
        assert_eq!(
            data["seq"].as_u64(),
            Some(*id),
            "data.seq equals the SSE id"
        );
        assert_eq!(
            data["type"].as_str(),
            Some(kind.as_str()),
            "SSE event name equals data.type"
        );
        assert!(
            data["index"].as_u64().is_some()
                && data["timestamp"].is_string()
                && data["schema_version"].is_u64(),
            "{data}"
        );
    }
    let tail = sse_events(
        &lh.must_get(&format!("/v1/events?from_seq={}&until_seq={n}", n - 2))
            .await
            .text,
    );
    assert_eq!(
        tail.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![n - 2, n - 1, n],
        "resume from a sequence"
    );

    tc.phase("batches: atomic all-or-nothing, non-atomic per-command results");
    let (_, before) = balances(&f, &["f-a", "f-b"], "").await;
    let atomic = json!({"atomic": true, "commands": [
        {"type": "transfer", "id": "b1", "from": "f-a", "to": "f-b", "amount": 10},
        {"type": "transfer", "id": "b2", "from": "f-a", "to": "nobody", "amount": 10},
    ]});
    let r = f.must_post("/v1/batches", &atomic).await;
    r.expect_error("atomic batch with a bad command", 422, "batch_aborted");
    assert_eq!(r.body["error"]["details"]["failed_index"], 1, "{}", r.text);
    assert_eq!(
        balances(&f, &["f-a", "f-b"], "").await.1,
        before,
        "an aborted batch changes nothing"
    );
    f.must_get("/v1/transfers/b1").await.expect_error(
        "aborted batch member",
        404,
        "transfer_not_found",
    );
    let loose = json!({"atomic": false, "commands": [
        {"type": "transfer", "id": "b3", "from": "f-a", "to": "f-b", "amount": 10},
        {"type": "transfer", "id": "b4", "from": "f-a", "to": "nobody", "amount": 10},
        {"type": "deposit", "id": "b5", "account": "f-b", "amount": 5},
    ]});
    let r = f.must_post("/v1/batches", &loose).await;
    assert_eq!(r.status, 201, "non-atomic batch: {}", r.text);
    assert!(r.index.is_some());
    let results = r.body["results"].as_array().expect("results");
    let oks: Vec<bool> = results
        .iter()
        .map(|x| x["ok"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(oks, vec![true, false, true], "{}", r.text);
    assert_eq!(results[1]["error"]["code"], "account_not_found");
    assert_eq!(
        balances(&f, &["f-a", "f-b"], "").await.1["f-b"],
        before["f-b"] + 15
    );
    let replay = f.must_post("/v1/batches", &loose).await;
    assert_eq!(
        replay.status, 200,
        "a retried batch replays: {}",
        replay.text
    );
    assert_eq!(replay.body["index"], r.body["index"]);

    tc.phase("pending transfer expires in leader time with no other traffic");
    let before = balances(&f, &["f-a"], "").await.1;
    let r = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "exp-1", "from": "f-a", "to": "f-b", "amount": 7, "pending": true, "timeout_s": 1}),
        )
        .await;
    assert_eq!(r.status, 201, "pending with timeout: {}", r.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        let t = f.must_get("/v1/transfers/exp-1").await;
        let st = t.body["status"].as_str().unwrap_or("").to_owned();
        if st == "expired" || std::time::Instant::now() > deadline {
            break st;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        status, "expired",
        "the leader's tick expires the reservation"
    );
    let a = f.must_get("/v1/accounts/f-a").await;
    assert_eq!(
        a.body["pending_debits"], 0,
        "reservation released: {}",
        a.text
    );
    assert_eq!(
        balances(&f, &["f-a"], "").await.1,
        before,
        "expiry moves no money"
    );

    tc.phase("health, readiness, metrics on every node");
    for h in &all {
        assert_eq!(h.must_get("/healthz").await.status, 200);
        assert_eq!(h.must_get("/readyz").await.status, 200);
        let st = h.must_get("/cluster/status").await;
        assert!(st.index.is_some(), "status carries X-Ledger-Index");
        let m = h.must_get("/metrics").await;
        assert_eq!(m.status, 200);
        assert!(
            m.text.contains("raftledger_http_request_duration_seconds"),
            "metrics on {}:\n{}",
            h.base,
            m.text
        );
    }
    tc.assert_no_panics();
}

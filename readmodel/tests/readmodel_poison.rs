//! The read model against a real nats-server and PostgreSQL, fed a hand-made event stream (no
//! cluster): a poison event is parked with its account quarantined while other accounts keep
//! flowing; the query API's routes, error shapes and `X-Read-Model-Seq`; `min_seq` waiting and
//! 503; history pagination; balance at T; the daily report; a rebuild that ends equal.

use async_nats::jetstream::{self, message::PublishMessage};
use readmodel::local::nats::{create_ledger_stream, LocalNats};
use readmodel::local::postgres::LocalPostgres;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// 2026-11-23T00:00:00Z in µs.
const DAY0_US: i64 = 1_795_392_000_000_000;

fn ts(us: i64) -> String {
    readmodel::event::format_ts_us(us)
}

fn opened(seq: u64, t: i64, account: &str) -> Value {
    json!({"seq": seq, "index": seq, "timestamp": ts(t), "type": "account_opened", "schema_version": 1,
           "command_id": format!("c{seq}"), "data": {"account": account, "currency": "USD", "overdraft_limit": 0, "metadata": "{}"}})
}

fn posted(
    seq: u64,
    t: i64,
    from: &str,
    to: &str,
    amount: i64,
    from_after: i64,
    to_after: i64,
) -> Value {
    json!({"seq": seq, "index": seq, "timestamp": ts(t), "type": "transfer_posted", "schema_version": 1,
           "command_id": format!("t{seq}"), "data": {"transfer_id": format!("t{seq}"), "debit": from, "credit": to,
           "amount": amount, "debit_balance_after": from_after, "credit_balance_after": to_after,
           "from_pending": false, "memo": null}})
}

struct Get {
    status: u16,
    seq: Option<u64>,
    retry_after: Option<String>,
    body: Value,
}

async fn get(base: &str, path: &str) -> Get {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seq = h("x-read-model-seq").and_then(|v| v.parse().ok());
    let retry_after = h("retry-after");
    let body = r.json().await.unwrap_or(Value::Null);
    assert!(seq.is_some(), "GET {path}: no X-Read-Model-Seq");
    Get {
        status,
        seq,
        retry_after,
        body,
    }
}

fn assert_error(g: &Get, status: u16, code: &str, what: &str) {
    assert_eq!(g.status, status, "{what}: {}", g.body);
    assert_eq!(g.body["error"]["code"], code, "{what}: {}", g.body);
    assert!(g.body["error"]["message"].is_string(), "{what}: {}", g.body);
    assert!(g.body["error"]["details"].is_object(), "{what}: {}", g.body);
}

async fn publish(js: &jetstream::Context, seq: u64, payload: Vec<u8>) {
    let ack = js
        .send_publish(
            "ledger.events.test",
            PublishMessage::build()
                .payload(payload.into())
                .message_id(seq.to_string())
                .expected_last_sequence(seq - 1),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_eq!(ack.sequence, seq, "stream sequence == event seq");
}

async fn wait_seq(base: &str, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let g = get(base, "/admin/projections").await;
        if g.body["active"]["checkpoint"].as_u64() == Some(seq) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint never reached {seq}: {}",
            g.body
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_parked_and_the_api_answers() {
    let dir = tempfile::Builder::new()
        .prefix("readmodel-poison-")
        .tempdir()
        .unwrap();
    let nats = LocalNats::start(&dir.path().join("nats")).expect("nats-server (install step)");
    let pg = LocalPostgres::start(&dir.path().join("pg")).expect("postgres (install step)");
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    create_ledger_stream(&js).await.unwrap();
    let rm = readmodel::start(readmodel::config::ReadModelConfig {
        listen: "127.0.0.1:0".into(),
        nats_url: nats.url(),
        postgres_url: pg.url(),
        query_connections_max: 4,
        header_read_timeout_ms: readmodel::config::HEADER_READ_TIMEOUT_MS_DEFAULT,
        access: Default::default(),
        tls: Default::default(),
    })
    .await
    .expect("start read model");
    let base = rm.url();

    let h = 3_600_000_000; // one hour in µs
    let w = "@world:USD";
    let mut events = vec![
        opened(1, DAY0_US, w),
        opened(2, DAY0_US, "alice"),
        opened(3, DAY0_US, "bob"),
        opened(4, DAY0_US, "carol"),
        posted(5, DAY0_US + h, w, "alice", 100, -100, 100),
        posted(6, DAY0_US + 2 * h, w, "bob", 50, -150, 50),
    ];
    // 7: poison (a type this schema does not know) touching alice.
    events.push(json!({"seq": 7, "index": 7, "timestamp": ts(DAY0_US + 3 * h), "type": "transfer_reversed",
        "schema_version": 1, "command_id": "x", "data": {"debit": "alice", "credit": w, "amount": 10}}));
    events.push(posted(8, DAY0_US + 4 * h, "bob", "carol", 20, 30, 20)); // flows
    events.push(posted(9, DAY0_US + 5 * h, w, "alice", 5, -155, 105)); // alice quarantined: parked
    events.push(posted(10, DAY0_US + 26 * h, "carol", w, 5, 15, -150)); // withdrawal, next day
    for e in &events {
        publish(&js, e["seq"].as_u64().unwrap(), e.to_string().into_bytes()).await;
    }
    publish(&js, 11, b"{not json".to_vec()).await; // undecodable: parked, nothing quarantined
    events.push(posted(12, DAY0_US + 27 * h, "bob", "carol", 1, 29, 16));
    publish(&js, 12, events.last().unwrap().to_string().into_bytes()).await;
    wait_seq(&base, 12).await;

    let parked = get(&base, "/admin/parked").await;
    let seqs: Vec<u64> = parked.body["parked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![7, 9, 11], "{}", parked.body);
    assert_eq!(parked.body["quarantined_accounts"][0]["account"], "alice");
    assert_eq!(
        parked.body["quarantined_accounts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let expect = [
        ("alice", 100, true),
        ("bob", 29, false),
        ("carol", 16, false),
        (w, -150, false),
    ];
    for (id, bal, q) in expect {
        let a = get(&base, &format!("/v1/accounts/{id}")).await;
        assert_eq!(a.status, 200, "{id}: {}", a.body);
        assert_eq!(a.body["balance"], bal, "{id}: {}", a.body);
        assert_eq!(a.body["quarantined"], q, "{id}: {}", a.body);
        assert_eq!(a.seq, Some(12));
    }

    // History, paginated one posting per page.
    let mut cursor = String::new();
    let mut seen = Vec::new();
    loop {
        let p = get(
            &base,
            &format!("/v1/accounts/bob/history?limit=1&cursor={cursor}"),
        )
        .await;
        assert_eq!(p.status, 200, "{}", p.body);
        for x in p.body["postings"].as_array().unwrap() {
            seen.push((
                x["seq"].as_u64().unwrap(),
                x["balance_after"].as_i64().unwrap(),
            ));
        }
        match p.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, vec![(6, 50), (8, 30), (12, 29)]);

    // Balance at T.
    let at = |t: i64| format!("/v1/accounts/bob/balance?at={}", ts(t));
    assert_eq!(
        get(&base, &at(DAY0_US + 2 * h - 1)).await.body["balance"],
        0
    );
    assert_eq!(get(&base, &at(DAY0_US + 2 * h)).await.body["balance"], 50);
    assert_eq!(get(&base, &at(DAY0_US + 10 * h)).await.body["balance"], 30);
    assert_error(
        &get(
            &base,
            &format!("/v1/accounts/bob/balance?at={}", ts(DAY0_US - 1)),
        )
        .await,
        404,
        "account_not_found",
        "before open",
    );

    // Daily report.
    let d = get(
        &base,
        "/v1/reports/daily?from=2026-11-23&to=2026-11-24&currency=USD",
    )
    .await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert_eq!(d.body["days"][0]["day"], "2026-11-23");
    assert_eq!(d.body["days"][0]["transfer_count"], 3); // 5, 6, 8 (9 parked)
    assert_eq!(d.body["days"][0]["deposits"], 150);
    assert_eq!(d.body["days"][1]["withdrawals"], 5);
    assert_eq!(d.body["days"][1]["volume"], 6);

    // Errors: JSON shape, 4xx.
    assert_error(
        &get(&base, "/v1/accounts/nobody").await,
        404,
        "account_not_found",
        "unknown",
    );
    assert_error(
        &get(&base, "/v1/accounts/bad%20id").await,
        400,
        "invalid_account_id",
        "bad id",
    );
    assert_error(
        &get(&base, "/v1/accounts/bob?bogus=1").await,
        400,
        "invalid_query",
        "unknown param",
    );
    assert_error(
        &get(&base, "/v1/accounts/bob/history?limit=0").await,
        400,
        "invalid_limit",
        "limit",
    );
    assert_error(
        &get(&base, "/v1/accounts/bob/history?cursor=zz").await,
        400,
        "invalid_cursor",
        "cursor",
    );
    assert_error(
        &get(&base, "/v1/accounts/bob/balance").await,
        400,
        "missing_at",
        "no at",
    );
    assert_error(
        &get(&base, "/v1/accounts/bob/balance?at=yesterday").await,
        400,
        "invalid_at",
        "bad at",
    );
    assert_error(
        &get(&base, "/v1/reports/daily?from=2026-11-24&to=2026-11-23").await,
        400,
        "invalid_range",
        "range",
    );
    assert_error(
        &get(&base, "/v1/reports/daily?from=x&to=y").await,
        400,
        "invalid_date",
        "date",
    );
    assert_error(&get(&base, "/nope").await, 404, "route_not_found", "route");

    // min_seq: behind => 503 + Retry-After after waiting ~1 s; reached => the write is visible.
    let started = Instant::now();
    let behind = get(&base, "/v1/accounts/bob?min_seq=13").await;
    assert_error(&behind, 503, "read_model_behind", "min_seq ahead");
    assert_eq!(behind.retry_after.as_deref(), Some("1"));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited {:?}",
        started.elapsed()
    );
    let js2 = js.clone();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let e = posted(13, DAY0_US + 28 * h, "carol", "bob", 6, 10, 35);
        publish(&js2, 13, e.to_string().into_bytes()).await;
    });
    let ryw = get(&base, "/v1/accounts/bob?min_seq=13").await;
    late.await.unwrap();
    assert_eq!(ryw.status, 200, "{}", ryw.body);
    assert_eq!(ryw.body["balance"], 35);
    assert!(ryw.seq >= Some(13));

    // Rebuild: a new schema from seq 1, swapped in; same answers, same parked set.
    let r = reqwest::Client::new()
        .post(format!("{base}/admin/projections/rebuild"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let p = get(&base, "/admin/projections").await;
        if p.body["rebuild"]["state"] == "swapped" {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "rebuild never swapped: {}",
            p.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.body["active"]["schema"], "rm_2", "{}", status.body);
    assert_eq!(status.body["active"]["checkpoint"], 13);
    assert_eq!(status.body["lag"]["events"], 0);
    for (id, bal) in [("alice", 100), ("bob", 35), ("carol", 10), (w, -150)] {
        assert_eq!(
            get(&base, &format!("/v1/accounts/{id}")).await.body["balance"],
            bal,
            "{id}"
        );
    }
    assert_eq!(
        get(&base, "/admin/parked").await.body["parked"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("raftledger_readmodel_events_applied_total"),
        "{metrics}"
    );
    drop(rm);
    drop(pg);
    drop(nats);
}

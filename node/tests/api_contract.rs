//! HTTP error contract on a real 3-node cluster: every malformed or refused
//! request gets the right status and `{"error": {"code","message","details"}}`, replicated
//! rejections carry `X-Ledger-Index`, and none of them moves any money.

mod common;

use common::{balances, deposit, open_accounts, Http, Resp, TestCluster};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const ACCOUNTS: [&str; 4] = ["c-usd1", "c-usd2", "c-eur", "c-frz"];

/// Balances and versions of every test account (and the system accounts), read linearizably.
async fn ledger_snapshot(h: &Http) -> (BTreeMap<String, i64>, Vec<Value>) {
    let (_, b) = balances(
        h,
        &[
            "c-usd1",
            "c-usd2",
            "c-eur",
            "c-frz",
            "@world:USD",
            "@world:EUR",
        ],
        "",
    )
    .await;
    let mut versions = Vec::new();
    for a in ACCOUNTS {
        let r = h.must_get(&format!("/v1/accounts/{a}")).await;
        versions.push(json!([
            a,
            r.body["version"],
            r.body["balance"],
            r.body["pending_debits"]
        ]));
    }
    (b, versions)
}

async fn raw(h: &Http, path: &str, body: &str) -> Resp {
    h.post_raw(path, body.as_bytes().to_vec(), &[])
        .await
        .unwrap_or_else(|e| panic!("POST {path} {body}: transport error {e}"))
}

/// A business rejection: JSON shape, code, and the log index it was decided at.
fn replicated(r: &Resp, what: &str, status: u16, code: &str) {
    r.expect_error(what, status, code);
    assert!(
        r.index.is_some(),
        "{what}: a replicated rejection carries X-Ledger-Index: {:?}",
        r.headers
    );
    assert_eq!(
        r.body["error"]["details"]["index"].as_u64(),
        r.index,
        "{what}: details.index equals X-Ledger-Index"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed_and_change_nothing() {
    let mut tc = TestCluster::start("api-contract", 3, &[], &[]).await;
    let leader = tc.leader().await;
    let all = tc.https(&tc.ids());
    // Exercise the follower path for every case: a follower forwards writes and reads.
    let f = tc.http(
        tc.ids()
            .into_iter()
            .find(|i| *i != leader)
            .expect("follower"),
    );
    open_accounts(&all, &["c-usd1", "c-usd2", "c-frz"], "USD").await;
    open_accounts(&all, &["c-eur"], "EUR").await;
    deposit(&all, "c-dep1", "c-usd1", 1000).await;
    deposit(&all, "c-dep2", "c-frz", 100).await;
    deposit(&all, "c-dep3", "c-eur", 10).await;
    let before = ledger_snapshot(&f).await;

    tc.phase("400: malformed bodies and invalid fields");
    raw(&f, "/v1/transfers", "{not json").await.expect_error(
        "malformed json",
        400,
        "malformed_json",
    );
    raw(&f, "/v1/transfers", "")
        .await
        .expect_error("empty body", 400, "malformed_json");
    let r = raw(
        &f,
        "/v1/transfers",
        r#"{"id":"u1","from":"c-usd1","to":"c-usd2","amount":1,"amout":2}"#,
    )
    .await;
    assert_eq!(r.status, 400, "unknown field: {}", r.text);
    r.assert_error_shape("unknown field");
    for amount in [0i64, -5] {
        let body =
            json!({"id": format!("z{amount}"), "from": "c-usd1", "to": "c-usd2", "amount": amount});
        f.must_post("/v1/transfers", &body).await.expect_error(
            "non-positive amount",
            400,
            "amount_must_be_positive",
        );
        let dep = json!({"id": format!("zd{amount}"), "account": "c-usd1", "amount": amount});
        f.must_post("/v1/deposits", &dep).await.expect_error(
            "non-positive deposit",
            400,
            "amount_must_be_positive",
        );
    }
    let r = raw(
        &f,
        "/v1/transfers",
        r#"{"id":"big","from":"c-usd1","to":"c-usd2","amount":99999999999999999999}"#,
    )
    .await;
    assert_eq!(r.status, 400, "amount > i64::MAX: {}", r.text);
    r.assert_error_shape("amount > i64::MAX");
    let r = raw(
        &f,
        "/v1/transfers",
        r#"{"id":"flt","from":"c-usd1","to":"c-usd2","amount":1.5}"#,
    )
    .await;
    assert_eq!(r.status, 400, "fractional amount: {}", r.text);
    r.assert_error_shape("fractional amount");
    let no_id = json!({"from": "c-usd1", "to": "c-usd2", "amount": 1});
    f.must_post("/v1/transfers", &no_id)
        .await
        .expect_error("missing id", 400, "missing_id");
    let bad_acct = json!({"id": "bad-acct", "from": "bad id!", "to": "c-usd2", "amount": 1});
    f.must_post("/v1/transfers", &bad_acct).await.expect_error(
        "invalid account id",
        400,
        "invalid_account_id",
    );
    let sys = json!({"id": "sys", "from": "@world:USD", "to": "c-usd2", "amount": 1});
    f.must_post("/v1/transfers", &sys).await.expect_error(
        "system account named by a client",
        400,
        "invalid_account_id",
    );
    let cur = json!({"id": "c-new", "currency": "usd"});
    f.must_post("/v1/accounts", &cur).await.expect_error(
        "invalid currency",
        400,
        "invalid_currency",
    );
    let od = json!({"id": "c-new2", "currency": "USD", "overdraft_limit": -1});
    f.must_post("/v1/accounts", &od).await.expect_error(
        "negative overdraft",
        400,
        "overdraft_limit_must_be_non_negative",
    );
    let r = f.must_get("/v1/accounts/c-usd1?consistency=bogus").await;
    r.expect_error("bad consistency", 400, "malformed_query");

    tc.phase("413: body over 1 MiB");
    let huge = format!(
        r#"{{"id":"huge","from":"c-usd1","to":"c-usd2","amount":1,"memo":"{}"}}"#,
        "x".repeat(1_100_000)
    );
    match f.post_raw("/v1/transfers", huge.into_bytes(), &[]).await {
        Ok(r) => r.expect_error("oversized body", 413, "body_too_large"),
        Err(e) => panic!("oversized body: expected a 413 answer, got a transport error: {e}"),
    }

    tc.phase("404/409/422: replicated rejections");
    let r = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "r-404", "from": "c-usd1", "to": "nobody", "amount": 1}),
        )
        .await;
    replicated(&r, "unknown account", 404, "account_not_found");
    let r = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "r-nsf", "from": "c-usd2", "to": "c-usd1", "amount": 1}),
        )
        .await;
    replicated(&r, "insufficient funds", 422, "insufficient_funds");
    let r = f
        .must_post(
            "/v1/withdrawals",
            &json!({"id": "r-wd", "account": "c-usd1", "amount": 1001}),
        )
        .await;
    replicated(&r, "withdrawal over balance", 422, "insufficient_funds");
    let r = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "r-cur", "from": "c-usd1", "to": "c-eur", "amount": 1}),
        )
        .await;
    replicated(&r, "currency mismatch", 422, "currency_mismatch");
    let r = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "r-same", "from": "c-usd1", "to": "c-usd1", "amount": 1}),
        )
        .await;
    replicated(&r, "same account", 422, "accounts_must_be_different");
    let r = f
        .must_post("/v1/accounts", &json!({"id": "c-usd1", "currency": "USD"}))
        .await;
    assert_eq!(
        r.status, 200,
        "re-opening with the same body replays the open (id = account id): {}",
        r.text
    );
    let r = f
        .must_post("/v1/accounts", &json!({"id": "c-usd1", "currency": "EUR"}))
        .await;
    replicated(
        &r,
        "re-open with another currency",
        409,
        "idempotency_key_reused",
    );
    let again = json!({"id": "c-usd1", "currency": "USD"})
        .to_string()
        .into_bytes();
    let r = f
        .post_raw("/v1/accounts", again, &[("idempotency-key", "open-again")])
        .await
        .expect("post");
    // The command id of an open is the account id: a key that differs is refused up front.
    r.expect_error("re-open under another Idempotency-Key", 400, "id_mismatch");
    let r = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "r-nsf", "from": "c-usd2", "to": "c-usd1", "amount": 2}),
        )
        .await;
    replicated(
        &r,
        "id reused with another body",
        409,
        "idempotency_key_reused",
    );
    let r = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "r-nsf", "from": "c-usd2", "to": "c-usd1", "amount": 1}),
        )
        .await;
    assert_eq!(
        r.status, 422,
        "a retried rejection returns the original rejection: {}",
        r.text
    );

    tc.phase("422: frozen account, both directions");
    let fr = f.must_post("/v1/accounts/c-frz/freeze", &json!({})).await;
    assert_eq!(fr.status, 200, "freeze: {}", fr.text);
    assert!(fr.index.is_some(), "freeze carries X-Ledger-Index");
    assert_eq!(
        f.must_get("/v1/accounts/c-frz").await.body["status"],
        "frozen"
    );
    let r = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "r-frz1", "from": "c-frz", "to": "c-usd1", "amount": 1}),
        )
        .await;
    replicated(&r, "debit frozen", 422, "account_frozen");
    let r = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "r-frz2", "from": "c-usd1", "to": "c-frz", "amount": 1}),
        )
        .await;
    replicated(&r, "credit frozen", 422, "account_frozen");
    let r = f.must_post("/v1/accounts/c-frz/freeze", &json!({})).await;
    replicated(&r, "freeze twice", 422, "account_status_unchanged");
    let un = f.must_post("/v1/accounts/c-frz/unfreeze", &json!({})).await;
    assert_eq!(un.status, 200, "unfreeze: {}", un.text);
    assert_eq!(
        f.must_get("/v1/accounts/c-frz").await.body["status"],
        "open"
    );

    tc.phase("404 on reads and unknown routes");
    let r = f.must_get("/v1/accounts/nobody").await;
    r.expect_error("unknown account read", 404, "account_not_found");
    assert!(
        r.index.is_some(),
        "a 404 read still reports the index it was served at"
    );
    f.must_get("/v1/transfers/nope").await.expect_error(
        "unknown transfer",
        404,
        "transfer_not_found",
    );
    let r = f.must_get("/v1/balances?accounts=c-usd1,nobody").await;
    r.expect_error("unknown account in balances", 404, "account_not_found");
    f.must_get("/v1/no/such/route")
        .await
        .expect_error("unknown route", 404, "route_not_found");

    tc.phase("nothing above moved money or changed versions");
    let after = ledger_snapshot(&f).await;
    assert_eq!(
        after, before,
        "rejected and malformed requests must not change any balance"
    );
    for id in tc.ids() {
        let (_, b) = balances(
            &tc.http(id),
            &[
                "c-usd1",
                "c-usd2",
                "c-eur",
                "c-frz",
                "@world:USD",
                "@world:EUR",
            ],
            "",
        )
        .await;
        assert_eq!(b, before.0, "node {id} balances");
    }
    let ok = f
        .must_post(
            "/v1/transfers",
            &json!({"id": "c-ok", "from": "c-frz", "to": "c-usd2", "amount": 40}),
        )
        .await;
    assert_eq!(ok.status, 201, "transfer after unfreeze: {}", ok.text);
    assert_eq!(
        ok.index,
        ok.body["index"].as_u64(),
        "X-Ledger-Index equals body index"
    );
    for k in ["id", "index", "event_seq", "timestamp", "status"] {
        assert!(!ok.body[k].is_null(), "success body has {k}: {}", ok.text);
    }
    let ts = ok.body["timestamp"].as_str().expect("timestamp");
    assert!(
        node::api::render::parse_rfc3339_us(ts).is_ok() && ts.len() == 27,
        "RFC 3339 with µs: {ts}"
    );
    tc.assert_no_panics();
}

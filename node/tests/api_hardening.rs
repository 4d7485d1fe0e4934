//! Input hardening of the client API on a one-node cluster (the rules need no replication, so
//! one node keeps the suite fast): every refused request gets its typed 4xx in the JSON error
//! shape and changes nothing.

mod common;

use common::{deposit, open_accounts, Http, TestCluster};
use serde_json::{json, Value};

/// A one-node cluster and a raw client on it.
async fn one_node(name: &'static str) -> (TestCluster, Http) {
    let tc = TestCluster::start(name, 1, &[], &[]).await;
    let h = tc.http(1);
    (tc, h)
}

/// `GET path`, asserting 200; the JSON body.
async fn get_ok(h: &Http, path: &str) -> Value {
    let r = h.must_get(path).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_need_a_json_content_type() {
    let (tc, h) = one_node("harden-media").await;
    let all = [h.clone()];
    open_accounts(&all, &["m-a", "m-b"], "USD").await;
    deposit(&all, "m-dep", "m-a", 100).await;
    let p = h
        .must_post(
            "/v1/transfers",
            &json!({"id": "m-p", "from": "m-a", "to": "m-b", "amount": 10, "pending": true}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text);

    tc.phase("cross-site simple POSTs (no preflight) are 415 on every command route");
    let deposit_body = r#"{"id":"m-x","account":"m-a","amount":5}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        for (path, body) in [
            ("/v1/deposits", deposit_body),
            ("/v1/transfers/m-p/post", ""),
            ("/v1/transfers/m-p/void", ""),
            ("/v1/accounts/m-a/freeze", ""),
            ("/v1/accounts/m-a/close", "{}"),
        ] {
            h.send("POST", path, ct, body).await.expect_error(
                &format!("POST {path} with content type {ct:?}"),
                415,
                "unsupported_media_type",
            );
        }
    }

    tc.phase("nothing moved");
    let a = get_ok(&h, "/v1/accounts/m-a").await;
    assert_eq!(
        (a["balance"].as_i64(), a["status"].as_str()),
        (Some(100), Some("open")),
        "{a}"
    );
    let t = get_ok(&h, "/v1/transfers/m-p").await;
    assert_eq!(t["status"], "pending", "{t}");
    let r = h.must_get("/v1/transfers/m-x").await;
    r.expect_error("refused deposit", 404, "transfer_not_found");

    tc.phase("JSON with parameters is accepted; a body-less route takes an empty body or {}");
    let r = h
        .send(
            "POST",
            "/v1/deposits",
            Some("application/json; charset=utf-8"),
            deposit_body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let j = Some("application/json");
    let r = h.send("POST", "/v1/transfers/m-p/post", j, "").await;
    assert_eq!(r.status, 200, "post with an empty body: {}", r.text);
    let r = h.send("POST", "/v1/accounts/m-b/freeze", j, "{}").await;
    assert_eq!(r.status, 200, "freeze with {{}}: {}", r.text);
    let r = h
        .send("POST", "/v1/accounts/m-b/unfreeze", j, r#"{"force":true}"#)
        .await;
    r.expect_error("a field on a body-less route", 400, "malformed_json");
    let b = get_ok(&h, "/v1/accounts/m-b").await;
    assert_eq!(
        b["status"], "frozen",
        "the refused unfreeze changed nothing: {b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_query_parameters_are_refused() {
    let (tc, h) = one_node("harden-query").await;
    let all = [h.clone()];
    open_accounts(&all, &["q-a"], "USD").await;
    deposit(&all, "q-dep", "q-a", 100).await;

    tc.phase("reads: a misspelt or unknown parameter is a 400, on every read route");
    for path in [
        "/v1/accounts/q-a?consistancy=stale",
        "/v1/accounts/q-a?consistency=stale&extra=1",
        "/v1/transfers/q-dep?min_idx=1",
        "/v1/accounts/q-a/balance?at_idx=1",
        "/v1/accounts/q-a/events?limt=5",
        "/v1/balances?accounts=q-a&consistencyy=lease",
        "/v1/events?from=1",
    ] {
        h.must_get(path)
            .await
            .expect_error(&format!("GET {path}"), 400, "malformed_query");
    }
    let a = get_ok(&h, "/v1/accounts/q-a?consistency=stale&min_index=1").await;
    assert_eq!(a["balance"], 100, "known parameters still work: {a}");

    tc.phase("commands: any query parameter is a 400 and nothing is applied");
    let r = h
        .send(
            "POST",
            "/v1/deposits?consistency=stale",
            Some("application/json"),
            r#"{"id":"q-x","account":"q-a","amount":5}"#,
        )
        .await;
    r.expect_error("POST with a query", 400, "malformed_query");
    h.must_get("/v1/transfers/q-x").await.expect_error(
        "refused deposit",
        404,
        "transfer_not_found",
    );
    let a = get_ok(&h, "/v1/accounts/q-a").await;
    assert_eq!(a["balance"], 100, "{a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_and_body_id_must_agree() {
    let (tc, h) = one_node("harden-ids").await;
    let all = [h.clone()];
    open_accounts(&all, &["i-a", "i-b"], "USD").await;
    deposit(&all, "i-dep", "i-a", 100).await;
    let j = Some("application/json");
    let batch = json!({"id": "i-batch", "commands": [
        {"type": "transfer", "id": "i-t1", "from": "i-a", "to": "i-b", "amount": 1}
    ]})
    .to_string();

    tc.phase("a batch whose Idempotency-Key differs from its body id is a 400");
    let r = h
        .post_raw(
            "/v1/batches",
            batch.clone().into_bytes(),
            &[("idempotency-key", "i-other")],
        )
        .await
        .expect("post");
    r.expect_error("batch key != body id", 400, "id_mismatch");
    tc.phase("a batch with an invalid body id is a 400, not silently derived");
    let bad = json!({"id": "has space", "commands": [
        {"type": "transfer", "id": "i-t2", "from": "i-a", "to": "i-b", "amount": 1}
    ]});
    h.must_post("/v1/batches", &bad)
        .await
        .expect_error("invalid batch id", 400, "invalid_id");
    for t in ["i-t1", "i-t2"] {
        h.must_get(&format!("/v1/transfers/{t}"))
            .await
            .expect_error("refused batch", 404, "transfer_not_found");
    }

    tc.phase("opening an account under a key that differs from the account id is a 400");
    let r = h
        .post_raw(
            "/v1/accounts",
            br#"{"id":"i-c","currency":"USD"}"#.to_vec(),
            &[("idempotency-key", "i-open-c")],
        )
        .await
        .expect("post");
    r.expect_error("account key != body id", 400, "id_mismatch");
    h.must_get("/v1/accounts/i-c")
        .await
        .expect_error("refused open", 404, "account_not_found");

    tc.phase("agreeing ids, or one of them, still work");
    let r = h
        .post_raw(
            "/v1/batches",
            batch.into_bytes(),
            &[("idempotency-key", "i-batch")],
        )
        .await
        .expect("post");
    assert_eq!(r.status, 201, "{}", r.text);
    let r = h
        .send(
            "POST",
            "/v1/accounts",
            j,
            r#"{"id":"i-c","currency":"USD"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = h
        .post_raw(
            "/v1/accounts",
            br#"{"id":"i-d","currency":"USD"}"#.to_vec(),
            &[("idempotency-key", "i-d")],
        )
        .await
        .expect("post");
    assert_eq!(r.status, 201, "{}", r.text);
    let b = get_ok(&h, "/v1/accounts/i-b").await;
    assert_eq!(b["balance"], 1, "only the accepted batch moved money: {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_beyond_the_commit_index_is_a_400() {
    let (tc, h) = one_node("harden-future").await;
    let all = [h.clone()];
    open_accounts(&all, &["f-a"], "USD").await;
    let written = deposit(&all, "f-dep", "f-a", 100)
        .await
        .index
        .expect("X-Ledger-Index");
    let future = written + 1_000_000;

    tc.phase("at_index / min_index far beyond the commit index: 400 at once, no 5 s wait");
    for (path, param) in [
        (
            format!("/v1/accounts/f-a/balance?at_index={future}"),
            "at_index",
        ),
        (format!("/v1/accounts/f-a?min_index={future}"), "min_index"),
        (
            format!("/v1/accounts/f-a?min_index={future}&consistency=stale"),
            "min_index (stale)",
        ),
        (
            format!("/v1/balances?accounts=f-a&min_index={future}&consistency=lease"),
            "min_index (lease)",
        ),
        (
            format!("/v1/accounts/f-a/events?min_index={future}"),
            "min_index (events)",
        ),
    ] {
        let started = std::time::Instant::now();
        let r = h.must_get(&path).await;
        r.expect_error(param, 400, "index_in_future");
        assert_eq!(r.body["error"]["details"]["index"], future, "{}", r.text);
        let commit = r.body["error"]["details"]["commit_index"]
            .as_u64()
            .expect("details.commit_index");
        assert!(commit >= written && commit < future, "{}", r.text);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{param}: refused without waiting, took {:?}",
            started.elapsed()
        );
    }

    tc.phase("an index a write returned is still served (read-your-writes)");
    let a = get_ok(
        &h,
        &format!("/v1/accounts/f-a?min_index={written}&consistency=stale"),
    )
    .await;
    assert_eq!(a["balance"], 100, "{a}");
    let b = get_ok(&h, &format!("/v1/accounts/f-a/balance?at_index={written}")).await;
    assert_eq!(b["balance"], 100, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_derived_ids_cannot_be_pre_claimed() {
    let (tc, h) = one_node("harden-reserved").await;
    let all = [h.clone()];
    open_accounts(&all, &["r-a", "r-b"], "USD").await;
    deposit(&all, "r-dep", "r-a", 100).await;

    tc.phase("body ids, keys, batch items and account ids with a reserved form are 400");
    for id in [
        "post:r-p",
        "void:r-p",
        "freeze:r-a:1",
        "close:x",
        "batch:1:abc",
        "tick",
    ] {
        let t = json!({"id": id, "from": "r-a", "to": "r-b", "amount": 1});
        h.must_post("/v1/transfers", &t).await.expect_error(
            &format!("transfer id {id}"),
            400,
            "reserved_id",
        );
        let hdr = json!({"from": "r-a", "to": "r-b", "amount": 1}).to_string();
        let r = h
            .post_raw(
                "/v1/transfers",
                hdr.into_bytes(),
                &[("idempotency-key", id)],
            )
            .await
            .expect("post");
        r.expect_error(&format!("Idempotency-Key {id}"), 400, "reserved_id");
        let b = json!({"commands": [{"type": "deposit", "id": id, "account": "r-a", "amount": 1}]});
        h.must_post("/v1/batches", &b).await.expect_error(
            &format!("batch item {id}"),
            400,
            "reserved_id",
        );
        let b = json!({"id": id, "commands": [{"type": "deposit", "id": "r-in", "account": "r-a", "amount": 1}]});
        h.must_post("/v1/batches", &b).await.expect_error(
            &format!("batch id {id}"),
            400,
            "reserved_id",
        );
    }
    h.must_post(
        "/v1/accounts",
        &json!({"id": "post:r-p", "currency": "USD"}),
    )
    .await
    .expect_error("account id post:r-p", 400, "reserved_id");
    let a = get_ok(&h, "/v1/accounts/r-a").await;
    assert_eq!(a["balance"], 100, "nothing moved: {a}");

    tc.phase("the derived default ids stay free for the server");
    let p = json!({"id": "r-p", "from": "r-a", "to": "r-b", "amount": 10, "pending": true});
    assert_eq!(h.must_post("/v1/transfers", &p).await.status, 201);
    let r = h.must_post("/v1/transfers/r-p/post", &json!({})).await;
    assert_eq!(r.status, 200, "post under its derived id: {}", r.text);
    assert_eq!(r.body["id"], "post:r-p", "{}", r.text);
    let b = get_ok(&h, "/v1/accounts/r-b").await;
    assert_eq!(b["balance"], 10, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_timeout_is_bounded() {
    let (tc, h) = one_node("harden-timeout").await;
    let all = [h.clone()];
    open_accounts(&all, &["t-a", "t-b"], "USD").await;
    deposit(&all, "t-dep", "t-a", 100).await;
    const DAY_S: u64 = 24 * 60 * 60;

    tc.phase("timeout_s outside 1..=30 days is a 400 invalid_timeout, alone or in a batch");
    for (i, t) in [0, 30 * DAY_S + 1, u64::MAX].into_iter().enumerate() {
        let id = format!("t-bad{i}");
        let body = json!({"id": id, "from": "t-a", "to": "t-b", "amount": 1, "pending": true, "timeout_s": t});
        let r = h.must_post("/v1/transfers", &body).await;
        r.expect_error(&format!("timeout_s {t}"), 400, "invalid_timeout");
        assert_eq!(r.body["error"]["details"]["timeout_s_max"], 30 * DAY_S);
        let mut item = body.clone();
        item["type"] = json!("transfer");
        item["id"] = json!(format!("{id}-in-batch"));
        h.must_post("/v1/batches", &json!({"commands": [item]}))
            .await
            .expect_error(&format!("batch timeout_s {t}"), 400, "invalid_timeout");
    }
    let a = get_ok(&h, "/v1/accounts/t-a").await;
    assert_eq!(a["pending_debits"], 0, "nothing reserved: {a}");

    tc.phase("the bounds themselves are accepted");
    for (id, t) in [("t-min", 1), ("t-max", 30 * DAY_S)] {
        let body = json!({"id": id, "from": "t-a", "to": "t-b", "amount": 1, "pending": true, "timeout_s": t});
        let r = h.must_post("/v1/transfers", &body).await;
        assert_eq!(r.status, 201, "timeout_s {t}: {}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn currencies_must_be_active_iso_4217_codes() {
    let (tc, h) = one_node("harden-currency").await;

    tc.phase("a well-formed but unknown or withdrawn code is a 400 unknown_currency");
    for code in ["ABC", "XXX", "HRK", "ZWL"] {
        h.must_post("/v1/accounts", &json!({"id": "c-x", "currency": code}))
            .await
            .expect_error(&format!("currency {code}"), 400, "unknown_currency");
        let b = json!({"commands": [{"type": "account", "id": "c-y", "currency": code}]});
        h.must_post("/v1/batches", &b).await.expect_error(
            &format!("batch currency {code}"),
            400,
            "unknown_currency",
        );
    }
    h.must_post("/v1/accounts", &json!({"id": "c-x", "currency": "usd"}))
        .await
        .expect_error("lower case", 400, "invalid_currency");
    for id in ["c-x", "c-y"] {
        h.must_get(&format!("/v1/accounts/{id}"))
            .await
            .expect_error("refused open", 404, "account_not_found");
    }

    tc.phase("active codes open");
    for (id, code) in [
        ("c-usd", "USD"),
        ("c-eur", "EUR"),
        ("c-jpy", "JPY"),
        ("c-xcg", "XCG"),
    ] {
        let r = h
            .must_post("/v1/accounts", &json!({"id": id, "currency": code}))
            .await;
        assert_eq!(r.status, 201, "{code}: {}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_metric_labels_are_bounded() {
    let (tc, h) = one_node("harden-metrics").await;

    tc.phase("an odd method and raw ids never become label values");
    let r = h.send("FROBNICATE", "/v1/accounts", None, "").await;
    assert_eq!(r.status, 405, "{}", r.text);
    h.must_get("/v1/accounts/raw-id-7731").await.expect_error(
        "unknown account",
        404,
        "account_not_found",
    );
    h.must_get("/no/such/raw-path-7732").await.expect_error(
        "unknown route",
        404,
        "route_not_found",
    );
    let m = h.must_get("/metrics").await;
    assert_eq!(m.status, 200);
    let series: Vec<&str> = m
        .text
        .lines()
        .filter(|l| l.starts_with("raftledger_http_request_duration_seconds"))
        .collect();
    let all = series.join("\n");
    for raw in ["FROBNICATE", "raw-id-7731", "raw-path-7732"] {
        assert!(!all.contains(raw), "{raw} is a label value:\n{all}");
    }
    for label in [
        r#"method="other""#,
        r#"route="/v1/accounts/{id}""#,
        r#"route="unmatched""#,
    ] {
        assert!(all.contains(label), "no {label} series:\n{all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_and_bad_paths_get_the_json_error_shape() {
    let (tc, h) = one_node("harden-405").await;
    let j = Some("application/json");

    tc.phase("405 carries the JSON error shape and the Allow header");
    for (method, path, allowed) in [
        ("GET", "/v1/deposits", "POST"),
        ("DELETE", "/v1/accounts/x", "GET"),
        ("POST", "/v1/accounts/x", "GET"),
        ("PUT", "/v1/transfers/x/post", "POST"),
    ] {
        let r = h.send(method, path, j, "{}").await;
        r.expect_error(&format!("{method} {path}"), 405, "method_not_allowed");
        let allow = r.header("allow").unwrap_or("");
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow:?}");
    }

    tc.phase("a path parameter that does not decode is a JSON 400");
    for (method, path) in [
        ("GET", "/v1/accounts/%FF"),
        ("GET", "/v1/accounts/%FF/balance"),
        ("GET", "/v1/transfers/%FF"),
        ("POST", "/v1/transfers/%FF/post"),
        ("POST", "/v1/accounts/%FF/freeze"),
    ] {
        h.send(method, path, j, "").await.expect_error(
            &format!("{method} {path}"),
            400,
            "malformed_path",
        );
    }
}

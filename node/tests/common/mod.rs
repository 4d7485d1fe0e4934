//! Shared helpers for the cluster and API tests: a `TestCluster` of real `raftledger node`
//! processes in a private tempdir (node logs dumped and the dir kept when a test panics), a raw
//! HTTP client that exposes headers, retrying writes, bounded polling, and a watcher that counts
//! WAL segment deletions (evidence of compaction).
//!
//! Every wait here has a deadline; nothing asserts on timing except generous liveness bounds.

#![allow(dead_code)]

pub mod auth;
mod cluster;
mod http;
mod segments;

#[allow(unused_imports)] // not every test binary uses every helper
pub use cluster::{log_panics, TestCluster};
pub use http::{Http, Resp};
#[allow(unused_imports)] // only the aging test watches WAL segments
pub use segments::{SegmentWatch, WalSegments};

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Longest wait for a cluster to elect a leader everyone agrees on (process start included).
pub const LEADER_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for a node to catch up to an index.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(60);
/// Longest a single retried write may take before the test gives up on it.
pub const WRITE_WAIT: Duration = Duration::from_secs(30);
/// Pause between polls: short, so waits end soon after the condition holds.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Per-request timeout of the raw client: a request that takes longer is "unknown".
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Path of the `raftledger` binary built for these tests.
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_raftledger"))
}

/// Announces a test phase on stderr (shown by the harness when the test fails).
pub fn phase(test: &str, started: Instant, msg: &str) {
    eprintln!("[{test} +{:>6.2}s] {msg}", started.elapsed().as_secs_f64());
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Sends one write to `nodes[first % n]`, and on a transport error or a 5xx retries the SAME
/// request on the next node (safe: the body carries the idempotency key) until a definite
/// (non-5xx) answer or `timeout`. Returns the answer and the attempts made; `None` = unknown.
pub async fn write_retry(
    nodes: &[Http],
    first: usize,
    path: &str,
    body: &Value,
    timeout: Duration,
) -> (Option<Resp>, u32) {
    let deadline = Instant::now() + timeout;
    let mut attempt = 0u32;
    loop {
        let node = &nodes[(first + attempt as usize) % nodes.len()];
        attempt += 1;
        match node.post(path, body).await {
            Ok(r) if !r.retryable() => return (Some(r), attempt),
            Ok(_) | Err(_) => {}
        }
        if Instant::now() >= deadline {
            return (None, attempt);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// As [`write_retry`], but panics unless the answer is 2xx.
pub async fn write_ok(nodes: &[Http], first: usize, path: &str, body: &Value) -> Resp {
    match write_retry(nodes, first, path, body, WRITE_WAIT).await {
        (Some(r), _) if r.ok() => r,
        (Some(r), _) => panic!(
            "POST {path} {body}: expected 2xx, got {} {}",
            r.status, r.text
        ),
        (None, n) => panic!("POST {path} {body}: no definite answer after {n} attempts"),
    }
}

/// Opens `accounts` in `currency` (retrying through any node) and returns their ids.
pub async fn open_accounts(nodes: &[Http], accounts: &[&str], currency: &str) {
    for (i, a) in accounts.iter().enumerate() {
        let r = write_ok(
            nodes,
            i,
            "/v1/accounts",
            &json!({"id": a, "currency": currency}),
        )
        .await;
        assert!(
            r.status == 201 || r.status == 200,
            "open {a}: {} {}",
            r.status,
            r.text
        );
    }
}

/// Deposits `amount` into `account` with id `id` (retrying through any node).
pub async fn deposit(nodes: &[Http], id: &str, account: &str, amount: i64) -> Resp {
    write_ok(
        nodes,
        0,
        "/v1/deposits",
        &json!({"id": id, "account": account, "amount": amount}),
    )
    .await
}

/// `GET /v1/balances?accounts=..` on one node: (index, balances).
pub async fn balances(node: &Http, accounts: &[&str], query: &str) -> (u64, BTreeMap<String, i64>) {
    let r = node
        .must_get(&format!(
            "/v1/balances?accounts={}{query}",
            accounts.join(",")
        ))
        .await;
    assert_eq!(r.status, 200, "balances on {}: {}", node.base, r.text);
    let idx = r.body["index"].as_u64().expect("balances index");
    assert_eq!(
        r.index,
        Some(idx),
        "X-Ledger-Index of /v1/balances equals its body index"
    );
    let map = r.body["balances"]
        .as_object()
        .expect("balances object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().expect("integer balance")))
        .collect();
    (idx, map)
}

/// `GET /v1/accounts/{id}` body (linearizable unless `query` says otherwise).
pub async fn account(node: &Http, id: &str, query: &str) -> Resp {
    let r = node.must_get(&format!("/v1/accounts/{id}{query}")).await;
    assert_eq!(r.status, 200, "account {id} on {}: {}", node.base, r.text);
    assert!(r.index.is_some(), "account read has X-Ledger-Index");
    r
}

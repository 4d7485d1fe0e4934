//! Shared helpers for the cluster and API tests: a `TestCluster` of real `raftledger node`
//! processes in a private tempdir (node logs dumped and the dir kept when a test panics), a raw
//! HTTP client that exposes headers, retrying writes, and bounded polling.
//!
//! Every wait here has a deadline; nothing asserts on timing except generous liveness bounds.

#![allow(dead_code)]

use node::client::LedgerClient;
use node::local_cluster::LocalCluster;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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

/// A response with everything a contract test checks.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// `X-Ledger-Index`, when present and numeric.
    pub index: Option<u64>,
    /// All headers.
    pub headers: HeaderMap,
    /// Raw body text.
    pub text: String,
    /// Body as JSON (`Null` when not JSON).
    pub body: Value,
}

impl Resp {
    /// 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// True when the outcome is not known (the request may or may not have taken effect):
    /// 5xx answers. Transport errors are handled by the caller.
    pub fn retryable(&self) -> bool {
        self.status >= 500
    }

    /// Asserts the JSON error shape `{"error": {"code", "message", "details"}}`.
    pub fn assert_error_shape(&self, what: &str) {
        let e = &self.body["error"];
        assert!(e.is_object(), "{what}: error body is not the JSON shape: {} {}", self.status, self.text);
        assert!(e["code"].as_str().is_some_and(|c| !c.is_empty()), "{what}: no error.code: {}", self.text);
        assert!(e["message"].is_string(), "{what}: no error.message: {}", self.text);
        assert!(e.get("details").is_some(), "{what}: no error.details: {}", self.text);
    }

    /// Asserts status and error code, and the error shape.
    pub fn expect_error(&self, what: &str, status: u16, code: &str) {
        assert_eq!(self.status, status, "{what}: expected {status} {code}, got {} {}", self.status, self.text);
        self.assert_error_shape(what);
        assert_eq!(self.code(), code, "{what}: wrong error code in {}", self.text);
    }
}

/// A raw HTTP client on one node's API (headers and text visible, unlike `LedgerClient`).
#[derive(Clone)]
pub struct Http {
    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub base: String,
    client: reqwest::Client,
}

impl Http {
    /// A client for `base`.
    pub fn new(base: &str) -> Self {
        Self::with_timeout(base, HTTP_TIMEOUT)
    }

    /// A client whose requests time out after `timeout`.
    pub fn with_timeout(base: &str, timeout: Duration) -> Self {
        let client = reqwest::Client::builder().timeout(timeout).build().expect("reqwest client");
        Self { base: base.trim_end_matches('/').to_owned(), client }
    }

    async fn read(r: reqwest::Response) -> Result<Resp, reqwest::Error> {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let index = headers.get("x-ledger-index").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let text = r.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Resp { status, index, headers, text, body })
    }

    /// POSTs JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Resp, reqwest::Error> {
        Self::read(self.client.post(format!("{}{path}", self.base)).json(body).send().await?).await
    }

    /// POSTs raw bytes as `application/json` with extra headers.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Result<Resp, reqwest::Error> {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::read(req.send().await?).await
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> Result<Resp, reqwest::Error> {
        Self::read(self.client.get(format!("{}{path}", self.base)).send().await?).await
    }

    /// GETs `path`, panicking on a transport error.
    pub async fn must_get(&self, path: &str) -> Resp {
        self.get(path).await.unwrap_or_else(|e| panic!("GET {}{path}: {e}", self.base))
    }

    /// POSTs JSON, panicking on a transport error.
    pub async fn must_post(&self, path: &str, body: &Value) -> Resp {
        self.post(path, body).await.unwrap_or_else(|e| panic!("POST {}{path}: {e}", self.base))
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Sends one write to `nodes[first % n]`, and on a transport error or a 5xx retries the SAME
/// request on the next node (safe: the body carries the idempotency key) until a definite
/// (non-5xx) answer or `timeout`. Returns the answer and the attempts made; `None` = unknown.
pub async fn write_retry(nodes: &[Http], first: usize, path: &str, body: &Value, timeout: Duration) -> (Option<Resp>, u32) {
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
        (Some(r), _) => panic!("POST {path} {body}: expected 2xx, got {} {}", r.status, r.text),
        (None, n) => panic!("POST {path} {body}: no definite answer after {n} attempts"),
    }
}

/// A cluster of real node processes in its own tempdir.
pub struct TestCluster {
    /// The processes (dropped first: kills the children before the dir goes).
    pub lc: LocalCluster,
    /// Test name, for phase lines.
    pub name: &'static str,
    /// When the test started.
    pub started: Instant,
    dir: Option<tempfile::TempDir>,
}

impl TestCluster {
    /// `n` node slots; starts those in `running` (all when empty) with `extra` flags, and waits
    /// for a leader every running node agrees on and for `/readyz` everywhere.
    pub async fn start(name: &'static str, n: usize, running: &[u64], extra: &[&str]) -> Self {
        let started = Instant::now();
        let dir = tempfile::Builder::new().prefix(&format!("raftledger-{name}-")).tempdir().expect("tempdir");
        let lc = LocalCluster::new(&exe(), n, 0, 0, dir.path()).expect("describe cluster").with_args(extra);
        let mut tc = Self { lc, name, started, dir: Some(dir) };
        tc.phase(&format!("starting {n} node slots in {}", tc.path().display()));
        let ids: Vec<u64> = if running.is_empty() { (1..=n as u64).collect() } else { running.to_vec() };
        for id in ids {
            tc.lc.start(id).expect("spawn node");
        }
        let leader = tc.leader().await;
        assert!(tc.lc.wait_ready(LEADER_WAIT).await, "nodes not ready within {LEADER_WAIT:?}");
        tc.phase(&format!("cluster up, leader {leader}"));
        tc
    }

    /// The tempdir.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).expect("tempdir present")
    }

    /// Announces a phase.
    pub fn phase(&self, msg: &str) {
        phase(self.name, self.started, msg);
    }

    /// Ids of all slots.
    pub fn ids(&self) -> Vec<u64> {
        (1..=self.lc.nodes.len() as u64).collect()
    }

    /// Ids of running nodes.
    pub fn running(&mut self) -> Vec<u64> {
        self.ids().into_iter().filter(|id| self.lc.is_running(*id)).collect()
    }

    /// Raw client for node `id`.
    pub fn http(&self, id: u64) -> Http {
        Http::new(&self.lc.node(id).api_url())
    }

    /// Raw clients for `ids`.
    pub fn https(&self, ids: &[u64]) -> Vec<Http> {
        ids.iter().map(|id| self.http(*id)).collect()
    }

    /// Typed client for node `id`.
    pub fn client(&self, id: u64) -> LedgerClient {
        self.lc.client(id)
    }

    /// The leader every running node agrees on (panics after [`LEADER_WAIT`]).
    pub async fn leader(&mut self) -> u64 {
        match self.lc.wait_leader(LEADER_WAIT).await {
            Some(l) => l,
            None => panic!("no agreed leader within {LEADER_WAIT:?}"),
        }
    }

    /// `GET /cluster/status` of node `id`.
    pub async fn status(&self, id: u64) -> Value {
        let r = self.http(id).must_get("/cluster/status").await;
        assert_eq!(r.status, 200, "status of node {id}: {}", r.text);
        r.body
    }

    /// Waits until node `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64, timeout: Duration) -> Value {
        let http = self.http(id);
        eventually(&format!("node {id} applied >= {index}"), timeout, async || {
            let r = http.get("/cluster/status").await.ok()?;
            (r.body["applied"].as_u64()? >= index).then_some(r.body)
        })
        .await
    }

    /// Waits until every running node reports the same `applied_hash` at the same
    /// `applied_hash_index` (L6), and returns that index. Ticks advance the log once a second,
    /// so two quick status reads usually land on the same index.
    pub async fn wait_same_hash(&mut self, ids: &[u64], timeout: Duration) -> u64 {
        let https = self.https(ids);
        eventually("equal applied_hash at an equal applied index on all nodes", timeout, async || {
            let mut seen = Vec::new();
            for h in &https {
                let b = h.get("/cluster/status").await.ok()?.body;
                seen.push((b["applied_hash_index"].as_u64()?, b["applied_hash"].as_str()?.to_owned()));
            }
            let (i0, h0) = seen[0].clone();
            if seen.iter().any(|(i, _)| *i != i0) {
                return None;
            }
            for (k, (_, h)) in seen.iter().enumerate() {
                assert_eq!(h, &h0, "L6: node {} applied_hash differs from node {} at index {i0}", ids[k], ids[0]);
            }
            Some(i0)
        })
        .await
    }

    /// Dumps the tail of every node log to stderr.
    pub fn dump_logs(&self, lines: usize) {
        for n in &self.lc.nodes {
            let Ok(text) = std::fs::read_to_string(&n.log_path) else { continue };
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            eprintln!("----- node {} log ({}), last {} lines -----", n.id, n.log_path.display(), all.len() - from);
            for l in &all[from..] {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs(40);
            if let Some(d) = self.dir.take() {
                eprintln!("[{}] keeping test data in {}", self.name, d.keep().display());
            }
        }
    }
}

/// Opens `accounts` in `currency` (retrying through any node) and returns their ids.
pub async fn open_accounts(nodes: &[Http], accounts: &[&str], currency: &str) {
    for (i, a) in accounts.iter().enumerate() {
        let r = write_ok(nodes, i, "/v1/accounts", &json!({"id": a, "currency": currency})).await;
        assert!(r.status == 201 || r.status == 200, "open {a}: {} {}", r.status, r.text);
    }
}

/// Deposits `amount` into `account` with id `id` (retrying through any node).
pub async fn deposit(nodes: &[Http], id: &str, account: &str, amount: i64) -> Resp {
    write_ok(nodes, 0, "/v1/deposits", &json!({"id": id, "account": account, "amount": amount})).await
}

/// `GET /v1/balances?accounts=..` on one node: (index, balances).
pub async fn balances(node: &Http, accounts: &[&str], query: &str) -> (u64, BTreeMap<String, i64>) {
    let r = node.must_get(&format!("/v1/balances?accounts={}{query}", accounts.join(","))).await;
    assert_eq!(r.status, 200, "balances on {}: {}", node.base, r.text);
    let idx = r.body["index"].as_u64().expect("balances index");
    assert_eq!(r.index, Some(idx), "X-Ledger-Index of /v1/balances equals its body index");
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

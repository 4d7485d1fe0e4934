//! A small typed HTTP client for the node API, used by the demo, the benchmark and tests.

use serde_json::{json, Value};
use std::time::Duration;

/// Per-request deadline: a request that takes longer has an unknown outcome (retry with the
/// same id).
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Connect timeout: a node that does not accept within it is down for this client.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;

/// Response of a command: HTTP status, `X-Ledger-Index`, JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `X-Ledger-Index`, when present.
    pub index: Option<u64>,
    /// Body.
    pub body: Value,
}

impl Reply {
    /// 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error code of a non-2xx reply.
    pub fn error_code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// Client for one node's API.
#[derive(Clone)]
pub struct LedgerClient {
    base: String,
    http: reqwest::Client,
}

impl LedgerClient {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Self {
        Self::with_tls(base, None)
    }

    /// A client for `base`; with `tls` (e.g. `https://127.0.0.1:8080` and a config trusting
    /// the cluster CA, see [`netserve::client_config`]) it speaks TLS with that config.
    pub fn with_tls(base: &str, tls: Option<&netserve::rustls::ClientConfig>) -> Self {
        let mut b = reqwest::Client::builder();
        if let Some(t) = tls {
            b = b.use_preconfigured_tls(t.clone());
        }
        let http = b
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// Base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn reply(r: reqwest::Response) -> Result<Reply, reqwest::Error> {
        let status = r.status().as_u16();
        let index = r
            .headers()
            .get("x-ledger-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = r.json().await.unwrap_or(Value::Null);
        Ok(Reply {
            status,
            index,
            body,
        })
    }

    /// POSTs JSON to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply, reqwest::Error> {
        Self::reply(
            self.http
                .post(format!("{}{path}", self.base))
                .json(body)
                .send()
                .await?,
        )
        .await
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> Result<Reply, reqwest::Error> {
        Self::reply(self.http.get(format!("{}{path}", self.base)).send().await?).await
    }

    /// Opens an account.
    pub async fn open_account(
        &self,
        id: &str,
        currency: &str,
        overdraft: i64,
    ) -> Result<Reply, reqwest::Error> {
        self.post(
            "/v1/accounts",
            &json!({"id": id, "currency": currency, "overdraft_limit": overdraft}),
        )
        .await
    }

    /// Deposits.
    pub async fn deposit(
        &self,
        id: &str,
        account: &str,
        amount: i64,
    ) -> Result<Reply, reqwest::Error> {
        self.post(
            "/v1/deposits",
            &json!({"id": id, "account": account, "amount": amount}),
        )
        .await
    }

    /// Transfers.
    pub async fn transfer(
        &self,
        id: &str,
        from: &str,
        to: &str,
        amount: i64,
    ) -> Result<Reply, reqwest::Error> {
        self.post(
            "/v1/transfers",
            &json!({"id": id, "from": from, "to": to, "amount": amount}),
        )
        .await
    }

    /// `GET /cluster/status` body.
    pub async fn status(&self) -> Result<Value, reqwest::Error> {
        Ok(self.get("/cluster/status").await?.body)
    }

    /// True when `/readyz` answers 200.
    pub async fn ready(&self) -> bool {
        matches!(self.get("/readyz").await, Ok(r) if r.status == 200)
    }
}

//! The benchmark's HTTP client: one shared connection pool, a per-request timeout (the failover
//! phase needs ~300 ms, `LedgerClient` has a fixed 5 s), and lean reply decoding so the client
//! spends as little of the two shared cores as possible.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Idle connections kept per node: at least the largest client count we run, so closed-loop
/// clients never reconnect between requests.
const IDLE_CONNECTIONS_PER_NODE_MAX: usize = 512;

/// Status and `X-Ledger-Index` of a reply whose body was read but not decoded.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// HTTP status code.
    pub status: u16,
    /// `X-Ledger-Index`, when present.
    pub index: Option<u64>,
}

impl Head {
    /// 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A decoded reply of `POST /v1/batches`.
#[derive(Debug, Clone, Default)]
pub struct BatchReply {
    /// HTTP status code.
    pub status: u16,
    /// `X-Ledger-Index`: the log index the batch committed at.
    pub index: Option<u64>,
    /// Inner commands accepted.
    pub ok: u64,
    /// Inner commands rejected by the ledger.
    pub rejected: u64,
    /// Code of the first inner rejection, or of the whole request's error.
    pub error_code: Option<String>,
    /// Leader stamp of the batch, µs since the epoch.
    pub timestamp_us: Option<u64>,
}

impl BatchReply {
    /// 2xx.
    pub fn ok_status(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Deserialize, Default)]
struct BatchBody {
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    results: Vec<ItemResult>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ItemResult {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
}

/// One command inside a batch request (the wire shape of `POST /v1/batches`).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item<'a> {
    /// Open a USD account (the command id is the account id).
    Account {
        /// Account id.
        id: &'a str,
        /// Currency code.
        currency: &'a str,
    },
    /// Deposit from the currency's system account.
    Deposit {
        /// Command id.
        id: String,
        /// Credited account.
        account: &'a str,
        /// Minor units.
        amount: i64,
    },
    /// Transfer between two accounts.
    Transfer {
        /// Command id.
        id: String,
        /// Debited account.
        from: &'a str,
        /// Credited account.
        to: &'a str,
        /// Minor units.
        amount: i64,
    },
}

/// Body of `POST /v1/batches`.
#[derive(Debug, Serialize)]
pub struct Batch<'a> {
    /// All-or-nothing.
    pub atomic: bool,
    /// The commands.
    pub commands: Vec<Item<'a>>,
}

/// Body of `POST /v1/transfers`.
#[derive(Debug, Serialize)]
pub struct TransferReq<'a> {
    /// Command id (idempotency key).
    pub id: &'a str,
    /// Debited account.
    pub from: &'a str,
    /// Credited account.
    pub to: &'a str,
    /// Minor units.
    pub amount: i64,
}

/// Shared HTTP client (cheap to clone).
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

fn ledger_index(r: &reqwest::Response) -> Option<u64> {
    r.headers()
        .get("x-ledger-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

impl Http {
    /// A client without a global timeout (each request sets its own).
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_NODE_MAX)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { client })
    }

    /// POSTs `body` as JSON; reads the reply body without decoding it.
    pub async fn post_head<T: Serialize + ?Sized>(
        &self,
        url: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<Head, reqwest::Error> {
        let (head, _, _) = self.post_reply(url, body, timeout).await?;
        Ok(head)
    }

    /// POSTs `body` as JSON; returns the head, whether the reply says `Idempotent-Replayed:
    /// true`, and the raw reply body.
    pub async fn post_reply<T: Serialize + ?Sized>(
        &self,
        url: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<(Head, bool, bytes::Bytes), reqwest::Error> {
        let r = self
            .client
            .post(url)
            .json(body)
            .timeout(timeout)
            .send()
            .await?;
        let head = Head {
            status: r.status().as_u16(),
            index: ledger_index(&r),
        };
        let replayed = r
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v.as_bytes() == b"true");
        Ok((head, replayed, r.bytes().await?))
    }

    /// POSTs a batch and counts its per-command results.
    pub async fn post_batch(
        &self,
        url: &str,
        body: &Batch<'_>,
        timeout: Duration,
    ) -> Result<BatchReply, reqwest::Error> {
        let r = self
            .client
            .post(url)
            .json(body)
            .timeout(timeout)
            .send()
            .await?;
        let (status, index) = (r.status().as_u16(), ledger_index(&r));
        let bytes = r.bytes().await?;
        let parsed: BatchBody = serde_json::from_slice(&bytes).unwrap_or_default();
        let ok = parsed.results.iter().filter(|x| x.ok).count() as u64;
        let first_rejection = parsed
            .results
            .iter()
            .find_map(|x| x.error.as_ref().map(|e| e.code.clone()));
        Ok(BatchReply {
            status,
            index,
            ok,
            rejected: parsed.results.len() as u64 - ok,
            error_code: first_rejection.or(parsed.error.map(|e| e.code)),
            timestamp_us: parsed
                .timestamp
                .and_then(|t| crate::api::render::parse_rfc3339_us(&t).ok()),
        })
    }

    /// GETs `url` and decodes the JSON body (`Null` when it is not JSON).
    pub async fn get_json(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<(Head, serde_json::Value), reqwest::Error> {
        let r = self.client.get(url).timeout(timeout).send().await?;
        let head = Head {
            status: r.status().as_u16(),
            index: ledger_index(&r),
        };
        let bytes = r.bytes().await?;
        Ok((
            head,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// `GET {base}/cluster/status` body, or `None` when the node does not answer 2xx.
    pub async fn status(&self, base: &str) -> Option<serde_json::Value> {
        match self
            .get_json(&format!("{base}/cluster/status"), Duration::from_secs(2))
            .await
        {
            Ok((h, v)) if h.ok() => Some(v),
            _ => None,
        }
    }
}

/// Short, stable name of a failed request, for error tallies.
pub fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "transport"
    }
}

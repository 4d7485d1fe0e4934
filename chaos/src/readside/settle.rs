//! After healing (nodes converged, no writes running): wait until the read model's checkpoint
//! reaches the nodes' last event seq with no lag behind the stream head, at most until the
//! lag bound has passed since the heal phase began; then observe what L7 compares — `/admin/projections`, every checked account's
//! balance, version and full posting history from the read model, and the same accounts on
//! the nodes (linearizable reads through the leader).

use super::api::{self, LagSample};
use crate::cluster::Cluster;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Pause between catch-up polls.
const POLL_MS: u64 = 100;
/// Timeout of one read during the observation.
const READ_TIMEOUT_MS: u64 = 10_000;
/// History page size (the read model's maximum).
const HISTORY_PAGE_ROWS: usize = 1_000;
/// Most history pages read per account (bounds the observation; past it L7 says unknown).
const HISTORY_PAGES_MAX: usize = 200;
/// Attempts of one observation read that got no answer or a 5xx (a pool connection that died
/// with a restarted server is replaced on the next try).
const READ_ATTEMPTS: usize = 3;
/// Pause between those attempts.
const RETRY_PAUSE_MS: u64 = 200;

/// One account as the read model shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RmAccount {
    /// Status of `GET /v1/accounts/{id}` (0: no answer).
    pub status: u16,
    /// Its `X-Read-Model-Seq`.
    pub seq: Option<u64>,
    /// Balance.
    pub balance: Option<i64>,
    /// Version (postings applied).
    pub version: Option<i64>,
    /// `(seq, balance_after)` of every posting the history route lists, in order.
    pub history: Vec<(u64, i64)>,
    /// The history was read to its end.
    pub history_complete: bool,
}

/// One account as the nodes show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NodeAccount {
    /// Balance.
    pub balance: i64,
    /// Version.
    pub version: i64,
}

/// What L7 compares.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observation {
    /// `/admin/projections` at the start of the observation.
    pub projections: LagSample,
    /// Read-model view per account.
    pub accounts: BTreeMap<String, RmAccount>,
    /// Node view per account (None: 404 on the node); absent when the node read failed.
    pub node_accounts: BTreeMap<String, Option<NodeAccount>>,
}

/// The heal phase of the read side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Settle {
    /// The nodes' last event seq after convergence.
    pub target_seq: Option<u64>,
    /// ms after the heal phase began until checkpoint >= target with zero lag (None: not
    /// within the bound).
    pub caught_up_ms: Option<u64>,
    /// The bound waited for.
    pub bound_ms: u64,
    /// Lag samples during the wait.
    pub samples: Vec<LagSample>,
    /// The observation (taken whether or not it caught up).
    pub obs: Observation,
}

/// Waits for the catch-up (until `bound_ms` after `healing`, when the heal phase began), then
/// observes `accounts`; `started` is time zero of the samples.
pub async fn settle(
    cluster: &Cluster,
    base: &str,
    accounts: &[String],
    bound_ms: u64,
    (started, healing): (Instant, Instant),
) -> Settle {
    let http = reqwest::Client::new();
    let statuses = cluster.statuses().await;
    let target_seq = statuses
        .values()
        .filter_map(|s| s["last_event_seq"].as_u64())
        .max();
    let mut out = Settle {
        target_seq,
        bound_ms,
        ..Settle::default()
    };
    let t0 = healing;
    while let Some(target) = target_seq {
        let t_us = started.elapsed().as_micros() as u64;
        let s = api::projections(&http, base, t_us, READ_TIMEOUT_MS.min(bound_ms.max(1))).await;
        let done = s.checkpoint.is_some_and(|c| c >= target) && s.events == Some(0);
        out.samples.push(s);
        if done {
            out.caught_up_ms = Some(t0.elapsed().as_millis() as u64);
            break;
        }
        if t0.elapsed() >= Duration::from_millis(bound_ms) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    let t_us = started.elapsed().as_micros() as u64;
    out.obs.projections = api::projections(&http, base, t_us, READ_TIMEOUT_MS).await;
    let leader = cluster.leader().await;
    for a in accounts {
        out.obs
            .accounts
            .insert(a.clone(), read_model_account(&http, base, a).await);
        let node = leader.and_then(|l| cluster.apis.get(&l));
        if let Some(n) = node_account(&http, node, a).await {
            out.obs.node_accounts.insert(a.clone(), n);
        }
    }
    out
}

/// GET with a few retries while there is no answer or a 5xx.
async fn get_settled(http: &reqwest::Client, url: &str) -> api::Reply {
    let mut r = api::get(http, url, READ_TIMEOUT_MS).await;
    for _ in 1..READ_ATTEMPTS {
        if r.status != 0 && r.status < 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
        r = api::get(http, url, READ_TIMEOUT_MS).await;
    }
    r
}

async fn read_model_account(http: &reqwest::Client, base: &str, a: &str) -> RmAccount {
    let r = get_settled(http, &format!("{base}/v1/accounts/{a}")).await;
    let mut acc = RmAccount {
        status: r.status,
        seq: r.seq,
        balance: r.body["balance"].as_i64(),
        version: r.body["version"].as_i64(),
        ..RmAccount::default()
    };
    if r.status != 200 {
        return acc;
    }
    let mut cursor = String::new();
    for _ in 0..HISTORY_PAGES_MAX {
        let url =
            format!("{base}/v1/accounts/{a}/history?limit={HISTORY_PAGE_ROWS}&cursor={cursor}");
        let page = get_settled(http, &url).await;
        if page.status != 200 {
            return acc;
        }
        for p in page.body["postings"].as_array().into_iter().flatten() {
            if let (Some(s), Some(b)) = (p["seq"].as_u64(), p["balance_after"].as_i64()) {
                acc.history.push((s, b));
            }
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => {
                acc.history_complete = true;
                return acc;
            }
        }
    }
    acc
}

/// `Some(None)`: the node says 404; `None`: no definite answer.
async fn node_account(
    http: &reqwest::Client,
    api: Option<&String>,
    a: &str,
) -> Option<Option<NodeAccount>> {
    let r = get_settled(http, &format!("{}/v1/accounts/{a}", api?)).await;
    match r.status {
        404 => Some(None),
        200 => Some(Some(NodeAccount {
            balance: r.body["balance"].as_i64()?,
            version: r.body["version"].as_i64()?,
        })),
        _ => None,
    }
}

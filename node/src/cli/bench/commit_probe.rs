//! Commit latency while a snapshot is being built, against the same without one (growth
//! phase): a few clients send single transfers to the leader back to back, first for a fixed
//! time, then for as long as the leader builds a snapshot it was asked for. The bar: p99 during
//! the build ≤ 2 × p99 without. It measures what the snapshot costs apply: the capture on the
//! state-machine task (an O(1) clone of the ledger's persistent maps) and the build beside it.

use super::ctx::Ctx;
use super::http::{error_kind, TransferReq};
use super::snapshot::snapshot_node;
use super::stats::{Errors, Lat, LatSummary};
use super::timetravel::{self, Loaded};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Clients sending transfers at once: few, so latency measures the commit, not queueing.
const PROBE_CLIENTS: usize = 4;
/// How long the baseline (no snapshot) runs.
const BASELINE: Duration = Duration::from_secs(5);
/// Timeout of one transfer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Commit latency without and during a snapshot build, and that build's `snapshot_build`.
pub struct Probe {
    /// Without a snapshot being built.
    pub without: LatSummary,
    /// While the leader builds a snapshot.
    pub during: LatSummary,
    /// Failed transfers in either half.
    pub errors: Errors,
    /// The leader's `snapshot_build` of the build measured.
    pub build: Value,
}

/// What the probe's clients share.
struct Senders<'a> {
    ctx: &'a Ctx,
    /// `POST /v1/transfers` of the leader.
    url: String,
    from: &'a str,
    to: &'a str,
    tag: &'a str,
    next: AtomicU64,
    errors: Mutex<Errors>,
}

impl Senders<'_> {
    /// [`PROBE_CLIENTS`] clients sending transfers until `stop`, latencies into `lat`.
    async fn until(&self, stop: &AtomicBool, lat: &Mutex<Lat>) {
        futures::future::join_all((0..PROBE_CLIENTS).map(|_| self.client(stop, lat))).await;
    }

    async fn client(&self, stop: &AtomicBool, lat: &Mutex<Lat>) {
        while !stop.load(Ordering::Relaxed) {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let id = format!("probe-{}-{n}", self.tag);
            let body = TransferReq {
                id: &id,
                from: self.from,
                to: self.to,
                amount: 1,
            };
            let t = Instant::now();
            match self
                .ctx
                .http
                .post_reply(&self.url, &body, REQUEST_TIMEOUT)
                .await
            {
                Ok((h, _, _)) if h.status == 201 => lock(lat).record(t.elapsed()),
                Ok((h, _, _)) => lock(&self.errors).add(format!("{}", h.status)),
                Err(e) => lock(&self.errors).add(error_kind(&e)),
            }
        }
    }
}

/// Runs both halves; `tag` keeps transfer ids unique across steps.
pub async fn run(ctx: &Ctx, l: &Loaded, tag: &str) -> anyhow::Result<Probe> {
    let first = timetravel::first_transfer(l)?;
    let (leader, url) = ctx.leader().await?;
    let senders = Senders {
        ctx,
        url: format!("{url}/v1/transfers"),
        from: first.from,
        to: first.to,
        tag,
        next: AtomicU64::new(0),
        errors: Mutex::new(Errors::default()),
    };

    let (stop, without) = (AtomicBool::new(false), Mutex::new(Lat::new()));
    let timer = async {
        tokio::time::sleep(BASELINE).await;
        stop.store(true, Ordering::Relaxed);
    };
    futures::join!(senders.until(&stop, &without), timer);

    let (stop, during) = (AtomicBool::new(false), Mutex::new(Lat::new()));
    let build = async {
        let b = snapshot_node(ctx, leader).await;
        stop.store(true, Ordering::Relaxed);
        b
    };
    let (_, build) = futures::join!(senders.until(&stop, &during), build);
    let without = lock(&without).summary();
    let during = lock(&during).summary();
    let errors = lock(&senders.errors).clone();
    Ok(Probe {
        without,
        during,
        errors,
        build: build?,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

//! Commit latency while a snapshot is being built, against the same without one (growth
//! phase): a few clients send single transfers to the leader back to back, first for a fixed
//! time, then while the leader builds snapshots it is asked for, one after another (paused in
//! between) until enough commits overlapped a build. The bar: p99 during
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
/// Commits to measure during builds: the leader builds snapshots one after another until this
/// many commits landed during them (a build that moves little history takes tens of ms, and
/// the p99 of a few dozen commits is their maximum).
const DURING_COMMITS_MIN: u64 = 1_000;
/// Builds at most, however few commits landed during them.
const BUILDS_MAX: usize = 20;
/// Pause between builds (a request made while openraft still winds up the last build is
/// dropped, and the bench would wait for its retry).
const BUILD_PAUSE: Duration = Duration::from_millis(500);
/// How late the bench may see a build's end: the status poll interval and its round trip. A
/// build's window is its node-measured time ending when the bench saw it end; only commits
/// that overlap a window count as during a build.
const STATUS_POLL_SLACK: Duration = Duration::from_millis(60);

/// Commit latency without and during a snapshot build, and that build's `snapshot_build`.
pub struct Probe {
    /// Without a snapshot being built.
    pub without: LatSummary,
    /// While the leader builds a snapshot.
    pub during: LatSummary,
    /// Failed transfers in either half.
    pub errors: Errors,
    /// The leader's `snapshot_build` of each build measured.
    pub builds: Vec<Value>,
}

impl Probe {
    /// Wall time of the builds measured, summed.
    pub fn build_ms(&self) -> u64 {
        self.builds
            .iter()
            .map(|b| b["build_ms"].as_u64().unwrap_or(0))
            .sum()
    }
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
    /// [`PROBE_CLIENTS`] clients sending transfers until `stop`; each commit's start and
    /// latency into `lat`.
    async fn until(&self, stop: &AtomicBool, lat: &Samples) {
        futures::future::join_all((0..PROBE_CLIENTS).map(|_| self.client(stop, lat))).await;
    }

    async fn client(&self, stop: &AtomicBool, lat: &Samples) {
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
                Ok((h, _, _)) if h.status == 201 => lock(lat).push((t, t.elapsed())),
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

    let (stop, without) = (AtomicBool::new(false), Samples::default());
    let timer = async {
        tokio::time::sleep(BASELINE).await;
        stop.store(true, Ordering::Relaxed);
    };
    futures::join!(senders.until(&stop, &without), timer);
    let without = latencies(&lock(&without), None).summary();

    let (stop, sent) = (AtomicBool::new(false), Samples::default());
    let builds = async {
        let (mut builds, mut windows) = (Vec::new(), Vec::new());
        let outcome = loop {
            if !builds.is_empty() {
                tokio::time::sleep(BUILD_PAUSE).await;
            }
            let asked = Instant::now();
            let build = match snapshot_node(ctx, leader).await {
                Ok(b) => b,
                Err(e) => break Err(e),
            };
            let seen = Instant::now();
            let took = Duration::from_millis(build["build_ms"].as_u64().unwrap_or(0));
            let from = seen.checked_sub(took + STATUS_POLL_SLACK).unwrap_or(asked);
            windows.push((from.max(asked), seen));
            builds.push(build);
            let measured = latencies(&lock(&sent), Some(&windows)).count();
            if measured >= DURING_COMMITS_MIN || builds.len() >= BUILDS_MAX {
                break Ok(());
            }
        };
        stop.store(true, Ordering::Relaxed);
        outcome.map(|()| (builds, windows))
    };
    let (_, builds) = futures::join!(senders.until(&stop, &sent), builds);
    let (builds, windows) = builds?;
    let during = latencies(&lock(&sent), Some(&windows)).summary();
    let errors = lock(&senders.errors).clone();
    Ok(Probe {
        without,
        during,
        errors,
        builds,
    })
}

/// Each commit the probe's clients made: when it started, and how long it took.
type Samples = Mutex<Vec<(Instant, Duration)>>;

/// The latencies of the commits in `samples` (`windows`: only those that overlap one).
fn latencies(samples: &[(Instant, Duration)], windows: Option<&[(Instant, Instant)]>) -> Lat {
    let mut lat = Lat::new();
    for &(start, took) in samples {
        let overlaps = |&(from, to): &(Instant, Instant)| start <= to && start + took >= from;
        if windows.is_none_or(|w| w.iter().any(overlaps)) {
            lat.record(took);
        }
    }
    lat
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

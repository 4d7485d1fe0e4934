//! During the run: (a) read-your-writes reads — after a transfer was acknowledged with
//! `last_event_seq = N`, `GET /v1/accounts/{from|to}?min_seq=N` on the read model (checked by
//! `check::ryw` against the replay at the `X-Read-Model-Seq` the answer reports); (b) lag
//! samples from `/admin/projections`, with the nodes' last event seq beside them, for the
//! report and the checker notes.

use super::api::{self, LagSample};
use crate::workload::Workload;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Pause between read-your-writes reads.
const RYW_INTERVAL_MS: u64 = 150;
/// Pause between lag samples.
const LAG_INTERVAL_MS: u64 = 500;
/// Timeout of one read: the read model waits up to 1 s for `min_seq`, then answers 503.
const READ_TIMEOUT_MS: u64 = 3_000;
/// Timeout of one node status read (a paused node must not stall the sample).
const STATUS_TIMEOUT_MS: u64 = 300;

/// One read-your-writes read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RywSample {
    /// Invoked at, µs since the workload started (after the write was acknowledged).
    pub t_us: u64,
    /// Completed at.
    pub done_us: u64,
    /// Account read.
    pub account: String,
    /// `min_seq` asked: the acknowledged write's `last_event_seq`.
    pub min_seq: u64,
    /// HTTP status (0: no answer).
    pub status: u16,
    /// `X-Read-Model-Seq` of the answer.
    pub rm_seq: Option<u64>,
    /// Balance returned.
    pub balance: Option<i64>,
    /// Error code or transport error.
    pub error: Option<String>,
}

/// Everything the probe saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Samples {
    /// Read-your-writes reads.
    pub ryw: Vec<RywSample>,
    /// Lag samples.
    pub lag: Vec<LagSample>,
}

/// Probes the read model at `base` (and the nodes' last event seq) until `stop`.
pub fn spawn(
    base: String,
    nodes: &[(u64, String)],
    workload: Arc<Workload>,
    started: Instant,
    stop: watch::Receiver<bool>,
) -> (Arc<Mutex<Samples>>, tokio::task::JoinHandle<()>) {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let http = reqwest::Client::new();
    let (s1, s2) = (samples.clone(), samples.clone());
    let (h1, b1, mut stop1) = (http.clone(), base.clone(), stop.clone());
    let ryw = async move {
        let mut flip = false;
        while !*stop1.borrow() {
            if let Some(ack) = workload.latest_ack() {
                flip = !flip;
                let account = if flip { ack.from } else { ack.to };
                let t_us = started.elapsed().as_micros() as u64;
                let url = format!("{b1}/v1/accounts/{account}?min_seq={}", ack.last_event_seq);
                let r = api::get(&h1, &url, READ_TIMEOUT_MS).await;
                let s = RywSample {
                    t_us,
                    done_us: started.elapsed().as_micros() as u64,
                    account,
                    min_seq: ack.last_event_seq,
                    status: r.status,
                    rm_seq: r.seq,
                    balance: r.body["balance"].as_i64(),
                    error: r
                        .error
                        .or_else(|| r.body["error"]["code"].as_str().map(str::to_owned)),
                };
                if let Ok(mut v) = s1.lock() {
                    v.ryw.push(s);
                }
            }
            pause(&mut stop1, RYW_INTERVAL_MS).await;
        }
    };
    let mut stop2 = stop;
    let apis: Vec<String> = nodes.iter().map(|(_, u)| u.clone()).collect();
    let lag = async move {
        while !*stop2.borrow() {
            let t_us = started.elapsed().as_micros() as u64;
            let log_seq = log_seq(&http, &apis).await;
            let mut s = api::projections(&http, &base, t_us, READ_TIMEOUT_MS).await;
            s.log_seq = log_seq;
            if let Ok(mut v) = s2.lock() {
                v.lag.push(s);
            }
            pause(&mut stop2, LAG_INTERVAL_MS).await;
        }
    };
    let task = tokio::spawn(async move {
        futures::future::join(ryw, lag).await;
    });
    (samples, task)
}

/// The highest `last_event_seq` any node reports.
async fn log_seq(http: &reqwest::Client, apis: &[String]) -> Option<u64> {
    let reads = apis.iter().map(|a| async move {
        let r = api::get(http, &format!("{a}/cluster/status"), STATUS_TIMEOUT_MS).await;
        r.body["last_event_seq"].as_u64()
    });
    futures::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .max()
}

async fn pause(stop: &mut watch::Receiver<bool>, ms: u64) {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
        _ = stop.changed() => {}
    }
}

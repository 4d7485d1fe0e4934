//! Samples every node's `/cluster/status` (role, term, leader, applied, snapshot) while the drill
//! runs, for the report's leader/term track, the progress line and the compaction evidence.

use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Interval between sampling rounds.
const SAMPLE_INTERVAL_MS: u64 = 250;
/// Per-request timeout: a paused node must not stall the round.
const STATUS_TIMEOUT_MS: u64 = 300;

/// One node's status at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// µs since the workload started.
    pub t_us: u64,
    /// Node id.
    pub node: u64,
    /// Role, or `down` when it did not answer.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Leader it believes in.
    pub leader: Option<u64>,
    /// Applied index.
    pub applied: u64,
    /// Index of the node's current snapshot, if it has one.
    pub snapshot: Option<u64>,
}

/// Samples until `stop`; returns the shared sample list.
pub fn spawn(
    nodes: Vec<(u64, String)>,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) -> (Arc<Mutex<Vec<Sample>>>, tokio::task::JoinHandle<()>) {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let out = samples.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(STATUS_TIMEOUT_MS))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let task = tokio::spawn(async move {
        loop {
            let round = nodes.iter().map(|(id, url)| {
                let http = http.clone();
                async move {
                    let v: Option<serde_json::Value> =
                        match http.get(format!("{url}/cluster/status")).send().await {
                            Ok(r) => r.json().await.ok(),
                            Err(_) => None,
                        };
                    let t_us = started.elapsed().as_micros() as u64;
                    match v {
                        Some(v) => Sample {
                            t_us,
                            node: *id,
                            role: v["role"].as_str().unwrap_or("?").to_owned(),
                            term: v["term"].as_u64().unwrap_or(0),
                            leader: v["leader"].as_u64(),
                            applied: v["applied"].as_u64().unwrap_or(0),
                            snapshot: v["snapshot"].as_u64(),
                        },
                        None => Sample {
                            t_us,
                            node: *id,
                            role: "down".into(),
                            term: 0,
                            leader: None,
                            applied: 0,
                            snapshot: None,
                        },
                    }
                }
            });
            let got = futures::future::join_all(round).await;
            if let Ok(mut s) = out.lock() {
                s.extend(got);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(SAMPLE_INTERVAL_MS)) => {}
                _ = stop.changed() => return,
            }
        }
    });
    (samples, task)
}

//! Relay lag gauges, sampled on an interval: `raftledger_relay_lag_events` (committed events
//! not yet acknowledged by JetStream) and `raftledger_relay_lag_seconds` (age, in leader time,
//! of the oldest such event). Only the leader relays; followers report 0.

use crate::raft_types::Raft;
use crate::sm::LedgerReader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the gauges are refreshed.
const SAMPLE_INTERVAL_MS: u64 = 500;

/// Samples until `stop`.
pub fn spawn_sampler(
    raft: Raft,
    reader: LedgerReader,
    relayed_seq: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(SAMPLE_INTERVAL_MS));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let (events, seconds) = if raft.is_leader() {
                sample(&reader, relayed_seq.load(Ordering::Relaxed))
            } else {
                (0, 0.0)
            };
            metrics::gauge!("raftledger_relay_lag_events").set(events as f64);
            metrics::gauge!("raftledger_relay_lag_seconds").set(seconds);
            metrics::gauge!("raftledger_relay_relayed_seq")
                .set(relayed_seq.load(Ordering::Relaxed) as f64);
        }
    });
}

/// (events behind, age in seconds of the oldest unrelayed event).
fn sample(reader: &LedgerReader, relayed: u64) -> (u64, f64) {
    let behind = reader.last_event_seq().saturating_sub(relayed);
    if behind == 0 {
        return (0, 0.0);
    }
    let oldest_us = match reader.events_from(relayed + 1, 1) {
        Ok(v) => v.first().map(|e| e.timestamp_us),
        Err(_) => None,
    };
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let age_s = oldest_us.map_or(0.0, |ts| now_us.saturating_sub(ts) as f64 / 1e6);
    (behind, age_s)
}

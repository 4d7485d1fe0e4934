//! Projection lag: the stream head (JetStream's last sequence) against the checkpoint, in
//! events and in milliseconds (age of the oldest unprojected message). Sampled into gauges
//! and served by `GET /admin/projections`.

use crate::manager::Manager;
use crate::projector::STREAM_NAME;
use serde::Serialize;
use std::time::Duration;

/// Bound on the JetStream calls of one measurement.
const MEASURE_TIMEOUT_MS: u64 = 1_000;
/// How often the gauges are refreshed.
const SAMPLE_INTERVAL_MS: u64 = 1_000;

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Lag {
    /// Stream head, if JetStream answered.
    pub head: Option<u64>,
    /// Events behind the head.
    pub events: Option<u64>,
    /// Age of the oldest unprojected event, ms.
    pub ms: Option<u64>,
}

/// Measures lag for a projection at `checkpoint`.
pub async fn measure(js: &async_nats::jetstream::Context, checkpoint: u64) -> Lag {
    let timeout = Duration::from_millis(MEASURE_TIMEOUT_MS);
    let probe = async {
        let stream = js.get_stream(STREAM_NAME).await.ok()?;
        let head = stream.get_info().await.ok()?.state.last_sequence;
        let ms = if head > checkpoint {
            let m = stream.get_raw_message(checkpoint + 1).await.ok()?;
            let age = time::OffsetDateTime::now_utc() - m.time;
            age.whole_milliseconds().max(0) as u64
        } else {
            0
        };
        Some((head, ms))
    };
    match tokio::time::timeout(timeout, probe).await {
        Ok(Some((head, ms))) => Lag {
            head: Some(head),
            events: Some(head.saturating_sub(checkpoint)),
            ms: Some(ms),
        },
        _ => Lag {
            head: None,
            events: None,
            ms: None,
        },
    }
}

/// Samples lag gauges for the life of the process.
pub fn spawn_sampler(js: async_nats::jetstream::Context, manager: Manager) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(SAMPLE_INTERVAL_MS));
        loop {
            tick.tick().await;
            let checkpoint = *manager.watermark.borrow();
            let lag = measure(&js, checkpoint).await;
            if let (Some(events), Some(ms)) = (lag.events, lag.ms) {
                metrics::gauge!("raftledger_readmodel_lag_events").set(events as f64);
                metrics::gauge!("raftledger_readmodel_lag_seconds").set(ms as f64 / 1000.0);
            }
            metrics::gauge!("raftledger_readmodel_watermark_seq").set(checkpoint as f64);
        }
    });
}

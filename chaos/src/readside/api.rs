//! Read-model HTTP reads as the checkers need them: every answer's status, its
//! `X-Read-Model-Seq` (the event seq the answer reflects) and body, and `/admin/projections`
//! condensed into one lag sample.

use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// One read-model answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status; 0 when there was no answer (refused, timed out).
    pub status: u16,
    /// `X-Read-Model-Seq`.
    pub seq: Option<u64>,
    /// JSON body (Null when none).
    pub body: Value,
    /// Transport error, when there was no answer.
    pub error: Option<String>,
}

/// GETs `url` with `timeout_ms`.
pub async fn get(http: &reqwest::Client, url: &str, timeout_ms: u64) -> Reply {
    match http
        .get(url)
        .timeout(Duration::from_millis(timeout_ms))
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            let seq = r
                .headers()
                .get("x-read-model-seq")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            Reply {
                status,
                seq,
                body: r.json().await.unwrap_or(Value::Null),
                error: None,
            }
        }
        Err(e) => Reply {
            status: 0,
            seq: None,
            body: Value::Null,
            error: Some(e.to_string()),
        },
    }
}

/// One reading of `GET /admin/projections`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LagSample {
    /// µs since the workload started.
    pub t_us: u64,
    /// The read model answered 200.
    pub up: bool,
    /// Active projection's checkpoint (last projected event seq).
    pub checkpoint: Option<u64>,
    /// Stream head (JetStream's last sequence), when JetStream answered.
    pub head: Option<u64>,
    /// Events behind the stream head.
    pub events: Option<u64>,
    /// Age of the oldest unprojected event, ms.
    pub ms: Option<u64>,
    /// Parked (poison) events.
    pub parked: Option<u64>,
    /// The highest `last_event_seq` any node reported at the same moment (probe samples
    /// only): `log_seq - checkpoint` is the lag behind the log, which keeps growing while
    /// NATS is down even though the stream head stands still.
    pub log_seq: Option<u64>,
}

/// Reads `/admin/projections` of the read model at `base`.
pub async fn projections(
    http: &reqwest::Client,
    base: &str,
    t_us: u64,
    timeout_ms: u64,
) -> LagSample {
    let r = get(http, &format!("{base}/admin/projections"), timeout_ms).await;
    if r.status != 200 {
        return LagSample {
            t_us,
            ..LagSample::default()
        };
    }
    let b = &r.body;
    LagSample {
        t_us,
        up: true,
        checkpoint: b["active"]["checkpoint"].as_u64(),
        head: b["stream"]["head"].as_u64(),
        events: b["lag"]["events"].as_u64(),
        ms: b["lag"]["ms"].as_u64(),
        parked: b["parked_events"].as_u64(),
        log_seq: None,
    }
}

//! Prometheus metrics: one process-wide recorder, HTTP latency histograms per route, and Raft
//! gauges (term, last log, committed, applied, per-follower lag) sampled from openraft metrics.

use crate::raft_types::Raft;
use crate::sm::LedgerReader;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Latency buckets in seconds: 100 µs .. 5 s.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// How often the Raft gauges are refreshed.
const RAFT_SAMPLE_INTERVAL_MS: u64 = 500;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Renders the process's metrics. Cheap to clone.
#[derive(Clone)]
pub struct MetricsHandle(Option<PrometheusHandle>);

impl MetricsHandle {
    /// Installs the global recorder once per process (tests may run many nodes in one process;
    /// they share it).
    pub fn install() -> Self {
        let h = HANDLE.get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_S)
                .ok()
                .and_then(|b| b.install_recorder().ok())
        });
        Self(h.clone())
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        self.0.as_ref().map(|h| h.render()).unwrap_or_default()
    }
}

/// The `method` label: one of the standard methods, else `other` (a client can send any token
/// as a method, and each distinct label value is a new time series).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::PATCH => "PATCH",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware: records `raftledger_http_request_duration_seconds{route,method,status}`. Every
/// label is bounded: `route` is the matched route template (`/v1/accounts/{id}`, never the raw
/// path) or `unmatched`, `method` is [`method_label`], `status` a status code.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::histogram!("raftledger_http_request_duration_seconds", "route" => route, "method" => method, "status" => status)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// Samples Raft metrics into gauges until the Raft stops.
pub fn spawn_raft_sampler(raft: Raft, reader: LedgerReader) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(RAFT_SAMPLE_INTERVAL_MS));
        loop {
            tick.tick().await;
            let m = crate::raft_types::metrics_of(&raft);
            if m.running_state.is_err() {
                return;
            }
            let last = m.last_log_index.unwrap_or(0);
            metrics::gauge!("raftledger_raft_term").set(m.current_term as f64);
            metrics::gauge!("raftledger_raft_last_log_index").set(last as f64);
            metrics::gauge!("raftledger_raft_committed_index")
                .set(m.local_committed.map(|l| l.index).unwrap_or(0) as f64);
            metrics::gauge!("raftledger_raft_applied_index").set(reader.applied_index() as f64);
            metrics::gauge!("raftledger_raft_is_leader").set(if raft.is_leader() {
                1.0
            } else {
                0.0
            });
            metrics::gauge!("raftledger_last_event_seq").set(reader.last_event_seq() as f64);
            if let Some(rep) = &m.replication {
                for (id, matched) in rep.iter() {
                    let matched = matched.as_ref().map(|l| l.index).unwrap_or(0);
                    metrics::gauge!("raftledger_raft_follower_lag_entries", "follower" => id.to_string())
                        .set(last.saturating_sub(matched) as f64);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::POST), "POST");
        let odd = Method::from_bytes(b"FROBNICATE").expect("extension method");
        assert_eq!(method_label(&odd), "other");
    }
}

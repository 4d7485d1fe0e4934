//! Prometheus: one process-wide recorder and its text exposition for `GET /metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Buckets in seconds for latency histograms: 1 ms .. 10 s.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Renders the process's metrics.
#[derive(Clone)]
pub struct MetricsHandle(Option<PrometheusHandle>);

impl MetricsHandle {
    /// Installs the recorder once per process (tests may start several read models in one).
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

//! Load shedding on the client API. Requests handled at once are bounded
//! (`--api-concurrency-max`) and so are open `/v1/events` streams (`--events-subscribers-max`);
//! beyond either bound a request is refused at once with 503 + `Retry-After` rather than
//! queued, so overload costs the client a retry instead of costing the node memory. Health,
//! readiness, status and metrics are never shed: operators and orchestrators must see an
//! overloaded node as alive.

use super::error::ApiError;
use super::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Routes that are never shed (cheap, and needed to observe an overloaded node).
const NEVER_SHED: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/cluster/status"];

/// The API's bounds, shared by every request.
#[derive(Clone)]
pub struct ApiLimits {
    requests: Arc<Semaphore>,
    requests_max: usize,
    subscribers: Arc<Semaphore>,
    subscribers_max: usize,
    /// Longest a client may take to send a whole request body.
    pub body_read_timeout: Duration,
}

impl ApiLimits {
    /// Limits of `requests_max` requests and `subscribers_max` event streams at once.
    pub fn new(requests_max: usize, subscribers_max: usize, body_read_timeout: Duration) -> Self {
        Self {
            requests: Arc::new(Semaphore::new(requests_max)),
            requests_max,
            subscribers: Arc::new(Semaphore::new(subscribers_max)),
            subscribers_max,
            body_read_timeout,
        }
    }

    /// A slot for one `/v1/events` stream, held for as long as the stream lives.
    pub fn subscriber(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.subscribers.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("raftledger_http_shed_total", "reason" => "subscribers").increment(1);
            ApiError::unavailable(
                "too_many_subscribers",
                format!(
                    "{} event streams are open, the most this node serves; retry later",
                    self.subscribers_max
                ),
            )
            .with_details(serde_json::json!({"events_subscribers_max": self.subscribers_max}))
        })
    }
}

/// Middleware: runs the request while holding one of `--api-concurrency-max` slots, or answers
/// 503 `overloaded` at once when none is free.
pub async fn shed_load(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if NEVER_SHED.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Ok(_slot) = s.limits.requests.clone().try_acquire_owned() else {
        metrics::counter!("raftledger_http_shed_total", "reason" => "concurrency").increment(1);
        return ApiError::unavailable(
            "overloaded",
            format!(
                "{} requests are in progress, the most this node serves; nothing was applied, \
                 retry after the Retry-After delay",
                s.limits.requests_max
            ),
        )
        .with_details(serde_json::json!({"api_concurrency_max": s.limits.requests_max}))
        .into_response();
    };
    next.run(req).await
}

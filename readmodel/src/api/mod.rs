//! The query HTTP API of the read model, in request order: query extraction, a
//! read-only snapshot transaction that also reads the checkpoint (so `X-Read-Model-Seq` names
//! exactly the seq the answer reflects), render. Routes:
//! - `accounts` — balance (with `min_seq`), history (cursor pagination), balance at T;
//! - `reports`  — daily totals;
//! - `admin`    — projections status, rebuild, parked events;
//! - `auth`     — the bearer token on `/admin/*`.

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod error;
pub mod reports;

use crate::manager::Manager;
use crate::metrics::MetricsHandle;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use error::ApiError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Response header naming the projection checkpoint an answer reflects.
pub const SEQ_HEADER: &str = "x-read-model-seq";

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    /// Connection pool for queries.
    pub pool: deadpool_postgres::Pool,
    /// Projections (active schema, watermark, rebuild).
    pub manager: Manager,
    /// JetStream, for the stream head.
    pub js: async_nats::jetstream::Context,
    /// Prometheus exposition.
    pub metrics: MetricsHandle,
    /// Token required on `/admin/*` (`None`: open; allowed on loopback or with `--insecure`).
    pub admin: Option<crate::access::AdminToken>,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/accounts/{id}", get(accounts::account))
        .route("/v1/accounts/{id}/history", get(accounts::history))
        .route("/v1/accounts/{id}/balance", get(accounts::balance_at))
        .route("/v1/reports/daily", get(reports::daily))
        .route("/admin/projections", get(admin::projections))
        .route("/admin/projections/rebuild", post(admin::rebuild))
        .route("/admin/parked", get(admin::parked))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.metrics.render() }),
        )
        .fallback(|| async { ApiError::not_found("route_not_found", "no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            seq_header,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ))
        .with_state(state)
}

/// A 200 JSON answer at checkpoint `seq`.
pub fn reply(seq: u64, body: Value) -> Response {
    let mut r = Json(body).into_response();
    r.headers_mut().insert(SEQ_HEADER, HeaderValue::from(seq));
    r
}

/// Adds `X-Read-Model-Seq` (the watermark) to answers that did not set it themselves.
async fn seq_header(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    if !r.headers().contains_key(SEQ_HEADER) {
        let seq = *s.manager.watermark.borrow();
        r.headers_mut().insert(SEQ_HEADER, HeaderValue::from(seq));
    }
    r
}

/// Query-string extractor whose rejection is the JSON 400 shape (unknown fields refused).
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        parse_query(q)
            .map(Q)
            .map_err(|e| ApiError::bad_request("invalid_query", e))
    }
}

fn parse_query<T: DeserializeOwned>(q: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(&format!("/?{q}").parse().map_err(|e| format!("{e}"))?)
        .map(|axum::extract::Query(v)| v)
        .map_err(|e| e.body_text())
}

/// Opens a read-only snapshot transaction on a pooled connection.
pub async fn snapshot(
    pool: &deadpool_postgres::Pool,
) -> Result<deadpool_postgres::Object, ApiError> {
    let c = pool.get().await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            format!("read model database unavailable: {e}"),
        )
    })?;
    Ok(c)
}

/// Makes `tx` a read-only snapshot and returns the checkpoint of `schema` in it; every query
/// on `tx` afterwards sees exactly the rows of that checkpoint.
pub async fn begin(tx: &tokio_postgres::Transaction<'_>, schema: &str) -> Result<u64, ApiError> {
    tx.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let (seq, _) = crate::store::checkpoint(tx, schema).await?;
    Ok(seq)
}

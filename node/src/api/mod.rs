//! Client HTTP API (README.md, "API by example"), in the order a request travels:
//! - `auth::gate` — `Host` check, API keys, admin authorization of `/cluster/*` mutations.
//! - `guard`    — every POST needs `Content-Type: application/json` (415): no cross-site form
//!   post can reach a command.
//! - `extract`  — body/query/header extraction with typed 400/413 errors.
//! - `fields`   — field rules of command bodies (amounts, sizes, timeout bound): 400s.
//! - `ids`      — client-chosen vs server-derived command ids (reserved prefixes, 400).
//! - `commands` — POST routes: build ledger commands, propose, render the outcome.
//! - `consistency` — read barriers: linearizable (ReadIndex), lease, stale, `min_index`.
//! - `queries`  — GET routes: accounts, balances, time travel, histories, transfers.
//! - `events`   — server-sent events from a sequence number (catch-up subscription).
//! - `cluster`  — admin: init, learners, membership, leader transfer, status, health.
//! - `render`   — JSON renderings and RFC 3339 time.
//! - `error`    — the JSON error shape.
//! - `limits`   — load shedding: concurrent requests and event streams are bounded (503).

pub mod cluster;
pub mod commands;
pub mod consistency;
pub mod error;
pub mod events;
pub mod extract;
pub mod fields;
pub mod guard;
pub mod ids;
pub mod limits;
pub mod queries;
pub mod render;

use crate::network::NetworkFactory;
use crate::proposer::Proposer;
use crate::raft_types::{NodeId, Raft};
use crate::sm::LedgerReader;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use std::sync::Arc;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// This node's id.
    pub node_id: NodeId,
    /// Local Raft.
    pub raft: Raft,
    /// Read side of the local state machine.
    pub reader: LedgerReader,
    /// Write path.
    pub proposer: Proposer,
    /// Peer connections (read-index from the leader).
    pub net: NetworkFactory,
    /// Host check, API keys and admin authorization (`auth::gate`), run before every route.
    pub client_auth: crate::auth::gate::ClientAuth,
    /// `--peer-allow`: which member URLs `/cluster/learners` and `/cluster/init` accept.
    pub peer_allow: Arc<crate::auth::member_url::PeerAllow>,
    /// Prometheus renderer.
    pub metrics: crate::metrics::MetricsHandle,
    /// HTTP client for proxying admin calls to the leader.
    pub http: reqwest::Client,
    /// This node's own addresses (used by `/cluster/init` without members).
    pub self_addr: crate::raft_types::NodeAddr,
    /// Concurrency, subscriber and body-read bounds.
    pub limits: limits::ApiLimits,
    /// `--history-in-memory-max` (reported by `/cluster/status`).
    pub history_in_memory_max: u64,
}

/// Builds the client API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/accounts", command(commands::open_account))
        .route("/v1/deposits", command(commands::deposit))
        .route("/v1/withdrawals", command(commands::withdraw))
        .route("/v1/transfers", command(commands::transfer))
        .route("/v1/transfers/{id}/post", command(commands::post_pending))
        .route("/v1/transfers/{id}/void", command(commands::void_pending))
        .route("/v1/batches", command(commands::batch))
        .route("/v1/accounts/{id}/freeze", command(commands::freeze))
        .route("/v1/accounts/{id}/unfreeze", command(commands::unfreeze))
        .route("/v1/accounts/{id}/close", command(commands::close))
        .route("/v1/accounts/{id}", get(queries::account))
        .route("/v1/accounts/{id}/balance", get(queries::balance_at))
        .route("/v1/accounts/{id}/events", get(queries::account_events))
        .route("/v1/transfers/{id}", get(queries::transfer))
        .route("/v1/balances", get(queries::balances))
        .route("/v1/events", get(events::stream))
        .route("/cluster/init", command(cluster::init))
        .route("/cluster/learners", command(cluster::add_learner))
        .route("/cluster/membership", command(cluster::change_membership))
        .route(
            "/cluster/leader/transfer",
            command(cluster::transfer_leader),
        )
        .route("/cluster/snapshot", command(cluster::snapshot))
        .route("/cluster/status", get(cluster::status))
        .route("/healthz", get(cluster::healthz))
        .route("/readyz", get(cluster::readyz))
        .route("/metrics", get(cluster::metrics))
        // After every route: applies to the routes registered above.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(extract::BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(
            state.client_auth.clone(),
            crate::auth::gate::gate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::shed_load,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            stamp_index,
        ))
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .with_state(state)
}

/// A POST route behind [`guard::command_request`] (JSON content type required).
fn command<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    post(handler).route_layer(axum::middleware::from_fn(guard::command_request))
}

/// Gives every response an `X-Ledger-Index`: handlers set the index they served at; anything
/// refused before reaching the log (400, 413, 404 route) gets the current applied index.
async fn stamp_index(
    axum::extract::State(s): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = next.run(req).await;
    if !resp.headers().contains_key("x-ledger-index") {
        resp.headers_mut().insert(
            "x-ledger-index",
            HeaderValue::from(s.reader.applied_index()),
        );
    }
    resp
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("route_not_found", "no such route")
}

/// 405 in the JSON error shape (axum still adds the `Allow` header).
async fn method_not_allowed(method: axum::http::Method) -> error::ApiError {
    error::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "this route does not take {}",
            crate::metrics::method_label(&method)
        ),
    )
}

/// A JSON response with `X-Ledger-Index`.
pub fn with_index(status: StatusCode, index: u64, body: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert("x-ledger-index", HeaderValue::from(index));
    resp
}

//! Cluster administration and health: init, add learner, change membership, leader transfer,
//! build a snapshot on this node, status (with per-follower lag on the leader and the cost of
//! this node's last snapshot build), `/healthz`, `/readyz`, `/metrics`.
//! Mutations are authorized before they get here (`auth::gate`: admin token or admin API key);
//! on a follower they are proxied to the leader (one hop). Member URLs are validated
//! (`auth::member_url`) before anything is proposed or dialled.

use super::error::ApiError;
use super::extract::JsonBody;
use super::{with_index, AppState};
use crate::raft_types::TypeConfig;
use crate::raft_types::{NodeAddr, NodeId};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ServerState;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Checks member URLs against the shape rules and `--peer-allow` (400 `invalid_member_url`).
fn check_member(s: &AppState, id: NodeId, addr: &NodeAddr) -> Result<(), ApiError> {
    for (what, url) in [("api", &addr.api), ("raft", &addr.raft)] {
        crate::auth::member_url::validate(what, url, &s.peer_allow).map_err(|e| {
            ApiError::bad_request("invalid_member_url", format!("member {id}: {e}"))
                .with_details(json!({ "id": id, "field": what }))
        })?;
    }
    Ok(())
}

/// When not leader, replays the admin request on the leader's API and returns its answer.
async fn proxy_to_leader(
    s: &AppState,
    route: &str,
    headers: &HeaderMap,
    body: &Value,
) -> Result<Option<Response>, ApiError> {
    if s.raft.is_leader() {
        return Ok(None);
    }
    let Some(leader) = s.raft.current_leader().await else {
        return Err(ApiError::unavailable(
            "no_leader",
            "no leader is known; retry shortly",
        ));
    };
    let node = crate::raft_types::member_addr(&s.raft, leader);
    let Some(node) = node else {
        return Err(ApiError::unavailable("no_leader", "leader address unknown"));
    };
    let mut req = s
        .http
        .request(Method::POST, format!("{}{}", node.api, route))
        .json(body);
    if let Some(a) = headers.get("authorization") {
        req = req.header("authorization", a.as_bytes());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| ApiError::unavailable("leader_unavailable", e.to_string()))?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let kept: Vec<(String, Vec<u8>)> = ["x-ledger-index", "retry-after"]
        .iter()
        .filter_map(|h| {
            resp.headers()
                .get(*h)
                .map(|v| (h.to_string(), v.as_bytes().to_vec()))
        })
        .collect();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    let mut out = (status, axum::Json(v)).into_response();
    for (name, value) in kept {
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_bytes(&value),
        ) {
            out.headers_mut().insert(n, v);
        }
    }
    Ok(Some(out))
}

fn raft_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable("raft_unavailable", e.to_string())
}

type WriteError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;

/// Maps a membership write error by type: no leader and in-flight changes are retryable (503),
/// invalid changes are conflicts (409).
fn membership_err(e: WriteError) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_))
        | RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => {
            ApiError::unavailable("no_leader", "leadership changed; retry shortly")
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(p),
        )) => ApiError::unavailable("membership_change_in_progress", p.to_string()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            ApiError::new(StatusCode::CONFLICT, "membership_conflict", c.to_string())
        }
        other => raft_err(other),
    }
}

/// `POST /cluster/init` `{"members": {"1": {"api","raft"}, ...}}` (absent: this node alone).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitReq {
    #[serde(default)]
    members: BTreeMap<NodeId, NodeAddr>,
}

/// Initializes a brand-new cluster. Refused (409) on an initialized node.
pub async fn init(
    State(s): State<AppState>,
    JsonBody(r): JsonBody<InitReq>,
) -> Result<Response, ApiError> {
    let mut members = r.members;
    for (id, addr) in &members {
        check_member(&s, *id, addr)?;
    }
    if members.is_empty() {
        let me = crate::raft_types::member_addr(&s.raft, s.node_id);
        members.insert(s.node_id, me.unwrap_or_else(|| s.self_addr.clone()));
    }
    if s.raft.is_initialized().await.map_err(raft_err)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_initialized",
            "this node is already part of a cluster",
        ));
    }
    s.raft.initialize(members.clone()).await.map_err(raft_err)?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({"initialized": true, "members": members})),
    )
        .into_response())
}

/// `POST /cluster/learners` `{"id", "api", "raft"}`: adds a non-voting member and waits until it caught up.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnerReq {
    id: NodeId,
    api: String,
    raft: String,
}

/// Adds a learner.
pub async fn add_learner(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(r): JsonBody<LearnerReq>,
) -> Result<Response, ApiError> {
    let addr = NodeAddr {
        api: r.api,
        raft: r.raft,
    };
    check_member(&s, r.id, &addr)?;
    let body = json!({"id": r.id, "api": addr.api, "raft": addr.raft});
    if let Some(resp) = proxy_to_leader(&s, "/cluster/learners", &headers, &body).await? {
        return Ok(resp);
    }
    let res = s
        .raft
        .add_learner(r.id, addr, true)
        .await
        .map_err(membership_err)?;
    Ok(with_index(
        StatusCode::OK,
        res.log_id.index,
        json!({"added_learner": r.id, "index": res.log_id.index}),
    ))
}

/// `POST /cluster/membership` `{"voters": [1,2,3], "retain": false}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipReq {
    voters: BTreeSet<NodeId>,
    #[serde(default)]
    retain: bool,
}

/// Changes the voter set (joint consensus inside openraft).
pub async fn change_membership(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(r): JsonBody<MembershipReq>,
) -> Result<Response, ApiError> {
    if r.voters.is_empty() {
        return Err(ApiError::bad_request(
            "malformed_request",
            "voters must not be empty",
        ));
    }
    let body = json!({"voters": r.voters, "retain": r.retain});
    if let Some(resp) = proxy_to_leader(&s, "/cluster/membership", &headers, &body).await? {
        return Ok(resp);
    }
    let res = s
        .raft
        .change_membership(r.voters.clone(), r.retain)
        .await
        .map_err(membership_err)?;
    Ok(with_index(
        StatusCode::OK,
        res.log_id.index,
        json!({"voters": r.voters, "index": res.log_id.index}),
    ))
}

/// `POST /cluster/leader/transfer` `{"to": 2}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferReq {
    to: NodeId,
}

/// Asks the leader to hand leadership to `to`.
pub async fn transfer_leader(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(r): JsonBody<TransferReq>,
) -> Result<Response, ApiError> {
    let body = json!({"to": r.to});
    if let Some(resp) = proxy_to_leader(&s, "/cluster/leader/transfer", &headers, &body).await? {
        return Ok(resp);
    }
    let voters: Vec<NodeId> = s.raft.voter_ids().collect();
    if !voters.contains(&r.to) {
        return Err(ApiError::bad_request(
            "not_a_voter",
            format!("node {} is not a voter", r.to),
        ));
    }
    s.raft
        .trigger()
        .transfer_leader(r.to)
        .await
        .map_err(raft_err)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"transferring_to": r.to})),
    )
        .into_response())
}

/// `POST /cluster/snapshot` `{}`: asks this node (not the leader: every node snapshots its own
/// state machine) to build a snapshot now, then to purge its log as after a policy snapshot.
/// Returns 202 at once; `snapshot_build` in `/cluster/status` shows when it is done.
pub async fn snapshot(State(s): State<AppState>) -> Result<Response, ApiError> {
    let applied = s.reader.applied_index();
    s.raft.trigger().snapshot().await.map_err(raft_err)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"snapshot_requested_at_applied": applied})),
    )
        .into_response())
}

fn role(st: ServerState) -> &'static str {
    match st {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

/// `GET /cluster/status`.
pub async fn status(State(s): State<AppState>) -> Response {
    let m = crate::raft_types::metrics_of(&s.raft);
    let members: BTreeMap<String, Value> = m
        .membership_config
        .membership()
        .nodes()
        .map(|(id, n)| (id.to_string(), json!({"api": n.api, "raft": n.raft})))
        .collect();
    let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
    let last_log = m.last_log_index.unwrap_or(0);
    let replication = m.replication.as_ref().map(|r| {
        r.iter()
            .map(|(id, matched)| {
                let matched = matched.as_ref().map(|l| l.index).unwrap_or(0);
                (
                    id.to_string(),
                    json!({"matched": matched, "lag": last_log.saturating_sub(matched)}),
                )
            })
            .collect::<BTreeMap<_, _>>()
    });
    let (hash_index, applied_hash) = s.reader.applied_hash();
    let body = json!({
        "id": s.node_id,
        "role": role(m.state),
        "term": m.current_term,
        "leader": m.current_leader,
        "last_log_index": last_log,
        "committed": m.local_committed.map(|l| l.index).unwrap_or(0),
        "applied": s.reader.applied_index(),
        "snapshot": m.snapshot.map(|l| l.index),
        "snapshot_build": s.reader.last_snapshot_build().map(|b| {
            json!({"index": b.index, "bytes": b.bytes, "build_ms": b.build_ms})
        }),
        "purged": m.purged.map(|l| l.index),
        "history_in_memory": s.reader.history_in_memory(),
        "history_in_memory_max": s.history_in_memory_max,
        "history_on_disk": s.reader.history_on_disk(),
        "last_event_seq": s.reader.last_event_seq(),
        "applied_hash": applied_hash,
        "applied_hash_index": hash_index,
        "voters": voters,
        "members": members,
        "replication": replication,
    });
    with_index(StatusCode::OK, s.reader.applied_index(), body)
}

/// True when the Raft core stopped: shut down with an error, or its task died (the metrics
/// sender is gone).
async fn core_stopped(s: &AppState) -> bool {
    use openraft::async_runtime::watch::WatchReceiver;
    if crate::raft_types::metrics_of(&s.raft)
        .running_state
        .is_err()
    {
        return true;
    }
    let mut rx = s.raft.metrics();
    matches!(
        tokio::time::timeout(std::time::Duration::from_millis(1), rx.changed()).await,
        Ok(Err(_))
    )
}

/// `GET /healthz`: the process is up and Raft has not stopped.
pub async fn healthz(State(s): State<AppState>) -> Response {
    if core_stopped(&s).await {
        return ApiError::unavailable("raft_stopped", "raft core stopped").into_response();
    }
    (
        StatusCode::OK,
        axum::Json(json!({"status": "ok", "id": s.node_id})),
    )
        .into_response()
}

/// `GET /readyz`: a leader is known and this node's state machine has applied what it knows
/// to be committed, so it can serve reads and accept writes.
pub async fn readyz(State(s): State<AppState>) -> Response {
    if core_stopped(&s).await {
        return ApiError::unavailable("raft_stopped", "raft core stopped").into_response();
    }
    let m = crate::raft_types::metrics_of(&s.raft);
    let committed = m.local_committed.map(|l| l.index).unwrap_or(0);
    let applied = s.reader.applied_index();
    if m.current_leader.is_none() {
        return ApiError::unavailable("no_leader", "no leader is known").into_response();
    }
    if applied < committed {
        return ApiError::unavailable(
            "not_caught_up",
            format!("applied {applied} < committed {committed}"),
        )
        .into_response();
    }
    with_index(
        StatusCode::OK,
        applied,
        json!({"ready": true, "leader": m.current_leader}),
    )
}

/// `GET /metrics` (Prometheus text format).
pub async fn metrics(State(s): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

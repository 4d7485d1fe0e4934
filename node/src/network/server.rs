//! Inbound Raft RPC: the axum router served on the Raft listener. Every request must carry a
//! valid MAC made with the cluster secret (`auth::peer_mac`), checked before its body is read;
//! the body is then checked against the signed digest, and every answer is signed in turn.
//! Besides openraft's RPCs it serves read-index (so followers can serve linearizable reads)
//! and propose (write forwarding from followers).
//!
//! Bounds: bodies are size-limited ([`RPC_BODY_BYTES_MAX`]) and must arrive within
//! `--body-read-timeout-ms` (a snapshot, which streams for longer, may not pause for longer
//! than that between chunks); headers are bounded by the listener (`netserve::http_server`). A proposal
//! forwarded by a follower goes through the same proposer bounds as a local client's.

use super::wire::{self, path};
use crate::auth::peer_mac::{self, PeerKey, VerifiedRequest};
use crate::proposer::{ProposeError, Proposed, Proposer};
use crate::raft_types::{Raft, Snapshot, SnapshotMeta, Vote};
use crate::sm::{SnapshotFile, StateMachineStore};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use ledger::Command;
use openraft::ReadPolicy;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Largest AppendEntries/propose body accepted: an AppendEntries carries at most 32 entries of
/// at most `--entry-bytes-max` (6 MiB) each, under 200 MiB.
pub const RPC_BODY_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Shared state of the Raft listener.
#[derive(Clone)]
pub struct RaftServerState {
    /// Local Raft.
    pub raft: Raft,
    /// State machine (for the incoming snapshot directory).
    pub sm: StateMachineStore,
    /// Local proposer (for forwarded writes).
    pub proposer: Proposer,
    /// The cluster secret as a MAC key.
    pub key: PeerKey,
    /// Until this instant, vote requests are refused: set when the node started with no vote
    /// and no log (new or wiped). A wiped node forgot whom it voted for; refusing votes for
    /// longer than any election lasts means it cannot vote twice in a term it already voted in.
    pub refuse_votes_until: Option<std::time::Instant>,
    /// When the leader was last heard from (for the failover watch).
    pub leader_contact: crate::failover::LeaderContact,
    /// Longest a peer may take to send a whole request body (for a snapshot: the longest
    /// pause between two chunks).
    pub body_read_timeout: Duration,
}

/// A request body read within the state's `body_read_timeout` (408 otherwise) and within
/// [`RPC_BODY_BYTES_MAX`] (413 otherwise), whose digest is the one the peer signed (401
/// otherwise).
struct Payload(Bytes);

impl FromRequest<RaftServerState> for Payload {
    type Rejection = Response;

    async fn from_request(req: Request, s: &RaftServerState) -> Result<Self, Response> {
        let Some(signed) = req.extensions().get::<VerifiedRequest>().cloned() else {
            return Err(unauthenticated("request not authenticated"));
        };
        match tokio::time::timeout(s.body_read_timeout, Bytes::from_request(req, s)).await {
            Ok(Ok(b)) => {
                let b = match hash_checked(b, signed).await {
                    Some(b) => b,
                    None => {
                        tracing::warn!("raft rpc refused: body does not match its signed digest");
                        return Err(unauthenticated("body does not match its signed digest"));
                    }
                };
                Ok(Payload(b))
            }
            Ok(Err(e)) => Err(e.into_response()),
            Err(_) => Err((
                StatusCode::REQUEST_TIMEOUT,
                [(axum::http::header::CONNECTION, "close")],
                "request body not received in time",
            )
                .into_response()),
        }
    }
}

/// Request for a read index from the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadIndexRequest {
    /// Use the leader lease instead of a heartbeat round (the `lease` consistency mode).
    pub lease: bool,
}

/// Why the leader could not produce a read index.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum ReadIndexError {
    /// The asked node is not the leader (it may know who is).
    #[error("not the leader")]
    NotLeader {
        /// Known leader, if any.
        leader: Option<u64>,
    },
    /// Leadership could not be confirmed by a quorum.
    #[error("leadership not confirmed: {0}")]
    Unconfirmed(String),
}

/// Builds the Raft RPC router.
pub fn router(state: RaftServerState) -> Router {
    Router::new()
        .route(path::APPEND, post(append))
        .route(path::VOTE, post(vote))
        .route(path::PRE_VOTE, post(pre_vote))
        .route(path::TRANSFER_LEADER, post(transfer_leader))
        .route(path::READ_INDEX, post(read_index))
        .route(path::PROPOSE, post(propose))
        .layer(DefaultBodyLimit::max(RPC_BODY_BYTES_MAX))
        .route(
            path::SNAPSHOT,
            post(snapshot).layer(DefaultBodyLimit::disable()),
        )
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Checks the request MAC (before the body is read), then runs the route and signs its answer.
async fn authenticate(State(s): State<RaftServerState>, mut req: Request, next: Next) -> Response {
    let verified = s.key.verify_request(
        req.method().as_str(),
        req.uri().path(),
        req.headers(),
        peer_mac::now_ms(),
    );
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(
                uri = %req.uri(),
                reason = %e,
                "raft rpc refused: not signed with our cluster secret"
            );
            return unauthenticated("not signed with this cluster's secret");
        }
    };
    let nonce = verified.nonce.clone();
    req.extensions_mut().insert(verified);
    let resp = next.run(req).await;
    sign_reply(&s.key, &nonce, resp).await
}

/// Largest answer signed: answers are small (vote, append and propose results).
const REPLY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Adds the reply MAC over (request nonce, status, body digest) to `resp`.
async fn sign_reply(key: &PeerKey, nonce: &str, resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, REPLY_BYTES_MAX).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reply not signed: {e}"),
            )
                .into_response()
        }
    };
    let mac = key.sign_reply(nonce, parts.status.as_u16(), &peer_mac::sha256(&bytes));
    if let Ok(v) = axum::http::HeaderValue::from_str(&mac) {
        parts.headers.insert(peer_mac::REPLY_MAC_HEADER, v);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Returns `body` if its SHA-256 is the signed one; a large body is hashed on the blocking
/// pool, like large bodies are decoded (see `wire::INLINE_CODEC_BYTES_MAX`).
async fn hash_checked(body: Bytes, signed: VerifiedRequest) -> Option<Bytes> {
    if body.len() < wire::INLINE_CODEC_BYTES_MAX {
        return signed
            .body_matches(&peer_mac::sha256(&body))
            .then_some(body);
    }
    tokio::task::spawn_blocking(move || {
        signed
            .body_matches(&peer_mac::sha256(&body))
            .then_some(body)
    })
    .await
    .ok()
    .flatten()
}

fn unauthenticated(msg: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({
            "error": {"code": "unauthenticated", "message": msg, "details": {}}
        })),
    )
        .into_response()
}

fn reply<T: Serialize>(v: &T) -> Response {
    match wire::encode(v) {
        Ok(b) => (StatusCode::OK, b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

fn bad(e: String) -> Response {
    (StatusCode::BAD_REQUEST, e).into_response()
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
}

async fn append(State(s): State<RaftServerState>, Payload(body): Payload) -> Response {
    let req = match decode_append(body).await {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let sender = crate::raft_types::append_sender(&req);
    match s.raft.append_entries(req).await {
        Ok(r) => {
            s.leader_contact.heard_from(sender);
            reply(&r)
        }
        Err(e) => unavailable(e),
    }
}

/// Decodes an AppendEntries body; a large one (many entries of up to a few MiB) on the blocking
/// pool, so decoding it cannot hold up the runtime threads that serve heartbeats: a follower whose
/// heartbeat answers are late lets the leader's lease lapse, and the leader then refuses writes.
async fn decode_append(
    body: Bytes,
) -> Result<openraft::raft::AppendEntriesRequest<crate::raft_types::TypeConfig>, String> {
    if body.len() < wire::INLINE_CODEC_BYTES_MAX {
        return wire::decode(&body);
    }
    tokio::task::spawn_blocking(move || wire::decode(&body))
        .await
        .map_err(|e| format!("decode task failed: {e}"))?
}

async fn vote(State(s): State<RaftServerState>, Payload(body): Payload) -> Response {
    let req: openraft::raft::VoteRequest<crate::raft_types::TypeConfig> = match wire::decode(&body)
    {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    if let Some(refused) = refuse_vote(&s, &req, "vote") {
        return refused;
    }
    match s.raft.vote(req).await {
        Ok(r) => reply(&r),
        Err(e) => unavailable(e),
    }
}

async fn pre_vote(State(s): State<RaftServerState>, Payload(body): Payload) -> Response {
    let req: openraft::raft::VoteRequest<crate::raft_types::TypeConfig> = match wire::decode(&body)
    {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    // Refused like the vote itself: a candidate that passed the pre-vote here would bump its
    // term only to be refused the vote, and then wait out a whole lease before trying again;
    // failing at the pre-vote keeps its term and lets it retry after one election timeout.
    if let Some(refused) = refuse_vote(&s, &req, "pre-vote") {
        return refused;
    }
    match s.raft.pre_vote(req).await {
        Ok(r) => reply(&r),
        Err(e) => unavailable(e),
    }
}

/// The refusal of a (pre-)vote while this node may not vote: it started without a vote record
/// (new or wiped) less than the refusal window ago.
fn refuse_vote(
    s: &RaftServerState,
    req: &openraft::raft::VoteRequest<crate::raft_types::TypeConfig>,
    what: &str,
) -> Option<Response> {
    if s.refuse_votes_until
        .is_none_or(|t| std::time::Instant::now() >= t)
    {
        return None;
    }
    let m = crate::raft_types::metrics_of(&s.raft);
    tracing::info!(candidate = %req.vote, what, "refused: node started without a vote record");
    Some(reply(&openraft::raft::VoteResponse::<
        crate::raft_types::TypeConfig,
    >::new(m.vote, None, false)))
}

async fn transfer_leader(State(s): State<RaftServerState>, Payload(body): Payload) -> Response {
    let req = match wire::decode(&body) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    match s.raft.handle_transfer_leader(req).await {
        Ok(r) => reply(&r),
        Err(e) => unavailable(e),
    }
}

async fn read_index(State(s): State<RaftServerState>, Payload(body): Payload) -> Response {
    let req: ReadIndexRequest = match wire::decode(&body) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    reply(&leader_read_index(&s.raft, req.lease).await)
}

/// On the leader: confirms leadership (heartbeat quorum, or lease) and returns the log index a
/// reader must have applied before serving a linearizable read.
pub async fn leader_read_index(raft: &Raft, lease: bool) -> Result<u64, ReadIndexError> {
    let policy = if lease {
        ReadPolicy::LeaseRead
    } else {
        ReadPolicy::ReadIndex
    };
    match raft.get_read_linearizer(policy).await {
        Ok(lin) => Ok(lin.read_log_id().index()),
        Err(openraft::error::RaftError::APIError(
            openraft::error::LinearizableReadError::ForwardToLeader(f),
        )) => Err(ReadIndexError::NotLeader {
            leader: f.leader_id,
        }),
        Err(e) => Err(ReadIndexError::Unconfirmed(e.to_string())),
    }
}

async fn propose(State(s): State<RaftServerState>, Payload(body): Payload) -> Response {
    let commands: Vec<Command> = match wire::decode(&body) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let res: Result<Proposed, ProposeError> = s.proposer.propose_as_leader(commands).await;
    reply(&res)
}

async fn snapshot(
    State(s): State<RaftServerState>,
    axum::Extension(signed): axum::Extension<VerifiedRequest>,
    body: Body,
) -> Response {
    match receive_snapshot(&s, &signed, body).await {
        Ok((vote, snap)) => match s.raft.install_full_snapshot(vote, snap).await {
            Ok(r) => reply(&Ok::<_, String>(r)),
            Err(e) => reply(&Err::<
                openraft::raft::SnapshotResponse<crate::raft_types::TypeConfig>,
                _,
            >(e.to_string())),
        },
        Err(e) => {
            tracing::warn!(error = %e, "receiving snapshot failed");
            bad(e)
        }
    }
}

/// Reads `[u32 len][bincode (vote, meta)][snapshot bytes]` into a file in the snapshot dir,
/// hashing the stream as it arrives; a stream whose digest is not the signed one is discarded
/// before anything is installed.
async fn receive_snapshot(
    s: &RaftServerState,
    signed: &VerifiedRequest,
    body: Body,
) -> Result<(Vote, Snapshot), String> {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    let mut stream = body.into_data_stream();
    let mut head: Vec<u8> = Vec::new();
    let path = s.sm.new_incoming_snapshot_path();
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| e.to_string())?;
    let mut header: Option<(Vote, SnapshotMeta)> = None;
    loop {
        let next = tokio::time::timeout(s.body_read_timeout, stream.next())
            .await
            .map_err(|_| "snapshot stream stalled".to_owned())?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| e.to_string())?;
        digest.update(&chunk);
        if header.is_some() {
            file.write_all(&chunk).await.map_err(|e| e.to_string())?;
            continue;
        }
        head.extend_from_slice(&chunk);
        if head.len() >= 4 {
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if head.len() >= 4 + len {
                header = Some(wire::decode(&head[4..4 + len])?);
                file.write_all(&head[4 + len..])
                    .await
                    .map_err(|e| e.to_string())?;
                head = Vec::new();
            }
        }
    }
    if !signed.body_matches(&digest.finalize().into()) {
        drop(file);
        let _ = tokio::fs::remove_file(&path).await;
        return Err("snapshot stream does not match its signed digest".to_owned());
    }
    let (vote, meta) = header.ok_or("snapshot stream ended before its header")?;
    file.sync_all().await.map_err(|e| e.to_string())?;
    drop(file);
    let data = SnapshotFile::open(&path).map_err(|e| e.to_string())?;
    Ok((
        vote,
        Snapshot {
            meta,
            snapshot: data,
        },
    ))
}

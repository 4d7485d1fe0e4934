//! Outbound Raft RPC: openraft's network traits implemented over a pooled reqwest client.
//!
//! Error mapping: a refused/failed connection or a 5xx is `Unreachable` (openraft backs off), a
//! timeout is `Timeout`, anything else is `Network` (retry at once).
//!
//! Every request is signed (`auth::peer_mac`); the cluster secret is never sent. A 2xx answer
//! is trusted only with a valid reply MAC: without one the peer has not proven it knows the
//! secret, and the call fails as if the peer were unreachable (logged once per peer).

use super::wire::{self, path, CONTENT_TYPE};
use crate::auth::peer_mac::{self, PeerKey};
use crate::raft_types::{NodeAddr, NodeId, Snapshot, TypeConfig, Vote};
use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    VoteRequest, VoteResponse,
};
use openraft::{RPCTypes, RaftNetworkV2};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Idle pooled connections kept per peer: replication, heartbeats and snapshot streams run on
/// separate connections, and a few spares absorb bursts.
const POOL_IDLE_PER_HOST_MAX: usize = 8;
/// Timeout of an AppendEntries that carries entries. openraft uses the heartbeat interval
/// (100 ms) as the timeout of every AppendEntries; a request carrying megabytes of entries to a
/// lagging follower on a loaded machine can take longer, and a timed-out request is resent
/// whole, so the follower would never catch up. Heartbeats (no entries) keep openraft's timeout.
const APPEND_WITH_ENTRIES_TIMEOUT_MS: u64 = 10_000;
/// Connect timeout for peers: loopback or LAN; longer means the peer is down.
const CONNECT_TIMEOUT_MS: u64 = 500;

/// Builds one connection handle per peer; all share one HTTP client (connection pool).
#[derive(Clone)]
pub struct NetworkFactory {
    http: reqwest::Client,
    key: PeerKey,
    self_id: NodeId,
    /// Peers already reported for answering without a valid reply MAC (logged once each).
    untrusted_logged: Arc<Mutex<BTreeSet<String>>>,
    /// Peer id -> Raft URL dialled instead of the member's own (`--peer-raft-addr`).
    raft_url_overrides: Arc<BTreeMap<NodeId, String>>,
}

impl NetworkFactory {
    /// A factory for node `self_id` authenticating with cluster secret `secret`.
    pub fn new(self_id: NodeId, secret: &str) -> Self {
        Self {
            http: http_client(None, None),
            key: PeerKey::new(secret),
            self_id,
            untrusted_logged: Arc::default(),
            raft_url_overrides: Arc::default(),
        }
    }

    /// Expire pooled connections idle for `idle`: keep it below the peers' header read
    /// timeout, which closes idle keep-alive connections server-side, so a request never goes
    /// out on a connection the peer is closing.
    pub fn with_pool_idle_timeout(mut self, idle: Duration) -> Self {
        self.http = http_client(Some(idle), None);
        self
    }

    /// Like [`NetworkFactory::with_pool_idle_timeout`], and with `tls` every peer is dialled
    /// over mutual TLS: only servers with a certificate signed by the cluster CA are trusted,
    /// and this node presents its own certificate.
    pub fn with_tls(mut self, idle: Duration, tls: Option<&crate::tls::NodeTls>) -> Self {
        self.http = http_client(Some(idle), tls);
        self
    }

    /// Dial `url` instead of a peer's member Raft URL, per peer id (`--peer-raft-addr`).
    pub fn with_raft_url_overrides(mut self, overrides: BTreeMap<NodeId, String>) -> Self {
        self.raft_url_overrides = Arc::new(overrides);
        self
    }

    /// The Raft URL this node dials for `target` (its member URL or the override).
    pub fn raft_url(&self, target: NodeId, node: &NodeAddr) -> String {
        self.raft_url_overrides
            .get(&target)
            .unwrap_or(&node.raft)
            .trim_end_matches('/')
            .to_owned()
    }

    /// A connection to `target` outside openraft (used for read-index and write forwarding).
    pub fn connection(&self, target: NodeId, node: &NodeAddr) -> Connection {
        Connection {
            target,
            base: self.raft_url(target, node),
            http: self.http.clone(),
            key: self.key.clone(),
            self_id: self.self_id,
            untrusted_logged: self.untrusted_logged.clone(),
        }
    }
}

fn http_client(pool_idle: Option<Duration>, tls: Option<&crate::tls::NodeTls>) -> reqwest::Client {
    let mut b = crate::tls::reqwest_builder(tls)
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST_MAX)
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .tcp_nodelay(true);
    if let Some(idle) = pool_idle {
        b = b.pool_idle_timeout(idle);
    }
    b.build().unwrap_or_else(|_| reqwest::Client::new())
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> Connection {
        self.connection(target, node)
    }
}

/// One peer's RPC endpoint.
pub struct Connection {
    target: NodeId,
    base: String,
    http: reqwest::Client,
    key: PeerKey,
    self_id: NodeId,
    untrusted_logged: Arc<Mutex<BTreeSet<String>>>,
}

/// Why an RPC failed, before mapping into openraft's error types.
#[derive(Debug)]
pub enum CallError {
    /// Connection refused/reset or the peer answered 5xx: back off.
    Unreachable(String),
    /// The request did not finish in time.
    Timeout,
    /// Anything else (bad response, codec failure).
    Other(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(e) => write!(f, "unreachable: {e}"),
            Self::Timeout => f.write_str("timeout"),
            Self::Other(e) => f.write_str(e),
        }
    }
}

impl Connection {
    /// POSTs a bincode body and decodes a bincode reply.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        route: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let body = wire::encode(req).map_err(CallError::Other)?;
        let (body, digest) = hashed(body).await.map_err(CallError::Other)?;
        self.call_body(route, reqwest::Body::from(body), &digest, timeout)
            .await
    }

    /// POSTs `body` (whose SHA-256 is `body_sha256`) signed, and decodes a verified answer.
    async fn call_body<Resp: DeserializeOwned>(
        &self,
        route: &str,
        body: reqwest::Body,
        body_sha256: &[u8; 32],
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let sig = self.key.sign_request("POST", route, body_sha256);
        let mut req = self
            .http
            .post(format!("{}{}", self.base, route))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .timeout(timeout)
            .body(body);
        for (name, value) in sig.headers() {
            req = req.header(name, value);
        }
        let res = req.send().await.map_err(classify)?;
        let status = res.status();
        let reply_mac = res.headers().get(peer_mac::REPLY_MAC_HEADER).cloned();
        let bytes = res.bytes().await.map_err(classify)?;
        let proven = reply_mac.is_some_and(|mac| {
            self.key.verify_reply(
                &sig.nonce,
                status.as_u16(),
                &peer_mac::sha256(&bytes),
                mac.as_bytes(),
            )
        });
        if status.is_success() && !proven {
            self.log_untrusted();
            return Err(CallError::Unreachable(format!(
                "{route} -> {status} without a valid reply MAC: \
                 the peer does not know the cluster secret"
            )));
        }
        if status.is_success() {
            return wire::decode(&bytes).map_err(CallError::Other);
        }
        let msg = format!("{route} -> {status}: {}", String::from_utf8_lossy(&bytes));
        if status.is_server_error() || status == reqwest::StatusCode::UNAUTHORIZED {
            if status == reqwest::StatusCode::UNAUTHORIZED {
                tracing::error!(target_node = self.target, "peer refused our cluster secret");
            }
            Err(CallError::Unreachable(msg))
        } else {
            Err(CallError::Other(msg))
        }
    }

    /// Logs, once per peer URL, that it answered without proving the cluster secret.
    fn log_untrusted(&self) {
        let first = self
            .untrusted_logged
            .lock()
            .map(|mut seen| seen.insert(self.base.clone()))
            .unwrap_or(true);
        if first {
            tracing::error!(
                target_node = self.target,
                url = %self.base,
                "peer answered without a valid reply MAC; not trusted \
                 (wrong cluster secret or not a raftledger node)"
            );
        }
    }

    fn rpc_error(&self, action: RPCTypes, timeout: Duration, e: CallError) -> RPCError<TypeConfig> {
        match e {
            CallError::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
            CallError::Timeout => RPCError::Timeout(Timeout {
                action,
                id: self.self_id,
                target: self.target,
                timeout,
            }),
            CallError::Other(m) => RPCError::Network(NetworkError::from_string(m)),
        }
    }
}

fn classify(e: reqwest::Error) -> CallError {
    if e.is_timeout() {
        CallError::Timeout
    } else if e.is_connect() || e.is_request() {
        CallError::Unreachable(e.to_string())
    } else {
        CallError::Other(e.to_string())
    }
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = crate::sm::SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = if rpc.entries.is_empty() {
            option.hard_ttl()
        } else {
            option
                .hard_ttl()
                .max(Duration::from_millis(APPEND_WITH_ENTRIES_TIMEOUT_MS))
        };
        let encoded = if rpc.entries.is_empty() {
            wire::encode(&rpc).map(|b| {
                let d = peer_mac::sha256(&b);
                (b, d)
            })
        } else {
            // Entries may weigh megabytes: encode and hash them off the runtime threads (see
            // `wire::INLINE_CODEC_BYTES_MAX`), which also serve heartbeats.
            tokio::task::spawn_blocking(move || {
                wire::encode(&rpc).map(|b| {
                    let d = peer_mac::sha256(&b);
                    (b, d)
                })
            })
            .await
            .map_err(|e| format!("encode task failed: {e}"))
            .and_then(|r| r)
        };
        let (body, digest) = encoded
            .map_err(|e| self.rpc_error(RPCTypes::AppendEntries, ttl, CallError::Other(e)))?;
        self.call_body(path::APPEND, reqwest::Body::from(body), &digest, ttl)
            .await
            .map_err(|e| self.rpc_error(RPCTypes::AppendEntries, ttl, e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl();
        self.call(path::VOTE, &rpc, ttl)
            .await
            .map_err(|e| self.rpc_error(RPCTypes::Vote, ttl, e))
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl();
        self.call(path::PRE_VOTE, &rpc, ttl)
            .await
            .map_err(|e| self.rpc_error(RPCTypes::Vote, ttl, e))
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<openraft::raft::TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl();
        self.call(path::TRANSFER_LEADER, &req, ttl)
            .await
            .map_err(|e| self.rpc_error(RPCTypes::TransferLeader, ttl, e))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = wire::encode(&(vote, snapshot.meta.clone()))
            .map_err(|e| StreamingError::Network(NetworkError::from_string(e)))?;
        let mut prefix = (header.len() as u32).to_le_bytes().to_vec();
        prefix.extend_from_slice(&header);
        // A node keeps local snapshot files (its history stays on its disk); a peer gets the
        // full file, expanded once per snapshot.
        let path = snapshot
            .snapshot
            .file_to_send()
            .await
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        // The request MAC covers the digest of the whole stream, so the file is read twice:
        // once here (blocking pool) and once while streaming. The receiver hashes as it writes
        // and checks before installing.
        let digest = stream_digest(prefix.clone(), path.clone())
            .await
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let head = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes_of(prefix)) });
        let rest = tokio_util::io::ReaderStream::new(file);
        let body = reqwest::Body::wrap_stream(futures::StreamExt::chain(head, rest));
        let ttl = option.hard_ttl().max(Duration::from_secs(60));
        let send = self.call_body::<Result<SnapshotResponse<TypeConfig>, String>>(
            path::SNAPSHOT,
            body,
            &digest,
            ttl,
        );
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = send => match res {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(remote)) => Err(StreamingError::Network(NetworkError::from_string(remote))),
                Err(CallError::Timeout) => Err(StreamingError::Timeout(Timeout {
                    action: RPCTypes::InstallSnapshot, id: self.self_id, target: self.target, timeout: ttl,
                })),
                Err(CallError::Unreachable(m)) => Err(StreamingError::Unreachable(Unreachable::from_string(m))),
                Err(CallError::Other(m)) => Err(StreamingError::Network(NetworkError::from_string(m))),
            }
        }
    }
}

/// `body` and its SHA-256; a large body is hashed on the blocking pool.
async fn hashed(body: Vec<u8>) -> Result<(Vec<u8>, [u8; 32]), String> {
    if body.len() < wire::INLINE_CODEC_BYTES_MAX {
        let d = peer_mac::sha256(&body);
        return Ok((body, d));
    }
    tokio::task::spawn_blocking(move || {
        let d = peer_mac::sha256(&body);
        (body, d)
    })
    .await
    .map_err(|e| format!("hash task failed: {e}"))
}

/// SHA-256 of `prefix` followed by the file at `path` (read on the blocking pool).
async fn stream_digest(prefix: Vec<u8>, path: std::path::PathBuf) -> std::io::Result<[u8; 32]> {
    tokio::task::spawn_blocking(move || {
        use sha2::Digest;
        use std::io::Read;
        let mut h = sha2::Sha256::new();
        h.update(&prefix);
        let mut f = std::fs::File::open(&path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finalize().into())
    })
    .await
    .map_err(std::io::Error::other)?
}

fn bytes_of(v: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from(v)
}

//! Node assembly: opens storage, starts openraft, the Raft RPC listener, the client API and
//! background tasks; joins or initializes a cluster; shuts everything down on request.
//! Tests and the binary call the same `start`.

use crate::api::{self, AppState};
use crate::config::NodeConfig;
use crate::log_store::LogStore;
use crate::metrics::{self, MetricsHandle};
use crate::network::server::{self as raft_server, RaftServerState};
use crate::network::NetworkFactory;
use crate::proposer::Proposer;
use crate::raft_types::{NodeAddr, Raft};
use crate::sm::StateMachineStore;
use anyhow::Context;
use ledger::{Command, CommandBody};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the leader checks whether a pending transfer's deadline has passed; when one has,
/// it proposes a `Tick` so the transfer expires without other traffic. This bounds how late an
/// expiry is applied.
const TICK_INTERVAL_MS: u64 = 250;

/// Entries per AppendEntries request (see `raft_config`). An entry holds at most
/// `--entry-bytes-max` (4 MiB by default), so one request carries at most 32 MiB; entries of
/// ordinary load are 1-300 KiB, so 8 still moves thousands of commands per round trip.
const APPEND_ENTRIES_PER_RPC_MAX: u64 = 8;

/// Connect timeout of every outbound HTTP client of the node (admin proxy, join, peer probe):
/// peers are on a LAN; longer means the peer is down.
const OUTBOUND_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Whole-request timeout of an admin call proxied to the leader, and of a join step. Adding a
/// learner waits until it caught up, which can take a while on a large log.
const ADMIN_REQUEST_TIMEOUT_MS: u64 = 120_000;
/// Whole-request timeout of the start-up probe of a peer's `/cluster/status`.
const PEER_PROBE_TIMEOUT_MS: u64 = 500;

/// An HTTP client with the outbound connect timeout and the request timeout `request_ms`.
/// It trusts the cluster CA when TLS is on.
fn outbound_client(
    tls: Option<&crate::tls::NodeTls>,
    request_ms: u64,
) -> anyhow::Result<reqwest::Client> {
    crate::tls::reqwest_builder(tls)
        .connect_timeout(Duration::from_millis(OUTBOUND_CONNECT_TIMEOUT_MS))
        .timeout(Duration::from_millis(request_ms))
        .build()
        .context("http client")
}

/// A running node.
pub struct RunningNode {
    /// Node id.
    pub id: u64,
    /// The Raft handle.
    pub raft: Raft,
    /// Bound client API address.
    pub api_addr: SocketAddr,
    /// Bound Raft RPC address.
    pub raft_addr: SocketAddr,
    /// Advertised addresses.
    pub node_addr: NodeAddr,
    /// The state machine store.
    pub sm: StateMachineStore,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn raft_config(cfg: &NodeConfig) -> anyhow::Result<Arc<openraft::Config>> {
    let c = openraft::Config {
        cluster_name: "raftledger".into(),
        heartbeat_interval: cfg.heartbeat_ms,
        election_timeout_min: cfg.election_timeout_ms_min,
        election_timeout_max: cfg.election_timeout_ms_max,
        enable_pre_vote: Some(true),
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_every_entries),
        max_in_snapshot_log_to_keep: cfg.logs_kept_after_snapshot,
        // A follower whose data directory was wiped comes back with an empty log. Without this
        // the leader treats the shorter log as a bug and panics; with it, the leader resends
        // the log (or a snapshot). Caveat: the wiped node also lost its vote record, so do not
        // wipe more than a minority at once (documented in README).
        allow_log_reversion: Some(true),
        install_snapshot_timeout: 60_000,
        // Entries per AppendEntries. One entry can carry thousands of coalesced commands
        // (~100 KiB+), and a request must decode well within the RPC timeout, or a lagging
        // follower receives the same oversized request again and again and never catches up.
        max_payload_entries: APPEND_ENTRIES_PER_RPC_MAX,
        ..Default::default()
    };
    Ok(Arc::new(c.validate().context("raft config")?))
}

/// Starts a node per `cfg` and returns once its listeners are bound.
pub async fn start(cfg: NodeConfig) -> anyhow::Result<RunningNode> {
    cfg.validate()?;
    cfg.log_effective();
    crate::auth::exposure::Exposure::of(&cfg).warn_if_insecure();
    let client_auth = crate::auth::gate::ClientAuth::from_config(&cfg)?;
    let peer_allow = crate::auth::member_url::PeerAllow::parse(&cfg.auth.peer_allow)
        .map_err(anyhow::Error::msg)?;
    let tls = cfg.tls.load().context("load TLS certificates")?;
    crate::wal::create_dir_all_durable(&crate::wal::RealFs, &cfg.data)
        .with_context(|| format!("create {}", cfg.data.display()))?;
    let api_listener = TcpListener::bind(&cfg.api)
        .await
        .with_context(|| format!("bind api {}", cfg.api))?;
    let raft_listener = TcpListener::bind(&cfg.raft)
        .await
        .with_context(|| format!("bind raft {}", cfg.raft))?;
    let api_addr = api_listener.local_addr()?;
    let raft_addr = raft_listener.local_addr()?;
    let node_addr = NodeAddr {
        api: cfg
            .advertise_api
            .clone()
            .unwrap_or_else(|| format!("{}://{api_addr}", cfg.tls.scheme())),
        raft: cfg
            .advertise_raft
            .clone()
            .unwrap_or_else(|| format!("{}://{raft_addr}", cfg.tls.scheme())),
    };

    let wal_options = crate::wal::WalOptions {
        segment_bytes: cfg.wal_segment_bytes,
        entry_cache_bytes_max: cfg.wal_cache_mb << 20,
        ..Default::default()
    };
    let log_store = LogStore::open_with_options(
        Arc::new(crate::wal::RealFs),
        &cfg.data.join("wal"),
        wal_options,
    )
    .context("open wal")?;
    let sm_options = crate::sm::StoreOptions {
        sled_cache_bytes: cfg.sled_cache_mb << 20,
        ..Default::default()
    };
    let sm = StateMachineStore::open_with(&cfg.data, &sm_options).context("open state machine")?;
    let net = NetworkFactory::new(cfg.id, &cfg.cluster_secret)
        .with_tls(server_limits(&cfg).client_pool_idle(), tls.as_ref())
        .with_raft_url_overrides(cfg.peer_raft_overrides()?);
    // A real node seeds openraft's random choices from the OS.
    let raft = crate::raft_types::with_raft_seed(
        rand::random(),
        Raft::new(
            cfg.id,
            raft_config(&cfg)?,
            net.clone(),
            log_store,
            sm.clone(),
        ),
    )
    .await
    .context("start raft")?;
    let proposer_config = crate::proposer::ProposerConfig {
        entry_bytes_max: cfg.entry_bytes_max,
        write_timeout: Duration::from_millis(cfg.write_timeout_ms),
        clock: crate::clock::Clock::System,
    };
    let proposer = Proposer::start(raft.clone(), net.clone(), cfg.id, proposer_config);
    let metrics = MetricsHandle::install();
    metrics::spawn_raft_sampler(raft.clone(), sm.reader());

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let boot = crate::raft_types::metrics_of(&raft);
    let started_blank = boot.last_log_index.is_none() && boot.current_term == 0;
    let refuse_votes_until = started_blank.then(|| {
        std::time::Instant::now() + Duration::from_millis(2 * cfg.election_timeout_ms_max)
    });
    let leader_contact = crate::failover::LeaderContact::default();
    tasks.push(tokio::spawn(crate::failover::run(
        raft.clone(),
        net.clone(),
        cfg.id,
        leader_contact.clone(),
        crate::failover::WatchTiming {
            heartbeat_ms: cfg.heartbeat_ms,
            lease_ms: cfg.election_timeout_ms_max,
        },
        shutdown_rx.clone(),
    )));
    let raft_router = raft_server::router(RaftServerState {
        raft: raft.clone(),
        sm: sm.clone(),
        proposer: proposer.clone(),
        key: crate::auth::peer_mac::PeerKey::new(&cfg.cluster_secret),
        refuse_votes_until,
        leader_contact,
        body_read_timeout: Duration::from_millis(cfg.body_read_timeout_ms),
    });
    let raft_tls = tls.as_ref().map(|t| t.raft.clone());
    tasks.push(serve(
        raft_listener,
        raft_router,
        &cfg,
        raft_tls,
        shutdown_rx.clone(),
    ));
    let state = AppState {
        node_id: cfg.id,
        raft: raft.clone(),
        reader: sm.reader(),
        proposer: proposer.clone(),
        net,
        client_auth,
        peer_allow: Arc::new(peer_allow),
        metrics,
        http: crate::tls::reqwest_builder(tls.as_ref())
            .pool_idle_timeout(server_limits(&cfg).client_pool_idle())
            .connect_timeout(Duration::from_millis(OUTBOUND_CONNECT_TIMEOUT_MS))
            .timeout(Duration::from_millis(ADMIN_REQUEST_TIMEOUT_MS))
            .build()
            .context("http client")?,
        self_addr: node_addr.clone(),
        history_in_memory_max: cfg.history_in_memory_max,
        limits: api::limits::ApiLimits::new(
            cfg.api_concurrency_max,
            cfg.events_subscribers_max,
            Duration::from_millis(cfg.body_read_timeout_ms),
        ),
    };
    tasks.push(serve(
        api_listener,
        api::router(state),
        &cfg,
        tls.as_ref().map(|t| t.api.clone()),
        shutdown_rx.clone(),
    ));
    if let Some(url) = cfg.nats_url.clone() {
        let relay_cfg = crate::relay::RelayConfig {
            nats_url: url,
            nats: cfg.nats_access.access()?,
            stream_bytes_max: cfg.nats_stream_bytes_max,
        };
        tasks.push(crate::relay::spawn(
            relay_cfg,
            raft.clone(),
            sm.reader(),
            shutdown_rx.clone(),
        ));
    }
    tasks.push(tokio::spawn(crate::history_bound::run(
        sm.reader(),
        cfg.history_in_memory_max,
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(tick_loop(
        raft.clone(),
        sm.reader(),
        proposer,
        shutdown_rx.clone(),
    )));

    bootstrap(&cfg, &raft, &node_addr, tls.as_ref()).await?;
    tracing::info!(id = cfg.id, api = %node_addr.api, raft = %node_addr.raft, "node.started");
    Ok(RunningNode {
        id: cfg.id,
        raft,
        api_addr,
        raft_addr,
        node_addr,
        sm,
        shutdown_tx,
        tasks,
    })
}

/// Serves `router` on `listener` with the listener limits of `cfg` (over TLS with `tls`)
/// until `stop`.
fn serve(
    listener: TcpListener,
    router: axum::Router,
    cfg: &NodeConfig,
    tls: Option<netserve::tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    netserve::http_server::spawn(listener, router, server_limits(cfg), tls, stop)
}

fn server_limits(cfg: &NodeConfig) -> netserve::http_server::ServerLimits {
    netserve::http_server::ServerLimits {
        header_read_timeout: Duration::from_millis(cfg.header_read_timeout_ms),
    }
}

/// Initializes from `--peers` (smallest id, never-initialized node only) or joins via `--join`;
/// peers' APIs are reached trusting the cluster CA when TLS is on.
async fn bootstrap(
    cfg: &NodeConfig,
    raft: &Raft,
    me: &NodeAddr,
    tls: Option<&crate::tls::NodeTls>,
) -> anyhow::Result<()> {
    let probe = outbound_client(tls, PEER_PROBE_TIMEOUT_MS)?;
    let join_http = outbound_client(tls, ADMIN_REQUEST_TIMEOUT_MS)?;
    let peers = cfg.peer_map()?;
    if !peers.is_empty() && peers.keys().next() == Some(&cfg.id) && !raft.is_initialized().await? {
        if peers_already_clustered(cfg.id, &peers, &probe).await {
            // Our data was wiped but the others still form the cluster: wait to be replicated
            // to (we are still a member) instead of starting a second cluster.
            tracing::warn!("cluster.initialize skipped: peers already form a cluster");
        } else {
            tracing::info!(members = ?peers.keys().collect::<Vec<_>>(), "cluster.initialize");
            raft.initialize(peers).await.context("initialize cluster")?;
        }
    }
    if let Some(join) = cfg.join.clone() {
        let (id, me, token) = (cfg.id, me.clone(), cfg.admin_token.clone());
        let raft = raft.clone();
        tokio::spawn(async move {
            join_cluster(&raft, &join_http, &join, id, &me, token.as_deref()).await
        });
    }
    Ok(())
}

/// True when any other peer reports a non-empty voter set (an existing cluster).
async fn peers_already_clustered(
    self_id: u64,
    peers: &std::collections::BTreeMap<u64, NodeAddr>,
    http: &reqwest::Client,
) -> bool {
    for (id, addr) in peers {
        if *id == self_id {
            continue;
        }
        let status = http
            .get(format!("{}/cluster/status", addr.api))
            .send()
            .await;
        if let Ok(r) = status {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if v["voters"].as_array().is_some_and(|a| !a.is_empty()) {
                    return true;
                }
            }
        }
    }
    false
}

/// Longest a joining node waits, after being added as a learner, to receive the log up to its
/// own addition before it asks again; a large catch-up just takes several rounds.
const JOIN_REPLICATED_WAIT_MS: u64 = 10_000;

/// True once this node's log reaches `index`: the leader reaches it on the Raft port and
/// proved the cluster secret (`auth::peer_mac`). Waits at most [`JOIN_REPLICATED_WAIT_MS`].
async fn replicated_to(raft: &Raft, index: u64) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_millis(JOIN_REPLICATED_WAIT_MS);
    while std::time::Instant::now() < deadline {
        let m = crate::raft_types::metrics_of(raft);
        if m.last_log_index.is_some_and(|i| i >= index) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Adds this node as a learner through `join_url`, then promotes it to voter, but only once the
/// leader's entries arrived here: a node the leader cannot replicate to (unreachable Raft URL,
/// different cluster secret) would otherwise become a voter that never acknowledges, and stall
/// every commit. Retries until done.
async fn join_cluster(
    raft: &Raft,
    http: &reqwest::Client,
    join_url: &str,
    id: u64,
    me: &NodeAddr,
    token: Option<&str>,
) {
    let post = |path: &str, body: serde_json::Value| {
        let mut r = http.post(format!("{join_url}{path}")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    loop {
        let added = post(
            "/cluster/learners",
            serde_json::json!({"id": id, "api": me.api, "raft": me.raft}),
        )
        .await;
        let added_index = match added {
            Ok(r) if r.status().is_success() => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["index"].as_u64()),
            _ => None,
        };
        let replicated = match added_index {
            Some(index) => replicated_to(raft, index).await,
            None => false,
        };
        if added_index.is_some() && !replicated {
            tracing::warn!(
                id,
                "added as learner but the leader's entries do not arrive: check --cluster-secret \
                 and that --advertise-raft is reachable from the leader; not promoting"
            );
        }
        if replicated {
            let status: Option<serde_json::Value> =
                match http.get(format!("{join_url}/cluster/status")).send().await {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                };
            let mut voters: Vec<u64> = status
                .and_then(|s| serde_json::from_value(s["voters"].clone()).ok())
                .unwrap_or_default();
            if !voters.contains(&id) {
                voters.push(id);
            }
            let changed = post(
                "/cluster/membership",
                serde_json::json!({"voters": voters, "retain": false}),
            )
            .await;
            if matches!(&changed, Ok(r) if r.status().is_success()) {
                tracing::info!(id, "cluster.joined");
                return;
            }
        }
        tracing::warn!(id, join_url, "join attempt failed; retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn tick_loop(
    raft: Raft,
    reader: crate::sm::LedgerReader,
    proposer: Proposer,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now_us = proposer.now_us();
        let due = reader
            .next_expiry_us()
            .is_some_and(|deadline| deadline < now_us);
        if due && raft.is_leader() {
            let cmd = Command {
                id: crate::api::ids::TICK_ID.into(),
                timestamp_us: 0,
                body: CommandBody::Tick,
            };
            if let Err(e) = proposer.propose(vec![cmd]).await {
                tracing::debug!(error = %e, "tick not proposed");
            }
        }
    }
}

impl RunningNode {
    /// Stops the servers and Raft.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let _ = self.raft.shutdown().await;
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }

    /// Base URL of the client API.
    pub fn api_url(&self) -> String {
        self.node_addr.api.clone()
    }
}

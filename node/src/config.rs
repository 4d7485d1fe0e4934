//! Node configuration: one struct, from flags and environment, validated at start, logged once
//! with secrets redacted.

use crate::raft_types::{NodeAddr, NodeId};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default cluster secret, for local demos only; deployments must set their own.
pub const DEV_CLUSTER_SECRET: &str = "raftledger-dev-secret";

/// Default size bound of the JetStream stream `LEDGER`: 1 GiB, several million events.
pub const NATS_STREAM_BYTES_MAX_DEFAULT: i64 = 1 << 30;

/// Default `--write-timeout-ms`: well above a commit on a healthy cluster (milliseconds), well
/// below client timeouts, so a stuck write is answered rather than abandoned.
pub const WRITE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default `--api-concurrency-max`: a few thousand waiting requests cost a few MiB; beyond that
/// queueing only adds latency, so the excess is shed.
pub const API_CONCURRENCY_MAX_DEFAULT: usize = 4096;
/// Default `--events-subscribers-max`: each stream holds a buffered chunk of events and a
/// connection for as long as it follows.
pub const EVENTS_SUBSCRIBERS_MAX_DEFAULT: usize = 256;
/// Default `--header-read-timeout-ms` (also the idle keep-alive timeout).
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default `--body-read-timeout-ms`: a 1 MiB body at 100 KiB/s.
pub const BODY_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// Shortest accepted timeout flag: below it ordinary requests on a loaded machine would fail.
const TIMEOUT_MS_MIN: u64 = 100;
/// Longest accepted timeout flag: ten minutes; longer is a typo or an unbounded wait.
const TIMEOUT_MS_MAX: u64 = 600_000;
/// Largest `--wal-cache-mb` (1 TiB).
const WAL_CACHE_MB_MAX: u64 = 1 << 20;

/// Configuration of one node process.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeConfig {
    /// Raft node id (unique, > 0).
    #[arg(long, env = "RAFTLEDGER_ID")]
    pub id: NodeId,
    /// Client API listen address (`host:port`; port 0 picks a free port).
    #[arg(long, env = "RAFTLEDGER_API", default_value = "127.0.0.1:8080")]
    pub api: String,
    /// Raft RPC listen address; must differ from the API port.
    #[arg(long, env = "RAFTLEDGER_RAFT", default_value = "127.0.0.1:9080")]
    pub raft: String,
    /// Data directory (WAL, state machine, snapshots).
    #[arg(long, env = "RAFTLEDGER_DATA")]
    pub data: PathBuf,
    /// URL other nodes and clients use for this node's API (default: http://<bound api addr>).
    #[arg(long, env = "RAFTLEDGER_ADVERTISE_API")]
    pub advertise_api: Option<String>,
    /// URL other nodes use for this node's Raft RPC (default: http://<bound raft addr>).
    #[arg(long, env = "RAFTLEDGER_ADVERTISE_RAFT")]
    pub advertise_raft: Option<String>,
    /// Join an existing cluster through any member's API URL: added as learner, then voter.
    #[arg(long, env = "RAFTLEDGER_JOIN", conflicts_with = "peers")]
    pub join: Option<String>,
    /// Initial members `id=api_url|raft_url`, comma separated. The node with the smallest id
    /// initializes the cluster if its data directory has never been initialized.
    #[arg(long, env = "RAFTLEDGER_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Shared secret authenticating Raft RPC between nodes.
    #[arg(long, env = "RAFTLEDGER_CLUSTER_SECRET", default_value = DEV_CLUSTER_SECRET, hide_default_value = true)]
    pub cluster_secret: String,
    /// Bearer token required on /cluster/* mutations (unset: open, for local demos).
    #[arg(long, env = "RAFTLEDGER_ADMIN_TOKEN")]
    pub admin_token: Option<String>,
    /// Leader heartbeat interval.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_ms: u64,
    /// Election timeout lower bound (a follower waits at least this long without a heartbeat).
    #[arg(long, default_value_t = 400)]
    pub election_timeout_ms_min: u64,
    /// Election timeout upper bound (randomized between min and max).
    #[arg(long, default_value_t = 700)]
    pub election_timeout_ms_max: u64,
    /// Build a snapshot (and later purge the log) after this many entries since the last one.
    #[arg(long, default_value_t = 50_000)]
    pub snapshot_every_entries: u64,
    /// Log entries kept after a snapshot, so briefly lagging followers catch up from the log
    /// instead of receiving a full snapshot.
    #[arg(long, default_value_t = 5_000)]
    pub logs_kept_after_snapshot: u64,
    /// Size of each WAL segment file in bytes (preallocated; at least 64 KiB). Purging the log
    /// after a snapshot deletes whole segments, so smaller segments free disk sooner and make
    /// compaction frequent (tests use this to age a cluster quickly). An entry larger than a
    /// segment gets a segment sized to fit it.
    #[arg(long, env = "RAFTLEDGER_WAL_SEGMENT_BYTES", default_value_t = crate::wal::SEGMENT_BYTES_DEFAULT)]
    pub wal_segment_bytes: u64,
    /// sled's page cache for the state machine's event history, in MiB. The accounts and the
    /// rest of the live state are in memory regardless; this bounds what sled keeps of the
    /// stored event blocks (sled's own default would be 1 GiB).
    #[arg(long, env = "RAFTLEDGER_SLED_CACHE_MB", default_value_t = crate::sm::SLED_CACHE_MB_DEFAULT)]
    pub sled_cache_mb: u64,
    /// The WAL's cache of recent log entries (replication and apply read them from memory), in
    /// MiB of their records as written (decoded, they take about twice that). At most 512
    /// entries are cached whatever this allows; older entries are read back from disk.
    #[arg(long, env = "RAFTLEDGER_WAL_CACHE_MB", default_value_t = crate::wal::ENTRY_CACHE_BYTES_MAX_DEFAULT >> 20)]
    pub wal_cache_mb: u64,
    /// Finished transfers and idempotency entries held in memory (about 350 bytes each) before
    /// the node moves them to the cold history file on disk.
    #[arg(long, env = "RAFTLEDGER_HISTORY_IN_MEMORY_MAX", default_value_t = crate::history_bound::HISTORY_IN_MEMORY_MAX_DEFAULT)]
    pub history_in_memory_max: u64,
    /// NATS server URL; when set, the leader relays committed events to JetStream stream
    /// `LEDGER` (relay off when unset).
    #[arg(long, env = "RAFTLEDGER_NATS_URL")]
    pub nats_url: Option<String>,
    /// Size bound of the JetStream stream `LEDGER` in bytes (set when the relay creates it).
    /// It must fit the server's file-store budget, which defaults to a share of free disk;
    /// a full stream refuses publishes and the relay lag grows (nothing is dropped).
    #[arg(long, env = "RAFTLEDGER_NATS_STREAM_BYTES_MAX", default_value_t = NATS_STREAM_BYTES_MAX_DEFAULT)]
    pub nats_stream_bytes_max: i64,
    /// NATS credentials and TLS of the relay.
    #[command(flatten)]
    pub nats_access: crate::relay::access::NatsArgs,
    /// Overrides the Raft URL this node dials for a peer, `id=url` (repeatable or comma
    /// separated). Membership keeps the peer's advertised URL; only this node's outbound Raft
    /// RPC (replication, votes, read-index, write forwarding) goes to `url`. The chaos harness
    /// uses it to route every directed link through its own fault-injecting proxy.
    #[arg(long, env = "RAFTLEDGER_PEER_RAFT_ADDR", value_delimiter = ',')]
    pub peer_raft_addr: Vec<String>,
    // ----- Limits: bounds on client-shaped work and load shedding (README, "Limits"). -----
    /// Largest encoded size of one Raft entry, in bytes. Concurrent requests are coalesced into
    /// entries up to this size; one request whose commands alone exceed it is refused with 413
    /// `entry_too_large`. At most 6 MiB, below the WAL's 8 MiB record limit.
    #[arg(long, env = "RAFTLEDGER_ENTRY_BYTES_MAX", default_value_t = crate::proposer::ENTRY_BYTES_MAX_DEFAULT)]
    pub entry_bytes_max: u64,
    /// Server-side deadline of a write, from arrival to commit. Past it the client gets 503
    /// `write_outcome_unknown`: the command may still commit, and retrying with the same id is
    /// safe. Also the timeout of a write forwarded from a follower to the leader.
    #[arg(long, env = "RAFTLEDGER_WRITE_TIMEOUT_MS", default_value_t = WRITE_TIMEOUT_MS_DEFAULT)]
    pub write_timeout_ms: u64,
    /// Client API requests handled at once; more are shed with 503 `overloaded` + Retry-After.
    /// `/healthz`, `/readyz`, `/metrics` and `/cluster/status` are never shed.
    #[arg(long, env = "RAFTLEDGER_API_CONCURRENCY_MAX", default_value_t = API_CONCURRENCY_MAX_DEFAULT)]
    pub api_concurrency_max: usize,
    /// Open `GET /v1/events` streams at once; more are refused with 503 `too_many_subscribers`.
    #[arg(long, env = "RAFTLEDGER_EVENTS_SUBSCRIBERS_MAX", default_value_t = EVENTS_SUBSCRIBERS_MAX_DEFAULT)]
    pub events_subscribers_max: usize,
    /// Longest a client may take to send a request's headers, on the API and the Raft
    /// listener; also how long an idle keep-alive connection is kept. Stops slowloris clients.
    #[arg(long, env = "RAFTLEDGER_HEADER_READ_TIMEOUT_MS", default_value_t = HEADER_READ_TIMEOUT_MS_DEFAULT)]
    pub header_read_timeout_ms: u64,
    /// API: longest a client may take to send a whole request body (408 `body_read_timeout`).
    /// Raft listener: longest pause between two chunks of a body (snapshots stream for longer).
    #[arg(long, env = "RAFTLEDGER_BODY_READ_TIMEOUT_MS", default_value_t = BODY_READ_TIMEOUT_MS_DEFAULT)]
    pub body_read_timeout_ms: u64,
    /// Authentication flags (`auth::args`).
    #[command(flatten)]
    pub auth: crate::auth::args::AuthArgs,
    /// TLS: `--tls-cert`, `--tls-key`, `--tls-ca` (see `crate::tls`).
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
}

impl NodeConfig {
    /// Validates cross-field rules.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.id > 0, "--id must be > 0");
        anyhow::ensure!(
            self.nats_stream_bytes_max >= 1 << 20,
            "--nats-stream-bytes-max must be at least 1 MiB"
        );
        anyhow::ensure!(
            self.api != self.raft,
            "--api and --raft must be different addresses"
        );
        anyhow::ensure!(
            self.heartbeat_ms * 2 < self.election_timeout_ms_min
                && self.election_timeout_ms_min < self.election_timeout_ms_max,
            "need heartbeat_ms * 2 < election_timeout_ms_min < election_timeout_ms_max"
        );
        anyhow::ensure!(
            !self.cluster_secret.is_empty(),
            "--cluster-secret must not be empty"
        );
        anyhow::ensure!(
            self.wal_segment_bytes >= crate::wal::SEGMENT_BYTES_MIN,
            "--wal-segment-bytes must be at least {}",
            crate::wal::SEGMENT_BYTES_MIN
        );
        anyhow::ensure!(
            self.history_in_memory_max >= 1,
            "--history-in-memory-max must be at least 1"
        );
        anyhow::ensure!(
            (1..=crate::sm::SLED_CACHE_MB_MAX).contains(&self.sled_cache_mb),
            "--sled-cache-mb must be in 1..={}",
            crate::sm::SLED_CACHE_MB_MAX
        );
        anyhow::ensure!(
            (1..=WAL_CACHE_MB_MAX).contains(&self.wal_cache_mb),
            "--wal-cache-mb must be in 1..={WAL_CACHE_MB_MAX}"
        );
        anyhow::ensure!(
            (crate::proposer::ENTRY_BYTES_MAX_MIN..=crate::proposer::ENTRY_BYTES_MAX_LIMIT)
                .contains(&self.entry_bytes_max),
            "--entry-bytes-max must be in {}..={}",
            crate::proposer::ENTRY_BYTES_MAX_MIN,
            crate::proposer::ENTRY_BYTES_MAX_LIMIT
        );
        for (flag, ms) in [
            ("--write-timeout-ms", self.write_timeout_ms),
            ("--header-read-timeout-ms", self.header_read_timeout_ms),
            ("--body-read-timeout-ms", self.body_read_timeout_ms),
        ] {
            anyhow::ensure!(
                (TIMEOUT_MS_MIN..=TIMEOUT_MS_MAX).contains(&ms),
                "{flag} must be in {TIMEOUT_MS_MIN}..={TIMEOUT_MS_MAX}"
            );
        }
        anyhow::ensure!(
            self.api_concurrency_max >= 1 && self.events_subscribers_max >= 1,
            "--api-concurrency-max and --events-subscribers-max must be at least 1"
        );
        self.peer_map()?;
        self.peer_raft_overrides()?;
        crate::auth::exposure::Exposure::of(self).check()?;
        self.nats_access.access()?;
        self.check_member_urls()?;
        Ok(())
    }

    /// Validates the `--peers` and `--join` URLs (`auth::member_url`, with `--peer-allow`).
    fn check_member_urls(&self) -> anyhow::Result<()> {
        let allow = crate::auth::member_url::PeerAllow::parse(&self.auth.peer_allow)
            .map_err(anyhow::Error::msg)?;
        let check = |what: &str, url: &str| {
            crate::auth::member_url::validate(what, url, &allow).map_err(anyhow::Error::msg)
        };
        for (id, addr) in self.peer_map()? {
            check(&format!("--peers {id} api"), &addr.api)?;
            check(&format!("--peers {id} raft"), &addr.raft)?;
        }
        if let Some(join) = &self.join {
            check("--join", join)?;
        }
        crate::tls::validate(self)?;
        Ok(())
    }

    /// Parses `--peer-raft-addr` into a map peer id -> Raft URL to dial instead of the member's.
    pub fn peer_raft_overrides(&self) -> anyhow::Result<BTreeMap<NodeId, String>> {
        let mut m = BTreeMap::new();
        for p in &self.peer_raft_addr {
            let (id, url) = p
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("peer raft addr {p:?}: expected id=url"))?;
            m.insert(id.parse()?, url.to_owned());
        }
        Ok(m)
    }

    /// Parses `--peers` into a member map.
    pub fn peer_map(&self) -> anyhow::Result<BTreeMap<NodeId, NodeAddr>> {
        let mut m = BTreeMap::new();
        for p in &self.peers {
            let (id, rest) = p
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("peer {p:?}: expected id=api_url|raft_url"))?;
            let (api, raft) = rest
                .split_once('|')
                .ok_or_else(|| anyhow::anyhow!("peer {p:?}: expected id=api_url|raft_url"))?;
            m.insert(
                id.parse()?,
                NodeAddr {
                    api: api.into(),
                    raft: raft.into(),
                },
            );
        }
        Ok(m)
    }

    /// Logs the effective configuration once, secrets redacted.
    pub fn log_effective(&self) {
        tracing::info!(
            id = self.id,
            api = %self.api,
            raft = %self.raft,
            data = %self.data.display(),
            join = ?self.join,
            peers = ?self.peers,
            cluster_secret = if self.cluster_secret == DEV_CLUSTER_SECRET { "<dev default>" } else { "<redacted>" },
            admin_token = if self.admin_token.is_some() { "<redacted>" } else { "<none>" },
            heartbeat_ms = self.heartbeat_ms,
            election_timeout_ms_min = self.election_timeout_ms_min,
            election_timeout_ms_max = self.election_timeout_ms_max,
            snapshot_every_entries = self.snapshot_every_entries,
            logs_kept_after_snapshot = self.logs_kept_after_snapshot,
            wal_segment_bytes = self.wal_segment_bytes,
            sled_cache_mb = self.sled_cache_mb,
            wal_cache_mb = self.wal_cache_mb,
            history_in_memory_max = self.history_in_memory_max,
            nats_url = ?self.nats_url,
            nats_stream_bytes_max = self.nats_stream_bytes_max,
            nats_access = %self.nats_access.access().map(|a| a.describe()).unwrap_or_default(),
            peer_raft_addr = ?self.peer_raft_addr,
            entry_bytes_max = self.entry_bytes_max,
            write_timeout_ms = self.write_timeout_ms,
            api_concurrency_max = self.api_concurrency_max,
            events_subscribers_max = self.events_subscribers_max,
            header_read_timeout_ms = self.header_read_timeout_ms,
            body_read_timeout_ms = self.body_read_timeout_ms,
            insecure = self.auth.insecure,
            peer_allow = ?self.auth.peer_allow,
            api_keys_file = ?self.auth.api_keys_file,
            allowed_hosts = ?self.auth.allowed_hosts,
            tls = self.tls.enabled(),
            "node.config"
        );
    }

    /// A config for tests and the demo: loopback, given ports (0 = any).
    pub fn local(id: NodeId, data: PathBuf, api_port: u16, raft_port: u16) -> Self {
        Self {
            id,
            api: format!("127.0.0.1:{api_port}"),
            raft: format!("127.0.0.1:{raft_port}"),
            data,
            advertise_api: None,
            advertise_raft: None,
            join: None,
            peers: Vec::new(),
            cluster_secret: DEV_CLUSTER_SECRET.into(),
            admin_token: None,
            heartbeat_ms: 100,
            election_timeout_ms_min: 400,
            election_timeout_ms_max: 700,
            snapshot_every_entries: 50_000,
            logs_kept_after_snapshot: 5_000,
            wal_segment_bytes: crate::wal::SEGMENT_BYTES_DEFAULT,
            sled_cache_mb: crate::sm::SLED_CACHE_MB_DEFAULT,
            wal_cache_mb: crate::wal::ENTRY_CACHE_BYTES_MAX_DEFAULT >> 20,
            history_in_memory_max: crate::history_bound::HISTORY_IN_MEMORY_MAX_DEFAULT,
            nats_url: None,
            nats_stream_bytes_max: NATS_STREAM_BYTES_MAX_DEFAULT,
            nats_access: Default::default(),
            peer_raft_addr: Vec::new(),
            entry_bytes_max: crate::proposer::ENTRY_BYTES_MAX_DEFAULT,
            write_timeout_ms: WRITE_TIMEOUT_MS_DEFAULT,
            api_concurrency_max: API_CONCURRENCY_MAX_DEFAULT,
            events_subscribers_max: EVENTS_SUBSCRIBERS_MAX_DEFAULT,
            header_read_timeout_ms: HEADER_READ_TIMEOUT_MS_DEFAULT,
            body_read_timeout_ms: BODY_READ_TIMEOUT_MS_DEFAULT,
            auth: Default::default(),
            tls: crate::tls::TlsArgs::default(),
        }
    }
}

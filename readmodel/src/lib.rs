//! raftledger read model (CQRS query side): consumes the JetStream stream `LEDGER` (one message
//! per committed ledger event, stream sequence == event_seq) into PostgreSQL projections and
//! serves them over HTTP. PostgreSQL is derived state; the Raft log is ground truth.
//!
//! Modules:
//! - `config`    — flags and environment.
//! - `access`    — admin token policy, NATS credentials and TLS, PostgreSQL TLS and roles.
//! - `event`     — decoding the wire event JSON (poison = does not decode).
//! - `fold`      — projection logic without I/O: a batch of events -> rows, parking poison.
//! - `store`     — SQL for one projection schema: prepared statements, load rows, write a
//!   batch + checkpoint (pipelined, COPY for big history batches).
//! - `schema`    — numbered migrations, projection generations, the atomic swap.
//! - `cache`     — the writer's in-memory account rows (folds without loading).
//! - `deferred`  — history indexes dropped while a rebuild bulk-loads, built before the swap.
//! - `feed`      — the JetStream reader task: reads and decodes ahead of the writer.
//! - `projector` — the consumer: checkpoint + 1 onwards, batches, contiguity asserted.
//! - `watermark` — LISTEN/NOTIFY- (and projector-) fed checkpoint of the active schema.
//! - `manager`   — the live projector and blue/green rebuilds.
//! - `lag`       — stream head vs checkpoint, in events and ms.
//! - `api`       — the query HTTP API.
//! - `tls`       — `--tls-cert`/`--tls-key` and the TLS listener of the query API.
//! - `metrics`   — Prometheus recorder.
//! - `local`     — throw-away nats-server and PostgreSQL for tests and the demo.
//! - `bench`     — `raftledger-readmodel bench` (read-model bars of BENCHMARKS.md).

pub mod access;
pub mod api;
pub mod bench;
pub mod cache;
pub mod config;
pub mod deferred;
pub mod event;
pub mod feed;
pub mod fold;
#[cfg(test)]
mod fold_tests;
pub mod lag;
pub mod local;
pub mod manager;
pub mod metrics;
pub mod projector;
pub mod schema;
pub mod store;
pub mod tls;
pub mod watermark;

use anyhow::Context as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

/// A running read model.
pub struct RunningReadModel {
    /// Bound API address.
    pub addr: SocketAddr,
    /// The projection manager.
    pub manager: manager::Manager,
    server: tokio::task::JoinHandle<()>,
    /// Dropping it stops the server (graceful); kept for the life of the read model.
    _stop: tokio::sync::watch::Sender<bool>,
    /// `http` or `https`.
    scheme: &'static str,
}

impl RunningReadModel {
    /// Base URL of the API.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Waits for the server task (runs until the process ends).
    pub async fn wait(self) {
        let _ = self.server.await;
    }
}

/// Starts the read model: database set-up, projector, watermark, lag sampler and the API.
/// The binary and the tests call the same function.
pub async fn start(cfg: config::ReadModelConfig) -> anyhow::Result<RunningReadModel> {
    cfg.validate()?;
    let admin = access::admin::policy(
        &cfg.listen,
        cfg.access.admin_token.as_deref(),
        cfg.access.insecure,
    )?;
    cfg.log_effective();
    let tls = cfg.tls.load().context("load TLS certificate")?;
    let upstream = access::Upstream {
        nats: cfg.access.nats()?,
        pg: cfg.access.pg()?,
    };
    let manager = manager::Manager::start(&cfg.postgres_url, &cfg.nats_url, upstream.clone())
        .await
        .context("set up projections")?;
    let read_url = cfg
        .access
        .pg_read_url
        .as_deref()
        .unwrap_or(&cfg.postgres_url);
    let pool = upstream.pg.pool(read_url, cfg.query_connections_max)?;
    let nats = upstream
        .nats
        .options()
        .await?
        .retry_on_initial_connect()
        .connect(&cfg.nats_url)
        .await
        .context("nats")?;
    let js = async_nats::jetstream::new(nats);
    lag::spawn_sampler(js.clone(), manager.clone());
    let state = api::AppState {
        pool,
        manager: manager.clone(),
        js,
        metrics: metrics::MetricsHandle::install(),
        admin,
    };
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("bind {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let router = api::router(state);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let limits = netserve::http_server::ServerLimits {
        header_read_timeout: Duration::from_millis(cfg.header_read_timeout_ms),
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = netserve::http_server::spawn(listener, router, limits, tls, stop_rx);
    tracing::info!(%addr, scheme, "readmodel.listening");
    Ok(RunningReadModel {
        addr,
        manager,
        server,
        _stop: stop,
        scheme,
    })
}

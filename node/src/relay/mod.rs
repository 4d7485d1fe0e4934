//! The relay: the committed log is the outbox. Only the current leader publishes committed
//! events to the JetStream stream `LEDGER`, where stream sequence == event_seq.
//!
//! - `access`  — NATS credentials and TLS flags (`--nats-user`, `--nats-tls-ca`, …).
//! - `stream`  — stream configuration, server version check, the cursor (stream last sequence).
//! - `session` — one leader session: pipelined, sequence-checked publishes from the cursor on.
//! - `lag`     — relay lag gauges (events and seconds) sampled from the log and the cursor.
//!
//! The relay never blocks commands: when NATS is down the session fails, the loop backs off
//! and retries, and the backlog drains from the log when NATS returns. If JetStream lost a tail
//! (it fsyncs lazily), the next publish fails its expected-last-sequence check and the relay
//! resyncs to the shorter cursor and republishes from the log.

pub mod access;
mod lag;
pub mod session;
pub mod stream;

use crate::raft_types::Raft;
use crate::sm::LedgerReader;
use session::{Session, SessionEnd, WINDOW_MAX};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Wait after a failed connect or session before trying again (NATS down, stream full, …).
const RETRY_BACKOFF_MS: u64 = 500;
/// Bound on JetStream API requests and on each publish ack: a dead server is noticed this fast.
const NATS_REQUEST_TIMEOUT_MS: u64 = 2_000;
/// How long to wait for the TCP/handshake of one connect attempt.
const NATS_CONNECT_TIMEOUT_MS: u64 = 2_000;

/// Where and how the leader relays: the NATS URL and the stream's size bound in bytes.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// NATS server URL.
    pub nats_url: String,
    /// Credentials and TLS of the connection.
    pub nats: readmodel::access::NatsAccess,
    /// Size bound of stream `LEDGER` in bytes, applied when the relay creates it.
    pub stream_bytes_max: i64,
}

/// Starts the relay task. It runs until `stop` turns true.
pub fn spawn(
    cfg: RelayConfig,
    raft: Raft,
    reader: LedgerReader,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let relayed_seq = Arc::new(AtomicU64::new(0));
    lag::spawn_sampler(
        raft.clone(),
        reader.clone(),
        relayed_seq.clone(),
        stop.clone(),
    );
    tokio::spawn(run(cfg, raft, reader, relayed_seq, stop))
}

async fn run(
    cfg: RelayConfig,
    raft: Raft,
    reader: LedgerReader,
    relayed_seq: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let client = match connect(&cfg.nats_url, &cfg.nats).await {
            Ok(c) => c,
            Err(e) => {
                metrics::counter!("raftledger_relay_connect_errors_total").increment(1);
                tracing::warn!(url = %cfg.nats_url, error = format!("{e:#}"), "relay.connect_failed");
                backoff(&mut stop).await;
                continue;
            }
        };
        let served = serve(&client, &cfg, &raft, &reader, &relayed_seq, &mut stop).await;
        if let Err(e) = served {
            metrics::counter!("raftledger_relay_session_errors_total").increment(1);
            tracing::warn!(error = format!("{e:#}"), "relay.stopped_with_error");
            backoff(&mut stop).await;
        }
    }
    tracing::info!("relay.stopped");
}

/// Serves one connection: version check, stream, then sessions while leader.
async fn serve(
    client: &async_nats::Client,
    cfg: &RelayConfig,
    raft: &Raft,
    reader: &LedgerReader,
    relayed_seq: &AtomicU64,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let version = stream::check_server_version(client)?;
    tracing::info!(server_version = %version, "relay.connected");
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(NATS_REQUEST_TIMEOUT_MS))
        .ack_timeout(Duration::from_millis(NATS_REQUEST_TIMEOUT_MS))
        .max_ack_inflight(WINDOW_MAX * 2)
        .build(client.clone());
    let mut stream_handle: Option<async_nats::jetstream::stream::Stream> = None;
    while !*stop.borrow() {
        if !raft.is_leader() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let stream = match &stream_handle {
            Some(s) => s,
            None => stream_handle.insert(stream::ensure(&js, cfg.stream_bytes_max).await?),
        };
        let session = Session {
            js: &js,
            stream,
            reader,
            relayed_seq,
        };
        match session.run(|| raft.is_leader(), stop).await? {
            SessionEnd::Stopped => tracing::info!("relay.session_stopped"),
            SessionEnd::Resync(why) => {
                metrics::counter!("raftledger_relay_resyncs_total").increment(1);
                tracing::info!(reason = %why, "relay.resync");
            }
        }
    }
    Ok(())
}

async fn connect(
    url: &str,
    access: &readmodel::access::NatsAccess,
) -> anyhow::Result<async_nats::Client> {
    let client = access
        .options()
        .await?
        .connection_timeout(Duration::from_millis(NATS_CONNECT_TIMEOUT_MS))
        .max_reconnects(None)
        .connect(url)
        .await?;
    Ok(client)
}

async fn backoff(stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS)) => {}
        _ = stop.changed() => {}
    }
}

//! The projector: consumes the `LEDGER` stream from its PostgreSQL checkpoint + 1 and commits
//! each batch's rows with the checkpoint in one transaction. Contiguity is asserted twice: the
//! stream sequences of a batch must be checkpoint + 1, + 2, …, and the checkpoint update
//! itself fails unless the checkpoint is still where the batch started. Any error (gap, NATS or
//! PostgreSQL down) tears the session down and a new one starts from the checkpoint in
//! PostgreSQL, the only record of progress.
//!
//! A session is two tasks: the feed (`crate::feed`) reads and decodes messages ahead, and the
//! writer here takes whatever has arrived (up to the batch bound) as the next batch. There is
//! no linger: while one transaction runs, the next batch accumulates, so batches grow with the
//! load and an idle projector commits an event as soon as it arrives.

use crate::cache::AccountCache;
use crate::feed::{self, Delivered};
use crate::fold::Fold;
use crate::store::{self, Store};
use anyhow::Context as _;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Stream the projector reads.
pub const STREAM_NAME: &str = "LEDGER";
/// Events per transaction at most for the live projector. It only binds under a backlog (in
/// steady state a batch is what arrived during the previous commit): thousands amortize the
/// commit, the round trips and the `balances` rows rewritten per event (catching up 100k
/// events measured ~35k events/s at 5,000 against ~23k/s at 1,000); readers never wait on
/// the transaction's row locks.
pub const BATCH_EVENTS_MAX: usize = 5_000;
/// Events per transaction while a rebuild replays the stream from seq 1: nobody waits on an
/// individual event, so big transactions buy throughput (fewer commits, fewer rows of
/// `balances` rewritten per event, history by COPY).
pub const REBUILD_BATCH_EVENTS_MAX: usize = 25_000;
/// The feed reads this many batches ahead of the writer.
const FEED_BATCHES_AHEAD: usize = 2;
/// Back-off after a failed session (NATS or PostgreSQL unreachable, stream missing).
const RETRY_BACKOFF_MS: u64 = 500;
/// Idle wake-up to notice a stop request.
const IDLE_CHECK_MS: u64 = 200;
/// With nothing delivered for this long, ask JetStream for the stream head: if it is past the
/// checkpoint the consumer is stuck (e.g. nats-server restarted and the ordered consumer has
/// not noticed yet) and the session restarts from the checkpoint instead of waiting for the
/// client's own, much longer, heartbeat timeout.
const STALL_CHECK_MS: u64 = 1_500;

/// Where a projector reads and writes.
#[derive(Debug, Clone)]
pub struct Target {
    /// PostgreSQL connection string.
    pub postgres_url: String,
    /// NATS URL.
    pub nats_url: String,
    /// Credentials and TLS for both connections.
    pub upstream: crate::access::Upstream,
    /// Projection schema to fill.
    pub schema: String,
    /// Events per transaction at most ([`BATCH_EVENTS_MAX`] or [`REBUILD_BATCH_EVENTS_MAX`]).
    pub batch_events_max: usize,
    /// Accounts the writer keeps in memory at most ([`crate::cache::CACHE_ACCOUNTS_MAX`]; 0
    /// loads every batch's rows from PostgreSQL).
    pub cache_accounts_max: usize,
    /// The in-process watermark to raise after each commit while `schema` is the active one.
    pub progress: Option<Progress>,
}

/// The in-process watermark a projector raises right after its commits, so `min_seq` readers
/// in this process wake without waiting for the `NOTIFY` round trip (which still feeds the
/// watermark too, and is what other processes see). A raise racing a swap can only make a
/// `min_seq` reader look too early: it then finds the active schema's checkpoint behind in its
/// snapshot and answers 503, never stale rows.
#[derive(Clone)]
pub struct Progress {
    /// The schema queries read.
    pub active: crate::watermark::ActiveSchema,
    /// Its watermark.
    pub watermark: watch::Sender<u64>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("active", &self.active.get())
            .field("watermark", &*self.watermark.borrow())
            .finish()
    }
}

/// Runs projector sessions into `target.schema` until `stop` turns true.
pub async fn run(target: Target, mut stop: watch::Receiver<bool>) {
    tracing::info!(schema = %target.schema, "readmodel.projector_started");
    while !*stop.borrow() {
        if let Err(e) = session(&target, &mut stop).await {
            metrics::counter!("raftledger_readmodel_session_errors_total").increment(1);
            tracing::warn!(schema = %target.schema, error = format!("{e:#}"), "readmodel.session_failed");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS)) => {}
                _ = stop.changed() => {}
            }
        }
    }
    tracing::info!(schema = %target.schema, "readmodel.projector_stopped");
}

async fn session(t: &Target, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
    let (pg, conn) = t
        .upstream
        .pg
        .connect(&t.postgres_url)
        .await
        .context("connect postgres")?;
    let conn_task = tokio::spawn(conn);
    let result = consume(t, &pg, stop).await;
    // Dropping the connection rolls back a transaction an error left open.
    drop(pg);
    conn_task.abort();
    result
}

async fn consume(
    t: &Target,
    pg: &tokio_postgres::Client,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let store = Store::prepare(pg, &t.schema).await.context("prepare")?;
    let (mut checkpoint, _) = store::checkpoint(pg, &t.schema).await?;
    // Read after the checkpoint: if another writer moved the schema in between, the first
    // batch's checkpoint move (from `checkpoint`) fails and the session starts over.
    let mut cache = store
        .load_cache(pg, t.cache_accounts_max)
        .await
        .context("load account cache")?;
    let mut feed = feed::start(
        &t.nats_url,
        &t.upstream.nats,
        checkpoint + 1,
        t.batch_events_max * FEED_BATCHES_AHEAD,
    )
    .await?;
    tracing::info!(schema = %t.schema, from_seq = checkpoint + 1, "readmodel.session_started");
    let mut last_delivery = Instant::now();
    loop {
        let first = tokio::select! {
            m = feed.rx.recv() => m,
            _ = tokio::time::sleep(Duration::from_millis(IDLE_CHECK_MS)) => {
                if last_delivery.elapsed() >= Duration::from_millis(STALL_CHECK_MS) {
                    last_delivery = Instant::now();
                    check_not_stalled(&feed.stream, checkpoint).await?;
                }
                continue;
            }
            _ = stop.changed() => return Ok(()),
        };
        last_delivery = Instant::now();
        if *stop.borrow() {
            return Ok(());
        }
        let mut batch = vec![first.context("feed ended")??];
        while batch.len() < t.batch_events_max {
            match feed.rx.try_recv() {
                Ok(m) => batch.push(m?),
                Err(_) => break,
            }
        }
        for (i, d) in batch.iter().enumerate() {
            let want = checkpoint + 1 + i as u64;
            let got = d.decoded.raw.stream_seq;
            anyhow::ensure!(
                got == want,
                "gap: expected stream sequence {want}, got {got}"
            );
        }
        apply_batch(pg, &store, &mut cache, checkpoint, &batch).await?;
        checkpoint += batch.len() as u64;
        if let Some(p) = t.progress.as_ref().filter(|p| p.active.get() == t.schema) {
            crate::watermark::raise(&p.watermark, checkpoint);
        }
        let now = time::OffsetDateTime::now_utc();
        for d in &batch {
            let s = (now - d.published).as_seconds_f64().max(0.0);
            metrics::histogram!("raftledger_readmodel_publish_to_commit_seconds").record(s);
        }
        metrics::gauge!("raftledger_readmodel_checkpoint_seq", "schema" => t.schema.clone())
            .set(checkpoint as f64);
    }
}

/// Errors when the stream head is past `checkpoint` although nothing is being delivered.
async fn check_not_stalled(
    stream: &async_nats::jetstream::stream::Stream,
    checkpoint: u64,
) -> anyhow::Result<()> {
    let info = tokio::time::timeout(Duration::from_millis(STALL_CHECK_MS), stream.get_info())
        .await
        .context("stream info timed out")?
        .context("stream info")?;
    let head = info.state.last_sequence;
    anyhow::ensure!(
        head <= checkpoint,
        "consumer stalled: stream head {head} > checkpoint {checkpoint}"
    );
    Ok(())
}

/// Folds and commits one contiguous batch after `prev_seq` in one transaction.
async fn apply_batch(
    pg: &tokio_postgres::Client,
    store: &Store,
    cache: &mut AccountCache,
    prev_seq: u64,
    batch: &[Delivered],
) -> anyhow::Result<()> {
    let started = Instant::now();
    let touched = Fold::touched(batch.iter().map(|d| &d.decoded));
    let loaded = match cache.lookup(&touched) {
        Some(l) => l,
        None => store.load(pg, &touched).await?,
    };
    let mut fold = Fold::new(loaded.0, loaded.1);
    for d in batch {
        fold.apply_decoded(&d.decoded);
    }
    let write = fold.finish();
    store.write_and_commit(pg, &write, prev_seq).await?;
    cache.committed(&write);
    metrics::counter!("raftledger_readmodel_events_applied_total").increment(batch.len() as u64);
    metrics::counter!("raftledger_readmodel_events_parked_total")
        .increment(write.parked.len() as u64);
    metrics::histogram!("raftledger_readmodel_batch_seconds")
        .record(started.elapsed().as_secs_f64());
    tracing::debug!(
        schema = store.schema(),
        last_seq = write.last_seq,
        events = batch.len(),
        "readmodel.batch_committed"
    );
    Ok(())
}

//! The projector: consumes the `LEDGER` stream from its PostgreSQL checkpoint + 1 with an
//! ordered consumer, gathers batches, and commits each batch's rows with the checkpoint in one
//! transaction. Contiguity is asserted (stream sequence must be checkpoint + 1, + 2, …); any
//! error (gap, NATS or PostgreSQL down) tears the session down and a new one starts from the
//! checkpoint in PostgreSQL, the only record of progress.

use crate::fold::{Fold, RawEvent};
use crate::store;
use anyhow::Context as _;
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use futures::StreamExt;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Stream the projector reads.
pub const STREAM_NAME: &str = "LEDGER";
/// Events per transaction: hundreds amortize the commit (one fsync) and the round trips; more
/// would make one transaction's locks and the publish-to-commit latency grow.
pub const BATCH_EVENTS_MAX: usize = 500;
/// Events per transaction while a rebuild replays the stream from seq 1: nobody waits on an
/// individual event, so bigger transactions buy throughput (fewer commits and round trips).
pub const REBUILD_BATCH_EVENTS_MAX: usize = 2_000;
/// How long a batch waits for more events after its first: bounds added latency.
const BATCH_LINGER_MS: u64 = 5;
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
    /// Projection schema to fill.
    pub schema: String,
    /// Events per transaction at most ([`BATCH_EVENTS_MAX`] or [`REBUILD_BATCH_EVENTS_MAX`]).
    pub batch_events_max: usize,
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
    let (mut pg, conn) = tokio_postgres::connect(&t.postgres_url, tokio_postgres::NoTls)
        .await
        .context("connect postgres")?;
    let conn_task = tokio::spawn(conn);
    let result = consume(t, &mut pg, stop).await;
    drop(pg);
    conn_task.abort();
    result
}

async fn consume(
    t: &Target,
    pg: &mut tokio_postgres::Client,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (mut checkpoint, _) = store::checkpoint(&*pg, &t.schema).await?;
    let nats = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(&t.nats_url)
        .await
        .context("connect nats")?;
    let js = async_nats::jetstream::new(nats);
    let stream = js.get_stream(STREAM_NAME).await.context("get stream")?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: checkpoint + 1,
            },
            ..Default::default()
        })
        .await
        .context("create consumer")?;
    let mut messages = consumer.messages().await.context("consume")?;
    tracing::info!(schema = %t.schema, from_seq = checkpoint + 1, "readmodel.session_started");
    let mut last_delivery = Instant::now();
    loop {
        let first = tokio::select! {
            m = messages.next() => m,
            _ = tokio::time::sleep(Duration::from_millis(IDLE_CHECK_MS)) => {
                if last_delivery.elapsed() >= Duration::from_millis(STALL_CHECK_MS) {
                    last_delivery = Instant::now();
                    check_not_stalled(&stream, checkpoint).await?;
                }
                continue;
            }
            _ = stop.changed() => return Ok(()),
        };
        last_delivery = Instant::now();
        if *stop.borrow() {
            return Ok(());
        }
        let mut batch = vec![first.context("stream ended")?.map_err(anyhow::Error::msg)?];
        let linger = tokio::time::sleep(Duration::from_millis(BATCH_LINGER_MS));
        tokio::pin!(linger);
        while batch.len() < t.batch_events_max {
            tokio::select! {
                m = messages.next() => match m {
                    Some(Ok(m)) => batch.push(m),
                    _ => break,
                },
                _ = &mut linger => break,
            }
        }
        let mut raws = Vec::with_capacity(batch.len());
        let mut published = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            let info = m.info().map_err(|e| anyhow::anyhow!("message info: {e}"))?;
            let want = checkpoint + 1 + i as u64;
            anyhow::ensure!(
                info.stream_sequence == want,
                "gap: expected stream sequence {want}, got {}",
                info.stream_sequence
            );
            published.push(info.published);
            raws.push(RawEvent {
                stream_seq: info.stream_sequence,
                subject: m.subject.to_string(),
                payload: m.payload.clone(),
            });
        }
        apply_batch(pg, &t.schema, checkpoint, &raws).await?;
        checkpoint += raws.len() as u64;
        let now = time::OffsetDateTime::now_utc();
        for p in published {
            let s = (now - p).as_seconds_f64().max(0.0);
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
pub async fn apply_batch(
    pg: &mut tokio_postgres::Client,
    schema: &str,
    prev_seq: u64,
    raws: &[RawEvent],
) -> anyhow::Result<()> {
    let started = Instant::now();
    let tx = pg.transaction().await?;
    let touched = Fold::touched(raws);
    let (known, quarantined) = store::load(&tx, schema, &touched).await?;
    let mut fold = Fold::new(known, quarantined);
    for r in raws {
        fold.apply(r);
    }
    store::write(&tx, schema, &fold.write, prev_seq).await?;
    tx.commit().await.context("commit batch")?;
    metrics::counter!("raftledger_readmodel_events_applied_total").increment(raws.len() as u64);
    metrics::counter!("raftledger_readmodel_events_parked_total")
        .increment(fold.write.parked.len() as u64);
    metrics::histogram!("raftledger_readmodel_batch_seconds")
        .record(started.elapsed().as_secs_f64());
    tracing::debug!(
        schema,
        last_seq = fold.write.last_seq,
        events = raws.len(),
        "readmodel.batch_committed"
    );
    Ok(())
}

//! The feed: a task that reads the `LEDGER` stream with an ordered consumer, decodes each
//! message's JSON once, and hands the messages to the projector's writer over a bounded
//! channel. Reading and decoding thus overlap the writer's PostgreSQL round trips (batch N+1
//! arrives while batch N is written), and the consumer keeps pulling from JetStream instead of
//! waiting for the writer to poll it. The feed asserts nothing: the writer checks contiguity
//! against its checkpoint.

use crate::fold::{Decoded, RawEvent};
use crate::projector::STREAM_NAME;
use anyhow::Context as _;
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;

/// One delivered message, decoded, with its JetStream publish time (for latency metrics).
#[derive(Debug)]
pub struct Delivered {
    /// The message, decoded.
    pub decoded: Decoded,
    /// When JetStream stored it.
    pub published: time::OffsetDateTime,
}

/// A running feed: the receiving end and the stream handle (for stall checks).
pub struct Feed {
    /// Messages in stream order; an `Err` (or the channel closing) ends the session.
    pub rx: mpsc::Receiver<anyhow::Result<Delivered>>,
    /// The stream, for `get_info` when nothing arrives.
    pub stream: async_nats::jetstream::stream::Stream,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects to NATS and starts reading the stream from `start_seq`, buffering up to
/// `queued_max` messages ahead of the writer.
pub async fn start(
    nats_url: &str,
    access: &crate::access::NatsAccess,
    start_seq: u64,
    queued_max: usize,
) -> anyhow::Result<Feed> {
    let nats = access
        .options()
        .await?
        .connection_timeout(Duration::from_secs(2))
        .connect(nats_url)
        .await
        .context("connect nats")?;
    let js = async_nats::jetstream::new(nats);
    let stream = js.get_stream(STREAM_NAME).await.context("get stream")?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start_seq,
            },
            ..Default::default()
        })
        .await
        .context("create consumer")?;
    let messages = consumer.messages().await.context("consume")?;
    let (tx, rx) = mpsc::channel(queued_max.max(1));
    let task = tokio::spawn(read(messages, tx));
    Ok(Feed { rx, stream, task })
}

async fn read(
    mut messages: async_nats::jetstream::consumer::pull::Ordered,
    tx: mpsc::Sender<anyhow::Result<Delivered>>,
) {
    loop {
        let item = match messages.next().await {
            Some(Ok(m)) => decode(&m),
            Some(Err(e)) => Err(anyhow::Error::msg(e).context("consume")),
            None => Err(anyhow::anyhow!("stream ended")),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

fn decode(m: &async_nats::jetstream::Message) -> anyhow::Result<Delivered> {
    let info = m.info().map_err(|e| anyhow::anyhow!("message info: {e}"))?;
    let raw = RawEvent {
        stream_seq: info.stream_sequence,
        subject: m.subject.to_string(),
        payload: m.payload.clone(),
    };
    Ok(Delivered {
        decoded: Decoded::new(raw),
        published: info.published,
    })
}

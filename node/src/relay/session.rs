//! One relay session: while this node is leader and NATS answers, publish committed events
//! from the cursor on, pipelined (at most [`WINDOW_MAX`] unacknowledged publishes), each with
//! `Nats-Msg-Id = event_seq` and `Nats-Expected-Last-Sequence = event_seq - 1`, so the stream
//! sequence always equals event_seq. A session ends on lost leadership, on a resync condition
//! (the stream is not where we thought: another leader published, or JetStream lost a tail),
//! or on an error; the caller then starts a new session from the stream's cursor.

use super::stream::{cursor, subject};
use crate::sm::LedgerReader;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, message::PublishMessage};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Unacknowledged publishes in flight. Pipelining hides the ack round trip (~0.1 ms on
/// loopback, more to a remote server); 256 events is well under 1 MiB of buffered payload
/// and bounds what is republished after a resync.
pub const WINDOW_MAX: usize = 256;
/// How often an idle session re-checks leadership and shutdown while waiting for new events.
const IDLE_CHECK_MS: u64 = 100;

/// Why a session ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// This node is no longer leader (or shutdown was requested).
    Stopped,
    /// The stream is not where the session thought; re-read the cursor.
    Resync(String),
}

/// What a session needs.
pub struct Session<'a> {
    /// JetStream context.
    pub js: &'a jetstream::Context,
    /// The `LEDGER` stream.
    pub stream: &'a jetstream::stream::Stream,
    /// Committed events.
    pub reader: &'a LedgerReader,
    /// Highest event_seq known to be in the stream (shared with the lag sampler).
    pub relayed_seq: &'a AtomicU64,
}

impl Session<'_> {
    /// Runs until leadership is lost, a resync is needed, or an error.
    pub async fn run(
        &self,
        is_leader: impl Fn() -> bool,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<SessionEnd> {
        let start = cursor(self.stream).await?;
        self.relayed_seq.store(start, Ordering::Relaxed);
        tracing::info!(cursor = start, "relay.session_started");
        let local = self.reader.last_event_seq();
        if start > local {
            // A new leader may not have applied everything yet (it catches up shortly); if
            // this persists, the stream belongs to another log (e.g. the cluster was wiped).
            tracing::warn!(
                cursor = start,
                last_event_seq = local,
                "relay.stream_ahead_of_log"
            );
        }
        let mut next = start + 1;
        let mut inflight: VecDeque<(u64, PublishAckFuture)> = VecDeque::new();
        let mut applied = self.reader.watch_event_seq();
        loop {
            if *stop.borrow() || !is_leader() {
                return Ok(SessionEnd::Stopped);
            }
            while inflight.len() < WINDOW_MAX {
                let events = self.reader.events_from(next, WINDOW_MAX - inflight.len())?;
                if events.is_empty() {
                    break;
                }
                for e in events {
                    anyhow::ensure!(
                        e.seq == next,
                        "log gap: wanted event {next}, read {}",
                        e.seq
                    );
                    inflight.push_back((e.seq, self.publish(&e).await?));
                    next += 1;
                }
            }
            let Some((seq, ack)) = inflight.pop_front() else {
                tokio::select! {
                    _ = applied.wait_for(|s| *s >= next) => {}
                    _ = tokio::time::sleep(Duration::from_millis(IDLE_CHECK_MS)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            match ack.await {
                Ok(a) if a.sequence == seq => {
                    self.relayed_seq.store(seq, Ordering::Relaxed);
                    metrics::counter!("raftledger_relay_published_total").increment(1);
                }
                Ok(a) => {
                    return Ok(SessionEnd::Resync(format!(
                        "event {seq} acknowledged at stream sequence {} (duplicate: {})",
                        a.sequence, a.duplicate
                    )))
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    return Ok(SessionEnd::Resync(format!("event {seq}: {e}")))
                }
                Err(e) => {
                    metrics::counter!("raftledger_relay_publish_errors_total").increment(1);
                    return Err(anyhow::anyhow!("publish event {seq}: {e}"));
                }
            }
        }
    }

    async fn publish(&self, e: &ledger::Event) -> anyhow::Result<PublishAckFuture> {
        let body = crate::api::render::event(e).to_string();
        let msg = PublishMessage::build()
            .payload(body.into())
            .message_id(e.seq.to_string())
            .expected_last_sequence(e.seq - 1);
        self.js
            .send_publish(subject(e.kind.type_name()), msg)
            .await
            .map_err(|err| {
                metrics::counter!("raftledger_relay_publish_errors_total").increment(1);
                anyhow::anyhow!("send event {}: {err}", e.seq)
            })
    }
}

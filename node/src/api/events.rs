//! `GET /v1/events?from_seq=N`: committed events as server-sent events, starting at `from_seq`
//! and following new events as they are applied (a catch-up subscription). Without `from_seq`
//! the stream starts at the head: the first event sent is the next one applied (replaying the
//! whole history must be asked for, with `from_seq=1`). Each SSE message has `id: <seq>` so a
//! client can resume with `from_seq = last id + 1`.
//!
//! Bounds: at most `--events-subscribers-max` streams are open at once (beyond that, 503
//! `too_many_subscribers`); each stream buffers at most [`EVENTS_CHUNK_MAX`] events, and reads
//! the next chunk only once the connection has taken the previous events (hyper polls the
//! stream only while its write buffer has room), so a slow reader holds a bounded amount.

use super::error::ApiError;
use super::extract::QueryParams;
use super::render;
use super::AppState;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use tokio::sync::OwnedSemaphorePermit;

/// Events read from storage per step of the stream: the most one subscriber buffers. An event
/// is at most ~5 KiB (4 KiB account metadata), so a chunk is at most ~320 KiB.
const EVENTS_CHUNK_MAX: usize = 64;

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// First sequence to send (default: the next event applied).
    from_seq: Option<u64>,
    /// Stop after this sequence (inclusive) instead of following forever (for tools/tests).
    until_seq: Option<u64>,
}

/// The SSE stream.
pub async fn stream(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let slot = s.limits.subscriber()?;
    let start = match q.from_seq {
        Some(seq) => seq.max(1),
        None => s.reader.last_event_seq() + 1,
    };
    let until = q.until_seq.unwrap_or(u64::MAX);
    let reader = s.reader.clone();
    let stream = async_stream(reader, start, until, slot);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The events from `start` to `until`. The state holds `slot`, so the subscriber slot is
/// released when the stream is dropped (the client went away) or ends.
fn async_stream(
    reader: crate::sm::LedgerReader,
    start: u64,
    until: u64,
    slot: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let watch = reader.watch_event_seq();
    let state = Some((start, Vec::<ledger::Event>::new().into_iter(), slot));
    futures::stream::unfold(state, move |state| {
        let reader = reader.clone();
        let mut watch = watch.clone();
        async move {
            let (mut next, mut buf, slot) = state?;
            loop {
                if next > until {
                    return None;
                }
                if let Some(e) = buf.next() {
                    next = e.seq + 1;
                    let ev = SseEvent::default()
                        .id(e.seq.to_string())
                        .event(e.kind.type_name())
                        .data(render::event(&e).to_string());
                    return Some((Ok(ev), Some((next, buf, slot))));
                }
                match reader.events_from(next, EVENTS_CHUNK_MAX) {
                    Ok(events) if !events.is_empty() => buf = events.into_iter(),
                    Ok(_) => {
                        if watch.wait_for(|seq| *seq >= next).await.is_err() {
                            return None;
                        }
                    }
                    Err(e) => {
                        // Report the failure and end the stream (the client resumes from its
                        // last id).
                        let ev = SseEvent::default().event("error").data(e.to_string());
                        return Some((Ok(ev), None));
                    }
                }
            }
        }
    })
}

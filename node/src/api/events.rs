//! `GET /v1/events?from_seq=N`: committed events as server-sent events, starting at `from_seq`
//! (default 1) and following new events as they are applied (a catch-up subscription).
//! Each SSE message has `id: <seq>` so a client can resume with `from_seq = last id + 1`.

use super::error::ApiError;
use super::extract::QueryParams;
use super::render;
use super::AppState;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;

/// Events read from storage per step of the stream: bounds memory per subscriber.
const EVENTS_CHUNK_MAX: usize = 512;

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    from_seq: Option<u64>,
    /// Stop after this sequence (inclusive) instead of following forever (for tools/tests).
    until_seq: Option<u64>,
}

/// The SSE stream.
pub async fn stream(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let start = q.from_seq.unwrap_or(1).max(1);
    let until = q.until_seq.unwrap_or(u64::MAX);
    let reader = s.reader.clone();
    let stream = async_stream(reader, start, until);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn async_stream(
    reader: crate::sm::LedgerReader,
    start: u64,
    until: u64,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let watch = reader.watch_event_seq();
    futures::stream::unfold(
        (start, Vec::<ledger::Event>::new().into_iter()),
        move |(mut next, mut buf)| {
            let reader = reader.clone();
            let mut watch = watch.clone();
            async move {
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
                        return Some((Ok(ev), (next, buf)));
                    }
                    match reader.events_from(next, EVENTS_CHUNK_MAX) {
                        Ok(events) if !events.is_empty() => buf = events.into_iter(),
                        Ok(_) => {
                            if watch.wait_for(|seq| *seq >= next).await.is_err() {
                                return None;
                            }
                        }
                        Err(e) => {
                            let ev = SseEvent::default().event("error").data(e.to_string());
                            return Some((Ok(ev), (u64::MAX, buf)));
                        }
                    }
                }
            }
        },
    )
}

//! Event lookups over the append-only `events` table (blocks of up to 64 consecutive events,
//! keyed by their first seq): global listings from a seq, events by seq for per-account
//! listings, and the scans the postings index is built from. Every lookup is a bounded
//! sled range read: O(log n) to find the start, then at most `limit` events.

use super::codec::{decode, invalid_data, sled_err};
use super::keys::u64_key;
use super::meta::{AppliedMeta, Trees};
use super::postings::PostingsIndex;
use ledger::Event;
use std::io;

/// Most events one listing call returns, whatever `limit` asks: bounds the memory and the time
/// a reader holds the history gate.
pub const EVENTS_PAGE_MAX: usize = 10_000;

/// The events with the given `seqs` (ascending), in that order. Consecutive seqs often share a
/// block, which is decoded once.
pub(crate) fn events_with_seqs(trees: &Trees, seqs: &[u64]) -> io::Result<Vec<Event>> {
    let mut out = Vec::with_capacity(seqs.len());
    let mut block: Vec<Event> = Vec::new();
    for &seq in seqs {
        if !block_holds(&block, seq) {
            block = find_block(trees, seq)?;
        }
        let event = block_event(&block, seq)
            .ok_or_else(|| invalid_data(format!("event {seq} is indexed but missing")))?;
        out.push(event.clone());
    }
    Ok(out)
}

/// The stored events with seq >= `from_seq`, in seq order (the postings index is built from
/// them).
pub(crate) fn stored_events_from(
    trees: &Trees,
    from_seq: u64,
) -> io::Result<impl Iterator<Item = io::Result<Event>> + '_> {
    let start = block_start(trees, from_seq)?;
    let rows = trees.events.range(start..);
    let events = rows.flat_map(|row| {
        let block: io::Result<Vec<Event>> =
            row.map_err(sled_err).and_then(|(_, value)| decode(&value));
        match block {
            Ok(events) => events.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        }
    });
    Ok(events.filter(move |e| e.as_ref().map_or(true, |e| e.seq >= from_seq)))
}

/// The postings index as sled's history mark `applied` leaves it: pages on disk, tails rebuilt
/// from the events after `postings_unpaged_from_seq` (bounded by the paging window).
pub(crate) fn open_postings(trees: &Trees, applied: &AppliedMeta) -> io::Result<PostingsIndex> {
    let started = std::time::Instant::now();
    let from = applied.postings_unpaged_from_seq.max(1);
    let events = stored_events_from(trees, from)?;
    let table = trees.postings.clone();
    let index = PostingsIndex::open(table, from, events, applied.last_event_seq)?;
    tracing::info!(
        from_seq = from,
        up_to_seq = applied.last_event_seq,
        unpaged = index.unpaged_len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "postings index opened"
    );
    Ok(index)
}

/// Rebuilds the postings index from every stored event into the emptied `postings` table (an
/// install), writing pages as they fill; the tails stay in memory.
pub(crate) fn rebuild_postings(trees: &Trees, up_to_seq: u64) -> io::Result<PostingsIndex> {
    let started = std::time::Instant::now();
    trees.postings.clear().map_err(sled_err)?;
    let write = |rows: Vec<super::postings::Row>| {
        let mut batch = super::ns::NsBatch::default();
        for (k, v) in rows {
            batch.insert(&trees.postings, k, v);
        }
        batch.apply(&trees.ledger).map_err(sled_err)
    };
    let events = stored_events_from(trees, 1)?;
    let index = PostingsIndex::rebuild(trees.postings.clone(), events, up_to_seq, write)?;
    tracing::info!(
        up_to_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "postings index rebuilt"
    );
    Ok(index)
}

/// Where the scan for `from_seq` starts: the key of the block holding it (the last block
/// starting at or before it), or `from_seq` itself when no block does.
fn block_start(trees: &Trees, from_seq: u64) -> io::Result<Vec<u8>> {
    let before = trees.events.range(..=u64_key(from_seq)).next_back();
    match before.transpose().map_err(sled_err)? {
        Some((key, _)) => Ok(key.to_vec()),
        None => Ok(u64_key(from_seq).to_vec()),
    }
}

/// Global events with seq >= `from_seq`, in order, at most `limit` (capped at `EVENTS_PAGE_MAX`).
pub(crate) fn events_from(trees: &Trees, from_seq: u64, limit: usize) -> io::Result<Vec<Event>> {
    let limit = limit.min(EVENTS_PAGE_MAX);
    let mut out = Vec::with_capacity(limit.min(1024));
    let start = block_start(trees, from_seq)?;
    for row in trees.events.range(start..) {
        let (_, value) = row.map_err(sled_err)?;
        let block: Vec<Event> = decode(&value)?;
        for event in block.into_iter().filter(|e| e.seq >= from_seq) {
            if out.len() >= limit {
                return Ok(out);
            }
            out.push(event);
        }
    }
    Ok(out)
}

/// The block that would hold `seq`: the one whose first seq is the last at or before it (empty
/// when there is none).
fn find_block(trees: &Trees, seq: u64) -> io::Result<Vec<Event>> {
    match trees
        .events
        .range(..=u64_key(seq))
        .next_back()
        .transpose()
        .map_err(sled_err)?
    {
        Some((_, value)) => decode(&value),
        None => Ok(Vec::new()),
    }
}

/// Event `seq` of `block` (a block's seqs are consecutive).
fn block_event(block: &[Event], seq: u64) -> Option<&Event> {
    let first = block.first()?.seq;
    let pos = usize::try_from(seq.checked_sub(first)?).ok()?;
    block.get(pos).filter(|e| e.seq == seq)
}

fn block_holds(block: &[Event], seq: u64) -> bool {
    block_event(block, seq).is_some()
}

/// Sequence of the last stored event (0 when none).
pub(crate) fn last_stored_seq(trees: &Trees) -> io::Result<u64> {
    match trees.events.last().map_err(sled_err)? {
        Some((_, value)) => {
            let block: Vec<Event> = decode(&value)?;
            Ok(block.last().map_or(0, |e| e.seq))
        }
        None => Ok(0),
    }
}

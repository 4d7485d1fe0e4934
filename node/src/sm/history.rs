//! Event lookups over the append-only `events` table (blocks of up to 64 consecutive events,
//! keyed by their first seq): global listings from a seq, events by seq for per-account
//! listings, and the full scan the postings index is rebuilt from. Every lookup is a bounded
//! sled range read: O(log n) to find the start, then at most `limit` events.

use super::codec::{decode, invalid_data, sled_err};
use super::keys::u64_key;
use super::meta::Trees;
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

/// Every stored event in seq order (the postings index is rebuilt from it).
pub(crate) fn all_events(trees: &Trees) -> impl Iterator<Item = io::Result<Event>> + '_ {
    trees.events.iter().flat_map(|row| {
        let block: io::Result<Vec<Event>> =
            row.map_err(sled_err).and_then(|(_, value)| decode(&value));
        match block {
            Ok(events) => events.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        }
    })
}

/// The postings index of the stored events up to `up_to_seq` (which sled must hold).
pub(crate) fn rebuild_postings(trees: &Trees, up_to_seq: u64) -> io::Result<PostingsIndex> {
    let started = std::time::Instant::now();
    let index = PostingsIndex::rebuild(all_events(trees), up_to_seq)?;
    tracing::info!(
        up_to_seq,
        postings = index.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "postings index rebuilt"
    );
    Ok(index)
}

/// Global events with seq >= `from_seq`, in order, at most `limit` (capped at `EVENTS_PAGE_MAX`).
pub(crate) fn events_from(trees: &Trees, from_seq: u64, limit: usize) -> io::Result<Vec<Event>> {
    let limit = limit.min(EVENTS_PAGE_MAX);
    let mut out = Vec::with_capacity(limit.min(1024));
    // The block holding `from_seq` starts at or before it.
    let start = match trees
        .events
        .range(..=u64_key(from_seq))
        .next_back()
        .transpose()
        .map_err(sled_err)?
    {
        Some((key, _)) => key.to_vec(),
        None => u64_key(from_seq).to_vec(),
    };
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

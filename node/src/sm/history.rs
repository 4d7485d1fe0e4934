//! History lookups over the append-only trees: time travel (balance at a time or at a log
//! index) and event listings. Every lookup is a bounded sled range read: O(log n) to find the
//! start, then at most `limit` rows.

use super::codec::{decode, invalid_data, sled_err};
use super::keys::{
    account_prefix, posting_key, posting_key_parts, u64_key, u64_suffix, PostingRow,
};
use super::meta::Trees;
use ledger::{AccountId, Event, TimestampUs};
use serde::{Deserialize, Serialize};
use std::io;

/// Most events one listing call returns, whatever `limit` asks: bounds the memory and the time
/// a reader holds the history gate.
pub const EVENTS_PAGE_MAX: usize = 10_000;

/// An account's posted balance as of a point in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceAt {
    /// Posted balance in minor units.
    pub balance: i64,
    /// Leader timestamp of the account's last event at or before the asked point (a posting,
    /// the opening, or any other event concerning it, which leaves the balance as it was).
    pub as_of_us: TimestampUs,
    /// Log index of that event.
    pub index: u64,
    /// Event sequence of that event.
    pub event_seq: u64,
}

/// Balance of `account` right after the last event with timestamp <= `ts_us`; None when the
/// account had not been opened by then.
pub(crate) fn balance_at_time(
    trees: &Trees,
    account: &AccountId,
    ts_us: TimestampUs,
) -> io::Result<Option<BalanceAt>> {
    let start = account_prefix(account);
    let end = posting_key(account, ts_us, u64::MAX);
    let Some((key, value)) = trees
        .postings
        .range(start..=end)
        .next_back()
        .transpose()
        .map_err(sled_err)?
    else {
        return Ok(None);
    };
    let (as_of_us, event_seq) =
        posting_key_parts(&key).ok_or_else(|| invalid_data("short postings key".to_owned()))?;
    let row: PostingRow = decode(&value)?;
    Ok(Some(BalanceAt {
        balance: row.balance_after,
        as_of_us,
        index: row.index,
        event_seq,
    }))
}

/// Balance of `account` after applying log index `index`; None when the account had not been
/// opened by then. Effective timestamps strictly increase with the log index, so the last
/// timestamp applied at or before `index` separates earlier postings from later ones exactly.
pub(crate) fn balance_at_index(
    trees: &Trees,
    account: &AccountId,
    index: u64,
) -> io::Result<Option<BalanceAt>> {
    let Some((_, ts)) = trees
        .index_ts
        .range(..=u64_key(index))
        .next_back()
        .transpose()
        .map_err(sled_err)?
    else {
        return Ok(None);
    };
    let ts_us: TimestampUs = decode(&ts)?;
    balance_at_time(trees, account, ts_us)
}

/// Events concerning `account` with seq > `after_seq`, in seq order, at most `limit`
/// (capped at `EVENTS_PAGE_MAX`). The account's `postings` rows are ordered by (timestamp, seq),
/// which is seq order (effective timestamps never decrease along the log), so the listing starts
/// right after the row of event `after_seq`, found through that event's timestamp.
pub(crate) fn account_events(
    trees: &Trees,
    account: &AccountId,
    after_seq: u64,
    limit: usize,
) -> io::Result<Vec<Event>> {
    let mut out = Vec::new();
    let prefix = account_prefix(account);
    let start = if after_seq == 0 {
        prefix.clone()
    } else {
        let Some(after) = find_event(trees, after_seq)? else {
            return Ok(out);
        };
        let Some(next_seq) = after_seq.checked_add(1) else {
            return Ok(out);
        };
        posting_key(account, after.timestamp_us, next_seq)
    };
    let limit = limit.min(EVENTS_PAGE_MAX);
    let mut block: Vec<Event> = Vec::new();
    for row in trees.postings.range(start..) {
        if out.len() >= limit {
            break;
        }
        let (key, _) = row.map_err(sled_err)?;
        if !key.starts_with(&prefix) {
            break;
        }
        let seq = u64_suffix(&key).ok_or_else(|| invalid_data("short postings key".to_owned()))?;
        // Consecutive postings of an account often share a block: decode each block once.
        if !block_holds(&block, seq) {
            block = find_block(trees, seq)?;
        }
        let event = block_event(&block, seq)
            .ok_or_else(|| invalid_data(format!("event {seq} is indexed but missing")))?;
        out.push(event.clone());
    }
    Ok(out)
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

/// The event with sequence `seq`, if stored.
fn find_event(trees: &Trees, seq: u64) -> io::Result<Option<Event>> {
    Ok(block_event(&find_block(trees, seq)?, seq).cloned())
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

//! Applying committed entries: check their order, execute each command against the in-memory
//! ledger, extend the postings index, gather the chunk's event blocks and postings pages in a `WriteSet`,
//! commit them with the applied meta in one atomic batch, and only then answer the clients and
//! publish the new applied index.
//!
//! After a restart the ledger starts from the last snapshot and openraft replays the log from
//! there; entries whose events sled already holds (`Live::history_index`) are executed in
//! memory only (the postings index, which follows sled, already has them).
//!
//! Order: a chunk must continue exactly after the last applied entry (index 0 on a store that
//! applied nothing, the entry after the snapshot's last log id after an install or a restart),
//! one index at a time. Anything else means the log and the state machine disagree; skipping an
//! entry would silently lose its money movements, applying one twice would double them. The
//! whole chunk is refused before anything in it is executed, with an `Err` that openraft treats
//! as a storage failure: it stops the Raft core.

use super::meta::AppliedMeta;
use super::shared::{Live, Shared};
use super::write_set::WriteSet;
use crate::raft_types::{Entry, EntryPayload, LedgerResponse, LogId, StoredMembership, TypeConfig};
use openraft::storage::ApplyResponder;
use std::io;

/// Entries applied (and committed to sled) together at most. A catch-up replay can hand the
/// state machine a stream of many thousands of entries; this bounds the memory of one
/// transaction while still amortising its cost over many entries.
pub(crate) const APPLY_CHUNK_ENTRIES_MAX: usize = 4096;

/// Commands applied together at most: one entry can carry thousands of commands (a batch),
/// so the entry bound alone would let a catch-up build a multi-GiB transaction.
pub(crate) const APPLY_CHUNK_COMMANDS_MAX: usize = 8192;

/// Commands an entry carries (blank and membership entries count as one).
pub(crate) fn entry_weight(entry: &Entry) -> usize {
    match &entry.payload {
        EntryPayload::Normal(request) => request
            .commands
            .iter()
            .map(ledger::Command::weight)
            .sum::<usize>()
            .max(1),
        _ => 1,
    }
}

/// One entry to apply with the responder of the client waiting for it, if any.
pub(crate) type Pending = (Entry, Option<ApplyResponder<TypeConfig>>);

/// Which entry indexes apply accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyOrder {
    /// Exactly the entry after the last applied one (index 0 first): every real store.
    Contiguous,
    /// TEST ONLY: any index above the last applied one (see
    /// `StateMachineStore::open_accepting_apply_gaps_for_tests`).
    Increasing,
}

/// Checks that `entries` may be applied after `last_applied` under `order`.
fn check_order(
    last_applied: Option<LogId>,
    entries: &[Pending],
    order: ApplyOrder,
) -> io::Result<()> {
    let mut prev = last_applied;
    for (entry, _) in entries {
        let index = entry.log_id.index;
        let next = prev.map_or(0, |p| p.index + 1);
        let fits = match order {
            ApplyOrder::Contiguous => index == next,
            ApplyOrder::Increasing => index >= next,
        };
        if !fits {
            let last = last_applied.map_or_else(|| "none".to_owned(), |l| l.to_string());
            let msg = format!(
                "apply out of order: entry {} where index {next} is expected (last applied \
                 {last}): the log and the state machine disagree",
                entry.log_id
            );
            tracing::error!(%msg, "sm: refusing to apply");
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        prev = Some(entry.log_id);
    }
    Ok(())
}

/// Applies `entries` in order and commits their writes in one sled transaction, then sends
/// each entry's response and publishes the new applied index and event sequence.
///
/// An `Err` means storage failed (or the stored state is corrupt), never a business rejection:
/// rejections are results inside the `LedgerResponse`.
pub(crate) fn apply_chunk(
    shared: &Shared,
    entries: Vec<Pending>,
    order: ApplyOrder,
) -> io::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut responses = Vec::with_capacity(entries.len());
    let (applied_index, last_event_seq) = {
        // Held through the commit: readers never see an index whose rows sled does not have.
        let mut live = shared.live_mut();
        check_order(live.last_applied, &entries, order)?;
        let mut writes = WriteSet::default();
        for (entry, responder) in entries {
            let response = apply_entry(&mut live, &mut writes, entry)?;
            responses.push((responder, response));
        }
        writes.record_pages(live.postings.take_rows());
        debug_check_invariants(&live)?;
        if live.applied_index() > live.history_index {
            writes.commit(&shared.trees, &applied_meta(&live))?;
            live.history_index = live.applied_index();
        }
        (live.applied_index(), live.ledger.last_event_seq())
    };
    for (responder, response) in responses {
        if let Some(responder) = responder {
            responder.send(response);
        }
    }
    shared.publish(applied_index, last_event_seq);
    Ok(())
}

/// Applies one entry to `live`, recording its writes; returns the client response.
fn apply_entry(live: &mut Live, writes: &mut WriteSet, entry: Entry) -> io::Result<LedgerResponse> {
    let log_id = entry.log_id;
    let index = log_id.index;
    let response = match entry.payload {
        EntryPayload::Normal(request) => {
            // Replaying below the history mark: sled already holds these rows.
            let record = index > live.history_index;
            let mut results = Vec::with_capacity(request.commands.len());
            for cmd in &request.commands {
                let applied = live.ledger.execute(index, cmd);
                for event in &applied.events {
                    live.postings.record(event)?;
                }
                if record {
                    writes.record_events(applied.events);
                }
                results.push(applied.result);
            }
            if record {
                writes.finish_entry()?;
            }
            LedgerResponse {
                results,
                last_event_seq: live.ledger.last_event_seq(),
            }
        }
        EntryPayload::Membership(membership) => {
            live.membership = StoredMembership::new(Some(log_id), membership);
            LedgerResponse::default()
        }
        EntryPayload::Blank => LedgerResponse::default(),
    };
    live.last_applied = Some(log_id);
    Ok(response)
}

/// The applied meta describing `live`.
pub(crate) fn applied_meta(live: &Live) -> AppliedMeta {
    AppliedMeta {
        last_applied: live.last_applied,
        membership: live.membership.clone(),
        last_event_seq: live.ledger.last_event_seq(),
        last_timestamp_us: live.ledger.last_timestamp_us(),
        applied_hash: live.ledger.applied_hash(),
        postings_unpaged_from_seq: live.postings.unpaged_from_seq(),
    }
}

/// In debug builds, checks the ledger invariants (L1, L2) and that the postings index covers
/// the applied events after every chunk (exactly, once the replay reached sled's history
/// mark); a violation is a
/// bug or corruption, so it fails the apply (openraft then stops the node).
fn debug_check_invariants(live: &Live) -> io::Result<()> {
    if cfg!(debug_assertions) {
        live.ledger
            .check_invariants()
            .map_err(|v| io::Error::new(io::ErrorKind::InvalidData, v.to_string()))?;
        let (indexed, applied) = (live.postings.last_seq(), live.ledger.last_event_seq());
        let replaying = live.applied_index() < live.history_index;
        if indexed < applied || (indexed != applied && !replaying) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("postings index at seq {indexed} but the ledger at {applied}"),
            ));
        }
    }
    Ok(())
}

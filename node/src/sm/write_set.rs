//! `WriteSet`: the history rows one apply call produces (event blocks, postings pages), gathered while the
//! commands execute and committed with the applied meta in ONE atomic sled batch on the single
//! state machine tree, so sled never holds rows without the meta that accounts for them, or the
//! reverse.
//!
//! Accounts, transfers and the idempotency table are not written here: the working set lives
//! in memory and in snapshot files, finished history in the cold history file, and a restart
//! brings the rest back by replaying the log.

use super::codec::{encode, encode_packed};
use super::keys::{meta_key, u64_key};
use super::meta::{AppliedMeta, Trees};
use super::ns::NsBatch;
use super::postings::Row;
use ledger::Event;
use std::io;

/// Most events stored in one `events` row: an entry's events are stored in blocks (fewer sled
/// rows than one per event), small enough that a point lookup decodes little.
pub(crate) const EVENTS_PER_BLOCK_MAX: usize = 64;

/// Rows gathered for one apply call: (first seq key, encoded block).
#[derive(Default)]
pub(crate) struct WriteSet {
    blocks: Vec<([u8; 8], Vec<u8>)>,
    /// Postings pages completed by these entries (`postings::pages` rows).
    postings: Vec<Row>,
    /// Events of the current entry, not yet stored as blocks.
    entry_events: Vec<Event>,
}

impl WriteSet {
    /// Records the events of one executed command.
    pub(crate) fn record_events(&mut self, events: Vec<Event>) {
        self.entry_events.extend(events);
    }

    /// Ends the current log entry: stores its events as blocks keyed by their first seq (a block
    /// never spans two entries, so a snapshot's cut between entries is a cut between blocks).
    pub(crate) fn finish_entry(&mut self) -> io::Result<()> {
        for block in self.entry_events.chunks(EVENTS_PER_BLOCK_MAX) {
            let first = block.first().map_or(0, |e| e.seq);
            self.blocks.push((u64_key(first), encode_packed(&block)?));
        }
        self.entry_events.clear();
        Ok(())
    }

    /// Records the postings pages the index completed.
    pub(crate) fn record_pages(&mut self, rows: Vec<Row>) {
        self.postings.extend(rows);
    }

    /// Commits the rows with `meta` in one atomic batch.
    pub(crate) fn commit(self, trees: &Trees, meta: &AppliedMeta) -> io::Result<()> {
        let mut batch = NsBatch::default();
        batch.insert(&trees.meta, meta_key::APPLIED, encode(meta)?);
        for (key, value) in self.blocks {
            batch.insert(&trees.events, key, value);
        }
        for (key, value) in self.postings {
            batch.insert(&trees.postings, key, value);
        }
        batch.apply(&trees.ledger).map_err(super::codec::sled_err)
    }
}

//! `WriteSet`: the history rows one apply call produces (events, per-account postings, index
//! timestamps), gathered while the commands execute and committed with the applied meta in ONE
//! atomic sled batch on the single state machine tree, so sled never holds rows without the meta
//! that accounts for them, or the reverse.
//!
//! Accounts, transfers and the idempotency table are not written here: they live in the
//! in-memory ledger, in snapshot files, and are rebuilt after a restart by replaying the log.

use super::codec::encode;
use super::keys::{meta_key, posting_key, tree, u64_key, PostingRow};
use super::meta::{AppliedMeta, Trees};
use super::ns::{Ns, NsBatch};
use ledger::{AccountId, Event, EventKind, LedgerState};
use std::io;

/// Most events stored in one `events` row: an entry's events are stored in blocks (fewer sled
/// rows than one per event), small enough that a point lookup decodes little.
pub(crate) const EVENTS_PER_BLOCK_MAX: usize = 64;

/// Rows gathered for one apply call, as (table, key, value).
#[derive(Default)]
pub(crate) struct WriteSet {
    rows: Vec<(u8, Vec<u8>, Vec<u8>)>,
    /// Events of the current entry, not yet stored as blocks.
    entry_events: Vec<Event>,
}

impl WriteSet {
    /// Records the history rows of one executed command: its `events`, and one `postings` row
    /// per account each event concerns, carrying the account's posted balance right after that
    /// event. `ledger` is the state right after the command.
    pub(crate) fn record_command(
        &mut self,
        events: Vec<Event>,
        ledger: &LedgerState,
    ) -> io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut running = balances_before(&events, ledger);
        for event in &events {
            let changes = event.kind.balance_changes();
            for account in event.kind.accounts() {
                let slot = running_slot(&mut running, account);
                if let Some((_, after)) = changes.iter().find(|(a, _)| *a == account) {
                    slot.1 = *after;
                }
                let row = PostingRow {
                    index: event.index,
                    balance_after: slot.1,
                };
                let key = posting_key(account, event.timestamp_us, event.seq);
                self.rows.push((tree::POSTINGS, key, encode(&row)?));
            }
        }
        self.entry_events.extend(events);
        Ok(())
    }

    /// Ends log entry `index`: stores its events as blocks keyed by their first seq, and the
    /// last effective timestamp applied at that index.
    pub(crate) fn finish_entry(&mut self, index: u64, ts_us: u64) -> io::Result<()> {
        for block in self.entry_events.chunks(EVENTS_PER_BLOCK_MAX) {
            let first = block.first().map_or(0, |e| e.seq);
            self.rows
                .push((tree::EVENTS, u64_key(first).to_vec(), encode(&block)?));
        }
        self.entry_events.clear();
        self.rows
            .push((tree::INDEX_TS, u64_key(index).to_vec(), encode(&ts_us)?));
        Ok(())
    }

    /// Commits the rows with `meta` in one atomic batch.
    pub(crate) fn commit(self, trees: &Trees, meta: &AppliedMeta) -> io::Result<()> {
        let mut batch = NsBatch::default();
        batch.insert(&trees.meta, meta_key::APPLIED, encode(meta)?);
        for (table, key, value) in self.rows {
            batch.insert(table_of(trees, table), key, value);
        }
        batch.apply(&trees.ledger).map_err(super::codec::sled_err)
    }
}

/// Posted balance of every account the command's events concern, as it was before the command:
/// the balance after the command with the command's own postings undone (posted balances change
/// only through `TransferPosted`; an account opened by the command starts at 0).
fn balances_before<'e>(events: &'e [Event], ledger: &LedgerState) -> Vec<(&'e AccountId, i64)> {
    let mut out: Vec<(&AccountId, i64)> = Vec::new();
    for event in events {
        for account in event.kind.accounts() {
            if !out.iter().any(|(a, _)| *a == account) {
                let now = ledger.account(account).map_or(0, |a| a.balance);
                out.push((account, now));
            }
        }
    }
    for event in events.iter().rev() {
        match &event.kind {
            EventKind::TransferPosted {
                debit,
                credit,
                amount,
                ..
            } => {
                running_slot(&mut out, debit).1 += amount;
                running_slot(&mut out, credit).1 -= amount;
            }
            EventKind::AccountOpened { account, .. } => running_slot(&mut out, account).1 = 0,
            _ => {}
        }
    }
    out
}

/// The entry of `account` in `running` (created at 0 if absent; callers pre-fill it).
fn running_slot<'a, 'e>(
    running: &'a mut Vec<(&'e AccountId, i64)>,
    account: &'e AccountId,
) -> &'a mut (&'e AccountId, i64) {
    let pos = match running.iter().position(|(a, _)| *a == account) {
        Some(pos) => pos,
        None => {
            running.push((account, 0));
            running.len() - 1
        }
    };
    &mut running[pos]
}

fn table_of(trees: &Trees, table: u8) -> &Ns {
    match table {
        tree::EVENTS => &trees.events,
        tree::POSTINGS => &trees.postings,
        _ => &trees.index_ts,
    }
}

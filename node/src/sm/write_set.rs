//! `WriteSet`: every sled write one apply call produces, gathered while the commands execute and
//! committed in ONE multi-tree sled transaction (state rows, history rows and the applied meta
//! together, so sled never holds rows without the meta that accounts for them, or the reverse).

use super::codec::{encode, FORMAT_V1};
use super::keys::{account_event_key, meta_key, posting_key, u64_key, PostingRow};
use super::meta::{AppliedMeta, Trees};
use ledger::{AccountId, Command, CommandBody, Event, EventKind, LedgerState};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use std::collections::BTreeSet;
use std::io;

/// Writes gathered for one apply call.
#[derive(Default)]
pub(crate) struct WriteSet {
    /// Accounts changed by some event; their final rows are read from the ledger at the end.
    accounts: BTreeSet<AccountId>,
    /// Transfers changed by some event.
    transfers: BTreeSet<String>,
    /// Command ids (top-level and batch-inner) whose idempotency entries may have been recorded.
    command_ids: BTreeSet<String>,
    /// `events` rows.
    events: sled::Batch,
    /// `postings` rows.
    postings: sled::Batch,
    /// `account_events` rows.
    account_events: sled::Batch,
    /// `index_ts` rows.
    index_ts: sled::Batch,
}

impl WriteSet {
    /// Records what executing `cmd` produced (`events` are the events it emitted).
    pub(crate) fn record_command(&mut self, cmd: &Command, events: &[Event]) -> io::Result<()> {
        self.command_ids.insert(cmd.id.clone());
        if let CommandBody::Batch { commands, .. } = &cmd.body {
            self.command_ids
                .extend(commands.iter().map(|c| c.id.clone()));
        }
        for event in events {
            self.record_event(event)?;
        }
        Ok(())
    }

    fn record_event(&mut self, event: &Event) -> io::Result<()> {
        let seq = event.seq;
        self.events.insert(&u64_key(seq), encode(event)?);
        for account in event.kind.accounts() {
            self.account_events
                .insert(account_event_key(account, seq), vec![FORMAT_V1]);
            self.accounts.insert(account.clone());
        }
        let mut balances = event.kind.balance_changes();
        if let EventKind::AccountOpened { account, .. } = &event.kind {
            // An opened account exists with balance 0 from this event on (time travel: an
            // account that existed but had no postings yet reads as 0, not "not found").
            balances.push((account, 0));
        }
        for (account, balance_after) in balances {
            let row = PostingRow {
                index: event.index,
                balance_after,
            };
            let key = posting_key(account, event.timestamp_us, seq);
            self.postings.insert(key, encode(&row)?);
        }
        if let Some(id) = transfer_id(&event.kind) {
            self.transfers.insert(id.to_owned());
        }
        Ok(())
    }

    /// Records the last effective timestamp applied at log index `index`.
    pub(crate) fn record_index_ts(&mut self, index: u64, ts_us: u64) -> io::Result<()> {
        self.index_ts.insert(&u64_key(index), encode(&ts_us)?);
        Ok(())
    }

    /// Builds the final batches from the ledger after the last entry and commits them with `meta`
    /// in one transaction.
    pub(crate) fn commit(
        self,
        trees: &Trees,
        ledger: &LedgerState,
        meta: &AppliedMeta,
    ) -> io::Result<()> {
        let mut meta_batch = sled::Batch::default();
        meta_batch.insert(meta_key::APPLIED, encode(meta)?);
        let mut accounts = sled::Batch::default();
        // Rows mirror the ledger exactly: a record the ledger no longer holds is removed.
        for id in &self.accounts {
            match ledger.account(id) {
                Some(account) => accounts.insert(id.as_str().as_bytes(), encode(account)?),
                None => accounts.remove(id.as_str().as_bytes()),
            }
        }
        let mut transfers = sled::Batch::default();
        for id in &self.transfers {
            match ledger.transfer(id) {
                Some(transfer) => transfers.insert(id.as_bytes(), encode(transfer)?),
                None => transfers.remove(id.as_bytes()),
            }
        }
        let mut idempotency = sled::Batch::default();
        for id in &self.command_ids {
            // Tick and refused ids (invalid, reused key) leave no entry: nothing to write.
            if let Some(entry) = ledger.idempotency(id) {
                idempotency.insert(id.as_bytes(), encode(entry)?);
            }
        }
        let batches = [
            meta_batch,
            accounts,
            transfers,
            idempotency,
            self.events,
            self.postings,
            self.account_events,
            self.index_ts,
        ];
        commit_batches(trees, &batches)
    }
}

/// Applies one batch per tree (in `Trees::data_trees` order) atomically.
fn commit_batches(trees: &Trees, batches: &[sled::Batch; 8]) -> io::Result<()> {
    let data_trees = trees.data_trees();
    let res: Result<(), TransactionError<()>> = data_trees[..].transaction(|views| {
        for (view, batch) in views.iter().zip(batches.iter()) {
            view.apply_batch(batch)?;
        }
        Ok::<(), ConflictableTransactionError<()>>(())
    });
    match res {
        Ok(()) => Ok(()),
        Err(TransactionError::Storage(e)) => Err(super::codec::sled_err(e)),
        Err(TransactionError::Abort(())) => Err(io::Error::other("sled transaction aborted")),
    }
}

/// The transfer an event changes, if any.
fn transfer_id(kind: &EventKind) -> Option<&str> {
    match kind {
        EventKind::TransferPosted { transfer_id, .. }
        | EventKind::TransferPending { transfer_id, .. }
        | EventKind::TransferVoided { transfer_id, .. }
        | EventKind::TransferExpired { transfer_id, .. } => Some(transfer_id),
        EventKind::AccountOpened { .. }
        | EventKind::AccountFrozen { .. }
        | EventKind::AccountUnfrozen { .. }
        | EventKind::AccountClosed { .. } => None,
    }
}

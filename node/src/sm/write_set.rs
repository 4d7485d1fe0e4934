//! `WriteSet`: every sled write one apply call produces, gathered while the commands execute and
//! committed in ONE atomic sled batch on the single state machine tree (state rows, history rows
//! and the applied meta together, so sled never holds rows without the meta that accounts for
//! them, or the reverse).

use super::codec::{encode, FORMAT_V1};
use super::keys::{account_event_key, meta_key, posting_key, tree, u64_key, PostingRow};
use super::meta::{AppliedMeta, Trees};
use super::ns::{Ns, NsBatch};
use ledger::{AccountId, Command, CommandBody, Event, EventKind, LedgerState};
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
    /// History rows (events, postings, account_events, index_ts) as (table, key, value).
    history: Vec<(u8, Vec<u8>, Vec<u8>)>,
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
        self.history
            .push((tree::EVENTS, u64_key(seq).to_vec(), encode(event)?));
        for account in event.kind.accounts() {
            self.history.push((
                tree::ACCOUNT_EVENTS,
                account_event_key(account, seq),
                vec![FORMAT_V1],
            ));
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
            self.history.push((tree::POSTINGS, key, encode(&row)?));
        }
        if let Some(id) = transfer_id(&event.kind) {
            self.transfers.insert(id.to_owned());
        }
        Ok(())
    }

    /// Records the last effective timestamp applied at log index `index`.
    pub(crate) fn record_index_ts(&mut self, index: u64, ts_us: u64) -> io::Result<()> {
        self.history
            .push((tree::INDEX_TS, u64_key(index).to_vec(), encode(&ts_us)?));
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
        let mut batch = NsBatch::default();
        batch.insert(&trees.meta, meta_key::APPLIED, encode(meta)?);
        // Rows mirror the ledger exactly: a record the ledger no longer holds is removed.
        for id in &self.accounts {
            match ledger.account(id) {
                Some(account) => batch.insert(&trees.accounts, id.as_str(), encode(account)?),
                None => batch.remove(&trees.accounts, id.as_str()),
            }
        }
        for id in &self.transfers {
            match ledger.transfer(id) {
                Some(transfer) => batch.insert(&trees.transfers, id, encode(transfer)?),
                None => batch.remove(&trees.transfers, id),
            }
        }
        for id in &self.command_ids {
            // Tick and refused ids (invalid, reused key) leave no entry: nothing to write.
            if let Some(entry) = ledger.idempotency(id) {
                batch.insert(&trees.idempotency, id, encode(entry)?);
            }
        }
        for (table, key, value) in self.history {
            batch.insert(history_table(trees, table), key, value);
        }
        batch.apply(&trees.ledger).map_err(super::codec::sled_err)
    }
}

fn history_table(trees: &Trees, table: u8) -> &Ns {
    match table {
        tree::EVENTS => &trees.events,
        tree::POSTINGS => &trees.postings,
        tree::ACCOUNT_EVENTS => &trees.account_events,
        _ => &trees.index_ts,
    }
}

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

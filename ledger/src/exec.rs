//! The journaled execution context of one top-level command. Every mutation of the state goes
//! through [`Exec`], which records the previous value of each touched record so that a rejected
//! command or an aborted atomic batch can be undone exactly (no whole-state clone), assigns
//! event sequence numbers, and runs the cheap per-command invariant checks in debug builds.

use crate::account::{Account, Transfer};
use crate::event::{Event, EventKind, EVENT_SCHEMA_VERSION};
use crate::idempotency::IdempotencyEntry;
use crate::state::LedgerState;
use crate::tiers::TransferSlots;
use crate::types::{AccountId, TimestampUs};
use compact_str::CompactString;

/// Previous value of one touched record (`None`: it did not exist).
pub(crate) enum Undo {
    Account(AccountId, Option<Account>),
    Transfer(CompactString, TransferSlots),
    Idempotency(String, Option<IdempotencyEntry>),
}

/// A savepoint: rolling back to it undoes every mutation and event made after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    journal_len: usize,
    events_len: usize,
    last_event_seq: u64,
}

/// Execution context: the state, the command's log index and effective time, the events
/// emitted so far and the undo journal.
pub(crate) struct Exec<'a> {
    state: &'a mut LedgerState,
    index: u64,
    ts: TimestampUs,
    events: Vec<Event>,
    journal: Vec<Undo>,
}

impl<'a> Exec<'a> {
    /// Starts executing at log `index` with effective time `ts`.
    pub(crate) fn new(state: &'a mut LedgerState, index: u64, ts: TimestampUs) -> Self {
        let journal = std::mem::take(&mut state.scratch.journal);
        Self {
            state,
            index,
            ts,
            events: Vec::new(),
            journal,
        }
    }

    /// Raft log index of the command being executed.
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    /// Effective (clamped) timestamp of the command being executed.
    pub(crate) fn ts(&self) -> TimestampUs {
        self.ts
    }

    /// Read access to the state as mutated so far.
    pub(crate) fn state(&self) -> &LedgerState {
        self.state
    }

    /// Inserts or replaces an account.
    pub(crate) fn put_account(&mut self, account: Account) {
        let id = account.id.clone();
        let prev = self.state.accounts.insert(id.clone(), account);
        self.journal.push(Undo::Account(id, prev));
    }

    /// Inserts or replaces a transfer, keeping the deadline index in step.
    pub(crate) fn put_transfer(&mut self, transfer: Transfer) {
        let id = transfer.id.clone();
        let slots = self.state.replace_transfer(transfer);
        self.journal.push(Undo::Transfer(id, slots));
    }

    /// Records an idempotency entry.
    pub(crate) fn put_idempotency(&mut self, command_id: &str, entry: IdempotencyEntry) {
        let prev = self.state.tiers.put_idempotency(command_id, entry);
        self.journal
            .push(Undo::Idempotency(command_id.to_owned(), prev));
    }

    /// Emits one event with the next sequence number.
    pub(crate) fn emit(&mut self, command_id: &str, kind: EventKind) {
        self.state.last_event_seq += 1;
        self.events.push(Event {
            seq: self.state.last_event_seq,
            index: self.index,
            timestamp_us: self.ts,
            schema_version: EVENT_SCHEMA_VERSION,
            command_id: command_id.to_owned(),
            kind,
        });
    }

    /// A savepoint at the current position.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            journal_len: self.journal.len(),
            events_len: self.events.len(),
            last_event_seq: self.state.last_event_seq,
        }
    }

    /// Undoes every mutation and event made since `mark`.
    pub(crate) fn rollback(&mut self, mark: Mark) {
        while self.journal.len() > mark.journal_len {
            match self.journal.pop() {
                Some(Undo::Account(id, prev)) => match prev {
                    Some(account) => {
                        self.state.accounts.insert(id, account);
                    }
                    None => {
                        self.state.accounts.remove(&id);
                    }
                },
                Some(Undo::Transfer(id, slots)) => self.state.restore_transfer(&id, slots),
                Some(Undo::Idempotency(id, prev)) => {
                    self.state.tiers.restore_idempotency(&id, prev);
                }
                None => break,
            }
        }
        self.events.truncate(mark.events_len);
        self.state.last_event_seq = mark.last_event_seq;
    }

    /// `(first, last)` seq of the events emitted since `mark`. With no events, both are the
    /// current last event seq: a read-your-writes watermark, not an event of this command.
    pub(crate) fn seq_range_since(&self, mark: Mark) -> (u64, u64) {
        match (self.events.get(mark.events_len), self.events.last()) {
            (Some(first), Some(last)) => (first.seq, last.seq),
            _ => (self.state.last_event_seq, self.state.last_event_seq),
        }
    }

    /// Ends the execution, returning the events; in debug builds checks L1 (per-currency sum of
    /// balance changes is zero) and L2 on every touched account.
    pub(crate) fn finish(mut self) -> Vec<Event> {
        #[cfg(debug_assertions)]
        self.debug_check();
        self.journal.clear();
        self.state.scratch.journal = self.journal;
        self.events
    }

    /// Cheap invariant check over the accounts this execution touched.
    #[cfg(debug_assertions)]
    fn debug_check(&self) {
        use std::collections::BTreeMap;
        let mut before: BTreeMap<&AccountId, Option<&Account>> = BTreeMap::new();
        for undo in &self.journal {
            if let Undo::Account(id, prev) = undo {
                before.entry(id).or_insert(prev.as_ref());
            }
        }
        let changes = before
            .iter()
            .filter_map(|(id, prev)| self.state.accounts.get(*id).map(|after| (*prev, after)));
        let checked = crate::invariant::check_l1_delta(changes).and_then(|()| {
            before
                .keys()
                .filter_map(|id| self.state.accounts.get(*id))
                .try_for_each(crate::invariant::check_l2)
        });
        if let Err(violation) = checked {
            panic!(
                "corrupted ledger state at index {}: {violation}",
                self.index
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountStatus, TransferStatus};
    use crate::types::Currency;

    #[test]
    fn rollback_restores_every_record_and_the_seq() {
        let mut state = LedgerState::new();
        let id = AccountId::parse("A").expect("valid");
        let account = Account {
            id: id.clone(),
            currency: Currency::parse("USD").expect("valid"),
            overdraft_limit: 0,
            status: AccountStatus::Open,
            metadata: "{}".to_owned(),
            balance: 0,
            pending_debits: 0,
            version: 0,
            updated_index: 0,
            updated_at_us: 0,
        };
        state.accounts.insert(id.clone(), account.clone());
        let before = state.state_hash();
        let mut x = Exec::new(&mut state, 1, 10);
        let mark = x.mark();
        x.put_account(Account {
            pending_debits: 5,
            ..account
        });
        x.put_transfer(Transfer {
            id: "p".into(),
            debit: id.clone(),
            credit: id,
            amount: 5,
            status: TransferStatus::Pending,
            memo: None,
            created_at_us: 10,
            created_index: 1,
            expires_at_us: Some(20),
            updated_index: 1,
        });
        x.emit(
            "p",
            EventKind::AccountFrozen {
                account: AccountId::parse("A").expect("valid"),
            },
        );
        assert_eq!(x.state().deadlines.len(), 1);
        x.rollback(mark);
        assert!(x.finish().is_empty());
        assert_eq!(state.state_hash(), before);
        assert!(state.deadlines.is_empty());
        assert_eq!(state.last_event_seq(), 0);
    }
}

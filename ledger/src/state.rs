//! `LedgerState`: the replicated state (accounts, transfers, idempotency table, counters), the
//! `execute` dispatch, read accessors, whole-state invariant checks, hashes and restore.
//! Transfers and idempotency entries live in [`crate::tiers`]: pending transfers and recent
//! history in memory, older history in a [`ColdHistory`] the node supplies.
//!
//! Per top-level command, `execute`:
//! 1. clamps time: `ts = max(cmd.timestamp_us, last_timestamp_us + 1)`;
//! 2. expires every pending transfer with `expires_at_us <= ts` (deadline, then id order);
//! 3. runs the command under the idempotency rule (`Tick` skips it and is never recorded);
//! 4. chains `applied_hash = sha256(prev || bincode(result) || bincode(events))`.

use crate::account::{Account, Transfer, TransferStatus};
use crate::command::account_status::{self, StatusChange};
use crate::command::transfer::{self, TransferArgs};
use crate::command::{batch, open_account, two_phase, Command, CommandBody, Done, Executed};
use crate::event::Event;
use crate::exec::Exec;
use crate::invariant::{self, Invariant, Violation};
use crate::outcome::{CommandResult, Outcome};
use crate::tiers::{ColdHistory, Tiers, TransferSlots};
use crate::types::{validate_command_id, AccountId, TimestampUs};
use compact_str::CompactString;
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

pub use crate::idempotency::IdempotencyEntry;
pub use crate::tiers::Sealed;

/// Everything one execute() produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The command's result (for a retry: the stored one with `replayed: true`).
    pub result: CommandResult,
    /// Every event emitted, in seq order: first the expiries this command's time triggered,
    /// then the command's own events.
    pub events: Vec<Event>,
}

/// Persisted parts a state is rebuilt from (the node keeps them in sled).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreParts {
    /// Every account, system accounts included.
    pub accounts: Vec<Account>,
    /// Every transfer, whatever its status.
    pub transfers: Vec<Transfer>,
    /// The idempotency table.
    pub idempotency: Vec<(String, IdempotencyEntry)>,
    /// Last assigned event seq.
    pub last_event_seq: u64,
    /// Last effective timestamp.
    pub last_timestamp_us: TimestampUs,
    /// Rolling applied hash after the last applied command.
    pub applied_hash: [u8; 32],
}

/// The deterministic ledger state machine. Accounts and deadlines are ordered maps; the
/// per-command maps (`IdMap`, inside the tiers) iterate in hash order, which nothing
/// replicated depends on: the state digest sums transfers and idempotency entries as a
/// multiset, and expiry follows the ordered deadline index — so hashing and expiry order are
/// the same on every replica.
/// Every map is persistent (structure-sharing): `clone` is O(1), so a snapshot capture never
/// stalls apply; a write after a clone copies only the path it touches.
#[derive(Clone, Debug, Default)]
pub struct LedgerState {
    /// Accounts by id.
    pub(crate) accounts: OrdMap<AccountId, Account>,
    /// Transfers by id (the id of the command that created them) and the idempotency table
    /// (command id -> fingerprint and first result, L3), in memory and cold tiers.
    pub(crate) tiers: Tiers,
    /// (expires_at_us, transfer id) of every pending transfer with a deadline; derived from
    /// the pending transfers, kept so expiry does not scan them.
    pub(crate) deadlines: OrdSet<(TimestampUs, CompactString)>,
    /// Last assigned event seq (0: none yet).
    pub(crate) last_event_seq: u64,
    /// Effective timestamp of the last command.
    pub(crate) last_timestamp_us: TimestampUs,
    /// Rolling hash over every result and event.
    pub(crate) applied_hash: [u8; 32],
    /// Buffers execution reuses; not part of the state.
    pub(crate) scratch: Scratch,
}

/// Buffers one execution hands to the next, so their memory stays allocated: the undo journal
/// of a large batch holds thousands of records, and growing a fresh one for every command put
/// about a tenth of the leader's CPU into reallocation copies and page faults (big freed blocks
/// go back to the kernel, and the next command faults them in again, zeroed). Not state: empty
/// after every command, not hashed, not persisted, and a clone starts empty.
#[derive(Default)]
pub(crate) struct Scratch {
    /// The undo journal's storage (always empty between commands).
    pub(crate) journal: Vec<crate::exec::Undo>,
}

impl Clone for Scratch {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch").finish_non_exhaustive()
    }
}

impl LedgerState {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply one command at Raft log index `index`. Deterministic. Never panics on bad input:
    /// bad input => Rejected.
    pub fn execute(&mut self, index: u64, cmd: &Command) -> Applied {
        let ts = cmd
            .timestamp_us
            .max(self.last_timestamp_us.saturating_add(1));
        self.last_timestamp_us = ts;
        self.tiers.set_horizon(index);
        let mut x = Exec::new(self, index, ts);
        let sweep = x.mark();
        two_phase::expire_due(&mut x, &cmd.id);
        let result = match &cmd.body {
            CommandBody::Tick => {
                // A tick's own events are the expiries it triggered.
                let outcome = if validate_command_id(&cmd.id).is_ok() {
                    let (first_event_seq, last_event_seq) = x.seq_range_since(sweep);
                    Outcome::Accepted {
                        first_event_seq,
                        last_event_seq,
                        status: CompactString::const_new("tick"),
                        inner: Vec::new(),
                    }
                } else {
                    Outcome::Rejected(crate::command::invalid(
                        "command id must be 1..128 printable ascii characters",
                    ))
                };
                CommandResult {
                    command_id: cmd.id.as_str().into(),
                    index,
                    timestamp_us: ts,
                    outcome,
                    replayed: false,
                }
            }
            body => crate::idempotency::run(&mut x, &cmd.id, body),
        };
        let events = x.finish();
        self.tiers.set_horizon(index.saturating_add(1));
        self.applied_hash = crate::hash::chain_applied(&self.applied_hash, &result, &events);
        Applied { result, events }
    }

    /// The account, if it exists (system accounts too).
    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// All accounts, ordered by id.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// The transfer, if it exists (from memory, or from the cold history).
    pub fn transfer(&self, id: &str) -> Option<Cow<'_, Transfer>> {
        self.tiers.transfer(id)
    }

    /// All transfers of every tier, each once, in no particular order (the cold history is
    /// streamed).
    pub fn transfers(&self) -> impl Iterator<Item = Cow<'_, Transfer>> + '_ {
        self.tiers.transfers_all()
    }

    /// The pending transfers (the working set), in arbitrary order.
    pub fn pending_transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.tiers.pending.values_unordered()
    }

    /// The idempotency entry recorded for a command id.
    pub fn idempotency(&self, command_id: &str) -> Option<Cow<'_, IdempotencyEntry>> {
        self.tiers.idempotency(command_id)
    }

    /// The whole idempotency table of every tier, each command id once, in no particular
    /// order (the cold history is streamed).
    pub fn idempotency_entries(
        &self,
    ) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, IdempotencyEntry>)> + '_ {
        self.tiers.idempotency_all()
    }

    /// Sets the finished transfers and idempotency entries written since the last seal aside
    /// as a sealed generation (O(1)), for the node to copy into its cold history.
    pub fn seal_history(&mut self) {
        self.tiers.seal();
    }

    /// Finished records applied since the last seal (the part of the hot history a seal
    /// would set aside).
    pub fn young_history_len(&self) -> usize {
        self.tiers.young_len()
    }

    /// The sealed generations not yet forgotten, oldest first.
    pub fn sealed_history(&self) -> &[Sealed] {
        self.tiers.sealed()
    }

    /// Forgets the sealed generations numbered `<= number`: the cold history holds them now.
    pub fn forget_sealed_through(&mut self, number: u64) {
        self.tiers.forget_sealed_through(number);
    }

    /// Serves lookups of history the memory tiers do not hold from `cold`.
    pub fn attach_cold_history(&mut self, cold: Arc<dyn ColdHistory>) {
        self.tiers.attach_cold(cold);
    }

    /// Makes the cold history visible up to (not including) log index `index`: a node restored
    /// from a snapshot at index `n` sets `n + 1` (its cold history may hold later records).
    /// `execute` moves it along by itself.
    pub fn set_history_horizon(&mut self, index: u64) {
        self.tiers.set_horizon(index);
    }

    /// Finished transfers and idempotency entries held in memory (not yet in cold history).
    pub fn hot_history_len(&self) -> usize {
        self.tiers.hot_len()
    }

    /// Last assigned event seq (0 before any event).
    pub fn last_event_seq(&self) -> u64 {
        self.last_event_seq
    }

    /// Earliest deadline of a pending transfer, if any (the leader proposes a `Tick` once
    /// leader time passes it, so expiry happens without other traffic).
    pub fn next_expiry_us(&self) -> Option<TimestampUs> {
        self.deadlines.get_min().map(|(deadline, _)| *deadline)
    }

    /// Effective timestamp of the last executed command (0 before any).
    pub fn last_timestamp_us(&self) -> TimestampUs {
        self.last_timestamp_us
    }

    /// Rolling hash over every applied command's result and events (cheap, updated per
    /// execute); equal on replicas at equal applied index.
    pub fn applied_hash(&self) -> [u8; 32] {
        self.applied_hash
    }

    /// Full digest of accounts, transfers, idempotency table, last event seq and last timestamp
    /// in key order; O(n). Excludes the applied hash (history) and the deadline index (derived).
    pub fn state_hash(&self) -> [u8; 32] {
        crate::hash::state_digest(self)
    }

    /// L1 and L2 over the whole state, plus internal consistency: reservations equal the sum of
    /// pending transfers, and the deadline index matches the pending transfers and holds no
    /// deadline before the last command's time (expiry ran for it) (both reported as L2, whose enforcement relies on them).
    pub fn check_invariants(&self) -> Result<(), Violation> {
        invariant::check_l1(self.accounts.values())?;
        self.accounts.values().try_for_each(invariant::check_l2)?;
        invariant::check_reservations(self.accounts.values(), self.pending_transfers())?;
        if self.deadlines != deadline_index(self.pending_transfers()) {
            let detail = "deadline index disagrees with pending transfers".to_owned();
            return Err(Violation {
                invariant: Invariant::L2,
                detail,
            });
        }
        if let Some((deadline, id)) = self.deadlines.get_min() {
            if *deadline < self.last_timestamp_us {
                let detail = format!("pending transfer {id} outlived its deadline {deadline}");
                return Err(Violation {
                    invariant: Invariant::L2,
                    detail,
                });
            }
        }
        Ok(())
    }

    /// Rebuilds a state from persisted parts (the deadline index is derived from transfers).
    /// Everything goes to the memory tiers; a node whose cold history holds the finished
    /// records passes only the pending transfers and attaches the cold history.
    pub fn restore(parts: RestoreParts) -> Self {
        let mut state = Self {
            accounts: parts
                .accounts
                .into_iter()
                .map(|a| (a.id.clone(), a))
                .collect(),
            last_event_seq: parts.last_event_seq,
            last_timestamp_us: parts.last_timestamp_us,
            applied_hash: parts.applied_hash,
            ..Self::default()
        };
        for transfer in parts.transfers {
            state.replace_transfer(transfer);
        }
        for (id, entry) in parts.idempotency {
            state.tiers.put_idempotency(&id, entry);
        }
        state
    }

    /// Stores a transfer, keeping the deadline index in step; returns what its slots held.
    pub(crate) fn replace_transfer(&mut self, transfer: Transfer) -> TransferSlots {
        let key = deadline_key(&transfer);
        let slots = self.tiers.put_transfer(transfer);
        self.unindex(slots.pending.as_ref());
        if let Some(key) = key {
            self.deadlines.insert(key);
        }
        slots
    }

    /// Puts a transfer's slots back as `replace_transfer` found them, deadline index included.
    pub(crate) fn restore_transfer(&mut self, id: &str, slots: TransferSlots) {
        let restored_key = slots.pending.as_ref().and_then(deadline_key);
        let replaced = self.tiers.restore_transfer(id, slots);
        self.unindex(replaced.as_ref());
        if let Some(key) = restored_key {
            self.deadlines.insert(key);
        }
    }

    fn unindex(&mut self, transfer: Option<&Transfer>) {
        if let Some(key) = transfer.and_then(deadline_key) {
            self.deadlines.remove(&key);
        }
    }
}

/// Deadline-index key of a transfer: only pending transfers with a deadline have one.
fn deadline_key(transfer: &Transfer) -> Option<(TimestampUs, CompactString)> {
    match (transfer.status, transfer.expires_at_us) {
        (TransferStatus::Pending, Some(deadline)) => Some((deadline, transfer.id.clone())),
        _ => None,
    }
}

fn deadline_index<'a>(
    transfers: impl Iterator<Item = &'a Transfer>,
) -> OrdSet<(TimestampUs, CompactString)> {
    transfers.filter_map(deadline_key).collect()
}

/// Executes one command body (idempotency already handled by the caller).
pub(crate) fn apply_body(x: &mut Exec<'_>, id: &str, body: &CommandBody) -> Executed {
    match body {
        CommandBody::OpenAccount {
            account,
            currency,
            overdraft_limit,
            metadata,
        } => open_account::execute(x, id, account, *currency, *overdraft_limit, metadata),
        CommandBody::Deposit { account, amount } => transfer::deposit(x, id, account, *amount),
        CommandBody::Withdraw { account, amount } => transfer::withdraw(x, id, account, *amount),
        CommandBody::Transfer {
            from,
            to,
            amount,
            pending,
            timeout_s,
            memo,
        } => {
            let args = TransferArgs {
                from,
                to,
                amount: *amount,
                pending: *pending,
                timeout_s: *timeout_s,
                memo: memo.as_ref(),
            };
            transfer::transfer(x, id, args)
        }
        CommandBody::PostPending { transfer_id } => two_phase::post(x, id, transfer_id),
        CommandBody::VoidPending { transfer_id } => two_phase::void(x, id, transfer_id),
        CommandBody::Freeze { account } => {
            account_status::execute(x, id, account, StatusChange::Freeze)
        }
        CommandBody::Unfreeze { account } => {
            account_status::execute(x, id, account, StatusChange::Unfreeze)
        }
        CommandBody::Close { account } => {
            account_status::execute(x, id, account, StatusChange::Close)
        }
        CommandBody::Batch { atomic, commands } => batch::execute(x, id, *atomic, commands),
        // A tick never reaches here from `execute`, and batches refuse ticks.
        CommandBody::Tick => Ok(Done::status("tick")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rejection::Rejection;
    use crate::types::{Currency, MEMO_LEN_MAX, METADATA_LEN_MAX};

    fn cmd(id: &str, body: CommandBody) -> Command {
        Command {
            id: id.to_owned(),
            timestamp_us: 0,
            body,
        }
    }

    fn open(id: &str, account: &str, metadata: &str) -> Command {
        let body = CommandBody::OpenAccount {
            account: AccountId::parse(account).expect("valid"),
            currency: Currency::parse("USD").expect("valid"),
            overdraft_limit: 0,
            metadata: metadata.to_owned(),
        };
        cmd(id, body)
    }

    fn rejection(applied: &Applied) -> Option<&Rejection> {
        match &applied.result.outcome {
            Outcome::Rejected(r) => Some(r),
            Outcome::Accepted { .. } => None,
        }
    }

    #[test]
    fn ticks_are_not_recorded_but_are_hashed() {
        let mut state = LedgerState::new();
        let before = state.applied_hash();
        let applied = state.execute(1, &cmd("t", CommandBody::Tick));
        assert!(applied.result.outcome.is_accepted());
        assert!(state.idempotency("t").is_none());
        assert_ne!(state.applied_hash(), before);
    }

    #[test]
    fn over_long_text_is_an_invalid_command() {
        let mut state = LedgerState::new();
        let long_metadata = "x".repeat(METADATA_LEN_MAX + 1);
        let applied = state.execute(1, &open("o1", "A", &long_metadata));
        assert!(matches!(
            rejection(&applied),
            Some(Rejection::InvalidCommand { .. })
        ));
        state.execute(2, &open("o2", "A", "{}"));
        state.execute(3, &open("o3", "B", "{}"));
        let transfer = CommandBody::Transfer {
            from: AccountId::parse("A").expect("valid"),
            to: AccountId::parse("B").expect("valid"),
            amount: 1,
            pending: false,
            timeout_s: None,
            memo: Some("m".repeat(MEMO_LEN_MAX + 1)),
        };
        let applied = state.execute(4, &cmd("t1", transfer));
        assert_eq!(
            rejection(&applied).map(Rejection::code),
            Some("invalid_command")
        );
        assert_eq!(
            Rejection::InvalidCommand {
                reason: String::new()
            }
            .http_status(),
            400
        );
    }

    #[test]
    fn batch_size_is_bounded() {
        let inner = |n: usize| {
            (0..n)
                .map(|i| open(&format!("o{i}"), &format!("a{i}"), "{}"))
                .collect()
        };
        let mut state = LedgerState::new();
        let too_many = CommandBody::Batch {
            atomic: true,
            commands: inner(crate::command::BATCH_COMMANDS_MAX + 1),
        };
        let applied = state.execute(1, &cmd("b1", too_many));
        assert_eq!(rejection(&applied), Some(&Rejection::InvalidBatch));
        let most = CommandBody::Batch {
            atomic: true,
            commands: inner(crate::command::BATCH_COMMANDS_MAX),
        };
        let applied = state.execute(2, &cmd("b2", most));
        assert!(applied.result.outcome.is_accepted());
        assert_eq!(
            state.last_event_seq(),
            crate::command::BATCH_COMMANDS_MAX as u64
        );
        assert!(state.check_invariants().is_ok());
    }

    #[test]
    fn fingerprint_is_pinned() {
        // Fingerprints are persisted in the idempotency table: an encoding change would make
        // every retry after an upgrade look like a reused key. Change this only with a migration.
        // Bytes: variant 0, len 1 "A", len 3 "USD", zigzag 0, len 2 "{}" (checked by hand).
        let body = open("o1", "A", "{}").body;
        let hex = hex::encode(crate::idempotency::fingerprint(&body));
        assert_eq!(hex, PINNED_OPEN_FINGERPRINT);
        assert_ne!(
            crate::idempotency::fingerprint(&open("o1", "B", "{}").body),
            crate::idempotency::fingerprint(&body)
        );
    }

    const PINNED_OPEN_FINGERPRINT: &str =
        "1037c1dd5246910e3578b9673d0d97afdbf5914d6461fdc2e90e36b9a97773af";
}

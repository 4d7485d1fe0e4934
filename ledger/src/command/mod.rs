//! Commands clients propose through Raft. One file per command kind holds its validation and
//! event construction (`open_account.rs`, `transfer.rs`, `two_phase.rs`, `account_status.rs`,
//! `batch.rs`); this module holds the envelope shared by all of them.

pub(crate) mod account_status;
pub(crate) mod batch;
pub(crate) mod open_account;
pub(crate) mod transfer;
pub(crate) mod two_phase;

pub use batch::BATCH_COMMANDS_MAX;

use crate::account::{Account, AccountStatus};
use crate::exec::Exec;
use crate::outcome::CommandResult;
use crate::rejection::Rejection;
use crate::types::{AccountId, Currency, TimestampUs};
use serde::{Deserialize, Serialize};

/// One proposed command: the idempotency key, the leader's timestamp, and what to do.
///
/// `id` is the idempotency key: a retry with the same id and the same body returns the original
/// outcome; the same id with a different body is rejected as `idempotency_key_reused`.
/// `timestamp_us` is stamped by the leader (monotonic); the state machine clamps it to
/// `max(timestamp_us, last_timestamp_us + 1)` so time never goes backwards across leaders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Idempotency key (for transfers, deposits and withdrawals: the transfer id).
    pub id: String,
    /// Leader stamp, microseconds since the Unix epoch.
    pub timestamp_us: TimestampUs,
    /// What to do.
    pub body: CommandBody,
}

impl Command {
    /// Commands this one counts as when sizing log entries and apply chunks: a batch counts as
    /// its inner commands (at least one), anything else as one.
    pub fn weight(&self) -> usize {
        match &self.body {
            CommandBody::Batch { commands, .. } => commands.len().max(1),
            _ => 1,
        }
    }
}

/// The closed set of ledger commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandBody {
    /// Open an account (the account id is `account`; the command id is the idempotency key).
    OpenAccount {
        /// New account id.
        account: AccountId,
        /// Its only currency.
        currency: Currency,
        /// How far below zero the balance may go (>= 0).
        overdraft_limit: i64,
        /// Small JSON object as canonical text (`"{}"` when absent).
        metadata: String,
    },
    /// Move `amount` from the currency's system account into `account` (a transfer with id = command id).
    Deposit {
        /// Credited account.
        account: AccountId,
        /// Minor units, > 0.
        amount: i64,
    },
    /// Move `amount` from `account` to the currency's system account (a transfer with id = command id).
    Withdraw {
        /// Debited account.
        account: AccountId,
        /// Minor units, > 0.
        amount: i64,
    },
    /// Move `amount` from `from` (debit) to `to` (credit); the transfer id is the command id.
    Transfer {
        /// Debit account.
        from: AccountId,
        /// Credit account.
        to: AccountId,
        /// Minor units, > 0.
        amount: i64,
        /// Two-phase: reserve now, post or void later.
        pending: bool,
        /// For pending transfers: expire after this many seconds of leader time (None = never).
        timeout_s: Option<u64>,
        /// Free text shown in histories.
        memo: Option<String>,
    },
    /// Post (complete) a pending transfer.
    PostPending {
        /// The pending transfer's id.
        transfer_id: String,
    },
    /// Void (cancel) a pending transfer, releasing the reservation.
    VoidPending {
        /// The pending transfer's id.
        transfer_id: String,
    },
    /// Freeze an account: no debits or credits until unfrozen.
    Freeze {
        /// Target account.
        account: AccountId,
    },
    /// Unfreeze a frozen account.
    Unfreeze {
        /// Target account.
        account: AccountId,
    },
    /// Close an account (balance and pending must be zero); terminal.
    Close {
        /// Target account.
        account: AccountId,
    },
    /// Several commands; when `atomic`, all are accepted or none is (the first rejection wins).
    /// Each inner command has its own id (idempotency key) and shares this command's timestamp.
    Batch {
        /// All-or-nothing when true; independent outcomes when false.
        atomic: bool,
        /// Inner commands (no nested batches).
        commands: Vec<Command>,
    },
    /// No-op stamped by the leader so pending transfers expire even without traffic.
    /// Not recorded in the idempotency table.
    Tick,
}

/// What an accepted command reports besides its events.
pub(crate) struct Done {
    /// Outcome status string (`posted`, `pending`, `open`, `batch`, ...).
    pub(crate) status: &'static str,
    /// For batches: each inner command's result.
    pub(crate) inner: Vec<CommandResult>,
}

impl Done {
    /// A non-batch acceptance with this status.
    pub(crate) fn status(status: &'static str) -> Self {
        Self {
            status,
            inner: Vec::new(),
        }
    }
}

/// What a command handler returns: accepted (events already emitted) or a rejection (the caller
/// undoes anything the handler did).
pub(crate) type Executed = Result<Done, Rejection>;

/// `Rejection::InvalidCommand` with this reason.
pub(crate) fn invalid(reason: &str) -> Rejection {
    Rejection::InvalidCommand {
        reason: reason.to_owned(),
    }
}

/// A client-named account: system accounts are refused (`InvalidCommand`), missing ones are
/// `AccountNotFound`. Ids arriving through serde are unvalidated, hence the explicit check.
pub(crate) fn client_account(x: &Exec<'_>, id: &AccountId) -> Result<Account, Rejection> {
    if id.is_system() {
        return Err(invalid("system accounts cannot be named by clients"));
    }
    x.state()
        .account(id)
        .cloned()
        .ok_or(Rejection::AccountNotFound)
}

/// Both sides of a movement must be usable: closed beats frozen, debit side checked first.
pub(crate) fn check_usable(debit: &Account, credit: &Account) -> Result<(), Rejection> {
    let any = |status| debit.status == status || credit.status == status;
    if any(AccountStatus::Closed) {
        return Err(Rejection::AccountClosed);
    }
    if any(AccountStatus::Frozen) {
        return Err(Rejection::AccountFrozen);
    }
    Ok(())
}

/// Stamps an account as changed by the command being executed.
pub(crate) fn touch(x: &Exec<'_>, account: &mut Account) {
    account.updated_index = x.index();
    account.updated_at_us = x.ts();
}

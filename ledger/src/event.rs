//! Events emitted by accepted commands. Every event carries its dense sequence number, the Raft
//! log index and leader timestamp of its command, a schema version and the idempotency key.

use crate::types::{AccountId, Currency, TimestampUs};
use serde::{Deserialize, Serialize};

/// Schema version written into every new event; readers upcast older versions.
pub const EVENT_SCHEMA_VERSION: u16 = 1;

/// One ledger event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Global event sequence: dense, gap-free, starting at 1, assigned in apply.
    pub seq: u64,
    /// Raft log index of the entry whose command produced this event.
    pub index: u64,
    /// Effective (clamped, monotonic) leader timestamp of the command.
    pub timestamp_us: TimestampUs,
    /// Schema version of `kind`.
    pub schema_version: u16,
    /// Id (idempotency key) of the command that produced this event.
    pub command_id: String,
    /// What happened.
    pub kind: EventKind,
}

/// What happened. Balances are posted balances after the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// An account was opened (also emitted for a system account the first time its currency is used).
    AccountOpened {
        /// The account.
        account: AccountId,
        /// Its currency.
        currency: Currency,
        /// Overdraft limit (0 for system accounts, which are unlimited).
        overdraft_limit: i64,
        /// Metadata JSON text.
        metadata: String,
    },
    /// Money moved (a single-phase transfer, deposit or withdrawal, or a posted pending transfer).
    TransferPosted {
        /// Transfer id.
        transfer_id: String,
        /// Debit account.
        debit: AccountId,
        /// Credit account.
        credit: AccountId,
        /// Minor units.
        amount: i64,
        /// Debit account's posted balance after this event.
        debit_balance_after: i64,
        /// Credit account's posted balance after this event.
        credit_balance_after: i64,
        /// True when this completes an earlier pending transfer.
        from_pending: bool,
        /// Memo, if any.
        memo: Option<String>,
    },
    /// Funds reserved on the debit account for a two-phase transfer (balances unchanged).
    TransferPending {
        /// Transfer id.
        transfer_id: String,
        /// Debit account.
        debit: AccountId,
        /// Credit account.
        credit: AccountId,
        /// Minor units reserved.
        amount: i64,
        /// Leader time at which it expires, if any.
        expires_at_us: Option<TimestampUs>,
        /// Debit account's posted balance (unchanged).
        debit_balance_after: i64,
        /// Credit account's posted balance (unchanged).
        credit_balance_after: i64,
        /// Memo, if any.
        memo: Option<String>,
    },
    /// A pending transfer was voided (reservation released).
    TransferVoided {
        /// Transfer id.
        transfer_id: String,
        /// Debit account.
        debit: AccountId,
        /// Credit account.
        credit: AccountId,
        /// Minor units released.
        amount: i64,
    },
    /// A pending transfer passed its deadline in leader time (reservation released).
    TransferExpired {
        /// Transfer id.
        transfer_id: String,
        /// Debit account.
        debit: AccountId,
        /// Credit account.
        credit: AccountId,
        /// Minor units released.
        amount: i64,
    },
    /// Account frozen.
    AccountFrozen {
        /// The account.
        account: AccountId,
    },
    /// Account unfrozen.
    AccountUnfrozen {
        /// The account.
        account: AccountId,
    },
    /// Account closed.
    AccountClosed {
        /// The account.
        account: AccountId,
    },
}

impl EventKind {
    /// Stable snake_case type name used on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::AccountOpened { .. } => "account_opened",
            Self::TransferPosted { .. } => "transfer_posted",
            Self::TransferPending { .. } => "transfer_pending",
            Self::TransferVoided { .. } => "transfer_voided",
            Self::TransferExpired { .. } => "transfer_expired",
            Self::AccountFrozen { .. } => "account_frozen",
            Self::AccountUnfrozen { .. } => "account_unfrozen",
            Self::AccountClosed { .. } => "account_closed",
        }
    }

    /// Accounts whose posted balance this event changes, with the balance after it.
    /// Used to maintain the per-account history index (time travel).
    pub fn balance_changes(&self) -> Vec<(&AccountId, i64)> {
        match self {
            Self::TransferPosted {
                debit,
                credit,
                debit_balance_after,
                credit_balance_after,
                ..
            } => vec![
                (debit, *debit_balance_after),
                (credit, *credit_balance_after),
            ],
            _ => Vec::new(),
        }
    }

    /// Every account this event concerns (for per-account event listings).
    pub fn accounts(&self) -> Vec<&AccountId> {
        match self {
            Self::AccountOpened { account, .. }
            | Self::AccountFrozen { account }
            | Self::AccountUnfrozen { account }
            | Self::AccountClosed { account } => vec![account],
            Self::TransferPosted { debit, credit, .. }
            | Self::TransferPending { debit, credit, .. }
            | Self::TransferVoided { debit, credit, .. }
            | Self::TransferExpired { debit, credit, .. } => vec![debit, credit],
        }
    }
}

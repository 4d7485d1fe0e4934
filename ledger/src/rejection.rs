//! The closed set of named business rejections. A rejection is a replicated outcome stored in
//! the idempotency table, never a storage error.

use serde::{Deserialize, Serialize};

/// Why the state machine refused a command. `code()` is the stable wire name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// Debit would take the account below `-overdraft_limit`.
    InsufficientFunds,
    /// A referenced account does not exist.
    AccountNotFound,
    /// `OpenAccount` for an id that already exists (with a different command id).
    AccountAlreadyExists,
    /// Debit and credit accounts have different currencies.
    CurrencyMismatch,
    /// Debit and credit are the same account.
    AccountsMustBeDifferent,
    /// Amount <= 0.
    AmountMustBePositive,
    /// Overdraft limit < 0.
    OverdraftLimitMustBeNonNegative,
    /// A touched account is frozen.
    AccountFrozen,
    /// A touched account is closed.
    AccountClosed,
    /// `Close` with a non-zero balance or reservations.
    AccountNotEmpty,
    /// `Freeze` of a frozen account, or `Unfreeze` of an open one.
    AccountStatusUnchanged,
    /// The command id was used before with a different command body.
    IdempotencyKeyReused,
    /// `PostPending`/`VoidPending` of an unknown transfer id.
    TransferNotFound,
    /// `PostPending`/`VoidPending` of a transfer that is not pending (posted, voided, expired).
    TransferNotPending,
    /// A pending transfer already expired (leader time passed its deadline).
    TransferExpired,
    /// A balance would overflow i64.
    BalanceOverflow,
    /// Batches cannot contain batches or ticks, nor be empty.
    InvalidBatch,
    /// The command is malformed in a way the node should have caught (bad id, system account,
    /// over-long text, out-of-range timeout).
    InvalidCommand {
        /// Human-readable reason (lowercase, no final period).
        reason: String,
    },
    /// In an atomic batch, another command was rejected (its index and rejection in details).
    BatchAborted {
        /// Position of the first rejected command.
        failed_index: u32,
        /// Its rejection code.
        failed_code: String,
    },
}

impl Rejection {
    /// Stable snake_case code used on the wire and in events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InsufficientFunds => "insufficient_funds",
            Self::AccountNotFound => "account_not_found",
            Self::AccountAlreadyExists => "account_already_exists",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::AccountsMustBeDifferent => "accounts_must_be_different",
            Self::AmountMustBePositive => "amount_must_be_positive",
            Self::OverdraftLimitMustBeNonNegative => "overdraft_limit_must_be_non_negative",
            Self::AccountFrozen => "account_frozen",
            Self::AccountClosed => "account_closed",
            Self::AccountNotEmpty => "account_not_empty",
            Self::AccountStatusUnchanged => "account_status_unchanged",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::TransferNotFound => "transfer_not_found",
            Self::TransferNotPending => "transfer_not_pending",
            Self::TransferExpired => "transfer_expired",
            Self::BalanceOverflow => "balance_overflow",
            Self::InvalidBatch => "invalid_batch",
            Self::InvalidCommand { .. } => "invalid_command",
            Self::BatchAborted { .. } => "batch_aborted",
        }
    }

    /// HTTP status the node API maps this to: 400 malformed, 404 not found, 409 conflicts,
    /// 422 business rules.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidCommand { .. } => 400,
            Self::AccountNotFound | Self::TransferNotFound => 404,
            Self::AccountAlreadyExists | Self::IdempotencyKeyReused => 409,
            _ => 422,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

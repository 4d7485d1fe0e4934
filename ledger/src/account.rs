//! Account and transfer records held in the ledger state.

use crate::types::{AccountId, Currency, TimestampUs};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Account lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    /// Accepts debits and credits.
    Open,
    /// Refuses debits and credits until unfrozen.
    Frozen,
    /// Terminal; refuses everything.
    Closed,
}

impl AccountStatus {
    /// Wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Frozen => "frozen",
            Self::Closed => "closed",
        }
    }
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Id.
    pub id: AccountId,
    /// Currency.
    pub currency: Currency,
    /// Balance may go down to `-overdraft_limit` (ignored for system accounts).
    pub overdraft_limit: i64,
    /// Status.
    pub status: AccountStatus,
    /// Metadata JSON text.
    pub metadata: String,
    /// Posted balance in minor units.
    pub balance: i64,
    /// Sum of reservations held by pending transfers debiting this account.
    pub pending_debits: i64,
    /// Number of postings (transfer_posted events) touching this account.
    pub version: u64,
    /// Log index of the last change to this account.
    pub updated_index: u64,
    /// Leader time of the last change to this account.
    pub updated_at_us: TimestampUs,
}

/// Two-phase and single-phase transfer states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferStatus {
    /// Money moved.
    Posted,
    /// Reserved, awaiting post or void.
    Pending,
    /// Cancelled by a client.
    Voided,
    /// Cancelled by leader time passing its deadline.
    Expired,
}

impl TransferStatus {
    /// Wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Posted => "posted",
            Self::Pending => "pending",
            Self::Voided => "voided",
            Self::Expired => "expired",
        }
    }
}

/// One transfer (deposits and withdrawals are transfers against a system account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Transfer id (== the id of the command that created it).
    pub id: CompactString,
    /// Debit account.
    pub debit: AccountId,
    /// Credit account.
    pub credit: AccountId,
    /// Minor units.
    pub amount: i64,
    /// Status.
    pub status: TransferStatus,
    /// Memo.
    pub memo: Option<String>,
    /// Leader time it was created.
    pub created_at_us: TimestampUs,
    /// Log index it was created at.
    pub created_index: u64,
    /// For pending transfers: leader time after which it expires.
    pub expires_at_us: Option<TimestampUs>,
    /// Log index of its last status change.
    pub updated_index: u64,
}

//! The invariant catalogue (ARCHITECTURE.md, "Invariant catalogue"). The same ids appear in the state machine's debug
//! checks, the chaos checker's violations and the read model's reconciliation.

use serde::{Deserialize, Serialize};

/// One invariant id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Invariant {
    /// Per currency, the sum of all balances (system accounts included) is 0.
    L1,
    /// No account balance below -overdraft_limit (system accounts excepted).
    L2,
    /// A transfer id is applied at most once; a retry returns the original outcome.
    L3,
    /// Every acknowledged command is in the committed log at the index it reported.
    L4,
    /// Real-time order agrees with index order; reads equal the replay of the log prefix.
    L5,
    /// Replicas agree on the state hash at each applied index; logs agree on committed indexes.
    L6,
    /// The read model at checkpoint s equals the replay of events 1..s.
    L7,
    /// balance_at(account, T) equals the replay of events with timestamp <= T.
    L8,
}

impl Invariant {
    /// One-line statement of the invariant.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::L1 => "per currency, the sum of all balances is zero",
            Self::L2 => "no account balance below -overdraft_limit (system accounts excepted)",
            Self::L3 => "a transfer id is applied at most once",
            Self::L4 => "every acknowledged command is in the committed log at its reported index",
            Self::L5 => "real-time order agrees with log order; reads equal the log-prefix replay",
            Self::L6 => "replicas agree on state hash at each applied index",
            Self::L7 => "read model at checkpoint s equals the replay of events 1..s",
            Self::L8 => "balance_at(T) equals the replay of events up to T",
        }
    }
}

/// A violated invariant found by a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("invariant {invariant:?} violated: {detail}")]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// What was observed.
    pub detail: String,
}

use crate::account::{Account, Transfer, TransferStatus};
use crate::types::Currency;
use std::collections::BTreeMap;

fn violation(invariant: Invariant, detail: String) -> Violation {
    Violation { invariant, detail }
}

/// L1: per currency, the sum of all balances (system accounts included) is zero.
pub fn check_l1<'a>(accounts: impl IntoIterator<Item = &'a Account>) -> Result<(), Violation> {
    let mut sums: BTreeMap<Currency, i128> = BTreeMap::new();
    for account in accounts {
        *sums.entry(account.currency).or_default() += i128::from(account.balance);
    }
    match sums.into_iter().find(|(_, sum)| *sum != 0) {
        Some((currency, sum)) => Err(violation(
            Invariant::L1,
            format!("{currency} balances sum to {sum}"),
        )),
        None => Ok(()),
    }
}

/// L1 for one change: per currency, the balance deltas of the touched accounts sum to zero.
/// Each item is (the account before, or `None` if it is new; the account after).
pub fn check_l1_delta<'a>(
    changes: impl IntoIterator<Item = (Option<&'a Account>, &'a Account)>,
) -> Result<(), Violation> {
    let mut sums: BTreeMap<Currency, i128> = BTreeMap::new();
    for (before, after) in changes {
        let before_balance = before.map_or(0, |account| i128::from(account.balance));
        *sums.entry(after.currency).or_default() += i128::from(after.balance) - before_balance;
    }
    match sums.into_iter().find(|(_, delta)| *delta != 0) {
        Some((currency, delta)) => Err(violation(
            Invariant::L1,
            format!("one command changed {currency} balances by {delta} in total"),
        )),
        None => Ok(()),
    }
}

/// L2 for one account: a client account's balance, and even its balance less its reservations,
/// stays at or above `-overdraft_limit`; reservations are never negative (any account).
pub fn check_l2(account: &Account) -> Result<(), Violation> {
    let floor = -i128::from(account.overdraft_limit);
    let balance = i128::from(account.balance);
    let available = balance - i128::from(account.pending_debits);
    let detail = if account.pending_debits < 0 {
        format!(
            "{} has negative pending_debits {}",
            account.id, account.pending_debits
        )
    } else if account.id.is_system() {
        return Ok(());
    } else if balance < floor || available < floor {
        format!(
            "{} balance {} (available {available}) below -overdraft_limit {floor}",
            account.id, account.balance
        )
    } else {
        return Ok(());
    };
    Err(violation(Invariant::L2, detail))
}

/// Reservation bookkeeping behind L2: every account's `pending_debits` equals the sum of its
/// pending transfers' amounts, and every pending transfer names existing accounts.
pub fn check_reservations<'a>(
    accounts: impl IntoIterator<Item = &'a Account>,
    transfers: impl IntoIterator<Item = &'a Transfer>,
) -> Result<(), Violation> {
    let mut reserved: BTreeMap<&crate::types::AccountId, i128> = BTreeMap::new();
    let accounts: BTreeMap<_, _> = accounts.into_iter().map(|a| (&a.id, a)).collect();
    for transfer in transfers {
        if !accounts.contains_key(&transfer.debit) || !accounts.contains_key(&transfer.credit) {
            return Err(violation(
                Invariant::L2,
                format!("transfer {} names a missing account", transfer.id),
            ));
        }
        if transfer.status == TransferStatus::Pending {
            *reserved.entry(&transfer.debit).or_default() += i128::from(transfer.amount);
        }
    }
    for (id, account) in accounts {
        let expected = reserved.get(id).copied().unwrap_or(0);
        if i128::from(account.pending_debits) != expected {
            return Err(violation(
                Invariant::L2,
                format!(
                    "{id} pending_debits {} but pending transfers sum to {expected}",
                    account.pending_debits
                ),
            ));
        }
    }
    Ok(())
}

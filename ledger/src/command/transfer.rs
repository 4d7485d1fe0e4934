//! `Transfer`, `Deposit` and `Withdraw`: single-phase postings and two-phase reservations.
//! Deposits and withdrawals are transfers against the currency's system account `@world:CUR`,
//! which is opened implicitly (with an `AccountOpened` event) by the first one accepted.

use super::{check_usable, client_account, invalid, touch, Done, Executed};
use crate::account::{Account, AccountStatus, Transfer, TransferStatus};
use crate::event::EventKind;
use crate::exec::Exec;
use crate::rejection::Rejection;
use crate::types::{AccountId, Currency, TimestampUs, MEMO_LEN_MAX};

/// Microseconds per second, for `timeout_s`.
const US_PER_S: u64 = 1_000_000;

/// Posted now, or reserved until posted, voided or expired at the deadline (None = never).
#[derive(Debug, Clone, Copy)]
enum Phase {
    Posted,
    Pending { expires_at_us: Option<TimestampUs> },
}

/// Deposit: debit the system account, credit `account`. Always posted.
pub(crate) fn deposit(
    x: &mut Exec<'_>,
    command_id: &str,
    account: &AccountId,
    amount: i64,
) -> Executed {
    check_amount(amount)?;
    let credit = client_account(x, account)?;
    let debit = system_account(x, credit.currency);
    move_money(x, command_id, debit, credit, amount, Phase::Posted, None)
}

/// Withdrawal: debit `account`, credit the system account. Always posted.
pub(crate) fn withdraw(
    x: &mut Exec<'_>,
    command_id: &str,
    account: &AccountId,
    amount: i64,
) -> Executed {
    check_amount(amount)?;
    let debit = client_account(x, account)?;
    let credit = system_account(x, debit.currency);
    move_money(x, command_id, debit, credit, amount, Phase::Posted, None)
}

/// The fields of a client transfer.
pub(crate) struct TransferArgs<'a> {
    /// Debit account.
    pub(crate) from: &'a AccountId,
    /// Credit account.
    pub(crate) to: &'a AccountId,
    /// Minor units.
    pub(crate) amount: i64,
    /// Two-phase when true.
    pub(crate) pending: bool,
    /// Pending only (ignored when posted): seconds of leader time until it expires.
    pub(crate) timeout_s: Option<u64>,
    /// Memo.
    pub(crate) memo: Option<&'a String>,
}

/// Transfer between two client accounts. Checks, in order: amount > 0, memo length and timeout
/// range (`InvalidCommand`), both accounts exist, they differ, same currency, then the checks of
/// [`move_money`].
pub(crate) fn transfer(x: &mut Exec<'_>, command_id: &str, args: TransferArgs<'_>) -> Executed {
    check_amount(args.amount)?;
    if args.memo.is_some_and(|memo| memo.len() > MEMO_LEN_MAX) {
        return Err(invalid("memo is too long"));
    }
    let phase = if args.pending {
        let expires_at_us = match args.timeout_s {
            None => None,
            Some(timeout_s) => Some(
                timeout_s
                    .checked_mul(US_PER_S)
                    .and_then(|timeout_us| x.ts().checked_add(timeout_us))
                    .ok_or_else(|| invalid("timeout_s is out of range"))?,
            ),
        };
        Phase::Pending { expires_at_us }
    } else {
        Phase::Posted
    };
    let debit = client_account(x, args.from)?;
    let credit = client_account(x, args.to)?;
    if debit.id == credit.id {
        return Err(Rejection::AccountsMustBeDifferent);
    }
    if debit.currency != credit.currency {
        return Err(Rejection::CurrencyMismatch);
    }
    let memo = args.memo.cloned();
    move_money(x, command_id, debit, credit, args.amount, phase, memo)
}

fn check_amount(amount: i64) -> Result<(), Rejection> {
    if amount <= 0 {
        return Err(Rejection::AmountMustBePositive);
    }
    Ok(())
}

/// The currency's system account as stored, or a fresh one (not yet stored) if never used.
fn system_account(x: &Exec<'_>, currency: Currency) -> Account {
    let id = AccountId::system(&currency);
    match x.state().account(&id) {
        Some(account) => account.clone(),
        None => Account {
            id,
            currency,
            overdraft_limit: 0,
            status: AccountStatus::Open,
            metadata: "{}".to_owned(),
            balance: 0,
            pending_debits: 0,
            version: 0,
            updated_index: x.index(),
            updated_at_us: x.ts(),
        },
    }
}

/// True when `debit` may give `amount` more: `balance - pending_debits - amount >=
/// -overdraft_limit` (i128, so the check itself cannot overflow). System accounts always can.
pub(crate) fn has_available(debit: &Account, amount: i64) -> bool {
    let available =
        i128::from(debit.balance) - i128::from(debit.pending_debits) - i128::from(amount);
    debit.id.is_system() || available >= -i128::from(debit.overdraft_limit)
}

/// Common tail: accounts usable, funds available, no overflow; then store and emit.
fn move_money(
    x: &mut Exec<'_>,
    command_id: &str,
    mut debit: Account,
    mut credit: Account,
    amount: i64,
    phase: Phase,
    memo: Option<String>,
) -> Executed {
    check_usable(&debit, &credit)?;
    if !has_available(&debit, amount) {
        return Err(Rejection::InsufficientFunds);
    }
    if x.state().transfer(command_id).is_some() && !crate::sabotage::double_apply() {
        // Transfer ids are command ids, which the idempotency table keeps unique; reaching this
        // means restored parts disagree with each other.
        return Err(Rejection::IdempotencyKeyReused);
    }
    let expires_at_us = match phase {
        Phase::Posted => {
            debit.balance = debit
                .balance
                .checked_sub(amount)
                .ok_or(Rejection::BalanceOverflow)?;
            credit.balance = credit
                .balance
                .checked_add(amount)
                .ok_or(Rejection::BalanceOverflow)?;
            debit.version = debit.version.saturating_add(1);
            credit.version = credit.version.saturating_add(1);
            touch(x, &mut debit);
            touch(x, &mut credit);
            None
        }
        Phase::Pending { expires_at_us } => {
            debit.pending_debits = debit
                .pending_debits
                .checked_add(amount)
                .ok_or(Rejection::BalanceOverflow)?;
            touch(x, &mut debit);
            expires_at_us
        }
    };
    for account in [&debit, &credit] {
        if account.id.is_system() && x.state().account(&account.id).is_none() {
            let kind = EventKind::AccountOpened {
                account: account.id.clone(),
                currency: account.currency,
                overdraft_limit: 0,
                metadata: account.metadata.clone(),
            };
            x.emit(command_id, kind);
        }
    }
    let pending = matches!(phase, Phase::Pending { .. });
    let transfer = Transfer {
        id: command_id.into(),
        debit: debit.id.clone(),
        credit: credit.id.clone(),
        amount,
        status: if pending {
            TransferStatus::Pending
        } else {
            TransferStatus::Posted
        },
        memo: memo.clone(),
        created_at_us: x.ts(),
        created_index: x.index(),
        expires_at_us,
        updated_index: x.index(),
    };
    let kind = if pending {
        EventKind::TransferPending {
            transfer_id: command_id.to_owned(),
            debit: debit.id.clone(),
            credit: credit.id.clone(),
            amount,
            expires_at_us,
            debit_balance_after: debit.balance,
            credit_balance_after: credit.balance,
            memo,
        }
    } else {
        EventKind::TransferPosted {
            transfer_id: command_id.to_owned(),
            debit: debit.id.clone(),
            credit: credit.id.clone(),
            amount,
            debit_balance_after: debit.balance,
            credit_balance_after: credit.balance,
            from_pending: false,
            memo,
        }
    };
    let status = transfer.status.as_str();
    x.put_account(debit);
    x.put_account(credit);
    x.put_transfer(transfer);
    x.emit(command_id, kind);
    Ok(Done::status(status))
}

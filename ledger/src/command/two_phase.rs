//! Completion of two-phase transfers: `PostPending`, `VoidPending`, and expiry in leader time
//! (run before every command, in deadline-then-id order).

use super::{check_usable, touch, Done, Executed};
use crate::account::{Account, Transfer, TransferStatus};
use crate::event::EventKind;
use crate::exec::Exec;
use crate::rejection::Rejection;

/// The transfer if it is pending: `TransferNotFound`, `TransferExpired` (its deadline passed) or
/// `TransferNotPending` (posted or voided) otherwise.
fn pending_transfer(x: &Exec<'_>, transfer_id: &str) -> Result<Transfer, Rejection> {
    let transfer = x
        .state()
        .transfer(transfer_id)
        .ok_or(Rejection::TransferNotFound)?;
    match transfer.status {
        TransferStatus::Pending => Ok(transfer.into_owned()),
        TransferStatus::Expired => Err(Rejection::TransferExpired),
        TransferStatus::Posted | TransferStatus::Voided => Err(Rejection::TransferNotPending),
    }
}

/// A transfer's account. Transfers only name existing accounts, so a miss means corrupted
/// restored parts; it is reported as `AccountNotFound` rather than crashing.
fn account_of(x: &Exec<'_>, id: &crate::types::AccountId) -> Result<Account, Rejection> {
    x.state()
        .account(id)
        .cloned()
        .ok_or(Rejection::AccountNotFound)
}

/// Posts a pending transfer: the reservation becomes a posting. Funds were reserved, so only
/// account status (closed, frozen) and balance overflow can refuse it.
pub(crate) fn post(x: &mut Exec<'_>, command_id: &str, transfer_id: &str) -> Executed {
    let mut transfer = pending_transfer(x, transfer_id)?;
    let mut debit = account_of(x, &transfer.debit)?;
    let mut credit = account_of(x, &transfer.credit)?;
    check_usable(&debit, &credit)?;
    let amount = transfer.amount;
    let overflow = || Rejection::BalanceOverflow;
    debit.pending_debits = debit
        .pending_debits
        .checked_sub(amount)
        .ok_or_else(overflow)?;
    debit.balance = debit.balance.checked_sub(amount).ok_or_else(overflow)?;
    credit.balance = credit.balance.checked_add(amount).ok_or_else(overflow)?;
    debit.version = debit.version.saturating_add(1);
    credit.version = credit.version.saturating_add(1);
    touch(x, &mut debit);
    touch(x, &mut credit);
    transfer.status = TransferStatus::Posted;
    transfer.updated_index = x.index();
    let kind = EventKind::TransferPosted {
        transfer_id: transfer.id.to_string(),
        debit: debit.id.clone(),
        credit: credit.id.clone(),
        amount,
        debit_balance_after: debit.balance,
        credit_balance_after: credit.balance,
        from_pending: true,
        memo: transfer.memo.clone(),
    };
    x.put_account(debit);
    x.put_account(credit);
    x.put_transfer(transfer);
    x.emit(command_id, kind);
    Ok(Done::status("posted"))
}

/// Voids a pending transfer, releasing its reservation. Allowed on frozen or closed accounts:
/// it moves no money.
pub(crate) fn void(x: &mut Exec<'_>, command_id: &str, transfer_id: &str) -> Executed {
    let transfer = pending_transfer(x, transfer_id)?;
    release(x, command_id, transfer, TransferStatus::Voided)?;
    Ok(Done::status("voided"))
}

/// Expires every pending transfer whose deadline is `<=` the current effective time, in
/// (deadline, id) order, emitting `TransferExpired` events under `command_id`.
pub(crate) fn expire_due(x: &mut Exec<'_>, command_id: &str) {
    let now = x.ts();
    let due: Vec<compact_str::CompactString> = x
        .state()
        .deadlines
        .iter()
        .take_while(|(deadline, _)| *deadline <= now)
        .map(|(_, id)| id.clone())
        .collect();
    for id in due {
        let released = pending_transfer(x, &id)
            .and_then(|transfer| release(x, command_id, transfer, TransferStatus::Expired));
        debug_assert!(
            released.is_ok(),
            "deadline index names a transfer that cannot expire: {id}"
        );
    }
}

/// Releases a pending transfer's reservation and ends it as voided or expired.
fn release(
    x: &mut Exec<'_>,
    command_id: &str,
    mut transfer: Transfer,
    status: TransferStatus,
) -> Result<(), Rejection> {
    let mut debit = account_of(x, &transfer.debit)?;
    debit.pending_debits = debit
        .pending_debits
        .checked_sub(transfer.amount)
        .ok_or(Rejection::BalanceOverflow)?;
    touch(x, &mut debit);
    transfer.status = status;
    transfer.updated_index = x.index();
    let (transfer_id, debit_id, credit_id, amount) = (
        transfer.id.to_string(),
        transfer.debit.clone(),
        transfer.credit.clone(),
        transfer.amount,
    );
    let kind = if status == TransferStatus::Expired {
        EventKind::TransferExpired {
            transfer_id,
            debit: debit_id,
            credit: credit_id,
            amount,
        }
    } else {
        EventKind::TransferVoided {
            transfer_id,
            debit: debit_id,
            credit: credit_id,
            amount,
        }
    };
    x.put_account(debit);
    x.put_transfer(transfer);
    x.emit(command_id, kind);
    Ok(())
}

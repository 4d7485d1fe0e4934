//! `Freeze`, `Unfreeze` and `Close`: account lifecycle changes.

use super::{client_account, touch, Done, Executed};
use crate::account::AccountStatus;
use crate::event::EventKind;
use crate::exec::Exec;
use crate::rejection::Rejection;
use crate::types::AccountId;

/// Which lifecycle change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusChange {
    /// open -> frozen.
    Freeze,
    /// frozen -> open.
    Unfreeze,
    /// open or frozen -> closed (terminal); requires balance 0 and no reservations.
    Close,
}

/// Applies a lifecycle change. Checks, in order: the account exists (system accounts refused),
/// is not closed, then the change-specific rule (`AccountStatusUnchanged`, `AccountNotEmpty`).
pub(crate) fn execute(
    x: &mut Exec<'_>,
    command_id: &str,
    account: &AccountId,
    change: StatusChange,
) -> Executed {
    let mut target = client_account(x, account)?;
    if target.status == AccountStatus::Closed {
        return Err(Rejection::AccountClosed);
    }
    let (status, kind) = match change {
        StatusChange::Freeze => {
            if target.status == AccountStatus::Frozen {
                return Err(Rejection::AccountStatusUnchanged);
            }
            let kind = EventKind::AccountFrozen {
                account: account.clone(),
            };
            (AccountStatus::Frozen, kind)
        }
        StatusChange::Unfreeze => {
            if target.status == AccountStatus::Open {
                return Err(Rejection::AccountStatusUnchanged);
            }
            let kind = EventKind::AccountUnfrozen {
                account: account.clone(),
            };
            (AccountStatus::Open, kind)
        }
        StatusChange::Close => {
            if target.balance != 0 || target.pending_debits != 0 {
                return Err(Rejection::AccountNotEmpty);
            }
            let kind = EventKind::AccountClosed {
                account: account.clone(),
            };
            (AccountStatus::Closed, kind)
        }
    };
    target.status = status;
    touch(x, &mut target);
    x.put_account(target);
    x.emit(command_id, kind);
    Ok(Done::status(status.as_str()))
}

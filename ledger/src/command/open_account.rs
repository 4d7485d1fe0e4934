//! `OpenAccount`: validation and the `AccountOpened` event for client accounts.

use super::{invalid, touch, Done, Executed};
use crate::account::{Account, AccountStatus};
use crate::event::EventKind;
use crate::exec::Exec;
use crate::rejection::Rejection;
use crate::types::{AccountId, Currency, METADATA_LEN_MAX};

/// Opens a client account with balance 0 and version 0.
/// Checks, in order: account id shape, system ids refused (`InvalidCommand`; ids arriving
/// through serde are unvalidated), overdraft >= 0, metadata length (`InvalidCommand`), id not
/// taken. `Currency` is valid by construction (it deserializes through `Currency::parse`).
pub(crate) fn execute(
    x: &mut Exec<'_>,
    command_id: &str,
    account: &AccountId,
    currency: Currency,
    overdraft_limit: i64,
    metadata: &str,
) -> Executed {
    if AccountId::parse(account.as_str()).is_err() {
        return Err(invalid(
            "account id must be 1..64 characters of [A-Za-z0-9._:-]",
        ));
    }
    if overdraft_limit < 0 {
        return Err(Rejection::OverdraftLimitMustBeNonNegative);
    }
    if metadata.len() > METADATA_LEN_MAX {
        return Err(invalid("metadata is too long"));
    }
    if x.state().account(account).is_some() {
        return Err(Rejection::AccountAlreadyExists);
    }
    let mut new = Account {
        id: account.clone(),
        currency,
        overdraft_limit,
        status: AccountStatus::Open,
        metadata: metadata.to_owned(),
        balance: 0,
        pending_debits: 0,
        version: 0,
        updated_index: 0,
        updated_at_us: 0,
    };
    touch(x, &mut new);
    x.put_account(new);
    let kind = EventKind::AccountOpened {
        account: account.clone(),
        currency,
        overdraft_limit,
        metadata: metadata.to_owned(),
    };
    x.emit(command_id, kind);
    Ok(Done::status("open"))
}

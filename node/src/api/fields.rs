//! Field rules of command bodies, checked before anything is proposed (400): positive amounts,
//! metadata and memo sizes, the pending-transfer timeout bound, and the account-open and
//! transfer bodies built from them.

use super::error::ApiError;
use ledger::types::{MEMO_LEN_MAX, METADATA_LEN_MAX};
use ledger::{AccountId, CommandBody, Currency, ValidationError};

/// Shortest pending-transfer timeout a client may ask for, in seconds.
pub const PENDING_TIMEOUT_S_MIN: u64 = 1;
/// Longest pending-transfer timeout a client may ask for, in seconds (30 days): a hold longer
/// than that is a business decision, not a timeout, and an unbounded one could reserve funds
/// forever. Outside `PENDING_TIMEOUT_S_MIN..=PENDING_TIMEOUT_S_MAX` is a 400 `invalid_timeout`.
pub const PENDING_TIMEOUT_S_MAX: u64 = 30 * 24 * 60 * 60;

pub(super) fn timeout_checked(timeout_s: Option<u64>) -> Result<Option<u64>, ApiError> {
    match timeout_s {
        Some(t) if !(PENDING_TIMEOUT_S_MIN..=PENDING_TIMEOUT_S_MAX).contains(&t) => Err(
            ApiError::bad_request(
                "invalid_timeout",
                format!(
                    "timeout_s must be {PENDING_TIMEOUT_S_MIN}..={PENDING_TIMEOUT_S_MAX} (30 days), got {t}"
                ),
            )
            .with_details(serde_json::json!({
                "timeout_s": t,
                "timeout_s_min": PENDING_TIMEOUT_S_MIN,
                "timeout_s_max": PENDING_TIMEOUT_S_MAX,
            })),
        ),
        other => Ok(other),
    }
}

pub(super) fn positive(amount: i64) -> Result<i64, ApiError> {
    if amount > 0 {
        Ok(amount)
    } else {
        Err(ValidationError::Amount(amount).into())
    }
}

pub(super) fn metadata_text(m: Option<serde_json::Value>) -> Result<String, ApiError> {
    let text = match m {
        None => "{}".to_owned(),
        Some(v @ serde_json::Value::Object(_)) => v.to_string(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_metadata",
                "metadata must be a JSON object",
            ))
        }
    };
    if text.len() > METADATA_LEN_MAX {
        return Err(ValidationError::TooLong {
            field: "metadata",
            len: text.len(),
            max: METADATA_LEN_MAX,
        }
        .into());
    }
    Ok(text)
}

pub(super) fn memo_checked(m: Option<String>) -> Result<Option<String>, ApiError> {
    match m {
        Some(s) if s.len() > MEMO_LEN_MAX => Err(ValidationError::TooLong {
            field: "memo",
            len: s.len(),
            max: MEMO_LEN_MAX,
        }
        .into()),
        other => Ok(other),
    }
}

pub(super) fn open_body(
    id: &str,
    currency: &str,
    overdraft: Option<i64>,
    meta: Option<serde_json::Value>,
) -> Result<CommandBody, ApiError> {
    let overdraft_limit = overdraft.unwrap_or(0);
    if overdraft_limit < 0 {
        return Err(ApiError::bad_request(
            "overdraft_limit_must_be_non_negative",
            "overdraft_limit must be >= 0",
        ));
    }
    Ok(CommandBody::OpenAccount {
        account: AccountId::parse(id)?,
        currency: Currency::parse_active(currency)?,
        overdraft_limit,
        metadata: metadata_text(meta)?,
    })
}

pub(super) fn transfer_body(
    from: &str,
    to: &str,
    amount: i64,
    pending: Option<bool>,
    timeout_s: Option<u64>,
    memo: Option<String>,
) -> Result<CommandBody, ApiError> {
    let pending = pending.unwrap_or(false);
    if timeout_s.is_some() && !pending {
        return Err(ApiError::bad_request(
            "malformed_request",
            "timeout_s applies only to pending transfers",
        ));
    }
    Ok(CommandBody::Transfer {
        from: AccountId::parse(from)?,
        to: AccountId::parse(to)?,
        amount: positive(amount)?,
        pending,
        timeout_s: timeout_checked(timeout_s)?,
        memo: memo_checked(memo)?,
    })
}

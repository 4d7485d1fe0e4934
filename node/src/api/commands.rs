//! POST routes: each builds one ledger command from JSON, proposes it, and renders the
//! replicated outcome (201/200 with the command body, or the rejection as 404/409/422).
//!
//! A retry of a command id this node has already applied is answered from its state without
//! a proposal: the stored first result (200, `Idempotent-Replayed: true`), or 409
//! `idempotency_key_reused` for a different body. Both are what the log would answer at any
//! later index (a recorded entry never changes), so any node may give them, however old the
//! id.

use super::error::ApiError;
use super::extract::{command_id, EmptyBody, IdempotencyKey, JsonBody, PathParam};
use super::fields::{open_body, positive, transfer_body};
use super::ids;
use super::render;
use super::{with_index, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ledger::types::validate_command_id;
use ledger::{AccountId, Command, CommandBody, CommandResult, Outcome};
use serde::Deserialize;

/// `POST /v1/accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountReq {
    id: String,
    currency: String,
    overdraft_limit: Option<i64>,
    metadata: Option<serde_json::Value>,
}

/// `POST /v1/deposits` and `/v1/withdrawals`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveReq {
    id: Option<String>,
    account: String,
    amount: i64,
}

/// `POST /v1/transfers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferReq {
    id: Option<String>,
    from: String,
    to: String,
    amount: i64,
    pending: Option<bool>,
    timeout_s: Option<u64>,
    memo: Option<String>,
}

/// One command inside `POST /v1/batches`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BatchItem {
    /// A transfer.
    Transfer {
        /// Transfer id.
        id: String,
        /// Debit.
        from: String,
        /// Credit.
        to: String,
        /// Minor units.
        amount: i64,
        /// Two-phase.
        pending: Option<bool>,
        /// Pending timeout.
        timeout_s: Option<u64>,
        /// Memo.
        memo: Option<String>,
    },
    /// A deposit.
    Deposit {
        /// Transfer id.
        id: String,
        /// Credited account.
        account: String,
        /// Minor units.
        amount: i64,
    },
    /// A withdrawal.
    Withdrawal {
        /// Transfer id.
        id: String,
        /// Debited account.
        account: String,
        /// Minor units.
        amount: i64,
    },
    /// Open an account.
    Account {
        /// Account id.
        id: String,
        /// Currency.
        currency: String,
        /// Overdraft limit.
        overdraft_limit: Option<i64>,
        /// Metadata object.
        metadata: Option<serde_json::Value>,
    },
}

/// `POST /v1/batches`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchReq {
    id: Option<String>,
    #[serde(default)]
    atomic: bool,
    commands: Vec<BatchItem>,
}

/// Most commands accepted in one batch request: the ledger's own batch bound, so a batch the
/// API accepts is never refused by the state machine for its size.
pub const BATCH_ITEMS_MAX: usize = ledger::BATCH_COMMANDS_MAX;

/// Proposes one command and renders its outcome.
async fn run(
    s: &AppState,
    id: String,
    body: CommandBody,
    created: StatusCode,
) -> Result<Response, ApiError> {
    let cmd = Command {
        id,
        timestamp_us: 0,
        body,
    };
    let result = match answered_from_state(s, &cmd) {
        Some(result) => result,
        None => {
            let mut proposed = s.proposer.propose(vec![cmd]).await?;
            proposed.results.pop().ok_or_else(|| {
                ApiError::unavailable("not_ready", "empty result from the state machine")
            })?
        }
    };
    match &result.outcome {
        Outcome::Accepted { .. } => {
            metrics::counter!("raftledger_commands_accepted_total").increment(1);
            let status = if result.replayed {
                StatusCode::OK
            } else {
                created
            };
            let mut resp = with_index(status, result.index, render::command_body(&result));
            if result.replayed {
                resp.headers_mut().insert(
                    "idempotent-replayed",
                    axum::http::HeaderValue::from_static("true"),
                );
            }
            Ok(resp)
        }
        Outcome::Rejected(r) => {
            metrics::counter!("raftledger_commands_rejected_total", "code" => r.code())
                .increment(1);
            Err(ApiError::rejection(r, &result.command_id, result.index))
        }
    }
}

/// The answer to `cmd` if its id was already applied here, by the ledger's own retry rule:
/// the stored result replayed, or the rejection (labelled with the applied index) for another
/// body. `None` (propose it) when the id is unknown here or the state is busy applying: a
/// write never waits for the state lock, the log answers a retry just as well.
fn answered_from_state(s: &AppState, cmd: &Command) -> Option<CommandResult> {
    if ledger::sabotage::double_apply() {
        // The sabotage build re-executes retries in the ledger; answering here would hide it.
        return None;
    }
    let (applied, last_timestamp_us, entry) = s.reader.command_entry_if_idle(&cmd.id)?;
    let fingerprint = ledger::fingerprint(&cmd.body);
    Some(
        ledger::idempotency::retry_answer(&entry, &fingerprint).unwrap_or_else(|rejection| {
            CommandResult {
                command_id: cmd.id.as_str().into(),
                index: applied,
                timestamp_us: last_timestamp_us,
                outcome: Outcome::Rejected(rejection),
                replayed: false,
            }
        }),
    )
}

/// `POST /v1/accounts`.
pub async fn open_account(
    State(s): State<AppState>,
    key: IdempotencyKey,
    JsonBody(r): JsonBody<OpenAccountReq>,
) -> Result<Response, ApiError> {
    let body = open_body(&r.id, &r.currency, r.overdraft_limit, r.metadata)?;
    let id = command_id(&key, Some(r.id.as_str()))?;
    run(&s, id, body, StatusCode::CREATED).await
}

/// `POST /v1/deposits`.
pub async fn deposit(
    State(s): State<AppState>,
    key: IdempotencyKey,
    JsonBody(r): JsonBody<MoveReq>,
) -> Result<Response, ApiError> {
    let id = command_id(&key, r.id.as_deref())?;
    let body = CommandBody::Deposit {
        account: AccountId::parse(&r.account)?,
        amount: positive(r.amount)?,
    };
    run(&s, id, body, StatusCode::CREATED).await
}

/// `POST /v1/withdrawals`.
pub async fn withdraw(
    State(s): State<AppState>,
    key: IdempotencyKey,
    JsonBody(r): JsonBody<MoveReq>,
) -> Result<Response, ApiError> {
    let id = command_id(&key, r.id.as_deref())?;
    let body = CommandBody::Withdraw {
        account: AccountId::parse(&r.account)?,
        amount: positive(r.amount)?,
    };
    run(&s, id, body, StatusCode::CREATED).await
}

/// `POST /v1/transfers`.
pub async fn transfer(
    State(s): State<AppState>,
    key: IdempotencyKey,
    JsonBody(r): JsonBody<TransferReq>,
) -> Result<Response, ApiError> {
    let id = command_id(&key, r.id.as_deref())?;
    let body = transfer_body(&r.from, &r.to, r.amount, r.pending, r.timeout_s, r.memo)?;
    run(&s, id, body, StatusCode::CREATED).await
}

/// `POST /v1/transfers/{id}/post`; default idempotency key `post:{id}`.
pub async fn post_pending(
    State(s): State<AppState>,
    key: IdempotencyKey,
    PathParam(tid): PathParam<String>,
    _: EmptyBody,
) -> Result<Response, ApiError> {
    validate_command_id(&tid)?;
    let id = key.0.unwrap_or_else(|| ids::post_id(&tid));
    run(
        &s,
        id,
        CommandBody::PostPending { transfer_id: tid },
        StatusCode::OK,
    )
    .await
}

/// `POST /v1/transfers/{id}/void`; default idempotency key `void:{id}`.
pub async fn void_pending(
    State(s): State<AppState>,
    key: IdempotencyKey,
    PathParam(tid): PathParam<String>,
    _: EmptyBody,
) -> Result<Response, ApiError> {
    validate_command_id(&tid)?;
    let id = key.0.unwrap_or_else(|| ids::void_id(&tid));
    run(
        &s,
        id,
        CommandBody::VoidPending { transfer_id: tid },
        StatusCode::OK,
    )
    .await
}

/// Status changes have no natural id; without an Idempotency-Key a fresh one is generated
/// (the state machine refuses a no-op change with `account_status_unchanged`).
fn status_id(key: IdempotencyKey, verb: &str, account: &str) -> String {
    key.0.unwrap_or_else(|| ids::status_id(verb, account))
}

/// `POST /v1/accounts/{id}/freeze`.
pub async fn freeze(
    State(s): State<AppState>,
    key: IdempotencyKey,
    PathParam(a): PathParam<String>,
    _: EmptyBody,
) -> Result<Response, ApiError> {
    let account = AccountId::parse(&a)?;
    run(
        &s,
        status_id(key, "freeze", &a),
        CommandBody::Freeze { account },
        StatusCode::OK,
    )
    .await
}

/// `POST /v1/accounts/{id}/unfreeze`.
pub async fn unfreeze(
    State(s): State<AppState>,
    key: IdempotencyKey,
    PathParam(a): PathParam<String>,
    _: EmptyBody,
) -> Result<Response, ApiError> {
    let account = AccountId::parse(&a)?;
    run(
        &s,
        status_id(key, "unfreeze", &a),
        CommandBody::Unfreeze { account },
        StatusCode::OK,
    )
    .await
}

/// `POST /v1/accounts/{id}/close`.
pub async fn close(
    State(s): State<AppState>,
    key: IdempotencyKey,
    PathParam(a): PathParam<String>,
    _: EmptyBody,
) -> Result<Response, ApiError> {
    let account = AccountId::parse(&a)?;
    run(
        &s,
        status_id(key, "close", &a),
        CommandBody::Close { account },
        StatusCode::OK,
    )
    .await
}

fn item_command(item: BatchItem) -> Result<Command, ApiError> {
    let (id, body) = match item {
        BatchItem::Transfer {
            id,
            from,
            to,
            amount,
            pending,
            timeout_s,
            memo,
        } => {
            let b = transfer_body(&from, &to, amount, pending, timeout_s, memo)?;
            (id, b)
        }
        BatchItem::Deposit {
            id,
            account,
            amount,
        } => (
            id,
            CommandBody::Deposit {
                account: AccountId::parse(&account)?,
                amount: positive(amount)?,
            },
        ),
        BatchItem::Withdrawal {
            id,
            account,
            amount,
        } => (
            id,
            CommandBody::Withdraw {
                account: AccountId::parse(&account)?,
                amount: positive(amount)?,
            },
        ),
        BatchItem::Account {
            id,
            currency,
            overdraft_limit,
            metadata,
        } => {
            let b = open_body(&id, &currency, overdraft_limit, metadata)?;
            (id, b)
        }
    };
    ids::client_id(&id)?;
    Ok(Command {
        id,
        timestamp_us: 0,
        body,
    })
}

/// `POST /v1/batches`: all-or-nothing when `atomic`, else independent per-command outcomes.
/// Without an id (body or header), the batch id is derived from the inner ids, so a retry is
/// idempotent.
pub async fn batch(
    State(s): State<AppState>,
    key: IdempotencyKey,
    JsonBody(r): JsonBody<BatchReq>,
) -> Result<Response, ApiError> {
    if r.commands.is_empty() || r.commands.len() > BATCH_ITEMS_MAX {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!("a batch holds 1..={BATCH_ITEMS_MAX} commands"),
        ));
    }
    let commands = r
        .commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            item_command(c).map_err(|e| e.with_details(serde_json::json!({"command_index": i})))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Only a batch with neither an id nor an Idempotency-Key gets a derived id; a key that
    // disagrees with the body id, or an invalid id, is a 400 like on every other command.
    let id = match (&key.0, &r.id) {
        (None, None) => ids::batch_id(&commands),
        _ => command_id(&key, r.id.as_deref())?,
    };
    run(
        &s,
        id,
        CommandBody::Batch {
            atomic: r.atomic,
            commands,
        },
        StatusCode::CREATED,
    )
    .await
}

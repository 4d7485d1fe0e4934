//! GET routes. Each runs the read barrier, then reads the local state machine at one applied
//! index, which it reports in `X-Ledger-Index`.

use super::consistency::{barrier, ReadParams};
use super::error::ApiError;
use super::extract::{PathParam, QueryParams};
use super::render;
use super::{with_index, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ledger::AccountId;
use serde::Deserialize;
use serde_json::json;

/// Most events returned by one `events` page.
pub const EVENTS_PAGE_MAX: usize = 1000;
/// Most accounts in one `GET /v1/balances`.
pub const BALANCES_ACCOUNTS_MAX: usize = 1000;

fn account_id(s: &str) -> Result<AccountId, ApiError> {
    Ok(AccountId::parse_any(s)?)
}

/// `GET /v1/accounts/{id}`.
pub async fn account(
    State(s): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryParams(p): QueryParams<ReadParams>,
) -> Result<Response, ApiError> {
    let id = account_id(&id)?;
    barrier(&s, &p).await?;
    match s.reader.account(&id) {
        (index, Some(a)) => Ok(with_index(StatusCode::OK, index, render::account(&a))),
        (index, None) => Err(
            ApiError::not_found("account_not_found", format!("no account {id}")).with_index(index),
        ),
    }
}

/// Query of `GET /v1/accounts/{id}/balance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceAtParams {
    at: Option<String>,
    at_index: Option<u64>,
    #[serde(default)]
    consistency: super::consistency::Consistency,
    min_index: Option<u64>,
}

/// `GET /v1/accounts/{id}/balance?at=<RFC 3339>|at_index=N` (without either: the current balance).
pub async fn balance_at(
    State(s): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<BalanceAtParams>,
) -> Result<Response, ApiError> {
    let id = account_id(&id)?;
    let at_us = match &q.at {
        Some(t) => Some(
            render::parse_rfc3339_us(t).map_err(|e| ApiError::bad_request("invalid_time", e))?,
        ),
        None => None,
    };
    if at_us.is_some() && q.at_index.is_some() {
        return Err(ApiError::bad_request(
            "malformed_query",
            "give `at` or `at_index`, not both",
        ));
    }
    let settled = super::consistency::history_settled(&s.reader, at_us, q.at_index);
    let p = ReadParams {
        // A point this node has applied past is final: every read of it, linearizable or not,
        // gets the same answer, so it needs no ReadIndex round.
        consistency: if settled {
            super::consistency::Consistency::Stale
        } else {
            q.consistency
        },
        min_index: q.min_index.max(q.at_index),
    };
    barrier(&s, &p).await?;
    // The label and the data come from one view. (An `at_index` balance is history at an
    // index the barrier already waited for, so any later applied index labels it truthfully.)
    let (applied, found) = match (at_us, q.at_index) {
        (Some(t), _) => s.reader.balance_at_time_view(&id, t)?,
        (None, Some(i)) => (s.reader.applied_index(), s.reader.balance_at_index(&id, i)?),
        (None, None) => {
            let applied = s.reader.applied_index();
            (applied, s.reader.balance_at_index(&id, applied)?)
        }
    };
    match found {
        Some(b) => Ok(with_index(
            StatusCode::OK,
            applied,
            json!({
                "account": id.as_str(),
                "balance": b.balance,
                "as_of": render::rfc3339_us(b.as_of_us),
                "index": b.index,
                "event_seq": b.event_seq,
            }),
        )),
        None => Err(ApiError::not_found(
            "account_not_found",
            format!("account {id} did not exist at that point"),
        )
        .with_index(applied)),
    }
}

/// Query of `GET /v1/accounts/{id}/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    #[serde(default)]
    after_seq: u64,
    limit: Option<usize>,
    #[serde(default)]
    consistency: super::consistency::Consistency,
    min_index: Option<u64>,
}

/// `GET /v1/accounts/{id}/events?after_seq=&limit=`: postings with running balance.
pub async fn account_events(
    State(s): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<EventsParams>,
) -> Result<Response, ApiError> {
    let id = account_id(&id)?;
    barrier(
        &s,
        &ReadParams {
            consistency: q.consistency,
            min_index: q.min_index,
        },
    )
    .await?;
    let limit = q.limit.unwrap_or(100).clamp(1, EVENTS_PAGE_MAX);
    let (applied, events) = s.reader.account_events_view(&id, q.after_seq, limit)?;
    let Some(events) = events else {
        return Err(
            ApiError::not_found("account_not_found", format!("no account {id}"))
                .with_index(applied),
        );
    };
    let next = events.last().map(|e| e.seq);
    let rendered: Vec<_> = events.iter().map(render::event).collect();
    Ok(with_index(
        StatusCode::OK,
        applied,
        json!({"account": id.as_str(), "events": rendered, "next_after_seq": next}),
    ))
}

/// `GET /v1/transfers/{id}`.
pub async fn transfer(
    State(s): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryParams(p): QueryParams<ReadParams>,
) -> Result<Response, ApiError> {
    ledger::types::validate_command_id(&id)?;
    barrier(&s, &p).await?;
    match s.reader.transfer(&id) {
        (index, Some(t)) => Ok(with_index(StatusCode::OK, index, render::transfer(&t))),
        (index, None) => Err(ApiError::not_found(
            "transfer_not_found",
            format!("no transfer {id}"),
        )
        .with_index(index)),
    }
}

/// Query of `GET /v1/balances`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancesParams {
    accounts: String,
    #[serde(default)]
    consistency: super::consistency::Consistency,
    min_index: Option<u64>,
}

/// `GET /v1/balances?accounts=a,b,c`: every balance read at one index (snapshot read).
pub async fn balances(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<BalancesParams>,
) -> Result<Response, ApiError> {
    let ids = q
        .accounts
        .split(',')
        .filter(|x| !x.is_empty())
        .map(account_id)
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() || ids.len() > BALANCES_ACCOUNTS_MAX {
        return Err(ApiError::bad_request(
            "malformed_query",
            format!("accounts: 1..={BALANCES_ACCOUNTS_MAX} ids"),
        ));
    }
    barrier(
        &s,
        &ReadParams {
            consistency: q.consistency,
            min_index: q.min_index,
        },
    )
    .await?;
    let (index, values) = s.reader.balances(&ids);
    let missing: Vec<&str> = ids
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(id, _)| id.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(
            ApiError::not_found("account_not_found", "some accounts do not exist")
                .with_details(json!({"missing": missing}))
                .with_index(index),
        );
    }
    let map: serde_json::Map<String, serde_json::Value> = ids
        .iter()
        .zip(values)
        .map(|(id, v)| (id.as_str().to_owned(), json!(v.unwrap_or(0))))
        .collect();
    Ok(with_index(
        StatusCode::OK,
        index,
        json!({"index": index, "balances": map}),
    ))
}

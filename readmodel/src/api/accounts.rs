//! Account queries: `GET /v1/accounts/{id}?min_seq=N` (read-your-writes: waits up to
//! [`MIN_SEQ_WAIT_MS`] for the watermark, then 503 + `Retry-After: 1`),
//! `GET /v1/accounts/{id}/history?cursor=&limit=` and `GET /v1/accounts/{id}/balance?at=`.

use super::error::ApiError;
use super::{begin, reply, snapshot, AppState, Q};
use crate::event::{format_ts_us, parse_ts_us};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// Longest a `min_seq` read waits for the projection to reach it.
pub const MIN_SEQ_WAIT_MS: u64 = 1_000;
/// Default and largest history page: a page is one index range scan; 1000 rows is ~100 KiB.
const HISTORY_PAGE_DEFAULT: i64 = 100;
const HISTORY_PAGE_MAX: i64 = 1_000;
/// Longest account id (the same bound as the ledger's).
const ACCOUNT_ID_BYTES_MAX: usize = 64;

/// Query of `GET /v1/accounts/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountParams {
    min_seq: Option<u64>,
}

/// `GET /v1/accounts/{id}`.
pub async fn account(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Q(q): Q<AccountParams>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    if let Some(min) = q.min_seq {
        wait_for(&s, min).await?;
    }
    let schema = s.manager.active.get();
    let mut c = snapshot(&s.pool).await?;
    let tx = c.transaction().await?;
    let seq = begin(&tx, &schema).await?;
    if let Some(min) = q.min_seq {
        if seq < min {
            return Err(behind(min, seq));
        }
    }
    let row = tx
        .query_opt(
            &format!(
                "SELECT b.currency, b.balance, b.pending_debits, b.overdraft_limit, b.version,
                        b.status, b.updated_seq, b.updated_at_us, q.account IS NOT NULL
                 FROM {schema}.balances b
                 LEFT JOIN {schema}.quarantined_accounts q ON q.account = b.account
                 WHERE b.account = $1"
            ),
            &[&id],
        )
        .await?
        .ok_or_else(|| not_found(&id))?;
    let (balance, pending): (i64, i64) = (row.get(1), row.get(2));
    Ok(reply(
        seq,
        json!({
            "id": id,
            "currency": row.get::<_, String>(0),
            "balance": balance,
            "pending_debits": pending,
            "available": balance.saturating_sub(pending),
            "overdraft_limit": row.get::<_, i64>(3),
            "version": row.get::<_, i64>(4),
            "status": row.get::<_, String>(5),
            "updated_seq": row.get::<_, i64>(6),
            "updated_at": format_ts_us(row.get(7)),
            "quarantined": row.get::<_, bool>(8),
            "seq": seq,
        }),
    ))
}

/// Waits until the watermark reaches `min`, at most [`MIN_SEQ_WAIT_MS`].
async fn wait_for(s: &AppState, min: u64) -> Result<(), ApiError> {
    let mut rx = s.manager.watermark.subscribe();
    let reached = tokio::time::timeout(
        Duration::from_millis(MIN_SEQ_WAIT_MS),
        rx.wait_for(|w| *w >= min),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if reached {
        Ok(())
    } else {
        Err(behind(min, *rx.borrow()))
    }
}

fn behind(min: u64, seq: u64) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "read_model_behind",
        format!("read model is at seq {seq}, behind min_seq {min}; retry"),
    )
    .with_details(json!({"min_seq": min, "seq": seq}))
}

/// Query of the history route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    cursor: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/accounts/{id}/history`: postings in seq order; `next_cursor` continues.
pub async fn history(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Q(q): Q<HistoryParams>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let after: i64 = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse().ok().filter(|v: &i64| *v >= 0).ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "cursor is not one we issued")
        })?,
    };
    let limit = q.limit.unwrap_or(HISTORY_PAGE_DEFAULT);
    if !(1..=HISTORY_PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be 1..={HISTORY_PAGE_MAX}"),
        ));
    }
    let schema = s.manager.active.get();
    let mut c = snapshot(&s.pool).await?;
    let tx = c.transaction().await?;
    let seq = begin(&tx, &schema).await?;
    exists(&tx, &schema, &id).await?;
    let rows = tx
        .query(
            &format!(
                "SELECT seq, ts_us, transfer_id, counterparty, amount, balance_after
                 FROM {schema}.account_history WHERE account = $1 AND seq > $2
                 ORDER BY seq LIMIT $3"
            ),
            &[&id, &after, &(limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let postings: Vec<Value> = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            json!({
                "seq": r.get::<_, i64>(0),
                "timestamp": format_ts_us(r.get(1)),
                "transfer_id": r.get::<_, String>(2),
                "counterparty": r.get::<_, String>(3),
                "amount": r.get::<_, i64>(4),
                "balance_after": r.get::<_, i64>(5),
            })
        })
        .collect();
    let next = more
        .then(|| postings.last().map(|p| p["seq"].to_string()))
        .flatten();
    Ok(reply(
        seq,
        json!({"account": id, "postings": postings, "next_cursor": next, "seq": seq}),
    ))
}

/// Query of the balance-at route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtParams {
    at: Option<String>,
}

/// `GET /v1/accounts/{id}/balance?at=<RFC 3339>`: the balance after the last posting with
/// timestamp <= at (L8), one index probe.
pub async fn balance_at(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Q(q): Q<AtParams>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let at_s =
        q.at.ok_or_else(|| ApiError::bad_request("missing_at", "`at` (RFC 3339) is required"))?;
    let at = parse_ts_us(&at_s).map_err(|e| ApiError::bad_request("invalid_at", e))?;
    let schema = s.manager.active.get();
    let mut c = snapshot(&s.pool).await?;
    let tx = c.transaction().await?;
    let seq = begin(&tx, &schema).await?;
    let (opened_seq, opened_at) = exists(&tx, &schema, &id).await?;
    if opened_at > at {
        return Err(ApiError::not_found(
            "account_not_found",
            format!("account {id} was not open at {at_s}"),
        )
        .with_details(json!({"account": id, "at": at_s})));
    }
    let row = tx
        .query_opt(
            &format!(
                "SELECT balance_after, seq, ts_us FROM {schema}.account_history
                 WHERE account = $1 AND ts_us <= $2 ORDER BY ts_us DESC, seq DESC LIMIT 1"
            ),
            &[&id, &at],
        )
        .await?;
    let (balance, as_seq, as_of) = match row {
        Some(r) => (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)),
        None => (0, opened_seq, opened_at),
    };
    Ok(reply(
        seq,
        json!({"account": id, "balance": balance, "as_of": format_ts_us(as_of), "as_of_seq": as_seq, "at": at_s, "seq": seq}),
    ))
}

/// (opened_seq, opened_at_us) of `id`, or 404.
async fn exists(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    id: &str,
) -> Result<(i64, i64), ApiError> {
    let r = tx
        .query_opt(
            &format!("SELECT opened_seq, opened_at_us FROM {schema}.balances WHERE account = $1"),
            &[&id],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok((r.get(0), r.get(1)))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "account_not_found",
        format!("account {id} not found in the read model"),
    )
    .with_details(json!({"account": id}))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= ACCOUNT_ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_account_id",
            "account id must be 1..64 of [A-Za-z0-9._:-@]",
        ))
    }
}

//! `GET /v1/reports/daily?from=YYYY-MM-DD&to=YYYY-MM-DD&currency=USD`: per day and currency,
//! posting count and volume, deposits and withdrawals (UTC days of the leader timestamp).

use super::error::ApiError;
use super::{begin, reply, snapshot, AppState, Q};
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest report range: bounds the rows one request scans.
const REPORT_DAYS_MAX: i64 = 366;

/// Query of the daily report.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyParams {
    from: Option<String>,
    to: Option<String>,
    currency: Option<String>,
}

/// The daily report.
pub async fn daily(State(s): State<AppState>, Q(q): Q<DailyParams>) -> Result<Response, ApiError> {
    let from = date(q.from.as_deref(), "from")?;
    let to = date(q.to.as_deref(), "to")?;
    let days = (to - from).whole_days();
    if !(0..REPORT_DAYS_MAX).contains(&days) {
        return Err(ApiError::bad_request(
            "invalid_range",
            format!("need from <= to and at most {REPORT_DAYS_MAX} days"),
        ));
    }
    if let Some(c) = &q.currency {
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ApiError::bad_request(
                "invalid_currency",
                "currency must be an ISO 4217 code like USD",
            ));
        }
    }
    let schema = s.manager.active.get();
    let mut c = snapshot(&s.pool).await?;
    let tx = c.transaction().await?;
    let seq = begin(&tx, &schema).await?;
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let rows = tx
        .query(
            &format!(
                "SELECT day::text, currency, transfer_count, volume_minor::text, deposit_count,
                        deposits_minor::text, withdrawal_count, withdrawals_minor::text
                 FROM {schema}.daily_totals
                 WHERE day BETWEEN $1::text::date AND $2::text::date
                   AND ($3::text IS NULL OR currency = $3)
                 ORDER BY day, currency"
            ),
            &[&from_s, &to_s, &q.currency],
        )
        .await?;
    let out: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "day": r.get::<_, String>(0),
                "currency": r.get::<_, String>(1),
                "transfer_count": r.get::<_, i64>(2),
                "volume": money(r.get(3)),
                "deposit_count": r.get::<_, i64>(4),
                "deposits": money(r.get(5)),
                "withdrawal_count": r.get::<_, i64>(6),
                "withdrawals": money(r.get(7)),
            })
        })
        .collect();
    Ok(reply(
        seq,
        json!({"from": from_s, "to": to_s, "days": out, "seq": seq}),
    ))
}

/// A numeric sum: a JSON number when it fits i64, else a decimal string (never a float).
fn money(s: String) -> Value {
    s.parse::<i64>()
        .map(Value::from)
        .unwrap_or(Value::String(s))
}

fn date(v: Option<&str>, name: &'static str) -> Result<time::Date, ApiError> {
    let v = v.ok_or_else(|| {
        ApiError::bad_request("missing_date", format!("`{name}` (YYYY-MM-DD) is required"))
    })?;
    time::Date::parse(v, time::macros::format_description!("[year]-[month]-[day]")).map_err(|e| {
        ApiError::bad_request("invalid_date", format!("`{name}` must be YYYY-MM-DD: {e}"))
    })
}

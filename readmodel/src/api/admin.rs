//! Admin routes: `GET /admin/projections` (active schema, checkpoint, stream head, lag in
//! events and ms, rebuild status), `POST /admin/projections/rebuild`, `GET /admin/parked`.

use super::error::ApiError;
use super::{begin, reply, snapshot, AppState, Q};
use crate::event::format_ts_us;
use crate::lag;
use crate::manager::RebuildError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest page of parked events.
const PARKED_PAGE_MAX: i64 = 1_000;

/// `GET /admin/projections`.
pub async fn projections(State(s): State<AppState>) -> Result<Response, ApiError> {
    // Rebuild status first: a swap sets the active schema before it reports "swapped", so an
    // answer saying "swapped" always names the new schema.
    let rebuild = s.manager.rebuild_status();
    let schema = s.manager.active.get();
    let mut c = snapshot(&s.pool).await?;
    let tx = c.transaction().await?;
    let seq = begin(&tx, &schema).await?;
    let (_, last_ts) = crate::store::checkpoint(&*tx, &schema).await?;
    let parked: i64 = tx
        .query_one(&format!("SELECT count(*) FROM {schema}.parked_events"), &[])
        .await?
        .get(0);
    drop(tx);
    let lag = lag::measure(&s.js, seq).await;
    Ok(reply(
        seq,
        json!({
            "active": {"schema": schema, "checkpoint": seq, "last_event_timestamp": (last_ts > 0).then(|| format_ts_us(last_ts))},
            "stream": {"name": crate::projector::STREAM_NAME, "head": lag.head},
            "lag": {"events": lag.events, "ms": lag.ms},
            "parked_events": parked,
            "rebuild": rebuild,
        }),
    ))
}

/// `POST /admin/projections/rebuild`: 202 with the rebuild's status; 409 while one runs.
pub async fn rebuild(State(s): State<AppState>) -> Result<Response, ApiError> {
    match s.manager.start_rebuild().await {
        Ok(status) => {
            let mut r =
                (StatusCode::ACCEPTED, axum::Json(json!({"rebuild": status}))).into_response();
            r.headers_mut().insert(
                super::SEQ_HEADER,
                axum::http::HeaderValue::from(*s.manager.watermark.borrow()),
            );
            Ok(r)
        }
        Err(RebuildError::AlreadyRunning) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "rebuild_running",
            "a rebuild is already running",
        )),
        Err(RebuildError::Db(e)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            e,
        )),
    }
}

/// Query of `GET /admin/parked`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParkedParams {
    after_seq: Option<i64>,
    limit: Option<i64>,
}

/// `GET /admin/parked`: parked (poison) events and quarantined accounts.
pub async fn parked(
    State(s): State<AppState>,
    Q(q): Q<ParkedParams>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=PARKED_PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be 1..={PARKED_PAGE_MAX}"),
        ));
    }
    let schema = s.manager.active.get();
    let mut c = snapshot(&s.pool).await?;
    let tx = c.transaction().await?;
    let seq = begin(&tx, &schema).await?;
    let rows = tx
        .query(
            &format!(
                "SELECT seq, subject, payload, reason, accounts, parked_at::text FROM {schema}.parked_events
                 WHERE seq > $1 ORDER BY seq LIMIT $2"
            ),
            &[&q.after_seq.unwrap_or(0), &limit],
        )
        .await?;
    let events: Vec<Value> = rows
        .iter()
        .map(|r| {
            let payload: String = r.get(2);
            json!({
                "seq": r.get::<_, i64>(0),
                "subject": r.get::<_, String>(1),
                "payload": serde_json::from_str::<Value>(&payload).unwrap_or(Value::String(payload)),
                "reason": r.get::<_, String>(3),
                "accounts": r.get::<_, Vec<String>>(4),
                "parked_at": r.get::<_, String>(5),
            })
        })
        .collect();
    let q_rows = tx
        .query(
            &format!("SELECT account, first_parked_seq, reason FROM {schema}.quarantined_accounts ORDER BY account"),
            &[],
        )
        .await?;
    let quarantined: Vec<Value> = q_rows
        .iter()
        .map(|r| json!({"account": r.get::<_, String>(0), "first_parked_seq": r.get::<_, i64>(1), "reason": r.get::<_, String>(2)}))
        .collect();
    Ok(reply(
        seq,
        json!({"parked": events, "quarantined_accounts": quarantined, "seq": seq}),
    ))
}

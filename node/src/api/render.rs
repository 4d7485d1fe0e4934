//! JSON renderings of ledger values (the public wire format) and time formatting.

use ledger::{Account, CommandResult, Event, Outcome, Transfer};
use serde_json::{json, Value};

/// Formats leader time (µs since epoch) as RFC 3339 with microseconds, UTC.
pub fn rfc3339_us(ts_us: u64) -> String {
    let secs = (ts_us / 1_000_000) as i64;
    let micros = (ts_us % 1_000_000) as u32;
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => {
            let t = t.replace_nanosecond(micros * 1000).unwrap_or(t);
            let d = t.date();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                d.year(),
                u8::from(d.month()),
                d.day(),
                t.hour(),
                t.minute(),
                t.second(),
                micros
            )
        }
        Err(_) => ts_us.to_string(),
    }
}

/// Parses an RFC 3339 timestamp into µs since epoch.
pub fn parse_rfc3339_us(s: &str) -> Result<u64, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`at` must be RFC 3339 (e.g. 2026-11-23T14:00:00Z): {e}"))?;
    let ns = t.unix_timestamp_nanos();
    if ns < 0 {
        return Err("`at` is before 1970".into());
    }
    Ok((ns / 1000) as u64)
}

/// Success body of a command: `{"id","index","event_seq","timestamp","status",...}`.
pub fn command_body(r: &CommandResult) -> Value {
    let mut v = json!({
        "id": r.command_id,
        "index": r.index,
        "timestamp": rfc3339_us(r.timestamp_us),
    });
    if let Outcome::Accepted {
        first_event_seq,
        last_event_seq,
        status,
        inner,
    } = &r.outcome
    {
        v["event_seq"] = json!(first_event_seq);
        v["last_event_seq"] = json!(last_event_seq);
        v["status"] = json!(status);
        if !inner.is_empty() {
            v["results"] = Value::Array(inner.iter().map(result_entry).collect());
        }
    }
    v
}

/// One entry of a batch's per-command results (accepted or rejected).
pub fn result_entry(r: &CommandResult) -> Value {
    match &r.outcome {
        Outcome::Accepted { .. } => {
            let mut v = command_body(r);
            v["ok"] = json!(true);
            v
        }
        Outcome::Rejected(rej) => json!({
            "id": r.command_id, "ok": false, "index": r.index,
            "error": {"code": rej.code(), "http_status": rej.http_status()},
        }),
    }
}

/// Account view.
pub fn account(a: &Account) -> Value {
    json!({
        "id": a.id.as_str(),
        "currency": a.currency.as_str(),
        "balance": a.balance,
        "pending_debits": a.pending_debits,
        "available": a.balance.saturating_sub(a.pending_debits),
        "overdraft_limit": a.overdraft_limit,
        "version": a.version,
        "status": a.status.as_str(),
        "metadata": serde_json::from_str::<Value>(&a.metadata).unwrap_or(Value::Null),
        "updated_index": a.updated_index,
        "updated_at": rfc3339_us(a.updated_at_us),
    })
}

/// Transfer view.
pub fn transfer(t: &Transfer) -> Value {
    json!({
        "id": t.id,
        "from": t.debit.as_str(),
        "to": t.credit.as_str(),
        "amount": t.amount,
        "status": t.status.as_str(),
        "memo": t.memo,
        "created_at": rfc3339_us(t.created_at_us),
        "created_index": t.created_index,
        "expires_at": t.expires_at_us.map(rfc3339_us),
        "updated_index": t.updated_index,
    })
}

/// Event view: envelope fields plus the kind's fields under `data`.
pub fn event(e: &Event) -> Value {
    let data = match serde_json::to_value(&e.kind) {
        Ok(Value::Object(mut m)) if m.len() == 1 => m
            .values_mut()
            .next()
            .map(Value::take)
            .unwrap_or(Value::Null),
        Ok(v) => v,
        Err(_) => Value::Null,
    };
    json!({
        "seq": e.seq,
        "index": e.index,
        "timestamp": rfc3339_us(e.timestamp_us),
        "type": e.kind.type_name(),
        "schema_version": e.schema_version,
        "command_id": e.command_id,
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_roundtrip() {
        let us = 1_795_000_000_123_456;
        let s = rfc3339_us(us);
        assert!(s.ends_with(".123456Z"), "{s}");
        assert_eq!(parse_rfc3339_us(&s).unwrap(), us);
        assert!(parse_rfc3339_us("yesterday").is_err());
    }
}

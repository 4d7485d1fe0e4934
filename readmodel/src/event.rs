//! Decoding of the wire event (the JSON the node renders for `GET /v1/events` and publishes to
//! JetStream) into what the projections need. Anything that does not decode is a poison event.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// A decoded ledger event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEvent {
    /// Global event sequence (== JetStream stream sequence).
    pub seq: u64,
    /// Leader timestamp, µs since epoch.
    pub ts_us: i64,
    /// What happened.
    pub kind: Kind,
}

/// The event kinds the projections understand (schema version 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `account_opened`.
    Opened {
        /// Account id.
        account: String,
        /// ISO 4217 code.
        currency: String,
        /// Overdraft limit.
        overdraft_limit: i64,
    },
    /// `transfer_posted`: money moved.
    Posted {
        /// Transfer id.
        transfer_id: String,
        /// Debit account.
        debit: String,
        /// Credit account.
        credit: String,
        /// Minor units.
        amount: i64,
        /// Debit account's balance after.
        debit_balance_after: i64,
        /// Credit account's balance after.
        credit_balance_after: i64,
        /// Completes a pending transfer (releases its reservation).
        from_pending: bool,
    },
    /// `transfer_pending`: funds reserved on the debit account.
    Pending {
        /// Debit account.
        debit: String,
        /// Credit account.
        credit: String,
        /// Minor units reserved.
        amount: i64,
    },
    /// `transfer_voided` or `transfer_expired`: reservation released.
    Released {
        /// Debit account.
        debit: String,
        /// Credit account.
        credit: String,
        /// Minor units released.
        amount: i64,
    },
    /// `account_frozen` / `account_unfrozen` / `account_closed`.
    Status {
        /// The account.
        account: String,
        /// New status: `frozen`, `open` or `closed`.
        status: &'static str,
    },
}

impl Kind {
    /// Accounts this event touches.
    pub fn accounts(&self) -> Vec<&str> {
        match self {
            Self::Opened { account, .. } | Self::Status { account, .. } => vec![account],
            Self::Posted { debit, credit, .. }
            | Self::Pending { debit, credit, .. }
            | Self::Released { debit, credit, .. } => vec![debit, credit],
        }
    }
}

/// The envelope; `data` stays raw JSON until the type says what it holds (decoded once, not
/// through an intermediate `Value`).
#[derive(Deserialize)]
struct Envelope<'a> {
    seq: u64,
    timestamp: String,
    #[serde(rename = "type")]
    kind: String,
    schema_version: u16,
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct OpenedData {
    account: String,
    currency: String,
    overdraft_limit: i64,
}

#[derive(Deserialize)]
struct PostedData {
    transfer_id: String,
    debit: String,
    credit: String,
    amount: i64,
    debit_balance_after: i64,
    credit_balance_after: i64,
    from_pending: bool,
}

#[derive(Deserialize)]
struct MoveData {
    debit: String,
    credit: String,
    amount: i64,
}

#[derive(Deserialize)]
struct AccountData {
    account: String,
}

/// Decodes one wire event; `Err` names why it is poison.
pub fn decode(payload: &[u8]) -> Result<WireEvent, String> {
    let env: Envelope = serde_json::from_slice(payload).map_err(|e| format!("bad json: {e}"))?;
    if env.schema_version != 1 {
        return Err(format!("unknown schema_version {}", env.schema_version));
    }
    let ts_us = parse_ts_us(&env.timestamp)?;
    let kind = match env.kind.as_str() {
        "account_opened" => {
            let d: OpenedData = from(env.data)?;
            Kind::Opened {
                account: d.account,
                currency: d.currency,
                overdraft_limit: d.overdraft_limit,
            }
        }
        "transfer_posted" => {
            let d: PostedData = from(env.data)?;
            Kind::Posted {
                transfer_id: d.transfer_id,
                debit: d.debit,
                credit: d.credit,
                amount: d.amount,
                debit_balance_after: d.debit_balance_after,
                credit_balance_after: d.credit_balance_after,
                from_pending: d.from_pending,
            }
        }
        "transfer_pending" => {
            let d: MoveData = from(env.data)?;
            Kind::Pending {
                debit: d.debit,
                credit: d.credit,
                amount: d.amount,
            }
        }
        "transfer_voided" | "transfer_expired" => {
            let d: MoveData = from(env.data)?;
            Kind::Released {
                debit: d.debit,
                credit: d.credit,
                amount: d.amount,
            }
        }
        "account_frozen" | "account_unfrozen" | "account_closed" => {
            let d: AccountData = from(env.data)?;
            let status = match env.kind.as_str() {
                "account_frozen" => "frozen",
                "account_unfrozen" => "open",
                _ => "closed",
            };
            Kind::Status {
                account: d.account,
                status,
            }
        }
        other => return Err(format!("unknown event type {other:?}")),
    };
    Ok(WireEvent {
        seq: env.seq,
        ts_us,
        kind,
    })
}

/// Best-effort account ids of an undecodable payload, to quarantine them.
pub fn accounts_of_raw(payload: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return Vec::new();
    };
    ["account", "debit", "credit"]
        .iter()
        .filter_map(|k| v["data"][k].as_str().map(str::to_owned))
        .collect()
}

fn from<T: serde::de::DeserializeOwned>(data: &RawValue) -> Result<T, String> {
    serde_json::from_str(data.get()).map_err(|e| {
        // Positions within `data` were never part of a parked event's reason: strip them.
        let msg = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        format!(
            "bad data: {}",
            msg.strip_suffix(at.as_str()).unwrap_or(&msg)
        )
    })
}

/// Parses RFC 3339 into µs since epoch.
pub fn parse_ts_us(s: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("bad timestamp {s:?}: {e}"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1000)
        .map_err(|_| format!("timestamp {s:?} out of range"))
}

/// Formats µs since epoch as RFC 3339 with microseconds (UTC), like the node.
pub fn format_ts_us(ts_us: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_us) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let d = t.date();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_node_shapes() {
        let p = br#"{"seq":3,"index":2,"timestamp":"2026-11-23T12:33:46.621579Z","type":"transfer_posted","schema_version":1,"command_id":"t","data":{"transfer_id":"t","debit":"a","credit":"b","amount":5,"debit_balance_after":-5,"credit_balance_after":5,"from_pending":false,"memo":null}}"#;
        let e = decode(p).unwrap();
        assert_eq!(e.seq, 3);
        assert_eq!(format_ts_us(e.ts_us), "2026-11-23T12:33:46.621579Z");
        assert!(matches!(e.kind, Kind::Posted { amount: 5, .. }));
        assert!(decode(br#"{"seq":1}"#).is_err());
        let unknown = br#"{"seq":4,"timestamp":"2026-11-23T12:33:46Z","type":"martian","schema_version":1,"data":{"account":"x"}}"#;
        assert!(decode(unknown).unwrap_err().contains("martian"));
        assert_eq!(accounts_of_raw(unknown), vec!["x".to_string()]);
        let short = br#"{"seq":5,"timestamp":"2026-11-23T12:33:46Z","type":"account_opened","schema_version":1,"data":{"account":"x","currency":"USD"}}"#;
        assert_eq!(
            decode(short).unwrap_err(),
            "bad data: missing field `overdraft_limit`",
            "the same reason as decoding through a Value gave (no position)"
        );
    }
}

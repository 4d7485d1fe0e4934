//! Ground truth: every node's committed events, fetched through `GET /v1/events` (server-sent
//! events, bounded by `until_seq`), and a replay of balances from them. The checkers compare
//! client observations against this replay.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest one node's log download may take.
const FETCH_TIMEOUT_MS: u64 = 60_000;

/// One committed event as the API renders it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEvent {
    /// Dense global sequence.
    pub seq: u64,
    /// Raft log index of its command.
    pub index: u64,
    /// Leader timestamp, µs since the epoch.
    pub timestamp_us: u64,
    /// Event type (`transfer_posted`, ...).
    pub kind: String,
    /// Command id.
    pub command_id: String,
    /// Event data.
    pub data: Value,
}

/// Downloads events `1..=until_seq` from the node at `api`.
pub async fn fetch(
    http: &reqwest::Client,
    api: &str,
    until_seq: u64,
) -> anyhow::Result<Vec<LogEvent>> {
    if until_seq == 0 {
        return Ok(Vec::new());
    }
    let text = http
        .get(format!("{api}/v1/events?from_seq=1&until_seq={until_seq}"))
        .timeout(Duration::from_millis(FETCH_TIMEOUT_MS))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    parse_sse(&text)
}

/// Parses an SSE body of `data: <event json>` messages.
pub fn parse_sse(text: &str) -> anyhow::Result<Vec<LogEvent>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let v: Value = serde_json::from_str(data.trim())?;
        let ts = v["timestamp"].as_str().unwrap_or("");
        out.push(LogEvent {
            seq: v["seq"].as_u64().unwrap_or(0),
            index: v["index"].as_u64().unwrap_or(0),
            timestamp_us: node::api::render::parse_rfc3339_us(ts)
                .map_err(|e| anyhow::anyhow!("event timestamp {ts:?}: {e}"))?,
            kind: v["type"].as_str().unwrap_or("").to_owned(),
            command_id: v["command_id"].as_str().unwrap_or("").to_owned(),
            data: v["data"].clone(),
        });
    }
    Ok(out)
}

/// One balance change of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    /// Event sequence.
    pub seq: u64,
    /// Log index.
    pub index: u64,
    /// Leader timestamp.
    pub timestamp_us: u64,
    /// Balance after the event.
    pub balance: i64,
}

/// Balances replayed from a log (by amounts, cross-checked against `balance_after`).
#[derive(Debug, Default)]
pub struct Replay {
    /// Index at which each account was opened.
    pub opened_at: BTreeMap<String, u64>,
    /// Event seq at which each account was opened.
    pub opened_seq: BTreeMap<String, u64>,
    /// Balance changes per account, in log order.
    pub postings: BTreeMap<String, Vec<Posting>>,
    /// `transfer_posted` events per transfer id: (seq, index).
    pub posted: BTreeMap<String, Vec<(u64, u64)>>,
    /// Events whose `balance_after` disagrees with the replayed arithmetic.
    pub arithmetic_mismatches: Vec<String>,
    /// Highest index in the log.
    pub last_index: u64,
}

impl Replay {
    /// Replays `events` (must be the full log from seq 1).
    pub fn build(events: &[LogEvent]) -> Self {
        let mut r = Replay::default();
        let mut bal: BTreeMap<String, i64> = BTreeMap::new();
        for e in events {
            r.last_index = r.last_index.max(e.index);
            match e.kind.as_str() {
                "account_opened" => {
                    let a = e.data["account"].as_str().unwrap_or("").to_owned();
                    r.opened_at.entry(a.clone()).or_insert(e.index);
                    r.opened_seq.entry(a.clone()).or_insert(e.seq);
                    bal.entry(a).or_insert(0);
                }
                "transfer_posted" => {
                    let d = &e.data;
                    let id = d["transfer_id"].as_str().unwrap_or("").to_owned();
                    r.posted.entry(id).or_default().push((e.seq, e.index));
                    let amount = d["amount"].as_i64().unwrap_or(0);
                    for (side, sign, after) in [
                        ("debit", -1, "debit_balance_after"),
                        ("credit", 1, "credit_balance_after"),
                    ] {
                        let a = d[side].as_str().unwrap_or("").to_owned();
                        let b = bal.entry(a.clone()).or_insert(0);
                        *b += sign * amount;
                        if d[after].as_i64() != Some(*b) {
                            r.arithmetic_mismatches.push(format!(
                                "seq {}: {a} replayed {} but event says {}",
                                e.seq, *b, d[after]
                            ));
                        }
                        r.postings.entry(a).or_default().push(Posting {
                            seq: e.seq,
                            index: e.index,
                            timestamp_us: e.timestamp_us,
                            balance: *b,
                        });
                    }
                }
                _ => {}
            }
        }
        r
    }

    /// Balance of `account` after every entry up to `index`; None when not yet opened.
    pub fn balance_at_index(&self, account: &str, index: u64) -> Option<i64> {
        if *self.opened_at.get(account)? > index {
            return None;
        }
        let p = self.postings.get(account).map(Vec::as_slice).unwrap_or(&[]);
        let n = p.partition_point(|x| x.index <= index);
        Some(if n == 0 { 0 } else { p[n - 1].balance })
    }

    /// Balance of `account` after events `1..=seq` (what a read model at checkpoint `seq`
    /// must show); None when not yet opened.
    pub fn balance_at_seq(&self, account: &str, seq: u64) -> Option<i64> {
        if *self.opened_seq.get(account)? > seq {
            return None;
        }
        let p = self.postings.get(account).map(Vec::as_slice).unwrap_or(&[]);
        let n = p.partition_point(|x| x.seq <= seq);
        Some(if n == 0 { 0 } else { p[n - 1].balance })
    }

    /// Balance of `account` after every event with timestamp <= `t_us` and index <= `index`
    /// (the prefix a node had applied when it answered).
    pub fn balance_at_time(&self, account: &str, t_us: u64, index: u64) -> Option<i64> {
        let p = self.postings.get(account).map(Vec::as_slice).unwrap_or(&[]);
        // Timestamps and indexes both grow with the sequence, so the predicate is monotone.
        let n = p.partition_point(|x| x.timestamp_us <= t_us && x.index <= index);
        self.opened_at.get(account)?;
        Some(if n == 0 { 0 } else { p[n - 1].balance })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, index: u64, ts: u64, kind: &str, data: Value) -> LogEvent {
        LogEvent {
            seq,
            index,
            timestamp_us: ts,
            kind: kind.into(),
            command_id: String::new(),
            data,
        }
    }

    #[test]
    fn replays_by_index_and_time_and_flags_bad_arithmetic() {
        let opened = |s, a| {
            ev(
                s,
                s,
                s * 10,
                "account_opened",
                serde_json::json!({"account": a}),
            )
        };
        let post = |s, i, id, from, to, amt, fa, ta| {
            ev(
                s,
                i,
                s * 10,
                "transfer_posted",
                serde_json::json!({"transfer_id": id,
                "debit": from, "credit": to, "amount": amt,
                "debit_balance_after": fa, "credit_balance_after": ta}),
            )
        };
        let log = vec![
            opened(1, "a"),
            opened(2, "b"),
            post(3, 5, "t1", "a", "b", 10, -10, 10),
            post(4, 7, "t2", "b", "a", 3, 7, -8), // wrong: a is -7
        ];
        let r = Replay::build(&log);
        assert_eq!(r.balance_at_index("a", 1), Some(0));
        assert_eq!(r.balance_at_index("b", 1), None);
        assert_eq!(r.balance_at_index("a", 6), Some(-10));
        assert_eq!(r.balance_at_index("b", 7), Some(7));
        assert_eq!(r.balance_at_seq("b", 1), None);
        assert_eq!(r.balance_at_seq("b", 2), Some(0));
        assert_eq!(r.balance_at_seq("b", 3), Some(10));
        assert_eq!(r.balance_at_seq("a", 4), Some(-7), "replayed by amounts");
        assert_eq!(r.balance_at_time("b", 30, 99), Some(10));
        assert_eq!(r.balance_at_time("b", 29, 99), Some(0));
        assert_eq!(
            r.balance_at_time("b", 30, 4),
            Some(0),
            "prefix cut by index"
        );
        assert_eq!(r.arithmetic_mismatches.len(), 1);
        assert_eq!(r.posted["t1"], vec![(3, 5)]);
    }

    #[test]
    fn parses_sse() {
        let body = "id: 1\nevent: account_opened\ndata: {\"seq\":1,\"index\":3,\"timestamp\":\"2026-11-23T12:00:00.000001Z\",\"type\":\"account_opened\",\"command_id\":\"a\",\"data\":{\"account\":\"a\"}}\n\n: keep-alive\n";
        let v = parse_sse(body).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].index, 3);
        assert_eq!(v[0].timestamp_us % 1_000_000, 1);
    }
}

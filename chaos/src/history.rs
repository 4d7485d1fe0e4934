//! Jepsen-style history: every client operation is invoked by one logical process and completes
//! `ok` (it happened), `fail` (it definitely did not) or `info` (unknown: it may or may not have
//! taken effect). After an `info` the process retires and a new process id takes its place.
//! Written as history.jsonl, two lines per operation (invoke, then completion).

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `POST /v1/transfers` with a client-generated id.
    Transfer,
    /// Re-send of an earlier ok transfer with the same id and body (must return the original).
    Replay,
    /// `GET /v1/balances` of every account (linearizable snapshot read).
    ReadAll,
    /// `GET /v1/accounts/{id}` (linearizable).
    Read,
    /// `GET /v1/accounts/{id}?consistency=stale`.
    ReadStale,
    /// `GET /v1/accounts/{id}/balance?at_index=N`.
    ReadAtIndex,
    /// `GET /v1/accounts/{id}/balance?at=T`.
    ReadAtTime,
}

/// How an operation completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Unknown.
    Info,
}

/// A transfer's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferReq {
    /// Client-generated id (idempotency key).
    pub id: String,
    /// Debit account.
    pub from: String,
    /// Credit account.
    pub to: String,
    /// Minor units.
    pub amount: i64,
}

/// One completed operation.
#[derive(Debug, Clone, Serialize)]
pub struct Op {
    /// Unique id.
    pub op_id: u64,
    /// Logical process.
    pub process: u64,
    /// Kind.
    pub f: OpKind,
    /// Node the first attempt went to.
    pub node: u64,
    /// Invocation, µs since the workload started.
    pub invoke_us: u64,
    /// Completion, µs since the workload started.
    pub complete_us: u64,
    /// Completion type.
    pub outcome: Outcome,
    /// Transfer request (transfers and replays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferReq>,
    /// Account read (single-account reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Asked index (time travel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_index: Option<u64>,
    /// Asked time (time travel), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_time: Option<String>,
    /// Index reported: commit index of a write, applied index a read was served at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// Single balance read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<i64>,
    /// Snapshot read's balances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balances: Option<BTreeMap<String, i64>>,
    /// Leader timestamp of a write (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Error code or transport error of the last attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Attempts made (retries reuse the id).
    pub attempts: u32,
}

impl Op {
    /// A new op skeleton.
    pub fn new(op_id: u64, process: u64, f: OpKind, node: u64, invoke_us: u64) -> Self {
        Self {
            op_id,
            process,
            f,
            node,
            invoke_us,
            complete_us: invoke_us,
            outcome: Outcome::Info,
            transfer: None,
            account: None,
            at_index: None,
            at_time: None,
            index: None,
            balance: None,
            balances: None,
            timestamp: None,
            error: None,
            attempts: 0,
        }
    }

    /// True for ops that changed (or may have changed) state.
    pub fn is_write(&self) -> bool {
        self.f == OpKind::Transfer
    }
}

/// The shared history of one run.
#[derive(Default)]
pub struct History {
    ops: Mutex<Vec<Op>>,
}

impl History {
    /// Records a completed op.
    pub fn record(&self, op: Op) {
        if let Ok(mut v) = self.ops.lock() {
            v.push(op);
        }
    }

    /// All ops, ordered by invocation.
    pub fn snapshot(&self) -> Vec<Op> {
        let mut v = self.ops.lock().map(|v| v.clone()).unwrap_or_default();
        v.sort_by_key(|o| (o.invoke_us, o.op_id));
        v
    }
}

/// Writes ops as Jepsen-style jsonl: an `invoke` line and a completion line per op, in time
/// order.
pub fn write_jsonl(ops: &[Op], path: &Path) -> std::io::Result<()> {
    let mut lines: Vec<(u64, u8, serde_json::Value)> = Vec::with_capacity(ops.len() * 2);
    for o in ops {
        let value = serde_json::json!({
            "transfer": o.transfer, "account": o.account,
            "at_index": o.at_index, "at_time": o.at_time,
        });
        lines.push((
            o.invoke_us,
            0,
            serde_json::json!({"type": "invoke", "op_id": o.op_id, "process": o.process,
                "f": o.f, "node": o.node, "time_us": o.invoke_us, "value": value}),
        ));
        let mut done = serde_json::to_value(o).unwrap_or_default();
        if let Some(m) = done.as_object_mut() {
            m.insert(
                "type".into(),
                serde_json::to_value(o.outcome).unwrap_or_default(),
            );
            m.insert("time_us".into(), o.complete_us.into());
        }
        lines.push((o.complete_us, 1, done));
    }
    lines.sort_by_key(|(t, k, _)| (*t, *k));
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (_, _, v) in lines {
        writeln!(f, "{v}")?;
    }
    f.flush()
}

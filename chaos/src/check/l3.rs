//! L3: a transfer id is applied at most once (on every node's log), and a retried command
//! returns the original outcome (a replayed ok transfer reports its original index).

use super::{CheckResult, Inputs};
use crate::history::{OpKind, Outcome};
use std::collections::BTreeMap;

/// Runs L3.
pub fn check(inp: &Inputs<'_>) -> CheckResult {
    let mut r = CheckResult::new(
        "L3",
        "transfer ids applied at most once; replays return the original",
    );
    for (node, log) in inp.node_logs {
        let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
        for e in log.iter().filter(|e| e.kind == "transfer_posted") {
            let id = e.data["transfer_id"].as_str().unwrap_or("");
            if !id.starts_with(inp.tag) {
                continue;
            }
            r.checked += 1;
            if let Some(first) = seen.insert(id, e.seq) {
                let op_ids = ops_of(inp, id);
                r.violation(
                    format!(
                        "node {node}: transfer {id} posted twice (seq {first} and {})",
                        e.seq
                    ),
                    op_ids,
                    None,
                );
            }
        }
    }
    for op in inp.ops {
        if let (OpKind::Replay, Outcome::Fail, Some(t)) = (op.f, op.outcome, &op.transfer) {
            r.checked += 1;
            r.violation(
                format!(
                    "replay of ok transfer {} was refused: {}",
                    t.id,
                    op.error.as_deref().unwrap_or("")
                ),
                ops_of(inp, &t.id),
                Some(op.invoke_us),
            );
            continue;
        }
        let (OpKind::Replay, Outcome::Ok, Some(t), Some(i)) =
            (op.f, op.outcome, &op.transfer, op.index)
        else {
            continue;
        };
        r.checked += 1;
        let first = inp.replay.posted.get(&t.id).and_then(|v| v.first());
        if first.map(|(_, idx)| *idx) != Some(i) {
            r.violation(
                format!(
                    "replay of {} returned index {i}, first applied at {:?}",
                    t.id,
                    first.map(|x| x.1)
                ),
                ops_of(inp, &t.id),
                Some(op.invoke_us),
            );
        }
    }
    r
}

fn ops_of(inp: &Inputs<'_>, id: &str) -> Vec<u64> {
    inp.ops
        .iter()
        .filter(|o| o.transfer.as_ref().is_some_and(|t| t.id == id))
        .map(|o| o.op_id)
        .collect()
}

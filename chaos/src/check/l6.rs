//! L6: after healing, every replica that reached the same applied index has the same state hash
//! there, and every node's event log agrees with every other on each sequence number they share.

use super::{CheckResult, Verdict};
use crate::log::LogEvent;
use serde::Serialize;
use std::collections::BTreeMap;

/// One node's final applied position and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Applied index.
    pub applied: u64,
    /// Index the hash was taken at.
    pub hash_index: u64,
    /// Rolling applied hash.
    pub hash: String,
}

/// Runs L6 over the final positions and every node's log.
pub fn check(
    final_positions: &BTreeMap<u64, Applied>,
    logs: &BTreeMap<u64, Vec<LogEvent>>,
) -> CheckResult {
    let mut r = CheckResult::new(
        "L6",
        "replicas agree: state hash at equal index, logs entry by entry",
    );
    let mut by_index: BTreeMap<u64, Vec<(u64, &str)>> = BTreeMap::new();
    for (id, p) in final_positions {
        by_index
            .entry(p.hash_index)
            .or_default()
            .push((*id, &p.hash));
    }
    for (index, nodes) in &by_index {
        r.checked += 1;
        if let Some((n0, h0)) = nodes.first() {
            for (n, h) in &nodes[1..] {
                if h != h0 {
                    r.violation(
                        format!("at index {index}: node {n0} hash {h0} != node {n} hash {h}"),
                        vec![],
                        None,
                    );
                }
            }
        }
    }
    if by_index.len() > 1 || final_positions.is_empty() {
        r.verdict = r.verdict.max(Verdict::Unknown);
        r.note = format!("replicas did not converge to one index: {final_positions:?}");
    }
    let Some((ref_id, reference)) = logs.iter().max_by_key(|(_, l)| l.len()) else {
        r.unknown("no logs fetched");
        return r;
    };
    for (id, log) in logs {
        for (i, e) in log.iter().enumerate() {
            r.checked += 1;
            if e.seq != i as u64 + 1 {
                r.violation(
                    format!("node {id}: event {i} has seq {} (gap)", e.seq),
                    vec![],
                    None,
                );
                break;
            }
            if reference.get(i) != Some(e) {
                r.violation(
                    format!(
                        "node {id} and node {ref_id} disagree on event seq {}",
                        e.seq
                    ),
                    vec![],
                    None,
                );
                break;
            }
        }
    }
    r
}

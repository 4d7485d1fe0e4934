//! L1 (money is conserved: the bank's accounts always sum to the total) and L2 (no account below
//! its overdraft limit, 0 here), on every ok snapshot read and on the final replayed log.

use super::{CheckResult, Inputs};
use crate::history::{OpKind, Outcome};

/// L1 on snapshot reads and the final log (including the log's own arithmetic).
pub fn check_l1(inp: &Inputs<'_>) -> CheckResult {
    let mut r = CheckResult::new("L1", "bank total conserved (snapshot reads and final log)");
    for op in inp.ops {
        let (OpKind::ReadAll, Outcome::Ok, Some(b)) = (op.f, op.outcome, &op.balances) else {
            continue;
        };
        r.checked += 1;
        let sum: i64 = inp
            .accounts
            .iter()
            .map(|a| b.get(a).copied().unwrap_or(0))
            .sum();
        let missing = inp.accounts.iter().filter(|a| !b.contains_key(*a)).count();
        if sum != inp.total || missing > 0 {
            r.violation(
                format!(
                    "snapshot read at index {:?} sums to {sum} (expected {}), {missing} accounts missing",
                    op.index, inp.total
                ),
                vec![op.op_id],
                Some(op.invoke_us),
            );
        }
    }
    if inp.node_logs.is_empty() {
        r.unknown(super::NO_LOG);
        return r;
    }
    let last = inp.replay.last_index;
    r.checked += 1;
    let final_sum: i64 = inp
        .accounts
        .iter()
        .map(|a| inp.replay.balance_at_index(a, last).unwrap_or(0))
        .sum();
    if final_sum != inp.total {
        r.violation(
            format!("final log sums to {final_sum}, expected {}", inp.total),
            vec![],
            None,
        );
    }
    for m in &inp.replay.arithmetic_mismatches {
        r.violation(format!("log arithmetic: {m}"), vec![], None);
    }
    r
}

/// L2 on snapshot reads and on every posting of the final log.
pub fn check_l2(inp: &Inputs<'_>) -> CheckResult {
    let mut r = CheckResult::new("L2", "no balance below -overdraft_limit (0)");
    for op in inp.ops {
        let (OpKind::ReadAll, Outcome::Ok, Some(b)) = (op.f, op.outcome, &op.balances) else {
            continue;
        };
        r.checked += 1;
        if let Some((a, v)) = b.iter().find(|(_, v)| **v < 0) {
            r.violation(
                format!("snapshot read at index {:?}: {a} = {v}", op.index),
                vec![op.op_id],
                Some(op.invoke_us),
            );
        }
    }
    for a in inp.accounts {
        for p in inp.replay.postings.get(a).map(Vec::as_slice).unwrap_or(&[]) {
            r.checked += 1;
            if p.balance < 0 {
                r.violation(
                    format!("log seq {}: {a} = {}", p.seq, p.balance),
                    vec![],
                    None,
                );
            }
        }
    }
    r
}

//! L5 in linear time using the log's total order: (a) real-time order agrees with index order —
//! if op A completed before linearizable op B was invoked, index(A) <= index(B); (b) every read's
//! value equals the replay of the log prefix at the index the read reported.

use super::{CheckResult, Inputs};
use crate::history::{Op, OpKind, Outcome};

/// Runs L5.
pub fn check(inp: &Inputs<'_>) -> CheckResult {
    let mut r = CheckResult::new(
        "L5",
        "real-time order = index order; reads equal replay at their index",
    );
    check_reads(inp, &mut r);
    check_real_time(inp.ops, &mut r);
    r
}

fn check_reads(inp: &Inputs<'_>, r: &mut CheckResult) {
    for op in inp.ops {
        if op.outcome != Outcome::Ok {
            continue;
        }
        let Some(index) = op.index else { continue };
        match op.f {
            OpKind::ReadAll => {
                for (a, v) in op.balances.iter().flatten() {
                    r.checked += 1;
                    let want = inp.replay.balance_at_index(a, index);
                    if want != Some(*v) {
                        r.violation(
                            format!(
                                "snapshot read at index {index}: {a} = {v}, replay gives {want:?}"
                            ),
                            vec![op.op_id],
                            Some(op.invoke_us),
                        );
                    }
                }
            }
            OpKind::Read | OpKind::ReadStale => {
                let (Some(a), Some(v)) = (&op.account, op.balance) else {
                    continue;
                };
                r.checked += 1;
                let want = inp.replay.balance_at_index(a, index);
                if want != Some(v) {
                    r.violation(
                        format!("read of {a} at index {index} = {v}, replay gives {want:?}"),
                        vec![op.op_id],
                        Some(op.invoke_us),
                    );
                }
            }
            _ => {}
        }
    }
}

/// Ops whose reported index bounds later ops: anything ok that observed or made an index.
fn is_witness(op: &Op) -> bool {
    op.outcome == Outcome::Ok
        && op.index.is_some()
        && matches!(
            op.f,
            OpKind::Transfer | OpKind::ReadAll | OpKind::Read | OpKind::ReadStale
        )
}

/// Ops that must be linearizable.
fn is_linearizable(op: &Op) -> bool {
    op.outcome == Outcome::Ok
        && op.index.is_some()
        && matches!(op.f, OpKind::Transfer | OpKind::ReadAll | OpKind::Read)
}

fn check_real_time(ops: &[Op], r: &mut CheckResult) {
    let mut done: Vec<&Op> = ops.iter().filter(|o| is_witness(o)).collect();
    done.sort_by_key(|o| o.complete_us);
    let mut later: Vec<&Op> = ops.iter().filter(|o| is_linearizable(o)).collect();
    later.sort_by_key(|o| o.invoke_us);
    let mut best: Option<&Op> = None;
    let mut i = 0;
    for b in later {
        while i < done.len() && done[i].complete_us < b.invoke_us {
            if best.is_none_or(|x| done[i].index > x.index) {
                best = Some(done[i]);
            }
            i += 1;
        }
        r.checked += 1;
        if let Some(a) = best {
            if b.index < a.index {
                r.violation(
                    format!(
                        "{:?} op {} at index {:?} started after op {} completed at index {:?}",
                        b.f, b.op_id, b.index, a.op_id, a.index
                    ),
                    vec![a.op_id, b.op_id],
                    Some(b.invoke_us),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, f: OpKind, inv: u64, done: u64, index: u64) -> Op {
        let mut o = Op::new(id, id, f, 1, inv);
        o.complete_us = done;
        o.outcome = Outcome::Ok;
        o.index = Some(index);
        o
    }

    #[test]
    fn stale_linearizable_read_is_caught_and_stale_read_is_not() {
        let w = op(1, OpKind::Transfer, 0, 10, 50);
        let ok_read = op(2, OpKind::Read, 20, 30, 50);
        let mut r = CheckResult::new("L5", "");
        check_real_time(&[w.clone(), ok_read], &mut r);
        assert_eq!(r.violations, 0);
        let stale = op(3, OpKind::ReadStale, 20, 30, 40);
        check_real_time(&[w.clone(), stale], &mut r);
        assert_eq!(r.violations, 0, "stale reads may lag");
        let bad = op(4, OpKind::Read, 20, 30, 40);
        check_real_time(&[w, bad], &mut r);
        assert_eq!(r.violations, 1);
        assert_eq!(r.first.unwrap().op_ids, vec![1, 4]);
    }
}

//! L4: every acknowledged (2xx) transfer is in the committed log at the index it reported; every
//! `fail` transfer is absent; every `info` transfer is resolved against the final log (counted,
//! either way allowed).

use super::{CheckResult, Inputs};
use crate::history::{OpKind, Outcome};

/// Runs L4.
pub fn check(inp: &Inputs<'_>) -> CheckResult {
    let mut r = CheckResult::new(
        "L4",
        "acknowledged writes in the log at their index; failed ones absent",
    );
    let (mut info_present, mut info_absent) = (0u64, 0u64);
    for op in inp.ops {
        let (OpKind::Transfer, Some(t)) = (op.f, &op.transfer) else {
            continue;
        };
        let found = inp
            .replay
            .posted
            .get(&t.id)
            .and_then(|v| v.first())
            .copied();
        r.checked += 1;
        match op.outcome {
            Outcome::Ok => match found {
                None => r.violation(
                    format!(
                        "ok transfer {} (index {:?}) is not in the log",
                        t.id, op.index
                    ),
                    vec![op.op_id],
                    Some(op.complete_us),
                ),
                Some((_, idx)) if Some(idx) != op.index => r.violation(
                    format!(
                        "ok transfer {} reported index {:?}, log has it at {idx}",
                        t.id, op.index
                    ),
                    vec![op.op_id],
                    Some(op.complete_us),
                ),
                Some(_) => {}
            },
            Outcome::Fail => {
                if let Some((seq, idx)) = found {
                    r.violation(
                        format!(
                            "failed transfer {} ({}) is in the log at index {idx} (seq {seq})",
                            t.id,
                            op.error.as_deref().unwrap_or("")
                        ),
                        vec![op.op_id],
                        Some(op.complete_us),
                    );
                }
            }
            Outcome::Info => {
                if found.is_some() {
                    info_present += 1;
                } else {
                    info_absent += 1;
                }
            }
        }
    }
    r.note = format!("info transfers resolved: {info_present} applied, {info_absent} not applied");
    r
}

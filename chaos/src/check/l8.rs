//! L8: time-travel reads (`balance?at_index=N`, `balance?at=T`) equal the replay of the log up to
//! that index or time, within the log prefix the node had applied when it answered (its
//! reported index; `at=T` reads are linearizable, so that prefix covers every event <= T).

use super::{CheckResult, Inputs};
use crate::history::{OpKind, Outcome};

/// Runs L8.
pub fn check(inp: &Inputs<'_>) -> CheckResult {
    let mut r = CheckResult::new("L8", "time-travel reads equal replay");
    for op in inp.ops {
        if op.outcome != Outcome::Ok {
            continue;
        }
        let (Some(a), Some(v)) = (&op.account, op.balance) else {
            continue;
        };
        let (want, asked) = match (op.f, op.at_index, &op.at_time) {
            (OpKind::ReadAtIndex, Some(i), _) => {
                (inp.replay.balance_at_index(a, i), format!("index {i}"))
            }
            (OpKind::ReadAtTime, _, Some(t)) => match node::api::render::parse_rfc3339_us(t) {
                Ok(us) => (
                    inp.replay
                        .balance_at_time(a, us, op.index.unwrap_or(u64::MAX)),
                    format!("time {t} (served at index {:?})", op.index),
                ),
                Err(_) => continue,
            },
            _ => continue,
        };
        r.checked += 1;
        if want != Some(v) {
            r.violation(
                format!("balance of {a} at {asked} = {v}, replay gives {want:?}"),
                vec![op.op_id],
                Some(op.invoke_us),
            );
        }
    }
    r
}

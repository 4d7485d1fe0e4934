//! WGL (Wing–Gong–Lowe, as in porcupine) linearizability search over each account's projected
//! history, an independent cross-check of L5 that does not trust reported indexes. Model: the
//! account's balance; an ok transfer adds its delta, an `info` transfer may take effect any time
//! after its invocation (return at +∞), a linearizable read must see the current balance.
//! Projection onto one account is sound: a non-linearizable projection means a
//! non-linearizable history. A time limit turns the verdict into `unknown`, never a pass.

use super::{CheckResult, Inputs};
use crate::history::{OpKind, Outcome};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// One op of a single-register history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegOp {
    /// History op id.
    pub op_id: u64,
    /// Invocation time.
    pub call: u64,
    /// Completion time (`u64::MAX` when unknown).
    pub ret: u64,
    /// The op.
    pub action: Action,
}

/// Effect on the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Add a delta.
    Add(i64),
    /// Observe a value.
    Read(i64),
}

/// Result of one search.
#[derive(Debug, PartialEq, Eq)]
pub enum Search {
    /// A linearization exists.
    Linearizable,
    /// None exists.
    NotLinearizable,
    /// The deadline passed first.
    TimedOut,
}

/// Runs the search for every account.
pub fn check(inp: &Inputs<'_>) -> CheckResult {
    let mut r = CheckResult::new(
        "WGL",
        "per-account linearizability search (cross-check of L5)",
    );
    let deadline = Instant::now() + Duration::from_millis(inp.wgl_time_limit_ms);
    let initial = inp.total / inp.accounts.len().max(1) as i64;
    for a in inp.accounts {
        let ops = project(inp, a);
        r.checked += ops.len() as u64;
        match search(initial, &ops, deadline) {
            Search::Linearizable => {}
            Search::NotLinearizable => {
                let ids = ops.iter().map(|o| o.op_id).take(12).collect();
                r.violation(format!("history of {a} is not linearizable"), ids, None);
            }
            Search::TimedOut => r.unknown(&format!("time limit reached at account {a}")),
        }
    }
    r
}

fn project(inp: &Inputs<'_>, account: &str) -> Vec<RegOp> {
    let mut out = Vec::new();
    for op in inp.ops {
        let action = match (op.f, op.outcome) {
            (OpKind::Transfer, Outcome::Ok | Outcome::Info) => {
                let Some(t) = &op.transfer else { continue };
                if t.from == account {
                    Action::Add(-t.amount)
                } else if t.to == account {
                    Action::Add(t.amount)
                } else {
                    continue;
                }
            }
            (OpKind::Read, Outcome::Ok) if op.account.as_deref() == Some(account) => {
                let Some(v) = op.balance else { continue };
                Action::Read(v)
            }
            (OpKind::ReadAll, Outcome::Ok) => {
                let Some(v) = op.balances.as_ref().and_then(|b| b.get(account)) else {
                    continue;
                };
                Action::Read(*v)
            }
            _ => continue,
        };
        let ret = if op.outcome == Outcome::Info {
            u64::MAX
        } else {
            op.complete_us
        };
        out.push(RegOp {
            op_id: op.op_id,
            call: op.invoke_us,
            ret,
            action,
        });
    }
    out
}

const NIL: usize = usize::MAX;

/// Lowe's algorithm with memoization of (linearized set, state).
pub fn search(initial: i64, ops: &[RegOp], deadline: Instant) -> Search {
    let n = ops.len();
    // Entries: 2 per op; sorted by time, calls before returns at equal times (more permissive).
    let mut entries: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        entries.push((o.call, 0, i));
        entries.push((o.ret, 1, i));
    }
    entries.sort();
    let m = entries.len();
    // Doubly linked list over entry positions with a head sentinel at index m.
    let head = m;
    let mut next = vec![NIL; m + 1];
    let mut prev = vec![NIL; m + 1];
    let mut ret_pos = vec![0usize; n];
    let mut call_pos = vec![0usize; n];
    let mut last = head;
    for (p, e) in entries.iter().enumerate() {
        next[last] = p;
        prev[p] = last;
        last = p;
        if e.1 == 0 {
            call_pos[e.2] = p;
        } else {
            ret_pos[e.2] = p;
        }
    }
    let words = n.div_ceil(64).max(1);
    let mut lin = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, i64)> = HashSet::new();
    let mut stack: Vec<(usize, i64)> = Vec::new();
    let mut state = initial;
    let mut cur = next[head];
    let mut steps = 0u64;
    while next[head] != NIL {
        steps += 1;
        if steps % 4096 == 0 && Instant::now() > deadline {
            return Search::TimedOut;
        }
        if cur == NIL {
            // Only reachable when every remaining entry is a call we cannot place; backtrack.
            let Some((op, s)) = stack.pop() else {
                return Search::NotLinearizable;
            };
            state = s;
            lin[op / 64] &= !(1 << (op % 64));
            cur = unlift(&mut next, &mut prev, call_pos[op], ret_pos[op]);
            continue;
        }
        let (_, kind, op) = entries[cur];
        if kind == 0 {
            let new_state = match ops[op].action {
                Action::Add(d) => Some(state + d),
                Action::Read(v) => (v == state).then_some(state),
            };
            if let Some(ns) = new_state {
                lin[op / 64] |= 1 << (op % 64);
                if cache.insert((lin.clone(), ns)) {
                    stack.push((op, state));
                    state = ns;
                    lift(&mut next, &mut prev, call_pos[op], ret_pos[op]);
                    cur = next[head];
                    continue;
                }
                lin[op / 64] &= !(1 << (op % 64));
            }
            cur = next[cur];
        } else {
            let Some((op, s)) = stack.pop() else {
                return Search::NotLinearizable;
            };
            state = s;
            lin[op / 64] &= !(1 << (op % 64));
            cur = unlift(&mut next, &mut prev, call_pos[op], ret_pos[op]);
        }
    }
    Search::Linearizable
}

fn remove(next: &mut [usize], prev: &mut [usize], p: usize) {
    let (a, b) = (prev[p], next[p]);
    next[a] = b;
    if b != NIL {
        prev[b] = a;
    }
}

fn restore(next: &mut [usize], prev: &mut [usize], p: usize) {
    let (a, b) = (prev[p], next[p]);
    next[a] = p;
    if b != NIL {
        prev[b] = p;
    }
}

fn lift(next: &mut [usize], prev: &mut [usize], call: usize, ret: usize) {
    remove(next, prev, call);
    remove(next, prev, ret);
}

/// Re-inserts an op's entries (reverse order of removal); returns the position after its call.
fn unlift(next: &mut [usize], prev: &mut [usize], call: usize, ret: usize) -> usize {
    restore(next, prev, ret);
    restore(next, prev, call);
    next[call]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, call: u64, ret: u64, action: Action) -> RegOp {
        RegOp {
            op_id: id,
            call,
            ret,
            action,
        }
    }

    fn run(ops: &[RegOp]) -> Search {
        search(100, ops, Instant::now() + Duration::from_secs(5))
    }

    #[test]
    fn sequential_and_concurrent_histories() {
        use Action::*;
        assert_eq!(
            run(&[op(1, 0, 1, Add(-10)), op(2, 2, 3, Read(90))]),
            Search::Linearizable
        );
        // A read after a completed write must see it.
        assert_eq!(
            run(&[op(1, 0, 1, Add(-10)), op(2, 2, 3, Read(100))]),
            Search::NotLinearizable
        );
        // Concurrent: either value is fine.
        assert_eq!(
            run(&[op(1, 0, 5, Add(-10)), op(2, 1, 3, Read(100))]),
            Search::Linearizable
        );
        assert_eq!(
            run(&[op(1, 0, 5, Add(-10)), op(2, 1, 3, Read(90))]),
            Search::Linearizable
        );
        // Unknown write may apply late or never.
        assert_eq!(
            run(&[
                op(1, 0, u64::MAX, Add(5)),
                op(2, 2, 3, Read(100)),
                op(3, 4, 5, Read(105))
            ]),
            Search::Linearizable
        );
        // ...but not un-apply: 105 then 100 is impossible.
        assert_eq!(
            run(&[
                op(1, 0, u64::MAX, Add(5)),
                op(2, 2, 3, Read(105)),
                op(3, 4, 5, Read(100))
            ]),
            Search::NotLinearizable
        );
        // Two concurrent writes, reads in both orders of application.
        assert_eq!(
            run(&[
                op(1, 0, 10, Add(1)),
                op(2, 0, 10, Add(2)),
                op(3, 1, 9, Read(102)),
                op(4, 11, 12, Read(103))
            ]),
            Search::Linearizable
        );
    }

    #[test]
    fn time_limit_gives_timed_out() {
        let ops: Vec<RegOp> = (0..40)
            .map(|i| op(i, 0, 1000, Action::Add(1 << (i % 20))))
            .chain(std::iter::once(op(99, 0, 1000, Action::Read(-1))))
            .collect();
        assert_eq!(search(0, &ops, Instant::now()), Search::TimedOut);
    }
}

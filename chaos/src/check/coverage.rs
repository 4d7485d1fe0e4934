//! Coverage (every requested fault kind took effect at least once, else `unknown`: a drill whose
//! faults never fired proves nothing) and liveness (after healing: one leader, a write commits,
//! replicas converge; no node process died on its own; the workload made progress).

use super::{CheckResult, Verdict};
use crate::history::{Op, OpKind, Outcome};
use crate::nemesis::NemesisRecord;
use crate::schedule::NemesisKind;

/// Runs the coverage check.
pub fn coverage(requested: &[NemesisKind], records: &[NemesisRecord]) -> CheckResult {
    let mut r = CheckResult::new("coverage", "every requested fault took effect");
    let mut missing = Vec::new();
    for k in requested {
        r.checked += 1;
        let fired = records
            .iter()
            .filter(|x| x.kind == *k && x.took_effect)
            .count();
        if fired == 0 {
            missing.push(k.name());
        }
    }
    if !missing.is_empty() {
        r.unknown(&format!("never took effect: {}", missing.join(", ")));
    }
    r
}

/// What the heal phase observed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HealOutcome {
    /// A leader every node agreed on, if any.
    pub leader: Option<u64>,
    /// ms until that leader was seen.
    pub leader_ms: u64,
    /// The post-heal write committed.
    pub write_ok: bool,
    /// Replicas reached one applied index and hash.
    pub converged: bool,
    /// ms until convergence.
    pub converge_ms: u64,
    /// Node processes that exited on their own during the run: (id, status).
    pub crashed: Vec<(u64, String)>,
}

/// Runs the liveness check.
pub fn liveness(h: &HealOutcome, ops: &[Op]) -> CheckResult {
    let mut r = CheckResult::new(
        "liveness",
        "after healing: one leader, writes commit, replicas converge",
    );
    r.checked = 3;
    // A node that exited on its own (e.g. refusing to reopen its data) is the likelier cause of
    // everything below, so it is the first counterexample.
    for (id, status) in &h.crashed {
        r.violation(
            format!("node {id} exited on its own: {status}"),
            vec![],
            None,
        );
    }
    if h.leader.is_none() {
        r.violation("no agreed leader after healing".into(), vec![], None);
    }
    if !h.write_ok {
        r.violation("a write after healing did not commit".into(), vec![], None);
    }
    if !h.converged {
        r.violation(
            "replicas did not converge after healing".into(),
            vec![],
            None,
        );
    }
    let ok_writes = ops
        .iter()
        .filter(|o| o.f == OpKind::Transfer && o.outcome == Outcome::Ok)
        .count();
    if ok_writes == 0 && r.verdict == Verdict::Valid {
        r.unknown("no transfer succeeded during the run: the history checks are vacuous");
    }
    r.note = format!(
        "{}leader after {} ms, converged after {} ms, {ok_writes} ok transfers",
        if r.note.is_empty() {
            String::new()
        } else {
            format!("{}; ", r.note)
        },
        h.leader_ms,
        h.converge_ms
    );
    r
}

//! Checkers, one invariant (ARCHITECTURE.md, "Invariant catalogue") per file, each giving a three-valued verdict:
//! `valid`, `invalid` (a counterexample was found) or `unknown` (the check could not decide —
//! a time limit expired, a requested fault never fired; never a pass).
//!
//! - `bank`     — L1/L2 on every snapshot read and on the final log.
//! - `l3`       — no transfer id posted twice on any node; replays return the original index.
//! - `l4`       — ok transfers are in the log at their index, failed ones are absent, info resolved.
//! - `l5`       — real-time order vs index order; each read equals the replay at its index.
//! - `wgl`      — WGL linearizability search over per-account histories (cross-check of L5).
//! - `l6`       — replicas converge to the same state hash; logs agree entry by entry.
//! - `l8`       — time-travel reads equal the replay.
//! - `coverage` — requested faults took effect; liveness after healing.
//! - `compaction` — evidence that nodes compacted their logs (demanded with
//!   `--compaction aggressive`).
//! - `l7`       — (`--readmodel`) the read model equals the replay at its checkpoint and the
//!   nodes' state once caught up.
//! - `ryw`      — (`--readmodel`) `min_seq` reads reflect acknowledged writes.
//! - `rm_lag`   — (`--readmodel`) the lag bound after healing; processor crashes.

pub mod bank;
pub mod compaction;
pub mod coverage;
pub mod l3;
pub mod l4;
pub mod l5;
pub mod l6;
pub mod l7;
pub mod l8;
pub mod rm_lag;
pub mod ryw;
pub mod wgl;

use crate::history::Op;
use crate::log::{LogEvent, Replay};
use serde::Serialize;
use std::collections::BTreeMap;

/// Three-valued verdict; `max` combines (invalid > unknown > valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Checked and holds.
    Valid,
    /// Could not decide.
    Unknown,
    /// Counterexample found.
    Invalid,
}

impl Verdict {
    /// Process exit code: 0 valid, 1 invalid, 2 unknown (3 is a harness error).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Valid => 0,
            Self::Invalid => 1,
            Self::Unknown => 2,
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Unknown => "unknown",
            Self::Invalid => "invalid",
        }
    }
}

/// The first violation a checker found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Counterexample {
    /// What is wrong, in one sentence.
    pub message: String,
    /// Ops involved (history op ids).
    pub op_ids: Vec<u64>,
    /// When it happened (µs since the workload started), for the report's window.
    pub t_us: Option<u64>,
}

/// One checker's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Invariant id (`L1`, …, `coverage`, `liveness`).
    pub id: String,
    /// What it checks.
    pub name: String,
    /// Verdict.
    pub verdict: Verdict,
    /// Observations checked.
    pub checked: u64,
    /// Violations found.
    pub violations: u64,
    /// First counterexample.
    pub first: Option<Counterexample>,
    /// Why unknown, or extra facts.
    pub note: String,
}

impl CheckResult {
    /// A result that starts valid with nothing checked.
    pub fn new(id: &str, name: &str) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            verdict: Verdict::Valid,
            checked: 0,
            violations: 0,
            first: None,
            note: String::new(),
        }
    }

    /// Records a violation (keeps the first counterexample).
    pub fn violation(&mut self, message: String, op_ids: Vec<u64>, t_us: Option<u64>) {
        self.verdict = Verdict::Invalid;
        self.violations += 1;
        if self.first.is_none() {
            self.first = Some(Counterexample {
                message,
                op_ids,
                t_us,
            });
        }
    }

    /// Withholds the verdict: `unknown` with `why`, whatever was found (for results that
    /// compared against data that is missing, so their violations would be artifacts).
    pub fn withhold(&mut self, why: &str) {
        self.verdict = Verdict::Unknown;
        self.violations = 0;
        self.first = None;
        self.note = why.to_owned();
    }

    /// Marks the result unknown (unless already invalid).
    pub fn unknown(&mut self, why: &str) {
        self.verdict = self.verdict.max(Verdict::Unknown);
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(why);
    }
}

/// Everything the checkers look at.
pub struct Inputs<'a> {
    /// The history, ordered by invocation.
    pub ops: &'a [Op],
    /// Reference log (the longest node log).
    pub log: &'a [LogEvent],
    /// Replay of the reference log.
    pub replay: &'a Replay,
    /// Every node's log.
    pub node_logs: &'a BTreeMap<u64, Vec<LogEvent>>,
    /// The bank's accounts.
    pub accounts: &'a [String],
    /// Money in the bank.
    pub total: i64,
    /// Prefix of this run's transfer ids.
    pub tag: &'a str,
    /// WGL time limit.
    pub wgl_time_limit_ms: u64,
}

/// Why log-based verdicts are withheld when no node's log could be fetched.
pub const NO_LOG: &str =
    "no node's log could be fetched after healing (cluster down): not decided without a log";

/// Runs the history checkers (L1–L5, L8, WGL). L6, coverage and liveness are run by `run`
/// with cluster observations. When no node's log could be fetched (the cluster stayed down),
/// L3, L4, L5 and L8, which compare the history with the log, are withheld as `unknown`
/// rather than reporting every acknowledged write as lost; liveness reports the outage.
pub fn check_history(inp: &Inputs<'_>) -> Vec<CheckResult> {
    let mut results = vec![
        bank::check_l1(inp),
        bank::check_l2(inp),
        l3::check(inp),
        l4::check(inp),
        l5::check(inp),
        wgl::check(inp),
        l8::check(inp),
    ];
    if inp.node_logs.is_empty() {
        for r in results
            .iter_mut()
            .filter(|r| ["L3", "L4", "L5", "L8"].contains(&r.id.as_str()))
        {
            r.withhold(NO_LOG);
        }
    }
    results
}

/// Overall verdict of a set of results.
pub fn overall(results: &[CheckResult]) -> Verdict {
    results
        .iter()
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Verdict::Unknown)
}

#[cfg(test)]
mod readside_tests;
#[cfg(test)]
mod tests;

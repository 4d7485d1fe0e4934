//! Compaction evidence: how often each node deleted WAL segments after a snapshot (from its WAL
//! directory) and how many distinct snapshots it reported (from `/cluster/status` samples).
//! With `--compaction aggressive` every node must show at least
//! [`Compaction::deletion_events_min`] segment-deletion events, else the verdict is `unknown`:
//! a drill meant to exercise compaction in which none happened proves nothing about it. With
//! `default` the evidence is reported without a demand.

use super::CheckResult;
use crate::compaction::Compaction;
use crate::monitor::Sample;
use crate::wal_watch::WalEvidence;
use std::collections::{BTreeMap, BTreeSet};

/// Distinct snapshot indexes each node reported while sampled.
pub fn snapshots_seen(samples: &[Sample]) -> BTreeMap<u64, usize> {
    let mut seen: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for s in samples {
        if let Some(i) = s.snapshot {
            seen.entry(s.node).or_default().insert(i);
        }
    }
    seen.into_iter().map(|(id, s)| (id, s.len())).collect()
}

/// Runs the compaction check over the WAL evidence of the owned nodes (empty with `--target`).
pub fn check(
    mode: Compaction,
    wal: &BTreeMap<u64, WalEvidence>,
    samples: &[Sample],
) -> CheckResult {
    let mut r = CheckResult::new(
        "compaction",
        "nodes compacted their logs: snapshots, WAL segments deleted",
    );
    let snapshots = snapshots_seen(samples);
    let min = mode.deletion_events_min();
    let mut short = Vec::new();
    let mut facts = Vec::new();
    for (id, e) in wal {
        r.checked += 1;
        facts.push(format!(
            "node {id}: {} segment deletions ({} segments), {} snapshots",
            e.deletion_events,
            e.segments_deleted,
            snapshots.get(id).copied().unwrap_or(0)
        ));
        if e.deletion_events < min {
            short.push(format!("node {id} ({})", e.deletion_events));
        }
    }
    r.note = format!("--compaction {}", mode.name());
    if !facts.is_empty() {
        r.note = format!("{}: {}", r.note, facts.join(", "));
    }
    if min > 0 && wal.is_empty() {
        r.unknown("no WAL directory to inspect (nodes not owned by the harness)");
    }
    if !short.is_empty() {
        r.unknown(&format!(
            "fewer than {min} WAL segment-deletion events on {}: the drill did not exercise compaction",
            short.join(", ")
        ));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;

    fn evidence(events: &[u64]) -> BTreeMap<u64, WalEvidence> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                (
                    i as u64 + 1,
                    WalEvidence {
                        deletion_events: *e,
                        segments_deleted: *e,
                        ..WalEvidence::default()
                    },
                )
            })
            .collect()
    }

    fn sample(node: u64, snapshot: Option<u64>) -> Sample {
        Sample {
            t_us: 0,
            node,
            role: "follower".into(),
            term: 1,
            leader: Some(1),
            applied: 0,
            snapshot,
        }
    }

    #[test]
    fn aggressive_demands_deletions_on_every_node() {
        let ok = check(Compaction::Aggressive, &evidence(&[3, 2, 9]), &[]);
        assert_eq!(ok.verdict, Verdict::Valid, "{}", ok.note);
        let short = check(Compaction::Aggressive, &evidence(&[3, 1, 9]), &[]);
        assert_eq!(short.verdict, Verdict::Unknown);
        assert!(short.note.contains("node 2 (1)"), "{}", short.note);
        let none = check(Compaction::Aggressive, &BTreeMap::new(), &[]);
        assert_eq!(none.verdict, Verdict::Unknown);
    }

    #[test]
    fn default_only_reports() {
        let samples = [
            sample(1, Some(5)),
            sample(1, Some(5)),
            sample(1, Some(9)),
            sample(2, None),
        ];
        let r = check(Compaction::Default, &evidence(&[0, 0]), &samples);
        assert_eq!(r.verdict, Verdict::Valid);
        assert!(
            r.note
                .contains("node 1: 0 segment deletions (0 segments), 2 snapshots"),
            "{}",
            r.note
        );
        assert_eq!(
            check(Compaction::Default, &BTreeMap::new(), &[]).verdict,
            Verdict::Valid
        );
    }
}

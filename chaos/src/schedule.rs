//! The fault schedule: a pure function of `--seed`, the requested nemesis kinds, the node count
//! and the run length. Faults run one at a time (apply, hold, heal, gap) so each one's effect is
//! attributable; the whole list is written to run.json before anything runs.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Quiet time before the first fault (the workload warms up).
const WARMUP_MS: u64 = 2_000;
/// Shortest and longest hold of one fault.
const HOLD_MS_MIN: u64 = 1_500;
const HOLD_MS_MAX: u64 = 3_500;
/// Shortest and longest healed gap between faults.
const GAP_MS_MIN: u64 = 1_500;
const GAP_MS_MAX: u64 = 3_000;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum NemesisKind {
    /// SIGKILL a node, restart it after the hold.
    Kill,
    /// SIGKILL every node at once (a power cut of the whole cluster), restart them all after
    /// the hold: the cluster must come back from its WALs and snapshots alone.
    KillAll,
    /// SIGSTOP a node, SIGCONT after the hold.
    Pause,
    /// Two random halves cannot reach each other.
    Halves,
    /// The current leader is cut off from everyone.
    IsolateLeader,
    /// Each node reaches only its ring neighbours (every node sees a majority, no two the
    /// same); with 3 nodes: the leader and one follower cut, the third bridges.
    Ring,
    /// The leader's outbound links are cut; inbound still work (asymmetric partition).
    OneWay,
    /// Every link delays each chunk.
    Delay,
    /// Every link drops a fraction of new connections.
    Drop,
    /// Remove a voter from the membership, then add it back (learner, then voter).
    Membership,
    /// Kill a node, remove it, wipe its data, restart it joining, make it a voter again.
    Wipe,
    /// Ask the leader to hand over leadership repeatedly.
    TransferStorm,
    /// SIGKILL nats-server (JetStream), restart it on the same store after the hold
    /// (`--readmodel` only).
    NatsKill,
    /// Immediate stop of PostgreSQL (SIGQUIT: crash recovery on restart), restart after the
    /// hold (`--readmodel` only).
    PostgresKill,
    /// SIGKILL the `raftledger-readmodel` processor, restart it after the hold
    /// (`--readmodel` only).
    ReadmodelKill,
}

impl NemesisKind {
    /// Every kind.
    pub const ALL: [NemesisKind; 15] = [
        Self::Kill,
        Self::KillAll,
        Self::Pause,
        Self::Halves,
        Self::IsolateLeader,
        Self::Ring,
        Self::OneWay,
        Self::Delay,
        Self::Drop,
        Self::Membership,
        Self::Wipe,
        Self::TransferStorm,
        Self::NatsKill,
        Self::PostgresKill,
        Self::ReadmodelKill,
    ];

    /// The read-side kinds (group `readside`), valid only with `--readmodel`.
    pub const READSIDE: [NemesisKind; 3] =
        [Self::NatsKill, Self::PostgresKill, Self::ReadmodelKill];

    /// Kinds that need the harness to own the processes or the links.
    pub fn needs_ownership(self) -> bool {
        !matches!(self, Self::Membership | Self::TransferStorm)
    }

    /// Kinds that fault the read side (nats-server, PostgreSQL, the read model).
    pub fn needs_readmodel(self) -> bool {
        Self::READSIDE.contains(&self)
    }

    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::KillAll => "kill-all",
            Self::Pause => "pause",
            Self::Halves => "halves",
            Self::IsolateLeader => "isolate-leader",
            Self::Ring => "ring",
            Self::OneWay => "one-way",
            Self::Delay => "delay",
            Self::Drop => "drop",
            Self::Membership => "membership",
            Self::Wipe => "wipe",
            Self::TransferStorm => "transfer-storm",
            Self::NatsKill => "nats-kill",
            Self::PostgresKill => "postgres-kill",
            Self::ReadmodelKill => "readmodel-kill",
        }
    }

    /// Parses a name or a group (`partition`, `readside`, `all`, `none`). `all` includes the
    /// read-side kinds only when `readmodel` is on; naming one without it is an error.
    pub fn parse_group(name: &str, readmodel: bool) -> anyhow::Result<Vec<NemesisKind>> {
        let kinds = match name {
            "all" => {
                return Ok(Self::ALL
                    .into_iter()
                    .filter(|k| readmodel || !k.needs_readmodel())
                    .collect())
            }
            other => Self::parse_name(other)?,
        };
        if let Some(k) = kinds.iter().find(|k| k.needs_readmodel() && !readmodel) {
            anyhow::bail!("nemesis {} needs --readmodel", k.name());
        }
        Ok(kinds)
    }

    fn parse_name(name: &str) -> anyhow::Result<Vec<NemesisKind>> {
        Ok(match name {
            "none" | "" => vec![],
            "readside" => Self::READSIDE.to_vec(),
            "partition" => vec![Self::Halves, Self::IsolateLeader, Self::Ring, Self::OneWay],
            other => vec![*Self::ALL
                .iter()
                .find(|k| k.name() == other)
                .ok_or_else(|| anyhow::anyhow!("unknown nemesis {other:?}"))?],
        })
    }
}

/// Which node a fault hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// No single node (whole-cluster faults).
    None,
    /// A fixed node id.
    Node(u64),
    /// Whoever leads when the fault starts.
    Leader,
    /// Two groups for `halves`.
    Groups(Vec<u64>, Vec<u64>),
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Position in the schedule.
    pub seq: usize,
    /// Start, ms after the workload started.
    pub start_ms: u64,
    /// How long the fault is held before healing.
    pub hold_ms: u64,
    /// Kind.
    pub kind: NemesisKind,
    /// Victim(s).
    pub target: Target,
}

/// The schedule for `seed`: rounds over `kinds` in a seeded order until `duration_ms`.
pub fn generate(seed: u64, kinds: &[NemesisKind], nodes: usize, duration_ms: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_c4a0_5000_0001);
    let mut steps = Vec::new();
    if kinds.is_empty() || nodes == 0 {
        return steps;
    }
    let ids: Vec<u64> = (1..=nodes as u64).collect();
    let mut t = WARMUP_MS;
    'rounds: loop {
        let mut round = kinds.to_vec();
        round.shuffle(&mut rng);
        for kind in round {
            let hold_ms = rng.random_range(HOLD_MS_MIN..=HOLD_MS_MAX);
            if t + hold_ms > duration_ms {
                break 'rounds;
            }
            let target = target_for(kind, &ids, &mut rng);
            steps.push(Step {
                seq: steps.len(),
                start_ms: t,
                hold_ms,
                kind,
                target,
            });
            t += hold_ms + rng.random_range(GAP_MS_MIN..=GAP_MS_MAX);
        }
    }
    steps
}

fn target_for(kind: NemesisKind, ids: &[u64], rng: &mut StdRng) -> Target {
    let any = |rng: &mut StdRng| ids[rng.random_range(0..ids.len())];
    match kind {
        NemesisKind::Kill | NemesisKind::Pause => {
            if rng.random_bool(0.5) {
                Target::Leader
            } else {
                Target::Node(any(rng))
            }
        }
        NemesisKind::Membership | NemesisKind::Wipe => Target::Node(any(rng)),
        NemesisKind::Halves => {
            let mut s = ids.to_vec();
            s.shuffle(rng);
            let (a, b) = s.split_at(ids.len() / 2);
            Target::Groups(a.to_vec(), b.to_vec())
        }
        NemesisKind::IsolateLeader | NemesisKind::OneWay | NemesisKind::Ring => Target::Leader,
        NemesisKind::KillAll
        | NemesisKind::Delay
        | NemesisKind::Drop
        | NemesisKind::TransferStorm
        | NemesisKind::NatsKill
        | NemesisKind::PostgresKill
        | NemesisKind::ReadmodelKill => Target::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule_and_every_kind_fits() {
        let kinds = NemesisKind::parse_group("partition", false).unwrap();
        let a = generate(7, &kinds, 3, 60_000);
        assert_eq!(a, generate(7, &kinds, 3, 60_000));
        assert_ne!(a, generate(8, &kinds, 3, 60_000));
        for k in &kinds {
            assert!(a.iter().any(|s| s.kind == *k), "{k:?} missing");
        }
        for w in a.windows(2) {
            assert!(
                w[0].start_ms + w[0].hold_ms < w[1].start_ms,
                "faults overlap"
            );
        }
        assert!(a.last().is_some_and(|s| s.start_ms + s.hold_ms <= 60_000));
    }

    #[test]
    fn groups() {
        assert_eq!(NemesisKind::parse_group("all", false).unwrap().len(), 12);
        assert_eq!(NemesisKind::parse_group("all", true).unwrap().len(), 15);
        assert!(NemesisKind::parse_group("all", false)
            .unwrap()
            .contains(&NemesisKind::KillAll));
        assert!(NemesisKind::parse_group("none", false).unwrap().is_empty());
        assert!(NemesisKind::parse_group("meteor", false).is_err());
        assert_eq!(
            NemesisKind::parse_group("one-way", false).unwrap(),
            vec![NemesisKind::OneWay]
        );
        assert!(NemesisKind::parse_group("nats-kill", false).is_err());
        assert!(NemesisKind::parse_group("readside", false).is_err());
        assert_eq!(
            NemesisKind::parse_group("readside", true).unwrap(),
            NemesisKind::READSIDE.to_vec()
        );
        assert!(generate(1, &[], 3, 60_000).is_empty());
    }

    #[test]
    fn kill_all_hits_the_whole_cluster_and_needs_ownership() {
        let k = NemesisKind::parse_group("kill-all", false).unwrap();
        assert_eq!(k, vec![NemesisKind::KillAll]);
        assert_eq!(NemesisKind::KillAll.name(), "kill-all");
        assert!(NemesisKind::KillAll.needs_ownership());
        assert!(!NemesisKind::KillAll.needs_readmodel());
        let kinds = [NemesisKind::Kill, NemesisKind::KillAll, NemesisKind::Pause];
        let steps = generate(3, &kinds, 3, 60_000);
        let all: Vec<&Step> = steps
            .iter()
            .filter(|s| s.kind == NemesisKind::KillAll)
            .collect();
        assert!(!all.is_empty(), "kill-all scheduled within 60 s");
        assert!(all.iter().all(|s| s.target == Target::None));
        assert_eq!(steps, generate(3, &kinds, 3, 60_000));
    }
}

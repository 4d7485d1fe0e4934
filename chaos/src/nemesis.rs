//! Applies the schedule: each fault is applied, held, healed, and recorded with evidence that it
//! took effect (a process was killed; every process was killed and the cluster came back; a
//! signal delivered, a proxy black-holed or severed connections, a membership change committed,
//! the leader changed, a read-side server refused connections). Runs concurrently with the
//! workload. Read-side faults live in `readside::faults`.

use crate::cluster::Cluster;
use crate::procs::StartMode;
use crate::proxy::LinkMode;
use crate::schedule::{NemesisKind, Step, Target};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest a membership change (remove, or add + promote) may take before it counts as failed.
const MEMBERSHIP_TIMEOUT_MS: u64 = 20_000;
/// Delay added per chunk by the `delay` fault.
const DELAY_FAULT_MS: u64 = 80;
/// Fraction of connections dropped by the `drop` fault.
const DROP_FAULT_PER_MILLE: u32 = 400;
/// Interval between leader-transfer requests in a storm.
const STORM_INTERVAL_MS: u64 = 400;
/// Longest wait, after `kill-all` restarted every node, for all of them to answer and agree
/// on a leader (the fault took effect only if the cluster came back).
const KILL_ALL_RECOVERY_TIMEOUT_MS: u64 = 20_000;

/// One fault as it actually happened.
#[derive(Debug, Clone, Serialize)]
pub struct NemesisRecord {
    /// Schedule position.
    pub seq: usize,
    /// Kind.
    pub kind: NemesisKind,
    /// Nodes hit (resolved when the fault started).
    pub nodes: Vec<u64>,
    /// Applied at, µs since the workload started.
    pub start_us: u64,
    /// Healed at.
    pub end_us: u64,
    /// Evidence says it took effect.
    pub took_effect: bool,
    /// The evidence.
    pub evidence: String,
}

/// Runs `steps` against `cluster`; `started` is time zero; `current` shows the active fault.
/// Steps that would start after `end` (slow faults pushed the schedule back) are skipped; the
/// coverage check then reports any kind that never ran.
pub async fn run_schedule(
    cluster: &mut Cluster,
    steps: &[Step],
    seed: u64,
    (started, end): (Instant, Instant),
    current: Arc<Mutex<String>>,
) -> Vec<NemesisRecord> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321);
    let mut out = Vec::new();
    for step in steps {
        let at = started + Duration::from_millis(step.start_ms);
        if at.max(Instant::now()) + Duration::from_millis(step.hold_ms) > end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        set(&current, &format!("{} {:?}", step.kind.name(), step.target));
        let start_us = started.elapsed().as_micros() as u64;
        let (nodes, took_effect, evidence) = apply(cluster, step, &mut rng).await;
        let end_us = started.elapsed().as_micros() as u64;
        set(&current, "");
        out.push(NemesisRecord {
            seq: step.seq,
            kind: step.kind,
            nodes,
            start_us,
            end_us,
            took_effect,
            evidence,
        });
    }
    out
}

fn set(current: &Mutex<String>, s: &str) {
    if let Ok(mut c) = current.lock() {
        *c = s.to_owned();
    }
}

async fn resolve(cluster: &Cluster, target: &Target, rng: &mut StdRng) -> u64 {
    let ids = cluster.ids();
    match target {
        Target::Node(id) => *id,
        _ => match cluster.leader().await {
            Some(l) => l,
            None => ids[rng.random_range(0..ids.len())],
        },
    }
}

async fn hold(step: &Step) {
    tokio::time::sleep(Duration::from_millis(step.hold_ms)).await;
}

async fn apply(cluster: &mut Cluster, step: &Step, rng: &mut StdRng) -> (Vec<u64>, bool, String) {
    match step.kind {
        NemesisKind::Kill => {
            let id = resolve(cluster, &step.target, rng).await;
            let Some(o) = cluster.owned.as_mut() else {
                return (vec![id], false, "not owned".into());
            };
            let killed = o.procs.kill(id);
            hold(step).await;
            let restarted = cluster.start(id, &StartMode::Peers).is_ok();
            (
                vec![id],
                killed,
                format!("sigkill delivered={killed} restarted={restarted}"),
            )
        }
        NemesisKind::KillAll => kill_all(cluster, step).await,
        NemesisKind::Pause => {
            let id = resolve(cluster, &step.target, rng).await;
            let Some(o) = cluster.owned.as_mut() else {
                return (vec![id], false, "not owned".into());
            };
            let paused = o.procs.pause(id);
            hold(step).await;
            let resumed = o.procs.resume(id);
            (
                vec![id],
                paused && resumed,
                format!("sigstop={paused} sigcont={resumed}"),
            )
        }
        NemesisKind::Halves
        | NemesisKind::IsolateLeader
        | NemesisKind::Ring
        | NemesisKind::OneWay
        | NemesisKind::Delay
        | NemesisKind::Drop => link_fault(cluster, step, rng).await,
        NemesisKind::Membership => {
            let id = resolve(cluster, &step.target, rng).await;
            let t = Duration::from_millis(MEMBERSHIP_TIMEOUT_MS);
            let (api, raft) = addrs(cluster, id).await;
            let removed = cluster.remove_voter(id, t).await;
            hold(step).await;
            let added = cluster.add_voter(id, &api, &raft, t).await;
            (
                vec![id],
                removed && added,
                format!("removed={removed} re-added={added}"),
            )
        }
        NemesisKind::Wipe => {
            let id = resolve(cluster, &step.target, rng).await;
            let t = Duration::from_millis(MEMBERSHIP_TIMEOUT_MS);
            let Some(o) = cluster.owned.as_mut() else {
                return (vec![id], false, "not owned".into());
            };
            o.procs.kill(id);
            let removed = cluster.remove_voter(id, t).await;
            let wiped = cluster.owned.as_mut().is_some_and(|o| o.procs.wipe(id));
            hold(step).await;
            let via = cluster.ids().into_iter().find(|x| *x != id).unwrap_or(id);
            let join = cluster.apis[&via].clone();
            let started = cluster.start(id, &StartMode::Join(join)).is_ok();
            let rejoined = wait_voter(cluster, id, t).await;
            (
                vec![id],
                removed && wiped && started && rejoined,
                format!(
                    "removed={removed} wiped={wiped} restarted={started} voter_again={rejoined}"
                ),
            )
        }
        NemesisKind::NatsKill | NemesisKind::PostgresKill | NemesisKind::ReadmodelKill => {
            let http = reqwest::Client::new();
            match cluster.owned.as_mut().and_then(|o| o.readside.as_mut()) {
                Some(rs) => {
                    let (took, evidence) =
                        crate::readside::faults::apply(rs, step.kind, step.hold_ms, &http).await;
                    (vec![], took, evidence)
                }
                None => (vec![], false, "no read side (needs --readmodel)".into()),
            }
        }
        NemesisKind::TransferStorm => {
            let before = cluster.leader().await;
            let deadline = Instant::now() + Duration::from_millis(step.hold_ms);
            let (mut asked, mut changes, mut last) = (0u32, 0u32, before);
            while Instant::now() < deadline {
                if let (Some(l), Some(voters)) = (cluster.leader().await, cluster.voters().await) {
                    if last.is_some_and(|x| x != l) {
                        changes += 1;
                    }
                    last = Some(l);
                    let others: Vec<u64> = voters.into_iter().filter(|v| *v != l).collect();
                    if !others.is_empty() {
                        let to = others[rng.random_range(0..others.len())];
                        if cluster
                            .admin(l, "/cluster/leader/transfer", &json!({"to": to}))
                            .await
                            .is_ok()
                        {
                            asked += 1;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(STORM_INTERVAL_MS)).await;
            }
            (
                vec![],
                asked > 0 && changes > 0,
                format!("transfers requested={asked} leader changes seen={changes}"),
            )
        }
    }
}

/// SIGKILLs every node at once, holds, restarts them all and waits for the cluster to come
/// back. Took effect when every node was running and then gone, all restarted, and all answer
/// with one agreed leader.
async fn kill_all(cluster: &mut Cluster, step: &Step) -> (Vec<u64>, bool, String) {
    let ids = cluster.ids();
    let Some(o) = cluster.owned.as_mut() else {
        return (ids, false, "not owned".into());
    };
    let killed = o.procs.kill_all();
    let all_down = ids.iter().all(|id| !o.procs.is_running(*id));
    hold(step).await;
    let restarted = ids
        .iter()
        .filter(|id| cluster.start(**id, &StartMode::Peers).is_ok())
        .count();
    let t0 = Instant::now();
    let leader = cluster
        .wait_leader(Duration::from_millis(KILL_ALL_RECOVERY_TIMEOUT_MS))
        .await;
    let back_ms = t0.elapsed().as_millis();
    (
        ids.clone(),
        killed == ids && all_down && restarted == ids.len() && leader.is_some(),
        format!(
            "sigkill delivered to {killed:?} all_down={all_down} restarted={restarted}/{} agreed_leader={leader:?} after {back_ms} ms",
            ids.len()
        ),
    )
}

/// A node's member addresses: from the processes when owned, else from the membership as the
/// leader reports it (read before the node is removed).
async fn addrs(cluster: &Cluster, id: u64) -> (String, String) {
    if let Some(n) = cluster.owned.as_ref().and_then(|o| o.procs.nodes.get(&id)) {
        return (n.api_url(), n.raft_url());
    }
    let member = match cluster.leader().await {
        Some(l) => cluster
            .status(l)
            .await
            .map(|s| s["members"][id.to_string()].clone()),
        None => None,
    }
    .unwrap_or_default();
    (
        member["api"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| cluster.apis.get(&id).cloned().unwrap_or_default()),
        member["raft"].as_str().unwrap_or("").to_owned(),
    )
}

async fn wait_voter(cluster: &Cluster, id: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cluster.voters().await.is_some_and(|v| v.contains(&id)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn link_fault(
    cluster: &mut Cluster,
    step: &Step,
    rng: &mut StdRng,
) -> (Vec<u64>, bool, String) {
    let ids = cluster.ids();
    let leader = match step.kind {
        NemesisKind::IsolateLeader | NemesisKind::OneWay | NemesisKind::Ring => {
            Some(resolve(cluster, &step.target, rng).await)
        }
        _ => None,
    };
    let Some(o) = cluster.owned.as_ref() else {
        return (vec![], false, "not owned: no link control".into());
    };
    let mesh = &o.mesh;
    let before = mesh.total_counts();
    let mut nodes = Vec::new();
    match (&step.kind, &step.target) {
        (NemesisKind::Halves, Target::Groups(a, b)) => {
            mesh.cut_between(a, b);
            nodes = a.clone();
        }
        (NemesisKind::IsolateLeader, _) => {
            let l = leader.unwrap_or(ids[0]);
            let rest: Vec<u64> = ids.iter().copied().filter(|x| *x != l).collect();
            mesh.cut_between(&[l], &rest);
            nodes = vec![l];
        }
        (NemesisKind::OneWay, _) => {
            let l = leader.unwrap_or(ids[0]);
            for &j in ids.iter().filter(|x| **x != l) {
                mesh.set(
                    l,
                    j,
                    LinkMode {
                        blocked: true,
                        ..LinkMode::default()
                    },
                );
            }
            nodes = vec![l];
        }
        (NemesisKind::Ring, _) if ids.len() <= 3 => {
            // Too few nodes for a ring: cut the leader from one follower; the third node
            // bridges them (and the cut link carries traffic, so the fault is observable).
            let l = leader.unwrap_or(ids[0]);
            if let Some(&other) = ids.iter().find(|x| **x != l) {
                mesh.cut_between(&[l], &[other]);
                nodes = vec![l, other];
            }
        }
        (NemesisKind::Ring, _) => {
            let n = ids.len();
            for i in 0..n {
                for j in (i + 1)..n {
                    if (j - i).min(n - (j - i)) > 1 {
                        mesh.cut_between(&[ids[i]], &[ids[j]]);
                    }
                }
            }
        }
        (NemesisKind::Delay, _) => mesh.set_all(LinkMode {
            delay_ms: DELAY_FAULT_MS,
            ..LinkMode::default()
        }),
        (NemesisKind::Drop, _) => mesh.set_all(LinkMode {
            drop_per_mille: DROP_FAULT_PER_MILLE,
            ..LinkMode::default()
        }),
        _ => {}
    }
    let faulty = mesh.faulty_links().len();
    hold(step).await;
    let d = mesh.total_counts().since(&before);
    mesh.heal();
    let took = match step.kind {
        NemesisKind::Delay => d.delayed_chunks > 0,
        NemesisKind::Drop => d.dropped > 0,
        _ => d.blackholed + d.severed > 0,
    };
    (nodes, took, format!("links faulted={faulty} counts={d:?}"))
}

/// Heals everything: links, paused and stopped processes, the read side, membership. Returns
/// what it did.
pub async fn heal_all(cluster: &mut Cluster) -> Vec<String> {
    let mut did = Vec::new();
    if let Some(o) = cluster.owned.as_mut() {
        o.mesh.heal();
        o.procs.resume_all();
        if let Some(rs) = o.readside.as_mut() {
            did.extend(rs.heal(&reqwest::Client::new()).await);
        }
    }
    for id in cluster.ids() {
        let running = cluster
            .owned
            .as_mut()
            .is_some_and(|o| o.procs.is_running(id));
        if cluster.owned.is_some() && !running && cluster.start(id, &StartMode::Peers).is_ok() {
            did.push(format!("restarted node {id}"));
        }
    }
    let t = Duration::from_millis(MEMBERSHIP_TIMEOUT_MS);
    for id in cluster.ids() {
        if cluster.voters().await.is_some_and(|v| !v.contains(&id)) {
            let (api, raft) = addrs(cluster, id).await;
            let ok = cluster.add_voter(id, &api, &raft, t).await;
            did.push(format!("re-added node {id} as voter: {ok}"));
        }
    }
    did
}

//! Fast failover: a follower that stops hearing from its leader checks whether the leader's
//! process is gone and, if it is, campaigns as soon as the leader's lease has run out on every
//! voter, instead of waiting out a further randomized election timeout.
//!
//! Why: openraft's voters refuse a (pre-)vote while the leader lease they granted is alive
//! (`election_timeout_ms_max` after the last heartbeat), and a follower's own election timer
//! fires only after that lease *plus* a randomized election timeout. After a leader crash the
//! cluster therefore sits idle for a whole election timeout it does not need: with the default
//! 400–700 ms timeouts, first writes resumed 1.1–1.4 s after a SIGKILL.
//!
//! What it does, per follower that is a voter:
//! 1. [`LeaderContact`] records when the Raft listener last received an AppendEntries
//!    (heartbeat or entries) from the current leader.
//! 2. Once the leader has been silent for [`SUSPECT_AFTER_HEARTBEATS`] heartbeat intervals,
//!    the watch dials the leader's Raft port once. Only a refused connection — nobody listens
//!    there, the process is gone — counts as dead. A slow, paused or partitioned leader (the
//!    dial succeeds or times out) is left to openraft's ordinary timers, so this adds no
//!    spurious elections under load.
//! 3. When dead, it triggers a pre-vote at `last contact + lease + LEASE_MARGIN_MS`, staggered
//!    by rank among the surviving voters (`rank * STAGGER_MS`) so two followers rarely split
//!    the vote, and retries every [`RETRY_MS`] (a few times) while no new leader is known.
//!
//! Safety is openraft's: this only asks for a pre-vote earlier, which voters grant or refuse by
//! the usual rules (lease expired, log at least as up to date). A wrong guess costs a refused
//! pre-vote, never a second leader or a lost write.

use crate::network::NetworkFactory;
use crate::raft_types::{self, NodeId, Raft};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the watch looks at the leader's silence.
const WATCH_INTERVAL_MS: u64 = 20;
/// Silence, in heartbeat intervals, after which the leader is probed (2.5 missed heartbeats:
/// one late heartbeat is normal under load, three in a row are not).
const SUSPECT_AFTER_HEARTBEATS: f64 = 2.5;
/// Slack after the lease's end before the pre-vote, for clock steps between the voters'
/// lease start and ours (all measured on one host's monotonic clock per node).
const LEASE_MARGIN_MS: u64 = 15;
/// Delay between the campaigns of successive ranks: longer than a pre-vote plus vote round
/// (two RTTs and one fsync), so the first-ranked candidate usually wins before the next tries.
const STAGGER_MS: u64 = 60;
/// Delay before re-triggering when no new leader appeared (a voter's lease had not quite
/// expired, or the first candidate's log was behind).
const RETRY_MS: u64 = 120;
/// Campaigns per dead leader before leaving it to openraft's own election timer.
const ATTEMPTS_MAX: u32 = 6;
/// Timeout of the probe dial: refused is immediate; anything slower is "not known dead".
const PROBE_TIMEOUT_MS: u64 = 150;

/// When the Raft listener last heard from which leader (shared with the RPC server).
#[derive(Debug, Clone, Default)]
pub struct LeaderContact {
    last: Arc<Mutex<Option<(NodeId, Instant)>>>,
}

impl LeaderContact {
    /// Records an AppendEntries from `leader`, now.
    pub fn heard_from(&self, leader: NodeId) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some((leader, Instant::now()));
        }
    }

    /// When `leader` was last heard from, if it was the last leader heard from.
    fn last_from(&self, leader: NodeId) -> Option<Instant> {
        let last = self.last.lock().ok()?;
        last.and_then(|(id, at)| (id == leader).then_some(at))
    }
}

/// Timing the watch needs from the node configuration.
#[derive(Debug, Clone, Copy)]
pub struct WatchTiming {
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// The voters' leader lease (openraft uses the maximum election timeout).
    pub lease_ms: u64,
}

/// Per-leader progress of the watch.
struct Suspicion {
    leader: NodeId,
    /// The contact instant the suspicion is about (a newer contact clears it).
    contact: Instant,
    /// `Some(true)`: probed and refused; `Some(false)`: probed, not known dead.
    dead: Option<bool>,
    attempts: u32,
    next_at: Option<Instant>,
}

/// Runs the watch until `stop` turns true.
pub async fn run(
    raft: Raft,
    net: NetworkFactory,
    self_id: NodeId,
    contact: LeaderContact,
    timing: WatchTiming,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(WATCH_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let suspect_after =
        Duration::from_millis((timing.heartbeat_ms as f64 * SUSPECT_AFTER_HEARTBEATS) as u64);
    let mut suspicion: Option<Suspicion> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let view = raft_types::follower_view(&raft, self_id);
        let Some(view) = view else {
            suspicion = None;
            continue;
        };
        let Some(contact_at) = contact.last_from(view.leader) else {
            continue;
        };
        if contact_at.elapsed() < suspect_after {
            suspicion = None;
            continue;
        }
        let s = match &mut suspicion {
            Some(s) if s.leader == view.leader && s.contact == contact_at => s,
            _ => suspicion.insert(Suspicion {
                leader: view.leader,
                contact: contact_at,
                dead: None,
                attempts: 0,
                next_at: None,
            }),
        };
        if s.dead.is_none() {
            let dead = probe_refused(&net, &raft, view.leader).await;
            s.dead = Some(dead);
            if dead {
                let rank = view.surviving_voters.iter().position(|id| *id == self_id);
                let rank = rank.unwrap_or(0) as u64;
                let lease_end = contact_at + Duration::from_millis(timing.lease_ms);
                s.next_at =
                    Some(lease_end + Duration::from_millis(LEASE_MARGIN_MS + rank * STAGGER_MS));
                tracing::info!(
                    leader = view.leader,
                    silent_ms = contact_at.elapsed().as_millis() as u64,
                    rank,
                    "failover: leader's raft port refuses connections; campaigning once its lease ends"
                );
            }
        }
        let Some(next_at) = s.next_at else { continue };
        if Instant::now() < next_at || s.attempts >= ATTEMPTS_MAX {
            continue;
        }
        s.attempts += 1;
        s.next_at = Some(Instant::now() + Duration::from_millis(RETRY_MS));
        tracing::info!(
            leader = view.leader,
            attempt = s.attempts,
            "failover: pre-vote"
        );
        if let Err(e) = raft_types::trigger_pre_vote(&raft).await {
            tracing::warn!(error = %e, "failover: could not trigger an election");
        }
    }
}

/// True when a TCP connection to `leader`'s Raft port is refused (no process listens there).
async fn probe_refused(net: &NetworkFactory, raft: &Raft, leader: NodeId) -> bool {
    let Some(addr) = raft_types::member_addr(raft, leader) else {
        return false;
    };
    let url = net.raft_url(leader, &addr);
    let Some(host_port) = host_port(&url) else {
        return false;
    };
    let dial = tokio::net::TcpStream::connect(host_port);
    match tokio::time::timeout(Duration::from_millis(PROBE_TIMEOUT_MS), dial).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// `host:port` of an `http://host:port/...` URL.
fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    (!authority.is_empty() && authority.contains(':')).then(|| authority.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_of_urls() {
        assert_eq!(
            host_port("http://127.0.0.1:9080").as_deref(),
            Some("127.0.0.1:9080")
        );
        assert_eq!(
            host_port("https://node-1.example:9443/raft").as_deref(),
            Some("node-1.example:9443")
        );
        assert_eq!(host_port("http://no-port/"), None);
    }

    #[test]
    fn contact_is_per_leader() {
        let c = LeaderContact::default();
        assert!(c.last_from(1).is_none());
        c.heard_from(1);
        assert!(c.last_from(1).is_some());
        c.heard_from(2);
        assert!(
            c.last_from(1).is_none(),
            "a newer leader replaces the old one"
        );
        assert!(c.last_from(2).is_some());
    }
}

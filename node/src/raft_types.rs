//! The one module that names openraft types. Everything else in `node` imports the aliases here,
//! so a re-pin of openraft touches this file (and the trait impls in `log_store`, `sm`, `network`).

use ledger::{Command, CommandResult};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Raft node id.
pub type NodeId = u64;

/// Where a node listens: the client API and the Raft RPC listener (never the same port).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    /// Base URL of the client HTTP API, e.g. `http://127.0.0.1:8080`.
    pub api: String,
    /// Base URL of the Raft RPC listener, e.g. `http://127.0.0.1:9080`.
    pub raft: String,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "api={} raft={}", self.api, self.raft)
    }
}

/// One Raft entry's application payload: a batch of independent ledger commands, stamped by
/// the leader. Concurrent client requests are coalesced into one entry so they share one fsync
/// and one replication round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRequest {
    /// Commands, applied in order; each has its own idempotency key and outcome.
    pub commands: Vec<Command>,
}

impl fmt::Display for LedgerRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LedgerRequest({} commands)", self.commands.len())
    }
}

/// What applying one `LedgerRequest` produced: one result per command, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerResponse {
    /// Results, one per command of the request.
    pub results: Vec<CommandResult>,
    /// Sequence of the last event applied so far (after this entry).
    pub last_event_seq: u64,
}

/// openraft's async runtime: tokio, with openraft's random choices (each election timeout,
/// the phase of its tick) drawn from a seed given when the Raft is created
/// ([`with_raft_seed`]) instead of from the thread's RNG, so that a simulation replays them.
pub type Runtime =
    openraft::rt::deterministic_rng::DeterministicRng<openraft_rt_tokio::TokioRuntime>;

openraft::declare_raft_types!(
    /// openraft type configuration for raftledger.
    pub TypeConfig:
        D = LedgerRequest,
        R = LedgerResponse,
        NodeId = NodeId,
        Node = NodeAddr,
        AsyncRuntime = Runtime,
);

/// Runs `create` (the future that creates a Raft) with openraft's random choices seeded by
/// `seed`: every task openraft spawns from it derives its own seed from this one. openraft
/// panics if a Raft is created outside such a scope.
pub fn with_raft_seed<F: std::future::Future>(
    seed: u64,
    create: F,
) -> impl std::future::Future<Output = F::Output> {
    Runtime::scope(seed, create)
}

/// The Raft handle, parameterized by our state machine type.
pub type Raft = openraft::Raft<TypeConfig, crate::sm::StateMachineStore>;
/// A log entry.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// Entry payload.
pub type EntryPayload = openraft::type_config::alias::PayloadOf<TypeConfig>;
/// Log id (term/leader + index).
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// Vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// Stored membership.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// Log state.
pub type LogState = openraft::storage::LogState<TypeConfig>;
/// Storage I/O completion callback.
pub type IOFlushed = openraft::storage::IOFlushed<TypeConfig>;
/// Raft metrics.
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;
/// Snapshot (metadata + data) as handed to openraft.
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, crate::sm::SnapshotFile>;

/// A copy of the current Raft metrics.
pub fn metrics_of(raft: &Raft) -> RaftMetrics {
    use openraft::async_runtime::watch::WatchReceiver;
    raft.metrics().borrow_watched().clone()
}

/// The advertised addresses of member `id`, from the current membership.
pub fn member_addr(raft: &Raft, id: NodeId) -> Option<NodeAddr> {
    metrics_of(raft)
        .membership_config
        .membership()
        .get_node(&id)
        .cloned()
}

/// What a follower knows of its leader, for the failover watch (`crate::failover`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerView {
    /// The leader this follower follows.
    pub leader: NodeId,
    /// The voters other than that leader, ascending: the candidates if it is gone.
    pub surviving_voters: Vec<NodeId>,
}

/// `Some` when `self_id` is a follower and a voter, and knows a leader other than itself.
pub fn follower_view(raft: &Raft, self_id: NodeId) -> Option<FollowerView> {
    let m = metrics_of(raft);
    if !m.state.is_follower() {
        return None;
    }
    let leader = m.current_leader.filter(|l| *l != self_id)?;
    let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
    if !voters.contains(&self_id) {
        return None;
    }
    let mut surviving_voters: Vec<NodeId> = voters.into_iter().filter(|v| *v != leader).collect();
    surviving_voters.sort_unstable();
    Some(FollowerView {
        leader,
        surviving_voters,
    })
}

/// Asks openraft to start a pre-vote now (the voters still apply every rule: lease, log).
pub async fn trigger_pre_vote(raft: &Raft) -> Result<(), String> {
    raft.trigger().elect(true).await.map_err(|e| e.to_string())
}

/// The node id of the leader an AppendEntries request comes from.
pub fn append_sender(req: &openraft::raft::AppendEntriesRequest<TypeConfig>) -> NodeId {
    use openraft::vote::RaftLeaderId;
    *req.vote.leader_id().node_id()
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::rt::AsyncRuntime;
    use openraft::type_config::alias::AsyncRuntimeOf;

    /// The states of the RNGs openraft would draw its next three choices from.
    async fn draws() -> Vec<String> {
        (0..3)
            .map(|_| format!("{:?}", AsyncRuntimeOf::<TypeConfig>::thread_rng()))
            .collect()
    }

    #[tokio::test]
    async fn openraft_random_choices_follow_the_seed() {
        let a = with_raft_seed(7, draws()).await;
        assert_eq!(
            a,
            with_raft_seed(7, draws()).await,
            "same seed, same choices"
        );
        assert_ne!(
            a,
            with_raft_seed(8, draws()).await,
            "another seed, other choices"
        );
        assert_ne!(a[0], a[1], "each draw advances the seed");
    }
}

//! Read barriers. Every read is served from the local state machine after a barrier chosen by
//! `?consistency=`:
//! - `linearizable` (default): ReadIndex — the leader confirms leadership with a heartbeat
//!   quorum and returns its commit index; this node waits until it has applied that index.
//!   Works on followers too (they ask the leader for the index, then read locally).
//! - `lease`: as above but the leader skips the heartbeat round while its lease is valid
//!   (assumes bounded clock drift).
//! - `stale`: no barrier; whatever this node has applied.
//!
//! `?min_index=N` additionally waits until index N is applied (read-your-writes after a write
//! that returned `X-Ledger-Index: N`). Waits are bounded; on expiry the answer is 503.
//!
//! Time travel into settled history needs no barrier (`history_settled`): effective event
//! timestamps never decrease along the log (the state machine stamps `max(leader stamp, last +
//! 1)`), so once a node has applied an entry stamped after `T`, every entry stamped at or
//! before `T` — acknowledged or yet to come — precedes it in the log and is applied here; and
//! the state at an index this node has applied is committed and immutable. Such a read has
//! one possible answer, the one a ReadIndex round would also give.
//!
//! An index beyond the cluster's commit index is a 400 `index_in_future` at once: no write
//! ever returned it, so waiting could only time out. "Beyond" is decided against what is
//! known to exist: an index this node has applied or holds in its log is waited for as
//! before (a follower may hold an entry the leader committed but not yet have applied it:
//! read-your-writes on followers keeps working); anything higher is compared with the
//! leader's commit index (the read index of this read, or one ReadIndex round for a `stale`
//! read).

use super::error::ApiError;
use super::AppState;
use crate::network::server::{leader_read_index, ReadIndexError, ReadIndexRequest};
use crate::network::wire::path;
use serde::Deserialize;
use std::time::Duration;

/// Longest a read waits for the local state machine to reach its barrier index.
pub const READ_WAIT_MS_MAX: u64 = 5_000;
/// Timeout of the read-index RPC to the leader.
const READ_INDEX_RPC_TIMEOUT_MS: u64 = 2_000;

/// Consistency mode of a read.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// ReadIndex through the leader.
    #[default]
    Linearizable,
    /// Leader lease.
    Lease,
    /// Local state, no barrier.
    Stale,
}

/// Query parameters shared by every read; any other parameter is a 400 `malformed_query`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// Consistency mode.
    #[serde(default)]
    pub consistency: Consistency,
    /// Wait until this log index is applied.
    pub min_index: Option<u64>,
}

/// True when the balance at time `at_us` or at index `at_index` can no longer change: this node
/// has applied an entry stamped after `at_us`, or index `at_index` itself. (Neither given: the
/// current state, never settled.)
pub fn history_settled(
    reader: &crate::sm::LedgerReader,
    at_us: Option<u64>,
    at_index: Option<u64>,
) -> bool {
    match (at_us, at_index) {
        (Some(t), _) => reader.last_timestamp_us() > t,
        (None, Some(i)) => reader.applied_index() >= i,
        (None, None) => false,
    }
}

/// Runs the barrier for `p`; returns once the local state machine may serve the read.
pub async fn barrier(s: &AppState, p: &ReadParams) -> Result<(), ApiError> {
    use crate::sabotage::{active, Sabotage};
    let mut commit_index = None;
    if p.consistency != Consistency::Stale && !active(Sabotage::StaleLinearizable) {
        let idx = read_index(s, p.consistency == Consistency::Lease).await?;
        wait_applied(s, idx).await?;
        commit_index = Some(idx);
    }
    if let Some(n) = p.min_index {
        refuse_future_index(s, n, commit_index).await?;
        wait_applied(s, n).await?;
    }
    Ok(())
}

/// 400 `index_in_future` when `index` is beyond the cluster's commit index. `commit_index` is
/// a read index this read already obtained, if any.
async fn refuse_future_index(
    s: &AppState,
    index: u64,
    commit_index: Option<u64>,
) -> Result<(), ApiError> {
    let local = crate::raft_types::metrics_of(&s.raft);
    let known = [
        Some(s.reader.applied_index()),
        local.last_log_index,
        local.local_committed.map(|l| l.index),
        commit_index,
    ];
    if known.iter().flatten().any(|k| index <= *k) {
        return Ok(());
    }
    // Not in this node's log: ask the leader (a full ReadIndex round, so a deposed leader
    // cannot call an index committed by its successor "in the future").
    let leader_commit = read_index(s, false).await?;
    if index <= leader_commit {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "index_in_future",
        format!("index {index} is beyond the commit index {leader_commit}; no write returned it"),
    )
    .with_details(serde_json::json!({"index": index, "commit_index": leader_commit})))
}

async fn read_index(s: &AppState, lease: bool) -> Result<u64, ApiError> {
    let res = if s.raft.is_leader() {
        leader_read_index(&s.raft, lease).await
    } else {
        let Some(leader) = s.raft.current_leader().await else {
            return Err(ApiError::unavailable(
                "no_leader",
                "no leader is known; retry shortly",
            ));
        };
        let node = crate::raft_types::member_addr(&s.raft, leader);
        let Some(node) = node else {
            return Err(ApiError::unavailable(
                "no_leader",
                "leader address unknown; retry shortly",
            ));
        };
        s.net
            .connection(leader, &node)
            .call::<_, Result<u64, ReadIndexError>>(
                path::READ_INDEX,
                &ReadIndexRequest { lease },
                Duration::from_millis(READ_INDEX_RPC_TIMEOUT_MS),
            )
            .await
            .map_err(|e| {
                ApiError::unavailable("leader_unavailable", format!("read index from leader: {e}"))
            })?
    };
    res.map_err(|e| ApiError::unavailable("no_leader", e.to_string()))
}

/// Waits until the local state machine has applied `index`.
pub async fn wait_applied(s: &AppState, index: u64) -> Result<(), ApiError> {
    let mut rx = s.reader.watch_applied();
    let reached = tokio::time::timeout(Duration::from_millis(READ_WAIT_MS_MAX), async {
        rx.wait_for(|applied| *applied >= index).await.is_ok()
    })
    .await;
    match reached {
        Ok(true) => Ok(()),
        _ => Err(ApiError::unavailable(
            "not_caught_up",
            format!("this node has not applied index {index} yet"),
        )
        .with_details(
            serde_json::json!({"min_index": index, "applied": s.reader.applied_index()}),
        )),
    }
}

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

/// Runs the barrier for `p`; returns once the local state machine may serve the read.
pub async fn barrier(s: &AppState, p: &ReadParams) -> Result<(), ApiError> {
    use crate::sabotage::{active, Sabotage};
    if p.consistency != Consistency::Stale && !active(Sabotage::StaleLinearizable) {
        let idx = read_index(s, p.consistency == Consistency::Lease).await?;
        wait_applied(s, idx).await?;
    }
    if let Some(n) = p.min_index {
        wait_applied(s, n).await?;
    }
    Ok(())
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

//! Wire codec for Raft RPC bodies and the Raft route paths. Authentication headers are
//! `auth::peer_mac`'s.

use serde::{de::DeserializeOwned, Serialize};

/// Content type of bincode bodies.
pub const CONTENT_TYPE: &str = "application/x-raftledger-bincode";

/// Route paths on the Raft listener.
pub mod path {
    /// AppendEntries.
    pub const APPEND: &str = "/raft/append";
    /// RequestVote.
    pub const VOTE: &str = "/raft/vote";
    /// Pre-vote (does not bump terms; avoids disruption by a partitioned node).
    pub const PRE_VOTE: &str = "/raft/pre-vote";
    /// Full snapshot, streamed.
    pub const SNAPSHOT: &str = "/raft/snapshot";
    /// TransferLeader notification from the old leader to the target.
    pub const TRANSFER_LEADER: &str = "/raft/transfer-leader";
    /// Leader returns the log index a follower must apply before a linearizable read.
    pub const READ_INDEX: &str = "/raft/read-index";
    /// Follower forwards client commands to the leader.
    pub const PROPOSE: &str = "/raft/propose";
}

/// Encodes a value for the wire.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).map_err(|e| e.to_string())
}

/// Largest body encoded or decoded on a runtime thread; larger AppendEntries bodies are
/// (de)coded on the blocking pool. 256 KiB takes well under a millisecond.
pub const INLINE_CODEC_BYTES_MAX: usize = 256 * 1024;

/// Decodes a value from the wire.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    bincode::serde::decode_from_slice(b, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| e.to_string())
}

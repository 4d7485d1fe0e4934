//! What applying one command produced. Stored in the idempotency table so that a retry with the
//! same id returns exactly the original result (same index, event_seq and timestamp).

use crate::rejection::Rejection;
use crate::types::TimestampUs;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Result of one command as first applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The command id (idempotency key).
    pub command_id: CompactString,
    /// Raft log index the command was first applied at.
    pub index: u64,
    /// Effective leader timestamp of that first application.
    pub timestamp_us: TimestampUs,
    /// Accepted with events, or rejected.
    pub outcome: Outcome,
    /// True when this result was returned from the idempotency table for a retry
    /// (the returned body is otherwise identical to the original).
    pub replayed: bool,
}

/// Accepted (with the range of events emitted) or a named rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The command took effect.
    Accepted {
        /// Sequence of the first event emitted (the one clients see as `event_seq`).
        first_event_seq: u64,
        /// Sequence of the last event emitted (== first for single-event commands).
        last_event_seq: u64,
        /// For transfers: `posted` or `pending`; for two-phase completion: `posted`/`voided`;
        /// for status commands: the new status; for batches: `"batch"`.
        status: CompactString,
        /// For batches: each inner command's result, in order. Empty otherwise.
        inner: Vec<CommandResult>,
    },
    /// The command was refused; nothing changed.
    Rejected(Rejection),
}

impl Outcome {
    /// True when accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted { .. })
    }
}

//! `Batch`: several commands at one log index and one effective time, either independent
//! (non-atomic) or all-or-nothing (atomic, undone through the execution journal).

use super::{Done, Executed};
use crate::command::{Command, CommandBody};
use crate::exec::Exec;
use crate::idempotency;
use crate::rejection::Rejection;

/// Most commands one batch may hold: bounds the work (and undo journal) of one log entry.
/// Equal to the node API's client batch limit, so a request the API admits is never refused
/// here as `invalid_batch`.
pub const BATCH_COMMANDS_MAX: usize = 4096;

/// Executes a batch. `InvalidBatch` when empty, longer than [`BATCH_COMMANDS_MAX`], holding a
/// batch or a tick, or reusing the batch's own id. Each inner command runs under its own
/// idempotency key with the batch's index and time (its own `timestamp_us` is ignored).
/// Atomic: the first inner result that is a rejection (fresh or replayed) undoes the whole batch
/// and yields `BatchAborted { failed_index, failed_code }`.
pub(crate) fn execute(
    x: &mut Exec<'_>,
    batch_id: &str,
    atomic: bool,
    commands: &[Command],
) -> Executed {
    let malformed = commands.is_empty()
        || commands.len() > BATCH_COMMANDS_MAX
        || commands.iter().any(|inner| {
            inner.id == batch_id
                || matches!(inner.body, CommandBody::Batch { .. } | CommandBody::Tick)
        });
    if malformed {
        return Err(Rejection::InvalidBatch);
    }
    let mark = x.mark();
    let mut inner = Vec::with_capacity(commands.len());
    for (position, command) in commands.iter().enumerate() {
        let result = idempotency::run(x, &command.id, &command.body);
        if atomic {
            if let crate::outcome::Outcome::Rejected(rejection) = &result.outcome {
                let failed_code = rejection.code().to_owned();
                x.rollback(mark);
                return Err(Rejection::BatchAborted {
                    failed_index: u32::try_from(position).unwrap_or(u32::MAX),
                    failed_code,
                });
            }
        }
        inner.push(result);
    }
    Ok(Done {
        status: "batch",
        inner,
    })
}

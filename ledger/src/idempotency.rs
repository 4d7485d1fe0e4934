//! The idempotency table (invariant L3): command id -> fingerprint of the body and the result of
//! its first application. Owns the rule every non-Tick command goes through: validate the id,
//! replay a stored result, refuse a reused key, or execute and record.

use crate::command::CommandBody;
use crate::exec::Exec;
use crate::outcome::{CommandResult, Outcome};
use crate::rejection::Rejection;
use crate::types::validate_command_id;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// The full persisted idempotency entry for a command id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyEntry {
    /// sha256 of the bincode (serde, standard config) encoding of the command body.
    pub fingerprint: [u8; 32],
    /// The result of the first application (`replayed: false`).
    pub result: CommandResult,
}

/// sha256 of the bincode (serde, standard config) encoding of a command body. Two commands with
/// the same id are the same command exactly when their fingerprints are equal.
pub fn fingerprint(body: &CommandBody) -> [u8; 32] {
    crate::hash::fingerprint(body)
}

/// The answer to a command whose id `entry` records, given the fingerprint of its body: the
/// stored first result marked `replayed` when the body is the same, else
/// `IdempotencyKeyReused` (the caller labels that rejection with its own index and time).
pub fn retry_answer(
    entry: &IdempotencyEntry,
    fingerprint: &[u8; 32],
) -> Result<CommandResult, Rejection> {
    if entry.fingerprint != *fingerprint {
        return Err(Rejection::IdempotencyKeyReused);
    }
    Ok(CommandResult {
        replayed: true,
        ..entry.result.clone()
    })
}

/// Runs one command (top-level or inside a batch) under the idempotency rule:
/// - invalid id: `Rejected(InvalidCommand)`, not recorded;
/// - known id, same body: the stored result with `replayed: true`, nothing changes;
/// - known id, other body: `Rejected(IdempotencyKeyReused)`, not recorded (the original stays);
/// - otherwise: execute; a rejection undoes everything the command did; the result, accepted or
///   rejected, is recorded.
pub(crate) fn run(x: &mut Exec<'_>, command_id: &str, body: &CommandBody) -> CommandResult {
    let result = |x: &Exec<'_>, outcome| CommandResult {
        command_id: command_id.into(),
        index: x.index(),
        timestamp_us: x.ts(),
        outcome,
        replayed: false,
    };
    if validate_command_id(command_id).is_err() {
        let reason = "command id must be 1..128 printable ascii characters".to_owned();
        return result(x, Outcome::Rejected(Rejection::InvalidCommand { reason }));
    }
    let fingerprint = fingerprint(body);
    let known = x.state().idempotency(command_id);
    if let Some(entry) = known.filter(|_| !crate::sabotage::double_apply()) {
        return retry_answer(&entry, &fingerprint)
            .unwrap_or_else(|rejection| result(x, Outcome::Rejected(rejection)));
    }
    let mark = x.mark();
    let outcome = match crate::state::apply_body(x, command_id, body) {
        Ok(done) => {
            let (first_event_seq, last_event_seq) = x.seq_range_since(mark);
            Outcome::Accepted {
                first_event_seq,
                last_event_seq,
                status: CompactString::const_new(done.status),
                inner: done.inner,
            }
        }
        Err(rejection) => {
            x.rollback(mark);
            Outcome::Rejected(rejection)
        }
    };
    let result = result(x, outcome);
    let entry = IdempotencyEntry {
        fingerprint,
        result: result.clone(),
    };
    x.put_idempotency(command_id, entry);
    result
}

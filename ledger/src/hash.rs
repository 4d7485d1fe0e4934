//! Hashing: command-body fingerprints, the rolling applied hash, and the full state digest.
//!
//! Everything is sha256 over the bincode 2 (serde, standard config) encoding, fed straight into
//! the hasher so nothing is buffered.

use crate::command::CommandBody;
use crate::event::Event;
use crate::outcome::CommandResult;
use crate::state::LedgerState;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Domain tag hashed first into every state digest, so a format change changes every hash.
const STATE_DIGEST_TAG: &[u8] = b"raftledger/state/v1";

/// Feeds the bincode encoding of `value` into `hasher`.
fn feed<T: Serialize + ?Sized>(hasher: &mut Sha256, value: &T) {
    // Writing into a hasher cannot fail, and every ledger type is plain serde data (no maps of
    // unknown length, no non-string keys), so encoding cannot fail either: a failure here is a
    // programming error, not bad input.
    bincode::serde::encode_into_std_write(value, hasher, bincode::config::standard())
        .expect("bincode encoding of ledger types is infallible");
}

/// sha256 of the bincode encoding of a command body: the idempotency fingerprint.
pub(crate) fn fingerprint(body: &CommandBody) -> [u8; 32] {
    let mut hasher = Sha256::new();
    feed(&mut hasher, body);
    hasher.finalize().into()
}

/// Next rolling applied hash: `sha256(prev || bincode(result) || bincode(events))`.
pub(crate) fn chain_applied(prev: &[u8; 32], result: &CommandResult, events: &[Event]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    feed(&mut hasher, result);
    feed(&mut hasher, events);
    hasher.finalize().into()
}

/// Digest of accounts, transfers, idempotency table and counters, in key order.
/// The deadline index is derived from transfers and the applied hash is history, so neither is
/// included.
pub(crate) fn state_digest(state: &LedgerState) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(STATE_DIGEST_TAG);
    feed(&mut hasher, &(state.accounts.len() as u64));
    for account in state.accounts.values() {
        feed(&mut hasher, account);
    }
    feed(&mut hasher, &(state.transfers.len() as u64));
    for (_, transfer) in state.transfers.sorted() {
        feed(&mut hasher, transfer);
    }
    feed(&mut hasher, &(state.idempotency.len() as u64));
    for (key, entry) in state.idempotency.sorted() {
        feed(&mut hasher, key);
        feed(&mut hasher, entry);
    }
    feed(&mut hasher, &state.last_event_seq);
    feed(&mut hasher, &state.last_timestamp_us);
    hasher.finalize().into()
}

//! Hashing: command-body fingerprints, the rolling applied hash, and the full state digest
//! (accounts in order, transfers and idempotency entries as order-free multiset sums).
//!
//! Everything is sha256 over the bincode 2 (serde, standard config) encoding, fed straight into
//! the hasher so nothing is buffered.

use crate::command::CommandBody;
use crate::event::Event;
use crate::outcome::CommandResult;
use crate::state::LedgerState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain tag hashed first into every state digest, so a format change changes every hash.
const STATE_DIGEST_TAG: &[u8] = b"raftledger/state/v2";

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

/// Digest of accounts, transfers, idempotency table and counters.
/// The deadline index is derived from transfers and the applied hash is history, so neither is
/// included.
pub(crate) fn state_digest(state: &LedgerState) -> [u8; 32] {
    let mut digest = StateDigest::new();
    let accounts = state.accounts().try_for_each(|a| digest.account(a));
    // Accounts iterate from an ordered map, so they always come in order.
    accounts.expect("ledger state iterates its accounts in id order");
    state.transfers().for_each(|t| digest.transfer(&t));
    let entries = state.idempotency_entries();
    entries.for_each(|(id, e)| digest.idempotency(&id, &e));
    digest.finish(state.last_event_seq(), state.last_timestamp_us())
}

/// Accounts fed to a [`StateDigest`] out of order (or twice): a state that yields them cannot
/// be the one its digest describes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state digest: account {0} is not after the previous one")]
pub struct DigestOrderError(String);

/// A multiset hash: the sum modulo 2^256 of the SHA-256 of each element (an additive
/// multiset hash), so elements may be added in any order, and adding one twice changes the
/// result. It detects divergence and corruption; at this modulus it is not meant to resist an
/// adversary who chooses records to collide (nobody outside the cluster writes them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct MultisetSum {
    limbs: [u64; 4],
    count: u64,
}

impl MultisetSum {
    fn add<T: Serialize + ?Sized>(&mut self, tag: &[u8], value: &T) {
        let mut hasher = Sha256::new();
        hasher.update(tag);
        feed(&mut hasher, value);
        self.add_hash(hasher.finalize().into());
    }

    /// Adds the element whose bincode encoding is `encoded`: the same as `add` of the value.
    fn add_encoded(&mut self, tag: &[u8], encoded: &[u8]) {
        let mut hasher = Sha256::new();
        hasher.update(tag);
        hasher.update(encoded);
        self.add_hash(hasher.finalize().into());
    }

    fn add_hash(&mut self, h: [u8; 32]) {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut part = [0u8; 8];
            part.copy_from_slice(&h[i * 8..i * 8 + 8]);
            *limb = u64::from_le_bytes(part);
        }
        self.combine(&Self { limbs, count: 1 });
    }

    /// Adds every element of `other` (the sum of two multisets' sums is their union's).
    fn combine(&mut self, other: &Self) {
        let mut carry = 0u128;
        for (limb, add) in self.limbs.iter_mut().zip(other.limbs) {
            let sum = u128::from(*limb) + u128::from(add) + carry;
            *limb = sum as u64;
            carry = sum >> 64;
        }
        self.count += other.count;
    }
}

/// The multiset part of a state digest for finished history kept outside the ledger: a node
/// sums it as it appends records to disk, and a snapshot that references those records instead
/// of holding them carries it. Adding the same records to a [`StateDigest`] one by one gives the
/// same digest as adding this.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryDigest {
    transfers: MultisetSum,
    idempotency: MultisetSum,
}

impl HistoryDigest {
    /// Adds a transfer (each once).
    pub fn transfer(&mut self, transfer: &crate::account::Transfer) {
        self.transfers.add(b"transfer", transfer);
    }

    /// Adds an idempotency entry (each command id once).
    pub fn idempotency(&mut self, command_id: &str, entry: &crate::idempotency::IdempotencyEntry) {
        self.idempotency.add(b"idempotency", &(command_id, entry));
    }

    /// Adds a transfer given as its bincode encoding (standard config, as the ledger encodes
    /// everything it hashes): the same as [`Self::transfer`] of the decoded transfer, for a
    /// caller that encoded it already.
    pub fn transfer_encoded(&mut self, encoded: &[u8]) {
        self.transfers.add_encoded(b"transfer", encoded);
    }

    /// Adds an idempotency entry given as the bincode encoding of `(command_id, entry)`: the
    /// same as [`Self::idempotency`] of the decoded pair.
    pub fn idempotency_encoded(&mut self, encoded: &[u8]) {
        self.idempotency.add_encoded(b"idempotency", encoded);
    }

    /// Adds every record of `other` (disjoint from this one's).
    pub fn combine(&mut self, other: &Self) {
        self.transfers.combine(&other.transfers);
        self.idempotency.combine(&other.idempotency);
    }

    /// Records summed (transfers, idempotency entries).
    pub fn counts(&self) -> (u64, u64) {
        (self.transfers.count, self.idempotency.count)
    }
}

/// The full state digest, computed incrementally: accounts in strictly increasing id order
/// (hashed in sequence), transfers and idempotency entries in any order (each a multiset sum,
/// so a node can stream them from wherever they live), then the counts and counters. A node
/// verifying a snapshot feeds it while streaming the file, so the state never has to be in
/// memory at once.
pub struct StateDigest {
    accounts: Sha256,
    account_count: u64,
    last_account: Option<String>,
    history: HistoryDigest,
}

impl Default for StateDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl StateDigest {
    /// An empty digest.
    pub fn new() -> Self {
        Self {
            accounts: Sha256::new(),
            account_count: 0,
            last_account: None,
            history: HistoryDigest::default(),
        }
    }

    /// Feeds the next account (ids strictly increasing).
    pub fn account(&mut self, account: &crate::account::Account) -> Result<(), DigestOrderError> {
        let id = account.id.as_str();
        if self.last_account.as_deref().is_some_and(|last| last >= id) {
            return Err(DigestOrderError(id.to_owned()));
        }
        self.last_account = Some(id.to_owned());
        self.account_count += 1;
        feed(&mut self.accounts, account);
        Ok(())
    }

    /// Adds a transfer (any order, each once).
    pub fn transfer(&mut self, transfer: &crate::account::Transfer) {
        self.history.transfer(transfer);
    }

    /// Adds an idempotency entry (any order, each command id once).
    pub fn idempotency(&mut self, command_id: &str, entry: &crate::idempotency::IdempotencyEntry) {
        self.history.idempotency(command_id, entry);
    }

    /// Adds records summed elsewhere (disjoint from those fed one by one).
    pub fn history(&mut self, history: &HistoryDigest) {
        self.history.combine(history);
    }

    /// The digest over everything fed and the counters.
    pub fn finish(self, last_event_seq: u64, last_timestamp_us: u64) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(STATE_DIGEST_TAG);
        hasher.update(self.accounts.finalize());
        feed(&mut hasher, &self.account_count);
        for sum in [self.history.transfers, self.history.idempotency] {
            feed(&mut hasher, &sum.limbs);
            feed(&mut hasher, &sum.count);
        }
        feed(&mut hasher, &last_event_seq);
        feed(&mut hasher, &last_timestamp_us);
        hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountId, Command, CommandBody, Currency};

    /// A ledger with accounts, transfers (one refused) and their idempotency entries.
    fn ledger() -> LedgerState {
        let usd = Currency::parse("USD").unwrap();
        let id = |s: &str| AccountId::parse(s).unwrap();
        let mut bodies = vec![];
        for a in ["a", "b"] {
            bodies.push(CommandBody::OpenAccount {
                account: id(a),
                currency: usd,
                overdraft_limit: 0,
                metadata: "{}".to_owned(),
            });
        }
        bodies.push(CommandBody::Deposit {
            account: id("a"),
            amount: 100,
        });
        for amount in [10, 20, 500, 30] {
            bodies.push(CommandBody::Transfer {
                from: id("a"),
                to: id("b"),
                amount,
                pending: false,
                timeout_s: None,
                memo: None,
            });
        }
        let mut ledger = LedgerState::new();
        for (i, body) in bodies.into_iter().enumerate() {
            let cmd = Command {
                id: format!("c{i}"),
                timestamp_us: i as u64 + 1,
                body,
            };
            ledger.execute(i as u64 + 1, &cmd);
        }
        ledger
    }

    #[test]
    fn records_summed_from_their_encoding_sum_as_the_records() {
        let ledger = ledger();
        let (mut typed, mut encoded) = (HistoryDigest::default(), HistoryDigest::default());
        for t in ledger.transfers() {
            typed.transfer(&t);
            encoded.transfer_encoded(&encode(&*t));
        }
        for (id, e) in ledger.idempotency_entries() {
            typed.idempotency(&id, &e);
            encoded.idempotency_encoded(&encode(&(&*id, &*e)));
        }
        assert!(typed.counts().0 > 0 && typed.counts().1 > 0);
        assert_eq!(encoded, typed);
        // A different byte is a different record.
        let mut other = HistoryDigest::default();
        let mut bytes = encode(&*ledger.transfers().next().unwrap());
        *bytes.last_mut().unwrap() ^= 1;
        other.transfer_encoded(&bytes);
        assert_ne!(other.transfers, typed.transfers);
    }

    fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    #[test]
    fn history_summed_apart_gives_the_same_state_digest() {
        let ledger = ledger();
        let whole = state_digest(&ledger);
        // Half the records summed into two history digests, the rest fed one by one.
        let (mut early, mut late) = (HistoryDigest::default(), HistoryDigest::default());
        let mut digest = StateDigest::new();
        ledger.accounts().for_each(|a| digest.account(a).unwrap());
        for (i, t) in ledger.transfers().enumerate() {
            match i % 3 {
                0 => early.transfer(&t),
                1 => late.transfer(&t),
                _ => digest.transfer(&t),
            }
        }
        for (i, (id, e)) in ledger.idempotency_entries().enumerate() {
            match i % 2 {
                0 => late.idempotency(&id, &e),
                _ => digest.idempotency(&id, &e),
            }
        }
        assert!(early.counts().0 > 0 && late.counts().1 > 0);
        early.combine(&late);
        digest.history(&early);
        assert_eq!(
            digest.finish(ledger.last_event_seq(), ledger.last_timestamp_us()),
            whole
        );
        // A record summed twice is a different state.
        let mut twice = StateDigest::new();
        ledger.accounts().for_each(|a| twice.account(a).unwrap());
        ledger.transfers().for_each(|t| twice.transfer(&t));
        ledger
            .idempotency_entries()
            .for_each(|(id, e)| twice.idempotency(&id, &e));
        let first = ledger.transfers().next().unwrap();
        twice.transfer(&first);
        let twice = twice.finish(ledger.last_event_seq(), ledger.last_timestamp_us());
        assert_ne!(twice, whole);
    }
}

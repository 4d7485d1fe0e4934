//! The records of the cold history file and their keys: `ColdRecord` (what a frame's payload
//! decodes to), `ColdRecordRef` (the borrowed form appends encode), `Kind` and `key_hash`, the
//! 64-bit hash the index runs are sorted by.

use super::super::codec::FORMAT_V1;
use ledger::{HistoryDigest, IdempotencyEntry, Transfer};
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};

/// One record of the cold history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ColdRecord {
    /// A finished transfer.
    Transfer(Transfer),
    /// An idempotency entry and its command id.
    Idempotency(String, IdempotencyEntry),
}

impl ColdRecord {
    pub(super) fn key(&self) -> (Kind, &str) {
        match self {
            Self::Transfer(t) => (Kind::Transfer, &t.id),
            Self::Idempotency(id, _) => (Kind::Idempotency, id),
        }
    }
}

/// A record to append, borrowed (serialized exactly like the `ColdRecord` it decodes to, so
/// appending copies nothing but bytes).
#[derive(Serialize)]
pub(super) enum ColdRecordRef<'a> {
    Transfer(&'a Transfer),
    Idempotency(&'a str, &'a IdempotencyEntry),
}

impl ColdRecord {
    /// Adds this record to `digest`.
    pub(crate) fn add_to(&self, digest: &mut HistoryDigest) {
        match self {
            Self::Transfer(t) => digest.transfer(t),
            Self::Idempotency(id, e) => digest.idempotency(id, e),
        }
    }
}

impl<'a> ColdRecordRef<'a> {
    /// Adds this record to `digest`.
    pub(super) fn add_to(&self, digest: &mut HistoryDigest) {
        match self {
            Self::Transfer(t) => digest.transfer(t),
            Self::Idempotency(id, e) => digest.idempotency(id, e),
        }
    }

    pub(super) fn key(&self) -> (Kind, &'a str) {
        match self {
            Self::Transfer(t) => (Kind::Transfer, &t.id),
            Self::Idempotency(id, _) => (Kind::Idempotency, id),
        }
    }
}

/// Which key space a record's id belongs to (transfer and command ids may be equal).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(super) enum Kind {
    Transfer,
    Idempotency,
}

impl Kind {
    /// The kind of an encoded record without decoding it: the byte after the format version is
    /// bincode's variant index of `ColdRecord` (one byte for small indexes).
    pub(super) fn of_payload(payload: &[u8]) -> Option<Self> {
        match payload {
            [FORMAT_V1, 0, ..] => Some(Self::Transfer),
            [FORMAT_V1, 1, ..] => Some(Self::Idempotency),
            _ => None,
        }
    }
}

/// 64-bit hash of a record key (SipHash with fixed keys: the index is local, never shared, and
/// the hash is stored in its run files, so it must not change between builds).
pub(super) fn key_hash(kind: Kind, id: &str) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    kind.hash(&mut h);
    id.hash(&mut h);
    h.finish()
}

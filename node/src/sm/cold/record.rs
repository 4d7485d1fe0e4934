//! The records of the cold history file and their keys: `ColdRecord` (what a frame's payload
//! decodes to), `ColdRecordRef` (the borrowed form appends encode), `Kind` and `key_hash`, the
//! 64-bit hash the index runs are sorted by, and `Keys` (may an append repeat one).

use super::super::codec::{invalid_data, FORMAT_V1};
use ledger::{HistoryDigest, IdempotencyEntry, Transfer};
use serde::{Deserialize, Serialize};

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
    /// Adds this record to `digest` from `payload`, its encoding (`FORMAT_V1`, the variant
    /// index, then the fields: exactly the bincode the digest sums), without encoding it again.
    pub(super) fn add_encoded_to(
        &self,
        payload: &[u8],
        digest: &mut HistoryDigest,
    ) -> std::io::Result<()> {
        let kind = self.key().0;
        if Kind::of_payload(payload) != Some(kind) {
            return Err(invalid_data(format!(
                "a {kind:?} record encoded as another"
            )));
        }
        match kind {
            Kind::Transfer => digest.transfer_encoded(&payload[2..]),
            Kind::Idempotency => digest.idempotency_encoded(&payload[2..]),
        }
        Ok(())
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

/// 64-bit hash of a record key: XXH3 of the id seeded with the kind (a fixed, specified
/// algorithm: the hash is stored in the run files, so it must not change between builds; the
/// index is local, never shared, so it needs no keyed hash; XXH3 costs a fraction of SipHash,
/// which took a tenth of every history move).
pub(super) fn key_hash(kind: Kind, id: &str) -> u64 {
    let seed = match kind {
        Kind::Transfer => 1,
        Kind::Idempotency => 2,
    };
    xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), seed)
}

/// Whether the records of one append may repeat a key (then the first one is kept).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Keys {
    /// Each key at most once, by construction: no set of them is kept.
    Distinct,
    /// Records from a file or a caller that may repeat one.
    MayRepeat,
}

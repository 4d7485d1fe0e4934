//! Key layouts of the sled trees and the small row types stored under them. Keys are
//! big-endian so sled's byte order is numeric order; account-keyed trees put a `0x00` after the
//! account id (ids never contain it), so one account's rows form one contiguous range.

use ledger::{AccountId, TimestampUs};
use serde::{Deserialize, Serialize};

/// Separator between the account id and the rest of an account-keyed key.
const ACCOUNT_SEPARATOR: u8 = 0x00;

/// Names of the sled trees (see the module docs of `sm` for what each holds).
pub(crate) mod tree {
    /// The one sled tree holding every table; each table is a one-byte key prefix.
    pub(crate) const LEDGER: &str = "ledger";
    /// Scalars: layout version, applied state, snapshot pointer, install marker.
    pub(crate) const META: u8 = 0;
    /// First event seq (BE) -> `Vec<Event>`: a block of one entry's events, contiguous seqs.
    pub(crate) const EVENTS: u8 = 4;
    /// (account, ts BE, seq BE) -> `PostingRow`: one row per event concerning the account; the
    /// time-travel index and the per-account event listing.
    pub(crate) const POSTINGS: u8 = 5;
    /// Log index (BE) -> last effective timestamp applied at that index.
    pub(crate) const INDEX_TS: u8 = 7;
}

/// Keys in the `meta` tree.
pub(crate) mod meta_key {
    /// Layout version of the database (`LAYOUT_VERSION`); a database without it is refused.
    pub(crate) const LAYOUT: &[u8] = b"layout";
    /// `AppliedMeta`: last applied log id, membership, ledger scalars.
    pub(crate) const APPLIED: &[u8] = b"applied";
    /// `SnapshotPointer`: the current snapshot's meta and file name.
    pub(crate) const SNAPSHOT: &[u8] = b"snapshot";
    /// `SnapshotPointer` of a snapshot being installed; present only mid-install.
    pub(crate) const INSTALLING: &[u8] = b"installing";
}

/// Layout of the state machine database this code reads and writes. Version 2 keeps accounts,
/// transfers and the idempotency table out of sled (they live in memory, in snapshots, and are
/// rebuilt by replaying the log) and folds per-account event listings into `postings`.
pub(crate) const LAYOUT_VERSION: u32 = 2;

/// A row of the `postings` tree: the account's posted balance right after one event concerning
/// it (a `TransferPosted` leg sets it; every other event repeats the balance it left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PostingRow {
    /// Raft log index of the event.
    pub(crate) index: u64,
    /// Posted balance after the event.
    pub(crate) balance_after: i64,
}

/// Big-endian u64 key (event seq, log index).
pub(crate) fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Reads a big-endian u64 from the last 8 bytes of `key`.
pub(crate) fn u64_suffix(key: &[u8]) -> Option<u64> {
    let start = key.len().checked_sub(8)?;
    let bytes: [u8; 8] = key[start..].try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// `account ++ 0x00`: the common prefix of one account's rows.
pub(crate) fn account_prefix(account: &AccountId) -> Vec<u8> {
    let mut key = Vec::with_capacity(account.as_str().len() + 17);
    key.extend_from_slice(account.as_str().as_bytes());
    key.push(ACCOUNT_SEPARATOR);
    key
}

/// `postings` key: `account ++ 0x00 ++ ts BE ++ seq BE`.
pub(crate) fn posting_key(account: &AccountId, ts_us: TimestampUs, seq: u64) -> Vec<u8> {
    let mut key = account_prefix(account);
    key.extend_from_slice(&ts_us.to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Splits the `(ts, seq)` suffix off a `postings` key.
pub(crate) fn posting_key_parts(key: &[u8]) -> Option<(TimestampUs, u64)> {
    let start = key.len().checked_sub(16)?;
    let ts = u64_suffix(&key[..start + 8])?;
    let seq = u64_suffix(key)?;
    Some((ts, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posting_keys_sort_by_account_then_time_then_seq() {
        let a = AccountId::parse("a").unwrap();
        let ab = AccountId::parse("ab").unwrap();
        let k1 = posting_key(&a, 5, 9);
        let k2 = posting_key(&a, 6, 1);
        let k3 = posting_key(&ab, 0, 0);
        assert!(
            k1 < k2 && k2 < k3,
            "an account's rows are contiguous and time-ordered"
        );
        assert_eq!(posting_key_parts(&k1), Some((5, 9)));
        assert!(posting_key(&a, u64::MAX, u64::MAX) < k3);
        assert_eq!(u64_suffix(&posting_key(&a, 7, 42)), Some(42));
    }
}

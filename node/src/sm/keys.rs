//! Key layouts of the sled tables and the layout version. Keys are big-endian so sled's byte
//! order is numeric order.

/// Names of the sled trees (see the module docs of `sm` for what each holds).
pub(crate) mod tree {
    /// The one sled tree holding every table; each table is a one-byte key prefix.
    pub(crate) const LEDGER: &str = "ledger";
    /// Scalars: layout version, applied state, snapshot pointer, install marker.
    pub(crate) const META: u8 = 0;
    /// First event seq (BE) -> `Vec<Event>`: a block of one entry's events, contiguous seqs.
    pub(crate) const EVENTS: u8 = 4;
    /// Account postings pages and their time / log index keys (see `postings::pages`).
    pub(crate) const POSTINGS: u8 = 5;
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

/// Layout of the state machine database this code reads and writes. Version 2 kept accounts,
/// transfers and the idempotency table out of sled (they live in memory, in snapshots, and are
/// rebuilt by replaying the log); version 3 also drops the `postings` and `index_ts` tables
/// (the postings index lives in memory, rebuilt from the event blocks); version 4 keeps the
/// finished history that left memory in the cold history file beside sled
/// (`<dir>/history`), whose records the snapshot pointer relies on; version 5 brings the
/// postings back as pages (a row per page of one account's postings, not per posting), so a
/// restart no longer rebuilds them from every event; version 6 compresses: event blocks and
/// postings pages are stored packed (`codec::encode_packed`), and the cold history's records
/// are framed in compressed blocks (`cold::block`); version 7 hashes the cold index's keys
/// with XXH3 instead of SipHash (`cold::record::key_hash`).
pub(crate) const LAYOUT_VERSION: u32 = 7;

/// Big-endian u64 key (event seq, log index).
pub(crate) fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

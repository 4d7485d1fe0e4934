//! openraft `RaftStateMachine` over sled: the ledger state, its history indexes, snapshots and
//! the read side the HTTP API uses.
//!
//! The in-memory [`ledger::LedgerState`] is the live state (accounts, transfers, the
//! idempotency table). It is persisted only in snapshot files; after a restart the store loads
//! the current snapshot and reports its log id as applied, and openraft replays the durable log
//! (the WAL) from there. sled holds the append-only history that time travel and event streams
//! read, written per apply chunk; entries whose history is already in sled are replayed in
//! memory only. Per-apply durability of sled is not needed (the log is durable and replayed);
//! sled is made durable explicitly before the log may be purged (when a snapshot is built).
//!
//! Why not accounts/transfers/idempotency rows in sled: they are derived from the log, and
//! writing them per apply cost 6 of 9 sled rows per transfer (half the leader's CPU). The
//! guarantee is unchanged: state = snapshot + replay of the committed log, deterministic.
//!
//! Files:
//! - `store`             — [`StateMachineStore`] and its `RaftStateMachine` impl.
//! - `apply`             — execute entries, commit their history rows in one batch, respond.
//! - `write_set`         — the rows one apply produces (events, postings, index timestamps).
//! - `reader`            — [`LedgerReader`], the HTTP layer's read handle.
//! - `history`           — time travel and event listings over the history tables.
//! - `snapshot_file`     — [`SnapshotFile`] and the snapshot file format.
//! - `snapshot_build`    — consistent snapshots while apply continues.
//! - `snapshot_install`  — verify and install a snapshot atomically for readers, crash-safely.
//! - `load`              — open: ledger from the snapshot, history mark, resume an install.
//! - `meta`, `keys`, `codec`, `ns`, `shared` — sled tables and records, key layouts, value
//!   encoding, table prefixes, shared state.
//!
//! # sled layout (database at `<dir>/sm`, layout version 2)
//!
//! Every value starts with a format-version byte (`1`), followed by bincode 2 (serde API,
//! standard config). Integers in keys are big-endian so byte order is numeric order; account
//! ids (which never contain `0x00`) are followed by `0x00` so one account's rows are contiguous.
//! All tables share one sled tree, each under a one-byte key prefix.
//!
//! | table      | key                         | value                                            |
//! |------------|-----------------------------|--------------------------------------------------|
//! | `meta`     | `layout`                    | layout version (a database of another layout is refused) |
//! |            | `applied`                   | history mark: last log id with rows in sled, membership, last event seq, last timestamp, applied hash |
//! |            | `snapshot`                  | current snapshot: meta + file name               |
//! |            | `installing`                | snapshot being installed (crash marker)          |
//! | `events`   | first seq of the block      | `Vec<Event>`: up to 64 consecutive events of one entry |
//! | `postings` | account, 0x00, ts_us, seq   | `{index, balance_after}` — one row per event concerning the account |
//! | `index_ts` | log index                   | last effective timestamp after that entry        |
//!
//! All rows written by one apply call (up to `APPLY_CHUNK_ENTRIES_MAX` entries) and the
//! `applied` meta go in one atomic batch. The tables are append-only, which is what lets a
//! snapshot cut them consistently by seq/index while apply continues (a block never spans two
//! entries, and a cut is always between entries). Per transfer that is two posting rows (one
//! per leg) plus its share of an event block.
//!
//! Time travel: the balance at time T is the last `postings` row at or before
//! `(account, T, u64::MAX)`; at log index N it is the same lookup with T = the `index_ts` value
//! of the last entry at or before N (effective timestamps strictly increase with the index, so
//! this is exact). Snapshot files live in `<dir>/snapshots`; see `snapshot_file` for the format.

mod apply;
mod codec;
mod history;
mod keys;
mod load;
mod meta;
mod ns;
mod reader;
mod shared;
mod snapshot_build;
mod snapshot_file;
mod snapshot_install;
mod store;
mod write_set;

#[cfg(test)]
mod recovery_tests;

pub use history::{BalanceAt, EVENTS_PAGE_MAX};
pub use reader::LedgerReader;
pub use snapshot_build::LedgerSnapshotBuilder;
pub use snapshot_file::SnapshotFile;
pub use store::StateMachineStore;

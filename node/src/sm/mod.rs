//! openraft `RaftStateMachine` over sled: the ledger state, its history indexes, snapshots and
//! the read side the HTTP API uses.
//!
//! The in-memory [`ledger::LedgerState`] is the live state; sled makes it survive restarts and
//! holds the history (events, postings) that time travel and event streams read. Per-apply
//! durability is not needed: the Raft log (the WAL) is durable, and after a crash the node
//! replays it from the last applied index recorded here. Only before the log is purged (when a
//! snapshot is built) is sled made durable explicitly.
//!
//! Files:
//! - `store`             — [`StateMachineStore`] and its `RaftStateMachine` impl.
//! - `apply`             — execute entries, commit their writes in one transaction, respond.
//! - `write_set`         — the rows one apply produces and the multi-tree transaction.
//! - `reader`            — [`LedgerReader`], the HTTP layer's read handle.
//! - `history`           — time travel and event listings over the history trees.
//! - `snapshot_file`     — [`SnapshotFile`] and the snapshot file format.
//! - `snapshot_build`    — consistent snapshots while apply continues.
//! - `snapshot_install`  — verify and install a snapshot atomically for readers, crash-safely.
//! - `load`              — open: load, resume an interrupted install, fall back to the snapshot.
//! - `meta`, `keys`, `codec`, `shared` — sled trees and records, key layouts, value encoding,
//!   shared state.
//!
//! # sled layout (database at `<dir>/sm`)
//!
//! Every value starts with a format-version byte (`1`), followed by bincode 2 (serde API,
//! standard config). Integers in keys are big-endian so byte order is numeric order; account
//! ids (which never contain `0x00`) are followed by `0x00` so one account's rows are contiguous.
//!
//! | tree             | key                                  | value                                  |
//! |------------------|--------------------------------------|----------------------------------------|
//! | `meta`           | `applied`                            | last applied log id, membership, last event seq, last timestamp, applied hash |
//! |                  | `snapshot`                           | current snapshot: meta + file name     |
//! |                  | `installing`                         | snapshot being installed (crash marker) |
//! | `accounts`       | account id                           | `Account`                              |
//! | `transfers`      | transfer id                          | `Transfer`                             |
//! | `idempotency`    | command id                           | `IdempotencyEntry`                     |
//! | `events`         | seq                                  | `Event`                                |
//! | `postings`       | account, 0x00, ts_us, seq            | `{index, balance_after}` — one row per balance change and one (balance 0) per opening |
//! | `account_events` | account, 0x00, seq                   | empty — every event concerning the account |
//! | `index_ts`       | log index                            | last effective timestamp after that entry |
//!
//! All rows written by one apply call (up to `APPLY_CHUNK_ENTRIES_MAX` entries) and the
//! `applied` meta go in one sled transaction. `events`, `postings`, `account_events` and
//! `index_ts` are append-only, which is what lets a snapshot cut them consistently by seq/index
//! while apply continues.
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

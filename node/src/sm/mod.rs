//! openraft `RaftStateMachine` over sled: the ledger state, its history indexes, snapshots and
//! the read side the HTTP API uses.
//!
//! The in-memory [`ledger::LedgerState`] is the live working set (accounts, pending transfers,
//! deadlines) plus the history applied since the last snapshot build (finished transfers and
//! idempotency entries not yet moved to disk); older history is in the cold history file
//! (`cold`, `<dir>/history`), which the ledger reads through [`ledger::ColdHistory`]. Next to
//! it, the postings index (time travel, per-account listings): recent postings in memory,
//! pages in sled. After a restart the store loads the current snapshot's working set, opens
//! the postings index at sled's history mark, reports the snapshot's log id as applied, and
//! openraft replays the durable log (the WAL) from there. sled holds the append-only event
//! blocks and the postings pages (written per apply chunk; entries whose events are already in
//! sled are replayed in memory only); the cold history file is appended by history moves,
//! snapshot builds and installs, never on the apply path. Per-apply durability of sled is not needed (the log is
//! durable and replayed); sled is made durable explicitly before the log may be purged (when a
//! snapshot is built).
//!
//! Why not history rows in sled per apply: writing accounts/transfers/idempotency/postings rows
//! per apply cost 8 of 9 sled rows per transfer (most of the node's CPU went to sled's insert
//! path); sled's random-key inserts also bloated its memory and disk when history rows were
//! tried as sled tables, so the cold history is an append-only file written in bulk, off the
//! apply path. Postings are paged: one row per page of an account's postings (a few rows per
//! hundred postings) instead of one per posting. The guarantee is unchanged: state = snapshot
//! + replay of the committed log, deterministic; the index = a fold of the durable events.
//!
//! Files:
//! - `store`             — [`StateMachineStore`] and its `RaftStateMachine` impl.
//! - `apply`             — execute entries, commit their event blocks in one batch, respond.
//! - `write_set`         — the rows one apply produces (event blocks).
//! - `postings`          — the per-account postings index (tails in memory, pages in sled):
//!   time travel, listings.
//! - `reader`            — [`LedgerReader`], the HTTP layer's read handle.
//! - `history`           — event lookups over the `events` table; opening and rebuilding the
//!   postings index from them.
//! - `snapshot_file`     — [`SnapshotFile`] and the snapshot file format.
//! - `snapshot_build`    — consistent snapshots while apply continues; history to the cold file.
//! - `cold`              — [`ledger::ColdHistory`] over an append-only file: the history that
//!   left memory, indexed by sorted run files on disk.
//! - `migrate`           — moving history out of memory between snapshots.
//! - `background`        — builds and moves on threads of their own at a lower CPU priority.
//! - `snapshot_install`  — verify snapshot files; install a full one atomically for readers,
//!   crash-safely.
//! - `snapshot_send`     — expand a local snapshot file into the full file a peer installs.
//! - `load`              — open: ledger from the snapshot, index, history mark, resume an install.
//! - `frame`             — the length + crc32c framing of snapshot and cold history files.
//! - `meta`, `keys`, `codec`, `ns`, `shared` — sled tables and records, key layouts, value
//!   encoding, table prefixes, shared state.
//!
//! # sled layout (database at `<dir>/sm`, layout version 5)
//!
//! Every value starts with a format-version byte (`1`), followed by bincode 2 (serde API,
//! standard config). Integers in keys are big-endian so byte order is numeric order. All tables
//! share one sled tree, each under a one-byte key prefix.
//!
//! | table      | key                         | value                                            |
//! |------------|-----------------------------|--------------------------------------------------|
//! | `meta`     | `layout`                    | layout version (a database of another layout is refused) |
//! |            | `applied`                   | history mark: last log id with events in sled, membership, last event seq, last timestamp, applied hash, first seq of the unpaged postings |
//! |            | `snapshot`                  | current snapshot: meta + file name               |
//! |            | `installing`                | snapshot being installed (crash marker)          |
//! | `events`   | first seq of the block      | `Vec<Event>`: up to 64 consecutive events of one entry |
//! | `postings` | account, `p`, first seq     | a page of up to 128 of the account's postings (`postings::pages`) |
//! |            | account, `t`/`i`, first timestamp / log index, seq | empty: finds the page by time or index |
//!
//! All blocks and pages written by one apply call (up to `APPLY_CHUNK_ENTRIES_MAX` entries)
//! and the `applied` meta go in one atomic batch. The table is append-only, which is what lets a
//! snapshot cut it consistently by seq while apply continues (a block never spans two entries,
//! and a cut is always between entries). Per transfer that is 1/64 of a sled row.
//!
//! Time travel: per account, the postings index holds (timestamp, seq, index, balance after) of
//! every event concerning it, in log order; the balance at time T (or log index N) is the last
//! posting at or before T (N): a binary search of the account's tail in memory, or one range
//! read and one page read in sled. Effective timestamps strictly increase
//! with the log index, so both lookups agree. Snapshot files live in `<dir>/snapshots`; see
//! `snapshot_file` for the format.

mod apply;
mod background;
mod codec;
mod cold;
mod frame;
mod history;
mod keys;
mod load;
mod meta;
mod migrate;
mod ns;
mod postings;
mod reader;
mod shared;
mod snapshot_build;
mod snapshot_file;
mod snapshot_install;
mod snapshot_send;
mod store;
mod write_set;

#[cfg(test)]
mod recovery_tests;

pub use background::run_at_low_priority;
pub use history::EVENTS_PAGE_MAX;
pub use meta::{SLED_CACHE_MB_DEFAULT, SLED_CACHE_MB_MAX};
pub use postings::BalanceAt;
pub use reader::LedgerReader;
pub use snapshot_build::{LedgerSnapshotBuilder, SnapshotBuildStats};
pub use snapshot_file::SnapshotFile;
pub use store::{StateMachineStore, StoreOptions};

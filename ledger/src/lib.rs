//! Deterministic double-entry ledger: the domain every node applies from the Raft log.
//!
//! This crate does no I/O, reads no clock and uses no randomness: the same commands at the same
//! leader-stamped timestamps always yield the same events and the same state hash.
//!
//! Modules:
//! - `types`     — validated identifiers (account, currency), money and time units.
//! - `iso4217`   — the active ISO 4217 codes a new account's currency must be one of.
//! - `command`   — the commands clients propose (one file per command kind under `command/`).
//! - `event`     — the events an accepted command emits (with `balance_after` for each account).
//! - `rejection` — the closed set of named business rejections.
//! - `outcome`   — what applying one command produced, as stored for idempotent retries.
//! - `account`   — account and transfer records held by the state.
//! - `state`     — `LedgerState`: execute dispatch, accessors, invariant checks, restore.
//! - `tiers`     — where transfers and idempotency entries live: pending and recent in
//!   memory, older in a `ColdHistory` (the node's disk), sealed generations in between.
//! - `id_map`    — `IdMap`: the persistent map of per-command records, keyed by id.
//! - `id_filter` — the membership filter in front of each `IdMap` (misses skip the trie).
//! - `idempotency` — the idempotency table entry and the replay / key-reuse rule (L3).
//! - `exec`      — (private) journaled execution context: undo, event seq, debug checks.
//! - `hash`      — (private) command fingerprints, the rolling applied hash, the state digest.
//! - `invariant` — the invariant catalogue (L1–L8) ids shared with node, chaos and readmodel.
//! - `sabotage`  — test-only switch (feature `sabotage`): apply a retried command twice.

pub mod account;
pub mod command;
pub mod event;
mod exec;
mod hash;
pub mod id_filter;
pub mod id_map;
pub mod idempotency;
pub mod invariant;
pub mod iso4217;
pub mod outcome;
pub mod rejection;
pub mod sabotage;
pub mod state;
pub mod tiers;
pub mod types;

pub use account::{Account, AccountStatus, Transfer, TransferStatus};
pub use command::{Command, CommandBody, BATCH_COMMANDS_MAX};
pub use event::{Event, EventKind, EVENT_SCHEMA_VERSION};
pub use hash::{DigestOrderError, HistoryDigest, StateDigest};
pub use idempotency::fingerprint;
pub use outcome::{CommandResult, Outcome};
pub use rejection::Rejection;
pub use state::{Applied, IdempotencyEntry, LedgerState, RestoreParts, Sealed};
pub use tiers::ColdHistory;
pub use types::{AccountId, Currency, TimestampUs, ValidationError};

//! `LedgerReader`: the read side the HTTP API uses. Methods on the current state read under the
//! state lock and return the applied index they were served at, so each answer is the replay of
//! one log prefix (L5). Time travel reads the postings index (recent postings in memory, older
//! pages in sled; under the history gate and the state lock, capped at the applied events);
//! event listings read the append-only event blocks in sled.

use super::history;
use super::postings::BalanceAt;
use super::shared::Shared;
use super::snapshot_build::SnapshotBuildStats;
use ledger::{Account, AccountId, CommandResult, Event, IdempotencyEntry, TimestampUs, Transfer};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;

/// Cheap, cloneable read handle on the state machine.
#[derive(Clone)]
pub struct LedgerReader {
    /// The store's shared state.
    pub(crate) shared: Arc<Shared>,
}

impl LedgerReader {
    /// Size and build time of the last snapshot this process built (none yet: `None`).
    pub fn last_snapshot_build(&self) -> Option<SnapshotBuildStats> {
        self.shared.last_build()
    }

    /// Index of the last applied log entry (0 before the first).
    pub fn applied_index(&self) -> u64 {
        self.shared.live().applied_index()
    }

    /// Receives the applied index each time an apply chunk or an install is durable in sled.
    pub fn watch_applied(&self) -> watch::Receiver<u64> {
        self.shared.applied_tx.subscribe()
    }

    /// Sequence of the last event applied (0 before the first).
    pub fn last_event_seq(&self) -> u64 {
        self.shared.live().ledger.last_event_seq()
    }

    /// Receives the last event sequence each time new events are in sled (readable by
    /// [`Self::events_from`]).
    pub fn watch_event_seq(&self) -> watch::Receiver<u64> {
        self.shared.event_seq_tx.subscribe()
    }

    /// Last effective leader timestamp applied.
    pub fn last_timestamp_us(&self) -> TimestampUs {
        self.shared.live().ledger.last_timestamp_us()
    }

    /// Earliest deadline of a pending transfer (leader time), if any.
    pub fn next_expiry_us(&self) -> Option<TimestampUs> {
        self.shared.live().ledger.next_expiry_us()
    }

    /// The account at the returned applied index.
    pub fn account(&self, id: &AccountId) -> (u64, Option<Account>) {
        let live = self.shared.live();
        (live.applied_index(), live.ledger.account(id).cloned())
    }

    /// Posted balances of `ids` (None for unknown accounts), all at the returned applied index.
    pub fn balances(&self, ids: &[AccountId]) -> (u64, Vec<Option<i64>>) {
        let live = self.shared.live();
        let balances = ids
            .iter()
            .map(|id| live.ledger.account(id).map(|a| a.balance))
            .collect();
        (live.applied_index(), balances)
    }

    /// The transfer at the returned applied index.
    pub fn transfer(&self, id: &str) -> (u64, Option<Transfer>) {
        let live = self.shared.live();
        (
            live.applied_index(),
            live.ledger.transfer(id).map(|t| t.into_owned()),
        )
    }

    /// The idempotency entry of command `id` (fingerprint and first result) with the applied
    /// index and last timestamp it was read at — or `None` when the id was not applied, or
    /// when apply holds the state lock right now (the caller must not wait: the write path).
    /// Entries never change once recorded, so it answers a retry as the log would.
    pub fn command_entry_if_idle(&self, id: &str) -> Option<(u64, TimestampUs, IdempotencyEntry)> {
        let live = self.shared.try_live()?;
        let entry = live.ledger.idempotency(id)?.into_owned();
        Some((live.applied_index(), live.ledger.last_timestamp_us(), entry))
    }

    /// The recorded result of command `id` (its first application), if it was applied.
    pub fn command_result(&self, id: &str) -> Option<CommandResult> {
        self.shared
            .live()
            .ledger
            .idempotency(id)
            .map(|e| e.result.clone())
    }

    /// Finished transfers and idempotency entries held in memory: those applied since the
    /// last snapshot build (older ones are in the cold history on disk).
    pub fn history_in_memory(&self) -> usize {
        let freeing = self.shared.history_freeing.load(Ordering::Acquire) as usize;
        self.shared.live().ledger.hot_history_len() + freeing
    }

    /// Moves the finished transfers and idempotency entries held in memory to the cold history
    /// file (blocking: one sequential append, synced by the next snapshot build); returns the
    /// records appended.
    pub fn migrate_history(&self) -> io::Result<u64> {
        super::migrate::migrate_history(&self.shared)
    }

    /// Sets the young history aside as a sealed generation when it holds at least
    /// `min_records` (O(1)); true when it did.
    pub fn seal_history_over(&self, min_records: usize) -> bool {
        super::migrate::seal_history_over(&self.shared, min_records)
    }

    /// Generations of history sealed and not yet moved to the cold history file.
    pub fn sealed_generations(&self) -> usize {
        self.shared.live().ledger.sealed_history().len()
    }

    /// Moves the oldest sealed generation to the cold history file (blocking; synced by the
    /// next snapshot build); returns the records appended, or `None` when none is sealed.
    pub fn migrate_oldest_generation(&self) -> io::Result<Option<u64>> {
        super::migrate::migrate_oldest(&self.shared)
    }

    /// Records in the cold history file (finished transfers and idempotency entries that left
    /// memory; may include records beyond the applied index after a crash, hidden until then).
    pub fn history_on_disk(&self) -> usize {
        self.shared.trees.cold.len()
    }

    /// Every account at the returned applied index, ordered by id.
    pub fn all_accounts(&self) -> (u64, Vec<Account>) {
        let live = self.shared.live();
        (
            live.applied_index(),
            live.ledger.accounts().cloned().collect(),
        )
    }

    /// Full state hash (hex) at the returned applied index; O(number of records).
    pub fn state_hash(&self) -> (u64, String) {
        let live = self.shared.live();
        (live.applied_index(), to_hex(&live.ledger.state_hash()))
    }

    /// Running applied hash (hex) at the returned applied index.
    pub fn applied_hash(&self) -> (u64, String) {
        let live = self.shared.live();
        (live.applied_index(), to_hex(&live.ledger.applied_hash()))
    }

    /// Balance of `account` after the last event with timestamp <= `ts_us` (L8); None if the
    /// account was not open yet. O(log n): the account's recent postings in memory, older ones
    /// in one sled page; never beyond the applied prefix.
    pub fn balance_at_time(
        &self,
        account: &AccountId,
        ts_us: TimestampUs,
    ) -> io::Result<Option<BalanceAt>> {
        Ok(self.balance_at_time_view(account, ts_us)?.1)
    }

    /// [`Self::balance_at_time`] together with the applied index it was read at, under one
    /// lock: the balance never includes an entry after the returned index.
    pub fn balance_at_time_view(
        &self,
        account: &AccountId,
        ts_us: TimestampUs,
    ) -> io::Result<(u64, Option<BalanceAt>)> {
        // Gate before state lock, as install takes them (it rewrites the pages).
        let _gate = self.shared.history_gate();
        let live = self.shared.live();
        let cap = live.ledger.last_event_seq();
        let balance = live.postings.balance_at_time(account, ts_us, cap)?;
        Ok((live.applied_index(), balance))
    }

    /// Balance of `account` after applying log index `index` (L8); None if the account was not
    /// open yet. O(log n). Only meaningful for `index <= applied_index()`.
    pub fn balance_at_index(
        &self,
        account: &AccountId,
        index: u64,
    ) -> io::Result<Option<BalanceAt>> {
        let _gate = self.shared.history_gate();
        let live = self.shared.live();
        let cap = live.ledger.last_event_seq();
        live.postings.balance_at_index(account, index, cap)
    }

    /// Events concerning `account` with seq > `after_seq`, in seq order, at most `limit`
    /// (capped at [`EVENTS_PAGE_MAX`](super::EVENTS_PAGE_MAX)).
    pub fn account_events(
        &self,
        account: &AccountId,
        after_seq: u64,
        limit: usize,
    ) -> io::Result<Vec<Event>> {
        // Gate before state lock, as install takes them: the seqs and the blocks then come
        // from the same installed history.
        let _gate = self.shared.history_gate();
        let limit = limit.min(super::EVENTS_PAGE_MAX);
        let seqs = {
            let live = self.shared.live();
            let cap = live.ledger.last_event_seq();
            live.postings.seqs_after(account, after_seq, cap, limit)?
        };
        history::events_with_seqs(&self.shared.trees, &seqs)
    }

    /// [`Self::account_events`] together with the applied index it was read at, under one
    /// lock (None when the account does not exist at that index): no returned event comes from
    /// an entry after the returned index.
    pub fn account_events_view(
        &self,
        account: &AccountId,
        after_seq: u64,
        limit: usize,
    ) -> io::Result<(u64, Option<Vec<Event>>)> {
        // Gate before state lock, as in `account_events`.
        let _gate = self.shared.history_gate();
        let (index, seqs) = {
            let live = self.shared.live();
            let cap = live.ledger.last_event_seq();
            let limit = limit.min(super::EVENTS_PAGE_MAX);
            let seqs = match live.ledger.account(account) {
                Some(_) => Some(live.postings.seqs_after(account, after_seq, cap, limit)?),
                None => None,
            };
            (live.applied_index(), seqs)
        };
        match seqs {
            Some(seqs) => Ok((
                index,
                Some(history::events_with_seqs(&self.shared.trees, &seqs)?),
            )),
            None => Ok((index, None)),
        }
    }

    /// Global events with seq >= `from_seq` (inclusive), in order, at most `limit` (capped at
    /// [`EVENTS_PAGE_MAX`](super::EVENTS_PAGE_MAX)). Events up to the value last published on
    /// [`Self::watch_event_seq`] are always readable.
    pub fn events_from(&self, from_seq: u64, limit: usize) -> io::Result<Vec<Event>> {
        let _gate = self.shared.history_gate();
        history::events_from(&self.shared.trees, from_seq, limit)
    }
}

/// Lower-case hex of a hash.
fn to_hex(bytes: &[u8; 32]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

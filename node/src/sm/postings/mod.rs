//! `PostingsIndex`: the time-travel index and per-account event listing.
//!
//! For every account, one `Posting` per event concerning it, in log order: the event's
//! timestamp, seq and log index, and the account's posted balance right after it (a
//! `TransferPosted` leg sets it; every other event repeats the balance it left). Lookups find
//! the last posting at or before a time, log index or seq.
//!
//! Memory holds the working set only: per account its last posting and the postings not yet
//! paged (at most `PAGE_POSTINGS_MAX`); the rest lives in sled pages (`pages`), written in the
//! same atomic batch as the events of the entry that completed them. A tail is paged when it
//! is full, or, partially, once its first posting is `UNPAGED_WINDOW_EVENTS` events old, so
//! every posting older than that window is on disk. The applied meta records where the
//! unpaged postings begin (`unpaged_from_seq`), and opening rebuilds the tails from the event
//! blocks after it: bounded work, whatever the history's length.
//!
//! The index follows sled's events, which a restart may find ahead of the ledger (the log is
//! replayed from the snapshot): events it already indexed are skipped, and every lookup takes
//! the ledger's last event seq as a cap, so it never answers from beyond the applied state.

mod pages;

use ledger::{AccountId, Event, TimestampUs};
use pages::Coord;
pub(crate) use pages::Row;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::io;

use super::ns::Ns;

/// Postings per page at most.
pub(crate) const PAGE_POSTINGS_MAX: usize = 128;

/// Events after which a posting is on disk at the latest (its tail is paged, full or not).
/// Bounds the memory of the tails and the events an open rescans.
pub(crate) const UNPAGED_WINDOW_EVENTS: u64 = 131_072;

/// An account's posted balance as of a point in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceAt {
    /// Posted balance in minor units.
    pub balance: i64,
    /// Leader timestamp of the account's last event at or before the asked point (a posting,
    /// the opening, or any other event concerning it, which leaves the balance as it was).
    pub as_of_us: TimestampUs,
    /// Log index of that event.
    pub index: u64,
    /// Event sequence of that event.
    pub event_seq: u64,
}

/// One event concerning one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Posting {
    ts_us: TimestampUs,
    seq: u64,
    index: u64,
    balance_after: i64,
}

impl Posting {
    fn balance_at(&self) -> BalanceAt {
        BalanceAt {
            balance: self.balance_after,
            as_of_us: self.ts_us,
            index: self.index,
            event_seq: self.seq,
        }
    }
}

/// An account's postings in memory: the ones not paged yet, and the last one overall.
#[derive(Debug, Default, Clone)]
struct Tail {
    /// Last posting (unpaged or on disk); None for an account without postings.
    last: Option<Posting>,
    /// Postings after the account's last page, in order.
    unpaged: Vec<Posting>,
}

/// The per-account postings: tails in memory over pages in sled.
pub(crate) struct PostingsIndex {
    /// The sled `postings` table.
    table: Ns,
    /// Tails of the accounts touched since the index was opened (others are only on disk).
    by_account: HashMap<AccountId, Tail>,
    /// (first unpaged seq, account) of every non-empty tail: the oldest is paged first.
    oldest: BTreeSet<(u64, AccountId)>,
    /// Postings in the tails.
    unpaged: usize,
    /// Seq of the last event indexed.
    last_seq: u64,
    /// Rows of the pages made since the last `take_rows`.
    rows: Vec<Row>,
    /// Postings per page (`PAGE_POSTINGS_MAX`; smaller in tests).
    page_postings_max: usize,
    /// `UNPAGED_WINDOW_EVENTS` (smaller in tests).
    window_events: u64,
}

impl PostingsIndex {
    /// An empty index over `table`, which must hold no pages.
    pub(crate) fn empty(table: Ns) -> Self {
        Self {
            table,
            by_account: HashMap::new(),
            oldest: BTreeSet::new(),
            unpaged: 0,
            last_seq: 0,
            rows: Vec::new(),
            page_postings_max: PAGE_POSTINGS_MAX,
            window_events: UNPAGED_WINDOW_EVENTS,
        }
    }

    /// TEST ONLY: the same index with smaller pages and window, so tests page often.
    #[cfg(test)]
    fn with_limits(mut self, page_postings_max: usize, window_events: u64) -> Self {
        self.page_postings_max = page_postings_max;
        self.window_events = window_events;
        self
    }

    /// Opens the index over `table` whose pages hold every posting before `unpaged_from_seq`:
    /// rebuilds the tails from `events` (the stored events from that seq on, in order) up to
    /// `up_to_seq`, skipping postings already paged.
    pub(crate) fn open(
        table: Ns,
        unpaged_from_seq: u64,
        events: impl Iterator<Item = io::Result<Event>>,
        up_to_seq: u64,
    ) -> io::Result<Self> {
        Self::empty(table).reopened(unpaged_from_seq, events, up_to_seq)
    }

    /// `open` on this (empty) index.
    fn reopened(
        mut self,
        unpaged_from_seq: u64,
        events: impl Iterator<Item = io::Result<Event>>,
        up_to_seq: u64,
    ) -> io::Result<Self> {
        let index = &mut self;
        index.last_seq = unpaged_from_seq.max(1) - 1;
        for event in events {
            let event = event?;
            if event.seq > up_to_seq {
                break;
            }
            index.check_next(&event)?;
            index.push_postings(&event, true)?;
        }
        index.check_end(up_to_seq)?;
        Ok(self)
    }

    /// Builds the index over the empty `table` from `events` (in seq order, from seq 1) up to
    /// `up_to_seq`, writing full pages to it as they are made (an install: bounded memory).
    pub(crate) fn rebuild(
        table: Ns,
        events: impl Iterator<Item = io::Result<Event>>,
        up_to_seq: u64,
        write: impl FnMut(Vec<Row>) -> io::Result<()>,
    ) -> io::Result<Self> {
        Self::empty(table).rebuilt(events, up_to_seq, write)
    }

    /// `rebuild` on this (empty) index.
    fn rebuilt(
        mut self,
        events: impl Iterator<Item = io::Result<Event>>,
        up_to_seq: u64,
        mut write: impl FnMut(Vec<Row>) -> io::Result<()>,
    ) -> io::Result<Self> {
        let index = &mut self;
        for event in events {
            let event = event?;
            if event.seq > up_to_seq {
                break;
            }
            index.record(&event)?;
            if index.rows.len() >= 3 * 1024 {
                write(index.take_rows())?;
            }
        }
        write(index.take_rows())?;
        index.check_end(up_to_seq)?;
        Ok(self)
    }

    fn check_end(&self, up_to_seq: u64) -> io::Result<()> {
        if self.last_seq != up_to_seq {
            return Err(corrupt(format!(
                "event history ends at seq {} but the state is at seq {up_to_seq}",
                self.last_seq
            )));
        }
        Ok(())
    }

    fn check_next(&self, event: &Event) -> io::Result<()> {
        if event.seq != self.last_seq + 1 {
            return Err(corrupt(format!(
                "event seq {} does not follow {}",
                event.seq, self.last_seq
            )));
        }
        Ok(())
    }

    /// Appends the postings of `event`, the next event in seq order; an event already indexed
    /// (a replay below sled's history mark) is skipped. Pages made are kept for `take_rows`.
    pub(crate) fn record(&mut self, event: &Event) -> io::Result<()> {
        if event.seq <= self.last_seq {
            return Ok(());
        }
        self.check_next(event)?;
        self.push_postings(event, false)?;
        while let Some((first, account)) = self.oldest.first().cloned() {
            if first.saturating_add(self.window_events) > self.last_seq {
                break;
            }
            self.page(&account)?;
        }
        Ok(())
    }

    /// Adds `event`'s postings to the tails; `reopening` skips postings already paged and
    /// never pages (the tails are rebuilt as they were). A page never splits an event.
    fn push_postings(&mut self, event: &Event, reopening: bool) -> io::Result<()> {
        self.last_seq = event.seq;
        let changes = event.kind.balance_changes();
        let accounts = event.kind.accounts();
        let mut paged_already = Vec::with_capacity(accounts.len());
        for account in &accounts {
            let last = self.tail_mut(account)?.last;
            paged_already.push(reopening && last.is_some_and(|l| l.seq >= event.seq));
        }
        let mut full = Vec::new();
        for (account, skip) in accounts.into_iter().zip(paged_already) {
            if skip {
                continue;
            }
            let set = changes.iter().find(|(a, _)| *a == account).map(|c| c.1);
            let tail = self.tail_mut(account)?;
            let before = tail.last.map_or(0, |p| p.balance_after);
            let posting = Posting {
                ts_us: event.timestamp_us,
                seq: event.seq,
                index: event.index,
                balance_after: set.unwrap_or(before),
            };
            tail.last = Some(posting);
            tail.unpaged.push(posting);
            let (len, first) = (tail.unpaged.len(), tail.unpaged[0].seq);
            if len == 1 {
                self.oldest.insert((first, account.clone()));
            }
            self.unpaged += 1;
            if len >= self.page_postings_max {
                full.push(account.clone());
            }
        }
        if !reopening {
            for account in full {
                self.page(&account)?;
            }
        }
        Ok(())
    }

    /// The tail of `account`, loaded (its last posting read from disk) on first use.
    fn tail_mut(&mut self, account: &AccountId) -> io::Result<&mut Tail> {
        if !self.by_account.contains_key(account) {
            let last = pages::last_stored(&self.table, account)?;
            let tail = Tail {
                last,
                unpaged: Vec::new(),
            };
            self.by_account.insert(account.clone(), tail);
        }
        Ok(self.by_account.get_mut(account).expect("inserted above"))
    }

    /// Turns `account`'s tail into a page (rows kept for `take_rows`).
    fn page(&mut self, account: &AccountId) -> io::Result<()> {
        let Some(tail) = self.by_account.get_mut(account) else {
            return Ok(());
        };
        let page = std::mem::take(&mut tail.unpaged);
        if let Some(first) = page.first() {
            self.oldest.remove(&(first.seq, account.clone()));
            self.unpaged -= page.len();
            self.rows.extend(pages::page_rows(account, &page)?);
        }
        Ok(())
    }

    /// The page rows made since the last call, to be written with the events that made them.
    pub(crate) fn take_rows(&mut self) -> Vec<Row> {
        std::mem::take(&mut self.rows)
    }

    /// Seq of the first posting not on disk (every earlier one is paged).
    pub(crate) fn unpaged_from_seq(&self) -> u64 {
        self.oldest
            .first()
            .map_or(self.last_seq + 1, |(seq, _)| *seq)
    }

    /// The last posting of `account` with `coord` <= `at` and seq <= `cap_seq`.
    fn last_at_or_before(
        &self,
        account: &AccountId,
        coord: Coord,
        at: u64,
        cap_seq: u64,
    ) -> io::Result<Option<Posting>> {
        if let Some(tail) = self.by_account.get(account) {
            let fits = |p: &Posting| coord.of(p) <= at && p.seq <= cap_seq;
            let n = tail.unpaged.partition_point(fits);
            if let Some(p) = n.checked_sub(1).and_then(|i| tail.unpaged.get(i)) {
                return Ok(Some(*p));
            }
        }
        pages::last_at_or_before(&self.table, account, coord, at, cap_seq)
    }

    /// Balance of `account` right after its last event with timestamp <= `ts_us` and seq <=
    /// `cap_seq`; None when the account had not been opened by then.
    pub(crate) fn balance_at_time(
        &self,
        account: &AccountId,
        ts_us: TimestampUs,
        cap_seq: u64,
    ) -> io::Result<Option<BalanceAt>> {
        let found = self.last_at_or_before(account, Coord::Time, ts_us, cap_seq)?;
        Ok(found.map(|p| p.balance_at()))
    }

    /// Balance of `account` right after applying log index `index` (events up to `cap_seq`);
    /// None when the account had not been opened by then.
    pub(crate) fn balance_at_index(
        &self,
        account: &AccountId,
        index: u64,
        cap_seq: u64,
    ) -> io::Result<Option<BalanceAt>> {
        let found = self.last_at_or_before(account, Coord::Index, index, cap_seq)?;
        Ok(found.map(|p| p.balance_at()))
    }

    /// Seqs of the events concerning `account` with `after_seq` < seq <= `cap_seq`, in order,
    /// at most `limit`.
    pub(crate) fn seqs_after(
        &self,
        account: &AccountId,
        after_seq: u64,
        cap_seq: u64,
        limit: usize,
    ) -> io::Result<Vec<u64>> {
        // An event names an account once (debit == credit is rejected), so seqs are distinct.
        let want = limit;
        let mut seqs = Vec::new();
        pages::seqs_after(&self.table, account, after_seq, cap_seq, want, &mut seqs)?;
        if let Some(tail) = self.by_account.get(account) {
            let fresh = tail.unpaged.iter().map(|p| p.seq);
            let fresh = fresh.filter(|s| *s > after_seq && *s <= cap_seq);
            seqs.extend(fresh.take(want.saturating_sub(seqs.len())));
        }
        Ok(seqs)
    }

    /// Postings held in memory (not yet paged).
    pub(crate) fn unpaged_len(&self) -> usize {
        self.unpaged
    }

    /// Seq of the last event indexed (0 when none).
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests;

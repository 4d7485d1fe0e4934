//! `PostingsIndex`: the in-memory time-travel index and per-account event listing.
//!
//! For every account, one `Posting` per event concerning it, in log order: the event's
//! timestamp, seq and log index, and the account's posted balance right after it (a
//! `TransferPosted` leg sets it; every other event repeats the balance it left). 32 bytes per
//! posting, so 1M postings cost ~32 MB. Lookups are binary searches in one account's vector:
//! O(log n), no I/O.
//!
//! It is derived data, like the ledger itself: it lives in `Live` next to the ledger, is
//! updated by the same apply (also while replaying the log after a restart), and is rebuilt
//! from the durable event blocks when the store opens or installs a snapshot. Keeping it out of
//! sled removed two sled rows per transfer, sled's most expensive write (random keys clone a
//! leaf page per insert).

use ledger::{AccountId, Event, TimestampUs};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Posting {
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

/// Per-account postings in log order (seq, index and timestamp all non-decreasing along it;
/// effective timestamps strictly increase from one log entry to the next).
#[derive(Debug, Default, Clone)]
pub(crate) struct PostingsIndex {
    by_account: HashMap<AccountId, Vec<Posting>>,
    postings: usize,
    last_seq: u64,
}

impl PostingsIndex {
    /// Rebuilds the index from `events` (in seq order, starting at seq 1), keeping those with
    /// seq <= `up_to_seq`. Errors if the events are not contiguous or end before `up_to_seq`.
    pub(crate) fn rebuild(
        events: impl Iterator<Item = io::Result<Event>>,
        up_to_seq: u64,
    ) -> io::Result<Self> {
        let mut index = Self::default();
        for event in events {
            let event = event?;
            if event.seq > up_to_seq {
                break;
            }
            index.record(&event)?;
        }
        if index.last_seq != up_to_seq {
            return Err(corrupt(format!(
                "event history ends at seq {} but the state is at seq {up_to_seq}",
                index.last_seq
            )));
        }
        Ok(index)
    }

    /// Appends the postings of `event`, the next event in seq order.
    pub(crate) fn record(&mut self, event: &Event) -> io::Result<()> {
        if event.seq != self.last_seq + 1 {
            return Err(corrupt(format!(
                "event seq {} does not follow {}",
                event.seq, self.last_seq
            )));
        }
        self.last_seq = event.seq;
        let changes = event.kind.balance_changes();
        for account in event.kind.accounts() {
            let set = changes.iter().find(|(a, _)| *a == account).map(|c| c.1);
            let posting = |before: i64| Posting {
                ts_us: event.timestamp_us,
                seq: event.seq,
                index: event.index,
                balance_after: set.unwrap_or(before),
            };
            match self.by_account.get_mut(account) {
                Some(list) => {
                    let before = list.last().map_or(0, |p| p.balance_after);
                    list.push(posting(before));
                }
                None => {
                    self.by_account.insert(account.clone(), vec![posting(0)]);
                }
            }
            self.postings += 1;
        }
        Ok(())
    }

    /// Balance of `account` right after its last event with timestamp <= `ts_us`; None when
    /// the account had not been opened by then.
    pub(crate) fn balance_at_time(
        &self,
        account: &AccountId,
        ts_us: TimestampUs,
    ) -> Option<BalanceAt> {
        let list = self.by_account.get(account)?;
        let n = list.partition_point(|p| p.ts_us <= ts_us);
        Some(list.get(n.checked_sub(1)?)?.balance_at())
    }

    /// Balance of `account` right after applying log index `index`; None when the account had
    /// not been opened by then.
    pub(crate) fn balance_at_index(&self, account: &AccountId, index: u64) -> Option<BalanceAt> {
        let list = self.by_account.get(account)?;
        let n = list.partition_point(|p| p.index <= index);
        Some(list.get(n.checked_sub(1)?)?.balance_at())
    }

    /// Seqs of the events concerning `account` with seq > `after_seq`, in order, at most
    /// `limit`.
    pub(crate) fn seqs_after(&self, account: &AccountId, after_seq: u64, limit: usize) -> Vec<u64> {
        let Some(list) = self.by_account.get(account) else {
            return Vec::new();
        };
        let start = list.partition_point(|p| p.seq <= after_seq);
        let mut seqs: Vec<u64> = list[start..].iter().take(limit).map(|p| p.seq).collect();
        // An event names an account at most twice (debit == credit is rejected); keep one.
        seqs.dedup();
        seqs
    }

    /// Number of postings held.
    pub(crate) fn len(&self) -> usize {
        self.postings
    }

    /// Seq of the last event recorded (0 when none).
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{Command, CommandBody, Currency, LedgerState};

    fn id(s: &str) -> AccountId {
        AccountId::parse(s).unwrap()
    }

    /// Opens a and b, deposits into a, moves money a -> b (one refused), freezes b.
    fn commands() -> Vec<Command> {
        let usd = Currency::parse("USD").unwrap();
        let open = |a: &str| CommandBody::OpenAccount {
            account: id(a),
            currency: usd,
            overdraft_limit: 0,
            metadata: "{}".to_owned(),
        };
        let transfer = |amount| CommandBody::Transfer {
            from: id("a"),
            to: id("b"),
            amount,
            pending: false,
            timeout_s: None,
            memo: None,
        };
        let bodies = vec![
            open("a"),
            open("b"),
            CommandBody::Deposit {
                account: id("a"),
                amount: 100,
            },
            transfer(30),
            transfer(500),
            transfer(20),
            CommandBody::Freeze { account: id("b") },
        ];
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Command {
                id: format!("c{i}"),
                timestamp_us: (i as u64 + 1) * 10,
                body,
            })
            .collect()
    }

    /// Runs the commands, one per log index from 1; calls `after` with the ledger after each.
    fn run(mut after: impl FnMut(u64, &LedgerState)) -> Vec<Event> {
        let mut ledger = LedgerState::new();
        let mut events = Vec::new();
        for (i, cmd) in commands().iter().enumerate() {
            let index = i as u64 + 1;
            events.extend(ledger.execute(index, cmd).events);
            after(index, &ledger);
        }
        events
    }

    #[test]
    fn time_travel_and_listing_follow_the_postings() {
        let events = run(|_, _| {});
        let n = events.len() as u64;
        let idx = PostingsIndex::rebuild(events.iter().cloned().map(Ok), n).unwrap();
        assert!(idx.len() > 0);
        run(|index, ledger| {
            for account in ledger.accounts() {
                let at = idx.balance_at_index(&account.id, index).unwrap();
                assert_eq!(at.balance, account.balance, "{} at {index}", account.id);
                assert!(at.index <= index);
                // Command i is stamped (i + 1) * 10 and no later command is stamped before.
                let by_time = idx.balance_at_time(&account.id, index * 10 + 5).unwrap();
                assert_eq!(by_time, at);
            }
        });
        assert_eq!(idx.balance_at_time(&id("b"), 15), None, "b opens at 20");
        assert_eq!(idx.balance_at_index(&id("b"), 1), None);
        let b = idx.seqs_after(&id("b"), 0, usize::MAX);
        assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        assert_eq!(idx.seqs_after(&id("b"), b[0], 1), vec![b[1]]);
        let b_events: Vec<u64> = events
            .iter()
            .filter(|e| e.kind.accounts().contains(&&id("b")))
            .map(|e| e.seq)
            .collect();
        assert_eq!(b, b_events, "listing = every event naming b");
        assert!(idx.seqs_after(&id("nobody"), 0, 10).is_empty());
    }

    #[test]
    fn rebuild_refuses_gaps_and_short_histories() {
        let events = run(|_, _| {});
        let n = events.len() as u64;
        let gap = events.iter().filter(|e| e.seq != 2).cloned().map(Ok);
        assert!(PostingsIndex::rebuild(gap, n).is_err());
        assert!(PostingsIndex::rebuild(events.iter().cloned().map(Ok), n + 1).is_err());
        let short = PostingsIndex::rebuild(events.iter().cloned().map(Ok), 1).unwrap();
        assert_eq!(short.last_seq(), 1);
    }
}

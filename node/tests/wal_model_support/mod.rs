//! The reference model for `wal_model`: what a WAL must hold after a sequence of operations —
//! live entries by index, the purge point, the vote and the committed log id — plus the entry
//! builder (content is a function of term, index and size, so any mix-up shows).

use ledger::{AccountId, Command, CommandBody};
use node::raft_types::{Entry, EntryPayload, LedgerRequest, LogId, TypeConfig, Vote};
use std::collections::BTreeMap;

/// Entry `index` of `term` carrying about `bytes` of payload (0: a blank entry).
pub fn entry(term: u64, index: u64, bytes: usize) -> Entry {
    let log_id = log_id(term, index);
    if bytes == 0 {
        return Entry {
            log_id,
            payload: EntryPayload::Blank,
        };
    }
    let fill = (b'a' + ((term * 31 + index) % 26) as u8) as char;
    let command = Command {
        id: format!("m-{term}-{index}"),
        timestamp_us: index,
        body: CommandBody::Transfer {
            from: AccountId::parse("ivan").unwrap(),
            to: AccountId::parse("judy").unwrap(),
            amount: 1 + index as i64,
            pending: false,
            timeout_s: None,
            memo: Some(fill.to_string().repeat(bytes)),
        },
    };
    Entry {
        log_id,
        payload: EntryPayload::Normal(LedgerRequest {
            commands: vec![command],
        }),
    }
}

/// Log id of `term` (leader node 1) at `index`.
pub fn log_id(term: u64, index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(term, 1, index)
}

/// Index `frac` of the way through `lo..=hi` (`frac` out of `u16::MAX`).
pub fn pick(lo: u64, hi: u64, frac: u16) -> u64 {
    lo + (hi - lo) * u64::from(frac) / u64::from(u16::MAX)
}

/// What the WAL must hold.
#[derive(Debug, Default)]
pub struct Model {
    /// Live entries by index (contiguous).
    pub entries: BTreeMap<u64, Entry>,
    /// Last purged log id.
    pub purged: Option<LogId>,
    /// Last saved vote (every save is awaited, so it is durable).
    pub vote: Option<Vote>,
    /// Committed values saved since the last write that waited for a sync, oldest first: the
    /// first one is durable, the later ones may be lost in a power cut. Never empty.
    pub committed: Vec<Option<LogId>>,
    /// Term given to new entries; raised by every truncation, so replaced entries differ.
    pub term: u64,
}

impl Model {
    /// An empty WAL.
    pub fn new() -> Self {
        Self {
            committed: vec![None],
            term: 1,
            ..Self::default()
        }
    }

    /// Index the next entry must have.
    pub fn next_index(&self) -> u64 {
        match (self.entries.keys().next_back(), self.purged) {
            (Some(last), _) => last + 1,
            (None, Some(p)) => p.index + 1,
            (None, None) => 0,
        }
    }

    /// `(last purged log id, last log id)` as the WAL reports them.
    pub fn bounds(&self) -> (Option<LogId>, Option<LogId>) {
        let last = self.entries.values().next_back().map(|e| e.log_id);
        (self.purged, last.or(self.purged))
    }

    /// The live entries, oldest first.
    pub fn live(&self) -> Vec<Entry> {
        self.entries.values().cloned().collect()
    }

    /// New entries following the log, one per size.
    pub fn new_entries(&self, sizes: &[usize]) -> Vec<Entry> {
        let next = self.next_index();
        (next..)
            .zip(sizes)
            .map(|(i, &bytes)| entry(self.term, i, bytes))
            .collect()
    }

    /// Entries appended (durably).
    pub fn append(&mut self, batch: Vec<Entry>) {
        for e in batch {
            self.entries.insert(e.log_id.index, e);
        }
        self.synced();
    }

    /// The point a truncation `frac` of the way through the log keeps up to: the purge point
    /// (dropping every live entry) or a live entry (Raft never truncates purged entries).
    pub fn truncation_point(&self, frac: u16) -> Option<LogId> {
        let mut points: Vec<Option<LogId>> = vec![self.purged];
        points.extend(self.entries.values().map(|e| Some(e.log_id)));
        let at = pick(0, points.len() as u64 - 1, frac);
        points[at as usize]
    }

    /// A truncation (durable).
    pub fn truncate_after(&mut self, last: Option<LogId>) {
        let keep = last.map_or(0, |l| l.index + 1);
        self.entries.retain(|&i, _| i < keep);
        self.term += 1;
        self.synced();
    }

    /// The log id a purge `frac` of the way from the purge point to a few past the last entry
    /// purges up to (past the end, as after installing a snapshot ahead of the log).
    pub fn purge_point(&self, frac: u16) -> LogId {
        let lo = self.purged.map_or(0, |p| p.index + 1);
        let hi = self.next_index() + 2;
        let index = pick(lo, hi, frac);
        match self.entries.get(&index) {
            Some(e) => e.log_id,
            None => log_id(self.term, index),
        }
    }

    /// A purge (durable).
    pub fn purge(&mut self, upto: LogId) {
        self.entries.retain(|&i, _| i > upto.index);
        self.purged = Some(upto);
        self.synced();
    }

    /// A vote saved (durable).
    pub fn save_vote(&mut self, vote: Vote) {
        self.vote = Some(vote);
        self.synced();
    }

    /// The committed log id a save `frac` of the way through the live entries records.
    pub fn committed_point(&self, frac: u16) -> Option<LogId> {
        let ids: Vec<LogId> = self.entries.values().map(|e| e.log_id).collect();
        if ids.is_empty() {
            return self.purged;
        }
        Some(ids[pick(0, ids.len() as u64 - 1, frac) as usize])
    }

    /// A committed log id saved (written, not synced).
    pub fn save_committed(&mut self, committed: Option<LogId>) {
        self.committed.push(committed);
    }

    /// The committed value a clean reopen must report.
    pub fn latest_committed(&self) -> Option<LogId> {
        *self.committed.last().expect("never empty")
    }

    /// A write that waited for a sync made every committed value before it durable.
    fn synced(&mut self) {
        let latest = self.latest_committed();
        self.committed = vec![latest];
    }

    /// After a power cut: the committed value recovered (checked by the caller) is now the
    /// only one.
    pub fn committed_recovered(&mut self, committed: Option<LogId>) {
        self.committed = vec![committed];
    }
}

//! In-memory log index: for every live log index, its log id, where its record is on disk, and
//! (for recent entries) the entry itself.
//!
//! Live indexes are contiguous (Raft logs have no holes), so the index is a `VecDeque` addressed
//! by `index - first`. Entries appended but not yet written have no location and are always
//! cached; written entries are evicted oldest first once more than `cache_max` are cached or
//! their records take more than `cache_bytes_max`, and are then read back from their segment.

use crate::raft_types::{Entry, LogId};
use std::collections::VecDeque;

/// Where a record lives: segment sequence number, byte offset of its frame, frame length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    /// Sequence number of the segment.
    pub seq: u64,
    /// Offset of the frame in the segment.
    pub offset: u64,
    /// Length of the frame, header included.
    pub len: u64,
}

/// One live log index.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The entry's log id.
    pub log_id: LogId,
    /// Where its record is, once written.
    pub loc: Option<Loc>,
    /// The entry, if cached (always, until written).
    pub entry: Option<Entry>,
    /// Identifies the append that created this slot, so a late location update for an entry
    /// that was truncated and replaced meanwhile is ignored.
    pub write_id: u64,
}

/// The live log: purged boundary plus contiguous slots.
#[derive(Debug)]
pub(crate) struct LogIndex {
    /// Last purged log id: entries up to it are gone.
    purged: Option<LogId>,
    /// Index of `slots[0]` (meaningless while `slots` is empty).
    first: u64,
    /// Live entries, contiguous from `first`.
    slots: VecDeque<Slot>,
    /// Number of slots holding an entry.
    cached: usize,
    /// Every slot before this position holds no entry (eviction resumes here).
    uncached_prefix: usize,
    /// Most written entries kept cached.
    cache_max: usize,
    /// Record bytes (as written) of the cached written entries.
    cached_bytes: u64,
    /// Most record bytes of written entries kept cached.
    cache_bytes_max: u64,
    /// Replay only: the highest index replay jumped over (see [`LogIndex::replay`]); the final
    /// purge point must reach it.
    skipped_upto: Option<u64>,
}

impl LogIndex {
    /// An empty log keeping at most `cache_max` written entries in memory (no byte bound).
    pub fn new(cache_max: usize) -> Self {
        Self {
            purged: None,
            first: 0,
            slots: VecDeque::new(),
            cached: 0,
            uncached_prefix: 0,
            cache_max,
            cached_bytes: 0,
            cache_bytes_max: u64::MAX,
            skipped_upto: None,
        }
    }

    /// Also bounds the cached written entries by their records' bytes.
    pub fn with_cache_bytes_max(self, cache_bytes_max: u64) -> Self {
        Self {
            cache_bytes_max,
            ..self
        }
    }

    /// Last purged log id.
    pub fn purged(&self) -> Option<LogId> {
        self.purged
    }

    /// Log id of the last entry, or the purged log id if there is no entry.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.slots.back().map(|s| s.log_id).or(self.purged)
    }

    /// Index the next appended entry must have; `None` when any index may start the log.
    pub fn next_index(&self) -> Option<u64> {
        if self.slots.is_empty() {
            self.purged.map(|p| p.index + 1)
        } else {
            Some(self.first + self.slots.len() as u64)
        }
    }

    /// Range of live indexes, `first..end`.
    pub fn live_range(&self) -> std::ops::Range<u64> {
        self.first..self.first + self.slots.len() as u64
    }

    /// The slot of `index`, if live.
    pub fn get(&self, index: u64) -> Option<&Slot> {
        let pos = index.checked_sub(self.first)?;
        self.slots.get(usize::try_from(pos).ok()?)
    }

    /// Number of cached entries.
    #[cfg(test)]
    pub fn cached(&self) -> usize {
        self.cached
    }

    /// Record bytes of the cached written entries.
    #[cfg(test)]
    pub fn cached_bytes(&self) -> u64 {
        self.cached_bytes
    }

    /// Forgets a slot leaving the log or its entry leaving the cache.
    fn uncount(&mut self, slot: &Slot) {
        if slot.entry.is_some() {
            self.cached -= 1;
            self.cached_bytes -= slot.loc.map_or(0, |l| l.len);
        }
    }

    /// Appends a slot; its index must be `next_index()` (any index if that is `None`).
    pub fn push(&mut self, slot: Slot) -> Result<(), String> {
        let index = slot.log_id.index;
        match self.next_index() {
            Some(next) if next != index => {
                return Err(format!(
                    "entry {index} would not follow the log (next index is {next})"
                ));
            }
            _ => {}
        }
        self.push_unchecked(slot);
        Ok(())
    }

    fn push_unchecked(&mut self, slot: Slot) {
        if self.slots.is_empty() {
            self.first = slot.log_id.index;
            self.uncached_prefix = 0;
        }
        if slot.entry.is_some() {
            self.cached += 1;
            self.cached_bytes += slot.loc.map_or(0, |l| l.len);
        } else {
            debug_assert!(slot.loc.is_some(), "an uncached slot must have a location");
        }
        self.slots.push_back(slot);
    }

    /// Replay variant of [`LogIndex::push`]. Entries at or below the purged index are skipped
    /// (their segment outlived the purge). While no entry is live, a later index than the next
    /// one is accepted: the segments holding the entries in between may be gone, deleted after a
    /// purge whose record comes later in the replay (a segment header repeats the purge point of
    /// the time the segment was created, not the final one). That such a purge does cover them
    /// is checked once replay is done ([`LogIndex::check_contiguous`]). A hole between live
    /// entries is an error at once.
    pub fn replay(&mut self, log_id: LogId, loc: Loc) -> Result<(), String> {
        if self.purged.is_some_and(|p| log_id.index <= p.index) {
            return Ok(());
        }
        let slot = Slot {
            log_id,
            loc: Some(loc),
            entry: None,
            write_id: 0,
        };
        if !self.slots.is_empty() {
            return self.push(slot);
        }
        if self.next_index().is_some_and(|next| next < log_id.index) {
            self.skipped_upto = self.skipped_upto.max(Some(log_id.index - 1));
        }
        self.push_unchecked(slot);
        Ok(())
    }

    /// Drops every entry after `last` (all of them for `None`).
    pub fn truncate_after(&mut self, last: Option<u64>) {
        let keep = match last {
            None => 0,
            Some(last) if last < self.first => 0,
            Some(last) => usize::try_from(last - self.first + 1)
                .unwrap_or(usize::MAX)
                .min(self.slots.len()),
        };
        let dropped: Vec<Slot> = self.slots.drain(keep..).collect();
        for slot in &dropped {
            self.uncount(slot);
        }
        self.uncached_prefix = self.uncached_prefix.min(self.slots.len());
    }

    /// Purges every entry up to and including `upto`; a purge behind the current one is a no-op.
    pub fn purge(&mut self, upto: LogId) {
        if self.purged.is_some_and(|p| p.index >= upto.index) {
            return;
        }
        self.purged = Some(upto);
        let drop = if upto.index < self.first {
            0
        } else {
            usize::try_from(upto.index - self.first + 1)
                .unwrap_or(usize::MAX)
                .min(self.slots.len())
        };
        let dropped: Vec<Slot> = self.slots.drain(..drop).collect();
        for slot in &dropped {
            self.uncount(slot);
        }
        self.first += drop as u64;
        self.uncached_prefix = self.uncached_prefix.saturating_sub(drop);
    }

    /// Records where the entry written by append `write_id` at `index` landed.
    pub fn set_loc(&mut self, index: u64, write_id: u64, loc: Loc) {
        let Some(pos) = index
            .checked_sub(self.first)
            .and_then(|p| usize::try_from(p).ok())
        else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(pos) {
            if slot.write_id == write_id {
                if slot.entry.is_some() {
                    self.cached_bytes -= slot.loc.map_or(0, |l| l.len);
                    self.cached_bytes += loc.len;
                }
                slot.loc = Some(loc);
            }
        }
    }

    /// Drops cached entries, oldest first, until at most `cache_max` remain and their records
    /// take at most `cache_bytes_max`, or the oldest cached entry is not written yet.
    pub fn evict(&mut self) {
        while (self.cached > self.cache_max || self.cached_bytes > self.cache_bytes_max)
            && self.uncached_prefix < self.slots.len()
        {
            let slot = &mut self.slots[self.uncached_prefix];
            let Some(loc) = slot.loc else {
                break;
            };
            if slot.entry.take().is_some() {
                self.cached -= 1;
                self.cached_bytes -= loc.len;
            }
            self.uncached_prefix += 1;
        }
    }

    /// Checks the replayed log against its purge boundary: every index replay jumped over must
    /// be purged, and the first live entry must directly follow the purged one. Together with
    /// [`LogIndex::replay`] refusing holes between live entries, this refuses every hole that no
    /// purge covers (e.g. a segment missing from the middle of the WAL).
    pub fn check_contiguous(&self) -> Result<(), String> {
        let purged = self.purged.map(|p| p.index);
        if let Some(skipped) = self.skipped_upto {
            if purged.is_none_or(|p| p < skipped) {
                return Err(format!(
                    "hole in the log: entries up to {skipped} are missing, purged only up to \
                     {purged:?}"
                ));
            }
        }
        match (purged, self.slots.front()) {
            (Some(p), Some(front)) if front.log_id.index != p + 1 => Err(format!(
                "hole in the log: purged up to {p} but first entry is {}",
                front.log_id.index
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_types::TypeConfig;
    use openraft::testing::{blank_ent, log_id};

    fn slot(index: u64, cached: bool) -> Slot {
        let entry = blank_ent::<TypeConfig>(1, 1, index);
        let loc = Loc {
            seq: 1,
            offset: index * 10,
            len: 10,
        };
        Slot {
            log_id: entry.log_id,
            loc: (!cached).then_some(loc),
            entry: cached.then_some(entry),
            write_id: index,
        }
    }

    #[test]
    fn push_requires_contiguity_and_purge_anchors_the_next_index() {
        let mut log = LogIndex::new(10);
        assert_eq!(log.next_index(), None);
        log.push(slot(5, true)).unwrap();
        assert!(log.push(slot(7, true)).is_err());
        log.push(slot(6, true)).unwrap();
        log.purge(log_id::<TypeConfig>(1, 1, 9));
        assert_eq!(log.next_index(), Some(10));
        assert_eq!(log.last_log_id(), Some(log_id::<TypeConfig>(1, 1, 9)));
        assert_eq!(log.cached(), 0);
        assert!(log.push(slot(11, true)).is_err());
        log.push(slot(10, true)).unwrap();
        assert_eq!(log.live_range(), 10..11);
    }

    #[test]
    fn truncate_and_purge_keep_the_cache_count_right() {
        let mut log = LogIndex::new(2);
        for i in 0..6 {
            log.push(slot(i, true)).unwrap();
        }
        log.evict();
        assert_eq!(log.cached(), 6, "unwritten entries are never evicted");
        for i in 0..6 {
            log.set_loc(
                i,
                i,
                Loc {
                    seq: 1,
                    offset: i,
                    len: 1,
                },
            );
        }
        log.evict();
        assert_eq!(log.cached(), 2);
        assert!(log.get(3).unwrap().entry.is_none());
        assert!(log.get(4).unwrap().entry.is_some());
        log.truncate_after(Some(4));
        assert_eq!(log.cached(), 1);
        log.purge(log_id::<TypeConfig>(1, 1, 1));
        assert_eq!(log.live_range(), 2..5);
        log.truncate_after(None);
        assert_eq!(log.next_index(), Some(2));
        assert_eq!(log.cached(), 0);
    }

    #[test]
    fn the_cache_is_bounded_by_record_bytes_too() {
        let mut log = LogIndex::new(100).with_cache_bytes_max(25);
        for i in 0..6 {
            log.push(slot(i, true)).unwrap();
            log.set_loc(
                i,
                i,
                Loc {
                    seq: 1,
                    offset: i * 10,
                    len: 10,
                },
            );
        }
        assert_eq!(log.cached_bytes(), 60);
        log.evict();
        assert_eq!((log.cached(), log.cached_bytes()), (2, 20));
        assert!(log.get(3).unwrap().entry.is_none());
        assert!(log.get(4).unwrap().entry.is_some());
        log.truncate_after(Some(4));
        assert_eq!((log.cached(), log.cached_bytes()), (1, 10));
        log.purge(log_id::<TypeConfig>(1, 1, 4));
        assert_eq!((log.cached(), log.cached_bytes()), (0, 0));
    }

    fn replay_all(log: &mut LogIndex, indexes: std::ops::Range<u64>) -> Result<(), String> {
        indexes
            .map(|i| slot(i, false))
            .try_for_each(|s| log.replay(s.log_id, s.loc.unwrap()))
    }

    #[test]
    fn replay_jumps_to_entries_whose_predecessors_a_later_purge_covers() {
        // A header said "purged 500"; segments with 501..5230 were deleted by purge 5500.
        let mut log = LogIndex::new(0);
        log.purge(log_id::<TypeConfig>(1, 1, 500));
        replay_all(&mut log, 5231..6000).unwrap();
        assert!(log.check_contiguous().is_err(), "not covered yet");
        log.purge(log_id::<TypeConfig>(1, 1, 5500));
        log.check_contiguous().unwrap();
        assert_eq!(log.live_range(), 5501..6000);
        assert_eq!(log.next_index(), Some(6000));
    }

    #[test]
    fn replay_refuses_holes_no_purge_covers() {
        // Between live entries: at once.
        let mut log = LogIndex::new(0);
        replay_all(&mut log, 0..10).unwrap();
        assert!(replay_all(&mut log, 11..12).is_err());

        // A jump on an empty log that the final purge does not reach, even if truncation
        // leaves no live entry to compare with the purge point.
        let mut log = LogIndex::new(0);
        log.purge(log_id::<TypeConfig>(1, 1, 5));
        replay_all(&mut log, 20..30).unwrap();
        log.purge(log_id::<TypeConfig>(1, 1, 15));
        log.truncate_after(Some(15));
        assert!(log.live_range().is_empty());
        assert!(log.check_contiguous().is_err());

        // With no purge ever seen, the log may start anywhere.
        let mut log = LogIndex::new(0);
        replay_all(&mut log, 7..9).unwrap();
        log.check_contiguous().unwrap();
    }

    #[test]
    fn a_late_location_for_a_replaced_entry_is_ignored() {
        let mut log = LogIndex::new(0);
        log.push(slot(1, true)).unwrap();
        log.truncate_after(None);
        let mut replacement = slot(1, true);
        replacement.write_id = 99;
        log.push(replacement).unwrap();
        log.set_loc(
            1,
            1,
            Loc {
                seq: 1,
                offset: 0,
                len: 1,
            },
        );
        assert!(log.get(1).unwrap().loc.is_none());
    }
}

//! `Tiers`: where the ledger keeps transfers and idempotency entries, so that memory holds the
//! working set and not all history.
//!
//! - `pending`: every pending (two-phase) transfer — the working set, always in memory.
//! - `young`: finished transfers and idempotency entries written since the last seal.
//! - `sealed`: generations of `young` set aside by [`Tiers::seal`] (newest last), waiting for
//!   the node to copy them into the cold history and then forget them.
//! - `cold`: everything older, behind the [`ColdHistory`] trait (the node keeps it on disk).
//!
//! A lookup asks the tiers in that order and the first answer wins. Finished transfers never
//! change again and idempotency entries are written once, so a record present in two tiers
//! (sealed and already copied to cold) is the same record in both; a pending transfer is only
//! ever in `pending`. The logical content — what hashes, snapshots and lookups see — is the
//! union, whichever tier holds a record, so when a replica seals and migrates does not change
//! anything it computes.
//!
//! The cold history may be AHEAD of the state: the node copies sealed generations to disk
//! before the snapshot that covers them is durable, so after a crash it can restart from an
//! older snapshot and replay the log over a cold history that already holds later records.
//! The horizon makes that exact: a cold record is visible only if it was written below the
//! index being executed (`Transfer::updated_index`, the entry's `result.index`). Finished
//! transfers and idempotency entries never change, so below the horizon the cold copy is the
//! record as it was; a transfer still pending at the horizon is found in `pending` first.

use crate::account::{Transfer, TransferStatus};
use crate::id_filter::IdHash;
use crate::id_map::IdMap;
use crate::idempotency::IdempotencyEntry;
use compact_str::CompactString;
use std::borrow::Cow;
use std::sync::Arc;

/// History kept outside memory. It must hold the records of the sealed generations handed to
/// it, each id once (finished records never change, so a record handed twice is the same), in
/// any order. A storage failure is not a business outcome and cannot be answered
/// deterministically: implementations panic (the node stops rather than apply with a hole in
/// its history).
pub trait ColdHistory: Send + Sync {
    /// The finished transfer with this id.
    fn transfer(&self, id: &str) -> Option<Transfer>;
    /// The idempotency entry of this command id.
    fn idempotency(&self, command_id: &str) -> Option<IdempotencyEntry>;
    /// Every transfer, in any order.
    fn transfers(&self) -> Box<dyn Iterator<Item = Transfer> + '_>;
    /// Every idempotency entry, in any order.
    fn idempotency_entries(&self) -> Box<dyn Iterator<Item = (String, IdempotencyEntry)> + '_>;
}

/// One sealed generation: what `young` held when it was sealed.
#[derive(Clone, Default)]
pub struct Sealed {
    /// Increases with every seal; [`Tiers::forget_sealed_through`] takes it.
    number: u64,
    transfers: IdMap<Transfer>,
    idempotency: IdMap<IdempotencyEntry>,
}

impl Sealed {
    /// This generation's number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Its finished transfers, in arbitrary order.
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.values_unordered()
    }

    /// Its idempotency entries, in arbitrary order.
    pub fn idempotency(&self) -> impl Iterator<Item = (&CompactString, &IdempotencyEntry)> {
        self.idempotency.iter_unordered()
    }

    /// Records in it.
    pub fn len(&self) -> usize {
        self.transfers.len() + self.idempotency.len()
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The previous contents of the two slots a transfer write may change (for undo).
#[derive(Debug)]
pub(crate) struct TransferSlots {
    /// What `pending` held for the id (the write always clears it).
    pub(crate) pending: Option<Transfer>,
    /// `Some(previous)` when the write went to `young`; `None` when `young` was not touched.
    pub(crate) young: Option<Option<Transfer>>,
}

/// The tiers of one ledger state. `clone` is O(number of sealed generations).
#[derive(Clone)]
pub(crate) struct Tiers {
    /// Pending transfers by id.
    pub(crate) pending: IdMap<Transfer>,
    young_transfers: IdMap<Transfer>,
    young_idempotency: IdMap<IdempotencyEntry>,
    sealed: Vec<Sealed>,
    next_seal: u64,
    cold: Option<Arc<dyn ColdHistory>>,
    /// Cold records written at this log index or later are invisible (see the module docs).
    horizon: u64,
}

impl Default for Tiers {
    fn default() -> Self {
        Self {
            pending: IdMap::default(),
            young_transfers: IdMap::default(),
            young_idempotency: IdMap::default(),
            sealed: Vec::new(),
            next_seal: 0,
            cold: None,
            horizon: u64::MAX,
        }
    }
}

impl std::fmt::Debug for Tiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiers")
            .field("pending", &self.pending.len())
            .field("young", &self.young_len())
            .field("sealed", &self.sealed.len())
            .field("cold", &self.cold.is_some())
            .finish()
    }
}

impl Tiers {
    /// The transfer with this id, from the first tier that has it.
    pub(crate) fn transfer(&self, id: &str) -> Option<Cow<'_, Transfer>> {
        if let Some(t) = self.transfer_in_memory(id) {
            return Some(Cow::Borrowed(t));
        }
        let horizon = self.horizon;
        let cold = self.cold.as_ref()?.transfer(id);
        cold.filter(|t| t.updated_index < horizon).map(Cow::Owned)
    }

    /// The idempotency entry of this command id, from the first tier that has it.
    pub(crate) fn idempotency(&self, command_id: &str) -> Option<Cow<'_, IdempotencyEntry>> {
        if let Some(e) = self.idempotency_in_memory(command_id) {
            return Some(Cow::Borrowed(e));
        }
        let horizon = self.horizon;
        let cold = self.cold.as_ref()?.idempotency(command_id);
        cold.filter(|e| e.result.index < horizon).map(Cow::Owned)
    }

    /// Stores a transfer: a pending one in `pending`, a finished one in `young` (and out of
    /// `pending`). Returns what the touched slots held.
    pub(crate) fn put_transfer(&mut self, transfer: Transfer) -> TransferSlots {
        let pending = self.pending.remove(&transfer.id);
        let young = if transfer.status == TransferStatus::Pending {
            self.pending.insert(transfer.id.clone(), transfer);
            None
        } else {
            Some(self.young_transfers.insert(transfer.id.clone(), transfer))
        };
        TransferSlots { pending, young }
    }

    /// Puts back what `put_transfer` returned; returns what `pending` held for the id just
    /// before (so the caller can keep its deadline index in step).
    pub(crate) fn restore_transfer(&mut self, id: &str, slots: TransferSlots) -> Option<Transfer> {
        let current = self.pending.remove(id);
        if let Some(prev) = slots.pending {
            self.pending.insert(id, prev);
        }
        match slots.young {
            Some(Some(prev)) => {
                self.young_transfers.insert(id, prev);
            }
            Some(None) => {
                self.young_transfers.remove(id);
            }
            None => {}
        }
        current
    }

    /// Records an idempotency entry in `young`; returns what `young` held for the id.
    pub(crate) fn put_idempotency(
        &mut self,
        command_id: &str,
        entry: IdempotencyEntry,
    ) -> Option<IdempotencyEntry> {
        self.young_idempotency.insert(command_id, entry)
    }

    /// Puts back the `young` slot of a command id.
    pub(crate) fn restore_idempotency(&mut self, command_id: &str, prev: Option<IdempotencyEntry>) {
        match prev {
            Some(entry) => {
                self.young_idempotency.insert(command_id, entry);
            }
            None => {
                self.young_idempotency.remove(command_id);
            }
        }
    }

    /// Sets `young` aside as a new sealed generation (O(1)); `young` starts empty. An empty
    /// `young` seals nothing.
    pub(crate) fn seal(&mut self) {
        if self.young_len() == 0 {
            return;
        }
        self.next_seal += 1;
        self.sealed.push(Sealed {
            number: self.next_seal,
            transfers: std::mem::take(&mut self.young_transfers),
            idempotency: std::mem::take(&mut self.young_idempotency),
        });
    }

    /// The sealed generations, oldest first.
    pub(crate) fn sealed(&self) -> &[Sealed] {
        &self.sealed
    }

    /// Drops the sealed generations numbered `<= number` (the cold history holds them now).
    pub(crate) fn forget_sealed_through(&mut self, number: u64) {
        self.sealed.retain(|s| s.number > number);
    }

    /// Serves lookups the memory tiers miss from `cold`.
    pub(crate) fn attach_cold(&mut self, cold: Arc<dyn ColdHistory>) {
        self.cold = Some(cold);
    }

    /// Makes cold records written below `index` visible, and no others.
    pub(crate) fn set_horizon(&mut self, index: u64) {
        self.horizon = index;
    }

    /// Records held in `young` and the sealed generations (not yet in cold history).
    pub(crate) fn hot_len(&self) -> usize {
        self.young_len() + self.sealed.iter().map(Sealed::len).sum::<usize>()
    }

    pub(crate) fn young_len(&self) -> usize {
        self.young_transfers.len() + self.young_idempotency.len()
    }

    /// The memory tiers of transfers, in lookup order: pending, young, sealed newest first.
    fn transfer_tiers(&self) -> impl Iterator<Item = &IdMap<Transfer>> + Clone {
        let young = [&self.pending, &self.young_transfers];
        young
            .into_iter()
            .chain(self.sealed.iter().rev().map(|s| &s.transfers))
    }

    /// The memory tiers of idempotency entries, in lookup order: young, sealed newest first.
    fn idempotency_tiers(&self) -> impl Iterator<Item = &IdMap<IdempotencyEntry>> + Clone {
        let sealed = self.sealed.iter().rev().map(|s| &s.idempotency);
        std::iter::once(&self.young_idempotency).chain(sealed)
    }

    /// Every transfer of every tier, each once, in no particular order.
    pub(crate) fn transfers_all(&self) -> impl Iterator<Item = Cow<'_, Transfer>> + '_ {
        let in_memory = each_once(self.transfer_tiers()).map(|(_, t)| Cow::Borrowed(t));
        let horizon = self.horizon;
        let cold = self.cold.iter().flat_map(move |cold| {
            let visible = cold.transfers().filter(move |t| t.updated_index < horizon);
            visible.filter(|t| self.transfer_in_memory(&t.id).is_none())
        });
        in_memory.chain(cold.map(Cow::Owned))
    }

    /// Every idempotency entry of every tier, each once, in no particular order.
    pub(crate) fn idempotency_all(
        &self,
    ) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, IdempotencyEntry>)> + '_ {
        let in_memory = each_once(self.idempotency_tiers());
        let in_memory = in_memory.map(|(id, e)| (Cow::Borrowed(id.as_str()), Cow::Borrowed(e)));
        let horizon = self.horizon;
        let cold = self.cold.iter().flat_map(move |cold| {
            let visible = cold.idempotency_entries();
            let visible = visible.filter(move |(_, e)| e.result.index < horizon);
            visible.filter(|(id, _)| self.idempotency_in_memory(id).is_none())
        });
        in_memory.chain(cold.map(|(id, e)| (Cow::Owned(id), Cow::Owned(e))))
    }

    /// The transfer from the first memory tier that holds it (the id hashed once for all).
    fn transfer_in_memory(&self, id: &str) -> Option<&Transfer> {
        let hash = IdHash::of(id);
        self.transfer_tiers().find_map(|m| m.get_hashed(id, hash))
    }

    /// The idempotency entry from the first memory tier that holds it.
    fn idempotency_in_memory(&self, id: &str) -> Option<&IdempotencyEntry> {
        let hash = IdHash::of(id);
        self.idempotency_tiers()
            .find_map(|m| m.get_hashed(id, hash))
    }
}

/// Every entry of `tiers` (in lookup order) once: an entry shadowed by the same id in an earlier
/// tier is skipped.
fn each_once<'a, V: Clone + 'a>(
    tiers: impl Iterator<Item = &'a IdMap<V>> + Clone + 'a,
) -> impl Iterator<Item = (&'a CompactString, &'a V)> + 'a {
    let all = tiers.clone();
    tiers.enumerate().flat_map(move |(n, map)| {
        let earlier = all.clone().take(n);
        let fresh = move |id: &CompactString| earlier.clone().all(|m| m.get(id).is_none());
        map.iter_unordered().filter(move |(id, _)| fresh(id))
    })
}

//! `IdMap`: the map the ledger keeps per-command records in (transfers and the idempotency
//! table), keyed by client-chosen id strings.
//!
//! It is a persistent hash array mapped trie (`imbl`) of `Arc`ed values: `clone` is O(1) and
//! shares structure, so a snapshot capture between two applies costs nothing however large
//! the history is; a write after a clone copies only the trie nodes on its path (the values
//! themselves are shared, never copied). Lookups hash the id once instead of comparing strings
//! down a B-tree. Values sit behind an `Arc` because trie nodes are allocated at full width:
//! inline values made the map take 2.3× the memory of a `BTreeMap`. The hasher is keyed
//! randomly per map (SipHash, `RandomState`), so clients cannot choose ids that collide.
//! Iteration order is therefore arbitrary and differs between replicas: nothing replicated or
//! hashed may depend on it (the state digest sums records as a multiset; expiry order comes from
//! the ordered deadline index).
//!
//! A membership filter ([`IdFilter`]) sits in front of the trie: most lookups are of new ids
//! that no map holds, and the filter answers those without walking it. It is shared like the
//! trie (an `Arc`, copied on the first insert after a clone).

use crate::id_filter::{IdFilter, IdHash};
use compact_str::CompactString;
use std::collections::hash_map::RandomState;
use std::sync::Arc;

/// Persistent hash map from an id to `V`.
#[derive(Clone, Debug)]
pub struct IdMap<V> {
    /// The trie.
    map: imbl::GenericHashMap<
        CompactString,
        Arc<V>,
        RandomState,
        imbl::shared_ptr::DefaultSharedPtr,
    >,
    /// Holds (at least) every id in `map`.
    filter: Arc<IdFilter>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        Self {
            map: imbl::GenericHashMap::default(),
            filter: Arc::default(),
        }
    }
}

impl<V: Clone> IdMap<V> {
    /// The value stored under `id`.
    pub fn get(&self, id: &str) -> Option<&V> {
        self.get_hashed(id, IdHash::of(id))
    }

    /// The value stored under `id`, whose hash the caller computed (to ask several maps).
    pub fn get_hashed(&self, id: &str, hash: IdHash) -> Option<&V> {
        if !self.filter.may_contain(hash) {
            return None;
        }
        self.map.get(id).map(|v| &**v)
    }

    /// Stores `value` under `id`; returns the value it replaced.
    pub fn insert(&mut self, id: impl Into<CompactString>, value: V) -> Option<V> {
        let id = id.into();
        let hash = IdHash::of(&id);
        let replaced = self.map.insert(id, Arc::new(value));
        let filter = Arc::make_mut(&mut self.filter);
        filter.insert(hash);
        if filter.is_over_capacity() {
            *filter = filter_of(self.map.keys());
        }
        replaced.map(Arc::unwrap_or_clone)
    }

    /// Removes `id`; returns its value.
    pub fn remove(&mut self, id: &str) -> Option<V> {
        self.map.remove(id).map(Arc::unwrap_or_clone)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every value, in arbitrary order (use only where order cannot matter).
    pub fn values_unordered(&self) -> impl Iterator<Item = &V> {
        self.map.values().map(|v| &**v)
    }

    /// Every entry, in arbitrary order (use only where order cannot matter).
    pub fn iter_unordered(&self) -> impl Iterator<Item = (&CompactString, &V)> {
        self.map.iter().map(|(k, v)| (k, &**v))
    }
}

impl<V: Clone> FromIterator<(CompactString, V)> for IdMap<V> {
    fn from_iter<I: IntoIterator<Item = (CompactString, V)>>(iter: I) -> Self {
        let map: imbl::GenericHashMap<_, _, _, _> =
            iter.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        let filter = Arc::new(filter_of(map.keys()));
        Self { map, filter }
    }
}

/// A filter holding `ids`, sized for four times as many (so that a growing map rebuilds it
/// O(log n) times).
fn filter_of<'a>(ids: impl ExactSizeIterator<Item = &'a CompactString>) -> IdFilter {
    let mut filter = IdFilter::for_keys(ids.len().saturating_mul(4));
    ids.for_each(|id| filter.insert(IdHash::of(id)));
    filter
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The entries, ordered by id.
    fn pairs(m: &IdMap<usize>) -> Vec<(String, usize)> {
        let mut pairs: Vec<(String, usize)> = m
            .iter_unordered()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        pairs.sort();
        pairs
    }

    #[test]
    fn entries_are_the_same_whatever_the_insertion_order() {
        let ids = ["b", "a", "d", "c", "aa"];
        let mut one = IdMap::default();
        let mut two = IdMap::default();
        for (n, id) in ids.iter().enumerate() {
            one.insert((*id).to_owned(), n);
        }
        for (n, id) in ids.iter().enumerate().rev() {
            two.insert((*id).to_owned(), n);
        }
        assert_eq!(pairs(&one), pairs(&two));
        let keys: Vec<String> = pairs(&one).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "aa", "b", "c", "d"]);
    }

    #[test]
    fn a_clone_is_independent_of_later_writes() {
        let mut map: IdMap<u32> = (0..1000).map(|n| (format!("id-{n}").into(), n)).collect();
        let captured = map.clone();
        assert_eq!(map.insert("id-0".to_owned(), 7), Some(0));
        assert_eq!(map.remove("id-1"), Some(1));
        assert_eq!(
            (captured.get("id-0"), captured.get("id-1")),
            (Some(&0), Some(&1))
        );
        assert_eq!((map.get("id-0"), map.get("id-1")), (Some(&7), None));
        assert_eq!((captured.len(), map.len()), (1000, 999));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Capture,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0..1200u16, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => (0..1200u16).prop_map(Op::Remove),
            1 => Just(Op::Capture),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The filter in front of the trie never hides an id the map holds: through its
        /// rebuilds as the map grows, removes (ids it keeps as "maybe") and clones (which share
        /// it until a write), every id answers exactly what a plain `HashMap` answers, in the
        /// map and in every captured clone.
        #[test]
        fn answers_as_a_plain_map_does(ops in proptest::collection::vec(op(), 1..2000)) {
            let mut map: IdMap<u32> = IdMap::default();
            let mut model: HashMap<String, u32> = HashMap::new();
            let mut captures: Vec<(IdMap<u32>, HashMap<String, u32>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let id = format!("t-{k}");
                        prop_assert_eq!(map.insert(id.clone(), v), model.insert(id, v));
                    }
                    Op::Remove(k) => {
                        let id = format!("t-{k}");
                        prop_assert_eq!(map.remove(&id), model.remove(&id));
                    }
                    Op::Capture => captures.push((map.clone(), model.clone())),
                }
            }
            captures.push((map, model));
            for (map, model) in &captures {
                prop_assert_eq!(map.len(), model.len());
                for k in 0..1200u16 {
                    let id = format!("t-{k}");
                    prop_assert_eq!(map.get(&id), model.get(&id));
                }
            }
        }
    }
}

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

use std::collections::hash_map::RandomState;
use std::sync::Arc;

/// Persistent hash map from an id to `V`.
#[derive(Clone, Debug)]
pub struct IdMap<V> {
    /// The trie.
    map: imbl::GenericHashMap<String, Arc<V>, RandomState, imbl::shared_ptr::DefaultSharedPtr>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        Self {
            map: imbl::GenericHashMap::default(),
        }
    }
}

impl<V: Clone> IdMap<V> {
    /// The value stored under `id`.
    pub fn get(&self, id: &str) -> Option<&V> {
        self.map.get(id).map(|v| &**v)
    }

    /// Stores `value` under `id`; returns the value it replaced.
    pub fn insert(&mut self, id: String, value: V) -> Option<V> {
        self.map
            .insert(id, Arc::new(value))
            .map(Arc::unwrap_or_clone)
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
    pub fn iter_unordered(&self) -> impl Iterator<Item = (&String, &V)> {
        self.map.iter().map(|(k, v)| (k, &**v))
    }
}

impl<V: Clone> FromIterator<(String, V)> for IdMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        Self {
            map: iter.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries, ordered by id.
    fn pairs(m: &IdMap<usize>) -> Vec<(String, usize)> {
        let mut pairs: Vec<(String, usize)> =
            m.iter_unordered().map(|(k, v)| (k.clone(), *v)).collect();
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
        let mut map: IdMap<u32> = (0..1000).map(|n| (format!("id-{n}"), n)).collect();
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
}

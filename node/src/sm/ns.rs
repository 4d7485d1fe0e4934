//! `Ns`: one logical table of the state machine, stored as a one-byte key prefix inside the
//! single sled tree. All tables live in one tree so one apply call commits with one
//! `Tree::apply_batch`, which sled applies atomically; a multi-tree transaction would give the
//! same atomicity but reads every key before writing it and cost about half of the node's CPU.
//! Keys handed to and returned from an `Ns` are unprefixed.

use sled::{IVec, Tree};
use std::ops::{Bound, RangeBounds};

/// A prefixed view of the state machine tree.
#[derive(Clone)]
pub(crate) struct Ns {
    tree: Tree,
    prefix: u8,
}

type Row = sled::Result<(IVec, IVec)>;

impl Ns {
    /// The view of table `prefix` in `tree`.
    pub(crate) fn new(tree: Tree, prefix: u8) -> Self {
        Self { tree, prefix }
    }

    /// The stored key of `key` in this table.
    pub(crate) fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(key.len() + 1);
        k.push(self.prefix);
        k.extend_from_slice(key);
        k
    }

    fn strip(row: Row) -> Row {
        row.map(|(k, v)| (IVec::from(&k[1..]), v))
    }

    /// Value of `key`.
    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<IVec>> {
        self.tree.get(self.key(key.as_ref()))
    }

    /// Inserts outside any batch (pointers and markers only; apply uses batches).
    pub(crate) fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<IVec>,
    ) -> sled::Result<Option<IVec>> {
        self.tree.insert(self.key(key.as_ref()), value)
    }

    /// Removes outside any batch.
    pub(crate) fn remove(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<IVec>> {
        self.tree.remove(self.key(key.as_ref()))
    }

    /// Rows with keys in `range`, keys unprefixed.
    pub(crate) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = Row> {
        let start = match range.start_bound() {
            Bound::Included(k) => Bound::Included(self.key(k.as_ref())),
            Bound::Excluded(k) => Bound::Excluded(self.key(k.as_ref())),
            Bound::Unbounded => Bound::Included(vec![self.prefix]),
        };
        let end = match range.end_bound() {
            Bound::Included(k) => Bound::Included(self.key(k.as_ref())),
            Bound::Excluded(k) => Bound::Excluded(self.key(k.as_ref())),
            Bound::Unbounded => self.end_of_table(),
        };
        self.tree.range::<Vec<u8>, _>((start, end)).map(Self::strip)
    }

    fn end_of_table(&self) -> Bound<Vec<u8>> {
        match self.prefix.checked_add(1) {
            Some(next) => Bound::Excluded(vec![next]),
            None => Bound::Unbounded,
        }
    }

    /// Every row of the table, in key order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = Row> {
        self.range::<&[u8], _>(..)
    }

    /// The row with the greatest key.
    pub(crate) fn last(&self) -> sled::Result<Option<(IVec, IVec)>> {
        self.iter().next_back().transpose()
    }

    /// Removes every row of the table (in bounded batches).
    pub(crate) fn clear(&self) -> sled::Result<()> {
        /// Keys removed per batch: bounds the batch's memory.
        const CLEAR_BATCH_KEYS_MAX: usize = 10_000;
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for row in self
                .tree
                .scan_prefix([self.prefix])
                .keys()
                .take(CLEAR_BATCH_KEYS_MAX)
            {
                batch.remove(row?);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            self.tree.apply_batch(batch)?;
        }
    }
}

/// A batch of writes across tables, applied atomically to the state machine tree.
#[derive(Default)]
pub(crate) struct NsBatch {
    batch: sled::Batch,
}

impl NsBatch {
    /// Queues `key = value` in table `ns`.
    pub(crate) fn insert(&mut self, ns: &Ns, key: impl AsRef<[u8]>, value: impl Into<IVec>) {
        self.batch.insert(ns.key(key.as_ref()), value.into());
    }

    /// Applies everything atomically (sled guarantees a batch on one tree is atomic).
    pub(crate) fn apply(self, tree: &Tree) -> sled::Result<()> {
        tree.apply_batch(self.batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_disjoint_and_ranges_stay_inside() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        let (a, b, c) = (
            Ns::new(tree.clone(), 1),
            Ns::new(tree.clone(), 2),
            Ns::new(tree.clone(), 255),
        );
        let mut batch = NsBatch::default();
        for i in 0u8..5 {
            batch.insert(&a, [i], vec![i]);
            batch.insert(&b, [i], vec![10 + i]);
            batch.insert(&c, [i], vec![20 + i]);
        }
        batch.apply(&tree).unwrap();
        assert_eq!(a.iter().count(), 5);
        assert_eq!(b.get([3]).unwrap().unwrap().as_ref(), &[13]);
        assert_eq!(b.last().unwrap().unwrap().0.as_ref(), &[4]);
        assert_eq!(c.last().unwrap().unwrap().1.as_ref(), &[24]);
        let keys: Vec<u8> = b.range([1u8]..=[3u8]).map(|r| r.unwrap().0[0]).collect();
        assert_eq!(keys, vec![1, 2, 3]);
        assert_eq!(
            b.range(..[2u8]).next_back().unwrap().unwrap().0.as_ref(),
            &[1]
        );
        b.clear().unwrap();
        assert_eq!(b.iter().count(), 0);
        assert_eq!(a.iter().count(), 5);
        assert_eq!(c.iter().count(), 5);
    }
}

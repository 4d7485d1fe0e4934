//! `IdFilter`: the membership filter in front of an [`IdMap`](crate::id_map::IdMap), so that
//! asking a map for an id it does not hold almost never walks its trie.
//!
//! Every new command id is looked up in every memory tier before it is stored (the idempotency
//! rule, then the duplicate-transfer check) and is in none of them: with a trie of 100k ids a
//! miss is four dependent cache misses per tier, and those walks were a tenth of all CPU under
//! the batch API. A filter answer costs one cache line.
//!
//! It is a register-blocked bloom filter: a key's hash picks one 64-bit word and `PROBES` bits
//! inside it, so an insert or a query touches one word. At `BITS_PER_KEY` bits per key its
//! false-positive rate is about 1 %; a false positive only costs the trie walk it would have
//! made anyway. Keys are never removed (a removed id stays "maybe", which is only slower);
//! when more keys were inserted than it was sized for, the map rebuilds it larger from its
//! current keys, so the rate stays bounded however large the map grows.
//!
//! Not the cold index's filter (`node::sm::cold::bloom`): that one spreads 11 probes over the
//! whole array for a 0.05 % rate, because its false positive costs a disk block read; here a
//! false positive costs one trie walk, and an insert on the apply path should touch one word.
//!
//! The hash is XXH3 unkeyed: a client choosing ids that share a word only makes its own lookups
//! fall back to the trie, whose own hasher is keyed.

/// Bits of filter per key it is sized for (2 bytes of memory per id).
const BITS_PER_KEY: usize = 16;

/// Bits set per key, all in one word.
const PROBES: u32 = 5;

/// Keys the smallest filter is sized for.
const MIN_KEYS: usize = 256;

/// The hash of an id, computed once per lookup and shared by every map it is asked of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdHash(u64);

impl IdHash {
    /// The hash of `id`.
    pub fn of(id: &str) -> Self {
        Self(xxhash_rust::xxh3::xxh3_64(id.as_bytes()))
    }

    /// The word (of `words`) this key lives in, and the bits it sets there.
    fn slot(self, words: usize) -> (usize, u64) {
        // Multiply-shift maps the hash onto the words; the low 30 bits choose the probes.
        let word = ((u128::from(self.0) * words as u128) >> 64) as usize;
        let mask = (0..PROBES).fold(0u64, |mask, i| mask | 1 << ((self.0 >> (6 * i)) & 63));
        (word, mask)
    }
}

/// A register-blocked bloom filter over id hashes.
#[derive(Clone, Debug)]
pub(crate) struct IdFilter {
    words: Box<[u64]>,
    /// Keys inserted since it was built.
    inserted: usize,
}

impl Default for IdFilter {
    fn default() -> Self {
        Self::for_keys(MIN_KEYS)
    }
}

impl IdFilter {
    /// An empty filter sized for `keys` keys.
    pub(crate) fn for_keys(keys: usize) -> Self {
        let words = (keys.max(MIN_KEYS) * BITS_PER_KEY).div_ceil(64);
        Self {
            words: vec![0; words].into_boxed_slice(),
            inserted: 0,
        }
    }

    /// Adds a key.
    pub(crate) fn insert(&mut self, hash: IdHash) {
        let (word, mask) = hash.slot(self.words.len());
        self.words[word] |= mask;
        self.inserted += 1;
    }

    /// False when the key was certainly never inserted.
    pub(crate) fn may_contain(&self, hash: IdHash) -> bool {
        let (word, mask) = hash.slot(self.words.len());
        self.words[word] & mask == mask
    }

    /// True when more keys went in than it was sized for (its false-positive rate is rising).
    pub(crate) fn is_over_capacity(&self) -> bool {
        self.inserted * BITS_PER_KEY > self.words.len() * 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_keys_are_found_and_false_positives_stay_near_one_percent() {
        let keys = 100_000;
        let mut filter = IdFilter::for_keys(keys);
        let hash = |n: usize| IdHash::of(&format!("transfer-{n}"));
        (0..keys).for_each(|n| filter.insert(hash(n)));
        assert!(!filter.is_over_capacity());
        assert!((0..keys).all(|n| filter.may_contain(hash(n))));
        let tries = 200_000;
        let false_positives = (keys..keys + tries)
            .filter(|n| filter.may_contain(hash(*n)))
            .count();
        // About 1 % at 16 bits per key and 5 probes in one word; well under 2 %.
        assert!(false_positives < tries / 50, "{false_positives} of {tries}");
        filter.insert(hash(keys));
        assert!(filter.is_over_capacity());
    }
}

//! `Bloom`: the filter of one index run over its records' 64-bit key hashes, so that a lookup
//! of a key the run does not hold almost never reads one of its blocks.
//!
//! `BITS_PER_KEY` bits per key and `HASHES` probes give a false-positive rate of about 0.05 %.
//! The probes are derived from the key hash by double hashing (the key hash is already a
//! full 64-bit hash, XXH3, so no further hashing of the key is needed); a probe is mapped onto the bit array
//! by multiply-shift instead of a modulo.

/// Bits of filter per key (2 bytes of memory per record).
pub(super) const BITS_PER_KEY: u64 = 16;

/// Probes per key (about `BITS_PER_KEY * ln 2`, the optimum).
pub(super) const HASHES: u32 = 11;

/// A bloom filter over key hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Bloom {
    words: Box<[u64]>,
}

impl Bloom {
    /// An empty filter sized for `keys` keys.
    pub(super) fn with_capacity(keys: u64) -> Self {
        let words = (keys * BITS_PER_KEY).div_ceil(64).max(1);
        let words = usize::try_from(words).expect("bloom filter fits in memory");
        Self {
            words: vec![0; words].into_boxed_slice(),
        }
    }

    /// A filter from its stored words (refused when empty).
    pub(super) fn from_words(words: Vec<u64>) -> Option<Self> {
        (!words.is_empty()).then(|| Self {
            words: words.into_boxed_slice(),
        })
    }

    /// The bit array, 64 bits a word.
    pub(super) fn words(&self) -> &[u64] {
        &self.words
    }

    /// Adds a key hash.
    pub(super) fn insert(&mut self, hash: u64) {
        let bits = self.bits();
        for bit in probes(hash, bits) {
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// False when the key hash was certainly never inserted.
    pub(super) fn may_contain(&self, hash: u64) -> bool {
        let bits = self.bits();
        probes(hash, bits).all(|bit| self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    fn bits(&self) -> u64 {
        self.words.len() as u64 * 64
    }
}

/// The `HASHES` bit positions of a key hash in a filter of `bits` bits.
fn probes(hash: u64, bits: u64) -> impl Iterator<Item = u64> {
    let step = mix(hash) | 1;
    (0..u64::from(HASHES)).map(move |i| {
        let probe = hash.wrapping_add(i.wrapping_mul(step));
        ((u128::from(probe) * u128::from(bits)) >> 64) as u64
    })
}

/// A 64-bit finalizer (the one of splitmix64): a second hash independent of the first.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_hashes_are_found_and_false_positives_are_rare() {
        let keys = 100_000u64;
        let mut bloom = Bloom::with_capacity(keys);
        for k in 0..keys {
            bloom.insert(mix(k));
        }
        assert!((0..keys).all(|k| bloom.may_contain(mix(k))));
        let probes_count = 200_000u64;
        let false_positives = (keys..keys + probes_count)
            .filter(|k| bloom.may_contain(mix(*k)))
            .count();
        // Well under 0.1 %.
        assert!(false_positives < 200, "{false_positives} false positives");
        let back = Bloom::from_words(bloom.words().to_vec()).unwrap();
        assert_eq!(back, bloom);
    }
}

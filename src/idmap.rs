//! A hash map keyed by job id, with a hash fit for ids.
//!
//! Job ids are handed out by the server, one after another, so no client can
//! choose them to collide: the default SipHash (built against chosen keys)
//! buys nothing here and costs a third of recovery time. A multiplicative
//! (Fibonacci) hash spreads the ids instead; since hashbrown picks buckets
//! with the low bits, the high half of the product is folded into them, or
//! ids a power of two apart (a queue that keeps one job in 1024) would all
//! land in a few buckets.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `HashMap<u64, V>` with [`IdHasher`].
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Hashes one `u64` by multiplying it with 2^64 / φ and folding the high
/// half into the low half.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only ids are hashed with this; other keys fall back to FNV-1a.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, id: u64) {
        let product = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = product ^ (product >> 32);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_spread_over_the_top_bits() {
        // hashbrown picks buckets with the low bits and tags with the top 7.
        let top: std::collections::HashSet<u64> = (1..=128u64).map(|id| hash(id) >> 57).collect();
        assert!(top.len() > 64, "{} distinct tags", top.len());
    }

    fn hash(id: u64) -> u64 {
        let mut h = IdHasher::default();
        h.write_u64(id);
        h.finish()
    }

    #[test]
    fn power_of_two_strides_spread_over_the_low_bits() {
        for stride in [1u64, 2, 1024, 1 << 20, 1 << 32] {
            let buckets: std::collections::HashSet<u64> = (0..4096u64).map(|i| hash(i * stride) & 4095).collect();
            assert!(buckets.len() > 2048, "stride {stride}: {} of 4096 buckets used", buckets.len());
        }
    }

    #[test]
    fn works_as_a_map() {
        let mut map: IdMap<&str> = IdMap::default();
        for id in 0..10_000 {
            map.insert(id, "x");
        }
        assert_eq!(map.len(), 10_000);
        assert_eq!(map.get(&9_999), Some(&"x"));
    }
}

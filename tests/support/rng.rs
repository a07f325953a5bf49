//! A tiny deterministic pseudo-random sequence (xorshift64*), so "random"
//! input and timings in tests are reproducible from their seed.
//!
//! The one generator of every test: the library's unit tests include this
//! file too (`src/engine/tests/mod.rs`), so it must need nothing but `core`.

/// The generator; the seed must not be zero.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index into a slice of `len` elements.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}

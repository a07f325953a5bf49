//! A job body on its way in: an allocation of the announced size, filled
//! from the front, which becomes the job's body when full.

use std::mem::MaybeUninit;
use std::rc::Rc;

#[derive(Debug)]
pub struct PartialBody {
    /// Not shared until [`PartialBody::take`]: this holds the only
    /// reference.
    buf: Rc<[MaybeUninit<u8>]>,
    /// `buf[..filled]` has been written.
    filled: usize,
}

impl PartialBody {
    /// An empty body of `len` bytes. The memory is not touched (nor zeroed)
    /// until bytes arrive.
    pub fn new(len: usize) -> PartialBody {
        PartialBody { buf: Rc::new_uninit_slice(len), filled: 0 }
    }

    pub fn size(&self) -> usize {
        self.buf.len()
    }

    pub fn filled(&self) -> usize {
        self.filled
    }

    pub fn is_full(&self) -> bool {
        self.filled == self.buf.len()
    }

    /// The bytes received so far.
    pub fn received(&self) -> &[u8] {
        // SAFETY: `buf[..filled]` has been written.
        unsafe { self.buf[..self.filled].assume_init_ref() }
    }

    /// Copies as much of `bytes` as the body still lacks; returns how much.
    pub fn fill(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.size() - self.filled);
        let start = self.filled;
        self.unfilled()[..n].write_copy_of_slice(&bytes[..n]);
        self.filled = start + n;
        n
    }

    /// Where the next bytes go, for a read straight from a socket; then
    /// [`PartialBody::assume_filled`].
    pub fn unfilled(&mut self) -> &mut [MaybeUninit<u8>] {
        let filled = self.filled;
        &mut Rc::get_mut(&mut self.buf).expect("a partial body is not shared")[filled..]
    }

    /// Counts `n` more bytes as received.
    ///
    /// # Safety
    /// The first `n` bytes of [`PartialBody::unfilled`] have been written.
    pub unsafe fn assume_filled(&mut self, n: usize) {
        assert!(n <= self.size() - self.filled, "no more than the body's size");
        self.filled += n;
    }

    /// Forgets the bytes received, to fill the allocation anew.
    pub fn clear(&mut self) {
        self.filled = 0;
    }

    /// The complete body.
    pub fn take(self) -> Rc<[u8]> {
        assert!(self.is_full(), "the body is complete");
        // SAFETY: every byte of `buf` was written (`filled == len`).
        unsafe { self.buf.assume_init() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_in_order() {
        let mut body = PartialBody::new(5);
        assert_eq!(body.fill(b"ab"), 2);
        assert_eq!(body.received(), b"ab");
        assert_eq!(body.fill(b"cdefg"), 3);
        assert!(body.is_full());
        assert_eq!(body.fill(b"h"), 0);
        assert_eq!(&body.take()[..], b"abcde");
    }
}

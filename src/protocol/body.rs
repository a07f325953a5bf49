//! A job body on its way in: filled from the front as its bytes arrive, it
//! becomes the job's body when full.
//!
//! Its allocation grows with what arrived, not with what the put line
//! announced: a client may announce a 1 GiB body (`-z 1073741824`) and send
//! three bytes, and thousands of clients may do so at once. Allocating the
//! announced size at the line cost no resident memory until the pages were
//! written, but it did cost address space: under `ulimit -v 4194304`, four
//! clients announcing 1 GiB each made an allocation fail, and sprout abort.
//! So the allocation at least doubles each time it is outgrown, up to the
//! announced size: it is never more than twice what arrived, the regrowths
//! copy less than the body's size in all, and a full body's allocation is
//! exactly its size, so it becomes the job's `Rc<[u8]>` without a copy.
//! Growing costs a client that sends a large body in one go an allocation
//! per doubling, though, each one fresh pages for the kernel to fault in.
//! So for a body larger than a read, the connection makes its whole room
//! at its line while the server's allowance for room ahead of the bytes
//! lasts (`server/allowance.rs`), and past it, makes room at once for the
//! bytes waiting in the socket, which have arrived too ([`make_room`]).
//!
//! [`make_room`]: PartialBody::make_room
//!
//! A reader that aims a read straight at a body allocates it whole
//! ([`PartialBody::allocated`]); it does so only for a body of the size the
//! client's last put had, and no larger than the server's read buffer.

use std::mem::MaybeUninit;
use std::rc::Rc;

#[derive(Debug)]
pub struct PartialBody {
    /// Room for the body's first bytes: at most `size`, and `size` once
    /// full. Not shared until [`PartialBody::take`]: this holds the only
    /// reference.
    buf: Rc<[MaybeUninit<u8>]>,
    /// `buf[..filled]` has been written.
    filled: usize,
    /// The body's size, as its put line announced it.
    size: usize,
}

impl PartialBody {
    /// An empty body of `size` bytes, with no room yet: [`PartialBody::fill`]
    /// makes room for what it is given.
    pub fn new(size: usize) -> PartialBody {
        PartialBody { buf: Rc::new_uninit_slice(0), filled: 0, size }
    }

    /// An empty body of `size` bytes with room for all of them, for a read
    /// into [`PartialBody::unfilled`]. The memory is not touched (nor
    /// zeroed) until bytes arrive.
    pub fn allocated(size: usize) -> PartialBody {
        PartialBody { buf: Rc::new_uninit_slice(size), filled: 0, size }
    }

    /// The body's size, as announced.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The bytes allocated for it so far.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn filled(&self) -> usize {
        self.filled
    }

    pub fn is_full(&self) -> bool {
        self.filled == self.size
    }

    /// The bytes received so far.
    pub fn received(&self) -> &[u8] {
        // SAFETY: `buf[..filled]` has been written.
        unsafe { self.buf[..self.filled].assume_init_ref() }
    }

    /// Copies as much of `bytes` as the body still lacks, making room for
    /// it; returns how much.
    pub fn fill(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.size - self.filled);
        self.make_room(n);
        let start = self.filled;
        self.unfilled()[..n].write_copy_of_slice(&bytes[..n]);
        self.filled = start + n;
        n
    }

    /// Grows the allocation to hold `n` more bytes (as many as the body
    /// lacks, at most): to at least twice its size, at most the body's,
    /// keeping the bytes received. A reader that knows more bytes have
    /// arrived than it reads at once makes room for them all, and saves
    /// the regrowths.
    pub fn make_room(&mut self, n: usize) {
        let needed = self.filled + n.min(self.size - self.filled);
        if needed <= self.buf.len() {
            return;
        }
        let capacity = needed.max(2 * self.buf.len()).min(self.size);
        let mut grown = Rc::new_uninit_slice(capacity);
        let room = Rc::get_mut(&mut grown).expect("a new allocation is not shared");
        room[..self.filled].copy_from_slice(&self.buf[..self.filled]);
        self.buf = grown;
    }

    /// Where the next bytes go, up to the end of the allocation (the body's
    /// end, for one made by [`PartialBody::allocated`]), for a read straight
    /// from a socket; then [`PartialBody::assume_filled`].
    pub fn unfilled(&mut self) -> &mut [MaybeUninit<u8>] {
        let filled = self.filled;
        &mut Rc::get_mut(&mut self.buf).expect("a partial body is not shared")[filled..]
    }

    /// Counts `n` more bytes as received.
    ///
    /// # Safety
    /// The first `n` bytes of [`PartialBody::unfilled`] have been written.
    pub unsafe fn assume_filled(&mut self, n: usize) {
        assert!(n <= self.buf.len() - self.filled, "no more than the allocation holds");
        self.filled += n;
    }

    /// Forgets the bytes received, to fill the allocation anew.
    pub fn clear(&mut self) {
        self.filled = 0;
    }

    /// The complete body.
    pub fn take(self) -> Rc<[u8]> {
        assert!(self.is_full(), "the body is complete");
        debug_assert_eq!(self.buf.len(), self.size, "room never grows past the body's size");
        // SAFETY: every byte of `buf` was written (`filled == size`, and the
        // allocation is never larger than `size`).
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

    /// A body announced at 1 GiB of which a few bytes came holds room for
    /// those bytes, not for the gigabyte.
    #[test]
    fn room_grows_with_what_arrived() {
        let mut body = PartialBody::new(1 << 30);
        assert_eq!(body.capacity(), 0);
        assert_eq!(body.fill(b"abc"), 3);
        assert_eq!(body.capacity(), 3);
        assert_eq!(body.fill(&[b'x'; 1000]), 1000);
        assert_eq!(body.capacity(), 1003, "what arrived, when that is more than double");
        assert_eq!(body.fill(b"y"), 1);
        assert_eq!(body.capacity(), 2006, "doubled");
        assert_eq!(&body.received()[..4], b"abcx");
        assert_eq!(body.received()[1003], b'y');
    }

    /// Byte by byte, the room doubles (a regrowth every time the filled
    /// bytes reach a power of two) and never exceeds twice what arrived nor
    /// the body's size; the full body is exactly its size and intact.
    #[test]
    fn room_doubles_up_to_the_size() {
        const SIZE: usize = 1000;
        let expected: Vec<u8> = (0..SIZE).map(|i| (i * 7) as u8).collect();
        let mut body = PartialBody::new(SIZE);
        let mut regrowths = 0;
        for (i, byte) in expected.iter().enumerate() {
            let before = body.capacity();
            body.fill(&[*byte]);
            regrowths += usize::from(body.capacity() != before);
            assert!(body.capacity() <= (2 * (i + 1)).min(SIZE), "room {} after {} bytes", body.capacity(), i + 1);
        }
        assert_eq!(regrowths, 11, "1, 2, 4, ..., 512, then the size");
        assert_eq!(body.capacity(), SIZE);
        assert_eq!(&body.take()[..], &expected[..]);
    }

    /// Room made for bytes known to have arrived is made at once, never
    /// past the body's size, and then filled without a regrowth.
    #[test]
    fn room_made_ahead_for_what_arrived() {
        let mut body = PartialBody::new(1000);
        body.make_room(600);
        assert_eq!(body.capacity(), 600);
        assert_eq!(body.fill(&[b'a'; 600]), 600);
        assert_eq!(body.capacity(), 600, "no regrowth for bytes the room was made for");
        body.make_room(5000);
        assert_eq!(body.capacity(), 1000, "never past the size");
        assert_eq!(body.fill(&[b'b'; 500]), 400);
        assert_eq!(body.take().len(), 1000);
    }

    #[test]
    fn allocated_bodies_have_room_for_all() {
        let mut body = PartialBody::allocated(10);
        assert_eq!(body.capacity(), 10);
        assert_eq!(body.unfilled().len(), 10);
        body.unfilled()[..4].write_copy_of_slice(b"0123");
        // SAFETY: the first 4 bytes of `unfilled` were just written.
        unsafe { body.assume_filled(4) };
        assert_eq!(body.fill(b"456789x"), 6);
        assert_eq!(body.capacity(), 10);
        assert_eq!(&body.take()[..], b"0123456789");
    }
}

//! Reading a record's fields off its payload, and writing them into a
//! record's head: fixed-width little-endian integers (format 1) and LEB128
//! varints (format 2). Every read is checked: a field cut short, a varint
//! longer than its type or not in its shortest form reads as `None`, which
//! makes the record invalid.

/// A reader over a payload, consumed from the front.
pub(super) struct Cursor<'a>(pub(super) &'a [u8]);

impl<'a> Cursor<'a> {
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    /// `Some` if every byte was read: trailing bytes mean the layout is not
    /// what the checksum covered.
    pub(super) fn at_end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }

    pub(super) fn i64(&mut self) -> Option<i64> {
        self.take(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()))
    }

    /// An LEB128 varint of at most 64 bits, in its shortest form (so each
    /// value has one encoding, as the writer makes it).
    #[inline(always)]
    pub(super) fn varint(&mut self) -> Option<u64> {
        // Most fields are small: one byte, one test, inlined.
        if let Some((&byte, rest)) = self.0.split_first()
            && byte < 0x80
        {
            self.0 = rest;
            return Some(byte.into());
        }
        self.long_varint()
    }

    /// [`Cursor::varint`] of two bytes or more (or none).
    #[inline(never)]
    fn long_varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.0.iter().enumerate().take(MAX_VARINT_LEN) {
            let bits = u64::from(byte & 0x7f);
            // The tenth byte holds the 64th bit only.
            if i == MAX_VARINT_LEN - 1 && byte > 1 {
                return None;
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                // A last byte of zero after others is a longer form of a
                // shorter encoding.
                if i > 0 && byte == 0 {
                    return None;
                }
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    /// A varint that must fit in 32 bits.
    #[inline(always)]
    pub(super) fn varint_u32(&mut self) -> Option<u32> {
        u32::try_from(self.varint()?).ok()
    }

    /// A zigzag varint: a signed offset.
    #[inline(always)]
    pub(super) fn zigzag(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }
}

/// Bytes of the longest varint (a 64-bit value).
pub(super) const MAX_VARINT_LEN: usize = 10;

/// A writer into a fixed buffer (a record's head: format 1's on the stack,
/// format 2's in place at the end of the file's buffer), from the front.
/// The buffer is sized for the largest head, so writes never fail: each
/// byte's index is taken modulo the buffer's size (a power of two), which
/// costs one `and` where a bounds check costs a compare and a branch (a
/// format-2 put's head is some twenty bytes). A head that outgrew its
/// buffer would wrap around instead of failing, so the caller takes
/// [`Head::end`], which checks, once the head is written.
pub(super) struct Head<'a, const N: usize> {
    pub(super) buf: &'a mut [u8; N],
    pub(super) at: usize,
}

impl<const N: usize> Head<'_, N> {
    const POWER_OF_TWO: () = assert!(N.is_power_of_two(), "a head's buffer is a power of two long");

    /// Where the head written ends, checked to be within the buffer: once
    /// a head, not once a byte (a head longer than its buffer would have
    /// wrapped around in it).
    #[inline(always)]
    pub(super) fn end(&self) -> usize {
        assert!(self.at <= N, "a record's head is longer than its buffer");
        self.at
    }

    pub(super) fn bytes(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    #[inline]
    pub(super) fn u8(&mut self, b: u8) {
        let () = Self::POWER_OF_TWO;
        self.buf[self.at % N] = b;
        self.at += 1;
    }

    #[inline(always)]
    pub(super) fn varint(&mut self, v: u64) {
        // Most fields are small: one byte, one test.
        if v < 0x80 {
            return self.u8(v as u8);
        }
        // The longer ones (an id, a creation time: 3 to 7 bytes) through
        // one bounds check, each byte at a fixed place in it: a store, a
        // shift and a test a byte.
        match self.buf.get_mut(self.at..).and_then(|rest| rest.first_chunk_mut::<MAX_VARINT_LEN>()) {
            Some(window) => self.at += leb128(v, window),
            None => self.varint_bytewise(v),
        }
    }

    /// [`Head::varint`] a byte at a time, each where `at` says: near the
    /// end of the buffer (a head that outgrew it).
    fn varint_bytewise(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.u8(v as u8 | 0x80);
            v >>= 7;
        }
        self.u8(v as u8);
    }

    /// A signed offset, zigzag-encoded so that small offsets either way
    /// take few bytes.
    #[inline]
    pub(super) fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }
}

/// Writes `v`'s LEB128 bytes at the start of `out` and returns how many.
#[inline(always)]
fn leb128(mut v: u64, out: &mut [u8; MAX_VARINT_LEN]) -> usize {
    for (i, byte) in out.iter_mut().enumerate() {
        if v < 0x80 {
            *byte = v as u8;
            return i + 1;
        }
        *byte = v as u8 | 0x80;
        v >>= 7;
    }
    unreachable!("a 64-bit value takes at most {MAX_VARINT_LEN} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(v: u64) -> Vec<u8> {
        let mut buf = [0u8; 16];
        let mut head = Head { buf: &mut buf, at: 0 };
        head.varint(v);
        let at = head.at;
        buf[..at].to_vec()
    }

    #[test]
    fn varints_are_leb128() {
        assert_eq!(encoded(0), [0]);
        assert_eq!(encoded(127), [0x7f]);
        assert_eq!(encoded(128), [0x80, 0x01]);
        assert_eq!(encoded(300), [0xac, 0x02]);
        assert_eq!(encoded(u64::MAX), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        for v in [0, 1, 127, 128, 16383, 16384, u32::MAX as u64, 1 << 63, u64::MAX] {
            let bytes = encoded(v);
            let mut cursor = Cursor(&bytes);
            assert_eq!(cursor.varint(), Some(v));
            assert!(cursor.0.is_empty());
        }
    }

    #[test]
    fn a_varint_is_the_same_bytes_near_the_end_of_the_buffer() {
        let mut values: Vec<u64> = (0..64).flat_map(|bit| [1 << bit, (1 << bit) - 1, (1 << bit) + 1]).collect();
        values.extend([0x5555_5555_5555_5555, 0xaaaa_aaaa_aaaa_aaaa, u64::MAX]);
        for v in values {
            // From 10 on, ten bytes do not fit in 16: a byte at a time.
            for at in [0, 6, 10] {
                let mut buf = [0u8; 16];
                let mut head = Head { buf: &mut buf, at };
                head.varint(v);
                let end = head.at;
                assert_eq!(end - at, encoded(v).len(), "{v:#x} at {at}");
                if end <= 16 {
                    assert_eq!(buf[at..end], encoded(v), "{v:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn a_varint_too_long_or_not_shortest_is_refused() {
        // 2^64: past 64 bits.
        assert_eq!(Cursor(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]).varint(), None);
        // Eleven bytes.
        assert_eq!(Cursor(&[0x80; 11]).varint(), None);
        // 0 written in two bytes.
        assert_eq!(Cursor(&[0x80, 0x00]).varint(), None);
        // Cut short.
        assert_eq!(Cursor(&[0x80]).varint(), None);
        assert_eq!(Cursor(&[0x80, 0x80, 0x80, 0x80, 0x10]).varint_u32(), None);
        assert_eq!(Cursor(&[0xff, 0xff, 0xff, 0xff, 0x0f]).varint_u32(), Some(u32::MAX));
    }

    /// The rule, a byte at a time: the value and the bytes it took.
    fn reference_varint(bytes: &[u8]) -> Option<(u64, usize)> {
        let mut value = 0u64;
        for (i, &byte) in bytes.iter().enumerate().take(MAX_VARINT_LEN) {
            if i == MAX_VARINT_LEN - 1 && byte > 1 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return (i == 0 || byte != 0).then_some((value, i + 1));
            }
        }
        None
    }

    #[test]
    fn varints_read_as_the_rule_says_whatever_follows_them() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            // Any bytes, with high bits as often set as not, cut at any
            // length: every length of varint, cut short or not, shortest or
            // not, with and without bytes after it (a faster reader must
            // keep this test).
            let random = next().to_le_bytes().into_iter().chain(next().to_le_bytes());
            let bias = next();
            let bytes: Vec<u8> =
                random.enumerate().map(|(i, b)| if bias >> i & 1 == 1 { b | 0x80 } else { b & 0x7f }).collect();
            let bytes = &bytes[..(next() % 17) as usize];
            let mut cursor = Cursor(bytes);
            let read = cursor.varint().map(|v| (v, bytes.len() - cursor.0.len()));
            assert_eq!(read, reference_varint(bytes), "{bytes:02x?}");
        }
        for bits in 0..64 {
            let v = (1u64 << bits) | (next() & ((1 << bits) - 1));
            let mut bytes = encoded(v);
            let len = bytes.len();
            bytes.extend_from_slice(&[0xff; 8]);
            let mut cursor = Cursor(&bytes);
            assert_eq!(cursor.varint(), Some(v), "{bits} bits");
            assert_eq!(cursor.0.len(), 8);
            // One byte longer than it needs: refused.
            let mut longer = encoded(v);
            *longer.last_mut().unwrap() |= 0x80;
            longer.push(0);
            longer.extend_from_slice(&[0; 8]);
            assert_eq!(Cursor(&longer).varint(), None, "{bits} bits in {} bytes", len + 1);
        }
    }

    #[test]
    fn zigzag_round_trips_both_signs() {
        for v in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            let mut buf = [0u8; 16];
            let mut head = Head { buf: &mut buf, at: 0 };
            head.zigzag(v);
            let at = head.at;
            assert_eq!(Cursor(&buf[..at]).zigzag(), Some(v), "{v}");
        }
        let mut buf = [0u8; 16];
        let mut head = Head { buf: &mut buf, at: 0 };
        head.zigzag(-1);
        assert_eq!((head.at, buf[0]), (1, 1));
    }
}

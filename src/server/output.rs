//! A connection's replies on their way to the socket.
//!
//! Replies are a few bytes each and are copied into one buffer, except the
//! body of a large job: that stays where the job keeps it (an `Rc` shared
//! with the body store) and goes out with `writev`, between the bytes
//! before and after it. So a reserved 64 KiB job is copied once, into the
//! kernel, and the buffer never grows (and is freed again) to hold it.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

use crate::protocol::reply::ReplySink;

/// Bodies this large are sent from their own allocation. A smaller one is
/// copied into the buffer, which costs about what another `writev` slice
/// does.
const BY_REFERENCE_MIN: usize = 2048;

/// Slices per `writev` call (Linux takes up to 1024).
const MAX_SLICES: usize = 64;

/// Buffers up to this size are kept once sent, for the next replies.
const KEEP_CAPACITY: usize = 16 * 1024;

/// A larger buffer, up to this size, is kept too while the replies it
/// carries fill at least a quarter of it: a client pipelining a thousand
/// puts gets about 18 KB of replies per batch, and freeing the buffer after
/// each would make every batch grow it again (a `realloc` copy per step).
/// A buffer the replies no longer fill, or one grown past this by a burst,
/// is freed, so an idle connection holds at most this much.
const KEEP_BUSY_CAPACITY: usize = 64 * 1024;

#[derive(Default)]
pub struct Output {
    /// Reply bytes, large bodies left out.
    bytes: Vec<u8>,
    /// Large bodies, each with the offset in `bytes` it is sent before, in
    /// order.
    bodies: VecDeque<(usize, Rc<[u8]>)>,
    /// Bytes of `bytes` sent. Never past the first body's offset.
    bytes_sent: usize,
    /// Bytes of the first body sent (0 until `bytes_sent` reaches it).
    body_sent: usize,
    /// Bytes queued and not yet sent, bodies included.
    pending: usize,
}

impl ReplySink for Output {
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.pending += bytes.len();
    }

    fn push_body(&mut self, body: &Rc<[u8]>) {
        if body.len() < BY_REFERENCE_MIN {
            return self.extend_from_slice(body);
        }
        self.bodies.push_back((self.bytes.len(), Rc::clone(body)));
        self.pending += body.len();
    }
}

/// Whether a buffer of `capacity` that just carried `used` bytes is kept.
fn keeps(capacity: usize, used: usize) -> bool {
    capacity <= KEEP_CAPACITY || (capacity <= KEEP_BUSY_CAPACITY && used >= capacity / 4)
}

impl Output {
    /// Bytes queued and not yet sent.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Writes until everything is sent or the socket would block. A write
    /// that fails for another reason, or writes nothing, is an error.
    pub fn write_to(&mut self, sink: &mut impl Write) -> io::Result<()> {
        while self.pending > 0 {
            let written = if self.bodies.is_empty() {
                // Most flushes: a few replies, no large body.
                sink.write(&self.bytes[self.bytes_sent..])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let count = self.slices(&mut slices);
                sink.write_vectored(&slices[..count])
            };
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.bytes_sent = 0;
        if keeps(self.bytes.capacity(), self.bytes.len()) {
            self.bytes.clear();
        } else {
            self.bytes = Vec::new();
        }
        Ok(())
    }

    /// Fills `slices` with what is left to send, in order; returns how many.
    fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut count = 0;
        let mut from = self.bytes_sent;
        let mut body_sent = self.body_sent;
        for (at, body) in &self.bodies {
            if count + 2 > slices.len() {
                return count;
            }
            if from < *at {
                slices[count] = IoSlice::new(&self.bytes[from..*at]);
                count += 1;
            }
            slices[count] = IoSlice::new(&body[body_sent..]);
            count += 1;
            from = *at;
            body_sent = 0;
        }
        if from < self.bytes.len() && count < slices.len() {
            slices[count] = IoSlice::new(&self.bytes[from..]);
            count += 1;
        }
        count
    }

    /// Drops `n` sent bytes from the front.
    fn advance(&mut self, mut n: usize) {
        self.pending -= n;
        while n > 0 {
            let until = self.bodies.front().map_or(self.bytes.len(), |(at, _)| *at);
            if self.bytes_sent < until {
                let take = n.min(until - self.bytes_sent);
                self.bytes_sent += take;
                n -= take;
                continue;
            }
            let body_len = self.bodies.front().expect("no more was queued than sent").1.len();
            let take = n.min(body_len - self.body_sent);
            self.body_sent += take;
            n -= take;
            if self.body_sent == body_len {
                self.bodies.pop_front();
                self.body_sent = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Reply;

    /// Accepts at most `limit` bytes a call, then would block after `calls`.
    struct Trickle {
        got: Vec<u8>,
        limit: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls -= 1;
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.limit - n);
                self.got.extend_from_slice(&buf[..take]);
                n += take;
            }
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn replies() -> Vec<Reply> {
        let body = |len: usize, seed: u8| -> Rc<[u8]> { (0..len).map(|i| (i as u8) ^ seed).collect() };
        let mut replies = vec![Reply::Inserted(1)];
        for (i, len) in [5000, 10, 2048, 2047, 70_000, 0].into_iter().enumerate() {
            replies.push(Reply::Reserved { id: i as u64, body: body(len, i as u8) });
            replies.push(Reply::Deleted);
        }
        replies.extend((0..100).map(|i| Reply::Found { id: i, body: body(3000, i as u8) }));
        replies
    }

    #[test]
    fn bytes_come_out_in_order_however_the_socket_takes_them() {
        let expected: Vec<u8> = replies().iter().flat_map(Reply::to_bytes).collect();
        for limit in [1, 2, 7, 2049, 4096, 65_536, usize::MAX] {
            let mut output = Output::default();
            for reply in replies() {
                reply.write_to(&mut output);
            }
            assert_eq!(output.pending(), expected.len());
            let mut socket = Trickle { got: Vec::new(), limit, calls: 0 };
            while output.pending() > 0 {
                socket.calls = 3;
                output.write_to(&mut socket).unwrap();
            }
            assert_eq!(socket.got, expected, "{limit} bytes a write");
        }
    }

    #[test]
    fn large_bodies_are_not_copied() {
        let body: Rc<[u8]> = Rc::from(vec![7; 4096]);
        let mut output = Output::default();
        Reply::Reserved { id: 1, body: Rc::clone(&body) }.write_to(&mut output);
        assert_eq!(Rc::strong_count(&body), 2);
        assert_eq!(output.bytes, b"RESERVED 1 4096\r\n\r\n");
        let mut socket = Trickle { got: Vec::new(), limit: usize::MAX, calls: 1 };
        output.write_to(&mut socket).unwrap();
        assert_eq!(Rc::strong_count(&body), 1, "sent, and let go");
    }

    /// Sends `batch` INSERTED replies through `output`; returns its capacity
    /// once they are sent.
    fn capacity_after(output: &mut Output, batch: usize) -> usize {
        for id in 0..batch {
            Reply::<Rc<[u8]>>::Inserted(1_000_000 + id as u64).write_to(output);
        }
        let mut socket = Trickle { got: Vec::new(), limit: usize::MAX, calls: 0 };
        socket.calls = 1;
        output.write_to(&mut socket).unwrap();
        assert_eq!(socket.got.len(), batch * "INSERTED 1000000\r\n".len());
        output.bytes.capacity()
    }

    #[test]
    fn a_pipelining_client_keeps_its_buffer_and_an_idle_one_gives_it_back() {
        let mut output = Output::default();
        // A thousand puts' replies, 18 KB, batch after batch: the buffer
        // stays, so the next batch does not grow it again.
        let kept = capacity_after(&mut output, 1000);
        assert!(kept > KEEP_CAPACITY && kept <= KEEP_BUSY_CAPACITY, "{kept}");
        assert_eq!(capacity_after(&mut output, 1000), kept);
        // A few replies no longer fill a quarter of it: freed.
        assert_eq!(capacity_after(&mut output, 10), 0);
        // A burst grows it past what is kept: freed once sent.
        assert_eq!(capacity_after(&mut output, 10_000), 0);
        // Small buffers are always kept.
        let small = capacity_after(&mut output, 10);
        assert!(small > 0 && small <= KEEP_CAPACITY);
        assert_eq!(capacity_after(&mut output, 1), small);
    }
}

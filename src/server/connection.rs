//! One client socket with its input and output buffers.
//!
//! Memory per connection is bounded: input is read only while the decoder
//! needs it (a line, or a whole body, which the decoder collects itself)
//! and while the output is below its high-water mark, so a client that
//! never reads its replies stops being read from instead of growing the
//! server. Idle connections give back large buffers.

use std::io::{self, Read};
use std::ops::Range;
use std::os::fd::AsRawFd;

use super::allowance::BodyAllowance;
use super::conn_state::ConnState;
use super::listener::Stream;
use super::output::Output;
use crate::protocol::decoder::{PartialBody, Step};
use crate::protocol::{BodyBytes, Decoder, Event, Reply};

/// Stop decoding commands while this much output is waiting for the client.
const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// Read at least this much ahead of the decoder's needs, to batch syscalls.
pub const READ_CHUNK: usize = 64 * 1024;

/// The size of the server's read buffer, shared by all connections. A
/// 64 KiB `put` with the commands sent along with it fits in one read.
/// What the decoder leaves of a read is kept, so a connection buffers at
/// most this much (or, waiting in a reserve, [`READ_CHUNK`] more than it
/// had).
pub const READ_BUFFER: usize = 128 * 1024;

/// A put of a body this large makes the next read aim for the body's own
/// allocation (see [`Connection::read_aimed`]).
const AIM_MIN: usize = 16 * 1024;

/// Buffers larger than this are freed, not kept, once empty.
const KEEP_CAPACITY: usize = 16 * 1024;

/// What one read of a connection's socket brought.
pub enum ReadOutcome {
    /// Bytes arrived; this range of the read buffer holds those the decoder
    /// has not taken yet.
    Data(Range<usize>),
    /// Nothing more for now.
    WouldBlock,
    /// The client will send nothing more.
    Eof,
}

/// One client: its socket, the bytes it sent that are not decoded yet, its
/// replies on their way out, and where it stands ([`ConnState`]).
pub struct Connection {
    stream: Stream,
    decoder: Decoder,
    input: Vec<u8>,
    input_start: usize,
    output: Output,
    state: ConnState,
    /// The sizes of the last large put's line (CRLF included) and body
    /// (a line is at most 224 bytes and a body at most `-z`, so 32 bits
    /// each: every connection carries this).
    last_put: Option<(u32, u32)>,
    /// Bytes of the [`BodyAllowance`] the body being received holds: its
    /// size, when it was given its whole room at its line; else 0.
    room_ahead: u32,
}

impl Connection {
    /// A new client on `stream`, whose puts may carry up to `max_job_size`
    /// bytes.
    pub fn new(stream: Stream, max_job_size: u32) -> Connection {
        Connection {
            stream,
            decoder: Decoder::new(max_job_size),
            input: Vec::new(),
            input_start: 0,
            output: Output::default(),
            state: ConnState::default(),
            last_put: None,
            room_ahead: 0,
        }
    }

    /// The socket, to register with the poller or take it off.
    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// The poller reported the socket readable, or closed by the peer.
    pub fn on_readiness(&mut self, readable: bool, closed: bool) {
        self.state.on_readiness(readable, closed);
    }

    /// True once the client ended its input (a read returned 0).
    pub fn input_ended(&self) -> bool {
        self.state.input_ended()
    }

    /// Bytes received and not yet decoded.
    fn unprocessed(&self) -> &[u8] {
        &self.input[self.input_start..]
    }

    /// The next event the client's input amounts to, decoded from the
    /// buffered input and then from `fresh` (bytes just read into the
    /// server's read buffer, dropped from the front of `fresh` as they are
    /// used), or `None` when the decoder needs bytes that have not arrived.
    /// Bytes of `fresh` the decoder needs together with buffered ones are
    /// buffered first; what is left of `fresh` is for [`Connection::keep`].
    /// A body larger than a read takes its room from `allowance` if it can
    /// (see `allowance.rs`), and gives it back once complete.
    #[inline]
    pub fn next_event<'a>(&mut self, fresh: &mut &'a [u8], allowance: &mut BodyAllowance) -> Option<Event<'a>> {
        loop {
            let buffered = !self.unprocessed().is_empty();
            let step = if buffered {
                let Step { consumed, event } = self.decoder.decode(&self.input[self.input_start..]);
                // A whole put's body is copied out of the buffer, which the
                // step consumes: one put per read at most (the one a read
                // cut), the others are lent from `fresh`.
                let event = event.map(Event::into_owned);
                self.consume(consumed);
                Step { consumed, event }
            } else {
                let step = self.decoder.decode(fresh);
                *fresh = &fresh[step.consumed..];
                step
            };
            match step.event {
                // A put line that was not aimed at (an aimed one was taken
                // before it was decoded, and has the last one's shape).
                Some(Event::PutStarted) if step.consumed > 0 => {
                    let len = self.decoder.body_len().expect("a put line starts a body");
                    self.last_put = (len >= AIM_MIN).then_some((step.consumed as u32, len as u32));
                    let in_hand = self.unprocessed().len() + fresh.len();
                    self.make_room_for_body(in_hand, allowance);
                    return Some(Event::PutStarted);
                }
                // A put line with its whole body: the line as above, but
                // the body needs no room (it is here, and taken).
                Some(Event::WholePut(job)) => {
                    let len = job.body.bytes().len();
                    let line = step.consumed - len - 2;
                    self.last_put = (len >= AIM_MIN).then_some((line as u32, len as u32));
                    return Some(Event::WholePut(job));
                }
                Some(event) => {
                    if self.room_ahead > 0 && !self.decoder.in_body() {
                        self.give_back_room(allowance);
                    }
                    return Some(event);
                }
                None if step.consumed > 0 => {}
                None if fresh.is_empty() || !buffered => {
                    self.state.stall();
                    return None;
                }
                None => {
                    // Buffered bytes and fresh ones make up the next step:
                    // buffer as many fresh ones as it may need (the rest of
                    // a line, a CRLF), then go on from `fresh` once the
                    // buffer is used up.
                    let needed = self.decoder.wanted().saturating_sub(self.unprocessed().len());
                    let (front, rest) = fresh.split_at(needed.clamp(1, fresh.len()));
                    self.keep(front);
                    *fresh = rest;
                }
            }
        }
    }

    /// Buffers bytes read and not yet decoded, after those already buffered.
    /// (What a connection buffers is bounded: see `READ_BUFFER`.)
    pub fn keep(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.input_start > 0 && self.input_start >= self.input.len() / 2 {
            self.input.drain(..self.input_start);
            self.input_start = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    fn consume(&mut self, n: usize) {
        self.input_start += n;
        if self.input_start == self.input.len() {
            self.input_start = 0;
            if self.input.capacity() > KEEP_CAPACITY {
                self.input = Vec::new();
            } else {
                self.input.clear();
            }
        }
    }

    /// True while replies are waiting for a socket that still works.
    pub fn has_unsent_output(&self) -> bool {
        self.output.pending() > 0 && !self.state.is_broken()
    }

    /// True while the connection may decode and run more commands: it did
    /// not quit or fail, and the client reads its replies.
    pub fn can_process(&self) -> bool {
        self.state.takes_commands() && self.output.pending() < OUTPUT_HIGH_WATER
    }

    /// True if reading more would be useful now.
    pub fn wants_input(&self) -> bool {
        self.state.may_read() && self.can_process() && self.unprocessed().len() < self.decoder.wanted().max(READ_CHUNK)
    }

    /// True if the connection has work left for another drive once its
    /// output drained: commands buffered, or input to read. `waiting`: it
    /// is blocked in a reserve, and has nothing to do until it is answered.
    pub fn has_work_left(&self, waiting: bool) -> bool {
        self.can_process() && !waiting && (!self.state.is_stalled() || self.wants_input())
    }

    /// Lists the connection for the end of the turn's flush; false if it
    /// was listed already.
    pub fn list_for_flush(&mut self) -> bool {
        self.state.list_for_flush()
    }

    /// Takes the connection off the flush list; false if it was not on it.
    pub fn take_flush_listing(&mut self) -> bool {
        self.state.take_flush_listing()
    }

    /// The client sent `quit`.
    pub fn quit(&mut self) {
        self.state.quit();
    }

    /// Reads once into `scratch`; the bytes that arrived are left there,
    /// for [`Connection::decode_step`], except those of a body read straight
    /// into its own allocation, which the decoder was given. `spare` is an
    /// empty body allocation to aim at, kept from an aimed read that did
    /// not use it (see [`Connection::read_aimed`]).
    pub fn read_some(&mut self, scratch: &mut [u8], spare: &mut Option<PartialBody>) -> ReadOutcome {
        loop {
            match self.read_aimed(scratch, spare) {
                Ok((0, _)) => {
                    self.state.read_end();
                    return ReadOutcome::Eof;
                }
                Ok((n, kept)) => {
                    self.state.read_bytes(n == scratch.len());
                    return ReadOutcome::Data(kept);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.state.read_would_block();
                    return ReadOutcome::WouldBlock;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("read failed: {e}");
                    self.state.fail();
                    return ReadOutcome::Eof;
                }
            }
        }
    }

    /// Reads once. After a large put, clients tend to send the next one
    /// alike (`put 0 0 120 65536`): then the read is aimed so that a put line
    /// of the last one's length lands in `scratch` and the next bytes in an
    /// allocation of the last body's size, and if the line is indeed a put
    /// of that size the allocation is the body's: the decoder takes the line
    /// (parsing it, once) and the allocation, and the body is not copied.
    /// Otherwise the bytes are put back in
    /// order in `scratch` (a copy, as an unaimed read would have cost) and
    /// the next reads are not aimed until the next large put. An allocation
    /// not used is kept in `spare` for the next aimed read (most reads
    /// after a put are of other commands; allocating and freeing 64 KiB for
    /// each made glibc grow and trim its heap: a `brk` every 16 jobs).
    /// Returns the bytes read, and the range of `scratch` holding those the
    /// decoder has not taken.
    fn read_aimed(&mut self, scratch: &mut [u8], spare: &mut Option<PartialBody>) -> io::Result<(usize, Range<usize>)> {
        let aim = self.last_put.map(|(line, len)| (line as usize, len as usize)).filter(|&(line, len)| {
            self.unprocessed().is_empty() && self.decoder.is_at_line() && line + len <= scratch.len()
        });
        let Some((line, len)) = aim else {
            self.make_room_for_arrived_body(self.unprocessed().len());
            let n = self.stream.read(scratch)?;
            return Ok((n, 0..n));
        };
        // Allocated whole (at most `scratch`'s size): the read lands in it.
        let mut body = spare.take().filter(|b| b.capacity() == len).unwrap_or_else(|| PartialBody::allocated(len));
        let (head, tail) = scratch.split_at_mut(line);
        // No more than `scratch` holds, so the bytes fit back in it.
        let tail_len = tail.len() - len;
        let tail = &mut tail[..tail_len];
        let unfilled = body.unfilled();
        let iov = [
            libc::iovec { iov_base: head.as_mut_ptr().cast(), iov_len: head.len() },
            libc::iovec { iov_base: unfilled.as_mut_ptr().cast(), iov_len: unfilled.len() },
            libc::iovec { iov_base: tail.as_mut_ptr().cast(), iov_len: tail.len() },
        ];
        // SAFETY: each iovec is a live, writable buffer of its length
        // (`unfilled` may be uninitialised: readv only writes to it).
        let n = unsafe { libc::readv(self.stream.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) };
        let Ok(n) = usize::try_from(n) else {
            let error = io::Error::last_os_error();
            *spare = Some(body);
            return Err(error);
        };
        if n <= line {
            *spare = Some(body);
            return Ok((n, 0..n));
        }
        let in_body = (n - line).min(len);
        let after = n - line - in_body;
        // SAFETY: readv filled the iovecs in order: `in_body` bytes of the
        // second.
        unsafe { body.assume_filled(in_body) };
        let mut body = match self.decoder.start_aimed_put(&scratch[..line], body) {
            Ok(()) => return Ok((n, line..line + after)),
            Err(body) => body,
        };
        self.last_put = None;
        scratch.copy_within(line..line + after, line + in_body);
        scratch[line..line + in_body].copy_from_slice(body.received());
        body.clear();
        *spare = Some(body);
        Ok((n, 0..n))
    }

    /// At the line of a body larger than a read: its whole room if the
    /// allowance has it, else room for what has arrived.
    fn make_room_for_body(&mut self, in_hand: usize, allowance: &mut BodyAllowance) {
        let short = self.decoder.body_room_short();
        if short > READ_BUFFER && allowance.take(short) {
            self.room_ahead = short as u32;
            self.decoder.make_body_room(short);
        } else {
            self.make_room_for_arrived_body(in_hand);
        }
    }

    /// Gives the room the body held ahead of its bytes back to the
    /// allowance: the body is complete, dropped, or the connection is
    /// closing.
    pub fn give_back_room(&mut self, allowance: &mut BodyAllowance) {
        allowance.give_back(std::mem::take(&mut self.room_ahead) as usize);
    }

    /// In a body larger than a read, when its line was decoded and before
    /// each read: makes room in the body at once for the bytes that have
    /// arrived, those read and not decoded yet (`in_hand`) and those waiting
    /// in the socket (`FIONREAD`). The body's room grows with what arrives
    /// (see `PartialBody`); a large body sent in one go would otherwise grow
    /// through an allocation per doubling, each one fresh pages for the
    /// allocator to fault in and give back (a 1 MiB put took 7 times the
    /// CPU it takes with its room made at once: 1.2 ms, not 0.16).
    fn make_room_for_arrived_body(&mut self, in_hand: usize) {
        if self.decoder.body_room_short() <= READ_BUFFER {
            return;
        }
        let mut waiting: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int, to the variable passed; the
        // descriptor is open for the duration of the call.
        if unsafe { libc::ioctl(self.stream.as_raw_fd(), libc::FIONREAD, &mut waiting) } == 0 {
            self.decoder.make_body_room(in_hand + usize::try_from(waiting).unwrap_or(0));
        }
    }

    /// Called once what a read brought was processed: see
    /// [`ConnState::settle_after_read`].
    pub fn settle_after_read(&mut self) {
        self.state.settle_after_read(self.decoder.in_body());
    }

    /// Queues a reply, sent by the next [`Connection::flush`].
    pub fn push_reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
    }

    /// Queues a reply whose job body is lent (by the engine's store) only
    /// until it is written: it is copied into the output now.
    pub fn push_lent_reply(&mut self, reply: &Reply<BodyBytes<'_>>) {
        reply.write_to(&mut self.output);
    }

    /// Writes queued output until it is all sent or the socket is full.
    pub fn flush(&mut self) {
        if self.state.is_broken() {
            return;
        }
        if let Err(e) = self.output.write_to(&mut self.stream) {
            log::debug!("write failed: {e}");
            self.state.fail();
        }
    }

    /// True when nothing more will happen on this connection: it failed, or
    /// it takes no more input and every reply was sent. `waiting`: it is
    /// blocked in a reserve.
    pub fn is_finished(&self, waiting: bool) -> bool {
        self.state.is_broken() || (self.state.done_with_input(waiting) && self.output.pending() == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection, idle ones too, carries this: 10,000 idle clients
    /// are 10,000 of these. (208 bytes until the decoder stopped keeping an
    /// offered body of its own: an aimed put now enters the body state
    /// directly.)
    #[test]
    fn a_connection_stays_small() {
        let size = std::mem::size_of::<Connection>();
        assert!(size <= 200, "Connection grew to {size} bytes");
    }

    /// A connection over a socket pair, and the client's end.
    fn connected() -> (Connection, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let stream = Stream::Unix(mio::net::UnixStream::from_std(ours));
        (Connection::new(stream, 1 << 30), theirs)
    }

    /// Sends `bytes` from the client in pieces, reading and decoding after
    /// each as the server would; returns the events.
    fn feed(
        conn: &mut Connection,
        client: &mut std::os::unix::net::UnixStream,
        bytes: &[u8],
        allowance: &mut BodyAllowance,
    ) -> Vec<Event<'static>> {
        use std::io::Write;
        let mut scratch = vec![0; READ_BUFFER];
        let mut events = Vec::new();
        for piece in bytes.chunks(16 * 1024) {
            client.write_all(piece).unwrap();
            while let ReadOutcome::Data(range) = conn.read_some(&mut scratch, &mut None) {
                let mut fresh = &scratch[range];
                while let Some(event) = conn.next_event(&mut fresh, allowance) {
                    events.push(event.into_owned());
                }
                conn.keep(fresh);
            }
        }
        events
    }

    /// A body larger than a read takes its whole room from the allowance
    /// at its line and gives it back once complete, or when its connection
    /// closes; with the allowance used up, a body's room is what arrived.
    #[test]
    fn large_bodies_take_their_room_from_the_allowance_and_give_it_back() {
        use super::super::allowance::BODY_ALLOWANCE;
        const SIZE: usize = READ_BUFFER + 1;
        let mut allowance = BodyAllowance::default();
        let (mut first, mut client) = connected();
        let line = format!("put 0 0 10 {SIZE}\r\n");
        let events = feed(&mut first, &mut client, format!("{line}abc").as_bytes(), &mut allowance);
        assert_eq!(events, [Event::PutStarted]);
        assert_eq!(allowance.left(), BODY_ALLOWANCE - SIZE, "the body holds its size");
        assert_eq!(first.decoder.body_room_short(), 0, "its whole room");

        // The rest of the allowance goes to another; a third body gets room
        // for what arrived only, and the allowance is untouched.
        let (mut second, mut client2) = connected();
        assert!(allowance.take(BODY_ALLOWANCE - 2 * SIZE));
        assert_eq!(feed(&mut second, &mut client2, line.as_bytes(), &mut allowance), [Event::PutStarted]);
        assert_eq!(allowance.left(), 0);
        let (mut third, mut client3) = connected();
        assert_eq!(
            feed(&mut third, &mut client3, format!("{line}abc").as_bytes(), &mut allowance),
            [Event::PutStarted]
        );
        assert_eq!(third.decoder.body_room_short(), SIZE - 3, "room for the 3 bytes that came");
        assert_eq!(allowance.left(), 0);

        // The first body completes: its room comes back.
        let mut rest = vec![b'x'; SIZE - 3];
        rest.extend_from_slice(b"\r\n");
        let events = feed(&mut first, &mut client, &rest, &mut allowance);
        assert!(matches!(events[..], [Event::Command(_)]), "the put");
        assert_eq!(allowance.left(), SIZE);
        // The second's connection closes: its room comes back.
        second.give_back_room(&mut allowance);
        assert_eq!(allowance.left(), 2 * SIZE);
        third.give_back_room(&mut allowance);
        assert_eq!(allowance.left(), 2 * SIZE, "the third held none");
    }
}

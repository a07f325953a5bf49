//! One client socket with its input and output buffers.
//!
//! Memory per connection is bounded: input is read only while the decoder
//! needs it (a line, or a whole body, which the decoder collects itself)
//! and while the output is below its high-water mark, so a client that
//! never reads its replies stops being read from instead of growing the
//! server. Idle connections give back large buffers.

use std::io::{self, Read};
use std::os::fd::AsRawFd;

use super::listener::Stream;
use super::output::Output;
use crate::protocol::decoder::{PartialBody, Step};
use crate::protocol::{Command, Decoder, Frame, Reply};

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

pub enum ReadOutcome {
    /// This many bytes arrived.
    Data(usize),
    /// Nothing more for now.
    WouldBlock,
    /// The client will send nothing more.
    Eof,
}

pub struct Connection {
    pub stream: Stream,
    pub decoder: Decoder,
    input: Vec<u8>,
    input_start: usize,
    output: Output,
    /// The socket may have bytes to read (edge-triggered readiness).
    pub readable: bool,
    /// The poller reported the peer's shutdown (or an error): no further
    /// event will come, so reads must go on until they return 0.
    pub hung_up: bool,
    /// The last read did not fill the buffer: the socket was empty then.
    drained: bool,
    /// The client shut down its sending side.
    pub eof: bool,
    /// The client sent `quit`: no more commands, close once replies are out.
    pub quitting: bool,
    /// A read or write failed: close at once.
    pub broken: bool,
    /// The decoder needs more bytes than are buffered.
    pub input_stalled: bool,
    /// Listed for the flush at the end of the turn.
    pub flush_queued: bool,
    /// The sizes of the last large put's line (CRLF included) and body
    /// (a line is at most 224 bytes and a body at most `-z`, so 32 bits
    /// each: every connection carries this).
    last_put: Option<(u32, u32)>,
}

impl Connection {
    pub fn new(stream: Stream, max_job_size: u32) -> Connection {
        Connection {
            stream,
            decoder: Decoder::new(max_job_size),
            input: Vec::new(),
            input_start: 0,
            output: Output::default(),
            readable: true,
            hung_up: false,
            drained: false,
            eof: false,
            quitting: false,
            broken: false,
            input_stalled: false,
            flush_queued: false,
            last_put: None,
        }
    }

    /// Bytes received and not yet decoded.
    pub fn unprocessed(&self) -> &[u8] {
        &self.input[self.input_start..]
    }

    /// Takes one decoding step over the buffered input, or when none is
    /// buffered, over `fresh`: bytes just read into the server's read
    /// buffer, decoded from there and dropped from the front of `fresh` as
    /// they are used. (A body is copied from there into its own allocation,
    /// once; what is left is kept with [`Connection::keep`].)
    #[inline]
    pub fn decode_step(&mut self, fresh: &mut &[u8]) -> Step {
        let step = if self.unprocessed().is_empty() {
            let step = self.decoder.decode(fresh);
            *fresh = &fresh[step.consumed..];
            step
        } else {
            let step = self.decoder.decode(&self.input[self.input_start..]);
            self.consume(step.consumed);
            step
        };
        if let Some(Frame::Command(Command::PutHeader { too_big: false })) = step.frame {
            let len = self.decoder.body_len().expect("a put line starts a body");
            self.last_put = (len >= AIM_MIN).then_some((step.consumed as u32, len as u32));
        }
        step
    }

    /// Buffers bytes read and not yet decoded, after those already buffered.
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

    pub fn output_pending(&self) -> usize {
        self.output.pending()
    }

    /// True while the connection may decode and run more commands.
    pub fn can_process(&self) -> bool {
        !self.quitting && !self.broken && self.output_pending() < OUTPUT_HIGH_WATER
    }

    /// True if reading more would be useful now.
    pub fn wants_input(&self) -> bool {
        self.readable
            && !self.eof
            && self.can_process()
            && self.unprocessed().len() < self.decoder.wanted().max(READ_CHUNK)
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
                    self.eof = true;
                    return ReadOutcome::Eof;
                }
                Ok((n, kept)) => {
                    self.input_stalled = false;
                    self.drained = n < scratch.len();
                    return ReadOutcome::Data(kept);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return ReadOutcome::WouldBlock;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("read failed: {e}");
                    self.broken = true;
                    return ReadOutcome::Eof;
                }
            }
        }
    }

    /// Reads once. After a large put, clients tend to send the next one
    /// alike (`put 0 0 120 65536`): then the read is aimed so that a put line
    /// of the last one's length lands in `scratch` and the next bytes in an
    /// allocation of the last body's size, and if the line is indeed a put
    /// of that size the allocation is the body's: the decoder is given it,
    /// and the body is not copied. Otherwise the bytes are put back in
    /// order in `scratch` (a copy, as an unaimed read would have cost) and
    /// the next reads are not aimed until the next large put. An allocation
    /// not used is kept in `spare` for the next aimed read (most reads
    /// after a put are of other commands; allocating and freeing 64 KiB for
    /// each made glibc grow and trim its heap: a `brk` every 16 jobs).
    /// Returns the bytes read, and how many of them are in `scratch`.
    fn read_aimed(&mut self, scratch: &mut [u8], spare: &mut Option<PartialBody>) -> io::Result<(usize, usize)> {
        let aim = self.last_put.map(|(line, len)| (line as usize, len as usize)).filter(|&(line, len)| {
            self.unprocessed().is_empty() && self.decoder.is_at_line() && line + len <= scratch.len()
        });
        let Some((line, len)) = aim else {
            let n = self.stream.read(scratch)?;
            return Ok((n, n));
        };
        let mut body = spare.take().filter(|b| b.size() == len).unwrap_or_else(|| PartialBody::new(len));
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
            return Ok((n, n));
        }
        let in_body = (n - line).min(len);
        let after = n - line - in_body;
        // SAFETY: readv filled the iovecs in order: `in_body` bytes of the
        // second.
        unsafe { body.assume_filled(in_body) };
        if self.decoder.put_line(&scratch[..line]) == Some(len) {
            self.decoder.offer_body(body);
            return Ok((n, line + after));
        }
        self.last_put = None;
        scratch.copy_within(line..line + after, line + in_body);
        scratch[line..line + in_body].copy_from_slice(body.received());
        body.clear();
        *spare = Some(body);
        Ok((n, n))
    }

    /// Called once what a read brought was processed. A read that did not
    /// fill the buffer drained the socket, and with edge-triggered readiness
    /// whatever arrives after it raises a new event (epoll(7), question 9):
    /// so the connection stops reading rather than spend a second read to
    /// hear `WouldBlock`. Except in two cases: in the middle of a body, which
    /// is arriving as we speak (a 64 KiB put comes in pieces), one more read
    /// usually finds the next piece sooner than another turn of the loop;
    /// and once the peer has hung up no event follows, so reads go on until
    /// they return 0.
    pub fn settle_after_read(&mut self) {
        if self.drained && !self.hung_up && !self.decoder.in_body() {
            self.readable = false;
        }
        self.drained = false;
    }

    pub fn push_reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
    }

    /// Writes queued output until it is all sent or the socket is full.
    pub fn flush(&mut self) {
        if self.broken {
            return;
        }
        if let Err(e) = self.output.write_to(&mut self.stream) {
            log::debug!("write failed: {e}");
            self.broken = true;
        }
    }

    /// True when nothing more will happen on this connection.
    pub fn is_finished(&self, waiting: bool) -> bool {
        if self.broken {
            return true;
        }
        let done_with_input = self.quitting || (self.eof && self.input_stalled && !waiting);
        done_with_input && self.output_pending() == 0
    }
}

//! `decoder`: the protocol decoder, fed as the server feeds it.
//!
//! The server's framing (`Connection::next_event`, `keep`, the aimed reads
//! of `read_aimed` in src/server/connection.rs) is private, so
//! [`Connection`] below does what it does, step for step, over the public
//! [`Decoder`]: undecoded bytes are kept in a buffer and decoded before the
//! fresh ones, a stalled buffer takes just the fresh bytes the decoder
//! wants, decoding may stop between events (a reserve that waits, output
//! backed up) and go on next turn, and after a put the next read may be
//! aimed at a body allocation that [`Decoder::start_aimed_put`] takes.
//!
//! Input: `config`, `n`, `n` schedule bytes, then the stream.
//! - `config` bits 0-2: `-z` from [`MAX_JOB_SIZES`]; bit 3: aim after
//!   puts of any size (else, as the server, only from [`AIM_MIN`] bytes).
//! - each schedule byte, used in turn for the reads: bits 0-5 the read's
//!   length (1 to 32, or 64 to 2048 bytes); bit 6: stop decoding after the
//!   read's first event; bit 7: a turn with no read before it.
//!
//! Checks:
//! - no panic;
//! - the events (commands with their bodies, replies, puts started, puts
//!   too big, ...) are the same, in the same order, as when the whole
//!   stream is decoded at once, and so is where the stream leaves the
//!   decoder (its state, the bytes it did not take);
//! - what the decoder holds stays within its documented bounds: a body it
//!   collects is at most `-z` bytes ([`Decoder::body_len`]), a put's body
//!   is at most `-z`, it wants at most a line ([`MAX_LINE`]) or a body and
//!   its CRLF; between reads the connection keeps fewer than [`MAX_LINE`]
//!   undecoded bytes, unless decoding was stopped;
//! - a whole put's body is borrowed from the input it was decoded from;
//! - no single allocation inside [`Decoder::decode`] is larger than
//!   `-z` + 64 bytes (a body, and its `Rc`'s counts) or 1 KiB.

use sprout::protocol::decoder::{PartialBody, Step};
use sprout::protocol::{BodyBytes, Command, Decoder, Event, MAX_JOB_SIZE_LIMIT, MAX_LINE};

use super::alloc_guard;

/// The `-z` values the first byte chooses from: none, one byte, around
/// the default, and beanstalkd's largest.
pub const MAX_JOB_SIZES: [u32; 8] = [0, 1, 2, 100, 65_535, 65_536, 1 << 20, MAX_JOB_SIZE_LIMIT];

/// The server aims a read after a put of a body this large (`AIM_MIN` in
/// src/server/connection.rs).
pub const AIM_MIN: usize = 16 * 1024;

/// The server's read buffer (`READ_BUFFER`): an aimed read needs the line
/// and the body to fit in it.
const READ_BUFFER: usize = 128 * 1024;

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let Some((&config, rest)) = data.split_first() else { return };
    let Some((&n, rest)) = rest.split_first() else { return };
    let n = usize::from(n % 32).min(rest.len());
    let (schedule, stream) = rest.split_at(n);
    let max_job_size = MAX_JOB_SIZES[usize::from(config & 7)];
    let aim_min = if config & 8 != 0 { 0 } else { AIM_MIN };

    let whole = feed(stream, max_job_size, None, AIM_MIN);
    let schedule = if schedule.is_empty() { &[0][..] } else { schedule };
    let chunked = feed(stream, max_job_size, Some(schedule), aim_min);
    assert_eq!(chunked.events, whole.events, "events in reads of {schedule:?} against the whole stream");
    assert_eq!(chunked.end, whole.end, "where the stream leaves the decoder");
}

/// What a stream amounted to.
struct Fed {
    events: Vec<Event<'static>>,
    end: End,
}

/// Where the stream left the decoder.
#[derive(Debug, PartialEq, Eq)]
struct End {
    at_line: bool,
    in_body: bool,
    body_len: Option<usize>,
    wanted: usize,
    undecoded: Vec<u8>,
}

/// Feeds `stream` as reads of the lengths `schedule` gives, or as one
/// read.
fn feed(stream: &[u8], max_job_size: u32, schedule: Option<&[u8]>, aim_min: usize) -> Fed {
    let mut conn = Connection::new(max_job_size, aim_min);
    let mut events = Vec::new();
    let mut rest = stream;
    let mut turn = 0;
    while !rest.is_empty() {
        let (len, step) = match schedule {
            Some(schedule) => {
                let step = schedule[turn % schedule.len()];
                let len = match step & 0x3f {
                    v if v < 32 => usize::from(v) + 1,
                    v => usize::from(v - 31) * 64,
                };
                (len.min(rest.len()), step)
            }
            None => (rest.len(), 0),
        };
        turn += 1;
        if step & 0x80 != 0 {
            conn.process(&[], usize::MAX, &mut events);
        }
        let (read, after) = rest.split_at(len);
        rest = after;
        let stop_after = if step & 0x40 != 0 { 1 } else { usize::MAX };
        let from = conn.read(read);
        let stopped = conn.process(&read[from..], stop_after, &mut events);
        if !stopped {
            assert!(conn.undecoded().len() < MAX_LINE, "{} undecoded bytes kept", conn.undecoded().len());
        }
    }
    // The turns after the last read: what was kept is decoded.
    conn.process(&[], usize::MAX, &mut events);
    let d = &conn.decoder;
    let end = End {
        at_line: d.is_at_line(),
        in_body: d.in_body(),
        body_len: d.body_len(),
        wanted: d.wanted(),
        undecoded: conn.undecoded().to_vec(),
    };
    Fed { events, end }
}

/// A connection's input side, as src/server/connection.rs has it.
struct Connection {
    decoder: Decoder,
    max_job_size: u32,
    input: Vec<u8>,
    input_start: usize,
    /// The last large put's line and body lengths, for an aimed read.
    last_put: Option<(usize, usize)>,
    aim_min: usize,
    /// The command of a whole put whose line's event was given.
    whole_put: Option<sprout::protocol::command::NewJob>,
}

impl Connection {
    fn new(max_job_size: u32, aim_min: usize) -> Connection {
        Connection {
            decoder: Decoder::new(max_job_size),
            max_job_size,
            input: Vec::new(),
            input_start: 0,
            last_put: None,
            aim_min,
            whole_put: None,
        }
    }

    fn undecoded(&self) -> &[u8] {
        &self.input[self.input_start..]
    }

    /// One read of `bytes`: aimed as `read_aimed` aims it, when it may be.
    /// Returns where the bytes for the decoder start (after those an aimed
    /// put took).
    fn read(&mut self, bytes: &[u8]) -> usize {
        let aim = self.last_put.filter(|&(line, len)| {
            self.undecoded().is_empty() && self.decoder.is_at_line() && line + len <= READ_BUFFER
        });
        let Some((line, len)) = aim else { return 0 };
        if bytes.len() <= line {
            return 0;
        }
        let in_body = (bytes.len() - line).min(len);
        let mut body = PartialBody::new(len);
        body.fill(&bytes[line..line + in_body]);
        match self.decoder.start_aimed_put(&bytes[..line], body) {
            Ok(()) => line + in_body,
            Err(_) => {
                // The server copies the bytes back in order: the same bytes.
                self.last_put = None;
                0
            }
        }
    }

    /// `process_input`: decodes the kept bytes and then `fresh`, stopping
    /// after `stop_after` events; keeps what is left. True if it stopped
    /// there.
    fn process(&mut self, fresh: &[u8], stop_after: usize, events: &mut Vec<Event<'static>>) -> bool {
        let mut fresh = fresh;
        let mut stopped = false;
        let mut count = 0;
        while let Some(event) = self.next_event(&mut fresh) {
            events.push(event.into_owned());
            count += 1;
            if count == stop_after {
                stopped = true;
                break;
            }
        }
        self.keep(fresh);
        stopped
    }

    /// `Connection::next_event`, with the decoder's bounds checked at
    /// every step.
    fn next_event<'a>(&mut self, fresh: &mut &'a [u8]) -> Option<Event<'a>> {
        if let Some(job) = self.whole_put.take() {
            return Some(Event::Command(Command::Put(job)));
        }
        loop {
            let buffered = !self.undecoded().is_empty();
            let step = if buffered {
                let input = &self.input[self.input_start..];
                let Step { consumed, event } = checked_decode(&mut self.decoder, self.max_job_size, input);
                let event = event.map(Event::into_owned);
                self.consume(consumed);
                Step { consumed, event }
            } else {
                let step = checked_decode(&mut self.decoder, self.max_job_size, fresh);
                *fresh = &fresh[step.consumed..];
                step
            };
            match step.event {
                Some(Event::PutStarted) if step.consumed > 0 => {
                    let len = self.decoder.body_len().expect("a put line starts a body");
                    self.last_put = (len >= self.aim_min).then_some((step.consumed, len));
                    return Some(Event::PutStarted);
                }
                // A whole put is its line's event and its command's, as a
                // put cut by a read gives them: the schedules must agree.
                Some(Event::WholePut(job)) => {
                    let len = job.body.bytes().len();
                    self.last_put = (len >= self.aim_min).then_some((step.consumed - len - 2, len));
                    self.whole_put = Some(job.map_body(BodyBytes::into_shared));
                    return Some(Event::PutStarted);
                }
                Some(event) => return Some(event),
                None if step.consumed > 0 => {}
                None if fresh.is_empty() || !buffered => return None,
                None => {
                    let needed = self.decoder.wanted().saturating_sub(self.undecoded().len());
                    let (front, rest) = fresh.split_at(needed.clamp(1, fresh.len()));
                    self.keep(front);
                    *fresh = rest;
                }
            }
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
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
            self.input.clear();
        }
    }
}

/// One decoding step over `input` (the kept bytes, or fresh ones), under
/// the allocation bound, with the decoder's bounds checked.
fn checked_decode<'a>(decoder: &mut Decoder, max_job_size: u32, input: &'a [u8]) -> Step<'a> {
    let z = max_job_size as usize;
    let limit = (z + 64).max(1024);
    let step = alloc_guard::within(limit, "Decoder::decode", || decoder.decode(input));
    assert!(step.consumed <= input.len(), "consumed {} of {} bytes", step.consumed, input.len());
    let body_len = match &step.event {
        Some(Event::Command(Command::Put(job))) => Some(job.body.len()),
        Some(Event::WholePut(job)) => Some(job.body.bytes().len()),
        _ => None,
    };
    if let Some(len) = body_len {
        assert!(len <= z, "a body of {len} bytes under -z {z}");
    }
    // A whole put's body is lent from the input it was decoded from.
    if let Some(Event::WholePut(job)) = &step.event {
        let BodyBytes::Borrowed(body) = job.body else { panic!("a whole put's body is borrowed") };
        let (start, end) = (body.as_ptr_range().start, body.as_ptr_range().end);
        assert!(input.as_ptr_range().start <= start && end <= input.as_ptr_range().end, "lent from the input");
    }
    assert!(
        decoder.body_len().is_none_or(|len| len <= z),
        "collecting a body of {:?} bytes under -z {z}",
        decoder.body_len()
    );
    assert!(decoder.wanted() <= MAX_LINE.max(z + 2), "wants {} bytes under -z {z}", decoder.wanted());
    step
}

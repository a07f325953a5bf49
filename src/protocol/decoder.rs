//! Incoming bytes to [`Event`]s: command lines, `put` bodies, and the input
//! beanstalkd throws away (over-long lines, oversized bodies).
//!
//! Framing is apart from commands: an [`Event`] says what the input amounts
//! to (a whole [`Command`], the start or failure of a put, a reply that
//! needs no queue, `quit`), and only [`Event::Command`] and
//! [`Event::WholePut`] carry a command.
//!
//! The connection keeps the bytes read so far and offers them to
//! [`Decoder::decode`], which says how many it used; so a body that arrives
//! one byte at a time and one that arrives with a thousand commands behind
//! it take the same path. A put whose line and body are both in the input
//! offered is one event whose body is borrowed from that input: the
//! engine's store makes the body's one copy (a pipelined put allocates
//! nothing for its body on its way). The one buffer the decoder holds is a
//! body that arrives over several reads: it is copied, as it comes, into an
//! allocation that grows with what arrived up to the announced size, and
//! becomes the job's body ([`PartialBody`]). So the connection never holds
//! more than a read of it, a large body is copied into the job as it
//! arrives, and a body announced and never sent costs only what was sent.

use std::rc::Rc;

use memchr::{memchr, memmem};

use super::MAX_LINE;
pub use super::body::PartialBody;
use super::command::{Command, NewJob, Op};
use super::parse::{Line, parse_line};
use super::reply::{BodyBytes, Reply};

/// What a connection's input amounts to, one step at a time. A whole put's
/// body is borrowed from the input the step was decoded from (`'a`).
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole command for the engine (a put with its body).
    Command(Command),
    /// A `put` line within `-z` was accepted, and its body is on its way.
    /// beanstalkd counts the put, marks the connection a producer and
    /// assigns the job's id now, before the body arrives: `stats` shows the
    /// count meanwhile, and a put from another connection takes the next id.
    PutStarted,
    /// A `put` line within `-z` and its whole body, CRLF included, in the
    /// same input: what [`Event::PutStarted`] and then the put's
    /// [`Event::Command`] would say, in one step (a pipelined put costs one
    /// decoding step, not two). The line's length is what the step consumed
    /// less the body and its CRLF. The body is borrowed from the input (the
    /// engine copies it once, into its store), unless the event was made
    /// to outlive it ([`Event::into_owned`]).
    WholePut(NewJob<BodyBytes<'a>>),
    /// The body of the put just started did not end in CRLF. It is
    /// answered `EXPECTED_CRLF`, and the id assigned at its line is spent.
    PutWithoutCrlf,
    /// A `put` line asking for more than `-z`. beanstalkd counts it now; its
    /// body is discarded as it arrives, and then `JOB_TOO_BIG` follows as an
    /// [`Event::Reply`].
    PutTooBig,
    /// A line beanstalkd counts under `op` in the `cmd-*` stats, and then
    /// answers `BAD_FORMAT` (a put with trailing garbage, a pause-tube name
    /// starting with `-`).
    CountedBadFormat(Op),
    /// A reply to send as is: to a malformed or unknown line, or
    /// `JOB_TOO_BIG` once an oversized body is discarded.
    Reply(Reply),
    /// The client asked to close the connection.
    Quit,
}

#[derive(Debug)]
enum State {
    /// Waiting for a command line.
    Line,
    /// A `put` line was accepted; `len` bytes of body, then CRLF, follow.
    /// `partial` holds the body's first bytes once some arrived without
    /// the rest (boxed: every connection, idle ones too, carries this state,
    /// and few receive large bodies). `announced` is false only after
    /// [`Decoder::start_aimed_put`], until [`Event::PutStarted`] is given.
    Body { pri: u32, delay: u32, ttr: u32, len: usize, partial: Option<Box<PartialBody>>, announced: bool },
    /// Throwing away an oversized body; `JOB_TOO_BIG` when done.
    Discard { remaining: u64 },
    /// Throwing away an over-long line up to its CRLF; `BAD_FORMAT` then.
    SkipLine,
}

/// Per-connection framing state.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    max_job_size: u32,
}

impl Event<'_> {
    /// The same event, owning its bytes: a whole put's body borrowed from
    /// the input is copied into an allocation of its own, for an event that
    /// must outlive the input it was decoded from.
    pub fn into_owned(self) -> Event<'static> {
        match self {
            Event::WholePut(job) => Event::WholePut(job.map_body(|body| BodyBytes::Shared(body.into_shared()))),
            Event::Command(command) => Event::Command(command),
            Event::PutStarted => Event::PutStarted,
            Event::PutWithoutCrlf => Event::PutWithoutCrlf,
            Event::PutTooBig => Event::PutTooBig,
            Event::CountedBadFormat(op) => Event::CountedBadFormat(op),
            Event::Reply(reply) => Event::Reply(reply),
            Event::Quit => Event::Quit,
        }
    }
}

/// The result of one decoding step over an input that lives for `'a`.
#[derive(Debug, PartialEq, Eq)]
pub struct Step<'a> {
    /// Bytes of the input that were used and can be dropped.
    pub consumed: usize,
    /// What those bytes amounted to, if anything yet.
    pub event: Option<Event<'a>>,
}

impl Step<'_> {
    /// True when the decoder needs more input to go on.
    pub fn is_stalled(&self) -> bool {
        self.consumed == 0 && self.event.is_none()
    }
}

impl Decoder {
    /// A decoder waiting for a command line, taking bodies up to
    /// `max_job_size` (`-z`) bytes.
    pub fn new(max_job_size: u32) -> Decoder {
        Decoder { state: State::Line, max_job_size }
    }

    /// How many buffered bytes the decoder needs before it can take its next
    /// step: a whole body for a `put`, at most a line otherwise. A reader
    /// that keeps this many bytes available never stalls the decoder.
    pub fn wanted(&self) -> usize {
        match &self.state {
            State::Body { len, partial, .. } => len + 2 - partial.as_ref().map_or(0, |p| p.filled()),
            _ => MAX_LINE,
        }
    }

    /// True when the next input starts a command line.
    pub fn is_at_line(&self) -> bool {
        matches!(self.state, State::Line)
    }

    /// The size of the body being received, once its put line is decoded.
    pub fn body_len(&self) -> Option<usize> {
        match self.state {
            State::Body { len, .. } => Some(len),
            _ => None,
        }
    }

    /// Bytes of the body being received that it has no room for yet (0
    /// outside a body).
    pub fn body_room_short(&self) -> usize {
        match &self.state {
            State::Body { len, partial, .. } => len - partial.as_ref().map_or(0, |p| p.capacity()),
            _ => 0,
        }
    }

    /// Makes room in the body being received for `n` more of its bytes,
    /// which have arrived and wait to be read ([`PartialBody::make_room`]).
    pub fn make_body_room(&mut self, n: usize) {
        if let State::Body { len, partial, .. } = &mut self.state {
            partial.get_or_insert_with(|| Box::new(PartialBody::new(*len))).make_room(n);
        }
    }

    /// True while a body (kept or discarded) is partly received.
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Body { .. } | State::Discard { .. })
    }

    /// Takes `line` as the next command line if it is exactly one `put`
    /// line (CRLF included) of a body of `body`'s size, with `body` as that
    /// put's body allocation, its first bytes already in it: so a reader can
    /// aim a body straight at its allocation. The line is parsed here, once,
    /// and [`Event::PutStarted`] is the next step's event. Anything else
    /// leaves the decoder as it was and gives `body` back (a put line of
    /// another size is then parsed again by [`Decoder::decode`]).
    pub fn start_aimed_put(&mut self, line: &[u8], body: PartialBody) -> Result<(), PartialBody> {
        let is_one_line = matches!(find_line_end(line), LineEnd::Found(n) if n == line.len());
        if !matches!(self.state, State::Line) || !is_one_line || !line.starts_with(b"put ") {
            return Err(body);
        }
        match parse_line(&line[..line.len() - 2], self.max_job_size) {
            Line::PutHeader { pri, delay, ttr, bytes } if bytes as usize == body.size() => {
                let partial = Some(Box::new(body));
                self.state = State::Body { pri, delay, ttr, len: bytes as usize, partial, announced: false };
                Ok(())
            }
            _ => Err(body),
        }
    }

    /// Takes one step over `input`, the bytes received and not yet consumed.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Step<'a> {
        match self.state {
            State::Line => self.decode_line(input),
            State::Body { announced: ref mut announced @ false, .. } => {
                *announced = true;
                Step { consumed: 0, event: Some(Event::PutStarted) }
            }
            State::Body { len, ref mut partial, .. } => {
                let (body, consumed) = match partial {
                    // The whole body is here: one copy, from the input.
                    None if input.len() >= len + 2 => (Rc::from(&input[..len]), len),
                    None if input.is_empty() => return Step { consumed: 0, event: None },
                    _ => {
                        let body = partial.get_or_insert_with(|| Box::new(PartialBody::new(len)));
                        let taken = body.fill(input);
                        if !body.is_full() || input.len() - taken < 2 {
                            return Step { consumed: taken, event: None };
                        }
                        (partial.take().expect("filled above").take(), taken)
                    }
                };
                let State::Body { pri, delay, ttr, .. } = std::mem::replace(&mut self.state, State::Line) else {
                    unreachable!("in the body state")
                };
                let event = if input[consumed..consumed + 2] == *b"\r\n" {
                    Event::Command(Command::Put(NewJob { pri, delay, ttr, body }))
                } else {
                    Event::PutWithoutCrlf
                };
                Step { consumed: consumed + 2, event: Some(event) }
            }
            State::Discard { remaining } => {
                let take = remaining.min(input.len() as u64);
                if take == remaining {
                    self.state = State::Line;
                    Step { consumed: take as usize, event: Some(Event::Reply(Reply::JobTooBig)) }
                } else {
                    self.state = State::Discard { remaining: remaining - take };
                    Step { consumed: take as usize, event: None }
                }
            }
            State::SkipLine => match memmem::find(input, b"\r\n") {
                Some(at) => {
                    self.state = State::Line;
                    Step { consumed: at + 2, event: Some(Event::Reply(Reply::BadFormat)) }
                }
                // Keep a trailing CR: its LF may be in the next read. (Losing
                // it is how beanstalkd comes to swallow the next command.)
                None => Step { consumed: input.len() - usize::from(input.ends_with(b"\r")), event: None },
            },
        }
    }

    fn decode_line<'a>(&mut self, input: &'a [u8]) -> Step<'a> {
        let line_len = match find_line_end(input) {
            LineEnd::Found(len) => len,
            LineEnd::NeedMore => return Step { consumed: 0, event: None },
            LineEnd::TooLong => {
                // Like beanstalkd, drop the first MAX_LINE bytes and skip to
                // the next CRLF. Unlike it, keep a CR in the last position:
                // its LF ends this line, and dropping the CR is how
                // beanstalkd comes to swallow the next command.
                self.state = State::SkipLine;
                let keep_cr = usize::from(input[MAX_LINE - 1] == b'\r');
                return Step { consumed: MAX_LINE - keep_cr, event: None };
            }
        };
        let event = match parse_line(&input[..line_len - 2], self.max_job_size) {
            Line::Command(command) => Event::Command(command),
            Line::Reject(reply) => Event::Reply(reply),
            Line::CountedBadFormat(op) => Event::CountedBadFormat(op),
            Line::Quit => Event::Quit,
            Line::PutHeader { pri, delay, ttr, bytes } => {
                let len = bytes as usize;
                let end = line_len + len + 2;
                if input.get(end - 2..end) == Some(b"\r\n") {
                    // Lent from the input: the engine's store takes the
                    // one copy.
                    let body = BodyBytes::Borrowed(&input[line_len..line_len + len]);
                    return Step { consumed: end, event: Some(Event::WholePut(NewJob { pri, delay, ttr, body })) };
                }
                self.state = State::Body { pri, delay, ttr, len, partial: None, announced: true };
                Event::PutStarted
            }
            Line::PutTooBig { bytes } => {
                self.state = State::Discard { remaining: u64::from(bytes) + 2 };
                Event::PutTooBig
            }
        };
        Step { consumed: line_len, event: Some(event) }
    }
}

enum LineEnd {
    /// A line of this many bytes, CRLF included.
    Found(usize),
    NeedMore,
    TooLong,
}

/// beanstalkd's rule: the line ends at the first CR if an LF follows it, and
/// the line with its CRLF must fit in [`MAX_LINE`] bytes. A CR followed by
/// anything else hides later line ends until the line is too long.
fn find_line_end(input: &[u8]) -> LineEnd {
    let window = &input[..input.len().min(MAX_LINE)];
    if let Some(cr) = memchr(b'\r', window)
        && window.get(cr + 1) == Some(&b'\n')
    {
        return LineEnd::Found(cr + 2);
    }
    if input.len() >= MAX_LINE { LineEnd::TooLong } else { LineEnd::NeedMore }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of `chunk` bytes, as a connection would.
    fn events(input: &[u8], chunk: usize, max_job_size: u32) -> Vec<Event<'static>> {
        let mut decoder = Decoder::new(max_job_size);
        let mut buffered = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            buffered.extend_from_slice(piece);
            loop {
                let step = decoder.decode(&buffered);
                let stalled = step.is_stalled();
                // Put lines are checked in `put_lines_come_first`; a whole
                // put is its command (its body copied out of the input,
                // which is about to go).
                let event = match step.event {
                    Some(Event::WholePut(job)) => {
                        Some(Event::Command(Command::Put(job.map_body(BodyBytes::into_shared))))
                    }
                    other => other.map(Event::into_owned),
                };
                buffered.drain(..step.consumed);
                out.extend(event.filter(|e| !matches!(e, Event::PutStarted | Event::PutTooBig)));
                if stalled {
                    break;
                }
            }
        }
        out
    }

    fn every_chunking(input: &[u8], max_job_size: u32) -> Vec<Event<'static>> {
        let whole = events(input, input.len().max(1), max_job_size);
        for chunk in [1, 2, 3, 7, 100, 223, 224, 225] {
            assert_eq!(events(input, chunk, max_job_size), whole, "chunk {chunk}");
        }
        whole
    }

    fn put(body: &[u8]) -> Event<'static> {
        Event::Command(Command::Put(NewJob { pri: 1, delay: 0, ttr: 5, body: body.into() }))
    }

    #[test]
    fn put_with_body_in_any_chunking() {
        let events = every_chunking(b"put 1 0 5 3\r\nabc\r\nput 1 0 5 0\r\n\r\nquit\r\n", 65535);
        assert_eq!(events, vec![put(b"abc"), put(b""), Event::Quit]);
    }

    #[test]
    fn a_put_with_its_whole_body_is_one_step() {
        let mut decoder = Decoder::new(10);
        let input = b"put 1 0 5 3\r\nabc\r\nquit";
        let job = NewJob { pri: 1, delay: 0, ttr: 5, body: BodyBytes::Borrowed(b"abc") };
        let step = decoder.decode(input);
        assert_eq!(step, Step { consumed: 18, event: Some(Event::WholePut(job)) });
        assert!(decoder.is_at_line());
        // The body is lent from the input, not copied.
        let Some(Event::WholePut(NewJob { body: BodyBytes::Borrowed(body), .. })) = step.event else { unreachable!() };
        assert_eq!(body.as_ptr(), input[13..].as_ptr());
        // Without its CRLF yet, or with another byte there, the line comes first.
        assert_eq!(decoder.decode(b"put 1 0 5 3\r\nabc\r").event, Some(Event::PutStarted));
        let mut decoder = Decoder::new(10);
        assert_eq!(decoder.decode(b"put 1 0 5 3\r\nabcde").event, Some(Event::PutStarted));
    }

    #[test]
    fn put_lines_come_first() {
        let mut decoder = Decoder::new(10);
        assert_eq!(decoder.decode(b"put 1 0 5 3\r\nab").event, Some(Event::PutStarted));
        assert_eq!(decoder.decode(b"ab"), Step { consumed: 2, event: None }, "the body has not all arrived");
        let mut decoder = Decoder::new(10);
        assert_eq!(decoder.decode(b"put 1 0 5 11\r\n").event, Some(Event::PutTooBig));
    }

    #[test]
    fn a_body_in_pieces_is_taken_as_it_comes() {
        let mut decoder = Decoder::new(65535);
        assert_eq!(decoder.decode(b"put 1 0 5 10\r\n").consumed, 14);
        assert_eq!(decoder.wanted(), 12);
        // Each piece is used at once: the connection keeps none of it.
        assert_eq!(decoder.decode(b"0123"), Step { consumed: 4, event: None });
        assert_eq!(decoder.wanted(), 8);
        assert_eq!(decoder.decode(b"456789\r"), Step { consumed: 6, event: None });
        assert!(decoder.decode(b"\r").is_stalled(), "the CRLF is taken whole");
        let step = decoder.decode(b"\r\nquit\r\n");
        assert_eq!(step, Step { consumed: 2, event: Some(put(b"0123456789")) });
        assert_eq!(decoder.decode(b"quit\r\n").event, Some(Event::Quit));
    }

    /// A body announced at `-z`'s largest and barely begun holds room for
    /// the bytes that came, not for the gigabyte announced.
    #[test]
    fn an_announced_body_costs_what_arrived() {
        let mut decoder = Decoder::new(1 << 30);
        assert_eq!(decoder.decode(b"put 0 0 10 1073741824\r\n").event, Some(Event::PutStarted));
        assert_eq!(decoder.decode(b"abc"), Step { consumed: 3, event: None });
        let State::Body { partial: Some(body), .. } = &decoder.state else { panic!("in the body") };
        assert_eq!((body.filled(), body.capacity()), (3, 3));
        assert_eq!(decoder.wanted(), (1 << 30) + 2 - 3);
        assert_eq!(decoder.body_room_short(), (1 << 30) - 3);
        // Bytes said to wait in the socket get their room at once.
        decoder.make_body_room(1 << 20);
        assert_eq!(decoder.body_room_short(), (1 << 30) - 3 - (1 << 20));
        let mut quit = Decoder::new(10);
        quit.make_body_room(100);
        assert_eq!(quit.body_room_short(), 0, "no body, no room");
    }

    #[test]
    fn an_aimed_body_becomes_the_puts_body() {
        let mut decoder = Decoder::new(65535);
        let body = |filled: &[u8]| {
            let mut body = PartialBody::allocated(10);
            body.fill(filled);
            body
        };
        for (line, why) in [
            (&b"put 1 0 5 10\r\nx"[..], "exactly one line"),
            (b"put 1 0 5 1", "a whole line"),
            (b"put 1 0 5 11\r\n", "a put of another size"),
            (b"peek 1234567\r\n", "a put"),
            (b"put 1 0 5 99999\r\n", "a body within -z"),
        ] {
            let refused = decoder.start_aimed_put(line, body(b"0123"));
            assert_eq!(refused.map_err(|b| b.received().to_vec()), Err(b"0123".to_vec()), "{why}");
        }
        assert!(decoder.is_at_line(), "a refused aim leaves the decoder as it was");
        assert!(decoder.start_aimed_put(b"put 1 0 5 10\r\n", body(b"012345")).is_ok());
        // The line was parsed once, above: its event comes first, from no input.
        assert_eq!(decoder.decode(b"6789\r\n"), Step { consumed: 0, event: Some(Event::PutStarted) });
        assert_eq!(decoder.wanted(), 6);
        assert_eq!(decoder.decode(b"6789\r\n"), Step { consumed: 6, event: Some(put(b"0123456789")) });
        assert!(decoder.is_at_line());
    }

    #[test]
    fn body_containing_crlf_and_nul() {
        let events = every_chunking(b"put 1 0 5 4\r\n\r\n\0x\r\n", 65535);
        assert_eq!(events, vec![put(b"\r\n\0x")]);
    }

    #[test]
    fn body_without_crlf() {
        let events = every_chunking(b"put 1 0 5 1\r\nxy\r\nlist-tube-used\r\n", 65535);
        // The byte after the declared body is not CRLF; what follows is read
        // as a new command line (here "\n" glued to the next command).
        assert_eq!(events, vec![Event::PutWithoutCrlf, Event::Reply(Reply::UnknownCommand)]);
    }

    #[test]
    fn oversized_body_is_discarded_as_it_streams() {
        let mut input = b"put 0 0 1 11\r\n".to_vec();
        input.extend_from_slice(b"hello world\r\nlist-tube-used\r\n");
        let events = every_chunking(&input, 10);
        assert_eq!(events, vec![Event::Reply(Reply::JobTooBig), Event::Command(Command::ListTubeUsed)]);
    }

    #[test]
    fn line_cap_is_224_bytes_with_crlf() {
        let name = "a".repeat(MAX_LINE - 2 - "use ".len());
        let ok = format!("use {name}\r\n");
        assert_eq!(ok.len(), MAX_LINE);
        // The name is too long for a tube, but the line itself is fine.
        assert_eq!(every_chunking(ok.as_bytes(), 65535), vec![Event::Reply(Reply::BadFormat)]);

        let long = format!("use {name}a\r\nlist-tube-used\r\n");
        // Unlike beanstalkd, the command after a 225-byte line is answered.
        assert_eq!(
            every_chunking(long.as_bytes(), 65535),
            vec![Event::Reply(Reply::BadFormat), Event::Command(Command::ListTubeUsed)]
        );
    }

    #[test]
    fn very_long_line_is_skipped_without_buffering() {
        let mut decoder = Decoder::new(65535);
        let junk = vec![b'x'; 4096];
        for _ in 0..1000 {
            // Every byte is consumed at once: nothing accumulates.
            let mut rest = &junk[..];
            while !rest.is_empty() {
                let step = decoder.decode(rest);
                assert!(step.consumed > 0 && step.event.is_none());
                rest = &rest[step.consumed..];
            }
        }
        let step = decoder.decode(b"x\r");
        assert_eq!(step.consumed, 1);
        let step = decoder.decode(b"\r\nstats\r\n");
        assert_eq!(step, Step { consumed: 2, event: Some(Event::Reply(Reply::BadFormat)) });
    }

    #[test]
    fn lone_cr_hides_the_line_end_like_beanstalkd() {
        assert_eq!(every_chunking(b"use a\rb\r\n", 65535), vec![]);
        assert_eq!(every_chunking(b"list-tube-used\nlist-tube-used\r\n", 65535), vec![Event::Reply(Reply::BadFormat)]);
    }

    #[test]
    fn quit_then_more() {
        assert_eq!(every_chunking(b"quit\r\nstats\r\n", 65535)[0], Event::Quit);
    }
}

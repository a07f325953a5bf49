//! Where one connection stands, as the event loop sees it: what its socket
//! may still hold, whether the client is done sending, whether the
//! connection is finished, and whether it is listed for this turn's flush.
//!
//! Each flag changes only through a method named for the event that
//! changes it, so the rules (edge-triggered readiness, a hang-up that must
//! be read to its end, a failed socket that is closed at once) sit in one
//! place instead of in the loop's conditions.

/// A connection's flags. Starts readable (a new socket may already hold a
/// request) and with nothing else set.
#[derive(Debug)]
pub struct ConnState {
    /// The socket may have bytes to read (edge-triggered readiness: only a
    /// read that would block, or one that drained the socket, clears it).
    readable: bool,
    /// The poller reported the peer's shutdown (or an error): no further
    /// event will come, so reads go on until they return 0.
    hung_up: bool,
    /// The last read did not fill the buffer: the socket was empty then.
    drained: bool,
    /// The client shut down its sending side: a read returned 0.
    input_ended: bool,
    /// The client sent `quit`: no more commands; close once replies are out.
    quitting: bool,
    /// A read or write failed: close at once, send nothing more.
    broken: bool,
    /// The decoder needs more bytes than are buffered; cleared by a read
    /// that brings some.
    stalled: bool,
    /// Listed for the flush at the end of the turn.
    flush_listed: bool,
}

impl Default for ConnState {
    fn default() -> ConnState {
        ConnState {
            readable: true,
            hung_up: false,
            drained: false,
            input_ended: false,
            quitting: false,
            broken: false,
            stalled: false,
            flush_listed: false,
        }
    }
}

impl ConnState {
    /// The poller reported the socket readable, or closed by the peer (which
    /// is readable too: the read returns 0), or in error (which a read
    /// reports).
    pub fn on_readiness(&mut self, readable: bool, closed: bool) {
        if readable || closed {
            self.readable = true;
        }
        if closed {
            self.hung_up = true;
        }
    }

    /// A read brought bytes; `filled` if they filled the buffer offered.
    pub fn read_bytes(&mut self, filled: bool) {
        self.stalled = false;
        self.drained = !filled;
    }

    /// A read would block: the socket is empty until the next event.
    pub fn read_would_block(&mut self) {
        self.readable = false;
    }

    /// A read returned 0: the client will send nothing more.
    pub fn read_end(&mut self) {
        self.input_ended = true;
    }

    /// A read or write failed.
    pub fn fail(&mut self) {
        self.broken = true;
    }

    /// The client sent `quit`.
    pub fn quit(&mut self) {
        self.quitting = true;
    }

    /// The decoder needs bytes that have not arrived.
    pub fn stall(&mut self) {
        self.stalled = true;
    }

    /// Called once what a read brought was processed. A read that did not
    /// fill the buffer drained the socket, and with edge-triggered readiness
    /// whatever arrives after it raises a new event (epoll(7), question 9):
    /// so the connection stops reading rather than spend a second read to
    /// hear `WouldBlock`. Except in two cases: `in_body`, in the middle of a
    /// body, which is arriving as we speak (a 64 KiB put comes in pieces),
    /// one more read usually finds the next piece sooner than another turn
    /// of the loop; and once the peer has hung up no event follows, so reads
    /// go on until they return 0.
    pub fn settle_after_read(&mut self, in_body: bool) {
        if self.drained && !self.hung_up && !in_body {
            self.readable = false;
        }
        self.drained = false;
    }

    /// Lists the connection for the end of the turn's flush; false if it
    /// was listed already.
    pub fn list_for_flush(&mut self) -> bool {
        !std::mem::replace(&mut self.flush_listed, true)
    }

    /// Takes the connection off the flush list; false if it was not on it
    /// (a closed connection's key, taken by a new one).
    pub fn take_flush_listing(&mut self) -> bool {
        std::mem::take(&mut self.flush_listed)
    }

    /// True while the socket may hold bytes and the client has not ended
    /// its input.
    pub fn may_read(&self) -> bool {
        self.readable && !self.input_ended
    }

    /// True while commands may still be taken from this connection (output
    /// aside: see [`super::connection::Connection::can_process`]).
    pub fn takes_commands(&self) -> bool {
        !self.quitting && !self.broken
    }

    /// True once the client ended its input.
    pub fn input_ended(&self) -> bool {
        self.input_ended
    }

    /// True if the decoder is waiting for bytes that have not arrived.
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// True if a read or write failed.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// True when no more input will be taken: `quit`, or the client's input
    /// ended with nothing left to decode and no reserve waiting (a waiting
    /// reserve is answered even after the client hung up its sending side).
    pub fn done_with_input(&self, waiting: bool) -> bool {
        self.quitting || (self.input_ended && self.stalled && !waiting)
    }
}

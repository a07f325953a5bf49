//! Driving one connection: read what it sent, decode it, hand the events to
//! the engine, and route the engine's replies to the connections they are
//! for. Replies are sent at the end of the turn (`end_of_turn.rs`).

use super::Server;
use super::connection::{READ_CHUNK, ReadOutcome};
use crate::binlog::Binlog;
use crate::engine::ConnId;
use crate::protocol::{Event, Op, Reply};

/// Reads per connection per wake-up, so one busy client cannot starve the
/// others.
const READS_PER_TURN: usize = 8;

impl Server {
    /// Drives every connection woken so far, in key order.
    pub(super) fn drive_woken(&mut self) {
        let mut woken = std::mem::take(&mut self.woken);
        woken.sort_unstable();
        woken.dedup();
        for key in woken {
            if self.conns.contains(key) {
                self.drive(key);
            }
        }
    }

    /// Runs buffered commands and reads more, until the connection has
    /// nothing more to do this turn. Replies are sent at the end of the turn.
    pub(super) fn drive(&mut self, key: ConnId) {
        let outer = self.driving.replace(key);
        assert!(outer.is_none(), "drives do not nest: the read buffer is lent to one connection");
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut fresh = 0..0;
        let mut reads = 0;
        loop {
            self.process_input(key, &scratch[fresh]);
            fresh = 0..0;
            let conn = &mut self.conns[key];
            conn.settle_after_read();
            if !conn.wants_input() {
                break;
            }
            if reads == READS_PER_TURN {
                // Come back after the others have had their turn.
                self.woken.push(key);
                break;
            }
            reads += 1;
            // A connection waiting in a reserve keeps what it reads: it reads
            // no more than a chunk at a time then.
            let room = if self.engine.is_waiting(key) { READ_CHUNK } else { scratch.len() };
            match conn.read_some(&mut scratch[..room], &mut self.spare_body) {
                ReadOutcome::Data(range) => fresh = range,
                ReadOutcome::WouldBlock => break,
                ReadOutcome::Eof => {
                    if self.engine.is_waiting(key) {
                        self.engine.hang_up(key);
                        self.deliver_replies();
                    }
                }
            }
        }
        self.scratch = scratch;
        self.driving = None;
        let waiting = self.engine.is_waiting(key);
        if self.conns[key].is_finished(waiting) {
            // Nothing left to send: close now, so that stats taken in this
            // same turn already count the connection as gone.
            self.close(key);
        } else {
            self.list_for_flush(key);
        }
    }

    /// Decodes and handles every event the connection's buffered input and
    /// `fresh` (bytes it just sent, in the read buffer) amount to, stopping
    /// while it waits in a reserve or its output is backed up, or when the
    /// binlog's prepared room runs low (the connection goes on next turn,
    /// once the end of this one made the next file). What is not decoded
    /// is kept for later.
    fn process_input(&mut self, key: ConnId, mut fresh: &[u8]) {
        let read = self.clock.read();
        loop {
            if self.engine.journal().as_ref().is_some_and(Binlog::room_is_low) {
                self.woken.push(key);
                break;
            }
            let conn = &mut self.conns[key];
            if !conn.can_process() || self.engine.is_waiting(key) {
                break;
            }
            let Some(event) = conn.next_event(&mut fresh, &mut self.body_allowance) else { break };
            match event {
                Event::Command(command) => {
                    let input_ended = conn.input_ended();
                    let now = self.clock.stamp(read);
                    if let Some(reply) = self.engine.answer(now, key, command) {
                        conn.push_lent_reply(&reply);
                    }
                    if input_ended && self.engine.is_waiting(key) {
                        // A reserve from a client that already hung up.
                        self.engine.hang_up(key);
                    }
                    self.deliver_replies();
                }
                Event::PutStarted => self.engine.begin_put_at(key, self.clock.next_stamp(read)),
                Event::WholePut(job) => {
                    // The line's part, then the body's, as if they came apart
                    // (at one instant: the job is made at the put's time).
                    self.engine.begin_put(key);
                    let now = self.clock.stamp(read);
                    conn.push_lent_reply(&self.engine.answer_put(now, key, job));
                    self.deliver_replies();
                }
                Event::PutWithoutCrlf => {
                    self.engine.abandon_put(key);
                    conn.push_reply(&Reply::ExpectedCrlf);
                }
                Event::PutTooBig => self.engine.count_rejected(Op::Put),
                Event::CountedBadFormat(op) => {
                    self.engine.count_rejected(op);
                    conn.push_reply(&Reply::BadFormat);
                }
                Event::Reply(reply) => conn.push_reply(&reply),
                Event::Quit => conn.quit(),
            }
        }
        self.conns[key].keep(fresh);
    }

    /// Moves the engine's replies into their connections' output buffers.
    /// The connection being driven is listed for the flush once, when its
    /// drive ends; others are listed here, and woken to take up their
    /// pipelines.
    ///
    /// Inlined: it runs after every command, and most leave no reply in
    /// the engine's outbox (their own went straight to their output).
    #[inline]
    pub(super) fn deliver_replies(&mut self) {
        if self.engine.has_replies() {
            self.deliver_queued_replies();
        }
    }

    fn deliver_queued_replies(&mut self) {
        for (key, reply) in self.engine.send_replies() {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.push_lent_reply(&reply);
                if self.driving != Some(key) {
                    if conn.list_for_flush() {
                        self.handed.push(key);
                    }
                    self.woken.push(key);
                }
            }
        }
    }
}

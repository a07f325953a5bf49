//! The turn: wait for events, hand each to its handler, let the engine act
//! on the time, drive the connections that were woken, end the turn.

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Token};

use super::connections::ACCEPT_RETRY;
use super::web::{HTTP_CONNS, METRICS_LISTENERS};
use super::{LISTENERS, SIGNALS, Server, ServerError, TIMER, WAKER};

/// How soon an idle server takes the next compaction step.
const COMPACTION_PACE: Duration = Duration::from_millis(5);

impl Server {
    /// Turns until SIGTERM or SIGINT, then shuts down.
    pub(super) fn serve(&mut self) -> Result<(), ServerError> {
        let mut events = Events::with_capacity(1024);
        while !self.stopping {
            let next = match (self.engine.next_deadline(), self.web.next_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let deadline = next.map(|at| self.clock.monotonic_of(at));
            self.timer.arm(deadline);
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            // Signals first: a client that sent SIGUSR1 and then a put
            // expects DRAINING even when both arrive in the same wake-up.
            if events.iter().any(|e| e.token() == SIGNALS) {
                self.handle_signals();
            }
            for event in events.iter() {
                match event.token() {
                    SIGNALS => {}
                    // The binlog's sync thread needs nothing more than a turn.
                    WAKER => self.send_scrapes(),
                    TIMER => self.timer.clear(),
                    Token(i) if i >= LISTENERS => self.accept_all(i - LISTENERS),
                    Token(i) if i >= METRICS_LISTENERS => self.accept_http(i - METRICS_LISTENERS),
                    Token(i) if i >= HTTP_CONNS => self.drive_http(i - HTTP_CONNS),
                    Token(key) => {
                        let Some(conn) = self.conns.get_mut(key) else { continue };
                        conn.on_readiness(event.is_readable(), event.is_read_closed() || event.is_error());
                        if event.is_read_closed() && self.engine.is_waiting(key) {
                            self.engine.hang_up(key);
                            self.deliver_replies();
                        }
                        self.drive(key);
                    }
                }
            }
            if self.accept_paused {
                self.accept_on_every_listener();
            }
            if self.web.next_deadline().is_some_and(|at| at <= self.clock.read()) {
                self.expire_http();
                self.sample_rates_if_due();
            }
            let now = self.clock.now();
            self.engine.tick(now);
            self.deliver_replies();
            self.drive_woken();
            self.end_turn();
            self.memory.after_turn(self.engine.bulk_freed());
        }
        self.shut_down();
        Ok(())
    }

    /// Sleep until the engine's next timer, or not at all when connections
    /// still have work from the last turn.
    fn poll_timeout(&mut self) -> Option<Duration> {
        if !self.woken.is_empty() {
            return Some(Duration::ZERO);
        }
        // The timer wakes the loop at the engine's deadline; the rounded-up
        // poll timeout stays as a fallback.
        let now = self.clock.read();
        let mut timeout = self.engine.next_deadline().map(|at| Duration::from_nanos(at.saturating_sub(now)));
        if let Some(at) = self.web.next_deadline() {
            let until = Duration::from_nanos(at.saturating_sub(now));
            timeout = Some(timeout.map_or(until, |t| t.min(until)));
        }
        if let Some(binlog) = self.engine.journal() {
            let mut until = binlog.next_sync_at().map(|at| at.saturating_duration_since(Instant::now()));
            if binlog.wants_compaction() {
                // Compaction goes on between requests too, a batch a turn.
                until = Some(until.map_or(COMPACTION_PACE, |t| t.min(COMPACTION_PACE)));
            }
            if let Some(until) = until {
                timeout = Some(timeout.map_or(until, |t| t.min(until)));
            }
        }
        if self.accept_paused {
            timeout = Some(timeout.map_or(ACCEPT_RETRY, |t| t.min(ACCEPT_RETRY)));
        }
        timeout
    }
}

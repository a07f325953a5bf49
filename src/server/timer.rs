//! Waking the loop at the engine's next deadline.
//!
//! `epoll_wait` takes its timeout in whole milliseconds (mio rounds up), so
//! a loop that slept on the poll timeout alone woke up to a millisecond
//! late: a delayed job became ready, and a reserve timed out, that much
//! after its deadline. A timerfd armed for the deadline itself (nanosecond
//! resolution) wakes the loop on time.

use std::io;
use std::os::fd::AsRawFd;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::timerfd::{MonotonicNanos, Reads, TimerFd, monotonic_now};

/// A timerfd registered with the loop's poller, set for the engine's next
/// deadline (or sooner).
pub struct DeadlineTimer {
    timer: TimerFd,
    /// The `CLOCK_MONOTONIC` time the timer is set for, if it is set.
    armed_for: Option<MonotonicNanos>,
}

impl DeadlineTimer {
    /// A disarmed timer, registered with `registry` under `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<DeadlineTimer> {
        let timer = TimerFd::new(Reads::NonBlocking)?;
        registry.register(&mut SourceFd(&timer.as_raw_fd()), token, Interest::READABLE)?;
        Ok(DeadlineTimer { timer, armed_for: None })
    }

    /// Makes the timer fire at `at` (on `CLOCK_MONOTONIC`) or before it.
    ///
    /// A timer that will fire sooner is left as it is (and one that is no
    /// longer needed, armed): it wakes the loop early, nothing is due, and it
    /// is set for the real deadline then. The engine's next deadline moves
    /// later at nearly every turn under load (the job whose TTR ends first is
    /// deleted), and following it cost a `timerfd_settime` per turn.
    pub fn arm(&mut self, at: Option<MonotonicNanos>) {
        let Some(at) = at else { return };
        if self.armed_for.is_some_and(|armed| monotonic_now() < armed && armed <= at) {
            return;
        }
        match self.timer.set_at(at) {
            Ok(()) => self.armed_for = Some(at),
            Err(e) => {
                log::warn!("timerfd_settime: {e}");
                self.armed_for = None;
            }
        }
    }

    /// Acknowledges an expiry, so the descriptor stops being readable.
    pub fn clear(&mut self) {
        // WouldBlock when it did not expire after all: nothing to clear.
        let _ = self.timer.take_expiry();
        self.armed_for = None;
    }
}

//! Engine time, read from the machine's clocks.
//!
//! The engine is given the time with every call (it has no clock of its
//! own). Its time is wall-clock nanoseconds at the server's start, advanced
//! by `CLOCK_MONOTONIC`: so it never jumps when the wall clock is set, and
//! it still means something across restarts, where the binlog stores it
//! (a delayed job's deadline, a burial time, a job's creation).
//!
//! Every time handed to the engine is at least a nanosecond after the one
//! before ([`Clock::stamp`]). The clock is read once per connection per
//! turn, so the commands of one pipelined write would otherwise share a
//! time, and a `release` with a delay would tie with a `put` of the same
//! delay sent before it; the engine breaks ties by id, so the earlier
//! command's job would look later. beanstalkd reads the clock for every
//! command, and so does sprout in effect: a later command's deadlines are
//! never earlier than, nor equal to, an earlier command's. A nanosecond is
//! far below what a client can see (seconds).

use crate::engine::Nanos;
use crate::timerfd::{MonotonicNanos, monotonic_now};

/// The server's clock: the engine's time, and the `CLOCK_MONOTONIC` time
/// the deadline timer is armed on, related by two readings taken at start.
#[derive(Debug)]
pub struct Clock {
    /// `CLOCK_MONOTONIC` at start.
    origin_mono: MonotonicNanos,
    /// The wall clock at start, in nanoseconds since the Unix epoch.
    origin_wall: Nanos,
    /// The latest time handed to the engine.
    last_stamp: Nanos,
}

impl Clock {
    /// Reads both clocks now.
    pub fn start() -> Clock {
        let origin_mono = monotonic_now();
        let origin_wall =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as Nanos);
        Clock { origin_mono, origin_wall, last_stamp: origin_wall }
    }

    /// The engine's time when the server started.
    pub fn started_at(&self) -> Nanos {
        self.origin_wall
    }

    /// The engine's time now, as read (for waits; the engine's calls take
    /// [`Clock::now`] or [`Clock::stamp`]).
    pub fn read(&self) -> Nanos {
        self.origin_wall + monotonic_now().saturating_sub(self.origin_mono)
    }

    /// The time for the engine's next call: the clock's reading, or a
    /// nanosecond after the previous call's time.
    pub fn now(&mut self) -> Nanos {
        self.stamp(self.read())
    }

    /// The time for the engine's next call, given a reading taken earlier
    /// in this turn (the commands of one read share a reading): `read`, or
    /// a nanosecond after the previous call's time if that is not earlier.
    pub fn stamp(&mut self, read: Nanos) -> Nanos {
        self.last_stamp = read.max(self.last_stamp + 1);
        self.last_stamp
    }

    /// The time [`Clock::stamp`] would give now for `read`, without giving
    /// it: a put's line is stamped so, and the put itself, when its body is
    /// in the same read, gets the very same time.
    pub fn next_stamp(&self, read: Nanos) -> Nanos {
        read.max(self.last_stamp + 1)
    }

    /// The `CLOCK_MONOTONIC` time at which the engine's clock reads `at`.
    pub fn monotonic_of(&self, at: Nanos) -> MonotonicNanos {
        self.origin_mono + at.saturating_sub(self.origin_wall)
    }
}

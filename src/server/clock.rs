//! Engine time, read from the machine's clocks.
//!
//! The engine is given the time with every call (it has no clock of its
//! own). Its time is wall-clock nanoseconds at the server's start, advanced
//! by `CLOCK_MONOTONIC`: so it never jumps when the wall clock is set, and
//! it still means something across restarts, where the binlog stores it
//! (a delayed job's deadline, a burial time, a job's creation).

use crate::engine::Nanos;
use crate::timerfd::{MonotonicNanos, monotonic_now};

/// The server's clock: the engine's time, and the `CLOCK_MONOTONIC` time
/// the deadline timer is armed on, related by two readings taken at start.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// `CLOCK_MONOTONIC` at start.
    origin_mono: MonotonicNanos,
    /// The wall clock at start, in nanoseconds since the Unix epoch.
    origin_wall: Nanos,
}

impl Clock {
    /// Reads both clocks now.
    pub fn start() -> Clock {
        let origin_mono = monotonic_now();
        let origin_wall =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as Nanos);
        Clock { origin_mono, origin_wall }
    }

    /// The engine's time when the server started.
    pub fn started_at(&self) -> Nanos {
        self.origin_wall
    }

    /// The engine's time now.
    pub fn now(&self) -> Nanos {
        self.origin_wall + monotonic_now().saturating_sub(self.origin_mono)
    }

    /// The `CLOCK_MONOTONIC` time at which the engine's clock reads `at`.
    pub fn monotonic_of(&self, at: Nanos) -> MonotonicNanos {
        self.origin_mono + at.saturating_sub(self.origin_wall)
    }
}

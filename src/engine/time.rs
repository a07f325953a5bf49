//! Engine time: nanoseconds on a monotonic clock that the caller supplies.
//!
//! The engine never reads a clock. The server passes the time to every call,
//! and tests pass whatever time they like, so TTRs, delays and pauses are
//! tested without sleeping.

/// Nanoseconds since an arbitrary origin (the server uses its start).
pub type Nanos = u64;

/// One second.
pub const SECOND: Nanos = 1_000_000_000;

/// Whole seconds to nanoseconds.
pub fn secs(s: u32) -> Nanos {
    u64::from(s) * SECOND
}

/// A duration that holds whole seconds (a delay or TTR given by a client),
/// back in seconds; durations beyond `u32::MAX` seconds saturate.
pub fn whole_secs(d: Nanos) -> u32 {
    u32::try_from(d / SECOND).unwrap_or(u32::MAX)
}

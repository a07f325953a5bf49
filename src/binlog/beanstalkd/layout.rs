//! Where every field sits in a beanstalkd binlog file.
//!
//! beanstalkd writes its `struct Jobrec` (`dat.h`) straight from memory, so
//! the layout is the C compiler's on x86_64: natural alignment, 80 bytes,
//! little-endian. Offsets, checked against files beanstalkd 1.12 wrote:
//!
//! | offset | type | field |
//! |---|---|---|
//! | 0 | u64 | id |
//! | 8 | u32 | pri (then 4 bytes of padding) |
//! | 16 | i64 | delay, ns |
//! | 24 | i64 | ttr, ns |
//! | 32 | i32 | body_size: the body's length *with* its CRLF (then 4 bytes of padding) |
//! | 40 | i64 | created_at, wall-clock ns since the epoch |
//! | 48 | i64 | deadline_at, wall-clock ns: when a delayed job becomes ready; stale in other states |
//! | 56 | 5 × u32 | reserve_ct, timeout_ct, release_ct, bury_ct, kick_ct |
//! | 76 | u8 | state (then 3 bytes of padding) |
//!
//! Padding is whatever was in memory: never read. Version 5 (beanstalkd
//! before 1.5) has the same offsets with the four times as unsigned
//! microseconds, no trailing padding (77 bytes: beanstalkd reads
//! `offsetof(Jobrec5, pad)` bytes), and an 8-byte `size_t` name length.

use crate::engine::JobCounts;

/// Bytes of the version number that starts every file (an `int32`).
pub const FILE_VERSION_LEN: usize = 4;

/// The longest tube name a record may carry (beanstalkd's
/// `MAX_TUBE_NAME_LEN` less its NUL).
pub const MAX_NAME_LEN: usize = 200;

/// Bytes of a version 7 `Jobrec`.
pub(super) const V7_JOBREC_LEN: usize = 80;

/// Bytes of a version 5 `Jobrec5` as written (its 1-byte padding is not).
pub(super) const V5_JOBREC_LEN: usize = 77;

const ID: usize = 0;
const PRI: usize = 8;
const DELAY: usize = 16;
const TTR: usize = 24;
const BODY_SIZE: usize = 32;
const CREATED_AT: usize = 40;
const DEADLINE_AT: usize = 48;
const COUNTS: usize = 56;
const STATE: usize = 76;

/// The format versions beanstalkd can read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// beanstalkd before 1.5: 8-byte name lengths, times in microseconds.
    V5,
    /// beanstalkd 1.5 to 1.12 (`Walver = 7`): what any beanstalkd in use
    /// writes.
    V7,
}

impl Version {
    /// The number a file starts with.
    pub fn number(self) -> i32 {
        match self {
            Version::V5 => 5,
            Version::V7 => 7,
        }
    }

    /// Bytes of a record's name length: an `int` in version 7, a `size_t`
    /// in version 5.
    pub(super) fn name_len_bytes(self) -> usize {
        match self {
            Version::V5 => 8,
            Version::V7 => 4,
        }
    }

    /// Bytes of a record's `Jobrec`.
    pub(super) fn jobrec_len(self) -> usize {
        match self {
            Version::V5 => V5_JOBREC_LEN,
            Version::V7 => V7_JOBREC_LEN,
        }
    }
}

/// The version a file's first bytes name: `None` if there are fewer than
/// [`FILE_VERSION_LEN`] of them or the number is neither 7 nor 5.
pub fn version_of(first: &[u8]) -> Option<Version> {
    match i32::from_le_bytes(*first.first_chunk()?) {
        7 => Some(Version::V7),
        5 => Some(Version::V5),
        _ => None,
    }
}

/// A job's state in a record (beanstalkd's `Invalid` .. `Delayed`; its 5,
/// `Copy`, is never written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// 0: the job was deleted (beanstalkd's `Invalid`).
    Deleted,
    /// 1: waiting to be reserved.
    Ready,
    /// 2: reserved by a worker (written only by compaction).
    Reserved,
    /// 3: buried.
    Buried,
    /// 4: waiting for its delay (`deadline_at`) to end.
    Delayed,
}

impl State {
    /// The state a record's byte names, if any.
    pub fn from_byte(byte: u8) -> Option<State> {
        Some(match byte {
            0 => State::Deleted,
            1 => State::Ready,
            2 => State::Reserved,
            3 => State::Buried,
            4 => State::Delayed,
            _ => return None,
        })
    }

    /// The byte a record stores for this state.
    pub fn byte(self) -> u8 {
        match self {
            State::Deleted => 0,
            State::Ready => 1,
            State::Reserved => 2,
            State::Buried => 3,
            State::Delayed => 4,
        }
    }
}

/// A `Jobrec`'s fields, times in nanoseconds whatever the version; the state
/// as stored, not yet checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Jobrec {
    pub id: u64,
    pub pri: u32,
    pub delay_ns: i64,
    pub ttr_ns: i64,
    pub body_size: i32,
    pub created_at_ns: i64,
    pub deadline_at_ns: i64,
    pub counts: JobCounts,
    pub state: u8,
}

impl Jobrec {
    /// Decodes a `Jobrec` of `version`; `bytes` holds at least
    /// `version.jobrec_len()` bytes. A version 5 time too large for
    /// nanoseconds in an `i64` is an error (no beanstalkd wrote one).
    pub fn decode(version: Version, bytes: &[u8]) -> Result<Jobrec, String> {
        let Some(bytes) = bytes.first_chunk::<V5_JOBREC_LEN>() else {
            return Err(format!("{} bytes are too few for a job record", bytes.len()));
        };
        let time = |at: usize, name: &str| match version {
            Version::V7 => Ok(i64::from_le_bytes(field(bytes, at))),
            Version::V5 => u64::from_le_bytes(field(bytes, at))
                .checked_mul(1000)
                .and_then(|ns| i64::try_from(ns).ok())
                .ok_or_else(|| format!("{name} of {} µs is out of range", u64::from_le_bytes(field(bytes, at)))),
        };
        let count = |i: usize| u32::from_le_bytes(field(bytes, COUNTS + 4 * i));
        Ok(Jobrec {
            id: u64::from_le_bytes(field(bytes, ID)),
            pri: u32::from_le_bytes(field(bytes, PRI)),
            delay_ns: time(DELAY, "delay")?,
            ttr_ns: time(TTR, "ttr")?,
            body_size: i32::from_le_bytes(field(bytes, BODY_SIZE)),
            created_at_ns: time(CREATED_AT, "created_at")?,
            deadline_at_ns: time(DEADLINE_AT, "deadline_at")?,
            counts: JobCounts {
                reserves: count(0),
                timeouts: count(1),
                releases: count(2),
                buries: count(3),
                kicks: count(4),
            },
            state: bytes[STATE],
        })
    }

    /// The version 7 bytes, padding zeroed.
    pub fn encode_v7(&self) -> [u8; V7_JOBREC_LEN] {
        let mut out = [0; V7_JOBREC_LEN];
        let mut put = |at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
        put(ID, &self.id.to_le_bytes());
        put(PRI, &self.pri.to_le_bytes());
        put(DELAY, &self.delay_ns.to_le_bytes());
        put(TTR, &self.ttr_ns.to_le_bytes());
        put(BODY_SIZE, &self.body_size.to_le_bytes());
        put(CREATED_AT, &self.created_at_ns.to_le_bytes());
        put(DEADLINE_AT, &self.deadline_at_ns.to_le_bytes());
        let c = self.counts;
        for (i, n) in [c.reserves, c.timeouts, c.releases, c.buries, c.kicks].into_iter().enumerate() {
            put(COUNTS + 4 * i, &n.to_le_bytes());
        }
        put(STATE, &[self.state]);
        out
    }
}

/// The `N` bytes at `at`, which the callers' constant offsets keep inside
/// the record.
fn field<const N: usize>(bytes: &[u8; V5_JOBREC_LEN], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// The offsets of a version 7 `Jobrec`'s padding, which a comparison of two
/// records' bytes skips.
#[cfg(test)]
pub(super) const V7_PADDING: [std::ops::Range<usize>; 3] = [12..16, 36..40, 77..80];

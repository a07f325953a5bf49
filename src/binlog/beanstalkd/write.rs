//! Jobs as a beanstalkd version 7 file, for the way back from sprout.
//!
//! Each job is one full record (name length, tube name, `Jobrec`, body and
//! CRLF), with its state in it: beanstalkd's reader makes the job of it in
//! that state, as it does for the records its own compaction writes. The
//! padding in the `Jobrec` is zeros.

use std::fmt;

use super::layout::{FILE_VERSION_LEN, Jobrec, MAX_NAME_LEN, State, V7_JOBREC_LEN, Version};
use crate::engine::JobCounts;
use crate::protocol::command::is_name_byte;

/// A job to write, fields as beanstalkd keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportJob<'a> {
    /// Its id.
    pub id: u64,
    /// Its tube's name.
    pub tube: &'a str,
    /// Its priority.
    pub pri: u32,
    /// The delay last given by put or release.
    pub delay_ns: i64,
    /// Its time to run.
    pub ttr_ns: i64,
    /// When it was put, wall-clock nanoseconds since the epoch.
    pub created_at_ns: i64,
    /// Wall-clock nanoseconds: when a delayed job becomes ready (beanstalkd
    /// reads it only for delayed jobs).
    pub deadline_at_ns: i64,
    /// Its `stats-job` counters.
    pub counts: JobCounts,
    /// Its state; beanstalkd brings a reserved job back ready, and a
    /// deleted one not at all.
    pub state: State,
    /// Its body, without CRLF (the writer adds it).
    pub body: &'a [u8],
}

/// Why a job cannot be written as a beanstalkd record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportError {
    /// The tube name is not 1 to 200 of beanstalkd's name characters.
    BadTubeName {
        /// The job.
        id: u64,
    },
    /// The body and its CRLF do not fit the `Jobrec`'s `int32` size.
    BodyTooLarge {
        /// The job.
        id: u64,
        /// The body's length.
        len: usize,
    },
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::BadTubeName { id } => write!(f, "job {id}: its tube name cannot be written for beanstalkd"),
            ExportError::BodyTooLarge { id, len } => {
                write!(f, "job {id}: a body of {len} bytes is too large for a beanstalkd record")
            }
        }
    }
}

impl std::error::Error for ExportError {}

/// Bytes of a job's full record in a version 7 file, for a tube name and a
/// body (without CRLF) of these lengths.
pub fn full_record_len(tube_len: usize, body_len: usize) -> usize {
    4 + tube_len + V7_JOBREC_LEN + body_len + 2
}

/// The `Jobrec` body size of a body of `len` bytes: with its CRLF, if that
/// fits an `int32`.
pub(super) fn body_size(len: usize) -> Option<i32> {
    len.checked_add(2).and_then(|n| i32::try_from(n).ok())
}

/// A version 7 file being made, in memory: the version, then full records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V7Writer {
    bytes: Vec<u8>,
}

impl Default for V7Writer {
    fn default() -> V7Writer {
        V7Writer::new()
    }
}

impl V7Writer {
    /// A file holding only its version.
    pub fn new() -> V7Writer {
        V7Writer { bytes: Version::V7.number().to_le_bytes().to_vec() }
    }

    /// Appends the job's full record; on error nothing is appended.
    pub fn push_full(&mut self, job: &ExportJob<'_>) -> Result<(), ExportError> {
        let name = job.tube.as_bytes();
        let valid_name =
            (1..=MAX_NAME_LEN).contains(&name.len()) && name[0] != b'-' && name.iter().all(|&b| is_name_byte(b));
        if !valid_name {
            return Err(ExportError::BadTubeName { id: job.id });
        }
        let body_size =
            body_size(job.body.len()).ok_or(ExportError::BodyTooLarge { id: job.id, len: job.body.len() })?;
        let jobrec = Jobrec {
            id: job.id,
            pri: job.pri,
            delay_ns: job.delay_ns,
            ttr_ns: job.ttr_ns,
            body_size,
            created_at_ns: job.created_at_ns,
            deadline_at_ns: job.deadline_at_ns,
            counts: job.counts,
            state: job.state.byte(),
        };
        // The length is at most 200: it fits.
        self.bytes.extend_from_slice(&(name.len() as i32).to_le_bytes());
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(&jobrec.encode_v7());
        self.bytes.extend_from_slice(job.body);
        self.bytes.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Bytes so far, the version included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True while no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() == FILE_VERSION_LEN
    }

    /// The file's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

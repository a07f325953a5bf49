//! The format's tests, one concern a file: real files beanstalkd 1.12 wrote
//! and what its own recovery made of them (`fixtures`), reading and its
//! ends (`read`), the replay rules (`replay`), the writer (`write`), and any
//! bytes at all (`robustness`).
//!
//! Besides the real files (`testdata/`, made by `testdata/make.py`), files
//! are built here from the documented layout, with an encoder of its own
//! that states every offset again and fills the padding with garbage. Every
//! version 5 file is built so: no beanstalkd that can still be installed
//! writes version 5.

use super::*;
use crate::engine::{JobCounts, MAX_JOB_ID};

mod fixtures;
mod read;
mod replay;
mod robustness;
mod write;

/// The tests' one random generator, shared with the integration tests.
/// The engine's tests include the file too, in a module private to them:
/// a second copy of three functions, rather than a reach into the engine.
#[allow(clippy::duplicate_mod)]
#[path = "../../../../tests/support/rng.rs"]
mod rng;

pub(super) const SECOND: i64 = 1_000_000_000;

/// A record to build. Fields hold what a valid record holds unless a test
/// overrides them with something invalid.
#[derive(Clone, Debug)]
pub(super) struct Rec {
    pub id: u64,
    /// A full record's tube; `None` makes a short record.
    pub tube: Option<String>,
    pub pri: u32,
    pub delay_ns: i64,
    pub ttr_ns: i64,
    pub created_at_ns: i64,
    pub deadline_at_ns: i64,
    pub counts: JobCounts,
    pub state: u8,
    /// Without CRLF (added when built, unless `raw_body`).
    pub body: Vec<u8>,
    /// Overrides the name length written.
    pub name_len: Option<i64>,
    /// Overrides the body size written.
    pub body_size: Option<i32>,
    /// The stored body exactly (no CRLF added).
    pub raw_body: Option<Vec<u8>>,
}

impl Rec {
    /// A full record of a ready job put at second 1000 with a 10 s TTR.
    pub fn full(id: u64, tube: &str, body: &[u8]) -> Rec {
        Rec {
            id,
            tube: Some(tube.into()),
            pri: 1024,
            delay_ns: 0,
            ttr_ns: 10 * SECOND,
            created_at_ns: 1000 * SECOND,
            deadline_at_ns: 0,
            counts: JobCounts::default(),
            state: State::Ready.byte(),
            body: body.into(),
            name_len: None,
            body_size: None,
            raw_body: None,
        }
    }

    /// A short record: a job's new state.
    pub fn short(id: u64, state: State) -> Rec {
        Rec { tube: None, state: state.byte(), ..Rec::full(id, "unused", b"") }
    }

    pub fn state(self, state: State) -> Rec {
        Rec { state: state.byte(), ..self }
    }

    pub fn pri(self, pri: u32) -> Rec {
        Rec { pri, ..self }
    }

    pub fn deadline(self, deadline_at_ns: i64) -> Rec {
        Rec { deadline_at_ns, ..self }
    }

    pub fn counts(self, reserves: u32, timeouts: u32, releases: u32, buries: u32, kicks: u32) -> Rec {
        Rec { counts: JobCounts { reserves, timeouts, releases, buries, kicks }, ..self }
    }

    /// The record's bytes in a file of `version`.
    pub fn encode(&self, version: Version) -> Vec<u8> {
        let name = self.tube.as_deref().unwrap_or_default().as_bytes();
        let name_len = self.name_len.unwrap_or(name.len() as i64);
        let mut out = match version {
            Version::V7 => (name_len as i32).to_le_bytes().to_vec(),
            Version::V5 => (name_len as u64).to_le_bytes().to_vec(),
        };
        out.extend_from_slice(name);
        out.extend_from_slice(&self.jobrec(version));
        if self.tube.is_some() {
            match &self.raw_body {
                Some(raw) => out.extend_from_slice(raw),
                None => {
                    out.extend_from_slice(&self.body);
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out
    }

    /// The `Jobrec` (version 7, 80 bytes) or `Jobrec5` (77 bytes, times in
    /// microseconds), laid out by hand from `dat.h` and `file.c`, padding
    /// filled with 0xAA (beanstalkd writes whatever was in memory there).
    fn jobrec(&self, version: Version) -> Vec<u8> {
        let mut rec = vec![0xAA; 80];
        let time = |ns: i64| match version {
            Version::V7 => ns.to_le_bytes(),
            // A negative time cannot be written in version 5's unsigned
            // fields: written as is, it is a huge one.
            Version::V5 if ns < 0 => (ns as u64).to_le_bytes(),
            Version::V5 => {
                assert_eq!(ns % 1000, 0, "version 5 holds whole microseconds");
                ((ns / 1000) as u64).to_le_bytes()
            }
        };
        let body_size = self.body_size.unwrap_or(self.body.len() as i32 + 2);
        rec[0..8].copy_from_slice(&self.id.to_le_bytes());
        rec[8..12].copy_from_slice(&self.pri.to_le_bytes());
        rec[16..24].copy_from_slice(&time(self.delay_ns));
        rec[24..32].copy_from_slice(&time(self.ttr_ns));
        rec[32..36].copy_from_slice(&body_size.to_le_bytes());
        rec[40..48].copy_from_slice(&time(self.created_at_ns));
        rec[48..56].copy_from_slice(&time(self.deadline_at_ns));
        let c = self.counts;
        for (i, n) in [c.reserves, c.timeouts, c.releases, c.buries, c.kicks].into_iter().enumerate() {
            rec[56 + 4 * i..60 + 4 * i].copy_from_slice(&n.to_le_bytes());
        }
        rec[76] = self.state;
        if version == Version::V5 {
            rec.truncate(77);
        }
        rec
    }
}

/// A file: the version, the records, then `zeros` zero bytes.
pub(super) fn file(version: Version, records: &[Rec], zeros: usize) -> Vec<u8> {
    let mut out = version.number().to_le_bytes().to_vec();
    for record in records {
        out.extend_from_slice(&record.encode(version));
    }
    out.resize(out.len() + zeros, 0);
    out
}

/// A version 7 file with a preallocated tail of 300 zeros.
pub(super) fn v7(records: &[Rec]) -> Vec<u8> {
    file(Version::V7, records, 300)
}

/// Replays files `(seq, bytes)` in order, each in full whatever its end.
pub(super) fn import(files: &[(u64, &[u8])]) -> Imported {
    let mut replay = Replay::new();
    for (seq, bytes) in files {
        replay.apply(*seq, &read_file(bytes));
    }
    replay.finish()
}

/// The imported job with this id.
pub(super) fn job(imported: &Imported, id: u64) -> &ImportedJob {
    imported.jobs.iter().find(|job| job.id == id).unwrap_or_else(|| panic!("job {id} is not imported"))
}

/// The body of the imported job with this id.
pub(super) fn body(imported: &Imported, id: u64) -> &[u8] {
    imported.bodies.get(job(imported, id).body)
}

pub(super) fn tube(name: &str) -> crate::protocol::TubeName {
    crate::protocol::TubeName::new(name.as_bytes()).unwrap()
}

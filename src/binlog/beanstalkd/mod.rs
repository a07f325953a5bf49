//! beanstalkd's own binlog format: reading the files a beanstalkd 1.12 left
//! in its `-b` directory, replaying them into live jobs, and writing jobs
//! back as beanstalkd files. Pure: bytes in, values out; no files, no clock.
//!
//! The bytes are untrusted (a directory someone points sprout at): nothing
//! here panics on any input, and nothing allocates by a length read from a
//! file; a length that points past the end of the file is a bad record.
//!
//! A map of the module, one concept a file:
//! - `layout`: where every field sits in a file and a record, in version 7
//!   and the legacy version 5: [`Version`], [`State`], the 80-byte `Jobrec`.
//! - `read`: [`read_file`]: one file's bytes to its [`Record`]s, and how they
//!   [`End`] (cleanly, torn by a crash, or damaged).
//! - `replay`: [`Replay`]: beanstalkd's recovery rules over the files in
//!   order, with sprout's departures, to the [`Imported`] jobs.
//! - `write`: [`V7Writer`]: jobs as a version-7 file beanstalkd can read.
//!
//! The format, as beanstalkd 1.12 writes it (`file.c`, `dat.h`; x86_64,
//! little-endian, no checksums): a file is an `int32` version (7), then
//! records, then zeros (files are preallocated with zeros). A record is an
//! `int32` name length, the tube name (no NUL), an 80-byte `Jobrec`, then,
//! only if the name length is not 0 (a *full* record, written on put and by
//! compaction), the body with its trailing CRLF. A record with no name (a
//! *short* record) carries a job's new state: deleted, buried, kicked,
//! released with a delay. A `Jobrec` whose id is 0 ends the records.

mod layout;
mod read;
mod replay;
mod write;

pub use layout::{FILE_VERSION_LEN, MAX_NAME_LEN, State, Version, version_of};
pub use read::{End, FileRead, Record, read_file};
pub use replay::{ImportCounts, Imported, ImportedJob, ImportedState, Replay};
pub use write::{ExportError, ExportJob, V7Writer, full_record_len};

#[cfg(test)]
mod tests;

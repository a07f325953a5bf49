//! One beanstalkd binlog file's bytes, as records.
//!
//! beanstalkd reads a file until EOF, a short read, or a `Jobrec` whose id
//! is 0 (the zeros of the preallocated tail), and gives up on the rest of
//! the file at the first record it cannot read, with a warning. This reader
//! stops there too, and also at what beanstalkd reads without checking but
//! never writes (a body without its CRLF, an unknown state, a negative
//! duration, an invalid tube name), and says which of three things it found
//! ([`End`]): zeros (a clean end); a record cut short, or invalid, with only
//! zeros after it (what a crash between the several `write()` calls of one
//! record leaves); or an invalid record with more bytes after it (damage).
//!
//! Every length is checked against the bytes left before anything is
//! sliced, and nothing is allocated by a length: a record is returned as
//! offsets into the caller's bytes.

use super::layout::{FILE_VERSION_LEN, Jobrec, MAX_NAME_LEN, State, Version, version_of};
use crate::engine::{JobCounts, MAX_JOB_ID};
use crate::protocol::TubeName;

/// One record as stored; times in nanoseconds whatever the version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Where the record starts in the file.
    pub offset: usize,
    /// Its bytes in the file: name length, name, `Jobrec`, body.
    pub len: usize,
    /// The tube, for a full record (one with a name); `None` for a short
    /// record, which only updates a job already seen.
    pub tube: Option<TubeName>,
    /// The job's id (never 0).
    pub id: u64,
    /// Its priority.
    pub pri: u32,
    /// The delay last given by put or release (never negative).
    pub delay_ns: i64,
    /// Its time to run (never negative).
    pub ttr_ns: i64,
    /// The `Jobrec`'s body size as logged: the body's length *with* its
    /// CRLF. In a full record it is the body's length plus 2; in a short
    /// record it is not checked (beanstalkd reads no body there).
    pub body_size: i32,
    /// When the job was put, wall-clock nanoseconds since the epoch.
    pub created_at_ns: i64,
    /// Wall-clock nanoseconds: when a delayed job becomes ready; when a
    /// reserved job's TTR runs out; stale or 0 in other states.
    pub deadline_at_ns: i64,
    /// The job's `stats-job` counters.
    pub counts: JobCounts,
    /// The job's state as logged.
    pub state: State,
    /// A full record's body, without its CRLF (which was checked); `None`
    /// for a short record.
    pub body: Option<&'a [u8]>,
}

impl Record<'_> {
    /// True for a full record: name, `Jobrec` and body.
    pub fn is_full(&self) -> bool {
        self.tube.is_some()
    }
}

/// How a file's records ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// At the end of the file, or where only zeros are left (the
    /// preallocated tail, which beanstalkd's reader stops at when it reads a
    /// `Jobrec` whose id is 0).
    Clean {
        /// Where the zeros (or the file) begin.
        at: usize,
    },
    /// The record at `at` is cut short by the end of the file, or invalid
    /// with only zero bytes after it to the end of the file: what a crash in
    /// the middle of beanstalkd's write of a record leaves (it writes the
    /// name length, the name, the `Jobrec` and the body in four `write()`
    /// calls, into preallocated zeros). A file that is all zeros, or empty,
    /// ends here at 0: a crash while beanstalkd was making it.
    ///
    /// Such a write was never acknowledged (beanstalkd replies after its
    /// writes). beanstalkd itself starts with it and keeps the file, so
    /// after a crash and a restart of beanstalkd a torn file may be followed
    /// by newer files with records. It reads a record cut after its name as
    /// the end of the file, with no warning; one cut after its `Jobrec` as a
    /// job whose body is the zeros (a put never acknowledged comes back,
    /// with a body of zeros and no CRLF). Here neither is a record.
    Torn {
        /// Where the torn record starts.
        at: usize,
        /// What is wrong with it.
        why: String,
    },
    /// The record at `at` is invalid and non-zero bytes follow it; or, at
    /// 0, the file does not start with a known version.
    Damaged {
        /// Where the invalid record starts (0 for the version).
        at: usize,
        /// What is wrong with it.
        why: String,
    },
}

impl End {
    /// Where the valid records end.
    pub fn at(&self) -> usize {
        match self {
            End::Clean { at } | End::Torn { at, .. } | End::Damaged { at, .. } => *at,
        }
    }
}

/// A file's records, in file order, and how they ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRead<'a> {
    /// The version the file starts with; `None` if it names none that
    /// beanstalkd can read (then there are no records).
    pub version: Option<Version>,
    /// Every valid record before [`FileRead::end`].
    pub records: Vec<Record<'a>>,
    /// Where and why the records stopped.
    pub end: End,
}

/// Reads one file's bytes. Never panics, whatever the bytes; allocates one
/// [`Record`] per valid record (each at least 84 bytes of the file) and a
/// tube name for each run of full records with the same tube, nothing
/// sized by a length field.
pub fn read_file(bytes: &[u8]) -> FileRead<'_> {
    let Some(version) = version_of(bytes) else {
        let end = if all_zero(bytes) {
            End::Torn {
                at: 0,
                why: format!("no version in {} zero bytes (a crash while the file was made)", bytes.len()),
            }
        } else if let Some(first) = bytes.first_chunk() {
            End::Damaged { at: 0, why: format!("unknown version {}", i32::from_le_bytes(*first)) }
        } else {
            End::Damaged { at: 0, why: format!("{} bytes are too few for a version", bytes.len()) }
        };
        return FileRead { version: None, records: Vec::new(), end };
    };
    let mut reader = Reader { bytes, version, last_tube: None };
    let mut records = Vec::new();
    let mut at = FILE_VERSION_LEN;
    let end = loop {
        if all_zero(&bytes[at..]) {
            break End::Clean { at };
        }
        match reader.record_at(at) {
            Ok(record) => {
                at += record.len;
                records.push(record);
            }
            Err(Bad::CutShort(why)) => break End::Torn { at, why },
            Err(Bad::Invalid { why, end }) if all_zero(bytes.get(end..).unwrap_or_default()) => {
                break End::Torn { at, why };
            }
            Err(Bad::Invalid { why, .. }) => break End::Damaged { at, why },
        }
    };
    FileRead { version: Some(version), records, end }
}

/// Why a record could not be read.
enum Bad {
    /// A field runs past the end of the file: nothing follows the record.
    CutShort(String),
    /// A field holds what beanstalkd never writes. `end` is where the
    /// record ends as far as its lengths can be trusted: after the field
    /// at fault, or after the `Jobrec` when its body size is the fault.
    Invalid { why: String, end: usize },
}

struct Reader<'a> {
    bytes: &'a [u8],
    version: Version,
    /// The tube name of the last full record: jobs come in runs of one
    /// tube, and each of the run's records shares its one copy.
    last_tube: Option<TubeName>,
}

impl<'a> Reader<'a> {
    /// Reads the record at `at` (which is within the file and not followed
    /// by zeros only).
    fn record_at(&mut self, at: usize) -> Result<Record<'a>, Bad> {
        let rest = &self.bytes[at..];
        let invalid = |why: String, len: usize| Bad::Invalid { why, end: at + len };
        let name_len_bytes = self.version.name_len_bytes();
        let cut_short = || Bad::CutShort(format!("{} bytes are too few for a record", rest.len()));
        // Wide enough for either version's field, so a huge one is reported
        // as it is.
        let name_len: i128 = match self.version {
            Version::V7 => i32::from_le_bytes(*rest.first_chunk().ok_or_else(cut_short)?).into(),
            Version::V5 => u64::from_le_bytes(*rest.first_chunk().ok_or_else(cut_short)?).into(),
        };
        let Some(name_len) = usize::try_from(name_len).ok().filter(|&n| n <= MAX_NAME_LEN) else {
            return Err(invalid(format!("tube name length {name_len} is not 0 to {MAX_NAME_LEN}"), name_len_bytes));
        };
        let mut len = name_len_bytes;
        let name = take(rest, len, name_len)
            .ok_or_else(|| Bad::CutShort(format!("the tube name of {name_len} bytes runs past the end of the file")))?;
        len += name_len;
        let tube =
            match name_len {
                0 => None,
                _ => Some(self.tube(name).ok_or_else(|| {
                    invalid(format!("tube name \"{}\" is not a valid name", name.escape_ascii()), len)
                })?),
            };
        let jobrec_len = self.version.jobrec_len();
        let jobrec = take(rest, len, jobrec_len).ok_or_else(|| {
            Bad::CutShort(format!("the job record of {jobrec_len} bytes runs past the end of the file"))
        })?;
        len += jobrec_len;
        let jobrec = Jobrec::decode(self.version, jobrec).map_err(|why| invalid(why, len))?;
        let id = jobrec.id;
        if id == 0 {
            // beanstalkd stops at any id 0 as at its zero tail; here the
            // record is not all zeros, or more bytes follow.
            return Err(invalid("job id 0 in a record that is not zeros".into(), len));
        }
        if id > MAX_JOB_ID {
            return Err(invalid(format!("job id {id} is past the largest, {MAX_JOB_ID}"), len));
        }
        let state = State::from_byte(jobrec.state)
            .ok_or_else(|| invalid(format!("job {id}: unknown state {}", jobrec.state), len))?;
        if jobrec.delay_ns < 0 || jobrec.ttr_ns < 0 {
            let why = format!("job {id}: negative delay ({} ns) or ttr ({} ns)", jobrec.delay_ns, jobrec.ttr_ns);
            return Err(invalid(why, len));
        }
        // Every record, short ones too, carries the whole job: beanstalkd
        // raises a ttr to one second at put, and a body size counts its
        // CRLF. So a job struct whose end a crash left as zeros (a short
        // record read whole from a preallocated file, whose state 0 would
        // read as a delete) is not mistaken for a record.
        if jobrec.ttr_ns < MIN_TTR_NS || jobrec.body_size < 2 {
            let why = format!(
                "job {id}: ttr of {} ns (beanstalkd writes 1 s or more) or body size {} (2 or more, with its CRLF)",
                jobrec.ttr_ns, jobrec.body_size
            );
            return Err(invalid(why, len));
        }
        let body = match tube {
            None => None,
            Some(_) => {
                let size = jobrec.body_size;
                // The body includes its CRLF: 2 bytes at least.
                let Some(size) = usize::try_from(size).ok().filter(|&n| n >= 2) else {
                    return Err(invalid(format!("job {id}: body size {size} is less than 2 (its CRLF)"), len));
                };
                let body = take(rest, len, size).ok_or_else(|| {
                    Bad::CutShort(format!(
                        "job {id}: the body of {size} bytes runs past the end of the file ({} bytes left)",
                        rest.len() - len
                    ))
                })?;
                len += size;
                let Some(body) = body.strip_suffix(b"\r\n") else {
                    return Err(invalid(format!("job {id}: the body does not end in CRLF"), len));
                };
                Some(body)
            }
        };
        Ok(Record {
            offset: at,
            len,
            tube,
            id,
            pri: jobrec.pri,
            delay_ns: jobrec.delay_ns,
            ttr_ns: jobrec.ttr_ns,
            body_size: jobrec.body_size,
            created_at_ns: jobrec.created_at_ns,
            deadline_at_ns: jobrec.deadline_at_ns,
            counts: jobrec.counts,
            state,
            body,
        })
    }

    /// The tube a record's name bytes name, if they are a valid tube name.
    fn tube(&mut self, name: &[u8]) -> Option<TubeName> {
        if let Some(last) = &self.last_tube
            && last.as_str().as_bytes() == name
        {
            return Some(last.clone());
        }
        let tube = TubeName::new(name)?;
        self.last_tube = Some(tube.clone());
        Some(tube)
    }
}

/// The `len` bytes at `at` in `bytes`, if there are that many.
/// The shortest ttr beanstalkd gives a job: one second.
const MIN_TTR_NS: i64 = 1_000_000_000;

fn take(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    bytes.get(at..)?.get(..len)
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

//! The binlog's records and their bytes: format version 2, written, and
//! format version 1, still read (a directory an older sprout wrote keeps
//! working, and a restart appends to a format-1 file it finds the newest).
//!
//! Every record, in both formats, is framed as `crc: u32, len: u32,
//! payload[len]`, little-endian, where `crc` is the CRC-32 (IEEE) of the
//! bytes that follow it, the four `len` bytes and the payload, so a damaged
//! length is caught as surely as a damaged body (and the checksum runs over
//! one contiguous slice). Eight zero bytes mark the end of the written part
//! of a file (files are preallocated with zeros). The payloads differ by
//! format ([`v1`], [`v2`]); each file's header says which its records are
//! in, and a [`FileDecoder`] or [`FileEncoder`] per file reads or writes
//! them. The full layout, and what each record means, is specified in
//! docs/binlog-format.md; these files and that page change together, with
//! the version.

mod cursor;
mod delete_crc;
#[cfg(test)]
pub(crate) mod reference;
mod tubes;
pub mod v1;
pub mod v2;

pub use tubes::DeclaredTubes;
use tubes::WrittenTubes;
use v2::TubeRef;

use std::sync::OnceLock;

use crate::engine::MAX_JOB_ID;
use crate::protocol::TubeName;

/// File magic: the first 8 bytes of every binlog file.
pub const MAGIC: [u8; 8] = *b"SPROUTWL";

/// The format version of the files sprout makes.
pub const VERSION: u32 = 2;

/// Format 1: `magic[8] version:u32 seq:u64 next_id:u64 crc:u32`; format 2:
/// `magic[8] version:u32 seq:u32 base_secs:u32 next_id:u64 crc:u32`.
pub const HEADER_LEN: usize = 32;

/// `crc:u32 len:u32`.
pub const FRAME_LEN: usize = 8;

const TYPE_JOB: u8 = 1;
const TYPE_STATE: u8 = 2;
const TYPE_DELETE: u8 = 3;
const TYPE_PADDING: u8 = 4;

/// A job's state as the log records it. A reserved job is written only when
/// `reserve-job` takes it out of the buried or delayed state; it comes back
/// ready after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoggedState {
    /// Waiting to be reserved.
    Ready = 0,
    /// Taken by `reserve-job` out of the buried or delayed state.
    Reserved = 1,
    /// Waiting for its delay to end.
    Delayed = 2,
    /// Set aside by a worker until kicked.
    Buried = 3,
}

impl LoggedState {
    pub(super) fn from_byte(b: u8) -> Option<LoggedState> {
        Some(match b {
            0 => LoggedState::Ready,
            1 => LoggedState::Reserved,
            2 => LoggedState::Delayed,
            3 => LoggedState::Buried,
            _ => return None,
        })
    }
}

/// Everything about a job that changes after it is put. Times are
/// wall-clock nanoseconds since the Unix epoch, so a delay survives a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobUpdate {
    /// The job's id, never reused.
    pub id: u64,
    /// Its priority (0 is most urgent).
    pub pri: u32,
    /// Its state when the record was written.
    pub state: LoggedState,
    /// The delay last set by put or release, in nanoseconds.
    pub delay: u64,
    /// When a delayed job becomes ready; when a buried job was buried (so
    /// buried jobs come back in that order); 0 in other states.
    pub ready_at: i64,
    /// `stats-job`'s counters, as of this record.
    pub reserves: u32,
    /// See `reserves`.
    pub timeouts: u32,
    /// See `reserves`.
    pub releases: u32,
    /// See `reserves`.
    pub buries: u32,
    /// See `reserves`.
    pub kicks: u32,
}

/// A whole job: written on put and when compaction moves a job forward.
/// Written and read with the body borrowed (`&[u8]`, from the engine or the
/// file); recovery keeps it as a [`BodyRef`](crate::engine::BodyRef).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullJob<Body> {
    /// Its state and counters.
    pub update: JobUpdate,
    /// The tube it was put in.
    pub tube: TubeName,
    /// Its time to run, in nanoseconds.
    pub ttr: u64,
    /// When it was put, wall-clock nanoseconds (`age` survives a restart).
    pub created_at: i64,
    /// Its body, without the CRLF.
    pub body: Body,
}

/// A [`FullJob`] as the writer takes it: every field borrowed or copied
/// from where it is kept (the engine's job on a put or a migration), the
/// tube's name not cloned. Made in place and encoded at once, it costs no
/// more than its fields (nothing is built to be taken apart again).
#[derive(Clone, Copy, Debug)]
pub struct JobToWrite<'a> {
    /// Its state and counters.
    pub update: JobUpdate,
    /// The tube it was put in.
    pub tube: &'a TubeName,
    /// Its time to run, in nanoseconds.
    pub ttr: u64,
    /// When it was put, wall-clock nanoseconds.
    pub created_at: i64,
    /// Its body, without the CRLF.
    pub body: &'a [u8],
}

impl<'a> JobToWrite<'a> {
    /// The job as a record holds it, its tube's name cloned.
    fn to_full_job(self) -> FullJob<&'a [u8]> {
        let JobToWrite { update, tube, ttr, created_at, body } = self;
        FullJob { update, tube: tube.clone(), ttr, created_at, body }
    }
}

impl<Body: AsRef<[u8]>> FullJob<Body> {
    /// The job as the writer takes it.
    #[inline(always)]
    pub fn to_write(&self) -> JobToWrite<'_> {
        let FullJob { update, ref tube, ttr, created_at, ref body } = *self;
        JobToWrite { update, tube, ttr, created_at, body: body.as_ref() }
    }
}

/// One record of the log. The last record about a job wins when the log is
/// read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record<Body> {
    /// Everything about a job: on put, and when compaction moves a job.
    Job(FullJob<Body>),
    /// A job's new state; applies to a job already seen.
    State(JobUpdate),
    /// A job is gone.
    Delete(u64),
    /// Filler with no meaning, written over a damaged region that
    /// `--skip-damaged-records` skipped, so that later starts read past it.
    Padding(usize),
}

impl<Body> Record<Body> {
    /// The job the record is about (0 for padding).
    pub fn job_id(&self) -> u64 {
        match self {
            Record::Job(job) => job.update.id,
            Record::State(update) => update.id,
            Record::Delete(id) => *id,
            Record::Padding(_) => 0,
        }
    }
}

/// What a live job's full record counts for in the log's measure of its
/// live data (compaction's "twice the live data"): its length in format 2
/// with the usual sizes of its fields (a 3-byte id, a 2-byte priority, a
/// 1-byte TTR, a 6-byte creation time, a declared tube). The exact length
/// varies by a few bytes with those values and the file's format, but a job
/// must count the same when it goes as when it came, and only its body's
/// length is known at both times.
pub fn accounted_job_len(body_len: usize) -> usize {
    FRAME_LEN + 2 + 3 + 2 + 1 + 6 + 1 + varint_len(body_len as u64) + body_len
}

/// Bytes of `v` as a varint: one for each 7 bits it needs, at least one.
/// `(9 * bits + 64) / 64` is `bits / 7` rounded up for 1 to 64 bits (a
/// multiply and a shift, where a division by 7 and its rounding took 15
/// instructions a put).
fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    (9 * bits + 64) / 64
}

/// The most bytes a state record takes, in either format: the room a
/// change of state asks for before the state is known.
pub const MAX_STATE_LEN: usize = if v1::STATE_LEN > v2::MAX_STATE_LEN { v1::STATE_LEN } else { v2::MAX_STATE_LEN };

/// The most bytes the record takes in any file the log may append it to
/// (format 1 or 2, whatever the file's base time and tubes): for a room
/// check made before the file it goes to is known.
pub fn max_len<Body: AsRef<[u8]>>(record: &Record<Body>) -> usize {
    match record {
        Record::Job(job) => max_job_len(&job.to_write()),
        _ => v1::encoded_len(record).max(v2::max_len(record)),
    }
}

/// [`max_len`] of a job's record: what a put's room check asks for.
#[inline(always)]
pub fn max_job_len(job: &JobToWrite<'_>) -> usize {
    // Format 2's bound, 101 bytes beside the tube's name and the body, is
    // over format 1's 79 (`file_bytes` in the tests checks both): a put's
    // room check need not work out format 1's.
    let len = v2::max_job_len(job);
    debug_assert!(len >= v1::job_len(job), "format 2's bound covers format 1's");
    len
}

/// Puts the CRC of `out[start + 4..]` (a record's length and payload) at
/// `out[start..]`.
#[inline]
fn seal(out: &mut [u8], start: usize) {
    let crc = crc(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The CRC-32 of `bytes`, as `crc32fast::hash` gives it. That function asks
/// which CPU features there are on every call (about 40 instructions of a
/// put's 2,166, callgrind); a copy of a hasher made once asked only once.
#[inline]
fn crc(bytes: &[u8]) -> u32 {
    static NEW_HASHER: OnceLock<crc32fast::Hasher> = OnceLock::new();
    let mut hasher = NEW_HASHER.get_or_init(crc32fast::Hasher::new).clone();
    hasher.update(bytes);
    hasher.finalize()
}

/// Puts each record's CRC in `records`: whole records, appended by
/// [`FileEncoder::append_unsealed`], one after the other.
///
/// Why later and all at once: a record's CRC is a chain of dependent
/// carry-less multiplies, which a processor cannot hurry; taken as each
/// record is made, the chains of one turn's records run one after the
/// other (and the first load waits for the bytes just stored), while
/// here those of neighbouring records overlap.
pub fn seal_records(records: &mut [u8]) {
    let mut at = 0;
    while let Some(frame) = records.get(at..at + FRAME_LEN) {
        let len = FRAME_LEN + u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes")) as usize;
        let record = &mut records[at..at + len];
        if len == DELETE_RECORD_LEN && record[FRAME_LEN] == TYPE_DELETE {
            let id = u64::from_le_bytes(record[FRAME_LEN + 1..].try_into().expect("8 bytes"));
            record[..4].copy_from_slice(&delete_crc::delete_record_crc(id).to_le_bytes());
        } else {
            seal(record, 0);
        }
        at += len;
    }
    debug_assert_eq!(at, records.len(), "whole records");
}

/// Bytes of a delete record, in either format: frame, type, id.
pub const DELETE_RECORD_LEN: usize = FRAME_LEN + 1 + 8;

/// The delete record of job `id`, its CRC left for [`seal_records`]: the
/// same bytes in either format, so a file's writer can make them without
/// its [`FileEncoder`] (the commonest record after a put's; 136
/// instructions a delete through format 2's head, callgrind).
#[inline]
pub fn unsealed_delete_record(id: u64) -> [u8; DELETE_RECORD_LEN] {
    let mut bytes = [0; DELETE_RECORD_LEN];
    bytes[4..8].copy_from_slice(&((DELETE_RECORD_LEN - FRAME_LEN) as u32).to_le_bytes());
    bytes[8] = TYPE_DELETE;
    bytes[9..].copy_from_slice(&id.to_le_bytes());
    bytes
}

/// Encodes the records of one file, in the file's format: for format 2,
/// with the file's base time and the tubes it has declared.
#[derive(Debug)]
pub struct FileEncoder {
    format: Format,
    tubes: WrittenTubes,
}

impl FileEncoder {
    /// For a new file, or one with no record yet.
    pub fn new(format: Format) -> FileEncoder {
        FileEncoder { format, tubes: WrittenTubes::default() }
    }

    /// For appending to a file whose records declared `declared`.
    pub fn resume(format: Format, declared: &DeclaredTubes) -> FileEncoder {
        FileEncoder { format, tubes: WrittenTubes::resume(declared) }
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Appends the framed record to `out` if it takes at most `room`
    /// bytes, and returns its length; `None`, and nothing changed, if it
    /// does not fit.
    pub fn append<Body: AsRef<[u8]>>(&mut self, record: &Record<Body>, room: u64, out: &mut Vec<u8>) -> Option<usize> {
        let start = out.len();
        let len = self.append_unsealed(record, room, out)?;
        seal(out, start);
        Some(len)
    }

    /// [`FileEncoder::append`], but the record's CRC is left for
    /// [`seal_records`] to put in before the record is written (a file's
    /// records are sealed all at once, when they are written).
    #[inline(always)]
    pub fn append_unsealed<Body: AsRef<[u8]>>(
        &mut self,
        record: &Record<Body>,
        room: u64,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        match record {
            Record::Job(job) => self.append_job_unsealed(&job.to_write(), room, out),
            _ => self.append_any(record, room, out),
        }
    }

    /// [`FileEncoder::append_unsealed`] for a job's record, taken as the
    /// writer takes it (a put's and a migration's: straight from the
    /// engine's job). The record is put together in place, at the end of
    /// `out` (the file's write buffer), its body copied once.
    // The commonest record, a job's into the tube of the job record before
    // (a run of puts), is encoded inline, without the tube table's map and
    // without a call; any other out of line.
    #[inline(always)]
    pub fn append_job_unsealed(&mut self, job: &JobToWrite<'_>, room: u64, out: &mut Vec<u8>) -> Option<usize> {
        if let Format::V2 { .. } = self.format
            && let Some(index) = self.tubes.in_run(job.tube)
        {
            let len = v2::append_job(job, self.format.base_ns(), TubeRef::Index(index), room, out)?;
            self.tubes.named_in_run();
            return Some(len);
        }
        self.append_job_any(*job, room, out)
    }

    /// [`FileEncoder::append_job_unsealed`] for any job's record.
    // The job by value: by reference, the caller would store it in memory
    // on every put, for a call that few make.
    #[inline(never)]
    fn append_job_any(&mut self, job: JobToWrite<'_>, room: u64, out: &mut Vec<u8>) -> Option<usize> {
        match self.format {
            // Format 1 is appended to only until the file a restart found
            // the newest is full: its job records are encoded from the
            // record, the tube's name cloned.
            Format::V1 => self.append_any(&Record::Job(job.to_full_job()), room, out),
            Format::V2 { .. } => {
                let tube = self.tubes.name(job.tube);
                let len = v2::append_job(&job, self.format.base_ns(), tube, room, out)?;
                self.tubes.named(job.tube, tube);
                Some(len)
            }
        }
    }

    /// [`FileEncoder::append_unsealed`] for any record, out of line.
    #[inline(never)]
    fn append_any<Body: AsRef<[u8]>>(&mut self, record: &Record<Body>, room: u64, out: &mut Vec<u8>) -> Option<usize> {
        let base = self.format.base_ns();
        match (self.format, record) {
            (Format::V1, _) => {
                let len = v1::encoded_len(record);
                if len as u64 > room {
                    return None;
                }
                // Sealed already: sealing it again changes nothing.
                v1::encode(record, out);
                Some(len)
            }
            (Format::V2 { .. }, Record::Job(job)) => self.append_job_any(job.to_write(), room, out),
            (Format::V2 { .. }, Record::State(update)) => v2::append_state(update, base, room, out),
            (Format::V2 { .. }, Record::Delete(id)) => v2::append_delete(*id, room, out),
            (Format::V2 { .. }, Record::Padding(filler)) => v2::append_padding(*filler, room, out),
        }
    }
}

/// Padding of `len` bytes in all (at least a frame and a type byte), the
/// same bytes in either format: written over damage that
/// `--skip-damaged-records` skipped.
pub fn padding(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    v1::encode(&Record::<&[u8]>::Padding(len - FRAME_LEN - 1), &mut out);
    out
}

/// What a file holds at some offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record of this many bytes, borrowing from the bytes given.
    Record(Record<&'a [u8]>, usize),
    /// Zeros: the unwritten, preallocated rest of the file (or its end).
    End,
    /// Bytes that are not a valid record: cut short, failing the checksum
    /// or the layout, or (format 2) naming a tube index no earlier record
    /// of the file declared.
    Damaged,
}

/// The checksummed payload of the record at `bytes[0]` and the record's
/// length, or what the bytes are instead.
fn checked_payload(bytes: &[u8]) -> Result<(&[u8], usize), Decoded<'_>> {
    framed_payload(bytes, true)
}

/// The payload of the record at `bytes[0]` and the record's length, its
/// checksum compared if `check`, or what the bytes are instead.
#[inline(always)]
fn framed_payload(bytes: &[u8], check: bool) -> Result<(&[u8], usize), Decoded<'_>> {
    if bytes.len() < FRAME_LEN || bytes[..FRAME_LEN] == [0; FRAME_LEN] {
        // Fewer than a frame's bytes left can only be preallocation slack.
        let head = &bytes[..bytes.len().min(FRAME_LEN)];
        return Err(if head.iter().all(|&b| b == 0) { Decoded::End } else { Decoded::Damaged });
    }
    let crc = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let Some(checked) = bytes.get(4..FRAME_LEN + len) else { return Err(Decoded::Damaged) };
    if check && self::crc(checked) != crc {
        return Err(Decoded::Damaged);
    }
    Ok((&checked[4..], FRAME_LEN + len))
}

/// Where the run of records whose checksums hold, from `from` on, ends:
/// the frames are walked as a replay from `from` walks them while every
/// record reads, their checksums compared. (Done ahead, on the thread that
/// reads the files, so that the replay need not: see
/// [`FileDecoder::decode_checked`].)
pub fn checked_frames_end(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(rest) = bytes.get(at..)
        && let Ok((_, len)) = checked_payload(rest)
    {
        at += len;
    }
    at
}

/// Decodes the records of one file, in its format: for format 2, keeping
/// the tubes its records declared so far.
#[derive(Debug)]
pub struct FileDecoder {
    format: Format,
    tubes: DeclaredTubes,
    /// Something before the next record was not one: damage (skipped, or
    /// about to be refused), or padding, which is only ever written over
    /// damage a start skipped. A declaration may have been lost in it.
    after_damage: bool,
}

impl FileDecoder {
    /// For a file with this header's format, read from its first record.
    pub fn new(format: Format) -> FileDecoder {
        FileDecoder { format, tubes: DeclaredTubes::default(), after_damage: false }
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The tubes the file's records declared, for a writer that appends to
    /// the file.
    pub fn into_declared(self) -> DeclaredTubes {
        self.tubes
    }

    /// Decodes the record at `bytes[0]`, the next in the file.
    pub fn decode<'a>(&mut self, bytes: &'a [u8]) -> Decoded<'a> {
        self.decode_with(bytes, &mut |name| TubeName::new(name))
    }

    /// [`FileDecoder::decode`], with tube names made by `tube_name`
    /// (recovery shares one copy of each name among all its jobs).
    pub fn decode_with<'a>(
        &mut self,
        bytes: &'a [u8],
        tube_name: &mut impl FnMut(&[u8]) -> Option<TubeName>,
    ) -> Decoded<'a> {
        self.decode_framed(bytes, true, tube_name)
    }

    /// [`FileDecoder::decode_with`] for a record whose checksum was
    /// compared already: one of the frames [`checked_frames_end`] walked,
    /// in bytes that have not changed since.
    // Always inlined into the replay's loop: see v2::decode_payload.
    #[inline(always)]
    pub fn decode_checked<'a>(
        &mut self,
        bytes: &'a [u8],
        tube_name: &mut impl FnMut(&[u8]) -> Option<TubeName>,
    ) -> Decoded<'a> {
        self.decode_framed(bytes, false, tube_name)
    }

    #[inline(always)]
    fn decode_framed<'a>(
        &mut self,
        bytes: &'a [u8],
        check: bool,
        tube_name: &mut impl FnMut(&[u8]) -> Option<TubeName>,
    ) -> Decoded<'a> {
        let (payload, len) = match framed_payload(bytes, check) {
            Ok(checked) => checked,
            Err(end_or_damage) => {
                self.after_damage = true;
                return end_or_damage;
            }
        };
        let record = match self.format {
            Format::V1 => v1::decode_payload(payload, tube_name),
            Format::V2 { .. } => match v2::decode_payload(payload, self.format.base_ns()) {
                Some(v2::Payload::Other(record)) => Some(record),
                Some(v2::Payload::Job { update, ttr, created_at, tube, body }) => match tube {
                    v2::TubeField::Refers(index) => match self.tubes.get(index) {
                        Some(tube) => Some(Record::Job(FullJob { update, tube: tube.clone(), ttr, created_at, body })),
                        // The index's declaration was lost to the damage
                        // before it: what the record still tells is its
                        // job's state (and id). A job whose full record is
                        // only here is dropped, and logged as such.
                        None if self.after_damage => Some(Record::State(update)),
                        None => None,
                    },
                    v2::TubeField::Declares(index, name) => match tube_name(name) {
                        Some(tube) if self.tubes.declare(index, tube.clone()) => {
                            Some(Record::Job(FullJob { update, tube, ttr, created_at, body }))
                        }
                        _ => None,
                    },
                },
                None => None,
            },
        };
        // An id no server hands out: the checksum was made over bad data.
        match record {
            Some(record) if record.job_id() <= MAX_JOB_ID => {
                if matches!(record, Record::Padding(_)) {
                    self.after_damage = true;
                }
                Decoded::Record(record, len)
            }
            _ => {
                self.after_damage = true;
                Decoded::Damaged
            }
        }
    }
}

/// Decodes the record at `bytes[0]` on its own, as the first record of a
/// file of this format.
pub fn decode(format: Format, bytes: &[u8]) -> Decoded<'_> {
    FileDecoder::new(format).decode(bytes)
}

/// True if a record whose checksum and layout are valid starts at
/// `bytes[0]`, in a file of this format. A format-2 job record's tube is
/// not resolved: a record that refers to an index whose declaration was
/// skipped as damage is a record, just not a readable one.
pub fn is_record(format: Format, bytes: &[u8]) -> bool {
    let Ok((payload, _)) = checked_payload(bytes) else { return false };
    let id = match format {
        Format::V1 => v1::decode_payload(payload, &mut |name| TubeName::new(name)).map(|r| r.job_id()),
        Format::V2 { .. } => match v2::decode_payload(payload, format.base_ns()) {
            Some(v2::Payload::Other(record)) => Some(record.job_id()),
            Some(v2::Payload::Job { update, tube, .. }) => match tube {
                v2::TubeField::Declares(_, name) => TubeName::new(name).map(|_| update.id),
                v2::TubeField::Refers(_) => Some(update.id),
            },
            None => None,
        },
    };
    id.is_some_and(|id| id <= MAX_JOB_ID)
}

/// The job id a record's bytes seem to name (job, state and delete
/// records), checksum or not: for naming the job a damaged record was
/// probably about.
pub fn legible_id(format: Format, bytes: &[u8]) -> Option<u64> {
    let payload = bytes.get(FRAME_LEN..)?;
    match (format, payload.first()?) {
        (_, &TYPE_DELETE) => Some(u64::from_le_bytes(payload.get(1..9)?.try_into().unwrap())),
        (Format::V1, &(TYPE_JOB | TYPE_STATE)) => v1::legible_id(payload),
        (Format::V2 { .. }, &(TYPE_JOB | TYPE_STATE)) => v2::legible_id(payload),
        _ => None,
    }
}

/// The ids of the jobs whose full records `bytes` (records our own writer
/// wrote, back to back, in a file of this format) holds, in order. Only
/// the frames and the first bytes of each payload are read, without
/// checksums: compaction uses this to know which jobs to look up, and
/// looks each up before moving it.
pub fn full_record_ids(format: Format, bytes: &[u8]) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut at = 0;
    while let Some(frame) = bytes.get(at..at + FRAME_LEN) {
        let len = u32::from_le_bytes(frame[4..8].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        let Some(payload) = bytes.get(at + FRAME_LEN..at + FRAME_LEN + len) else { break };
        if payload[0] == TYPE_JOB {
            let id = match format {
                Format::V1 => v1::legible_id(payload),
                Format::V2 { .. } => v2::legible_id(payload),
            };
            ids.extend(id);
        }
        at += FRAME_LEN + len;
    }
    ids
}

/// Why a file header was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The file is one of beanstalkd's binlog files.
    Beanstalkd,
    /// A valid header of a format newer than this sprout reads: skipping
    /// the file would lose its jobs, so even `--skip-damaged-records` does
    /// not.
    NewerFormat(u32),
    /// Not a valid sprout header.
    Damaged(String),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Beanstalkd => f.write_str(
                "this is a beanstalkd binlog file among sprout's: sprout takes a directory of \
                 beanstalkd's files over at start, but not one that holds both kinds",
            ),
            HeaderError::NewerFormat(version) => write!(
                f,
                "binlog format version {version}, written by a newer sprout; this sprout reads versions 1 \
                 and {VERSION} (run the newer sprout on this directory)"
            ),
            HeaderError::Damaged(why) => f.write_str(why),
        }
    }
}

/// The format of a file's records, from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Fixed-width fields (`v1`): read, and appended to when a restart
    /// finds a format-1 file the newest; never started anew.
    V1,
    /// Varints and per-file tube indexes (`v2`): what new files hold.
    V2 {
        /// Times are offsets from this many seconds since the Unix epoch
        /// (when the file was made; before 2106).
        base_secs: u32,
    },
}

impl Format {
    /// The format of a file made now: the current version, its times
    /// counted from now (0 if the clock is before 1970 or past 2106: the
    /// offsets are then larger, and as exact).
    pub fn new_file() -> Format {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Format::V2 { base_secs: u32::try_from(now).unwrap_or(0) }
    }

    /// The version number in the header.
    pub fn version(self) -> u32 {
        match self {
            Format::V1 => 1,
            Format::V2 { .. } => 2,
        }
    }

    /// The base of format 2's time offsets, in nanoseconds.
    fn base_ns(self) -> i64 {
        match self {
            Format::V1 => 0,
            Format::V2 { base_secs } => i64::from(base_secs) * 1_000_000_000,
        }
    }
}

/// A file header: which file this is, the format of its records, and the
/// next job id at its creation, so ids keep growing even after every job
/// and every older file is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The file's sequence number, as in its name (below 2^32 in format 2:
    /// a start reads no file numbered higher).
    pub seq: u64,
    /// Every job id logged before the file was made is below this, so ids
    /// keep growing after every older file is gone.
    pub next_id: u64,
    /// How its records are written.
    pub format: Format,
}

impl Header {
    /// The header of a new file: the current format, its times counted
    /// from now.
    pub fn new(seq: u64, next_id: u64) -> Header {
        Header { seq, next_id, format: Format::new_file() }
    }

    /// The header's bytes, checksum included.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&self.format.version().to_le_bytes());
        match self.format {
            Format::V1 => out[12..20].copy_from_slice(&self.seq.to_le_bytes()),
            Format::V2 { base_secs } => {
                debug_assert!(self.seq <= u64::from(u32::MAX), "file numbers are 32 bits in format 2");
                out[12..16].copy_from_slice(&(self.seq as u32).to_le_bytes());
                out[16..20].copy_from_slice(&base_secs.to_le_bytes());
            }
        }
        out[20..28].copy_from_slice(&self.next_id.to_le_bytes());
        let crc = crc32fast::hash(&out[..28]);
        out[28..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// `Err` says what is wrong with the header.
    pub fn decode(bytes: &[u8]) -> Result<Header, HeaderError> {
        if bytes.len() < HEADER_LEN {
            return Err(HeaderError::Damaged(format!(
                "file is {} bytes, shorter than its {HEADER_LEN}-byte header",
                bytes.len()
            )));
        }
        if bytes[..8] != MAGIC {
            // beanstalkd's files start with its format version (5 to 7) as
            // a 32-bit integer.
            if matches!(bytes[..4], [5..=7, 0, 0, 0]) {
                return Err(HeaderError::Beanstalkd);
            }
            return Err(HeaderError::Damaged("not a sprout binlog file (bad magic)".into()));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        let crc = u32::from_le_bytes(bytes[28..32].try_into().unwrap());
        let crc_matches = crc32fast::hash(&bytes[..28]) == crc;
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let (seq, format) = match version {
            1 => (u64::from_le_bytes(bytes[12..20].try_into().unwrap()), Format::V1),
            2 => (u64::from(word(12)), Format::V2 { base_secs: word(16) }),
            // Its checksum, where both known versions keep it, matches: a
            // newer sprout wrote it (a damaged version would not match).
            _ if crc_matches => return Err(HeaderError::NewerFormat(version)),
            _ => {
                return Err(HeaderError::Damaged(format!(
                    "binlog format version {version}, unknown, and the header checksum does not match: a \
                     damaged header"
                )));
            }
        };
        if !crc_matches {
            return Err(HeaderError::Damaged("header checksum mismatch".into()));
        }
        let next_id = u64::from_le_bytes(bytes[20..28].try_into().unwrap());
        if next_id > MAX_JOB_ID + 1 {
            return Err(HeaderError::Damaged(format!(
                "next job id {next_id} is past the largest job id, {MAX_JOB_ID}"
            )));
        }
        Ok(Header { seq, next_id, format })
    }
}

#[cfg(test)]
pub(crate) mod tests;

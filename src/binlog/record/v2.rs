//! Format version 2's records: what format 1 wrote in fixed widths, in as
//! few bytes as the values need. A flags byte says which fields are there
//! (counters only once one is not zero, the delay only when set, the
//! ready time only for a delayed or buried job), numbers are LEB128
//! varints, times are zigzag varint offsets from the file's base time (its
//! header's), and a job's tube is a small per-file index, declared with its
//! name by the first record of the file that uses it. The frame, the
//! per-record CRC and the delete and padding records are format 1's. The
//! layout is in docs/binlog-format.md.

use super::cursor::{Cursor, Head, MAX_VARINT_LEN};
use super::{FRAME_LEN, JobUpdate, LoggedState, Record, TYPE_DELETE, TYPE_JOB, TYPE_PADDING, TYPE_STATE};

/// The flags byte: bits 0-1 the state, then which fields follow.
const STATE_BITS: u8 = 0b11;
/// The five counters follow (some is not zero).
const COUNTERS: u8 = 1 << 2;
/// The delay follows (it is not zero).
const DELAY: u8 = 1 << 3;
/// The ready time follows (it is not zero: a delayed or buried job).
const READY_AT: u8 = 1 << 4;
/// The TTR and the delay are in nanoseconds; without it, in whole seconds
/// (as the protocol sets them, so they take a byte or two).
const NANOS: u8 = 1 << 5;
/// A job record declares its tube's index: the name follows the index.
const DECLARES_TUBE: u8 = 1 << 6;
/// No meaning yet: a record with it set is invalid.
const RESERVED: u8 = 1 << 7;

const NS_PER_SEC: u64 = 1_000_000_000;

/// The longest a state's fields can be: id, priority, delay, ready time,
/// five counters.
const MAX_UPDATE_LEN: usize = MAX_VARINT_LEN + 5 + MAX_VARINT_LEN + MAX_VARINT_LEN + 5 * 5;

/// The longest a state record can be, frame included.
pub const MAX_STATE_LEN: usize = FRAME_LEN + 2 + MAX_UPDATE_LEN;

/// The longest a job record's head can be, beside its tube name and body:
/// frame, type, flags, state, TTR, creation time, tube index, the name's
/// length byte, the body's length (101 bytes).
const MAX_JOB_HEAD_LEN: usize = FRAME_LEN + 2 + MAX_UPDATE_LEN + 2 * MAX_VARINT_LEN + 5 + 1 + 5;

/// How a job record names its tube.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TubeRef {
    /// First use in the file: the index, then the name.
    Declare(u32),
    /// An index declared earlier in the file.
    Index(u32),
}

/// A job record's tube as read, before the file's declarations resolve it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TubeField<'a> {
    /// Declares index `.0` as name `.1`.
    Declares(u32, &'a [u8]),
    /// Refers to index `.0`.
    Refers(u32),
}

/// The most bytes the record can take in any format-2 file (whatever its
/// base time, declaring its tube): for room checks made before the file
/// it goes to is known.
pub fn max_len<Body: AsRef<[u8]>>(record: &Record<Body>) -> usize {
    match record {
        Record::Job(job) => MAX_JOB_HEAD_LEN + job.tube.as_str().len() + job.body.as_ref().len(),
        Record::State(_) => MAX_STATE_LEN,
        Record::Delete(_) => FRAME_LEN + 9,
        Record::Padding(filler) => FRAME_LEN + 1 + filler,
    }
}

/// Bytes of [`Head2`]'s buffer: the longest head, rounded up to a power of
/// two for [`Head`]'s writes.
const HEAD_BUF_LEN: usize = MAX_JOB_HEAD_LEN.next_power_of_two();

/// A record's bytes but its body (and a declared tube's name): put
/// together on the stack, so that its length is known before anything is
/// appended. Small, so that making one costs little: a put's record is
/// made once per put.
pub(super) struct Head2 {
    /// Frame, type, flags, the fields up to the tube's index, then (if the
    /// record declares the tube) the name's length byte, then the body's
    /// length: `name_at` is where the name goes, between the two.
    buf: [u8; HEAD_BUF_LEN],
    len: usize,
    name_at: usize,
    name_len: usize,
}

impl Head2 {
    /// A head still to be written by [`write_head`].
    pub(super) fn new() -> Head2 {
        Head2 { buf: [0; HEAD_BUF_LEN], len: 0, name_at: 0, name_len: 0 }
    }

    /// The record's length but its body (or padding's filler).
    pub(super) fn len(&self) -> usize {
        self.len + self.name_len
    }
}

/// Writes into `out` (new, or written before) the record's head in a file
/// of base time `base` (ns), its tube named by `tube` (job records only).
/// The payload length in the frame counts the body; the CRC is left for
/// the file's writer (`seal_records`). The caller's head is filled in
/// place: returned by value it was copied, 20 of a put's instructions
/// (callgrind).
// Inlined into `FileEncoder::append_unsealed`, with `finish`, `put_update`
// and the tube table's two calls: 79 user instructions a put of 2,898
// (callgrind).
#[inline]
pub(super) fn write_head<Body: AsRef<[u8]>>(out: &mut Head2, record: &Record<Body>, base: i64, tube: TubeRef) {
    let mut head = Head { buf: &mut out.buf, at: FRAME_LEN };
    let mut body_len = 0;
    (out.name_at, out.name_len) = (0, 0);
    match record {
        Record::Job(job) => {
            head.u8(TYPE_JOB);
            let whole = job.ttr % NS_PER_SEC == 0 && job.update.delay % NS_PER_SEC == 0;
            let declares = if matches!(tube, TubeRef::Declare(_)) { DECLARES_TUBE } else { 0 };
            let flags = flags(&job.update, whole);
            head.u8(flags | declares);
            put_update(&job.update, flags, base, &mut head);
            head.varint(if whole { job.ttr / NS_PER_SEC } else { job.ttr });
            head.zigzag(job.created_at.wrapping_sub(base));
            match tube {
                TubeRef::Declare(index) => {
                    head.varint(index.into());
                    let name = job.tube.as_str().len();
                    head.u8(name as u8);
                    (out.name_at, out.name_len) = (head.at, name);
                }
                TubeRef::Index(index) => head.varint(index.into()),
            }
            body_len = job.body.as_ref().len();
            head.varint(body_len as u64);
        }
        Record::State(update) => {
            head.u8(TYPE_STATE);
            let flags = flags(update, update.delay % NS_PER_SEC == 0);
            head.u8(flags);
            put_update(update, flags, base, &mut head);
        }
        Record::Delete(id) => {
            head.u8(TYPE_DELETE);
            head.bytes(&id.to_le_bytes());
        }
        Record::Padding(filler) => {
            head.u8(TYPE_PADDING);
            body_len = *filler;
        }
    }
    // Once a record, not once a byte: a head longer than its buffer would
    // have wrapped around in it.
    assert!(head.fits(), "a record's head is longer than MAX_JOB_HEAD_LEN");
    out.len = head.at;
    let payload_len = (out.len + out.name_len - FRAME_LEN + body_len) as u32;
    out.buf[4..8].copy_from_slice(&payload_len.to_le_bytes());
}

/// Appends the record whose head is `head` to `out`: the head (and the
/// tube's name where it declares it), the body (or the padding's zeros);
/// its CRC is left for the caller.
#[inline]
pub(super) fn finish<Body: AsRef<[u8]>>(record: &Record<Body>, head: &Head2, out: &mut Vec<u8>) {
    match record {
        Record::Job(job) if head.name_len > 0 => {
            out.extend_from_slice(&head.buf[..head.name_at]);
            out.extend_from_slice(job.tube.as_str().as_bytes());
            out.extend_from_slice(&head.buf[head.name_at..head.len]);
        }
        _ => out.extend_from_slice(&head.buf[..head.len]),
    }
    match record {
        Record::Job(job) => out.extend_from_slice(job.body.as_ref()),
        Record::Padding(filler) => out.resize(out.len() + filler, 0),
        Record::State(_) | Record::Delete(_) => {}
    }
}

fn flags(u: &JobUpdate, whole: bool) -> u8 {
    let counters = (u.reserves | u.timeouts | u.releases | u.buries | u.kicks) != 0;
    let mut flags = u.state as u8;
    if counters {
        flags |= COUNTERS;
    }
    if u.delay != 0 {
        flags |= DELAY;
    }
    if u.ready_at != 0 {
        flags |= READY_AT;
    }
    if !whole {
        flags |= NANOS;
    }
    flags
}

/// The job state's fields, as `flags` says which are there.
// Always inlined (it is called twice, for jobs and states): out of line,
// the head's position lives in memory, a load and a store a byte.
#[inline(always)]
fn put_update<const N: usize>(u: &JobUpdate, flags: u8, base: i64, head: &mut Head<'_, N>) {
    head.varint(u.id);
    head.varint(u.pri.into());
    if flags & DELAY != 0 {
        head.varint(if flags & NANOS == 0 { u.delay / NS_PER_SEC } else { u.delay });
    }
    if flags & READY_AT != 0 {
        head.zigzag(u.ready_at.wrapping_sub(base));
    }
    if flags & COUNTERS != 0 {
        for n in [u.reserves, u.timeouts, u.releases, u.buries, u.kicks] {
            head.varint(n.into());
        }
    }
}

/// A duration in the record's unit, in nanoseconds.
#[inline(always)]
fn duration(r: &mut Cursor<'_>, flags: u8) -> Option<u64> {
    let v = r.varint()?;
    if flags & NANOS != 0 { Some(v) } else { v.checked_mul(NS_PER_SEC) }
}

#[inline(always)]
fn decode_update(r: &mut Cursor<'_>, flags: u8, base: i64) -> Option<JobUpdate> {
    let id = r.varint()?;
    let pri = r.varint_u32()?;
    let delay = if flags & DELAY != 0 { duration(r, flags)? } else { 0 };
    let ready_at = if flags & READY_AT != 0 { r.zigzag()?.wrapping_add(base) } else { 0 };
    let [reserves, timeouts, releases, buries, kicks] = if flags & COUNTERS != 0 {
        [r.varint_u32()?, r.varint_u32()?, r.varint_u32()?, r.varint_u32()?, r.varint_u32()?]
    } else {
        [0; 5]
    };
    // A field flagged as present holds what the writer leaves out when it
    // is zero: not a record the writer makes.
    if (flags & DELAY != 0 && delay == 0)
        || (flags & READY_AT != 0 && ready_at == 0)
        || (flags & COUNTERS != 0 && [reserves, timeouts, releases, buries, kicks] == [0; 5])
    {
        return None;
    }
    let state = LoggedState::from_byte(flags & STATE_BITS)?;
    Some(JobUpdate { id, pri, state, delay, ready_at, reserves, timeouts, releases, buries, kicks })
}

/// A format-2 payload read: a job record's tube is still to be resolved
/// against the file's declarations.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Payload<'a> {
    /// A job record; its fields but the tube, and how it names its tube.
    Job { update: JobUpdate, ttr: u64, created_at: i64, tube: TubeField<'a>, body: &'a [u8] },
    /// A state, delete or padding record.
    Other(Record<&'a [u8]>),
}

/// What a checksummed payload holds; `None` if its layout is not format
/// 2's.
#[inline]
pub(super) fn decode_payload(payload: &[u8], base: i64) -> Option<Payload<'_>> {
    let mut r = Cursor(payload);
    // Each kind is made where it is returned, after the check for trailing
    // bytes: made first and checked after, a job's payload was built on the
    // stack and copied out, and that copy's loads waited on the stores
    // just made (a third of this function's time in a restart, perf).
    match r.u8()? {
        TYPE_JOB => {
            let flags = r.u8()?;
            if flags & RESERVED != 0 {
                return None;
            }
            let update = decode_update(&mut r, flags, base)?;
            let ttr = duration(&mut r, flags)?;
            let created_at = r.zigzag()?.wrapping_add(base);
            let index = r.varint_u32()?;
            let tube = if flags & DECLARES_TUBE != 0 {
                let len = r.u8()? as usize;
                TubeField::Declares(index, r.take(len)?)
            } else {
                TubeField::Refers(index)
            };
            let body_len = r.varint_u32()? as usize;
            let body = r.take(body_len)?;
            r.at_end()?;
            Some(Payload::Job { update, ttr, created_at, tube, body })
        }
        TYPE_STATE => {
            let flags = r.u8()?;
            if flags & (RESERVED | DECLARES_TUBE) != 0 {
                return None;
            }
            let update = decode_update(&mut r, flags, base)?;
            r.at_end()?;
            Some(Payload::Other(Record::State(update)))
        }
        TYPE_DELETE => {
            let id = r.u64()?;
            r.at_end()?;
            Some(Payload::Other(Record::Delete(id)))
        }
        TYPE_PADDING => Some(Payload::Other(Record::Padding(r.0.len()))),
        _ => None,
    }
}

/// The id a job or state record's payload holds after its type and flags.
pub(super) fn legible_id(payload: &[u8]) -> Option<u64> {
    Cursor(payload.get(2..)?).varint()
}

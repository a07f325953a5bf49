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
use super::{FRAME_LEN, JobToWrite, JobUpdate, LoggedState, Record, TYPE_DELETE, TYPE_JOB, TYPE_PADDING, TYPE_STATE};
use crate::protocol::MAX_TUBE_NAME;

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
        Record::Job(job) => max_job_len(&job.to_write()),
        Record::State(_) => MAX_STATE_LEN,
        Record::Delete(_) => FRAME_LEN + 9,
        Record::Padding(filler) => FRAME_LEN + 1 + filler,
    }
}

/// [`max_len`] of a job's record.
#[inline(always)]
pub fn max_job_len(job: &JobToWrite<'_>) -> usize {
    MAX_JOB_HEAD_LEN + job.tube.as_str().len() + job.body.len()
}

/// Bytes of the window a record's head is written in at the end of the
/// file's buffer: the longest head (a job's, its tube not declared), with
/// room for the ten bytes [`Head::varint`] checks it has past it, rounded
/// up to a power of two for [`Head`]'s writes.
const WINDOW: usize = (MAX_JOB_HEAD_LEN + MAX_VARINT_LEN).next_power_of_two();

/// [`WINDOW`] for a job record that declares its tube, the name in its
/// head.
const DECLARING_WINDOW: usize = (MAX_JOB_HEAD_LEN + MAX_VARINT_LEN + MAX_TUBE_NAME).next_power_of_two();

/// Appends a job's record to `out` as a file of base time `base` (ns)
/// holds it, its tube named by `tube`, and returns its length; `None`, and
/// `out` as it was, if that is over `room`. The CRC is left for the file's
/// writer (`seal_records`), here and in the other `append_` functions.
///
/// The head is written in place: `out` takes a window of zeros, the head
/// is written into it and the window cut to the head, the payload's length
/// put in the frame, then the body appended. No copy of the head, one
/// reservation for the record.
#[inline(always)]
pub(super) fn append_job(
    job: &JobToWrite<'_>,
    base: i64,
    tube: TubeRef,
    room: u64,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let body = job.body;
    let (start, head_len) = match tube {
        TubeRef::Index(index) => {
            let (start, mut head) = open_window::<WINDOW>(out, body.len());
            job_head(&mut head, job, base, index, None);
            (start, head.end())
        }
        TubeRef::Declare(index) => {
            let (start, mut head) = open_window::<DECLARING_WINDOW>(out, body.len());
            job_head(&mut head, job, base, index, Some(job.tube.as_str().as_bytes()));
            (start, head.end())
        }
    };
    let len = close_window(out, start, head_len, body.len(), room)?;
    out.extend_from_slice(body);
    Some(len)
}

/// Appends the record of a change of a job's state, as [`append_job`] a
/// job's.
// Inlined into `FileEncoder::append_any`, with `put_update`.
#[inline]
pub(super) fn append_state(update: &JobUpdate, base: i64, room: u64, out: &mut Vec<u8>) -> Option<usize> {
    let (start, mut head) = open_window::<WINDOW>(out, 0);
    head.u8(TYPE_STATE);
    let flags = flags(update, update.delay.is_multiple_of(NS_PER_SEC));
    head.u8(flags);
    put_update(update, flags, base, &mut head);
    let head_len = head.end();
    close_window(out, start, head_len, 0, room)
}

/// Appends the record of job `id`'s delete, as [`append_job`] a job's.
#[inline]
pub(super) fn append_delete(id: u64, room: u64, out: &mut Vec<u8>) -> Option<usize> {
    let (start, mut head) = open_window::<WINDOW>(out, 0);
    head.u8(TYPE_DELETE);
    head.bytes(&id.to_le_bytes());
    let head_len = head.end();
    close_window(out, start, head_len, 0, room)
}

/// Appends padding, `filler` bytes after its type, as [`append_job`] a
/// job's record.
#[inline]
pub(super) fn append_padding(filler: usize, room: u64, out: &mut Vec<u8>) -> Option<usize> {
    let (start, mut head) = open_window::<WINDOW>(out, filler);
    head.u8(TYPE_PADDING);
    let head_len = head.end();
    let len = close_window(out, start, head_len, filler, room)?;
    out.resize(out.len() + filler, 0);
    Some(len)
}

/// A job record's head after its frame: type, flags, state, TTR, creation
/// time, tube index (and the name, where it declares it), body length.
#[inline(always)]
fn job_head<const N: usize>(
    head: &mut Head<'_, N>,
    job: &JobToWrite<'_>,
    base: i64,
    index: u32,
    declares: Option<&[u8]>,
) {
    head.u8(TYPE_JOB);
    let declares_tube = if declares.is_some() { DECLARES_TUBE } else { 0 };
    let u = &job.update;
    let ttr_secs = job.ttr / NS_PER_SEC;
    let counters = u.reserves | u.timeouts | u.releases | u.buries | u.kicks;
    if (u.delay | u.ready_at as u64 | u64::from(counters)) == 0 && ttr_secs * NS_PER_SEC == job.ttr {
        // A fresh put's record, the commonest: no counters, no delay, no
        // ready time, a TTR in whole seconds. Its flags are its state, its
        // update its id and priority (what `flags` and `put_update` would
        // make, with no test of each field: 40 instructions a put).
        head.u8(u.state as u8 | declares_tube);
        head.varint(u.id);
        head.varint(u.pri.into());
        head.varint(ttr_secs);
    } else {
        let whole = job.ttr.is_multiple_of(NS_PER_SEC) && u.delay.is_multiple_of(NS_PER_SEC);
        let flags = flags(u, whole);
        head.u8(flags | declares_tube);
        put_update(u, flags, base, head);
        head.varint(if whole { ttr_secs } else { job.ttr });
    }
    head.zigzag(job.created_at.wrapping_sub(base));
    head.varint(index.into());
    if let Some(name) = declares {
        head.u8(name.len() as u8);
        head.bytes(name);
    }
    head.varint(job.body.len() as u64);
}

/// A window of `N` zeros appended to `out`, room reserved past it for a
/// body of `body_len` bytes, and a head to write a record into it after
/// its frame (the length is put in by [`close_window`]); and where the
/// record starts.
#[inline(always)]
fn open_window<const N: usize>(out: &mut Vec<u8>, body_len: usize) -> (usize, Head<'_, N>) {
    let start = out.len();
    out.reserve(N + body_len);
    out.extend_from_slice(&[0; N]);
    let window: &mut [u8; N] = (&mut out[start..]).try_into().expect("a window of N bytes");
    (start, Head { buf: window, at: FRAME_LEN })
}

/// Cuts the window [`open_window`] made at `start` to the record's head,
/// `head_len` bytes, frame included, and puts the payload's length in the
/// frame, counting the `body_len` bytes the caller appends next; returns
/// the record's length. `None`, and `out` as it was before the window, if
/// that is over `room`.
#[inline(always)]
fn close_window(out: &mut Vec<u8>, start: usize, head_len: usize, body_len: usize, room: u64) -> Option<usize> {
    let len = head_len + body_len;
    if len as u64 > room {
        out.truncate(start);
        return None;
    }
    out[start + 4..start + FRAME_LEN].copy_from_slice(&((len - FRAME_LEN) as u32).to_le_bytes());
    out.truncate(start + head_len);
    Some(len)
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
// Always inlined, as is the decoder's path to it: the replay's loop then
// takes the record's fields where they are made, not through copies on
// the stack (1,280 to 1,240 instructions a restored job, callgrind).
#[inline(always)]
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

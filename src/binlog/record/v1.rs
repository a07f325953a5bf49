//! Format version 1's records: fixed-width fields, every field in every
//! record. sprout wrote it before format 2; it is kept to read directories
//! written then, to append to a format-1 file that a restart finds as the
//! newest (a file holds records of one format), and to write test
//! fixtures. Its bytes must not change: `the_encoding_is_the_same_bytes`
//! pins them.

use super::cursor::{Cursor, Head};
use super::{
    FRAME_LEN, FullJob, JobToWrite, JobUpdate, LoggedState, Record, TYPE_DELETE, TYPE_JOB, TYPE_PADDING, TYPE_STATE,
    seal,
};
use crate::protocol::TubeName;

/// A job state's fields: id, priority, state, delay, ready_at, counters.
const UPDATE_LEN: usize = 8 + 4 + 1 + 8 + 8 + 5 * 4;

/// Bytes of a state record, frame included.
pub const STATE_LEN: usize = FRAME_LEN + 1 + UPDATE_LEN;

/// Bytes the record takes in a format-1 file, frame included.
pub fn encoded_len<Body: AsRef<[u8]>>(record: &Record<Body>) -> usize {
    FRAME_LEN
        + 1
        + match record {
            Record::Job(job) => job_payload_len(job.tube.as_str().len(), job.body.as_ref().len()),
            Record::State(_) => UPDATE_LEN,
            Record::Delete(_) => 8,
            Record::Padding(filler) => *filler,
        }
}

/// [`encoded_len`] of a job's record.
pub fn job_len(job: &JobToWrite<'_>) -> usize {
    FRAME_LEN + 1 + job_payload_len(job.tube.as_str().len(), job.body.len())
}

/// A full job record's payload after its type byte: the update, TTR,
/// creation time, tube name with its length byte, body with its length.
fn job_payload_len(tube_len: usize, body_len: usize) -> usize {
    UPDATE_LEN + 8 + 8 + 1 + tube_len + 4 + body_len
}

/// Appends the framed record to `out`, in format 1. The fixed part is put
/// together on the stack and appended at once, then the body, then the
/// checksum of the whole record in one call.
pub fn encode<Body: AsRef<[u8]>>(record: &Record<Body>, out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(encoded_len(record));
    // Frame, type, update, TTR, creation time, the tube name with its
    // length byte (a length fits in one byte), the body's length.
    let mut buf = [0u8; (FRAME_LEN + 1 + UPDATE_LEN + 8 + 8 + 1 + 255 + 4).next_power_of_two()];
    let payload_len = (encoded_len(record) - FRAME_LEN) as u32;
    let mut head = Head { buf: &mut buf, at: 4 };
    head.bytes(&payload_len.to_le_bytes());
    match record {
        Record::Job(job) => {
            head.u8(TYPE_JOB);
            put_update(&job.update, &mut head);
            head.bytes(&job.ttr.to_le_bytes());
            head.bytes(&job.created_at.to_le_bytes());
            let tube = job.tube.as_str().as_bytes();
            head.u8(tube.len() as u8);
            head.bytes(tube);
            let body = job.body.as_ref();
            head.bytes(&(body.len() as u32).to_le_bytes());
            let at = head.at;
            out.extend_from_slice(&buf[..at]);
            out.extend_from_slice(body);
        }
        Record::State(update) => {
            head.u8(TYPE_STATE);
            put_update(update, &mut head);
            let at = head.at;
            out.extend_from_slice(&buf[..at]);
        }
        Record::Delete(id) => {
            head.u8(TYPE_DELETE);
            head.bytes(&id.to_le_bytes());
            let at = head.at;
            out.extend_from_slice(&buf[..at]);
        }
        Record::Padding(filler) => {
            head.u8(TYPE_PADDING);
            let at = head.at;
            out.extend_from_slice(&buf[..at]);
            out.resize(out.len() + filler, 0);
        }
    }
    seal(out, start);
}

fn put_update<const N: usize>(u: &JobUpdate, head: &mut Head<'_, N>) {
    head.bytes(&u.id.to_le_bytes());
    head.bytes(&u.pri.to_le_bytes());
    head.u8(u.state as u8);
    head.bytes(&u.delay.to_le_bytes());
    head.bytes(&u.ready_at.to_le_bytes());
    for n in [u.reserves, u.timeouts, u.releases, u.buries, u.kicks] {
        head.bytes(&n.to_le_bytes());
    }
}

fn decode_update(r: &mut Cursor<'_>) -> Option<JobUpdate> {
    Some(JobUpdate {
        id: r.u64()?,
        pri: r.u32()?,
        state: LoggedState::from_byte(r.u8()?)?,
        delay: r.u64()?,
        ready_at: r.i64()?,
        reserves: r.u32()?,
        timeouts: r.u32()?,
        releases: r.u32()?,
        buries: r.u32()?,
        kicks: r.u32()?,
    })
}

/// The record a checksummed payload holds; `None` if its layout is not
/// format 1's.
pub(super) fn decode_payload<'a>(
    payload: &'a [u8],
    tube_name: &mut impl FnMut(&[u8]) -> Option<TubeName>,
) -> Option<Record<&'a [u8]>> {
    let mut r = Cursor(payload);
    let record = match r.u8()? {
        TYPE_JOB => {
            let update = decode_update(&mut r)?;
            let ttr = r.u64()?;
            let created_at = r.i64()?;
            let tube_len = r.u8()? as usize;
            let tube = tube_name(r.take(tube_len)?)?;
            let body_len = r.u32()? as usize;
            let body = r.take(body_len)?;
            Record::Job(FullJob { update, tube, ttr, created_at, body })
        }
        TYPE_STATE => Record::State(decode_update(&mut r)?),
        TYPE_DELETE => Record::Delete(r.u64()?),
        TYPE_PADDING => {
            let filler = r.0.len();
            r.take(filler)?;
            Record::Padding(filler)
        }
        _ => return None,
    };
    // Trailing bytes mean the layout is not what the checksum covered.
    r.0.is_empty().then_some(record)
}

/// The id a job or state record's payload starts with (after its type).
pub(super) fn legible_id(payload: &[u8]) -> Option<u64> {
    Cursor(payload.get(1..)?).u64()
}

#[cfg(test)]
mod tests {
    use super::super::tests::samples;
    use super::super::{Decoded, Format, decode, full_record_ids};
    use super::*;

    #[test]
    fn full_record_ids_finds_the_jobs_among_other_records() {
        let mut bytes = Vec::new();
        for record in samples().into_iter().chain([Record::Job(FullJob {
            update: super::super::tests::update(9),
            tube: TubeName::new(b"t").unwrap(),
            ttr: 1,
            created_at: 0,
            body: &b""[..],
        })]) {
            encode(&record, &mut bytes);
        }
        bytes.extend_from_slice(&[0; 64]);
        assert_eq!(full_record_ids(Format::V1, &bytes), [1, 9]);
    }

    /// The bytes of format 1 do not change with the code that writes them:
    /// these are the bytes `samples()` had when they were first written.
    #[test]
    fn the_encoding_is_the_same_bytes() {
        let mut bytes = Vec::new();
        for record in samples() {
            encode(&record, &mut bytes);
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN);
    }

    const GOLDEN: &str = "42c3d1c65a000000010100000000000000070000000200f2052a0100000000002a36fe9c97170100000002000000030000000400000005000000005847f80d0000000000a0d88557341606656d61696c730d00000068656c6c6f0d0a776f726c640074b22f2432000000020200000000000000070000000200f2052a0100000000002a36fe9c971701000000020000000300000004000000050000004c77e33f09000000030300000000000000b41a2ffc01000000042421819f650000000400000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn round_trip() {
        for record in samples() {
            let mut bytes = Vec::new();
            encode(&record, &mut bytes);
            assert_eq!(bytes.len(), encoded_len(&record));
            assert_eq!(decode(Format::V1, &bytes), Decoded::Record(record, bytes.len()));
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        for record in samples() {
            let mut bytes = Vec::new();
            encode(&record, &mut bytes);
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut damaged = bytes.clone();
                    damaged[i] ^= 1 << bit;
                    assert!(
                        !matches!(decode(Format::V1, &damaged), Decoded::Record(ref r, _) if *r == record),
                        "flip of bit {bit} at {i} went unnoticed"
                    );
                }
            }
        }
    }

    #[test]
    fn every_truncation_is_damage_not_a_record() {
        for record in samples() {
            let mut bytes = Vec::new();
            encode(&record, &mut bytes);
            for cut in 1..bytes.len() {
                assert_eq!(decode(Format::V1, &bytes[..cut]), Decoded::Damaged, "cut at {cut}");
            }
        }
    }
}

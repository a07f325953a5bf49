//! The binlog's records and their bytes (format version 1).
//!
//! Every record is framed as `crc: u32, len: u32, payload[len]`, little-endian,
//! where `crc` is the CRC-32 (IEEE) of the bytes that follow it, the four
//! `len` bytes and the payload, so a damaged length is caught as surely as a
//! damaged body (and the checksum runs over one contiguous slice). Eight
//! zero bytes mark the end of the written part of a file (files are
//! preallocated with zeros). The full layout, and what each record means, is
//! specified in docs/binlog-format.md; this file and that page change
//! together, with the version.

use crate::engine::MAX_JOB_ID;
use crate::protocol::TubeName;

/// File magic: the first 8 bytes of every binlog file.
pub const MAGIC: [u8; 8] = *b"SPROUTWL";

/// Format version in every file header.
pub const VERSION: u32 = 1;

/// `magic[8] version:u32 seq:u64 next_id:u64 crc:u32`.
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
    fn from_byte(b: u8) -> Option<LoggedState> {
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

const UPDATE_LEN: usize = 8 + 4 + 1 + 8 + 8 + 5 * 4;

impl<Body: AsRef<[u8]>> Record<Body> {
    /// The job the record is about (0 for padding).
    pub fn job_id(&self) -> u64 {
        match self {
            Record::Job(job) => job.update.id,
            Record::State(update) => update.id,
            Record::Delete(id) => *id,
            Record::Padding(_) => 0,
        }
    }

    /// Bytes a job's full record takes in a file, frame included, for a tube
    /// name and a body of these lengths.
    pub fn full_job_len(tube_len: usize, body_len: usize) -> usize {
        FRAME_LEN + 1 + job_payload_len(tube_len, body_len)
    }

    /// Bytes the record takes in a file, frame included.
    pub fn encoded_len(&self) -> usize {
        FRAME_LEN + self.payload_len()
    }

    fn payload_len(&self) -> usize {
        1 + match self {
            Record::Job(job) => job_payload_len(job.tube.as_str().len(), job.body.as_ref().len()),
            Record::State(_) => UPDATE_LEN,
            Record::Delete(_) => 8,
            Record::Padding(filler) => *filler,
        }
    }

    /// Appends the framed record to `out`. The fixed part is put together
    /// on the stack and appended at once, then the body, then the checksum
    /// of the whole record in one call: a put's record is encoded once, in
    /// place, in the file's write buffer.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.reserve(self.encoded_len());
        // Frame, type, update, TTR, creation time, the tube name with its
        // length byte (a length fits in one byte), the body's length.
        let mut head = [0u8; FRAME_LEN + 1 + UPDATE_LEN + 8 + 8 + 1 + 255 + 4];
        head[4..8].copy_from_slice(&(self.payload_len() as u32).to_le_bytes());
        let mut at = FRAME_LEN + 1;
        match self {
            Record::Job(job) => {
                head[FRAME_LEN] = TYPE_JOB;
                at = put_update(&job.update, &mut head, at);
                at = put(&mut head, at, &job.ttr.to_le_bytes());
                at = put(&mut head, at, &job.created_at.to_le_bytes());
                let tube = job.tube.as_str().as_bytes();
                at = put(&mut head, at, &[tube.len() as u8]);
                at = put(&mut head, at, tube);
                let body = job.body.as_ref();
                at = put(&mut head, at, &(body.len() as u32).to_le_bytes());
                out.extend_from_slice(&head[..at]);
                out.extend_from_slice(body);
            }
            Record::State(update) => {
                head[FRAME_LEN] = TYPE_STATE;
                at = put_update(update, &mut head, at);
                out.extend_from_slice(&head[..at]);
            }
            Record::Delete(id) => {
                head[FRAME_LEN] = TYPE_DELETE;
                at = put(&mut head, at, &id.to_le_bytes());
                out.extend_from_slice(&head[..at]);
            }
            Record::Padding(filler) => {
                head[FRAME_LEN] = TYPE_PADDING;
                out.extend_from_slice(&head[..at]);
                out.resize(out.len() + filler, 0);
            }
        }
        let crc = crc32fast::hash(&out[start + 4..]);
        out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Copies `bytes` into `buf` at `at`; returns where they end.
fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> usize {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
    at + bytes.len()
}

/// Writes the update's fields into `buf` at `at`; returns where they end.
fn put_update(u: &JobUpdate, buf: &mut [u8], mut at: usize) -> usize {
    at = put(buf, at, &u.id.to_le_bytes());
    at = put(buf, at, &u.pri.to_le_bytes());
    at = put(buf, at, &[u.state as u8]);
    at = put(buf, at, &u.delay.to_le_bytes());
    at = put(buf, at, &u.ready_at.to_le_bytes());
    for n in [u.reserves, u.timeouts, u.releases, u.buries, u.kicks] {
        at = put(buf, at, &n.to_le_bytes());
    }
    at
}

/// A full job record's payload after its type byte: the update, TTR,
/// creation time, tube name with its length byte, body with its length.
fn job_payload_len(tube_len: usize, body_len: usize) -> usize {
    UPDATE_LEN + 8 + 8 + 1 + tube_len + 4 + body_len
}

/// What a file holds at some offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record of this many bytes, borrowing from the bytes given.
    Record(Record<&'a [u8]>, usize),
    /// Zeros: the unwritten, preallocated rest of the file (or its end).
    End,
    /// Bytes that are not a valid record: cut short, or failing the checksum
    /// or the layout.
    Damaged,
}

/// Decodes the record starting at `bytes[0]`.
pub fn decode(bytes: &[u8]) -> Decoded<'_> {
    decode_with(bytes, &mut |name| TubeName::new(name))
}

/// [`decode`], with tube names made by `tube_name` (recovery shares one
/// copy of each name among all its jobs).
pub fn decode_with<'a>(bytes: &'a [u8], tube_name: &mut impl FnMut(&[u8]) -> Option<TubeName>) -> Decoded<'a> {
    if bytes.len() < FRAME_LEN || bytes[..FRAME_LEN] == [0; FRAME_LEN] {
        // Fewer than a frame's bytes left can only be preallocation slack.
        let head = &bytes[..bytes.len().min(FRAME_LEN)];
        return if head.iter().all(|&b| b == 0) { Decoded::End } else { Decoded::Damaged };
    }
    let crc = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let Some(checked) = bytes.get(4..FRAME_LEN + len) else { return Decoded::Damaged };
    if crc32fast::hash(checked) != crc {
        return Decoded::Damaged;
    }
    let payload = &checked[4..];
    match decode_payload(payload, tube_name) {
        Some(record) => Decoded::Record(record, FRAME_LEN + len),
        None => Decoded::Damaged,
    }
}

/// The ids of the jobs whose full records `bytes` (records our own writer
/// wrote, back to back) holds, in order. Only the frames and the first bytes
/// of each payload are read, without checksums: compaction uses this to know
/// which jobs to look up, and looks each up before moving it.
pub fn full_record_ids(bytes: &[u8]) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut at = 0;
    while let Some(frame) = bytes.get(at..at + FRAME_LEN + 9) {
        let len = u32::from_le_bytes(frame[4..8].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        if frame[FRAME_LEN] == TYPE_JOB {
            ids.push(u64::from_le_bytes(frame[FRAME_LEN + 1..].try_into().unwrap()));
        }
        at += FRAME_LEN + len;
    }
    ids
}

/// A little-endian reader over a payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()))
    }
}

fn decode_update(r: &mut Reader<'_>) -> Option<JobUpdate> {
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

fn decode_payload<'a>(
    payload: &'a [u8],
    tube_name: &mut impl FnMut(&[u8]) -> Option<TubeName>,
) -> Option<Record<&'a [u8]>> {
    let mut r = Reader(payload);
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
    // Trailing bytes mean the layout is not what the checksum covered; an
    // id no server hands out, that the checksum was made over bad data.
    (r.0.is_empty() && record.job_id() <= MAX_JOB_ID).then_some(record)
}

/// Why a file header was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The file is one of beanstalkd's binlog files.
    Beanstalkd,
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
            HeaderError::Damaged(why) => f.write_str(why),
        }
    }
}

/// A file header: which file this is and the next job id at its creation,
/// so ids keep growing even after every job and every older file is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The file's sequence number, as in its name.
    pub seq: u64,
    /// Every job id logged before the file was made is below this, so ids
    /// keep growing after every older file is gone.
    pub next_id: u64,
}

impl Header {
    /// The header's bytes, checksum included.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..20].copy_from_slice(&self.seq.to_le_bytes());
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
        if version != VERSION {
            return Err(HeaderError::Damaged(format!(
                "binlog format version {version}, this sprout reads version {VERSION}"
            )));
        }
        let crc = u32::from_le_bytes(bytes[28..32].try_into().unwrap());
        if crc32fast::hash(&bytes[..28]) != crc {
            return Err(HeaderError::Damaged("header checksum mismatch".into()));
        }
        let next_id = u64::from_le_bytes(bytes[20..28].try_into().unwrap());
        if next_id > MAX_JOB_ID + 1 {
            return Err(HeaderError::Damaged(format!(
                "next job id {next_id} is past the largest job id, {MAX_JOB_ID}"
            )));
        }
        Ok(Header { seq: u64::from_le_bytes(bytes[12..20].try_into().unwrap()), next_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: u64) -> JobUpdate {
        JobUpdate {
            id,
            pri: 7,
            state: LoggedState::Delayed,
            delay: 5_000_000_000,
            ready_at: 1_700_000_000_000_000_000,
            reserves: 1,
            timeouts: 2,
            releases: 3,
            buries: 4,
            kicks: 5,
        }
    }

    fn samples() -> Vec<Record<&'static [u8]>> {
        vec![
            Record::Job(FullJob {
                update: update(1),
                tube: TubeName::new(b"emails").unwrap(),
                ttr: 60_000_000_000,
                created_at: 1_600_000_000_000_000_000,
                body: &b"hello\r\nworld\0"[..],
            }),
            Record::State(update(2)),
            Record::Delete(3),
            Record::Padding(0),
            Record::Padding(100),
        ]
    }

    #[test]
    fn full_record_ids_finds_the_jobs_among_other_records() {
        let mut bytes = Vec::new();
        for record in samples().into_iter().chain([Record::Job(FullJob {
            update: update(9),
            tube: TubeName::new(b"t").unwrap(),
            ttr: 1,
            created_at: 0,
            body: &b""[..],
        })]) {
            record.encode(&mut bytes);
        }
        bytes.extend_from_slice(&[0; 64]);
        assert_eq!(full_record_ids(&bytes), [1, 9]);
    }

    /// The bytes of format 1 do not change with the code that writes them:
    /// these are the bytes `samples()` had when they were first written.
    #[test]
    fn the_encoding_is_the_same_bytes() {
        let mut bytes = Vec::new();
        for record in samples() {
            record.encode(&mut bytes);
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN);
    }

    const GOLDEN: &str = "42c3d1c65a000000010100000000000000070000000200f2052a0100000000002a36fe9c97170100000002000000030000000400000005000000005847f80d0000000000a0d88557341606656d61696c730d00000068656c6c6f0d0a776f726c640074b22f2432000000020200000000000000070000000200f2052a0100000000002a36fe9c971701000000020000000300000004000000050000004c77e33f09000000030300000000000000b41a2ffc01000000042421819f650000000400000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn round_trip() {
        for record in samples() {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            assert_eq!(bytes.len(), record.encoded_len());
            if let Record::Job(job) = &record {
                let len = Record::<&[u8]>::full_job_len(job.tube.as_str().len(), job.body.len());
                assert_eq!(bytes.len(), len, "the length compaction counts for a job");
            }
            assert_eq!(decode(&bytes), Decoded::Record(record, bytes.len()));
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        for record in samples() {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut damaged = bytes.clone();
                    damaged[i] ^= 1 << bit;
                    assert!(
                        !matches!(decode(&damaged), Decoded::Record(ref r, _) if *r == record),
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
            record.encode(&mut bytes);
            for cut in 1..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), Decoded::Damaged, "cut at {cut}");
            }
        }
    }

    #[test]
    fn zeros_are_the_end() {
        assert_eq!(decode(&[0; 100]), Decoded::End);
        assert_eq!(decode(&[]), Decoded::End);
        assert_eq!(decode(&[0, 0]), Decoded::End);
        let mut almost = [0u8; 100];
        almost[7] = 1;
        assert_eq!(decode(&almost), Decoded::Damaged);
    }

    #[test]
    fn header_round_trip_and_checks() {
        let header = Header { seq: 42, next_id: 1000 };
        let bytes = header.encode();
        assert_eq!(Header::decode(&bytes), Ok(header));
        let mut bad = bytes;
        bad[13] ^= 1;
        assert!(Header::decode(&bad).unwrap_err().to_string().contains("checksum"));
        let mut beanstalkd = [0u8; 64];
        beanstalkd[0] = 7;
        assert_eq!(Header::decode(&beanstalkd), Err(HeaderError::Beanstalkd));
        assert!(Header::decode(&bytes[..10]).is_err());
        let last = Header { seq: 1, next_id: MAX_JOB_ID + 1 };
        assert_eq!(Header::decode(&last.encode()), Ok(last));
        let past = Header { seq: 1, next_id: MAX_JOB_ID + 2 };
        assert!(Header::decode(&past.encode()).unwrap_err().to_string().contains("past the largest job id"));
    }

    /// fuzz/regressions/binlog/job-id-u64-max: the next id overflowed when
    /// the engine restored the job.
    #[test]
    fn an_id_past_the_largest_is_damage() {
        for id in [MAX_JOB_ID + 1, u64::MAX] {
            let mut bytes = Vec::new();
            Record::<&[u8]>::Delete(id).encode(&mut bytes);
            assert_eq!(decode(&bytes), Decoded::Damaged, "delete of {id}");
        }
        let mut bytes = Vec::new();
        Record::<&[u8]>::Delete(MAX_JOB_ID).encode(&mut bytes);
        assert_eq!(decode(&bytes), Decoded::Record(Record::Delete(MAX_JOB_ID), 17));
    }
}

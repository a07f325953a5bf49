//! sprout's files, read as a start reads them (recovery's [`State`] applies
//! the records, so the live jobs are the ones a start brings back), with
//! each record counted and each damage noted instead of refused: where a
//! start without `--skip-damaged-records` would refuse, the walk goes on
//! as that flag would (from the next valid record, or past a damaged
//! header's whole file), so the live jobs are what the flag would keep.

use super::report::{FileFormat, FileReport, JobState, Live, RecordCounts, Spot};
use super::{MAX_READS, RETIRED, Reading, Reread};
use crate::binlog::live_jobs::JobList;
use crate::binlog::record::{Decoded, Format, HEADER_LEN, Header, LoggedState, Record, is_record};
use crate::binlog::recovery::{State, describe_damage, garbage_end, next_valid_record, records_end_at};

/// sprout's files of a directory, replayed one by one, oldest first.
#[derive(Default)]
pub(super) struct SproutFiles {
    state: State<JobList>,
    /// A sprout file was read (spares included).
    seen: bool,
}

/// A file's records as the walk found them, not yet applied.
struct Walk<'a> {
    /// Valid records and their lengths, in file order.
    records: Vec<(Record<&'a [u8]>, usize)>,
    /// How many of `records` come before the first damage.
    before_damage: usize,
    /// Damaged records with valid ones after them in the file.
    damage: Vec<Spot>,
    /// A bad record with nothing valid after it in the file: a torn tail,
    /// unless a later file has records.
    bad_tail: Option<Spot>,
    /// Where the valid records end.
    end: usize,
}

impl SproutFiles {
    /// Reads one of sprout's files (its bytes start with the magic). A bad
    /// record with nothing valid after it in the file is a torn tail,
    /// unless a later file holds anything: then it is damage.
    pub(super) fn read(&mut self, reading: &mut Reading<'_, '_>, mut bytes: Vec<u8>) -> FileReport {
        let file = reading.file;
        self.seen = true;
        let mut report = FileReport {
            name: file.name.clone(),
            seq: file.seq,
            format: FileFormat::SproutV1,
            size: bytes.len() as u64,
            records: RecordCounts::Sprout { job: 0, state: 0, delete: 0, padding: 0 },
            records_end: 0,
            torn_tail: None,
            damage: Vec::new(),
        };
        // A damaged header skips the whole file, as `--skip-damaged-records`
        // does; a header naming another file is refused even with it.
        let header = match Header::decode(&bytes) {
            Ok(header) if header.seq == file.seq => header,
            Ok(header) => {
                let reason = format!("the header says it is file {}: a start refuses it", header.seq);
                report.damage.push(Spot { offset: 0, reason });
                return report;
            }
            Err(e) => {
                report.damage.push(Spot { offset: 0, reason: format!("bad header: {e}; the whole file is skipped") });
                return report;
            }
        };
        report.format = match header.format {
            Format::V1 => FileFormat::SproutV1,
            Format::V2 { .. } => FileFormat::SproutV2,
        };
        let (mut reads, mut retired) = (1, false);
        loop {
            // Each reading of the file starts from its header: format 2's
            // tube declarations are read afresh with its records.
            self.state.saw_header(&header);
            let mut walk = walk(&mut self.state, &bytes);
            let tail_is_damage = walk.bad_tail.is_some() && reading.later_have_data();
            let damaged = !walk.damage.is_empty() || tail_is_damage;
            // A server may have been writing what looks damaged: if the
            // file reads differently now, judge the new bytes.
            if damaged && reads < MAX_READS {
                reads += 1;
                match reading.again(&bytes) {
                    Reread::Changed(again) => {
                        bytes = again;
                        report.size = bytes.len() as u64;
                        continue;
                    }
                    Reread::Gone => retired = true,
                    Reread::Same => {}
                }
            }
            if retired {
                let first = walk.damage.drain(..).chain(walk.bad_tail.take()).next();
                report.torn_tail = first.map(|spot| Spot { reason: format!("{}; {RETIRED}", spot.reason), ..spot });
            }
            if let Some(mut tail) = walk.bad_tail.take() {
                if tail_is_damage {
                    tail.reason = format!("{}, and later files hold records", tail.reason);
                    walk.damage.push(tail);
                } else {
                    report.torn_tail = Some(tail);
                }
            }
            report.records = self.apply(file.seq, walk.records, walk.before_damage);
            report.damage = walk.damage;
            report.records_end = walk.end as u64;
            if report.records.total() == 0 && report.damage.is_empty() && report.torn_tail.is_none() {
                report.format = FileFormat::Spare;
            }
            return report;
        }
    }

    /// Applies a file's records to the replay, counting them by kind.
    fn apply(&mut self, seq: u64, records: Vec<(Record<&[u8]>, usize)>, before_damage: usize) -> RecordCounts {
        let (mut job, mut state, mut delete, mut padding) = (0, 0, 0, 0);
        let count = records.len();
        for (i, (record, len)) in records.into_iter().enumerate() {
            if i == before_damage {
                self.state.skipped_damage();
            }
            match record {
                Record::Job(_) => job += 1,
                Record::State(_) => state += 1,
                Record::Delete(_) => delete += 1,
                Record::Padding(_) => padding += 1,
            }
            self.state.apply(record, seq, len as u64);
        }
        if before_damage == count {
            // Damage after the last valid record: later files' records may
            // be about jobs it held.
            self.state.skipped_damage();
        }
        RecordCounts::Sprout { job, state, delete, padding }
    }

    /// Adds the live jobs to `live`; returns the bytes their records need
    /// (one file header, and each job's full record) and the next job id;
    /// `None` if no sprout file was read.
    pub(super) fn finish(self, live: &mut Live) -> Option<(u64, u64)> {
        if !self.seen {
            return None;
        }
        let (jobs, next_id) = self.state.finish();
        let (jobs, _) = jobs.into_ordered();
        let mut bytes = HEADER_LEN as u64;
        for job in &jobs {
            let state = match job.job.update.state {
                LoggedState::Ready => JobState::Ready { reserved: false },
                LoggedState::Reserved => JobState::Ready { reserved: true },
                LoggedState::Delayed => JobState::Delayed,
                LoggedState::Buried => JobState::Buried,
            };
            live.add(job.job.tube.as_str(), state);
            bytes += u64::from(job.record_len);
        }
        Some((bytes, next_id))
    }
}

/// Walks a file's records after its header, past damage as
/// `--skip-damaged-records` does: from a bad record to the next valid one.
fn walk<'a>(state: &mut State<JobList>, bytes: &'a [u8]) -> Walk<'a> {
    let mut walk = Walk { records: Vec::new(), before_damage: usize::MAX, damage: Vec::new(), bad_tail: None, end: 0 };
    let mut at = HEADER_LEN;
    loop {
        match state.decode(&bytes[at..]) {
            Decoded::Record(record, len) => {
                walk.records.push((record, len));
                at += len;
            }
            Decoded::End if records_end_at(bytes, at) => break,
            Decoded::End | Decoded::Damaged => {
                walk.before_damage = walk.before_damage.min(walk.records.len());
                let format = state.format();
                let spot = Spot { offset: at as u64, reason: describe_damage(format, bytes, at) };
                match next_valid_record(format, bytes, at + 1) {
                    Some(next) => {
                        walk.damage.push(spot);
                        at = next;
                    }
                    // Whole but unreadable (a format-2 record whose tube's
                    // declaration was skipped): damage, never a torn tail.
                    None if is_record(format, &bytes[at..]) => {
                        walk.damage.push(spot);
                        at = garbage_end(bytes, at);
                        break;
                    }
                    None => {
                        walk.bad_tail = Some(spot);
                        break;
                    }
                }
            }
        }
    }
    walk.end = at;
    walk
}

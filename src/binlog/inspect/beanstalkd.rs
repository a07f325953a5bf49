//! beanstalkd's files, read by its format's reader and replayed by
//! [`Replay`], as a takeover reads them: the live jobs are the ones
//! `sprout -b DIR` would import.
//!
//! The reader tells how each file's records end ([`End`]): a torn record
//! (cut short, or bad with only zeros after it) is what a crash in the
//! middle of a write leaves, in any file, since beanstalkd restarted after a
//! crash goes on in a new file and keeps the torn one; no damage. A bad
//! record with more bytes after it is damage, and nothing after it in that
//! file can be read (beanstalkd's records have no checksum or marker to
//! find the next one by): the takeover with `--skip-damaged-records` drops
//! it, and so do the live jobs counted here.

use super::report::{FileFormat, FileReport, JobState, Live, RecordCounts, Spot};
use super::{MAX_READS, RETIRED, Reading, Reread};
use crate::binlog::beanstalkd::{
    End, FILE_VERSION_LEN, ImportedState, Replay, State, Version, full_record_len, read_file,
};

/// beanstalkd's files of a directory, replayed one by one, oldest first.
#[derive(Default)]
pub(super) struct BeanstalkdFiles {
    replay: Replay,
    /// A beanstalkd file was read.
    seen: bool,
}

impl BeanstalkdFiles {
    /// Reads one of beanstalkd's files (its bytes start with version 7 or
    /// 5).
    pub(super) fn read(&mut self, reading: &mut Reading<'_, '_>, mut bytes: Vec<u8>) -> FileReport {
        let file = reading.file;
        self.seen = true;
        let (mut reads, mut retired) = (1, false);
        loop {
            let read = read_file(&bytes);
            // A server may have been writing what looks damaged: if the
            // file reads differently now, judge the new bytes.
            if matches!(read.end, End::Damaged { .. }) && reads < MAX_READS {
                reads += 1;
                match reading.again(&bytes) {
                    Reread::Changed(again) => {
                        bytes = again;
                        continue;
                    }
                    Reread::Gone => retired = true,
                    Reread::Same => {}
                }
            }
            let (mut full, mut short, mut delete) = (0, 0, 0);
            for record in &read.records {
                match (record.is_full(), record.state) {
                    (true, _) => full += 1,
                    (false, State::Deleted) => delete += 1,
                    (false, _) => short += 1,
                }
            }
            let mut report = FileReport {
                name: file.name.clone(),
                seq: file.seq,
                format: match read.version {
                    Some(Version::V5) => FileFormat::BeanstalkdV5,
                    _ => FileFormat::BeanstalkdV7,
                },
                size: bytes.len() as u64,
                records: RecordCounts::Beanstalkd { full, short, delete },
                records_end: read.end.at().max(FILE_VERSION_LEN) as u64,
                torn_tail: None,
                damage: Vec::new(),
            };
            match &read.end {
                End::Clean { .. } => {}
                End::Torn { at, why } => {
                    let reason = match reading.later_have_data() {
                        false => why.clone(),
                        true => format!("{why}; beanstalkd, restarted after a crash, went on in a newer file"),
                    };
                    report.torn_tail = Some(Spot { offset: *at as u64, reason });
                }
                End::Damaged { at, why } if retired => {
                    report.torn_tail = Some(Spot { offset: *at as u64, reason: format!("{why}; {RETIRED}") });
                }
                End::Damaged { at, why } => {
                    let rest = bytes.len() - at;
                    let reason = format!("{why}; the {rest} bytes from here to the end of the file cannot be read");
                    report.damage.push(Spot { offset: *at as u64, reason });
                }
            }
            self.replay.apply(file.seq, &read);
            return report;
        }
    }

    /// Adds the live jobs to `live`; returns the bytes their records need
    /// (the version, and each job's full record, as beanstalkd's compaction
    /// writes it) and the next job id sprout would hand out after a
    /// takeover; `None` if no beanstalkd file was read.
    pub(super) fn finish(self, live: &mut Live) -> Option<(u64, u64)> {
        if !self.seen {
            return None;
        }
        let imported = self.replay.finish();
        let mut bytes = FILE_VERSION_LEN as u64;
        for job in &imported.jobs {
            let state = match job.state {
                ImportedState::Ready => JobState::Ready { reserved: job.reserved },
                ImportedState::Delayed { .. } => JobState::Delayed,
                ImportedState::Buried { .. } => JobState::Buried,
            };
            live.add(job.tube.as_str(), state);
            let record = full_record_len(job.tube.as_str().len(), imported.bodies.get(job.body).len());
            bytes += record as u64;
        }
        Some((bytes, imported.next_id))
    }
}

//! The version 7 writer: what it writes reads back the same, and is byte
//! for byte what beanstalkd writes for the same job.

use super::fixtures::SESSION;
use super::*;
use crate::binlog::beanstalkd::layout::V7_PADDING;

fn export_of<'a>(record: &'a Record<'a>) -> ExportJob<'a> {
    ExportJob {
        id: record.id,
        tube: record.tube.as_ref().map(|t| t.as_str()).unwrap_or_default(),
        pri: record.pri,
        delay_ns: record.delay_ns,
        ttr_ns: record.ttr_ns,
        created_at_ns: record.created_at_ns,
        deadline_at_ns: record.deadline_at_ns,
        counts: record.counts,
        state: record.state,
        body: record.body.unwrap_or_default(),
    }
}

/// A job with zero fields but these.
fn export<'a>(id: u64, tube: &'a str, state: State, body: &'a [u8]) -> ExportJob<'a> {
    ExportJob {
        id,
        tube,
        pri: 0,
        delay_ns: 0,
        ttr_ns: SECOND,
        created_at_ns: 0,
        deadline_at_ns: 0,
        counts: JobCounts::default(),
        state,
        body,
    }
}

#[test]
fn a_new_file_is_its_version() {
    let writer = V7Writer::new();
    assert_eq!((writer.len(), writer.is_empty()), (4, true));
    assert_eq!(writer.into_bytes(), [7, 0, 0, 0]);
}

#[test]
fn what_is_written_reads_back_the_same() {
    let name = "n".repeat(200);
    let jobs = [
        ExportJob {
            id: 1,
            tube: "default",
            pri: 0,
            delay_ns: 0,
            ttr_ns: 120 * SECOND,
            created_at_ns: 1_700_000_000 * SECOND,
            deadline_at_ns: 0,
            counts: JobCounts::default(),
            state: State::Ready,
            body: b"hello",
        },
        ExportJob {
            id: 7,
            tube: &name,
            pri: u32::MAX,
            delay_ns: 30 * SECOND,
            ttr_ns: SECOND,
            created_at_ns: 1_700_000_001 * SECOND,
            deadline_at_ns: 1_700_000_031 * SECOND,
            counts: JobCounts { reserves: 1, timeouts: 2, releases: 3, buries: 4, kicks: 5 },
            state: State::Delayed,
            body: b"",
        },
        export(9, "x", State::Buried, b"a\r\n\0b\r\n"),
        export(MAX_JOB_ID, "x", State::Reserved, &[0xFF; 3000]),
    ];
    let mut writer = V7Writer::new();
    let mut len = 4;
    for job in &jobs {
        writer.push_full(job).unwrap();
        len += full_record_len(job.tube.len(), job.body.len());
        assert_eq!(writer.len(), len);
    }
    assert!(!writer.is_empty());
    let bytes = writer.into_bytes();
    let read = read_file(&bytes);
    assert_eq!(read.end, End::Clean { at: bytes.len() });
    let back: Vec<ExportJob> = read.records.iter().map(export_of).collect();
    assert_eq!(back, jobs);
    assert!(read.records.iter().all(Record::is_full));
}

#[test]
fn a_record_is_written_as_beanstalkd_writes_it() {
    let read = read_file(SESSION);
    let full: Vec<&Record> = read.records.iter().filter(|r| r.is_full()).collect();
    assert_eq!(full.len(), 14);
    for record in full {
        let mut writer = V7Writer::new();
        writer.push_full(&export_of(record)).unwrap();
        let mut ours = writer.into_bytes().split_off(4);
        let mut theirs = SESSION[record.offset..record.offset + record.len].to_vec();
        let jobrec_at = 4 + record.tube.as_ref().unwrap().as_str().len();
        for pad in V7_PADDING {
            ours[jobrec_at + pad.start..jobrec_at + pad.end].fill(0);
            theirs[jobrec_at + pad.start..jobrec_at + pad.end].fill(0);
        }
        assert_eq!(ours, theirs, "job {}", record.id);
    }
}

#[test]
fn what_beanstalkd_cannot_read_is_refused() {
    let mut writer = V7Writer::new();
    for tube in ["", "-x", "a b", &"n".repeat(201), "caf\u{e9}"] {
        let job = export(3, tube, State::Ready, b"x");
        assert_eq!(writer.push_full(&job), Err(ExportError::BadTubeName { id: 3 }), "{tube:?}");
    }
    assert!(writer.is_empty(), "nothing written for a refused job");
}

#[test]
fn a_body_too_large_for_the_jobrec_is_refused() {
    use crate::binlog::beanstalkd::write::body_size;
    assert_eq!(body_size(0), Some(2));
    assert_eq!(body_size(i32::MAX as usize - 2), Some(i32::MAX));
    assert_eq!(body_size(i32::MAX as usize - 1), None);
    assert_eq!(body_size(usize::MAX), None);
}

//! Files beanstalkd 1.12 wrote (`testdata/`, made by `testdata/make.py`),
//! read.

use super::*;

pub(super) const SESSION: &[u8] = include_bytes!("../testdata/session/binlog.1");
pub(super) const ROTATION: [(u64, &[u8]); 2] =
    [(5, include_bytes!("../testdata/rotation/binlog.5")), (6, include_bytes!("../testdata/rotation/binlog.6"))];
pub(super) const RESTART: [(u64, &[u8]); 2] =
    [(1, include_bytes!("../testdata/restart/binlog.1")), (2, include_bytes!("../testdata/restart/binlog.2"))];

/// Every fixture file.
pub(super) fn all_files() -> Vec<&'static [u8]> {
    let mut files = vec![SESSION];
    files.extend(ROTATION.iter().chain(&RESTART).map(|(_, bytes)| *bytes));
    files
}

#[test]
fn every_fixture_file_reads_to_a_clean_end() {
    let ends: Vec<End> = all_files().into_iter().map(|bytes| read_file(bytes).end).collect();
    // Files rotated away are cut to their records (binlog.5 of rotation);
    // the others end in the preallocated zeros.
    let expected = [2445, 4081, 1351, 494, 270].map(|at| End::Clean { at });
    assert_eq!(ends, expected);
}

#[test]
fn session_records_decode_field_by_field() {
    let read = read_file(SESSION);
    assert_eq!(read.version, Some(Version::V7));
    assert_eq!(read.records.len(), 22);
    let first = &read.records[0];
    assert_eq!((first.offset, first.len, first.id), (4, 95, 1));
    assert_eq!(first.tube, Some(tube("tA")));
    assert_eq!((first.pri, first.delay_ns, first.ttr_ns, first.body_size), (10, 0, 30 * SECOND, 9));
    assert_eq!((first.state, first.body), (State::Ready, Some(&b"job-one"[..])));
    let delayed = &read.records[1];
    assert_eq!((delayed.id, delayed.state, delayed.delay_ns), (2, State::Delayed, 3600 * SECOND));
    assert_eq!(delayed.deadline_at_ns - delayed.created_at_ns, 3600 * SECOND, "put's time plus its delay");
    let delete = &read.records[3];
    assert_eq!(
        (delete.offset, delete.len, delete.id, delete.state, delete.tube.clone()),
        (295, 84, 3, State::Deleted, None)
    );
    let bury = &read.records[5];
    assert_eq!((bury.offset, bury.id, bury.pri, bury.state, bury.body), (474, 4, 99, State::Buried, None));
    assert_eq!(bury.counts, JobCounts { reserves: 1, timeouts: 0, releases: 0, buries: 1, kicks: 0 });
    let binary = read.records.iter().find(|r| r.id == 12).unwrap();
    assert_eq!(binary.body, Some(&b"a\r\nb\x00c\xff\r\n"[..]), "CRLF inside a body is the body's");
    let long = read.records.iter().find(|r| r.id == 13).unwrap();
    assert_eq!(long.tube.as_ref().map(|t| t.as_str().len()), Some(200));
    assert_eq!((long.pri, long.ttr_ns), (u32::MAX, i64::from(u32::MAX) * SECOND));
}

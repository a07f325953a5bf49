//! Reading one file: the layout of both versions, and where and how the
//! records end.

use super::fixtures::SESSION;
use super::*;

fn records_of(bytes: &[u8]) -> Vec<u64> {
    read_file(bytes).records.iter().map(|r| r.id).collect()
}

fn is_torn_at(end: &End, at: usize) -> bool {
    matches!(end, End::Torn { at: a, .. } if *a == at)
}

fn is_damaged_at(end: &End, at: usize) -> bool {
    matches!(end, End::Damaged { at: a, .. } if *a == at)
}

#[test]
fn the_version_is_the_first_four_bytes() {
    assert_eq!(version_of(&[7, 0, 0, 0]), Some(Version::V7));
    assert_eq!(version_of(&[5, 0, 0, 0, 9]), Some(Version::V5));
    assert_eq!(version_of(&[6, 0, 0, 0]), None);
    assert_eq!(version_of(&[7, 0, 0, 1]), None);
    assert_eq!(version_of(&[7, 0, 0]), None);
    assert_eq!(version_of(SESSION), Some(Version::V7));
}

#[test]
fn a_file_without_a_known_version_has_no_records() {
    let read = read_file(&[6, 0, 0, 0, 1, 2, 3]);
    assert_eq!((read.version, read.records.len()), (None, 0));
    assert!(is_damaged_at(&read.end, 0), "{:?}", read.end);
    assert!(is_damaged_at(&read_file(&[7, 0]).end, 0));
    // Zeros only: beanstalkd was killed while it preallocated the file,
    // before it wrote the version.
    for zeros in [0, 2, 4, 4096] {
        let bytes = vec![0; zeros];
        let read = read_file(&bytes);
        assert_eq!(read.version, None);
        assert!(is_torn_at(&read.end, 0), "{zeros} zeros: {:?}", read.end);
    }
}

#[test]
fn records_end_at_the_zeros_or_at_the_end_of_the_file() {
    let records = [Rec::full(1, "a", b"x"), Rec::short(1, State::Buried)];
    assert_eq!(read_file(&file(Version::V7, &[], 0)).end, End::Clean { at: 4 });
    assert_eq!(read_file(&file(Version::V7, &[], 4092)).end, End::Clean { at: 4 });
    assert_eq!(read_file(&file(Version::V7, &records, 0)).end, End::Clean { at: 4 + 88 + 84 });
    // Fewer zero bytes than a record: still the zeros of the tail.
    assert_eq!(read_file(&file(Version::V7, &records, 3)).end, End::Clean { at: 176 });
    assert_eq!(records_of(&file(Version::V7, &records, 100)), [1, 1]);
}

#[test]
fn a_version_7_record_is_read_field_by_field_padding_ignored() {
    let full = Rec {
        pri: 77,
        delay_ns: 5 * SECOND,
        ttr_ns: 120 * SECOND,
        created_at_ns: 1_700_000_000 * SECOND + 123,
        ..Rec::full(42, "jobs.$x_(1)", b"hello")
    }
    .state(State::Delayed)
    .deadline(1_700_000_005 * SECOND)
    .counts(1, 2, 3, 4, 5);
    let short = Rec::short(42, State::Buried).pri(9).counts(6, 7, 8, 9, 10);
    let bytes = v7(&[full, short]);
    let read = read_file(&bytes);
    assert_eq!(read.end, End::Clean { at: 4 + (4 + 11 + 80 + 7) + 84 });
    let [full, short] = &read.records[..] else { panic!("{:?}", read.records) };
    assert_eq!((full.offset, full.len, full.is_full()), (4, 4 + 11 + 80 + 7, true));
    assert_eq!(full.tube, Some(tube("jobs.$x_(1)")));
    assert_eq!((full.id, full.pri, full.delay_ns, full.ttr_ns), (42, 77, 5 * SECOND, 120 * SECOND));
    assert_eq!((full.created_at_ns, full.deadline_at_ns), (1_700_000_000 * SECOND + 123, 1_700_000_005 * SECOND));
    assert_eq!(full.counts, JobCounts { reserves: 1, timeouts: 2, releases: 3, buries: 4, kicks: 5 });
    assert_eq!((full.state, full.body_size, full.body), (State::Delayed, 7, Some(&b"hello"[..])));
    assert_eq!((short.offset, short.len, short.is_full(), short.tube.clone()), (106, 84, false, None));
    assert_eq!((short.id, short.pri, short.state, short.body), (42, 9, State::Buried, None));
    assert_eq!(short.counts, JobCounts { reserves: 6, timeouts: 7, releases: 8, buries: 9, kicks: 10 });
}

#[test]
fn a_version_5_record_has_a_long_name_length_and_times_in_microseconds() {
    let full = Rec {
        delay_ns: 30 * SECOND,
        ttr_ns: 60 * SECOND,
        created_at_ns: 1_300_000_000_123_456_000,
        deadline_at_ns: 1_300_000_030_123_456_000,
        ..Rec::full(7, "old", b"from 1.4")
    }
    .state(State::Delayed);
    let short = Rec::short(7, State::Buried).counts(1, 0, 0, 1, 0);
    let bytes = file(Version::V5, &[full, short], 200);
    // A record is 8 + name + 77 + body bytes.
    assert_eq!(bytes.len(), 4 + (8 + 3 + 77 + 10) + (8 + 77) + 200);
    let read = read_file(&bytes);
    assert_eq!(read.version, Some(Version::V5));
    assert_eq!(read.end, End::Clean { at: 4 + 98 + 85 });
    let [full, short] = &read.records[..] else { panic!("{:?}", read.records) };
    assert_eq!((full.len, full.tube.clone(), full.body), (98, Some(tube("old")), Some(&b"from 1.4"[..])));
    assert_eq!((full.delay_ns, full.ttr_ns), (30 * SECOND, 60 * SECOND), "µs became ns");
    assert_eq!((full.created_at_ns, full.deadline_at_ns), (1_300_000_000_123_456_000, 1_300_000_030_123_456_000));
    assert_eq!((short.offset, short.len, short.state, short.counts.buries), (102, 85, State::Buried, 1));
    let imported = import(&[(1, &bytes)]);
    assert!(matches!(imported.jobs[0].state, ImportedState::Buried { .. }));
    assert_eq!(imported.bodies.get(imported.jobs[0].body), b"from 1.4");
}

#[test]
fn a_version_5_time_too_large_for_nanoseconds_is_invalid() {
    let mut bytes = file(Version::V5, &[Rec::full(1, "a", b"x"), Rec::full(2, "a", b"y")], 0);
    // The first record's created_at (at 8 + 1 + 40): u64::MAX µs.
    bytes[4 + 9 + 40..4 + 9 + 48].copy_from_slice(&u64::MAX.to_le_bytes());
    let read = read_file(&bytes);
    assert!(read.records.is_empty());
    assert!(is_damaged_at(&read.end, 4), "{:?}", read.end);
}

/// Every record of `bytes` cut at every offset inside it: a record cut short
/// is torn, unless what is left of it is zeros (part of a short record's
/// name length), which reads as the clean end before it.
fn torn_at_every_offset(bytes: &[u8]) {
    let records = read_file(bytes).records;
    assert!(!records.is_empty());
    for (i, record) in records.iter().enumerate() {
        for cut in record.offset + 1..record.offset + record.len {
            let read = read_file(&bytes[..cut]);
            assert_eq!(read.records[..], records[..i], "cut at {cut}");
            if bytes[record.offset..cut].iter().all(|&b| b == 0) {
                assert_eq!(read.end, End::Clean { at: record.offset }, "cut at {cut}");
            } else {
                assert!(is_torn_at(&read.end, record.offset), "cut at {cut}: {:?}", read.end);
            }
        }
    }
}

#[test]
fn a_record_cut_short_anywhere_is_torn() {
    torn_at_every_offset(SESSION);
    let records = [Rec::full(1, "tube", b"body"), Rec::short(1, State::Buried), Rec::full(2, "t", b"")];
    torn_at_every_offset(&file(Version::V7, &records, 0));
    torn_at_every_offset(&file(Version::V5, &records, 0));
}

#[test]
fn a_crash_between_the_writes_of_a_record_leaves_it_torn() {
    // beanstalkd writes a full record in four write() calls into zeros: the
    // name length, the name, the Jobrec, the body. Killed after any of the
    // first three, the rest of the record is zeros.
    for version in [Version::V7, Version::V5] {
        let last = Rec::full(2, "tube", b"body");
        let good = file(version, &[Rec::full(1, "tube", b"first")], 0);
        let whole = last.encode(version);
        let name_len_bytes = if version == Version::V7 { 4 } else { 8 };
        let jobrec_len = if version == Version::V7 { 80 } else { 77 };
        for written in [name_len_bytes, name_len_bytes + 4, name_len_bytes + 4 + jobrec_len] {
            let mut bytes = good.clone();
            bytes.extend_from_slice(&whole[..written]);
            bytes.resize(bytes.len() + 4096, 0);
            let read = read_file(&bytes);
            assert_eq!(records_of(&bytes), [1], "{version:?}, {written} bytes written");
            assert!(is_torn_at(&read.end, good.len()), "{version:?}, {written} bytes written: {:?}", read.end);
        }
    }
}

/// Each way a record can be invalid, as a change to a valid full record,
/// and whether, as the last record, it reads as torn: only zeros after the
/// field at fault. A crash leaves zeros where the writes it cut off would
/// have gone; a full, wrong field with more of the record after it is not
/// what a crash leaves.
fn invalid_records() -> Vec<(&'static str, Rec, bool)> {
    let good = || Rec::full(9, "tube", b"body");
    vec![
        ("negative name length", Rec { name_len: Some(-1), ..good() }, false),
        ("name length 201", Rec { name_len: Some(201), tube: Some("t".repeat(201)), ..good() }, false),
        ("name starting with -", Rec::full(9, "-tube", b"body"), false),
        ("name with a space", Rec::full(9, "tu be", b"body"), false),
        ("name with a NUL", Rec::full(9, "tu\0be", b"body"), false),
        ("id 0", Rec { id: 0, ..good() }, false),
        // fuzz/regressions/beanstalkd_binlog/job-id-u64-max: the next id
        // overflowed when the engine restored the job.
        ("id 2^63", Rec { id: 1 << 63, ..good() }, false),
        ("id 2^64 - 1", Rec { id: u64::MAX, ..good() }, false),
        ("state 5 (Copy)", Rec { state: 5, ..good() }, false),
        ("state 255", Rec { state: 255, ..good() }, false),
        ("negative delay", Rec { delay_ns: -1, ..good() }, false),
        ("negative ttr", Rec { ttr_ns: -SECOND, ..good() }, false),
        ("body size 1", Rec { body_size: Some(1), raw_body: Some(b"\n".to_vec()), ..good() }, false),
        ("body size 0", Rec { body_size: Some(0), raw_body: Some(vec![]), ..good() }, true),
        ("negative body size", Rec { body_size: Some(-6), raw_body: Some(vec![]), ..good() }, true),
        ("body without CRLF", Rec { raw_body: Some(b"body\n\n".to_vec()), ..good() }, true),
        ("body ending in LF CR", Rec { raw_body: Some(b"body\n\r".to_vec()), ..good() }, true),
    ]
}

#[test]
fn an_invalid_record_followed_by_records_is_damage() {
    for version in [Version::V7, Version::V5] {
        for (what, bad, _) in invalid_records() {
            let before = Rec::full(1, "tube", b"before");
            let bytes = file(version, &[before.clone(), bad, Rec::full(3, "tube", b"after")], 100);
            let read = read_file(&bytes);
            assert_eq!(records_of(&bytes), [1], "{version:?}: {what}");
            let at = 4 + before.encode(version).len();
            assert!(is_damaged_at(&read.end, at), "{version:?}: {what}: {:?}", read.end);
        }
    }
}

#[test]
fn an_invalid_last_record_is_torn_if_only_zeros_follow_its_fault() {
    for version in [Version::V7, Version::V5] {
        for (what, bad, torn) in invalid_records() {
            let before = Rec::full(1, "tube", b"before");
            let bytes = file(version, &[before.clone(), bad], 100);
            let read = read_file(&bytes);
            assert_eq!(records_of(&bytes), [1], "{version:?}: {what}");
            let at = 4 + before.encode(version).len();
            assert_eq!(is_torn_at(&read.end, at), torn, "{version:?}: {what}: {:?}", read.end);
            assert_eq!(is_damaged_at(&read.end, at), !torn, "{version:?}: {what}: {:?}", read.end);
        }
    }
}

#[test]
fn a_short_record_carries_the_jobs_body_size_and_ttr() {
    // beanstalkd reads no body after a short record, but the record is the
    // job's whole struct: its body size (2 or more, with the CRLF) and ttr
    // (1 s or more). A struct whose end a crash left as zeros fails them.
    for bad in [
        Rec { body_size: Some(-1), ..Rec::short(1, State::Buried) },
        Rec { ttr_ns: 0, ..Rec::short(1, State::Deleted) },
    ] {
        let bytes = v7(&[Rec::full(1, "t", b"x"), bad.clone()]);
        let read = read_file(&bytes);
        assert_eq!(read.records.len(), 1, "{bad:?}");
        assert!(matches!(read.end, End::Torn { .. }), "{bad:?}: {:?}", read.end);
    }
}

#[test]
fn a_full_record_in_state_deleted_is_read() {
    // beanstalkd never writes one (a delete is a short record), and its
    // reader would not skip the body; read here as a whole record, it
    // deletes its job like a short one.
    let bytes = v7(&[Rec::full(1, "t", b"x"), Rec::full(1, "t", b"x").state(State::Deleted), Rec::full(2, "t", b"y")]);
    assert_eq!(records_of(&bytes), [1, 1, 2]);
    let imported = import(&[(1, &bytes)]);
    assert_eq!(imported.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [2]);
}

#[test]
fn the_longest_name_and_an_empty_body_are_valid() {
    let name = "n".repeat(200);
    let bytes = v7(&[Rec::full(1, &name, b""), Rec::full(2, "x", b"\r\n")]);
    let read = read_file(&bytes);
    assert_eq!(read.records[0].tube.as_ref().map(|t| t.as_str()), Some(&name[..]));
    assert_eq!((read.records[0].body, read.records[0].body_size), (Some(&b""[..]), 2));
    assert_eq!(read.records[1].body, Some(&b"\r\n"[..]), "a body may itself end in CRLF");
}

#[test]
fn records_of_a_run_share_one_tube_name() {
    let bytes = v7(&[Rec::full(1, "t", b"x"), Rec::full(2, "t", b"y")]);
    let read = read_file(&bytes);
    let (a, b) = (read.records[0].tube.as_ref().unwrap(), read.records[1].tube.as_ref().unwrap());
    assert!(std::ptr::eq(a.as_str(), b.as_str()));
}

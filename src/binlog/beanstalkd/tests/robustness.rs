//! Any bytes at all: random ones, and real files flipped, cut and given huge
//! lengths. Reading and replaying never panic, and what comes back is
//! consistent with the bytes: records tile the file from its version on,
//! a clean end has only zeros after it, and nothing is sized by a length
//! field.

use super::fixtures::{ROTATION, all_files};
use super::rng::Rng;
use super::*;

/// The smallest record: a version 7 short record.
const MIN_RECORD_LEN: usize = 84;

/// Reads and replays `bytes`, and checks what came back against them.
fn read_and_replay(bytes: &[u8]) -> FileRead<'_> {
    let read = read_file(bytes);
    let mut at = if read.version.is_some() { FILE_VERSION_LEN } else { 0 };
    for record in &read.records {
        assert_eq!(record.offset, at, "records follow one another");
        assert!(record.len >= MIN_RECORD_LEN);
        assert!(record.id != 0);
        if let Some(body) = record.body {
            assert_eq!(body.len() + 2, record.body_size as usize);
        }
        at += record.len;
    }
    assert!(at <= bytes.len());
    assert_eq!(read.end.at(), at, "the end is where the records stop: {:?}", read.end);
    assert!(read.records.len() <= bytes.len() / MIN_RECORD_LEN, "one record per 84 bytes at most");
    if let End::Clean { at } = read.end {
        assert!(bytes[at..].iter().all(|&b| b == 0), "only zeros after a clean end");
    }
    let mut replay = Replay::new();
    replay.apply(1, &read);
    replay.apply(2, &read);
    let imported = replay.finish();
    for job in &imported.jobs {
        assert!(job.id < imported.next_id || imported.next_id == u64::MAX);
        let _ = imported.bodies.get(job.body);
    }
    let c = imported.counts;
    assert_eq!((c.ready + c.delayed + c.buried) as usize, imported.jobs.len());
    read
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..20_000 {
        let len = rng.index(600);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Mostly a valid version, so the records are what gets read.
        match rng.below(4) {
            0 | 1 if len >= 4 => bytes[..4].copy_from_slice(&7i32.to_le_bytes()),
            2 if len >= 4 => bytes[..4].copy_from_slice(&5i32.to_le_bytes()),
            _ => {}
        }
        read_and_replay(&bytes);
    }
}

#[test]
fn random_records_with_random_damage_never_panic() {
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..3_000 {
        let version = if rng.below(4) == 0 { Version::V5 } else { Version::V7 };
        let records: Vec<Rec> = (0..rng.index(8))
            .map(|_| {
                let id = 1 + rng.below(6);
                let state = State::from_byte(rng.below(5) as u8).unwrap();
                match rng.below(2) {
                    0 => Rec::full(id, ["a", "b"][rng.index(2)], &vec![b'x'; rng.index(40)]).state(state),
                    _ => Rec::short(id, state),
                }
            })
            .collect();
        let mut bytes = file(version, &records, rng.index(200));
        for _ in 0..rng.below(3) {
            let at = rng.index(bytes.len());
            bytes[at] = rng.next() as u8;
        }
        read_and_replay(&bytes);
    }
}

#[test]
fn real_files_with_any_byte_flipped_never_panic() {
    let mut rng = Rng(0x5eed_0003);
    for file in all_files() {
        let used = read_file(file).end.at();
        for at in 0..(used + 8).min(file.len()) {
            for flip in [0xFF, 1 << rng.below(8), rng.next() as u8 | 1] {
                let mut bytes = file.to_vec();
                bytes[at] ^= flip;
                read_and_replay(&bytes);
            }
        }
    }
}

#[test]
fn real_files_cut_anywhere_never_panic() {
    for file in all_files() {
        for cut in 0..=file.len() {
            read_and_replay(&file[..cut]);
        }
    }
}

#[test]
fn huge_and_negative_lengths_are_bad_records_not_allocations() {
    let name_lens = [i32::MAX, i32::MIN, -1, 201, 200, 1, 0];
    let body_sizes = [i32::MAX, i32::MAX - 1, i32::MIN, -1, 0, 1, 2, 3, 1 << 30];
    for file in all_files() {
        for record in read_file(file).records {
            for name_len in name_lens {
                let mut bytes = file.to_vec();
                bytes[record.offset..record.offset + 4].copy_from_slice(&name_len.to_le_bytes());
                read_and_replay(&bytes);
            }
            let jobrec_at = record.offset + 4 + record.tube.as_ref().map_or(0, |t| t.as_str().len());
            for body_size in body_sizes {
                let mut bytes = file.to_vec();
                bytes[jobrec_at + 32..jobrec_at + 36].copy_from_slice(&body_size.to_le_bytes());
                let read = read_and_replay(&bytes);
                if record.is_full() && (body_size as usize) > file.len() {
                    assert_eq!(read.end.at(), record.offset, "the record with the huge body is where reading stops");
                }
            }
        }
    }
    // A version 5 name length is 8 bytes: beyond any usize conversion too.
    for name_len in [u64::MAX, 1 << 63, 1 << 32, 201] {
        let mut bytes = file(Version::V5, &[Rec::full(1, "t", b"x")], 0);
        bytes[4..12].copy_from_slice(&name_len.to_le_bytes());
        assert!(matches!(read_and_replay(&bytes).end, End::Damaged { at: 4, .. }));
    }
}

#[test]
fn many_files_of_random_records_replay_consistently() {
    // The replay's job table against a model: the last record about each
    // id decides, over files that delete, bury and rewrite jobs at random.
    let mut rng = Rng(0x5eed_0004);
    for _ in 0..200 {
        let mut model: std::collections::BTreeMap<u64, (State, Vec<u8>)> = Default::default();
        let mut files = Vec::new();
        for _ in 0..1 + rng.index(4) {
            let mut records = Vec::new();
            for _ in 0..rng.index(30) {
                let id = 1 + rng.below(12);
                let state = State::from_byte(rng.below(5) as u8).unwrap();
                if !model.contains_key(&id) || rng.below(3) == 0 {
                    let body: Vec<u8> = (0..rng.index(50)).map(|_| rng.next() as u8).collect();
                    records.push(Rec::full(id, "t", &body).state(state));
                    model.insert(id, (state, body));
                } else {
                    records.push(Rec::short(id, state));
                    model.get_mut(&id).unwrap().0 = state;
                }
                if state == State::Deleted {
                    model.remove(&id);
                }
            }
            files.push(v7(&records));
        }
        let files: Vec<(u64, &[u8])> = files.iter().enumerate().map(|(i, f)| (i as u64 + 1, &f[..])).collect();
        let imported = import(&files);
        assert_eq!(imported.jobs.len(), model.len());
        for (id, (state, body_bytes)) in &model {
            let job = job(&imported, *id);
            let expected = match state {
                State::Buried => "buried",
                State::Delayed => "delayed",
                _ => "ready",
            };
            let got = match job.state {
                ImportedState::Buried { .. } => "buried",
                ImportedState::Delayed { .. } => "delayed",
                ImportedState::Ready => "ready",
            };
            assert_eq!(got, expected, "job {id}");
            assert_eq!(body(&imported, *id), &body_bytes[..], "job {id}");
        }
    }
}

#[test]
fn the_reader_allocates_nothing_by_a_length_it_read() {
    // Reading allocates records (one per 84 bytes of file, checked above),
    // tube names (at most 200 bytes, checked before), and a message for the
    // end. No buffer is sized by anything: a length read from the file only
    // ever bounds a slice of the file's own bytes.
    let source = include_str!("../read.rs");
    for sizing in ["with_capacity", "vec![", "resize(", "reserve(", ".repeat(", "Vec::from("] {
        assert!(!source.contains(sizing), "read.rs uses {sizing}");
    }
    // A body size of 2^31 - 1 in a small file is a bad record, read in no
    // time and with no allocation to speak of.
    let mut bytes = v7(&[Rec::full(1, "t", b"x")]);
    bytes[4 + 4 + 1 + 32..4 + 4 + 1 + 36].copy_from_slice(&i32::MAX.to_le_bytes());
    assert!(matches!(read_file(&bytes).end, End::Torn { at: 4, .. } | End::Damaged { at: 4, .. }));
}

#[test]
fn a_rotated_file_cut_inside_its_last_record_is_torn() {
    // binlog.5 was cut to its records when beanstalkd moved to binlog.6: no
    // zeros after its last record, which is a short one.
    let (_, file) = ROTATION[0];
    let read = read_file(file);
    let last = read.records.last().unwrap();
    assert_eq!(last.offset + last.len, file.len());
    assert!(matches!(read_file(&file[..file.len() - 1]).end, End::Torn { at, .. } if at == last.offset));
}

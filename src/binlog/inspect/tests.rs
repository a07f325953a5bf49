//! `inspect` on directories built here from the formats' own writers: what
//! it counts, what it calls damage and what not, and the JSON's shape.
//! (tests/binlog/inspect.rs runs the binary on files the servers wrote.)

use std::cell::Cell;
use std::fs;
use std::path::Path;
use std::rc::Rc;

use tempfile::TempDir;

use super::*;
use crate::binlog::beanstalkd::{ExportJob, State, V7Writer, full_record_len, read_file};
use crate::binlog::record::{FileEncoder, Format, FullJob, HEADER_LEN, Header, JobUpdate, LoggedState, Record};
use crate::engine::JobCounts;
use crate::protocol::TubeName;

const FILE_SIZE: usize = 4096;

fn update(id: u64, state: LoggedState) -> JobUpdate {
    JobUpdate { id, pri: 1, state, delay: 0, ready_at: 0, reserves: 0, timeouts: 0, releases: 0, buries: 0, kicks: 0 }
}

fn job(id: u64, tube: &str, body: &'static [u8]) -> Record<&'static [u8]> {
    Record::Job(FullJob {
        update: update(id, LoggedState::Ready),
        tube: TubeName::new(tube.as_bytes()).unwrap(),
        ttr: 1,
        created_at: 0,
        body,
    })
}

/// A sprout file as sprout writes it now: header, records, zeros to
/// `FILE_SIZE`; and where each record starts.
fn sprout_file(seq: u64, next_id: u64, records: &[Record<&[u8]>]) -> (Vec<u8>, Vec<usize>) {
    sprout_file_in(Format::new_file(), seq, next_id, records)
}

/// [`sprout_file`] in `format`.
fn sprout_file_in(format: Format, seq: u64, next_id: u64, records: &[Record<&[u8]>]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Header { seq, next_id, format }.encode().to_vec();
    let mut offsets = Vec::new();
    let mut encoder = FileEncoder::new(format);
    for record in records {
        offsets.push(bytes.len());
        encoder.append(record, u64::MAX, &mut bytes).unwrap();
    }
    bytes.resize(FILE_SIZE.max(bytes.len()), 0);
    (bytes, offsets)
}

/// A beanstalkd file of full records of ready jobs, then `short` records
/// `(id, state)`, zeros to `FILE_SIZE`.
fn beanstalkd_file(full: &[(u64, &str, &[u8])], short: &[(u64, State)]) -> Vec<u8> {
    let mut writer = V7Writer::new();
    for &(id, tube, body) in full {
        let job = ExportJob {
            id,
            tube,
            pri: 1,
            delay_ns: 0,
            ttr_ns: 1_000_000_000,
            created_at_ns: 0,
            deadline_at_ns: 0,
            counts: JobCounts::default(),
            state: State::Ready,
            body,
        };
        writer.push_full(&job).unwrap();
    }
    let mut bytes = writer.into_bytes();
    for &(id, state) in short {
        // No name, then the 80-byte Jobrec: id at 0, the ttr at 24 (1 s, as
        // beanstalkd writes at least), the body size at 32 (with its CRLF),
        // the state at 76.
        let mut jobrec = [0u8; 80];
        jobrec[..8].copy_from_slice(&id.to_le_bytes());
        jobrec[24..32].copy_from_slice(&1_000_000_000i64.to_le_bytes());
        jobrec[32..36].copy_from_slice(&2i32.to_le_bytes());
        jobrec[76] = state.byte();
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&jobrec);
    }
    bytes.resize(FILE_SIZE, 0);
    bytes
}

fn write(dir: &Path, seq: u64, bytes: &[u8]) {
    fs::write(dir.join(format!("binlog.{seq}")), bytes).unwrap();
}

fn damage_at(report: &Report) -> Vec<(Option<&str>, Option<u64>)> {
    report.damage.iter().map(|d| (d.file.as_deref(), d.offset)).collect()
}

/// Jobs 1 to 3 in two tubes; 2 buried, 3 logged reserved (by
/// `reserve-job`), 1 deleted; then a spare file.
fn sprout_dir() -> (TempDir, Vec<usize>) {
    sprout_dir_in(Format::new_file())
}

/// [`sprout_dir`], its first file in `format`.
fn sprout_dir_in(format: Format) -> (TempDir, Vec<usize>) {
    let dir = TempDir::new().unwrap();
    let records = [
        job(1, "a", b"one"),
        job(2, "b", b"two"),
        Record::State(update(2, LoggedState::Buried)),
        job(3, "a", b"three"),
        Record::State(update(3, LoggedState::Reserved)),
        Record::Delete(1),
        Record::Padding(10),
    ];
    let (bytes, offsets) = sprout_file_in(format, 1, 1, &records);
    write(dir.path(), 1, &bytes);
    write(dir.path(), 2, &sprout_file(2, 40, &[]).0);
    (dir, offsets)
}

/// Padding of 10 bytes: a frame, a type byte, the filler (either format).
const PADDING_LEN: usize = 8 + 1 + 10;

#[test]
fn sprout_files_are_counted_and_replayed_in_either_format() {
    for (format, described) in [(Format::V1, FileFormat::SproutV1), (Format::new_file(), FileFormat::SproutV2)] {
        sprout_files_are_counted_and_replayed(format, described);
    }
}

fn sprout_files_are_counted_and_replayed(format: Format, described: FileFormat) {
    let (dir, offsets) = sprout_dir_in(format);
    let report = inspect(dir.path()).unwrap();
    assert_eq!(report.format, DirFormat::Sprout);
    assert!(report.clean && report.damage.is_empty(), "{report}");
    assert_eq!(report.exit_status(), EXIT_CLEAN);
    let [first, spare] = &report.files[..] else { panic!("two files: {report}") };
    assert_eq!(first.format, described);
    let version = if described == FileFormat::SproutV1 { 1 } else { 2 };
    assert!(report.to_string().contains(&format!("sprout's binlog (format version {version})")), "{report}");
    assert_eq!(first.records, RecordCounts::Sprout { job: 3, state: 2, delete: 1, padding: 1 });
    assert_eq!(first.records_end as usize, offsets[6] + PADDING_LEN);
    assert_eq!((spare.format, spare.records_end), (FileFormat::Spare, HEADER_LEN as u64));

    let live = &report.live;
    assert_eq!(live.all, StateCounts { total: 2, ready: 1, delayed: 0, buried: 1, reserved: 1 });
    assert_eq!(live.tubes["a"], StateCounts { total: 1, ready: 1, delayed: 0, buried: 0, reserved: 1 });
    assert_eq!(live.tubes["b"], StateCounts { total: 1, ready: 0, delayed: 0, buried: 1, reserved: 0 });
    assert_eq!(report.next_id, 40, "the spare's header says so");

    // The full records of jobs 2 and 3, as long as the file has them.
    let records = (offsets[2] - offsets[1] + offsets[4] - offsets[3]) as u64;
    let files = 2 * FILE_SIZE as u64;
    assert_eq!(report.space, Space::new(files, HEADER_LEN as u64 + records, FILE_SIZE as u64));
    assert_eq!(report.space.reclaimable_bytes, files - HEADER_LEN as u64 - records - FILE_SIZE as u64);
}

#[test]
fn a_bad_record_with_records_after_it_is_damage_and_skipped() {
    let (dir, offsets) = sprout_dir();
    let path = dir.path().join("binlog.1");
    let mut bytes = fs::read(&path).unwrap();
    // Job 2's body: its record fails the checksum, the state record after
    // it is valid.
    bytes[offsets[2] - 2] ^= 0x20;
    fs::write(&path, &bytes).unwrap();
    let report = inspect(dir.path()).unwrap();
    assert!(!report.clean);
    assert_eq!(report.exit_status(), EXIT_DAMAGED);
    assert_eq!(damage_at(&report), [(Some("binlog.1"), Some(offsets[1] as u64))]);
    assert!(report.damage[0].reason.contains("job 2"), "{}", report.damage[0].reason);
    // As --skip-damaged-records reads it: job 2 is gone.
    assert_eq!(report.live.all.total, 1);
    assert_eq!(fs::read(&path).unwrap(), bytes, "nothing repaired");
}

#[test]
fn a_torn_tail_is_no_damage_unless_a_later_file_has_records() {
    let (dir, offsets) = sprout_dir();
    let path = dir.path().join("binlog.1");
    let mut bytes = fs::read(&path).unwrap();
    // The padding, the last record, garbled.
    let end = offsets[6] + PADDING_LEN;
    bytes[end - 4..end].fill(0xff);
    fs::write(&path, &bytes).unwrap();
    let report = inspect(dir.path()).unwrap();
    assert!(report.clean, "{report}");
    let torn = report.files[0].torn_tail.as_ref().expect("a torn tail");
    assert_eq!((torn.offset, report.files[0].records_end), (offsets[6] as u64, offsets[6] as u64));
    assert!(report.to_string().contains(&format!("torn tail at offset {}", offsets[6])), "{report}");

    // A record in the next file: then it was no write in progress.
    write(dir.path(), 2, &sprout_file(2, 40, &[job(9, "c", b"nine")]).0);
    let report = inspect(dir.path()).unwrap();
    assert_eq!(damage_at(&report), [(Some("binlog.1"), Some(offsets[6] as u64))]);
    assert!(report.files[0].torn_tail.is_none());
}

#[test]
fn bad_headers_are_damage() {
    let (dir, _) = sprout_dir();
    write(dir.path(), 3, &sprout_file(4, 40, &[]).0);
    let mut bytes = sprout_file(5, 40, &[job(9, "c", b"nine")]).0;
    bytes[13] ^= 1;
    write(dir.path(), 5, &bytes);
    let report = inspect(dir.path()).unwrap();
    assert_eq!(damage_at(&report), [(Some("binlog.3"), Some(0)), (Some("binlog.5"), Some(0))]);
    assert!(report.damage[0].reason.contains("file 4"), "{}", report.damage[0].reason);
    assert!(report.damage[1].reason.contains("checksum"), "{}", report.damage[1].reason);
    assert_eq!(report.live.all.total, 2, "files with bad headers are skipped whole");
}

#[test]
fn files_of_zeros_are_damage_only_before_sprout_files_with_records() {
    let (dir, _) = sprout_dir();
    write(dir.path(), 3, &[0; 100]);
    let report = inspect(dir.path()).unwrap();
    assert!(report.clean, "{report}");
    assert_eq!(report.files[2].format, FileFormat::Empty);
    assert!(report.notes.iter().any(|n| n.starts_with("binlog.3: 100 zero bytes")), "{:?}", report.notes);

    write(dir.path(), 4, &sprout_file(4, 40, &[job(9, "c", b"nine")]).0);
    let report = inspect(dir.path()).unwrap();
    assert_eq!(damage_at(&report), [(Some("binlog.3"), Some(0))]);

    let theirs = TempDir::new().unwrap();
    write(theirs.path(), 1, &[]);
    write(theirs.path(), 2, &beanstalkd_file(&[(1, "t", b"x")], &[]));
    let report = inspect(theirs.path()).unwrap();
    assert!(report.clean, "a takeover moves it aside: {report}");
}

#[test]
fn unknown_files_and_mixed_formats_are_damage() {
    let (dir, _) = sprout_dir();
    write(dir.path(), 3, b"hello, world");
    let report = inspect(dir.path()).unwrap();
    assert_eq!(damage_at(&report), [(Some("binlog.3"), Some(0))]);
    assert_eq!(report.files[2].format, FileFormat::Unknown);
    assert!(report.damage[0].reason.contains("68 65 6c 6c 6f"), "{}", report.damage[0].reason);

    fs::remove_file(dir.path().join("binlog.3")).unwrap();
    write(dir.path(), 3, &beanstalkd_file(&[(7, "t", b"x")], &[]));
    let report = inspect(dir.path()).unwrap();
    assert_eq!(report.format, DirFormat::Mixed);
    assert_eq!(damage_at(&report), [(None, None)]);
    assert_eq!(report.live.all.total, 3, "both kinds' jobs");
}

#[test]
fn beanstalkd_files_are_counted_and_replayed() {
    let dir = TempDir::new().unwrap();
    let first = beanstalkd_file(&[(1, "t", b"one"), (2, "t", b"two"), (3, "u", b"three")], &[(1, State::Deleted)]);
    // A bad record with only zeros after it in the first file: a crash,
    // and beanstalkd went on in the next.
    let end = read_file(&first).end.at();
    write(dir.path(), 1, &with_name_len_at(&first, end, 300));
    write(dir.path(), 2, &beanstalkd_file(&[], &[(2, State::Buried), (3, State::Reserved)]));
    let report = inspect(dir.path()).unwrap();
    assert_eq!(report.format, DirFormat::Beanstalkd);
    assert!(report.clean, "{report}");
    assert_eq!(report.files[0].format, FileFormat::BeanstalkdV7);
    assert_eq!(report.files[0].records, RecordCounts::Beanstalkd { full: 3, short: 0, delete: 1 });
    assert_eq!(report.files[1].records, RecordCounts::Beanstalkd { full: 0, short: 2, delete: 0 });
    let torn = report.files[0].torn_tail.as_ref().expect("a torn record");
    assert_eq!(torn.offset, end as u64);
    assert!(torn.reason.contains("newer file"), "{}", torn.reason);
    assert_eq!(report.live.all, StateCounts { total: 2, ready: 1, delayed: 0, buried: 1, reserved: 1 });
    assert_eq!(report.next_id, 4);
    let records = 4 + full_record_len(1, 3) + full_record_len(1, 5);
    assert_eq!(report.space.live_records_bytes, records as u64);

    // Bytes after the bad record: damage, and the rest of the file unread.
    let mut damaged = with_name_len_at(&first, end, 300);
    damaged[end + 100] = 1;
    write(dir.path(), 1, &damaged);
    let report = inspect(dir.path()).unwrap();
    assert_eq!(damage_at(&report), [(Some("binlog.1"), Some(end as u64))]);
    assert_eq!(report.exit_status(), EXIT_DAMAGED);
    assert_eq!(report.live.all.total, 2, "the records before the damage count");
}

/// `file` with a record at `at` whose tube name length is `len`.
fn with_name_len_at(file: &[u8], at: usize, len: i32) -> Vec<u8> {
    let mut bytes = file.to_vec();
    bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
    bytes
}

#[test]
fn the_json_document_has_its_documented_fields() {
    let (dir, _) = sprout_dir();
    write(dir.path(), 3, &[0; 10]);
    fs::create_dir(dir.path().join("beanstalkd-imported-20260101T000000Z")).unwrap();
    let report = inspect(dir.path()).unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let mut top = keys(&json);
    top.sort();
    assert_eq!(
        top,
        ["clean", "damage", "dir", "files", "format", "live", "next_id", "notes", "schema", "space"].map(String::from)
    );
    assert_eq!(json["schema"], SCHEMA);
    assert_eq!(json["format"], "sprout");
    let file = &json["files"][0];
    assert_eq!(file["format"], "sprout_v2");
    assert_eq!(file["records"]["job"], 3);
    assert_eq!(file["torn_tail"], serde_json::Value::Null);
    assert_eq!(json["files"][1]["format"], "spare");
    assert_eq!(json["files"][2]["format"], "empty");
    assert_eq!(json["files"][2]["records"], serde_json::json!({}));
    assert_eq!(json["live"]["total"], 2);
    assert_eq!(json["live"]["tubes"]["a"]["reserved"], 1);
    let mut space = keys(&json["space"]);
    space.sort();
    assert_eq!(space, ["files_bytes", "headroom_bytes", "live_records_bytes", "reclaimable_bytes"].map(String::from));
    assert!(json["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().starts_with("beanstalkd-imported-")));
}

#[test]
fn an_unreadable_directory_is_an_error() {
    let dir = TempDir::new().unwrap();
    assert!(inspect(&dir.path().join("missing")).unwrap_err().to_string().contains("missing"));
    let report = inspect(dir.path()).unwrap();
    assert_eq!((report.format, report.clean, report.next_id), (DirFormat::None, true, 1));
}

/// A reader that answers for `path` with `answers` in turn (`None`: gone),
/// as a file a server is writing or retiring would, and reads any other
/// file from disk. Counts its answers for `path`.
fn answering(path: &Path, answers: Vec<Option<Vec<u8>>>) -> (impl FnMut(&Path) -> ReadResult, Rc<Cell<usize>>) {
    let (path, asked) = (path.to_path_buf(), Rc::new(Cell::new(0)));
    let count = asked.clone();
    let mut answers = answers.into_iter();
    let reader = move |p: &Path| match p == path {
        true => {
            count.set(count.get() + 1);
            Ok(answers.next().expect("asked more often than expected"))
        }
        false => read(p),
    };
    (reader, asked)
}

type ReadResult = Result<Option<Vec<u8>>, InspectError>;

#[test]
fn a_file_that_looks_damaged_is_judged_by_what_it_holds_when_read_again() {
    let (dir, offsets) = sprout_dir();
    write(dir.path(), 2, &sprout_file(2, 40, &[job(9, "c", b"nine")]).0);
    let path = dir.path().join("binlog.1");
    let written = fs::read(&path).unwrap();
    // Read in the middle of a write: job 2's record half there, job 3's
    // whole; or job 3's record half there and nothing after it, with
    // records in binlog.2.
    let mut in_the_middle = written.clone();
    in_the_middle[offsets[1] + 20..offsets[2]].fill(0);
    let mut torn = written.clone();
    torn[offsets[3] + 20..].fill(0);
    for (what, first) in [("a record half written", in_the_middle), ("a torn tail", torn)] {
        let (mut reader, asked) = answering(&path, vec![Some(first.clone()), Some(written.clone())]);
        let report = inspect_with(dir.path(), &mut reader).unwrap();
        assert!(report.clean, "{what}: {report}");
        assert_eq!(asked.get(), 2, "{what}: read again");
        assert_eq!(report.files[0].records, RecordCounts::Sprout { job: 3, state: 2, delete: 1, padding: 1 });
        assert_eq!(report.live.all.total, 3, "{what}: jobs 2, 3 and 9");

        // Read again, the same: damage.
        let (mut reader, asked) = answering(&path, vec![Some(first.clone()), Some(first)]);
        let report = inspect_with(dir.path(), &mut reader).unwrap();
        assert_eq!(damage_at(&report).len(), 1, "{what}: {report}");
        assert_eq!(asked.get(), 2, "{what}");
    }
}

#[test]
fn a_file_retired_before_it_is_read_again_is_no_damage() {
    let (dir, offsets) = sprout_dir();
    write(dir.path(), 2, &sprout_file(2, 40, &[job(9, "c", b"nine")]).0);
    let path = dir.path().join("binlog.1");
    let mut torn = fs::read(&path).unwrap();
    torn[offsets[6]..].fill(0xee);
    let (mut reader, _) = answering(&path, vec![Some(torn), None]);
    let report = inspect_with(dir.path(), &mut reader).unwrap();
    assert!(report.clean, "{report}");
    let tail = report.files[0].torn_tail.as_ref().expect("noted");
    assert_eq!(tail.offset, offsets[6] as u64);
    assert!(tail.reason.contains("retired"), "{}", tail.reason);

    // And a file gone before its first read is skipped with a note.
    let (mut reader, _) = answering(&path, vec![None]);
    let report = inspect_with(dir.path(), &mut reader).unwrap();
    assert!(report.clean && report.files.len() == 1, "{report}");
    assert!(report.notes.iter().any(|n| n.starts_with("binlog.1: gone")), "{:?}", report.notes);
}

#[test]
fn a_beanstalkd_file_that_looks_damaged_is_read_again() {
    let dir = TempDir::new().unwrap();
    let written = beanstalkd_file(&[(1, "t", b"one"), (2, "t", b"two")], &[]);
    write(dir.path(), 1, &written);
    let path = dir.path().join("binlog.1");
    // The first record's body (after the version, the name's length, the
    // name and the Jobrec) not yet there, the second record whole.
    let body = 4 + 4 + 1 + 80;
    let mut in_the_middle = written.clone();
    in_the_middle[body..body + 5].fill(0);
    let (mut reader, asked) = answering(&path, vec![Some(in_the_middle), Some(written)]);
    let report = inspect_with(dir.path(), &mut reader).unwrap();
    assert!(report.clean, "{report}");
    assert_eq!((asked.get(), report.live.all.total), (2, 2), "{report}");
}

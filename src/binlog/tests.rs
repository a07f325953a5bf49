//! The binlog driven through a real engine: changes go in, the directory is
//! reopened as after a crash, and the restored engine must match.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::engine::{Engine, EngineConfig, Journal, Nanos, SECOND};
use crate::host::HostInfo;
use crate::protocol::command::NewJob;
use crate::protocol::{Command, Reply, TubeName};

const T0: Nanos = 1_700_000_000 * SECOND;

fn config(dir: &Path, file_size: u64) -> BinlogConfig {
    BinlogConfig { dir: dir.to_path_buf(), file_size, fsync: FsyncPolicy::Never, skip_damaged: false }
}

fn engine_config() -> EngineConfig {
    EngineConfig { max_job_size: 65535, binlog_max_size: 10_485_760, host: HostInfo::fake() }
}

/// An engine over a binlog in `dir`, restored from what is there.
fn open(dir: &Path, file_size: u64, now: Nanos) -> Result<Engine<Option<Binlog>>, OpenError> {
    let Opened { binlog, restoration, next_id, .. } = Binlog::open(&config(dir, file_size))?;
    let mut engine = Engine::with_journal(engine_config(), now, Some(binlog));
    engine.restore_all(now, restoration);
    engine.raise_next_job_id(next_id);
    engine.take_replies().for_each(drop);
    engine.connect(0);
    engine.connect(1);
    Ok(engine)
}

/// Runs a command (announcing a put's line first, as the server does) and
/// returns its reply to `conn`.
fn run(engine: &mut Engine<Option<Binlog>>, now: Nanos, conn: usize, command: Command) -> Reply {
    if matches!(command, Command::Put(_)) {
        engine.begin_put(conn);
    }
    engine.apply(now, conn, command);
    let replies: Vec<_> = engine.take_replies().collect();
    replies.into_iter().find(|(c, _)| *c == conn).map(|(_, r)| r).expect("no reply")
}

fn put(engine: &mut Engine<Option<Binlog>>, now: Nanos, pri: u32, delay: u32, body: &[u8]) -> u64 {
    match run(engine, now, 0, Command::Put(NewJob { pri, delay, ttr: 60, body: body.into() })) {
        Reply::Inserted(id) => id,
        other => panic!("put: {other:?}"),
    }
}

/// The end of a turn, as the server has it: compaction, the write, then
/// (after the replies) the next file prepared.
fn commit(engine: &mut Engine<Option<Binlog>>) {
    end_turn(engine, Instant::now());
}

fn end_turn(engine: &mut Engine<Option<Binlog>>, at: Instant) {
    engine.maintain_journal();
    let binlog = binlog_mut(engine);
    binlog.commit(at).unwrap();
    binlog.prepare_ahead(at);
}

fn binlog(engine: &Engine<Option<Binlog>>) -> &Binlog {
    engine.journal().as_ref().unwrap()
}

fn binlog_mut(engine: &mut Engine<Option<Binlog>>) -> &mut Binlog {
    engine.journal_mut().as_mut().unwrap()
}

fn no_file_expected(_: &Path, header: record::Header, _: u64, _: bool) -> io::Result<segment::Segment> {
    panic!("file {} made where none should be", header.seq)
}

/// A disk with no room left.
fn no_space(_: &Path, _: record::Header, _: u64, _: bool) -> io::Result<segment::Segment> {
    Err(io::Error::from_raw_os_error(libc::ENOSPC))
}

/// `key: value` from a stats reply.
fn field(reply: Reply, key: &str) -> String {
    let Reply::Ok(yaml) = reply else { panic!("{reply:?}") };
    let text = String::from_utf8(yaml).unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_string)).unwrap()
}

fn job_field(engine: &mut Engine<Option<Binlog>>, now: Nanos, id: u64, key: &str) -> String {
    field(run(engine, now, 1, Command::StatsJob(id)), key)
}

fn binlog_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("binlog."))
        .collect();
    files.sort();
    files
}

/// Delayed jobs are restored in bulk, each tube's set at once: across
/// tubes they still come ready one at a time in (deadline, id) order, and a
/// delay that ended while the server was down ends at once.
#[test]
fn delayed_jobs_of_several_tubes_come_ready_in_deadline_order_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 1 << 20, T0).unwrap();
    // (tube, delay in seconds), put in this order: deadlines not in id order.
    let puts = [("a", 30), ("b", 10), ("a", 20), ("b", 40), ("a", 5), ("b", 20), ("a", 1)];
    let mut ids = Vec::new();
    for &(tube, delay) in &puts {
        run(&mut e, T0, 0, Command::Use(TubeName::new(tube.as_bytes()).unwrap()));
        ids.push((T0 + delay * SECOND, put(&mut e, T0, 0, delay as u32, tube.as_bytes())));
    }
    commit(&mut e);
    drop(e);

    // Back three seconds later: the 1-second delay has ended.
    let later = T0 + 3 * SECOND;
    let mut e = open(dir.path(), 1 << 20, later).unwrap();
    let stats = run(&mut e, later, 1, Command::Stats);
    assert_eq!(field(stats.clone(), "current-jobs-delayed"), "6");
    assert_eq!(field(stats, "current-jobs-ready"), "1");
    for tube in ["a", "b"] {
        run(&mut e, later, 1, Command::Watch(TubeName::new(tube.as_bytes()).unwrap()));
    }
    let mut came_ready = Vec::new();
    for second in 3..=40 {
        let now = T0 + second * SECOND;
        e.tick(now);
        while let Reply::Reserved { id, .. } = run(&mut e, now, 1, Command::ReserveWithTimeout(Some(0))) {
            assert_eq!(job_field(&mut e, now, id, "state"), "reserved");
            came_ready.push(id);
        }
    }
    ids.sort_unstable();
    assert_eq!(came_ready, ids.iter().map(|&(_, id)| id).collect::<Vec<_>>());
}

#[test]
fn every_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = T0;
    let mut e = open(dir.path(), 1 << 20, now).unwrap();
    let ready = put(&mut e, now, 5, 0, b"ready");
    let delayed = put(&mut e, now, 6, 100, b"delayed");
    let buried_a = put(&mut e, now, 7, 0, b"a");
    let buried_b = put(&mut e, now, 8, 0, b"b");
    let released = put(&mut e, now, 9, 0, b"released");
    let reserved = put(&mut e, now, 10, 0, b"reserved");
    let deleted = put(&mut e, now, 11, 0, b"deleted");
    // Reserve in priority order and change each job's state.
    for id in [ready, buried_a, buried_b, released, reserved] {
        assert!(matches!(run(&mut e, now, 1, Command::ReserveJob(id)), Reply::Reserved { .. }));
    }
    run(&mut e, now, 1, Command::Release { id: ready, pri: 5, delay: 0 });
    run(&mut e, now, 1, Command::Bury { id: buried_b, pri: 70 });
    run(&mut e, now + 1, 1, Command::Bury { id: buried_a, pri: 71 });
    run(&mut e, now, 1, Command::Release { id: released, pri: 99, delay: 0 });
    assert_eq!(run(&mut e, now, 1, Command::Delete(deleted)), Reply::Deleted);
    commit(&mut e);
    drop(e); // a crash: nothing more is written

    let later = now + 10 * SECOND;
    let mut e = open(dir.path(), 1 << 20, later).unwrap();
    assert_eq!(job_field(&mut e, later, ready, "state"), "ready");
    assert_eq!(job_field(&mut e, later, delayed, "state"), "delayed");
    assert_eq!(job_field(&mut e, later, delayed, "time-left"), "90");
    assert_eq!(job_field(&mut e, later, buried_a, "pri"), "71");
    assert_eq!(job_field(&mut e, later, released, "pri"), "99", "beanstalkd forgets this priority");
    assert_eq!(job_field(&mut e, later, released, "releases"), "1");
    assert_eq!(job_field(&mut e, later, reserved, "state"), "ready");
    assert_eq!(job_field(&mut e, later, buried_b, "buries"), "1", "beanstalkd adds one per restart");
    assert_eq!(job_field(&mut e, later, buried_a, "age"), "10");
    assert_eq!(run(&mut e, later, 1, Command::StatsJob(deleted)), Reply::NotFound);
    // Buried jobs come back in burial order: b was buried first.
    assert_eq!(run(&mut e, later, 0, Command::PeekBuried), Reply::Found { id: buried_b, body: b"b".as_slice().into() });
    // Ids continue above the highest seen.
    assert_eq!(put(&mut e, later, 0, 0, b"new"), deleted + 1);
}

#[test]
fn recovered_jobs_reach_a_worker_watching_many_tubes() {
    // Recovery fills ready sets in bulk; a worker watching more tubes than
    // it asks one by one must still find the best of them, and a waiting
    // one must be woken by the next put.
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 1 << 20, T0).unwrap();
    let tubes: Vec<TubeName> = (0..20).map(|i| TubeName::new(format!("t{i}").as_bytes()).unwrap()).collect();
    let mut best = None;
    for (i, tube) in tubes.iter().enumerate() {
        run(&mut e, T0, 0, Command::Use(tube.clone()));
        for j in 0..3u32 {
            let pri = 100 + ((i as u32 * 7 + j * 5) % 23);
            let id = put(&mut e, T0, pri, 0, format!("{i}/{j}").as_bytes());
            if best.is_none_or(|(p, _)| pri < p) {
                best = Some((pri, id));
            }
        }
    }
    commit(&mut e);
    drop(e);

    let mut e = open(dir.path(), 1 << 20, T0).unwrap();
    for tube in &tubes {
        run(&mut e, T0, 1, Command::Watch(tube.clone()));
    }
    run(&mut e, T0, 1, Command::Ignore(TubeName::new(b"default").unwrap()));
    let mut reserved = Vec::new();
    for _ in 0..60 {
        let Reply::Reserved { id, .. } = run(&mut e, T0, 1, Command::Reserve) else { panic!("no job") };
        let pri: u32 = job_field(&mut e, T0, id, "pri").parse().unwrap();
        reserved.push((pri, id));
    }
    assert_eq!(reserved[0], best.unwrap());
    assert!(reserved.is_sorted(), "reserved in (priority, id) order: {reserved:?}");
    assert_eq!(run(&mut e, T0, 1, Command::ReserveWithTimeout(Some(0))), Reply::TimedOut);
}

#[test]
fn ids_never_go_back_even_when_every_job_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 4096, T0).unwrap();
    let mut last = 0;
    for _ in 0..200 {
        last = put(&mut e, T0, 0, 0, b"0123456789");
        run(&mut e, T0, 0, Command::Delete(last));
        commit(&mut e);
    }
    drop(e);
    for _ in 0..2 {
        let mut e = open(dir.path(), 4096, T0).unwrap();
        commit(&mut e);
        drop(e);
    }
    let mut e = open(dir.path(), 4096, T0).unwrap();
    assert_eq!(put(&mut e, T0, 0, 0, b"x"), last + 1);
}

#[test]
fn disk_use_stays_bounded_by_live_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let file_size = 64 * 1024;
    let mut e = open(dir.path(), file_size, T0).unwrap();
    // A long-lived job pins the first file unless it is migrated.
    let keeper = put(&mut e, T0, 0, 0, b"keep me");
    run(&mut e, T0, 1, Command::ReserveJob(keeper));
    let mut peak = 0;
    for i in 0..30_000u64 {
        let id = put(&mut e, T0, 1, 0, b"some body of a job");
        run(&mut e, T0, 0, Command::Delete(id));
        // The kept job is released with a delay and reserved again, over
        // and over (beanstalkd's log grows without bound on this).
        run(&mut e, T0, 1, Command::Release { id: keeper, pri: 0, delay: 1 });
        run(&mut e, T0, 1, Command::ReserveJob(keeper));
        if i % 100 == 0 {
            // Compaction only uses room prepared ahead.
            binlog_mut(&mut e).preparation.make_file = no_file_expected;
            e.maintain_journal();
            binlog_mut(&mut e).preparation.make_file = segment::Segment::create;
            commit(&mut e);
            peak = peak.max(e.journal().as_ref().unwrap().disk_bytes());
        }
    }
    commit(&mut e);
    let stats = e.journal().as_ref().unwrap().stats();
    assert!(stats.records_migrated > 0);
    assert_eq!(binlog(&e).preparation.made_inline, 0, "every file was made between turns");
    assert!(peak <= 8 * file_size, "binlog peaked at {peak} bytes with one live job");
    assert!(binlog_files(dir.path()).len() <= 8);
    drop(e);
    let mut e = open(dir.path(), file_size, T0).unwrap();
    assert_eq!(job_field(&mut e, T0, keeper, "state"), "ready", "it was reserved at the crash");
    assert_eq!(job_field(&mut e, T0, keeper, "releases"), "30000");
}

#[test]
fn files_no_longer_written_keep_no_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let file_size = 64 * 1024;
    let mut e = open(dir.path(), file_size, T0).unwrap();
    // Each turn queues more than a file holds, so every file's buffer grows
    // past a file's worth of records before it is written.
    for _ in 0..4 {
        for _ in 0..1000 {
            put(&mut e, T0, 1, 0, &[b'x'; 100]);
        }
        commit(&mut e);
    }
    let binlog = e.journal().as_ref().unwrap();
    assert!(binlog.current > 4, "{} files filled", binlog.current);
    for segment in binlog.segments[..binlog.current].iter() {
        assert_eq!(segment.buffer_capacity(), 0, "file {}", segment.seq);
    }
}

/// Builds a log with three jobs and returns the directory and where the
/// last record starts and ends in the only file.
fn three_jobs() -> (tempfile::TempDir, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    let mut ends = Vec::new();
    for body in [&b"first"[..], b"second", b"third"] {
        put(&mut e, T0, 0, 0, body);
        commit(&mut e);
        let binlog = e.journal().as_ref().unwrap();
        ends.push(binlog.segments[binlog.current].end);
    }
    drop(e);
    (dir, ends[1], ends[2])
}

#[test]
fn a_torn_last_record_is_cut_at_every_offset() {
    let (dir, start, end) = three_jobs();
    let file = dir.path().join("binlog.1");
    let pristine = std::fs::read(&file).unwrap();
    for cut in start..end {
        let mut torn = pristine.clone();
        torn[cut as usize..end as usize].fill(0);
        std::fs::write(&file, &torn).unwrap();
        let mut e = open(dir.path(), 1 << 16, T0).unwrap_or_else(|err| panic!("cut at {cut}: {err}"));
        for id in [1, 2] {
            assert_eq!(job_field(&mut e, T0, id, "state"), "ready", "cut at {cut}");
        }
        assert_eq!(run(&mut e, T0, 1, Command::Peek(3)), Reply::NotFound, "cut at {cut}");
        // New records go after the cut, and read back.
        let id = put(&mut e, T0, 0, 0, b"after");
        assert_eq!(id, 3, "the torn job's id was never acknowledged");
        commit(&mut e);
        drop(e);
        let mut e = open(dir.path(), 1 << 16, T0).unwrap();
        assert_eq!(run(&mut e, T0, 1, Command::Peek(3)), Reply::Found { id: 3, body: b"after".as_slice().into() });
        drop(e);
    }
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail_too() {
    let (dir, _, end) = three_jobs();
    let file = dir.path().join("binlog.1");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[end as usize..end as usize + 20].copy_from_slice(&[0xAB; 20]);
    std::fs::write(&file, &bytes).unwrap();
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    assert!(matches!(run(&mut e, T0, 1, Command::Peek(3)), Reply::Found { .. }));
    drop(e);
    // The garbage was zeroed, so the repair holds.
    assert!(std::fs::read(&file).unwrap()[end as usize..].iter().all(|&b| b == 0));
}

/// fuzz/regressions/binlog/data-behind-zeros-*: eight zero bytes ended the
/// records whatever followed them, so records appended there were read on
/// into what followed at the next start (back to life, or refused).
#[test]
fn data_behind_zeros_is_a_torn_tail_or_damage() {
    let (dir, last, end) = three_jobs();
    let (last, end) = (last as usize, end as usize);
    let file = dir.path().join("binlog.1");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[end + 8..end + 28].copy_from_slice(&[0xAB; 20]);
    std::fs::write(&file, &bytes).unwrap();
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    assert!(matches!(run(&mut e, T0, 1, Command::Peek(3)), Reply::Found { .. }));
    // A delete appended where the records end is not read on into garbage.
    assert_eq!(run(&mut e, T0, 1, Command::Delete(2)), Reply::Deleted);
    commit(&mut e);
    drop(e);
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    assert_eq!(run(&mut e, T0, 1, Command::Peek(2)), Reply::NotFound);
    assert!(matches!(run(&mut e, T0, 1, Command::Peek(3)), Reply::Found { .. }));
    drop(e);

    // The last record moved behind zeros: a valid record after the end.
    let (dir, _, _) = three_jobs();
    let file = dir.path().join("binlog.1");
    let mut bytes = std::fs::read(&file).unwrap();
    let record = bytes[last..end].to_vec();
    bytes[last..end].fill(0);
    bytes[end + 40..end + 40 + record.len()].copy_from_slice(&record);
    std::fs::write(&file, &bytes).unwrap();
    let refused = open(dir.path(), 1 << 16, T0).err().expect("refused").to_string();
    assert!(refused.contains(&format!("offset {last}")) && refused.contains("zero bytes"), "{refused}");
    let mut skip = config(dir.path(), 1 << 16);
    skip.skip_damaged = true;
    let Opened { restoration, .. } = Binlog::open(&skip).unwrap();
    assert_eq!(restoration.jobs().iter().map(|j| j.id).collect::<Vec<_>>(), [1, 2, 3]);
}

/// fuzz/regressions/binlog/data-behind-a-spares-zeros: a file whose first
/// record was zeros was taken for a spare by its first 40 bytes, and the
/// records further on never read (inspect, which reads it whole, saw them).
#[test]
fn a_spare_with_data_behind_its_zeros_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 4096, T0).unwrap();
    put(&mut e, T0, 0, 0, b"job");
    commit(&mut e);
    drop(e);
    let one = std::fs::read(dir.path().join("binlog.1")).unwrap();
    let len = u32::from_le_bytes(one[36..40].try_into().unwrap()) as usize;
    let spare = dir.path().join("binlog.2");
    let mut bytes = std::fs::read(&spare).unwrap();
    assert!(bytes[32..].iter().all(|&b| b == 0), "binlog.2 is the spare");
    bytes[200..208 + len].copy_from_slice(&one[32..40 + len]);
    std::fs::write(&spare, &bytes).unwrap();
    let refused = open(dir.path(), 4096, T0).err().expect("refused").to_string();
    assert!(refused.contains("binlog.2: damaged record at offset 32"), "{refused}");
}

#[test]
fn a_flipped_byte_in_an_earlier_record_is_refused_or_skipped() {
    let (dir, start, _) = three_jobs();
    let file = dir.path().join("binlog.1");
    let mut bytes = std::fs::read(&file).unwrap();
    // Somewhere inside job 2's record, which is followed by job 3's.
    let inside_second = start as usize - 10;
    bytes[inside_second] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let err = open(dir.path(), 1 << 16, T0).err().expect("a damaged record must be refused").to_string();
    assert!(err.contains("binlog.1"), "{err}");
    assert!(err.contains("damaged record at offset"), "{err}");

    let mut skip = config(dir.path(), 1 << 16);
    skip.skip_damaged = true;
    let Opened { binlog, restoration, next_id, .. } = Binlog::open(&skip).unwrap();
    drop(binlog);
    let jobs = restoration.jobs();
    let ids: Vec<u64> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, [1, 3], "job 2 is dropped, the others intact");
    assert_eq!(restoration.body(jobs[1].body), b"third");
    assert_eq!(next_id, 4);
    // The damage was padded over: the next start needs no flag.
    let Opened { restoration, .. } = Binlog::open(&config(dir.path(), 1 << 16)).unwrap();
    assert_eq!(restoration.jobs().iter().map(|j| j.id).collect::<Vec<_>>(), [1, 3]);
}

#[test]
fn a_second_server_cannot_take_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Binlog::open(&config(dir.path(), 4096)).unwrap();
    let err = Binlog::open(&config(dir.path(), 4096)).err().unwrap();
    assert!(matches!(err, OpenError::Locked(_)));
    let err = err.to_string();
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(err.contains("in use by"), "{err}");
}

#[test]
fn a_job_bigger_than_a_file_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 4096, T0).unwrap();
    let body = vec![7u8; 60_000];
    let id = put(&mut e, T0, 0, 0, &body);
    // More than any prepared room: the one case where a put makes a file.
    assert_eq!(binlog(&e).preparation.made_inline, 1);
    commit(&mut e);
    drop(e);
    let mut e = open(dir.path(), 4096, T0).unwrap();
    assert_eq!(run(&mut e, T0, 1, Command::Peek(id)), Reply::Found { id, body: body.as_slice().into() });
}

#[test]
fn stats_report_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 4096, T0).unwrap();
    for _ in 0..300 {
        put(&mut e, T0, 0, 0, b"0123456789");
    }
    commit(&mut e);
    let stats = run(&mut e, T0, 1, Command::Stats);
    assert_eq!(field(stats.clone(), "binlog-oldest-index"), "1");
    assert!(field(stats.clone(), "binlog-current-index").parse::<u64>().unwrap() > 1);
    assert_eq!(field(stats, "binlog-records-written"), "300");
    assert_eq!(job_field(&mut e, T0, 1, "file"), "1");
}

#[test]
fn a_file_skipped_for_a_damaged_header_leaves_a_gap_the_counts_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 4096, T0).unwrap();
    for _ in 0..300 {
        put(&mut e, T0, 0, 0, b"0123456789");
    }
    commit(&mut e);
    drop(e);
    assert!(binlog_files(dir.path()).len() >= 4);
    let second = dir.path().join("binlog.2");
    let mut header = std::fs::read(&second).unwrap();
    header[3] ^= 1;
    std::fs::write(&second, &header).unwrap();
    let mut skip = config(dir.path(), 4096);
    skip.skip_damaged = true;
    let Opened { binlog, restoration, .. } = Binlog::open(&skip).unwrap();
    let jobs = restoration.jobs();
    let lost = 300 - jobs.len();
    assert!(lost > 0);
    // Each file counts the jobs whose full record it holds, so none that
    // holds one is deleted.
    for segment in &binlog.segments {
        let holds = jobs.iter().filter(|j| u64::from(j.journal_tag.file) == segment.seq).count() as u64;
        assert_eq!(segment.live_jobs, holds, "file {}", segment.seq);
    }
    drop(binlog);
    let Opened { restoration, .. } = Binlog::open(&skip).unwrap();
    assert_eq!(restoration.len(), 300 - lost);
}

/// fuzz/regressions/binlog/skipped-last-file-number-reused: the file made
/// next was given the number of the skipped one, which was still there, so
/// no file could be made (and a delete found no room).
#[test]
fn a_file_skipped_for_a_damaged_header_keeps_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 4096, T0).unwrap();
    let ids: Vec<u64> = (0..3).map(|_| put(&mut e, T0, 0, 0, b"job")).collect();
    commit(&mut e);
    drop(e);
    // The spare file made ahead, its header damaged.
    let spare = dir.path().join("binlog.2");
    let mut header = std::fs::read(&spare).unwrap();
    header[3] ^= 1;
    std::fs::write(&spare, &header).unwrap();
    let mut skip = config(dir.path(), 4096);
    skip.skip_damaged = true;
    let Opened { binlog, restoration, next_id, .. } = Binlog::open(&skip).unwrap();
    assert_eq!(restoration.len(), 3);
    let numbers: Vec<u64> = binlog.segments.iter().map(|s| s.seq).collect();
    assert_eq!(numbers, [1, 3], "the next file is made past the skipped one");
    assert_eq!(std::fs::read(&spare).unwrap(), header, "the skipped file is left as it is");
    let mut e = Engine::with_journal(engine_config(), T0, Some(binlog));
    e.restore_all(T0, restoration);
    e.raise_next_job_id(next_id);
    e.connect(0);
    assert_eq!(run(&mut e, T0, 0, Command::Delete(ids[0])), Reply::Deleted);
    put(&mut e, T0, 0, 0, b"after");
}

/// A start that found less room than its jobs' deletes were promised, and
/// could make no file (a full disk), used to panic at the first delete
/// that found no room; the log fails instead, as on a failed write.
#[test]
fn a_delete_with_no_room_left_fails_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 4096, T0).unwrap();
    let ids: Vec<u64> = (0..3).map(|_| put(&mut e, T0, 0, 0, b"job")).collect();
    commit(&mut e);
    // The promise broken: no spare file, no room left in the current one,
    // and the disk full.
    let log = binlog_mut(&mut e);
    log.preparation.make_file = no_space;
    log.segments.truncate(log.current + 1);
    let current = log.current;
    log.segments[current].capacity = log.segments[current].end;
    assert_eq!(run(&mut e, T0, 0, Command::Delete(ids[0])), Reply::Deleted);
    assert!(binlog(&e).failed, "the log failed");
    let new_job = Command::Put(NewJob { pri: 0, delay: 0, ttr: 60, body: b"x".as_slice().into() });
    assert_eq!(run(&mut e, T0, 0, new_job), Reply::OutOfMemory);
    drop(e);
    // With room, a delete that finds none where it is makes a file.
    let mut e = open(dir.path(), 4096, T0).unwrap();
    let log = binlog_mut(&mut e);
    log.segments.truncate(log.current + 1);
    let current = log.current;
    log.segments[current].capacity = log.segments[current].end;
    let files = log.segments.len();
    assert_eq!(run(&mut e, T0, 0, Command::Delete(ids[1])), Reply::Deleted);
    assert!(!binlog(&e).failed);
    assert_eq!(binlog(&e).segments.len(), files + 1);
}

#[test]
fn no_put_waits_for_a_file_to_be_made() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 4096, T0).unwrap();
    for i in 0..1000 {
        let before = binlog_files(dir.path());
        put(&mut e, T0, 0, 0, b"0123456789");
        assert_eq!(binlog_files(dir.path()), before, "a file was made during put {i}");
        commit(&mut e);
    }
    assert!(e.journal().stats().current_index > 5, "the puts crossed into new files");
    assert_eq!(binlog(&e).preparation.made_inline, 0);
}

#[test]
fn the_end_of_a_turn_prepares_a_whole_file_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let file_size = 16384;
    let mut e = open(dir.path(), file_size, T0).unwrap();
    assert!(binlog(&e).free_room() >= file_size, "opening prepares room too");
    let files = binlog_files(dir.path());
    // One turn of puts, as long as the server would take them.
    let mut puts = 0;
    while !binlog(&e).room_is_low() {
        put(&mut e, T0, 0, 0, &[b'x'; 100]);
        puts += 1;
    }
    let free = binlog(&e).free_room();
    assert!(free < file_size / 2 + 200, "low with {free} bytes free");
    assert!(puts > 20, "{puts} puts");
    assert_eq!(binlog_files(dir.path()), files, "no file made during the turn");
    assert_eq!(binlog(&e).preparation.made_inline, 0);
    commit(&mut e);
    assert!(!binlog(&e).room_is_low());
    assert!(binlog(&e).free_room() >= file_size);
    assert!(binlog_files(dir.path()).len() > files.len());
    // With room, the end of a turn makes nothing.
    let files = binlog_files(dir.path());
    commit(&mut e);
    assert_eq!(binlog_files(dir.path()), files);
}

#[test]
fn a_full_disk_refuses_puts_until_room_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 4096, T0).unwrap();
    let t = Instant::now();
    let mut live = Vec::new();
    for _ in 0..10 {
        live.push(put(&mut e, T0, 0, 0, b"before"));
    }
    end_turn(&mut e, t);
    binlog_mut(&mut e).preparation.make_file = no_space;
    // The prepared room is used, then puts are refused; every other
    // command goes on, and nothing is tried again until room is freed.
    let new_job = || Command::Put(NewJob { pri: 0, delay: 0, ttr: 60, body: b"on a full disk".as_slice().into() });
    let accepted = loop {
        match run(&mut e, T0, 0, new_job()) {
            Reply::Inserted(id) => live.push(id),
            Reply::OutOfMemory => break live.len() - 10,
            other => panic!("put: {other:?}"),
        }
        end_turn(&mut e, t);
    };
    assert!(accepted > 10, "only {accepted} puts went into the prepared room");
    assert!(!binlog(&e).room_is_low(), "waiting would not make room");
    // A state record is smaller than a job's: releases fit a while longer.
    let Reply::Reserved { id, .. } = run(&mut e, T0, 1, Command::Reserve) else { panic!("reserve") };
    while run(&mut e, T0, 1, Command::Release { id, pri: 0, delay: 0 }) == Reply::Released {
        assert!(matches!(run(&mut e, T0, 1, Command::ReserveJob(id)), Reply::Reserved { .. }));
        end_turn(&mut e, t);
    }
    assert_eq!(run(&mut e, T0, 1, Command::Bury { id, pri: 0 }), Reply::InternalError);
    assert_eq!(run(&mut e, T0, 1, Command::Delete(id)), Reply::Deleted);
    live.retain(|&j| j != id);
    end_turn(&mut e, t);
    // Room freed by someone else is noticed a little later.
    binlog_mut(&mut e).preparation.make_file = segment::Segment::create;
    end_turn(&mut e, t + Duration::from_millis(10));
    assert_eq!(run(&mut e, T0, 0, new_job()), Reply::OutOfMemory);
    end_turn(&mut e, t + Duration::from_millis(200));
    live.push(put(&mut e, T0, 0, 0, b"room again"));
    // Full again; deleting the jobs of the oldest file frees it, and the end
    // of that turn makes a file at once.
    binlog_mut(&mut e).preparation.make_file = no_space;
    let t = t + Duration::from_millis(200);
    while let Reply::Inserted(id) = run(&mut e, T0, 0, new_job()) {
        live.push(id);
        end_turn(&mut e, t);
    }
    binlog_mut(&mut e).preparation.make_file = segment::Segment::create;
    let oldest = binlog(&e).segments[0].seq;
    let in_oldest: Vec<u64> =
        live.iter().copied().filter(|&id| job_field(&mut e, T0, id, "file") == oldest.to_string()).collect();
    for &id in &in_oldest {
        assert_eq!(run(&mut e, T0, 0, Command::Delete(id)), Reply::Deleted);
    }
    live.retain(|id| !in_oldest.contains(id));
    end_turn(&mut e, t);
    assert_ne!(binlog(&e).segments[0].seq, oldest, "the emptied file was deleted");
    live.push(put(&mut e, T0, 0, 0, b"room again"));
    commit(&mut e);
    // Nothing acknowledged was lost.
    drop(e);
    let mut e = open(dir.path(), 4096, T0).unwrap();
    for &id in &live {
        assert!(matches!(run(&mut e, T0, 1, Command::Peek(id)), Reply::Found { .. }), "job {id}");
    }
    assert_eq!(field(run(&mut e, T0, 1, Command::Stats), "current-jobs-ready"), live.len().to_string());
}

#[test]
fn a_spare_file_never_written_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 4096, T0).unwrap();
    let mut ids: Vec<u64> = (0..5).map(|_| put(&mut e, T0, 0, 0, b"0123456789")).collect();
    commit(&mut e);
    let spare = binlog_files(dir.path());
    assert_eq!(spare.len(), 2, "the file written and a spare: {spare:?}");
    drop(e); // kill -9
    let mut e = open(dir.path(), 4096, T0).unwrap();
    assert_eq!(binlog_files(dir.path()), spare, "the spare is kept, and no other made");
    let stats = run(&mut e, T0, 1, Command::Stats);
    assert_eq!(field(stats.clone(), "binlog-oldest-index"), "1");
    assert_eq!(field(stats, "binlog-current-index"), "1", "the spare is not the file being written");
    // Puts go on into the current file, then into the spare.
    while e.journal().stats().current_index == 1 {
        let before = binlog_files(dir.path());
        ids.push(put(&mut e, T0, 0, 0, b"0123456789"));
        assert_eq!(binlog_files(dir.path()), before);
    }
    assert_eq!(e.journal().stats().current_index, 2);
    commit(&mut e);
    drop(e);
    let mut e = open(dir.path(), 4096, T0).unwrap();
    for &id in &ids {
        assert_eq!(run(&mut e, T0, 1, Command::Peek(id)), Reply::Found { id, body: b"0123456789".as_slice().into() });
    }
    assert_eq!(field(run(&mut e, T0, 1, Command::Stats), "binlog-current-index"), "2");
}

/// The budget that answers `room_is_low` without walking the files gives
/// the walk's answers, through puts of many sizes, deletes, turns cut where
/// the server would cut them, files made and retired.
#[test]
fn the_room_budget_answers_as_the_walk_does() {
    let dir = tempfile::tempdir().unwrap();
    let file_size = 8192;
    let mut e = open(dir.path(), file_size, T0).unwrap();
    let mut live = std::collections::VecDeque::new();
    let mut seed = 7u64;
    let mut answers = [0; 2];
    for step in 0..20_000 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let low = binlog(&e).room_is_low();
        let b = binlog(&e);
        let walked = b.preparation.has_failed() || !b.has_room(file_size / 2);
        assert_eq!(low, walked, "step {step}");
        answers[usize::from(low)] += 1;
        if low || seed.is_multiple_of(97) {
            commit(&mut e);
        }
        if live.len() > 40 || (seed >> 20).is_multiple_of(3) && !live.is_empty() {
            let id = live.pop_front().unwrap();
            assert_eq!(run(&mut e, T0, 0, Command::Delete(id)), Reply::Deleted);
        } else {
            let len = ((seed >> 33) % 700) as usize;
            live.push_back(put(&mut e, T0, 0, 0, &vec![b'x'; len]));
        }
    }
    assert!(answers[0] > 1000 && answers[1] > 100, "{answers:?}");
}

mod format_1;
mod reference_bytes;
mod restore;

/// Under the interval policy a new file is made durable (its header and
/// size, then its directory entry) by the sync thread, not by the loop that
/// made it: that fsync stalled every client for 0.2-4 ms a file.
#[test]
fn the_sync_thread_makes_new_files_durable() {
    let dir = tempfile::tempdir().unwrap();
    let config = BinlogConfig { fsync: FsyncPolicy::Every { ms: 50 }, ..config(dir.path(), 4096) };
    let Opened { mut binlog, .. } = Binlog::open(&config).unwrap();
    binlog.sync_in_background(Box::new(|| {})).unwrap();
    let synced_before = binlog.figures().fsync.count();
    let files_before = binlog.segments.len();
    binlog.add_segment(0).unwrap();
    binlog.add_segment(0).unwrap();
    assert_eq!(binlog.segments.len(), files_before + 2);
    binlog.close().unwrap();
    // One timed sync a new file (close has nothing else to sync), on the
    // sync thread: a file made durable in the loop is not timed.
    assert_eq!(binlog.figures().fsync.count(), synced_before + 2);
    drop(binlog);
    let Opened { binlog: reopened, .. } = Binlog::open(&config).unwrap();
    assert_eq!(reopened.segments.len(), files_before + 2, "the new files are there, headers and all");
}

/// The server has compaction read the oldest file back on a thread of its
/// own: the turn that starts it moves nothing and goes on, and a later one
/// moves the jobs once the ids are read. The log replays the same after.
#[test]
fn compaction_reads_the_oldest_file_back_on_a_thread_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let file_size = 64 * 1024;
    let mut e = open(dir.path(), file_size, T0).unwrap();
    let keeper = put(&mut e, T0, 0, 0, b"keep me");
    run(&mut e, T0, 1, Command::ReserveJob(keeper));
    for i in 0..5_000u64 {
        let id = put(&mut e, T0, 1, 0, b"some body of a job");
        run(&mut e, T0, 0, Command::Delete(id));
        run(&mut e, T0, 1, Command::Release { id: keeper, pri: 0, delay: 1 });
        run(&mut e, T0, 1, Command::ReserveJob(keeper));
        if i % 100 == 0 {
            commit_without_compaction(&mut e);
        }
    }
    commit_without_compaction(&mut e);
    assert!(binlog(&e).wants_compaction(), "the kept job pins the first file");
    let pinned = binlog(&e).segments[0].seq;

    binlog_mut(&mut e).read_back_in_background();
    e.maintain_journal();
    assert_eq!(binlog(&e).stats().records_migrated, 0, "the turn that starts the read moved nothing");
    // The read takes what the thread takes; turns go on meanwhile.
    for _ in 0..10_000 {
        if binlog(&e).segments[0].seq != pinned {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        commit(&mut e);
    }
    assert!(binlog(&e).stats().records_migrated > 0, "the kept job was moved");
    assert!(!dir.path().join(segment::file_name(pinned)).exists(), "the pinned file went");
    drop(e);
    let mut e = open(dir.path(), file_size, T0).unwrap();
    assert_eq!(job_field(&mut e, T0, keeper, "releases"), "5000");
}

fn commit_without_compaction(engine: &mut Engine<Option<Binlog>>) {
    let binlog = binlog_mut(engine);
    binlog.commit(Instant::now()).unwrap();
    binlog.prepare_ahead(Instant::now());
}

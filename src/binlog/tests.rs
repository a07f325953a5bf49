//! The binlog driven through a real engine: changes go in, the directory is
//! reopened as after a crash, and the restored engine must match.

use std::path::Path;
use std::time::Instant;

use super::record::{FullJob, JobUpdate, LoggedState, Record};
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
    let Opened { binlog, jobs, bodies, next_id, .. } = Binlog::open(&config(dir, file_size))?;
    let mut engine = Engine::with_journal(engine_config(), now, Some(binlog));
    engine.restore_all(now, bodies, jobs);
    engine.raise_next_job_id(next_id);
    engine.take_replies().for_each(drop);
    engine.connect(0);
    engine.connect(1);
    Ok(engine)
}

fn run(engine: &mut Engine<Option<Binlog>>, now: Nanos, conn: usize, command: Command) -> Reply {
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

fn commit(engine: &mut Engine<Option<Binlog>>) {
    engine.maintain_journal();
    engine.journal_mut().as_mut().unwrap().commit(Instant::now()).unwrap();
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
            commit(&mut e);
            peak = peak.max(e.journal().as_ref().unwrap().disk_bytes());
        }
    }
    commit(&mut e);
    let stats = e.journal().as_ref().unwrap().stats();
    assert!(stats.records_migrated > 0);
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
    for segment in binlog.segments.range(..binlog.current) {
        assert_eq!(segment.buffer_capacity(), 0, "file {}", segment.seq);
    }
}

/// Builds a log with three jobs and returns the directory and where the
/// last record starts and ends in the only file.
fn three_jobs() -> (tempfile::TempDir, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    for body in [&b"first"[..], b"second", b"third"] {
        put(&mut e, T0, 0, 0, body);
    }
    commit(&mut e);
    let binlog = e.journal().as_ref().unwrap();
    let end = binlog.segments[binlog.current].end;
    let last_len = Record::Job(FullJob {
        update: JobUpdate {
            id: 3,
            pri: 0,
            state: LoggedState::Ready,
            delay: 0,
            ready_at: 0,
            reserves: 0,
            timeouts: 0,
            releases: 0,
            buries: 0,
            kicks: 0,
        },
        tube: TubeName::new(b"default").unwrap(),
        ttr: 0,
        created_at: 0,
        body: b"third".as_slice(),
    })
    .encoded_len() as u64;
    drop(e);
    (dir, end - last_len, end)
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
    let Opened { binlog, jobs, bodies, next_id, .. } = Binlog::open(&skip).unwrap();
    drop(binlog);
    let ids: Vec<u64> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, [1, 3], "job 2 is dropped, the others intact");
    assert_eq!(bodies.get(jobs[1].body), b"third");
    assert_eq!(next_id, 4);
    // The damage was padded over: the next start needs no flag.
    let Opened { jobs, .. } = Binlog::open(&config(dir.path(), 1 << 16)).unwrap();
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [1, 3]);
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
    commit(&mut e);
    drop(e);
    let mut e = open(dir.path(), 4096, T0).unwrap();
    assert_eq!(run(&mut e, T0, 1, Command::Peek(id)), Reply::Found { id, body: body.as_slice().into() });
}

#[test]
fn stats_report_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 4096, T0).unwrap();
    for _ in 0..100 {
        put(&mut e, T0, 0, 0, b"0123456789");
    }
    commit(&mut e);
    let stats = run(&mut e, T0, 1, Command::Stats);
    assert_eq!(field(stats.clone(), "binlog-oldest-index"), "1");
    assert!(field(stats.clone(), "binlog-current-index").parse::<u64>().unwrap() > 1);
    assert_eq!(field(stats, "binlog-records-written"), "100");
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
    let files = binlog_files(dir.path());
    assert!(files.len() >= 4, "{files:?}");
    let mut header = std::fs::read(&files[1]).unwrap();
    header[3] ^= 1;
    std::fs::write(&files[1], &header).unwrap();
    let mut skip = config(dir.path(), 4096);
    skip.skip_damaged = true;
    let Opened { binlog, jobs, .. } = Binlog::open(&skip).unwrap();
    let lost = 300 - jobs.len();
    assert!(lost > 0);
    // Each file counts the jobs whose full record it holds, so none that
    // holds one is deleted.
    for segment in &binlog.segments {
        let holds = jobs.iter().filter(|j| u64::from(j.journal_tag.file) == segment.seq).count() as u64;
        assert_eq!(segment.live_jobs, holds, "file {}", segment.seq);
    }
    drop(binlog);
    let Opened { jobs, .. } = Binlog::open(&skip).unwrap();
    assert_eq!(jobs.len(), 300 - lost);
}

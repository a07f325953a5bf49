//! The log's files as the engine's changes write them (a put's record
//! encoded straight from the engine's job, a migration's too) are, record
//! by record, the bytes the reference writer (`record::reference`: format 2
//! the plainest way) makes of the same records.

use std::fs;

use super::*;
use crate::binlog::record::reference::ReferenceWriter;
use crate::binlog::record::{Decoded, FileDecoder, Format, HEADER_LEN, Header, Record};

/// Compares every record of every file in `dir` with the reference
/// writer's bytes of it (a writer per file, as the log keeps an encoder per
/// file), the CRC aside: the decoder checked it. Returns the number of job
/// records read.
fn assert_reference_bytes(dir: &Path) -> usize {
    let mut jobs = 0;
    for path in binlog_files(dir) {
        let bytes = fs::read(&path).unwrap();
        let header = Header::decode(&bytes).unwrap();
        let Format::V2 { base_secs } = header.format else { panic!("{}: not format 2", path.display()) };
        let mut decoder = FileDecoder::new(header.format);
        let mut reference = ReferenceWriter::new(base_secs);
        let mut at = HEADER_LEN;
        loop {
            match decoder.decode(&bytes[at..]) {
                Decoded::Record(record, len) => {
                    let expected = reference.record(&record, u64::MAX).expect("room enough");
                    let written = &bytes[at..at + len];
                    assert_eq!(written[4..], expected[4..], "{} at {at}: {record:?}", path.display());
                    jobs += usize::from(matches!(record, Record::Job(_)));
                    at += len;
                }
                Decoded::End => break,
                Decoded::Damaged => panic!("{}: damaged at {at}", path.display()),
            }
        }
    }
    jobs
}

/// Puts of every shape (three tubes, in runs and switching; priorities,
/// delays, TTRs and bodies of several sizes) among changes of state and
/// deletes, in small files, so that files fill, tubes are declared again,
/// and old jobs are migrated. The files are compared as they are, every
/// hundred puts, before compaction deletes any.
#[test]
fn the_files_are_the_reference_writers_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    let long_name = "t".repeat(200);
    let tubes = ["default", "emails", long_name.as_str()];
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        // xorshift64
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<u64> = Vec::new();
    let mut jobs_read = 0;
    for i in 0..3000u64 {
        let now = T0 + i * 1_000_003;
        let r = next();
        if r.is_multiple_of(16) {
            let tube = tubes[(r >> 8) as usize % tubes.len()];
            run(&mut e, now, 0, Command::Use(TubeName::new(tube.as_bytes()).unwrap()));
        }
        let body = vec![b'a' + (i % 26) as u8; [0, 1, 100, 127, 128, 5000][(r >> 12) as usize % 6]];
        let new = NewJob {
            pri: [0, 1, 1024, u32::MAX][(r >> 20) as usize % 4],
            delay: if (r >> 24).is_multiple_of(7) { 1 + (r >> 28) as u32 % 1000 } else { 0 },
            ttr: [0, 1, 60, 86_400 * 365][(r >> 40) as usize % 4],
            body: body.as_slice().into(),
        };
        match run(&mut e, now, 0, Command::Put(new)) {
            Reply::Inserted(id) => live.push(id),
            other => panic!("put {i}: {other:?}"),
        }
        // The first jobs stay, and keep their files from being deleted
        // until they are migrated; of the others, some sixty are live.
        let other = |live: &[u64], r: u64| live[20 + r as usize % (live.len() - 20)];
        if live.len() > 60 {
            let id = other(&live, r >> 44);
            run(&mut e, now, 1, Command::Delete(id));
            live.retain(|&j| j != id);
        }
        if live.len() > 20 {
            let id = other(&live, r >> 50);
            run(&mut e, now, 1, Command::ReserveJob(id));
            match (r >> 58) % 3 {
                0 => run(&mut e, now, 1, Command::Release { id, pri: 7, delay: (r >> 60) as u32 }),
                1 => run(&mut e, now, 1, Command::Bury { id, pri: 9 }),
                _ => run(&mut e, now, 1, Command::Release { id, pri: 5, delay: 0 }),
            };
        }
        if i % 100 == 99 {
            commit(&mut e);
            jobs_read = assert_reference_bytes(dir.path());
        }
    }
    let stats = binlog(&e).stats();
    assert!(stats.records_migrated > 0, "no job was migrated");
    assert!(stats.oldest_index > 1, "no file was deleted");
    assert!(jobs_read > 100, "{jobs_read} job records compared");
}

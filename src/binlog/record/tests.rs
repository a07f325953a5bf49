//! The records' bytes in both formats: format 2's pinned field by field,
//! round trips over many job states, damage of every kind detected, tube
//! declarations per file, headers of both versions.

use super::*;

pub(crate) fn update(id: u64) -> JobUpdate {
    JobUpdate {
        id,
        pri: 7,
        state: LoggedState::Delayed,
        delay: 5_000_000_000,
        ready_at: 1_700_000_000_000_000_000,
        reserves: 1,
        timeouts: 2,
        releases: 3,
        buries: 4,
        kicks: 5,
    }
}

/// One record of each kind (format 1's golden bytes are of these).
pub(crate) fn samples() -> Vec<Record<&'static [u8]>> {
    vec![
        Record::Job(FullJob {
            update: update(1),
            tube: TubeName::new(b"emails").unwrap(),
            ttr: 60_000_000_000,
            created_at: 1_600_000_000_000_000_000,
            body: &b"hello\r\nworld\0"[..],
        }),
        Record::State(update(2)),
        Record::Delete(3),
        Record::Padding(0),
        Record::Padding(100),
    ]
}

/// 2023-11-14T22:13:20Z, the base of the format-2 files here.
const BASE_SECS: u32 = 1_700_000_000;
const BASE: i64 = BASE_SECS as i64 * 1_000_000_000;
const V2: Format = Format::V2 { base_secs: BASE_SECS };

fn tube(name: &str) -> TubeName {
    TubeName::new(name.as_bytes()).unwrap()
}

/// The records appended one after the other to a new file of `format`.
fn file_bytes(format: Format, records: &[Record<&[u8]>]) -> Vec<u8> {
    let mut encoder = FileEncoder::new(format);
    let mut bytes = Vec::new();
    for record in records {
        let len = encoder.append(record, u64::MAX, &mut bytes).expect("room enough");
        assert!(len <= max_len(record), "{record:?} is {len} bytes, over its bound {}", max_len(record));
    }
    bytes
}

/// Every record of a file's bytes, read as a start reads them.
fn read_all(format: Format, bytes: &[u8]) -> Vec<Decoded<'_>> {
    let mut decoder = FileDecoder::new(format);
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let decoded = decoder.decode(&bytes[at..]);
        let Decoded::Record(_, len) = decoded else {
            out.push(decoded);
            break;
        };
        at += len;
        out.push(decoded);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A job just put at the default priority: ready, no delay, no counters.
fn fresh_put(id: u64) -> JobUpdate {
    JobUpdate {
        id,
        pri: 1024,
        state: LoggedState::Ready,
        delay: 0,
        ready_at: 0,
        reserves: 0,
        timeouts: 0,
        releases: 0,
        buries: 0,
        kicks: 0,
    }
}

/// The records of [`PINNED`], in order, in one file of base [`BASE`].
fn pinned_records() -> Vec<Record<&'static [u8]>> {
    let ready = fresh_put(1000);
    vec![
        Record::Job(FullJob {
            update: ready,
            tube: tube("default"),
            ttr: 60_000_000_000,
            created_at: BASE + 2_500_000_000,
            body: &b"hi"[..],
        }),
        Record::Job(FullJob {
            update: JobUpdate {
                id: 1001,
                pri: 0,
                state: LoggedState::Buried,
                delay: 5_000_000_000,
                ready_at: BASE - 1_000_000_000,
                reserves: 1,
                timeouts: 2,
                releases: 3,
                buries: 4,
                kicks: 5,
            },
            tube: tube("default"),
            ttr: 1_500_000_000,
            created_at: BASE,
            body: &b""[..],
        }),
        Record::State(JobUpdate {
            state: LoggedState::Delayed,
            delay: 10_000_000_000,
            ready_at: BASE + 10_000_000_000,
            ..ready
        }),
        Record::Delete(1000),
        Record::Padding(3),
    ]
}

/// Format 2's bytes, worked out field by field apart from the code (the
/// CRC of each record by zlib's `crc32`), per docs/binlog-format.md.
const PINNED: [&str; 5] = [
    // frame | type 1, flags 0x40 (ready, declares its tube) | id 1000 | pri
    // 1024 | TTR 60 s | created: base + 2.5 s, zigzag | tube index 0, name
    // of 7 bytes | body of 2 bytes.
    "0554458d18000000 01 40 e807 8008 3c 80e497d012 00 07 64656661756c74 02 6869",
    // type 1, flags 0x3f (buried, counters, delay, ready time, nanoseconds)
    // | id 1001 | pri 0 | delay 5e9 ns | ready: base - 1 s, zigzag | counters
    // 1 to 5 | TTR 1.5e9 ns | created: base | tube index 0, declared above |
    // empty body.
    "293104131c000000 01 3f e907 00 80e497d012 ffa7d6b907 0102030405 80dea0cb05 00 00 00",
    // type 2, flags 0x1a (delayed, delay, ready time) | id 1000 | pri 1024 |
    // delay 10 s | ready: base + 10 s.
    "210e60bd0c000000 02 1a e807 8008 0a 8090dfc04a",
    // type 3 | id as 8 bytes: format 1's delete, 17 bytes.
    "e654b1d009000000 03 e803000000000000",
    // type 4 | 3 bytes of filler.
    "c4460a6e04000000 04 000000",
];

#[test]
fn format_2_is_these_bytes() {
    let records = pinned_records();
    let mut encoder = FileEncoder::new(V2);
    for (record, pinned) in records.iter().zip(PINNED) {
        let mut bytes = Vec::new();
        encoder.append(record, u64::MAX, &mut bytes).unwrap();
        assert_eq!(hex(&bytes), pinned.replace(' ', ""), "{record:?}");
    }
}

#[test]
fn format_2_reads_back_what_it_pinned() {
    let bytes = file_bytes(V2, &pinned_records());
    let read: Vec<_> = read_all(V2, &bytes).into_iter().collect();
    let expected: Vec<_> = pinned_records()
        .into_iter()
        .zip(PINNED)
        .map(|(record, pinned)| Decoded::Record(record, pinned.replace(' ', "").len() / 2))
        .collect();
    assert_eq!(read, expected);
}

/// The sizes the format is for: a put of 100 bytes into `default`, and the
/// state records of a release and a bury, in a file made a minute before.
#[test]
fn a_put_and_a_change_of_state_are_small() {
    let created_at = BASE + 60_000_000_000;
    let ready = fresh_put(1_000_000);
    let body = [b'x'; 100];
    let put =
        Record::Job(FullJob { update: ready, tube: tube("default"), ttr: 60_000_000_000, created_at, body: &body[..] });
    let release = Record::<&[u8]>::State(JobUpdate {
        state: LoggedState::Delayed,
        delay: 5_000_000_000,
        ready_at: created_at + 5_000_000_000,
        reserves: 1,
        releases: 1,
        ..ready
    });
    let bury = Record::<&[u8]>::State(JobUpdate {
        state: LoggedState::Buried,
        ready_at: created_at,
        reserves: 1,
        buries: 1,
        ..ready
    });
    let mut encoder = FileEncoder::new(V2);
    let mut bytes = Vec::new();
    let first = encoder.append(&put, u64::MAX, &mut bytes).unwrap();
    let next = encoder.append(&put, u64::MAX, &mut bytes).unwrap();
    assert_eq!((first, next), (132, 124), "a put's record, declaring its tube, then not");
    assert_eq!(v1::encoded_len(&put), 186);
    assert_eq!(encoder.append(&release, u64::MAX, &mut bytes), Some(27));
    assert_eq!(encoder.append(&bury, u64::MAX, &mut bytes), Some(26));
    assert_eq!(v1::STATE_LEN, 58);
}

#[test]
fn a_varints_length_is_worked_out_as_it_is_written() {
    let bits = (0..64).flat_map(|bit| [1u64 << bit, (1 << bit) - 1, (1 << bit) + 1]);
    for v in bits.chain([u64::MAX, 0, 100, 20_000]) {
        let written = reference::varint_bytes(v).len();
        assert_eq!(varint_len(v), written, "{v:#x}");
    }
}

/// A seeded generator (no dependency): xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Mostly small values, sometimes any: varints change length at every
    /// 7 bits, and zero leaves fields out.
    fn value(&mut self) -> u64 {
        match self.next() % 4 {
            0 => 0,
            1 => self.next() % 300,
            2 => self.next() >> (self.next() % 64),
            _ => self.next(),
        }
    }

    fn time(&mut self) -> i64 {
        match self.next() % 4 {
            0 => 0,
            1 => BASE + (self.next() % 1_000_000_000_000) as i64,
            2 => BASE - (self.next() % 1_000_000_000_000) as i64,
            _ => self.next() as i64,
        }
    }

    fn duration(&mut self) -> u64 {
        match self.next() % 3 {
            0 => 0,
            1 => (self.next() % 100_000) * 1_000_000_000,
            _ => self.value(),
        }
    }
}

fn random_update(rng: &mut Rng) -> JobUpdate {
    JobUpdate {
        id: rng.value() & MAX_JOB_ID,
        pri: rng.value() as u32,
        state: LoggedState::from_byte((rng.next() % 4) as u8).unwrap(),
        delay: rng.duration(),
        ready_at: rng.time(),
        reserves: rng.value() as u32,
        timeouts: rng.value() as u32,
        releases: rng.value() as u32,
        buries: rng.value() as u32,
        kicks: rng.value() as u32,
    }
}

#[test]
fn random_job_states_round_trip_in_both_formats() {
    let tubes: Vec<TubeName> =
        ["default", "a", "emails", &"t".repeat(127), &"x".repeat(200)].iter().map(|t| tube(t)).collect();
    let bodies: Vec<Vec<u8>> = vec![vec![], b"x".to_vec(), vec![0xff; 127], vec![7; 128], vec![1; 20_000]];
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    for round in 0..200 {
        let base_secs = [0, BASE_SECS, u32::MAX][round % 3];
        let mut records = Vec::new();
        for _ in 0..30 {
            let update = random_update(&mut rng);
            records.push(match rng.next() % 4 {
                0 | 1 => Record::Job(FullJob {
                    update,
                    tube: tubes[(rng.next() % tubes.len() as u64) as usize].clone(),
                    ttr: rng.duration(),
                    created_at: rng.time(),
                    body: &bodies[(rng.next() % bodies.len() as u64) as usize][..],
                }),
                2 => Record::State(update),
                _ => Record::Delete(update.id),
            });
        }
        for format in [Format::V1, Format::V2 { base_secs }] {
            let bytes = file_bytes(format, &records);
            let read = read_all(format, &bytes);
            assert_eq!(read.len(), records.len(), "round {round}, {format:?}");
            for (decoded, record) in read.into_iter().zip(&records) {
                match decoded {
                    Decoded::Record(got, _) => assert_eq!(&got, record, "round {round}, {format:?}"),
                    other => panic!("round {round}, {format:?}: {other:?} for {record:?}"),
                }
            }
            assert_eq!(full_record_ids(format, &bytes), records.iter().filter_map(job_id_of_job).collect::<Vec<_>>());
        }
    }
}

/// Format 2's encoder against the plain writer of the spec
/// (`reference`), byte for byte, over random records: fresh puts above all
/// (the encoder's common case) and every other shape of record, in files of
/// several tubes (declared, then declared again every so often), some
/// records offered less room than they take. A job's record goes through
/// [`FileEncoder::append_job_unsealed`], the entry a put's logging uses
/// (`binlog::tests::reference_bytes` holds the log's files to the same
/// writer, the records made from the engine's jobs).
#[test]
fn format_2_is_the_reference_writers_bytes() {
    let tubes: Vec<TubeName> = ["default", "a", "emails", &"x".repeat(200)].iter().map(|t| tube(t)).collect();
    let bodies: Vec<Vec<u8>> = vec![vec![], b"x".to_vec(), vec![0xff; 100], vec![7; 128], vec![1; 20_000]];
    let mut rng = Rng(0xfeed_5eed_0bad_cafe);
    for round in 0..60 {
        let base_secs = [BASE_SECS, 0, u32::MAX][round % 3];
        let mut encoder = FileEncoder::new(Format::V2 { base_secs });
        let mut reference = reference::ReferenceWriter::new(base_secs);
        let mut bytes = Vec::new();
        for n in 0..400 {
            let pick = |rng: &mut Rng, of: usize| (rng.next() % of as u64) as usize;
            // A run into one tube, now and then another.
            let tube = tubes
                [if rng.next().is_multiple_of(8) { pick(&mut rng, tubes.len()) } else { round % tubes.len() }]
            .clone();
            let body = &bodies[pick(&mut rng, bodies.len())][..];
            let record = match rng.next() % 10 {
                0..=5 => {
                    let id = rng.value() & MAX_JOB_ID;
                    let put = JobUpdate { pri: rng.value() as u32, ..fresh_put(id) };
                    let created_at = BASE + (rng.next() % 3_600_000_000_000) as i64;
                    let ttr = (1 + rng.next() % 100_000) * 1_000_000_000;
                    Record::Job(FullJob { update: put, tube, ttr, created_at, body })
                }
                6 => Record::Job(FullJob {
                    update: random_update(&mut rng),
                    tube,
                    ttr: rng.duration(),
                    created_at: rng.time(),
                    body,
                }),
                7 => Record::State(random_update(&mut rng)),
                8 => Record::Delete(rng.value() & MAX_JOB_ID),
                _ => Record::Padding(pick(&mut rng, 300)),
            };
            let room = if rng.next().is_multiple_of(10) { rng.next() % 300 } else { u64::MAX };
            let before = bytes.len();
            let appended = encoder.append_unsealed(&record, room, &mut bytes);
            let expected = reference.record(&record, room);
            match (appended, expected) {
                (Some(len), Some(expected)) => {
                    assert_eq!(hex(&bytes[before..]), hex(&expected), "round {round}, record {n}: {record:?}");
                    assert_eq!(len, expected.len());
                }
                (None, None) => assert_eq!(bytes.len(), before, "round {round}, record {n}: nothing appended"),
                (appended, expected) => panic!(
                    "round {round}, record {n}, room {room}: {appended:?} appended, the reference's {:?}: {record:?}",
                    expected.map(|e| e.len())
                ),
            }
        }
        seal_records(&mut bytes);
        let format = Format::V2 { base_secs };
        assert!(read_all(format, &bytes).iter().all(|d| matches!(d, Decoded::Record(..))), "round {round}");
    }
}

fn job_id_of_job(record: &Record<&[u8]>) -> Option<u64> {
    matches!(record, Record::Job(_)).then(|| record.job_id())
}

#[test]
fn every_flipped_bit_and_every_cut_is_detected_in_format_2() {
    let bytes = file_bytes(V2, &pinned_records());
    let mut at = 0;
    for (record, pinned) in pinned_records().iter().zip(PINNED) {
        let len = pinned.replace(' ', "").len() / 2;
        // The first record declares the tube the second refers to: read
        // each with the declarations before it.
        let decoder = || {
            let mut decoder = FileDecoder::new(V2);
            if at > 0 {
                assert!(matches!(decoder.decode(&bytes), Decoded::Record(..)));
            }
            decoder
        };
        let one = &bytes[at..at + len];
        for i in 0..len {
            for bit in 0..8 {
                let mut damaged = one.to_vec();
                damaged[i] ^= 1 << bit;
                assert!(
                    !matches!(decoder().decode(&damaged), Decoded::Record(ref r, _) if r == record),
                    "flip of bit {bit} at {i} of {record:?} went unnoticed"
                );
            }
        }
        for cut in 1..len {
            assert_eq!(decoder().decode(&one[..cut]), Decoded::Damaged, "{record:?} cut at {cut}");
        }
        at += len;
    }
}

#[test]
fn a_tube_index_not_declared_in_the_file_is_damage() {
    let records = pinned_records();
    let bytes = file_bytes(V2, &records[..2]);
    let first_len = PINNED[0].replace(' ', "").len() / 2;
    // The second record refers to the index the first declared: first in
    // a file, it cannot be read.
    let second = &bytes[first_len..];
    assert_eq!(decode(V2, second), Decoded::Damaged);
    assert!(is_record(V2, second), "its checksum and layout are valid: a record to resume at");
    assert_eq!(legible_id(V2, second), Some(1001));
    // After damage, or padding (written over damage a start skipped), the
    // declaration may have been lost there: the record tells its job's
    // state.
    let Record::Job(job) = &records[1] else { unreachable!() };
    for before in [vec![0xee; 20], padding(20)] {
        let mut decoder = FileDecoder::new(V2);
        let first = decoder.decode(&before);
        assert!(matches!(first, Decoded::Damaged | Decoded::Record(Record::Padding(_), _)));
        assert_eq!(decoder.decode(second), Decoded::Record(Record::State(job.update), second.len()));
    }
    // An index declared again as the same tube reads (the writer does so
    // every so often); as another tube, it is damage.
    let mut decoder = FileDecoder::new(V2);
    assert!(matches!(decoder.decode(&bytes), Decoded::Record(..)));
    assert!(matches!(decoder.decode(&bytes[..first_len]), Decoded::Record(..)), "index 0 declared again");
    let Record::Job(job) = &records[0] else { unreachable!() };
    let other = Record::Job(FullJob { tube: tube("other"), ..job.clone() });
    let other = file_bytes(V2, &[other]);
    assert_eq!(decoder.decode(&other), Decoded::Damaged, "index 0 declared as another tube");
}

#[test]
fn each_file_declares_its_own_tubes_and_a_restart_declares_above_them() {
    let job = |id, name: &str| {
        Record::Job(FullJob {
            update: JobUpdate { id, ..update(id) },
            tube: tube(name),
            ttr: 1_000_000_000,
            created_at: BASE,
            body: &b"b"[..],
        })
    };
    // A file read up to its end hands its declarations to a writer that
    // appends to it, which declares new tubes after them.
    let mut bytes = file_bytes(V2, &[job(1, "a"), job(2, "b"), job(3, "a")]);
    let mut decoder = FileDecoder::new(V2);
    let mut at = 0;
    while let Decoded::Record(_, len) = decoder.decode(&bytes[at..]) {
        at += len;
    }
    let mut encoder = FileEncoder::resume(V2, &decoder.into_declared());
    let before = bytes.len();
    encoder.append(&job(4, "b"), u64::MAX, &mut bytes).unwrap();
    let refers = bytes.len() - before;
    encoder.append(&job(5, "c"), u64::MAX, &mut bytes).unwrap();
    assert_eq!(bytes.len() - before - refers, refers + 2, "c declared: its index, length byte, name");
    let read = read_all(V2, &bytes);
    let tubes: Vec<_> = read
        .iter()
        .map(|d| match d {
            Decoded::Record(Record::Job(job), _) => job.tube.as_str().to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(tubes, ["a", "b", "a", "b", "c"]);
    // A new file's writer declares from scratch.
    let fresh = file_bytes(V2, &[job(6, "b")]);
    assert_eq!(fresh.len(), refers + 2);
}

#[test]
fn a_record_that_does_not_fit_changes_nothing() {
    let records = pinned_records();
    let mut encoder = FileEncoder::new(V2);
    let mut bytes = Vec::new();
    assert_eq!(encoder.append(&records[0], 31, &mut bytes), None, "32 bytes in 31");
    assert!(bytes.is_empty());
    // Still undeclared: the next file gets the declaration.
    assert_eq!(encoder.append(&records[0], 32, &mut bytes), Some(32));
    assert_eq!(hex(&bytes), PINNED[0].replace(' ', ""));
}

#[test]
fn zeros_are_the_end() {
    for format in [Format::V1, V2] {
        assert_eq!(decode(format, &[0; 100]), Decoded::End);
        assert_eq!(decode(format, &[]), Decoded::End);
        assert_eq!(decode(format, &[0, 0]), Decoded::End);
        let mut almost = [0u8; 100];
        almost[7] = 1;
        assert_eq!(decode(format, &almost), Decoded::Damaged);
    }
}

#[test]
fn padding_is_the_same_in_both_formats() {
    for len in [9, 12, 100] {
        let bytes = padding(len);
        assert_eq!(bytes.len(), len);
        for format in [Format::V1, V2] {
            assert_eq!(decode(format, &bytes), Decoded::Record(Record::Padding(len - 9), len));
        }
    }
}

#[test]
fn a_delete_made_without_an_encoder_is_the_formats_own() {
    for id in [1, 300, 1 << 40, MAX_JOB_ID] {
        let mut made = unsealed_delete_record(id);
        seal_records(&mut made);
        for format in [Format::V1, V2] {
            assert_eq!(made.as_slice(), file_bytes(format, &[Record::Delete(id)]), "{id} in {format:?}");
        }
    }
}

#[test]
fn records_sealed_at_once_are_those_sealed_one_by_one() {
    for format in [Format::V1, V2] {
        let records = pinned_records();
        let sealed = file_bytes(format, &records);
        let mut encoder = FileEncoder::new(format);
        let mut unsealed = Vec::new();
        for record in &records {
            encoder.append_unsealed(record, u64::MAX, &mut unsealed).expect("room enough");
        }
        if format == V2 {
            assert_ne!(unsealed, sealed, "format 2 leaves the CRCs out");
        }
        seal_records(&mut unsealed);
        assert_eq!(unsealed, sealed, "{format:?}");
    }
}

#[test]
fn headers_of_both_versions_round_trip() {
    for format in [Format::V1, V2] {
        let header = Header { seq: 42, next_id: 1000, format };
        let bytes = header.encode();
        assert_eq!(Header::decode(&bytes), Ok(header));
        let mut bad = bytes;
        bad[13] ^= 1;
        assert!(Header::decode(&bad).unwrap_err().to_string().contains("checksum"));
        let last = Header { seq: 1, next_id: MAX_JOB_ID + 1, format };
        assert_eq!(Header::decode(&last.encode()), Ok(last));
        let past = Header { seq: 1, next_id: MAX_JOB_ID + 2, format };
        assert!(Header::decode(&past.encode()).unwrap_err().to_string().contains("past the largest job id"));
    }
    let mut beanstalkd = [0u8; 64];
    beanstalkd[0] = 7;
    assert_eq!(Header::decode(&beanstalkd), Err(HeaderError::Beanstalkd));
    assert!(Header::decode(&Header::new(1, 1).encode()[..10]).is_err());
    assert_eq!(Header::new(1, 1).format.version(), VERSION);
}

/// Format 2's header: seq and base time in 32 bits each where format 1
/// has the seq in 64; the rest where format 1 has it.
#[test]
fn the_format_2_header_is_these_bytes() {
    let bytes = Header { seq: 3, next_id: 1000, format: V2 }.encode();
    assert_eq!(hex(&bytes[..28]), "5350524f5554574c 02000000 03000000 00f15365 e803000000000000".replace(' ', ""));
    assert_eq!(u32::from_le_bytes(bytes[28..].try_into().unwrap()), crc32fast::hash(&bytes[..28]));
}

#[test]
fn a_newer_format_is_refused_by_name_and_a_damaged_version_is_damage() {
    let mut bytes = Header { seq: 3, next_id: 1000, format: V2 }.encode();
    bytes[8] = 3;
    let crc = crc32fast::hash(&bytes[..28]);
    bytes[28..].copy_from_slice(&crc.to_le_bytes());
    let newer = Header::decode(&bytes).unwrap_err();
    assert_eq!(newer, HeaderError::NewerFormat(3));
    assert!(newer.to_string().contains("written by a newer sprout"), "{newer}");
    bytes[8] = 4;
    assert!(matches!(Header::decode(&bytes), Err(HeaderError::Damaged(_))));
}

/// fuzz/regressions/binlog/job-id-u64-max: the next id overflowed when
/// the engine restored the job. Both formats treat an id past the largest
/// as damage.
#[test]
fn an_id_past_the_largest_is_damage() {
    for format in [Format::V1, V2] {
        for id in [MAX_JOB_ID + 1, u64::MAX] {
            let bytes = file_bytes(format, &[Record::Delete(id)]);
            assert_eq!(decode(format, &bytes), Decoded::Damaged, "delete of {id}");
            let bytes = file_bytes(format, &[Record::State(JobUpdate { id, ..update(1) })]);
            assert_eq!(decode(format, &bytes), Decoded::Damaged, "state of {id}");
            assert!(!is_record(format, &bytes));
        }
        let bytes = file_bytes(format, &[Record::Delete(MAX_JOB_ID)]);
        assert_eq!(decode(format, &bytes), Decoded::Record(Record::Delete(MAX_JOB_ID), 17));
        let bytes = file_bytes(format, &[Record::State(JobUpdate { id: MAX_JOB_ID, ..update(1) })]);
        assert!(matches!(decode(format, &bytes), Decoded::Record(..)));
    }
}

#[test]
fn a_flag_for_a_zero_field_or_an_unknown_flag_is_damage() {
    // The pinned state record with its flags changed and its CRC made
    // again: the delay flag off leaves bytes over; an unknown flag, a
    // tube declaration in a state record.
    let good = hex_bytes(PINNED[2]);
    for flags in [0x12, 0x9a, 0x5a] {
        let mut bytes = good.clone();
        bytes[9] = flags;
        seal(&mut bytes, 0);
        assert_eq!(decode(V2, &bytes), Decoded::Damaged, "flags {flags:#x}");
    }
    // A delay flagged and written as zero.
    let mut bytes = hex_bytes("0000000007000000 02 08 e807 8008 00");
    seal(&mut bytes, 0);
    assert_eq!(decode(V2, &bytes), Decoded::Damaged);
    // The same without the flag and the zero: a record.
    bytes[9] = 0;
    bytes.truncate(bytes.len() - 1);
    bytes[4] = 6;
    seal(&mut bytes, 0);
    assert!(matches!(decode(V2, &bytes), Decoded::Record(Record::State(_), 14)));
}

fn hex_bytes(s: &str) -> Vec<u8> {
    let s = s.replace(' ', "");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

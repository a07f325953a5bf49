//! A torn tail at every offset: a crash in the middle of the last record.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

use tempfile::TempDir;

use crate::files::{
    KIND_DELETE, KIND_JOB, KIND_STATE, RecordPos, copy_binlog, names_file_and_offset, newest_records, patch,
};
use crate::support::{Exited, inserted_id};
use crate::{SYNCED_SMALL_FILES, check_jobs, launch, start};

/// What the last record of the log does to its job.
#[derive(Clone, Copy, Debug)]
enum LastRecord {
    /// `put`: the job is there only if the whole record is.
    Put,
    /// `bury` of a ready job: ready without the record, buried with it.
    Bury,
    /// `delete`: the job is there unless the whole record is.
    Delete,
}

/// Logs three jobs (ready, delayed, buried), then `last` as the final
/// record, and kills the server. Then for every cut k from 0 to the
/// record's length, a copy of the log whose last record kept only its first
/// k bytes (zeros after, as a crash leaves a preallocated file) must start
/// with a warning naming the file and offset (once the cut tore the
/// record), keep every earlier job, treat the subject as the cut says, hand
/// out ids above every id still logged, and read back what it appends
/// after another crash. Four threads share the cuts.
fn torn_tail(last: LastRecord) {
    let dir = TempDir::new().unwrap();
    let mut server = start(dir.path(), &SYNCED_SMALL_FILES);
    let mut c = server.connect();
    let mut earlier = BTreeMap::new();
    let ready = c.put(1, 0, 60, b"earlier ready");
    earlier.insert(ready, Some(b"earlier ready".to_vec()));
    let delayed = c.put(2, 3600, 60, b"earlier delayed");
    earlier.insert(delayed, Some(b"earlier delayed".to_vec()));
    let buried = c.put(3, 0, 60, b"earlier buried");
    c.request(format!("reserve-job {buried}\r\n"));
    c.exchange(format!("bury {buried} 3\r\n"), "BURIED\r\n");
    earlier.insert(buried, Some(b"earlier buried".to_vec()));
    // The body ends in a non-zero byte, so zeroing any tail changes it.
    let body = b"the subject\r\n\0of the last record!".to_vec();
    let subject = c.put(4, 0, 60, &body);
    let kind = match last {
        LastRecord::Put => KIND_JOB,
        LastRecord::Bury => {
            c.request(format!("reserve-job {subject}\r\n"));
            c.exchange(format!("bury {subject} 5\r\n"), "BURIED\r\n");
            KIND_STATE
        }
        LastRecord::Delete => {
            c.exchange(format!("delete {subject}\r\n"), "DELETED\r\n");
            KIND_DELETE
        }
    };
    server.kill9();
    let (file, recs) = newest_records(dir.path());
    let rec = *recs.last().unwrap();
    assert_eq!((rec.kind, rec.id), (kind, subject), "the last record of {file} is not the {last:?} of job {subject}");
    let bytes = fs::read(dir.path().join(&file)).unwrap();
    let torn_cuts = bytes[rec.offset..rec.offset + rec.len].iter().rposition(|&b| b != 0).unwrap();
    eprintln!(
        "torn tail ({last:?}): last record of {file} at offset {}, {} bytes; cuts after 1..={torn_cuts} bytes \
         tear it, longer cuts only drop trailing zeros",
        rec.offset, rec.len
    );

    let next_k = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let k = next_k.fetch_add(1, Ordering::Relaxed);
                    if k > rec.len {
                        return;
                    }
                    let case = TornCase {
                        src: dir.path(),
                        file: &file,
                        rec,
                        k,
                        last,
                        subject,
                        body: &body,
                        earlier: &earlier,
                    };
                    let found = case.run();
                    failures.lock().unwrap().extend(
                        found.into_iter().map(|f| format!("{last:?}, cut after {k} of {} bytes: {f}", rec.len)),
                    );
                }
            });
        }
    });
    eprintln!("torn tail ({last:?}): {} cuts checked in {:?}", rec.len + 1, started.elapsed());
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

struct TornCase<'a> {
    src: &'a Path,
    file: &'a str,
    rec: RecordPos,
    /// Bytes of the last record that made it to disk.
    k: usize,
    last: LastRecord,
    subject: u64,
    body: &'a [u8],
    earlier: &'a BTreeMap<u64, Option<Vec<u8>>>,
}

impl TornCase<'_> {
    fn run(&self) -> Vec<String> {
        let copy = copy_binlog(self.src);
        let path = copy.path().join(self.file);
        let (offset, len, k) = (self.rec.offset, self.rec.len, self.k);
        // A record whose last bytes are zeros is whole once its last
        // non-zero byte is written: zeroing the rest changes nothing.
        let original = fs::read(&path).unwrap();
        let whole = original[offset + k..offset + len].iter().all(|&b| b == 0);
        // Likewise a cut that kept only zeros (the checksum's first byte is
        // 0 in one run of 256) looks like no write at all: the records just
        // end there, and there is nothing to warn about.
        let begun = original[offset..offset + k].iter().any(|&b| b != 0);
        patch(&path, offset + k, |b| b[..len - k].fill(0));
        let server = match launch(copy.path(), &SYNCED_SMALL_FILES) {
            Ok(server) => server,
            Err(Exited { status, stderr }) => return vec![format!("refused to start ({status}); stderr:\n{stderr}")],
        };
        let mut failures = Vec::new();
        let stderr = server.stderr_text();
        if begun && !whole && !names_file_and_offset(&stderr, &path, offset) {
            failures.push(format!("no warning naming {} and offset {offset}; stderr:\n{stderr}", path.display()));
        }
        let mut c = server.connect();
        let mut expected = self.earlier.clone();
        let subject_body = match self.last {
            LastRecord::Put if !whole => None,
            LastRecord::Delete if whole => None,
            _ => Some(self.body.to_vec()),
        };
        expected.insert(self.subject, subject_body.clone());
        failures.extend(check_jobs(&mut c, &expected));
        if let LastRecord::Bury = self.last {
            let want = if whole { "buried" } else { "ready" };
            match c.stats_job(self.subject) {
                Some(s) if s["state"] == want => {}
                other => failures.push(format!("job {}: stats-job {other:?}, expected state {want}", self.subject)),
            }
        }
        // New ids go above every id that is still in the log.
        let subject_put_logged = !matches!(self.last, LastRecord::Put) || whole;
        let highest = self.earlier.keys().copied().chain(subject_put_logged.then_some(self.subject)).max();
        let new_body = format!("after the cut at {k}").into_bytes();
        let reply = c.put_reply(0, 0, 60, &new_body);
        let Some(new_id) = inserted_id(reply.as_bytes()) else {
            failures.push(format!("put after recovery answered {reply:?}"));
            return failures;
        };
        if Some(new_id) <= highest {
            failures.push(format!("put after recovery got id {new_id}, not above {highest:?}"));
        }
        // What is appended after the cut reads back after another crash.
        drop(c);
        let mut server = server;
        server.kill9();
        let server = match launch(copy.path(), &SYNCED_SMALL_FILES) {
            Ok(server) => server,
            Err(Exited { status, stderr }) => {
                failures.push(format!("second restart refused ({status}); stderr:\n{stderr}"));
                return failures;
            }
        };
        expected.insert(new_id, Some(new_body));
        failures
            .extend(check_jobs(&mut server.connect(), &expected).into_iter().map(|f| format!("second restart: {f}")));
        failures
    }
}

#[test]
fn torn_last_put_is_cut_at_every_offset() {
    torn_tail(LastRecord::Put);
}

#[test]
fn torn_last_bury_is_cut_at_every_offset() {
    torn_tail(LastRecord::Bury);
}

#[test]
fn torn_last_delete_is_cut_at_every_offset() {
    torn_tail(LastRecord::Delete);
}

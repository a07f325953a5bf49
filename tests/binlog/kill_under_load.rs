//! `kill -9` under load: acknowledged changes survive.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use crate::support::{Addr, Client, Rng, inserted_id, put_command};
use crate::{check_jobs, current_jobs, start};

/// What one client saw acknowledged before the server died.
#[derive(Default)]
struct LoadLog {
    puts: Vec<(u64, Vec<u8>)>,
    deletes: Vec<u64>,
    /// A delete sent but not answered: the job may or may not be there.
    delete_in_flight: Option<u64>,
    /// A put sent but not answered: a job with an unknown id may exist.
    put_in_flight: bool,
    /// Replies that are neither success nor a dead connection.
    unexpected: Vec<String>,
}

/// Puts jobs and deletes every third one until the connection dies.
fn load_client(addr: &Addr, tag: String, barrier: &Barrier) -> LoadLog {
    let mut log = LoadLog::default();
    let client = Client::try_connect(addr);
    barrier.wait();
    let Ok(mut c) = client else { return log };
    // A reply, or `None` once the connection is dead.
    let reply = |c: &mut Client| c.try_read_reply(Duration::from_secs(10)).ok();
    for n in 0..1_000_000u64 {
        let body = format!("{tag}-{n}-{}", "p".repeat((n % 40) as usize)).into_bytes();
        if c.try_send(put_command(0, 0, 120, &body)).is_err() {
            log.put_in_flight = true;
            return log;
        }
        let Some(line) = reply(&mut c) else {
            log.put_in_flight = true;
            return log;
        };
        match inserted_id(&line) {
            Some(id) => log.puts.push((id, body)),
            None => log.unexpected.push(format!("put: {:?}", String::from_utf8_lossy(&line))),
        }
        if n % 3 == 2 {
            let Some(&(id, _)) = log.puts.get(log.puts.len().wrapping_sub(2)) else { continue };
            if c.try_send(format!("delete {id}\r\n")).is_err() {
                log.delete_in_flight = Some(id);
                return log;
            }
            match reply(&mut c).as_deref() {
                Some(b"DELETED\r\n") => log.deletes.push(id),
                Some(other) => log.unexpected.push(format!("delete {id}: {:?}", String::from_utf8_lossy(other))),
                None => {
                    log.delete_in_flight = Some(id);
                    return log;
                }
            }
        }
    }
    log
}

/// Five rounds of load and `kill -9` on one directory: four clients put
/// and delete until the server is killed after a random 50 to 300 ms. After
/// each restart every acknowledged put is there (unless its delete was
/// acknowledged), every acknowledged delete stays deleted, a delete in
/// flight may have gone either way, the job count allows only the puts in
/// flight on top, no id is acknowledged twice, and new ids go above every
/// acknowledged one.
fn kill_loop(flags: &[&str], label: &str) {
    let dir = TempDir::new().unwrap();
    let mut rng = Rng(0x5EED_0FB1_A710_C5A7 ^ flags.len() as u64);
    // Jobs that must be there, must not, and may be either.
    let mut live: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut deleted: BTreeSet<u64> = BTreeSet::new();
    let mut maybe: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut unknown_puts = 0u64;
    let mut seen_ids: HashSet<u64> = HashSet::new();
    let mut max_acked = 0;
    let mut failures = Vec::new();
    for round in 0..=5 {
        let mut server = start(dir.path(), flags);
        let mut c = server.connect();
        // Everything acknowledged before the crash is there, exactly.
        let mut expected: BTreeMap<u64, Option<Vec<u8>>> =
            live.iter().map(|(&id, b)| (id, Some(b.clone()))).chain(deleted.iter().map(|&id| (id, None))).collect();
        failures.extend(check_jobs(&mut c, &expected).into_iter().map(|f| format!("{label}, restart {round}: {f}")));
        for (id, body) in std::mem::take(&mut maybe) {
            match c.peek(id) {
                None => {
                    deleted.insert(id);
                }
                Some(got) if got == body => {
                    live.insert(id, body);
                }
                Some(got) => {
                    failures.push(format!("{label}, restart {round}: job {id} (delete unanswered) has body {got:?}"))
                }
            }
        }
        let count = current_jobs(&mut c);
        if count < live.len() as u64 || count > live.len() as u64 + unknown_puts {
            failures.push(format!(
                "{label}, restart {round}: {count} jobs, expected {} acknowledged plus at most {unknown_puts} unanswered puts",
                live.len()
            ));
        }
        if round == 5 {
            let next = c.put(0, 0, 60, b"last");
            if next <= max_acked {
                failures
                    .push(format!("{label}: id {next} after the last restart, {max_acked} was acknowledged before"));
            }
            break;
        }
        drop(c);
        expected.clear();

        let delay = Duration::from_millis(50 + rng.below(251));
        let barrier = Barrier::new(5);
        let addr = server.addr().clone();
        let logs: Vec<LoadLog> = thread::scope(|s| {
            let (addr, barrier) = (&addr, &barrier);
            let handles: Vec<_> =
                (0..4).map(|t| s.spawn(move || load_client(addr, format!("r{round}t{t}"), barrier))).collect();
            barrier.wait();
            thread::sleep(delay);
            server.kill9();
            handles.into_iter().map(|h| h.join().expect("load client")).collect()
        });
        let (mut puts, mut dels) = (0, 0);
        for log in logs {
            failures.extend(log.unexpected.iter().map(|u| format!("{label}, round {round}: unexpected reply {u}")));
            puts += log.puts.len();
            dels += log.deletes.len();
            for (id, body) in log.puts {
                if !seen_ids.insert(id) {
                    failures.push(format!("{label}, round {round}: id {id} acknowledged twice (reused after a crash)"));
                }
                max_acked = max_acked.max(id);
                live.insert(id, body);
            }
            for id in log.deletes {
                live.remove(&id);
                deleted.insert(id);
            }
            if let Some((id, body)) = log.delete_in_flight.and_then(|id| live.remove_entry(&id)) {
                maybe.insert(id, body);
            }
            unknown_puts += u64::from(log.put_in_flight);
        }
        eprintln!("{label}, round {round}: killed after {delay:?}: {puts} puts and {dels} deletes acknowledged");
        if puts == 0 {
            failures.push(format!("{label}, round {round}: no put was acknowledged in {delay:?}"));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Replies do not wait for the disk (`-f 50`), but the records are written
/// before them: a killed process loses nothing the kernel has.
#[test]
fn kill_9_loop_under_load_default_fsync() {
    kill_loop(&[], "default -f 50");
}

/// The same in 4 KiB files: a hundred and more files a round are made all
/// through the load, each made durable by the sync thread, not the loop.
#[test]
fn kill_9_loop_under_load_default_fsync_small_files() {
    kill_loop(&["-s", "4096"], "default -f 50, 4 KiB files");
}

/// Every reply waits for the fsync of its records (`-f 0`).
#[test]
fn kill_9_loop_under_load_fsync_always() {
    kill_loop(&["-f", "0"], "-f 0");
}

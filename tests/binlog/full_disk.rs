//! A full disk refuses puts, keeps serving, and restarts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::files::binlog_disk_use;
use crate::support::{self, Client, inserted_id};
use crate::{check_jobs, current_jobs, start};

/// Unmounts the tmpfs when dropped, even when the test fails.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Puts 1 KB jobs until `OUT_OF_MEMORY`; returns how many were inserted.
fn fill(c: &mut Client, acked: &mut BTreeMap<u64, Vec<u8>>, tag: &str) -> usize {
    for n in 0..100_000 {
        let mut body = format!("{tag} {n} ").into_bytes();
        body.resize(1024, b'.');
        let reply = c.put_reply(0, 0, 60, &body);
        match inserted_id(reply.as_bytes()) {
            Some(id) => {
                acked.insert(id, body);
            }
            None if reply == "OUT_OF_MEMORY\r\n" => return n,
            None => panic!("put on a filling disk answered {reply:?}"),
        }
    }
    panic!("100000 puts of 1 KB fit on a 2 MB tmpfs");
}

/// On a 2 MB tmpfs: puts fill it until OUT_OF_MEMORY, everything else goes
/// on, deletes free files so puts succeed again, and after `kill -9` with
/// the disk full the server restarts on it with every acknowledged job.
#[test]
fn a_full_disk_refuses_puts_keeps_serving_and_restarts() {
    let test = "a_full_disk_refuses_puts_keeps_serving_and_restarts";
    if !support::is_root() {
        support::skip(test, "not running as root (tmpfs mount needed)");
        return;
    }
    let mnt = TempDir::new().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(mnt.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        support::skip(test, "cannot mount a tmpfs");
        return;
    }
    let _unmount = Unmount(mnt.path().to_path_buf());
    let dir = mnt.path().join("binlog");
    let flags = ["-s", "65536"];
    let mut server = start(&dir, &flags);
    let mut c = server.connect();
    let mut acked = BTreeMap::new();
    let first = fill(&mut c, &mut acked, "first");
    eprintln!("full disk: {first} puts of 1 KB before OUT_OF_MEMORY on a 2 MB tmpfs, {:?}", binlog_disk_use(&dir));
    assert!(first > 100, "only {first} puts fit");
    // Still serving.
    let s = c.stats();
    assert_eq!(s.num("current-jobs-ready"), acked.len() as u64);
    let (&some_id, some_body) = acked.iter().next().unwrap();
    assert_eq!(c.peek(some_id).as_ref(), Some(some_body));
    c.exchange("list-tube-used\r\n", "USING default\r\n");
    // Nothing was freed: a put of the same size is still refused.
    assert_eq!(c.put_reply(0, 0, 60, [b'f'; 1024]), "OUT_OF_MEMORY\r\n");
    // Deleting the oldest jobs frees their files; puts succeed again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut freed = 0;
    let recovered_id = loop {
        assert!(Instant::now() < deadline, "puts still refused after deleting {freed} jobs");
        let oldest: Vec<u64> = acked.keys().take(20).copied().collect();
        for id in oldest {
            c.exchange(format!("delete {id}\r\n"), "DELETED\r\n");
            acked.remove(&id);
            freed += 1;
        }
        thread::sleep(Duration::from_millis(100));
        let mut body = b"room again ".to_vec();
        body.resize(1024, b'.');
        let reply = c.put_reply(0, 0, 60, &body);
        if let Some(id) = inserted_id(reply.as_bytes()) {
            acked.insert(id, body);
            break id;
        }
        assert_eq!(reply, "OUT_OF_MEMORY\r\n");
    };
    eprintln!("full disk: puts succeed again (job {recovered_id}) after deleting the {freed} oldest jobs");
    let second = fill(&mut c, &mut acked, "second");
    eprintln!("full disk: {second} more puts before OUT_OF_MEMORY again");
    // kill -9 with the disk full, and restart on the full disk.
    drop(c);
    server.kill9();
    let server = start(&dir, &flags);
    eprintln!("full disk: restart stderr: {}", server.stderr_text().trim_end());
    let mut c = server.connect();
    assert_eq!(current_jobs(&mut c), acked.len() as u64, "jobs after a restart on a full disk");
    let expected: BTreeMap<u64, Option<Vec<u8>>> = acked.iter().map(|(&id, b)| (id, Some(b.clone()))).collect();
    let failures = check_jobs(&mut c, &expected);
    assert!(failures.is_empty(), "after a restart on a full disk:\n{}", failures.join("\n"));
    // It serves: deletes work, and once they free a file, puts too.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "puts still refused after the restart and deletes");
        let oldest: Vec<u64> = acked.keys().take(20).copied().collect();
        for id in oldest {
            c.exchange(format!("delete {id}\r\n"), "DELETED\r\n");
            acked.remove(&id);
        }
        thread::sleep(Duration::from_millis(100));
        if c.put_reply(0, 0, 60, [b'a'; 1024]).starts_with("INSERTED ") {
            break;
        }
    }
    drop(c);
    drop(server);
}

//! The lock that keeps two servers off one binlog directory: two sprouts,
//! or a sprout and a beanstalkd.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::OpenError;

/// Held for the life of the process on `DIR/lock`, and released by the
/// kernel when the process exits, even on `kill -9`. Two locks, because the
/// kernel keeps two kinds that do not see each other: an exclusive `flock`
/// (what sprout has always taken) and a POSIX write lock over the whole file
/// (what beanstalkd takes, `fcntl(F_SETLK)`), so that neither a running
/// beanstalkd nor a beanstalkd started later can share the directory with
/// sprout. The file holds the owner's pid, which the refusal names.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes both locks, or says who holds the directory.
    pub fn acquire(dir: &Path) -> Result<DirLock, OpenError> {
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| OpenError::Io(format!("cannot open {}: {e}", path.display())))?;
        let refuse = |holder: String, err: io::Error| {
            OpenError::Locked(format!(
                "binlog directory {} is in use by {holder} (lock {}: {err}); each server needs its own -b \
                 directory",
                dir.display(),
                path.display()
            ))
        };
        // SAFETY: flock takes no pointers and only changes the lock state of
        // a descriptor we own, open for the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let holder = match owner.trim() {
                "" => "another process".to_string(),
                pid => format!("process {pid}"),
            };
            return Err(refuse(holder, err));
        }
        if let Err(err) = posix_lock(&file) {
            let holder = match posix_lock_holder(&file) {
                Some(pid) => format!("process {pid} ({})", program_of(pid)),
                None => "another process".to_string(),
            };
            return Err(refuse(holder, err));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{}", std::process::id());
        Ok(DirLock { _file: file })
    }
}

/// A POSIX write lock over the whole file, as beanstalkd takes it.
fn posix_lock(file: &File) -> io::Result<()> {
    let mut lock = whole_file_write_lock();
    // SAFETY: F_SETLK reads the flock struct we pass, which lives for the
    // call; the descriptor is ours and open.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &mut lock) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The pid of a process holding a POSIX lock that conflicts with ours.
fn posix_lock_holder(file: &File) -> Option<u32> {
    let mut lock = whole_file_write_lock();
    // SAFETY: F_GETLK reads and writes the flock struct we pass, which lives
    // for the call; the descriptor is ours and open.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    (r == 0 && lock.l_type != libc::F_UNLCK as libc::c_short).then_some(lock.l_pid as u32)
}

fn whole_file_write_lock() -> libc::flock {
    libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// The program a process runs, for messages (`beanstalkd`, `sprout`).
fn program_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or_else(|_| "unknown".into(), |s| s.trim().into())
}

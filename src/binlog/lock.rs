//! The lock that keeps two servers off one binlog directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Held for the life of the process: the lock is an `fcntl` write lock on
/// `DIR/lock`, released by the kernel when the process exits, even on
/// `kill -9`. The file also holds the owner's pid, for people.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, String> {
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut lock = whole_file_write_lock();
        // SAFETY: fcntl reads and writes the flock struct it is given.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } != 0 {
            let err = io::Error::last_os_error();
            let holder = if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) } == 0
                && lock.l_type != libc::F_UNLCK as libc::c_short
            {
                format!("process {}", lock.l_pid)
            } else {
                "another process".to_string()
            };
            return Err(format!(
                "binlog directory {} is in use by {holder} (lock {}: {err}); \
                 each sprout needs its own -b directory",
                dir.display(),
                path.display()
            ));
        }
        let _ = file.set_len(0);
        let _ = writeln!(file, "{}", std::process::id());
        Ok(DirLock { _file: file })
    }
}

fn whole_file_write_lock() -> libc::flock {
    // SAFETY: flock is plain data; zero is a valid starting point.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 0;
    lock.l_len = 0;
    lock
}

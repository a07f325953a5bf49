//! The lock that keeps two servers off one binlog directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::OpenError;

/// Held for the life of the process: an exclusive `flock` on `DIR/lock`,
/// released by the kernel when the process exits, even on `kill -9`. The
/// file holds the owner's pid, which the refusal names.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
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
        // SAFETY: flock only touches the descriptor's lock state.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let holder = match owner.trim() {
                "" => "another process".to_string(),
                pid => format!("process {pid}"),
            };
            return Err(OpenError::Locked(format!(
                "binlog directory {} is in use by {holder} (lock {}: {err}); \
                 each sprout needs its own -b directory",
                dir.display(),
                path.display()
            )));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{}", std::process::id());
        Ok(DirLock { _file: file })
    }
}

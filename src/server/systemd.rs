//! The two systemd protocols sprout speaks, without libsystemd: socket
//! activation (`LISTEN_FDS`) and readiness notification (`NOTIFY_SOCKET`).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The first descriptor systemd passes.
const LISTEN_FDS_START: RawFd = 3;

/// The name systemd gives a passed socket whose unit says
/// `FileDescriptorName=metrics`: sprout serves metrics on it.
pub const METRICS_FD_NAME: &str = "metrics";

/// The listening sockets systemd passed to this process, if any, owned from
/// now on, each with its name (`LISTEN_FDNAMES`: the socket unit's
/// `FileDescriptorName=`, by default the unit's name; empty if systemd
/// gave none). The variables are removed, so that a second call (or a
/// child process) cannot claim the same descriptors again.
pub fn listen_fds() -> Vec<(OwnedFd, String)> {
    let pid = std::env::var("LISTEN_PID").ok().and_then(|v| v.parse::<u32>().ok());
    let count = std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse::<i32>().ok());
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let mut names = names.split(':').map(str::to_string);
    // SAFETY: called at startup, before any other thread exists.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    match (pid, count) {
        (Some(pid), Some(count)) if pid == std::process::id() && count > 0 => (LISTEN_FDS_START
            ..LISTEN_FDS_START + count)
            // SAFETY: systemd passed these descriptors to this process (the
            // pid says so), open, for it alone; nothing else in the process
            // refers to them, and the variables naming them are gone, so
            // each is owned exactly once.
            .map(|fd| (unsafe { OwnedFd::from_raw_fd(fd) }, names.next().unwrap_or_default()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Sends a state line (`READY=1`, `STOPPING=1`) to the service manager, if
/// it asked for them (`Type=notify` sets `NOTIFY_SOCKET`).
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let message = format!("{state}\nMAINPID={}\n", std::process::id());
    if let Err(e) = send(&path, message.as_bytes()) {
        log::warn!("cannot notify systemd ({}): {e}", path.to_string_lossy());
    }
}

fn send(path: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<usize> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    // A leading '@' names a socket in the abstract namespace.
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(message, &addr)
    } else {
        socket.send_to(message, path)
    }
}

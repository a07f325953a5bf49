//! What `/proc` says about a process: memory, CPU time, parent, ids, limits.

use std::fs;

/// One line of `/proc/PID/status` (`VmRSS`, `Uid`, `Groups`, ...), after
/// its `Key:`.
pub fn status_field(pid: u32, key: &str) -> String {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let prefix = format!("{key}:");
    let line = status.lines().find_map(|l| l.strip_prefix(&prefix));
    line.unwrap_or_else(|| panic!("no {key} in {path}")).trim().to_string()
}

/// A `kB` field of `/proc/PID/status`, in kB.
fn status_kb(pid: u32, key: &str) -> u64 {
    let value = status_field(pid, key);
    let kb = value.strip_suffix(" kB").and_then(|n| n.trim().parse().ok());
    kb.unwrap_or_else(|| panic!("{key} of {pid} is not in kB: {value:?}"))
}

/// Resident set size now, in kB.
pub fn resident_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS")
}

/// The largest resident set size so far, in kB.
pub fn peak_resident_kb(pid: u32) -> u64 {
    status_kb(pid, "VmHWM")
}

/// Address space in use now (`VmSize`), in kB: what was allocated, touched
/// or not.
pub fn virtual_kb(pid: u32) -> u64 {
    status_kb(pid, "VmSize")
}

/// The file descriptors the process has open now.
pub fn open_fds(pid: u32) -> Vec<u32> {
    let dir = format!("/proc/{pid}/fd");
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {dir}: {e}"));
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Bytes that arrived on the TCP connections of local port `port` and that
/// the process holding them has not read yet (the `rx_queue` of
/// `/proc/net/tcp` and `tcp6`, listening sockets left out): 0 once a server
/// on `port` has read everything its clients sent.
pub fn unread_bytes_on_port(port: u16) -> u64 {
    const LISTEN: &str = "0A";
    let mut unread = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields[1].rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port != Some(port) || fields[3] == LISTEN {
                continue;
            }
            let rx_queue = fields[4].split_once(':').expect("tx_queue:rx_queue").1;
            unread += u64::from_str_radix(rx_queue, 16).expect("a hex rx_queue");
        }
    }
    unread
}

/// The real, effective, saved and file-system ids of `Uid` or `Gid`.
pub fn ids(pid: u32, key: &str) -> Vec<u32> {
    status_field(pid, key).split_whitespace().map(|n| n.parse().unwrap()).collect()
}

/// The fields of `/proc/PID/stat` after the command name (which may hold
/// spaces and parentheses, so they start after the last `)`): the state
/// first, then the parent pid, ...; `None` once the process is gone.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.rsplit_once(')')?.1.split_whitespace().map(String::from).collect())
}

/// The parent's pid, while the process exists.
pub fn parent_pid(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// CPU time (user + system) the process used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let fields = stat_fields(pid).unwrap_or_else(|| panic!("process {pid} is gone"));
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / clock_ticks_per_second() as f64
}

/// The kernel's unit of CPU time in `/proc/PID/stat`.
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes an integer, touches no memory of ours and has no
    // other precondition.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).expect("_SC_CLK_TCK")
}

/// The soft limit on open files of a process (`/proc/PID/limits`).
pub fn open_files_limit(pid: u32) -> u64 {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("read /proc/PID/limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("a Max open files line");
    let soft = line["Max open files".len()..].split_whitespace().next().expect("a soft limit");
    soft.parse().unwrap_or(u64::MAX) // "unlimited"
}

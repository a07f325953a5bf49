//! Facts about this process and machine, read once at startup, for `stats`
//! ([`HostInfo`]); and the one process limit sprout raises.

use std::ffi::CStr;
use std::io::Read;

/// The protocol version sprout reports in `stats`. Admin tools compare it to
/// decide which commands exist, so it names the beanstalkd release whose
/// protocol sprout speaks.
pub const PROTOCOL_VERSION: &str = "1.12";

/// Facts about the process and machine that `stats` reports. The server
/// fills them in; tests use fixed values.
#[derive(Clone, Debug)]
pub struct HostInfo {
    pub pid: u32,
    pub version: String,
    /// 16 hex digits, random per process start.
    pub instance_id: String,
    pub hostname: String,
    pub os: String,
    pub platform: String,
    /// User and system CPU time used so far, in microseconds.
    pub rusage: fn() -> (u64, u64),
}

impl HostInfo {
    /// Fixed values for tests.
    pub fn fake() -> HostInfo {
        HostInfo {
            pid: 1,
            version: "1.12".into(),
            instance_id: "0123456789abcdef".into(),
            hostname: "test".into(),
            os: "#1 SMP".into(),
            platform: "x86_64".into(),
            rusage: || (0, 0),
        }
    }
}

/// Reads pid, uname and a fresh instance id.
pub fn host_info() -> HostInfo {
    let (hostname, os, platform) = uname();
    HostInfo {
        pid: std::process::id(),
        version: PROTOCOL_VERSION.to_string(),
        instance_id: instance_id(),
        hostname,
        os,
        platform,
        rusage: cpu_time_micros,
    }
}

/// Node name, kernel version (not release, as beanstalkd reports) and
/// machine.
fn uname() -> (String, String, String) {
    // SAFETY: utsname is plain C data (arrays of chars), valid when zeroed.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname writes into the struct it is given and nothing else.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (String::new(), String::new(), String::new());
    }
    // SAFETY: uname left each field NUL-terminated within its array (and a
    // zeroed field is an empty string), and `u` outlives the borrow.
    let field = |f: &[libc::c_char]| unsafe { CStr::from_ptr(f.as_ptr()) }.to_string_lossy().into_owned();
    (field(&u.nodename), field(&u.version), field(&u.machine))
}

/// 8 random bytes as 16 lowercase hex digits.
fn instance_id() -> String {
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// User and system CPU time of this process, in microseconds.
fn cpu_time_micros() -> (u64, u64) {
    // SAFETY: rusage is plain C data (integers and timevals), valid when
    // zeroed.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given and nothing else.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (micros(ru.ru_utime), micros(ru.ru_stime))
}

/// Many clients means many sockets: use the hard limit on open files, not
/// the (often 1024) soft one.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

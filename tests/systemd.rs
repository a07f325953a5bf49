//! Packaging and the service manager: the systemd units and the start script
//! in `packaging/`, socket activation, readiness notification, several
//! instances on one host, `-u`, and the Debian package.
//!
//! Everything runs the real binary on loopback addresses and free ports, and
//! every process a test starts is killed when the test ends, pass or fail.
//! The tests that need `systemd-analyze`, `systemd-socket-activate`,
//! `strace` or `cargo-deb` skip with a printed reason when those are missing
//! locally; in CI (`CI=true`) a missing tool is a failure. `.ci/run` installs
//! them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Addr, Binary, Client, Server, free_port, in_ci, is_root, procfs, run};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// helpers

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn packaging(rel: &str) -> PathBuf {
    repo().join("packaging").join(rel)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The unit files, as shipped.
const UNITS: [&str; 4] = ["sprout.service", "sprout.socket", "sprout@.service", "sprout@.socket"];

/// Where the package installs the start script, as the units name it.
const START_SCRIPT: &str = "/usr/libexec/sprout/sprout-start";

/// Finds a program on PATH (or in /usr/sbin, /sbin), or says why the test
/// is skipped; in CI a missing program is a failure.
fn tool_or_skip(test: &str, program: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        support::skip(test, &format!("{program} is not installed (apt-get install -y {package})"));
    }
    found
}

/// A user's uid and primary gid, from /etc/passwd (where Debian keeps
/// `nobody` and the package's system user).
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = read(Path::new("/etc/passwd"));
    let entry = passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f[0] == name)?;
    Some((entry[2].parse().unwrap(), entry[3].parse().unwrap()))
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// A copy of the start script that runs the sprout under test instead of
/// /usr/bin/sprout, written into `dir`.
fn start_script_in(dir: &Path) -> PathBuf {
    let text = read(&packaging("sprout-start"));
    let exec = "exec /usr/bin/sprout ";
    assert_eq!(text.matches(exec).count(), 1, "packaging/sprout-start must run sprout once, as `{exec}...`");
    let path = dir.join("sprout-start");
    fs::write(&path, text.replace(exec, &format!("exec {} ", Binary::sprout().path.display()))).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Parses an environment file the way systemd's `EnvironmentFile=` does for
/// the simple files we ship: `KEY=VALUE` lines, `#` and `;` comments, one
/// level of surrounding quotes removed.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted =
                ['"', '\''].iter().find_map(|q| v.strip_prefix(*q).and_then(|v| v.strip_suffix(*q))).unwrap_or(v);
            (k.trim().to_string(), unquoted.to_string())
        })
        .collect()
}

/// The `[section]` `key=value` lines of a unit file, in order.
fn unit_settings(text: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            current = line.trim_matches(['[', ']']).to_string();
        } else if current == section
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

/// put, reserve, delete, checking every reply.
fn put_reserve_delete(c: &mut Client, body: &str) {
    let id = put(c, body);
    assert_eq!(c.call("reserve-with-timeout 5\r\n"), format!("RESERVED {id} {}\r\n{body}\r\n", body.len()));
    assert_eq!(c.call(format!("delete {id}\r\n")), "DELETED\r\n");
}

fn put(c: &mut Client, body: &str) -> u64 {
    c.put(0, 0, 60, body)
}

/// Reserves (and deletes) every ready job; returns their bodies.
fn take_all(client: &mut Client) -> BTreeSet<String> {
    let mut bodies = BTreeSet::new();
    loop {
        let reply = client.call("reserve-with-timeout 0\r\n");
        if reply == "TIMED_OUT\r\n" {
            return bodies;
        }
        let (head, body) = reply.split_once("\r\n").unwrap_or_else(|| panic!("reserve: {reply}"));
        let id = head.split(' ').nth(1).unwrap_or_else(|| panic!("reserve: {reply}"));
        bodies.insert(body.trim_end().to_string());
        assert_eq!(client.call(format!("delete {id}\r\n")), "DELETED\r\n");
    }
}

// ---------------------------------------------------------------------------
// the unit files

/// The shipped units, copied into a fresh directory with ExecStart pointing
/// at a copy of the start script there (verify checks that it exists and is
/// executable), after `edit` had its say on each file's text.
fn units_dir(edit: impl Fn(&str, String) -> String) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = start_script_in(dir.path());
    for unit in UNITS {
        let text = read(&packaging(&format!("systemd/{unit}")));
        let text = text.replace(START_SCRIPT, &script.display().to_string());
        fs::write(dir.path().join(unit), edit(unit, text)).unwrap();
    }
    let example = "sprout-metrics.socket";
    fs::write(dir.path().join(example), edit(example, read(&packaging(&format!("examples/{example}"))))).unwrap();
    dir
}

/// `systemd-analyze verify` on units by name, looked up in `dir` first. Its
/// exit status alone misses unknown keys and unparsable values (warnings,
/// status 0), so any message about a sprout unit is a failure too.
fn verify(analyze: &Path, dir: &Path, units: &[&str]) -> Result<(), String> {
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .args(units)
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
        .output()
        .expect("run systemd-analyze");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let about_us: Vec<&str> = text.lines().filter(|l| l.contains("sprout")).collect();
    if out.status.success() && about_us.is_empty() { Ok(()) } else { Err(format!("status {}: {text}", out.status)) }
}

/// The units as instantiated in the tests: both plain units, and the
/// template as instance 11301 (a port) and, for the service, "reports";
/// and the example metrics socket.
const VERIFIED: [&str; 6] = [
    "sprout.service",
    "sprout.socket",
    "sprout@11301.service",
    "sprout@11301.socket",
    "sprout@reports.service",
    "sprout-metrics.socket",
];

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(analyze) = tool_or_skip("units_pass_systemd_analyze_verify", "systemd-analyze", "systemd") else {
        return;
    };
    let dir = units_dir(|_, text| text);
    for unit in VERIFIED {
        if let Err(e) = verify(&analyze, dir.path(), &[unit]) {
            panic!("{unit} does not verify: {e}");
        }
    }
}

#[test]
fn verify_rejects_broken_units() {
    let Some(analyze) = tool_or_skip("verify_rejects_broken_units", "systemd-analyze", "systemd") else {
        return;
    };
    // Each case breaks one thing in one file; verify must catch it.
    type Edit = fn(&str, String) -> String;
    let cases: [(&str, &str, Edit); 5] = [
        ("misspelt key", "sprout.service", |u, t| {
            if u == "sprout.service" { t.replace("ProtectSystem=", "ProtectSystm=") } else { t }
        }),
        ("bad value", "sprout.service", |u, t| {
            if u == "sprout.service" { t.replace("Type=notify", "Type=notifyy") } else { t }
        }),
        ("missing program", "sprout@11301.service", |u, t| {
            if u == "sprout@.service" { t.replace("sprout-start", "no-such-program") } else { t }
        }),
        ("socket for a missing service", "sprout.socket", |u, t| {
            if u == "sprout.socket" { t.replace("Service=sprout.service", "Service=nosuch.service") } else { t }
        }),
        // Not an edit: the template socket listens on port %i, so an
        // instance named after anything but a port needs a drop-in.
        ("non-numeric socket instance", "sprout@reports.socket", |_, t| t),
    ];
    for (what, unit, edit) in cases {
        let dir = units_dir(edit);
        match verify(&analyze, dir.path(), &[unit]) {
            Ok(()) => panic!("{what}: systemd-analyze verify accepted a broken {unit}"),
            Err(e) => eprintln!("{what}: rejected as it should be: {}", e.lines().last().unwrap_or("")),
        }
    }
}

#[test]
fn units_are_hardened_and_match_the_package() {
    for unit in ["sprout.service", "sprout@.service"] {
        let text = read(&packaging(&format!("systemd/{unit}")));
        let service = unit_settings(&text, "Service");
        let one = |key: &str| -> &str {
            let values = setting(&service, key);
            assert_eq!(values.len(), 1, "{unit}: want exactly one {key}=, got {values:?}");
            values[0]
        };
        let template = unit.contains('@');
        for (key, want) in [
            ("Type", "notify"),
            ("User", "sprout"),
            ("Group", "sprout"),
            ("ExecStart", START_SCRIPT),
            ("Restart", "on-failure"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("MemoryDenyWriteExecute", "yes"),
            ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
            ("StateDirectory", if template { "sprout/%i" } else { "sprout" }),
            ("EnvironmentFile", if template { "-/etc/sprout/%i.env" } else { "-/etc/default/sprout" }),
        ] {
            assert_eq!(one(key), want, "{unit}: {key}");
        }
        if template {
            assert_eq!(one("Environment"), "SPROUT_INSTANCE=%i");
        }
        // The exit codes that a restart cannot fix.
        let no_restart: BTreeSet<&str> = one("RestartPreventExitStatus").split(' ').collect();
        assert_eq!(no_restart, BTreeSet::from(["5", "6", "10", "32"]), "{unit}");
    }
    for (unit, listen) in [("sprout.socket", "127.0.0.1:11300"), ("sprout@.socket", "127.0.0.1:%i")] {
        let socket = unit_settings(&read(&packaging(&format!("systemd/{unit}"))), "Socket");
        assert_eq!(setting(&socket, "ListenStream"), [listen], "{unit}");
    }
    // Every packaging file is in the package, where the units look for it.
    let manifest = read(&repo().join("Cargo.toml"));
    for (src, dest) in [
        ("target/release/sprout", "usr/bin/"),
        ("packaging/sprout-start", "usr/libexec/sprout/"),
        ("packaging/default/sprout", "etc/default/"),
        ("packaging/sprout.1", "usr/share/man/man1/"),
        ("packaging/examples/instance.env", "usr/share/doc/sprout/examples/"),
        ("packaging/examples/sprout-metrics.socket", "usr/share/doc/sprout/examples/"),
        ("packaging/grafana/sprout-dashboard.json", "usr/share/doc/sprout/examples/"),
        ("packaging/prometheus/sprout-alerts.yml", "usr/share/doc/sprout/examples/"),
    ] {
        assert!(manifest.contains(&format!("[\"{src}\", \"{dest}\"")), "Cargo.toml deb assets: {src} -> {dest}");
    }
    for unit in UNITS {
        assert!(
            manifest.contains(&format!("[\"packaging/systemd/{unit}\", \"lib/systemd/system/\"")),
            "Cargo.toml deb assets: {unit}"
        );
    }
    assert!(manifest.contains("maintainer-scripts = \"packaging/debian/\""));
    for script in ["postinst", "prerm", "postrm", "../sprout-start"] {
        let path = packaging(&format!("debian/{script}"));
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{} must be executable", path.display());
        let out = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(out.status.success(), "sh -n {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn units_score_well_in_systemd_analyze_security() {
    let Some(analyze) = tool_or_skip("units_score_well_in_systemd_analyze_security", "systemd-analyze", "systemd")
    else {
        return;
    };
    let dir = units_dir(|_, text| text);
    for unit in ["sprout.service", "sprout@.service"] {
        // Exposure is 0.0 (locked down) to 10.0; the threshold is in tenths.
        let out = Command::new(&analyze)
            .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
            .arg(dir.path().join(unit))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let verdict = text.lines().last().unwrap_or_default();
        assert!(
            out.status.success(),
            "{unit}: exposure above 2.0: {verdict}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{unit}: {verdict}");
    }
}

/// A sprout running under strace: the kit's `Server` is strace, which
/// killed would leave sprout running, so sprout is signalled directly.
struct Traced {
    sprout: u32,
    strace: u32,
}

impl Traced {
    /// Sends `sig` to sprout, if it still is strace's child.
    fn signal(&self, sig: i32) {
        if procfs::parent_pid(self.sprout) != Some(self.strace) {
            return;
        }
        let pid = libc::pid_t::try_from(self.sprout).unwrap();
        // SAFETY: kill takes two integers and touches no memory of ours. The
        // pid was just seen as strace's child, and strace reaps it only
        // after it exits, so it still names our sprout (or its zombie); a
        // reaped pid is not handed out again within microseconds.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Kills sprout on drop (a failing test), unless it exited.
impl Drop for Traced {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// The syscalls `SystemCallFilter=` lines allow, expanded from systemd's
/// own group lists.
fn allowed_syscalls(analyze: &Path, filters: &[&str]) -> BTreeSet<String> {
    fn expand(analyze: &Path, group: &str, out: &mut BTreeSet<String>) {
        let listing = Command::new(analyze).args(["syscall-filter", "--no-pager", group]).output().unwrap();
        assert!(listing.status.success(), "syscall-filter {group}");
        let text = String::from_utf8_lossy(&listing.stdout).into_owned();
        for word in text.lines().skip(1).filter_map(|l| l.split_whitespace().next()) {
            if word.starts_with('#') {
                continue;
            }
            if word.starts_with('@') {
                expand(analyze, word, out);
            } else {
                out.insert(word.to_string());
            }
        }
    }
    let mut allowed = BTreeSet::new();
    for filter in filters {
        let (deny, list) = match filter.strip_prefix('~') {
            Some(list) => (true, list),
            None => (false, *filter),
        };
        let mut set = BTreeSet::new();
        for item in list.split_whitespace() {
            if item.starts_with('@') {
                expand(analyze, item, &mut set);
            } else {
                set.insert(item.to_string());
            }
        }
        if deny {
            allowed.retain(|s| !set.contains(s));
        } else {
            allowed.extend(set);
        }
    }
    allowed
}

/// The sandbox must not break sprout: under strace, a server with a binlog
/// (`-f0`, so it fsyncs), a readiness socket, clients on TCP and every kind
/// of job change, drain mode and SIGTERM uses only syscalls the units'
/// SystemCallFilter= allows, only the socket families
/// RestrictAddressFamilies= allows, and never maps memory writable and
/// executable at once (MemoryDenyWriteExecute=).
#[test]
fn sandbox_allows_what_sprout_does() {
    let test = "sandbox_allows_what_sprout_does";
    let Some(analyze) = tool_or_skip(test, "systemd-analyze", "systemd") else { return };
    let Some(strace) = tool_or_skip(test, "strace", "strace") else { return };
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let notify = UnixDatagram::bind(dir.path().join("notify")).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let binlog = dir.path().join("binlog");
    let mut proc = Server::command("strace sprout", |port| {
        let mut cmd = Command::new(&strace);
        cmd.args(["-f", "-qq", "-o"]).arg(&trace).arg(Binary::sprout().path);
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-f0", "-s", "4096", "-b"]).arg(&binlog);
        cmd.env("NOTIFY_SOCKET", dir.path().join("notify"));
        cmd
    })
    .wrapped()
    .start();
    let mut c = proc.connect();
    for i in 0..50 {
        put(&mut c, &format!("job {i} {}", "x".repeat(200)));
    }
    assert!(c.call("reserve\r\n").starts_with("RESERVED 1 "));
    assert_eq!(c.call("bury 1 0\r\n"), "BURIED\r\n");
    assert_eq!(c.call("kick 1\r\n"), "KICKED 1\r\n");
    assert!(c.call("reserve\r\n").starts_with("RESERVED 1 "));
    assert_eq!(c.call("release 1 5 0\r\n"), "RELEASED\r\n");
    for id in 2..=50 {
        assert_eq!(c.call(format!("delete {id}\r\n")), "DELETED\r\n");
    }
    // strace's pid is the kit's; sprout is its only child process.
    let sprout = Traced { sprout: c.stat("pid").parse().unwrap(), strace: proc.pid() };
    sprout.signal(libc::SIGUSR1);
    assert!(support::wait_until(Duration::from_secs(10), || c.stat("draining") == "true"), "SIGUSR1 ignored");
    assert_eq!(c.call("put 0 0 1 1\r\nx\r\n"), "DRAINING\r\n");
    sprout.signal(libc::SIGTERM);
    let status = proc.wait_exit(Duration::from_secs(20)).expect("sprout exits on SIGTERM");
    assert!(status.success(), "sprout under strace: {status}: {}", proc.stderr_text());

    let text = read(&trace);
    let mut used = BTreeSet::new();
    let mut families = BTreeSet::new();
    let mut wx = Vec::new();
    for line in text.lines() {
        // "PID name(args) = result", or "PID <... name resumed>...".
        let Some(call) = line.split_once(' ').map(|(_, rest)| rest.trim_start()) else { continue };
        let name: String = call.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if name.is_empty() || !call[name.len()..].starts_with('(') {
            continue;
        }
        if name == "socket" {
            families.insert(call["socket(".len()..].split(',').next().unwrap_or_default().to_string());
        }
        if (name == "mmap" || name == "mprotect") && call.contains("PROT_WRITE") && call.contains("PROT_EXEC") {
            wx.push(line.to_string());
        }
        used.insert(name);
    }
    // strace runs sprout with execve; everything from there on is sprout's.
    assert!(used.contains("execve") && used.contains("epoll_wait"), "not a trace of sprout: {used:?}");
    assert!(used.contains("fsync") || used.contains("fdatasync"), "-f0 never synced: {used:?}");
    let unit = read(&packaging("systemd/sprout.service"));
    let service = unit_settings(&unit, "Service");
    let filters = setting(&service, "SystemCallFilter");
    let allowed = allowed_syscalls(&analyze, &filters);
    let denied: Vec<&String> = used.iter().filter(|s| !allowed.contains(*s)).collect();
    assert!(denied.is_empty(), "syscalls sprout makes that SystemCallFilter={filters:?} forbids: {denied:?}");
    let permitted: BTreeSet<String> =
        setting(&service, "RestrictAddressFamilies")[0].split_whitespace().map(String::from).collect();
    assert!(families.is_subset(&permitted), "socket families {families:?}, allowed {permitted:?}");
    assert!(wx.is_empty(), "writable and executable mappings: {wx:?}");
    eprintln!("{test}: {} syscalls, families {families:?}, all allowed", used.len());
}

// ---------------------------------------------------------------------------
// the start script and the settings files

/// Runs the start script as systemd would: a clean environment holding the
/// settings, plus what the unit sets.
fn start_script(script: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(script);
    cmd.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// Debian's /etc/default/beanstalkd, with the binlog line switched on the
/// way its comment suggests.
const DEBIAN_BEANSTALKD_DEFAULTS: &str = "\
## Defaults for the beanstalkd init script, /etc/init.d/beanstalkd on
## Debian systems.

BEANSTALKD_LISTEN_ADDR=127.0.0.1
BEANSTALKD_LISTEN_PORT=11300

# You can use BEANSTALKD_EXTRA to pass additional options. See beanstalkd(1)
# for a list of the available options. Uncomment the following line for
# persistent job storage.
BEANSTALKD_EXTRA=\"-b /var/lib/beanstalkd\"
";

#[test]
fn shipped_settings_files_keep_the_defaults() {
    // Everything in /etc/default/sprout is commented out: the defaults in
    // the start script apply until the admin changes a line.
    let defaults = read(&packaging("default/sprout"));
    assert_eq!(environment_file(&defaults), []);
    for name in [
        "SPROUT_LISTEN_ADDR",
        "SPROUT_LISTEN_PORT",
        "SPROUT_BINLOG_DIR",
        "SPROUT_METRICS",
        "SPROUT_EXTRA",
        "BEANSTALKD_",
    ] {
        assert!(defaults.contains(name), "/etc/default/sprout should mention {name}");
    }
    let example = environment_file(&read(&packaging("examples/instance.env")));
    assert_eq!(example, [("SPROUT_LISTEN_PORT".to_string(), "11301".to_string())]);
    // The installed Debian file, if any, parses as the copy above does.
    if let Ok(installed) = fs::read_to_string("/etc/default/beanstalkd") {
        let keys: Vec<String> = environment_file(&installed).into_iter().map(|(k, _)| k).collect();
        assert!(keys.iter().all(|k| k.starts_with("BEANSTALKD_")), "{keys:?}");
    }
}

/// A settings file copied from beanstalkd works: address, port and extra
/// flags; the binlog goes to the state directory, not to beanstalkd's.
#[test]
fn start_script_takes_beanstalkd_settings() {
    let dir = tempfile::tempdir().unwrap();
    let script = start_script_in(dir.path());
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    let mut proc = Server::command("sprout-start", |port| {
        // The Debian file, on our port, with a small job size limit; its
        // "-b /var/lib/beanstalkd" is not ours to write, so it goes.
        let text = DEBIAN_BEANSTALKD_DEFAULTS
            .replace("11300", &port.to_string())
            .replace("-b /var/lib/beanstalkd", "-z 10 -V");
        let vars = environment_file(&text);
        let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let state = state.to_str().unwrap();
        vars.push(("STATE_DIRECTORY", state));
        start_script(&script, &vars)
    })
    .start();
    let port = proc.port();
    let mut c = proc.connect();
    // exec: the start script's pid is sprout's (Type=notify needs that).
    assert_eq!(c.stat("pid"), proc.pid().to_string());
    assert_eq!(c.call("put 0 0 60 11\r\nhello world\r\n"), "JOB_TOO_BIG\r\n");
    put_reserve_delete(&mut c, "hello");
    // 127.0.0.1 only, as BEANSTALKD_LISTEN_ADDR says: not 127.0.0.2.
    assert!(TcpStream::connect(("127.0.0.2", port)).is_err(), "listening beyond 127.0.0.1");
    // The binlog is in the state directory, locked by this pid.
    assert_eq!(read(&state.join("lock")).trim(), proc.pid().to_string());
    assert!(state.join("binlog.1").exists());
    assert_eq!(proc.terminate().code(), Some(0));
}

/// The Debian settings file as it is, "-b /var/lib/beanstalkd" included
/// (here a directory Debian's beanstalkd wrote, and was killed on), run
/// through the start script: sprout takes beanstalkd's log over there, as
/// README's "Replacing beanstalkd" tells package users to let it.
#[test]
fn start_script_with_beanstalkd_settings_takes_its_binlog_over() {
    let test = "start_script_with_beanstalkd_settings_takes_its_binlog_over";
    let Some(beanstalkd) = Binary::beanstalkd_or_skip(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = start_script_in(dir.path());
    let (theirs, state) = (dir.path().join("beanstalkd"), dir.path().join("state"));
    fs::create_dir(&theirs).unwrap();
    fs::create_dir(&state).unwrap();
    let mut old = beanstalkd.server().binlog(&theirs).start();
    let mut c = old.connect();
    let ids: Vec<u64> = (0..5).map(|i| c.put(i, 0, 60, format!("job {i}"))).collect();
    assert_eq!(c.call("delete 2\r\n"), "DELETED\r\n");
    old.kill9();
    let proc = Server::command("sprout-start", |port| {
        let text = DEBIAN_BEANSTALKD_DEFAULTS
            .replace("11300", &port.to_string())
            .replace("/var/lib/beanstalkd", theirs.to_str().unwrap());
        let vars = environment_file(&text);
        let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        vars.push(("STATE_DIRECTORY", state.to_str().unwrap()));
        start_script(&script, &vars)
    })
    .start();
    let mut c = proc.connect();
    for &id in &ids {
        let want = (id != 2).then(|| format!("job {}", id - 1).into_bytes());
        assert_eq!(c.peek(id), want, "job {id}");
    }
    assert_eq!(c.put(0, 0, 60, "new"), 6);
    assert!(proc.stderr_text().contains("took over beanstalkd's log"), "{}", proc.stderr_text());
    let moved = fs::read_dir(&theirs)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("beanstalkd-imported-"));
    assert!(moved, "beanstalkd's files were not moved aside in {}", theirs.display());
    assert!(!state.join("binlog.1").exists(), "the state directory was used instead of beanstalkd's");
}

/// SPROUT_* wins over BEANSTALKD_*; both EXTRAs are passed, SPROUT_EXTRA
/// last so its flags win; SPROUT_BINLOG_DIR=none turns the binlog off.
#[test]
fn start_script_prefers_sprout_settings() {
    let dir = tempfile::tempdir().unwrap();
    let script = start_script_in(dir.path());
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    let decoy = free_port();
    let server = Server::command("sprout-start", |port| {
        let decoy = decoy.to_string();
        let port = port.to_string();
        start_script(
            &script,
            &[
                ("BEANSTALKD_LISTEN_ADDR", "127.0.0.3"),
                ("BEANSTALKD_LISTEN_PORT", &decoy),
                ("BEANSTALKD_EXTRA", "-z 10"),
                ("SPROUT_LISTEN_ADDR", "127.0.0.1"),
                ("SPROUT_LISTEN_PORT", &port),
                ("SPROUT_EXTRA", "-z 20"),
                ("SPROUT_BINLOG_DIR", "none"),
                ("STATE_DIRECTORY", state.to_str().unwrap()),
            ],
        )
    })
    .start();
    let mut c = server.connect();
    assert_eq!(c.call("put 0 0 60 15\r\nfifteen bytes!!\r\n"), "INSERTED 1\r\n");
    assert_eq!(c.call("put 0 0 60 21\r\ntwenty-one bytes!!!!!\r\n"), "JOB_TOO_BIG\r\n");
    assert!(TcpStream::connect(("127.0.0.3", decoy)).is_err(), "BEANSTALKD_* won over SPROUT_*");
    assert_eq!(fs::read_dir(&state).unwrap().count(), 0, "SPROUT_BINLOG_DIR=none still wrote a binlog");
}

/// An instance needs a port: its name if it is a number, else its file must
/// set one. Without, it refuses with status 6 (which the units do not
/// restart) and says what to do.
#[test]
fn start_script_refuses_an_instance_without_a_port() {
    let dir = tempfile::tempdir().unwrap();
    let script = start_script_in(dir.path());
    let out = start_script(&script, &[("SPROUT_INSTANCE", "reports"), ("SPROUT_BINLOG_DIR", "none")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/etc/sprout/reports.env") && stderr.contains("SPROUT_LISTEN_PORT"), "{stderr}");
}

// ---------------------------------------------------------------------------
// the man page

#[test]
fn man_page_covers_every_flag_signal_and_file() {
    let roff = read(&packaging("sprout.1"));
    let text = roff.replace("\\-", "-").replace("\\fR", "").replace("\\fB", "").replace("\\fI", "");
    let help = Binary::sprout().run(&["-h"]);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let mut flags = vec!["-c".to_string(), "-n".to_string()];
    for word in help.split([' ', ',', '\n']) {
        let word = word.trim_end_matches("...");
        let is_short = word.len() == 2 && word.starts_with('-') && word.as_bytes()[1].is_ascii_alphabetic();
        if is_short || (word.starts_with("--") && word.len() > 2) {
            flags.push(word.to_string());
        }
    }
    assert!(flags.len() > 20, "could not read the flags from sprout -h: {help}");
    for flag in &flags {
        // In roff a flag is set in bold: `.B -V`, `.BR -V ", "`, `.BI -b " DIR"`.
        let set = text.lines().any(|l| l.starts_with('.') && l.split_whitespace().any(|w| w == flag));
        assert!(set, "sprout.1 does not document {flag}");
    }
    for needle in [
        "SIGTERM",
        "SIGINT",
        "SIGUSR1",
        "SIGKILL",
        "LISTEN_FDS",
        "NOTIFY_SOCKET",
        "READY=1",
        "STOPPING=1",
        "/etc/default/sprout",
        "/etc/sprout/",
        "/var/lib/sprout",
        "BEANSTALKD_EXTRA",
        "SPROUT_LISTEN_PORT",
        ".B 10",
        ".B 32",
        ".B 111",
    ] {
        assert!(text.contains(needle), "sprout.1 does not mention {needle}");
    }
    // groff's own warnings (-ww), where groff is installed.
    if let Some(groff) = tool_or_skip("man_page_covers_every_flag_signal_and_file", "groff", "groff-base") {
        let out = run_ok(Command::new(groff).args(["-man", "-ww", "-z"]).arg(packaging("sprout.1")));
        assert!(out.stderr.is_empty(), "groff: {}", String::from_utf8_lossy(&out.stderr));
    }
}

// ---------------------------------------------------------------------------
// socket activation and readiness

#[test]
fn socket_activation_serves_tcp_and_unix_at_once() {
    let test = "socket_activation_serves_tcp_and_unix_at_once";
    let Some(activate) = tool_or_skip(test, "systemd-socket-activate", "systemd") else { return };
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sprout.sock");
    // sprout's own -l/-p name a port it must not bind: systemd's sockets
    // replace them.
    let ignored = free_port();
    let server = Server::command("systemd-socket-activate", |port| {
        let _ = fs::remove_file(&sock);
        let mut cmd = Command::new(&activate);
        cmd.arg("-l").arg(format!("127.0.0.1:{port}")).arg("-l").arg(&sock);
        // The activator execs sprout (same pid) on the first connection.
        cmd.arg(Binary::sprout().path).args(["-l", "127.0.0.1", "-p", &ignored.to_string()]);
        cmd
    })
    .start();
    let mut tcp = server.connect();
    let mut unix = Client::connect(&Addr::Unix(sock.clone()));
    put_reserve_delete(&mut tcp, "over tcp");
    put_reserve_delete(&mut unix, "over unix");
    // One server behind both: a job put over one is reserved over the other.
    let id = put(&mut tcp, "crossing");
    assert_eq!(unix.call("reserve-with-timeout 5\r\n"), format!("RESERVED {id} 8\r\ncrossing\r\n"));
    assert_eq!(tcp.call("stats-job 1\r\n"), "NOT_FOUND\r\n");
    assert_eq!(unix.call(format!("delete {id}\r\n")), "DELETED\r\n");
    assert!(TcpStream::connect(("127.0.0.1", ignored)).is_err(), "bound -p although systemd passed sockets");
}

/// A socket named `metrics` (`FileDescriptorName=metrics`, here the
/// activator's `--fdname`) answers HTTP with the metrics; the other serves
/// the queue; and with only a metrics socket passed, sprout binds its
/// queue port itself. The example unit names its socket so.
#[test]
fn socket_activation_tells_the_metrics_socket_by_its_name() {
    let test = "socket_activation_tells_the_metrics_socket_by_its_name";
    let example = unit_settings(&read(&packaging("examples/sprout-metrics.socket")), "Socket");
    assert_eq!(setting(&example, "FileDescriptorName"), ["metrics"]);
    assert_eq!(setting(&example, "Service"), ["sprout.service"]);
    let Some(activate) = tool_or_skip(test, "systemd-socket-activate", "systemd") else { return };
    let dir = tempfile::tempdir().unwrap();
    let metrics_sock = dir.path().join("metrics.sock");
    // A port sprout must not bind: systemd passed the queue's socket.
    let ignored = free_port();
    let server = Server::command("systemd-socket-activate", |port| {
        let _ = fs::remove_file(&metrics_sock);
        let mut cmd = Command::new(&activate);
        cmd.arg("-l").arg(format!("127.0.0.1:{port}")).arg("-l").arg(&metrics_sock);
        cmd.arg("--fdname=sprout.socket:metrics");
        cmd.arg(Binary::sprout().path).args(["-l", "127.0.0.1", "-p", &ignored.to_string()]);
        cmd
    })
    .start();
    let mut queue = server.connect();
    put_reserve_delete(&mut queue, "over the queue's socket");
    let scrape = http_get_unix(&metrics_sock);
    assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
    assert!(scrape.contains("\nsprout_commands_total{command=\"put\"} 1\n"), "{scrape}");
    drop(server);

    // Only the metrics socket: the queue's port is bound from -l/-p.
    let server = Server::command("systemd-socket-activate", |port| {
        let _ = fs::remove_file(&metrics_sock);
        let mut cmd = Command::new(&activate);
        cmd.arg("-l").arg(&metrics_sock).arg("--fdname=metrics");
        cmd.arg(Binary::sprout().path).args(["-l", "127.0.0.1", "-p", &port.to_string()]);
        cmd
    });
    // The activator starts sprout at the first connection to its socket.
    // Its socket's file appears when it binds, a moment before it listens
    // (a connection in between is refused): wait until one is accepted.
    let mut child = server.spawn();
    let listening = || std::os::unix::net::UnixStream::connect(&metrics_sock).is_ok();
    assert!(support::wait_until(Duration::from_secs(10), listening), "no metrics socket");
    let scrape = http_get_unix(&metrics_sock);
    assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
    let mut queue = child.connect();
    put_reserve_delete(&mut queue, "over the port sprout bound");
    child.kill9();
}

/// `GET /metrics` over a UNIX socket; the whole response.
fn http_get_unix(path: &Path) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// SPROUT_METRICS turns metrics on at that address; empty or "none"
/// leaves them off.
#[test]
fn start_script_turns_metrics_on() {
    let dir = tempfile::tempdir().unwrap();
    let script = start_script_in(dir.path());
    let proc = Server::command("sprout-start", |port| {
        let port = port.to_string();
        let vars = [
            ("SPROUT_LISTEN_PORT", port.as_str()),
            ("SPROUT_BINLOG_DIR", "none"),
            ("SPROUT_METRICS", "127.0.0.1:0"),
            ("SPROUT_EXTRA", "-V"),
        ];
        start_script(&script, &vars)
    })
    .start();
    let port = support::http::metrics_port(&proc);
    assert_eq!(support::http::get(port, "/metrics", "").status, 200);
    for off in ["", "none"] {
        let proc = Server::command("sprout-start", |port| {
            let port = port.to_string();
            let vars = [
                ("SPROUT_LISTEN_PORT", port.as_str()),
                ("SPROUT_BINLOG_DIR", "none"),
                ("SPROUT_METRICS", off),
                ("SPROUT_EXTRA", "-V"),
            ];
            start_script(&script, &vars)
        })
        .start();
        proc.connect().put(0, 0, 60, "x");
        assert!(!proc.stderr_text().contains("metrics on"), "SPROUT_METRICS={off:?}: {}", proc.stderr_text());
    }
}

/// Receives one notification, or None after `timeout` or if `proc` exits.
fn recv_notification(socket: &UnixDatagram, proc: &mut Server, timeout: Duration) -> Option<String> {
    socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match socket.recv(&mut buf) {
            Ok(n) => return Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => {
                if proc.exit_status().is_some() {
                    // One last look: it may have sent before exiting.
                    socket.set_nonblocking(true).unwrap();
                    let last = socket.recv(&mut buf).ok().map(|n| String::from_utf8_lossy(&buf[..n]).into_owned());
                    socket.set_nonblocking(false).unwrap();
                    return last;
                }
            }
        }
    }
    None
}

/// Starts sprout with NOTIFY_SOCKET=`notify_name`; returns it once READY=1
/// arrived, which must name its pid and come when the port already
/// accepts: no retry, no wait (so the kit's start, which polls, is not
/// used: only spawned, and another port tried if sprout exits).
fn start_notifying(socket: &UnixDatagram, notify_name: &str, binlog: &Path) -> Server {
    let builder = Server::sprout().binlog(binlog).env("NOTIFY_SOCKET", notify_name);
    for _attempt in 0..5 {
        let mut proc = builder.spawn();
        let Some(message) = recv_notification(socket, &mut proc, Duration::from_secs(10)) else {
            continue; // the port was taken: sprout exited without READY
        };
        assert_eq!(message, format!("READY=1\nMAINPID={}\n", proc.pid()));
        let mut c = Client::try_connect(proc.addr()).expect("READY=1 before the port accepts");
        assert_eq!(c.stat("pid"), proc.pid().to_string());
        return proc;
    }
    panic!("sprout never sent READY=1");
}

#[test]
fn notify_ready_after_listening_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let binlog = dir.path().join("binlog");
    let mut proc = start_notifying(&socket, path.to_str().unwrap(), &binlog);
    let mut c = proc.connect();
    for i in 0..3 {
        put(&mut c, &format!("job {i}"));
    }
    proc.signal(libc::SIGTERM);
    let stopping = recv_notification(&socket, &mut proc, Duration::from_secs(10));
    assert_eq!(stopping, Some(format!("STOPPING=1\nMAINPID={}\n", proc.pid())));
    assert_eq!(proc.wait_exit(Duration::from_secs(10)).map(|s| s.code()), Some(Some(0)));
    drop(proc);

    // READY=1 comes after the binlog is replayed: the jobs are there at once.
    let proc = start_notifying(&socket, path.to_str().unwrap(), &binlog);
    assert_eq!(proc.connect().stat("current-jobs-ready"), "3");
}

#[test]
fn notify_to_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("sprout-test-{}-{}", std::process::id(), free_port());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    let dir = tempfile::tempdir().unwrap();
    start_notifying(&socket, &format!("@{name}"), &dir.path().join("binlog"));
}

// ---------------------------------------------------------------------------
// several instances

/// An instance of sprout@NAME.service as systemd would run it: Environment=
/// SPROUT_INSTANCE=NAME, EnvironmentFile=-ETC/NAME.env, StateDirectory=
/// sprout/NAME (created by systemd, here by the test).
fn instance(script: &Path, etc: &Path, state: &Path, name: &str) -> Command {
    let mut vars = vec![("SPROUT_INSTANCE".to_string(), name.to_string())];
    if let Ok(text) = fs::read_to_string(etc.join(format!("{name}.env"))) {
        vars.extend(environment_file(&text));
    }
    let dir = state.join(name);
    fs::create_dir_all(&dir).unwrap();
    vars.push(("STATE_DIRECTORY".to_string(), dir.display().to_string()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    start_script(script, &vars)
}

#[test]
fn several_instances_each_recover_their_own_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let script = start_script_in(dir.path());
    let etc = dir.path().join("etc/sprout");
    let state = dir.path().join("var/lib/sprout");
    fs::create_dir_all(&etc).unwrap();

    // Two instances named after their ports, one named "reports" whose
    // settings file names its port.
    let mut instances: Vec<(String, Server)> = Vec::new();
    for named in [false, false, true] {
        let name_of = |port: u16| if named { "reports".to_string() } else { port.to_string() };
        let proc = Server::command("sprout@.service", |port| {
            if named {
                let settings = format!("SPROUT_LISTEN_PORT={port}\nSPROUT_EXTRA=\"-f 0\"\n");
                fs::write(etc.join("reports.env"), settings).unwrap();
            }
            instance(&script, &etc, &state, &name_of(port))
        })
        .start();
        instances.push((name_of(proc.port()), proc));
    }

    // Instance i holds i+1 jobs, each body naming its instance.
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, (name, proc)) in instances.iter().enumerate() {
        let mut c = proc.connect();
        for k in 0..=i {
            let body = format!("{name}-job-{k}");
            put(&mut c, &body);
            expected.entry(name.clone()).or_default().insert(body);
        }
    }

    for (_, proc) in &mut instances {
        proc.kill9();
    }
    for (name, proc) in &mut instances {
        let port = proc.port();
        *proc = Server::command("sprout@.service", |_| instance(&script, &etc, &state, name)).port(port).start();
    }

    // A fourth instance pointed at the first one's directory is refused.
    let (first_name, first) = &instances[0];
    let first_dir = state.join(first_name);
    let intruder = Server::command("sprout@intruder.service", |port| {
        start_script(
            &script,
            &[
                ("SPROUT_INSTANCE", "intruder"),
                ("SPROUT_LISTEN_PORT", &port.to_string()),
                ("STATE_DIRECTORY", first_dir.to_str().unwrap()),
            ],
        )
    })
    .try_start();
    let refused = intruder.err().expect("the fourth instance must exit");
    let stderr = refused.stderr;
    assert_eq!(refused.status.code(), Some(10), "{stderr}");
    assert!(stderr.contains(&first_dir.display().to_string()), "{stderr}");
    assert!(stderr.contains(&first.pid().to_string()), "the refusal should name pid {}: {stderr}", first.pid());

    for (name, proc) in &instances {
        let mut c = proc.connect();
        assert_eq!(c.stat("current-jobs-ready"), expected[name].len().to_string(), "instance {name}");
        assert_eq!(take_all(&mut c), expected[name], "instance {name} recovered other jobs than its own");
    }
}

// ---------------------------------------------------------------------------
// -u

#[test]
fn user_flag_drops_privileges_and_keeps_the_binlog() {
    let test = "user_flag_drops_privileges_and_keeps_the_binlog";
    if !is_root() {
        support::skip(test, "-u needs root (run the tests as root to include it)");
        return;
    }
    let (uid, gid) = user_ids("nobody").expect("user nobody");
    let dir = tempfile::tempdir().unwrap();
    chown(dir.path(), uid, gid);
    let nobody = || Server::sprout().args(["-u", "nobody"]).binlog(dir.path());

    let mut server = nobody().start();
    assert_eq!(procfs::ids(server.pid(), "Uid"), [uid; 4]);
    assert_eq!(procfs::ids(server.pid(), "Gid"), [gid; 4]);
    let groups = procfs::status_field(server.pid(), "Groups");
    assert!(!groups.split_whitespace().any(|g| g == "0"), "still in group root: {groups}");
    let id = put(&mut server.connect(), "written by nobody");
    server.kill9();
    drop(server);

    let mut files = Vec::new();
    for entry in fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{} is not nobody's", entry.path().display());
        files.push(entry.file_name().to_string_lossy().into_owned());
    }
    files.sort();
    // The file written, and the spare the binlog prepares ahead of it.
    assert_eq!(files, ["binlog.1", "binlog.2", "lock"]);

    let server = nobody().start();
    let mut c = server.connect();
    assert_eq!(c.call(format!("peek {id}\r\n")), format!("FOUND {id} 17\r\nwritten by nobody\r\n"));
}

// ---------------------------------------------------------------------------
// the Debian package

/// `cargo deb`, if cargo-deb is installed.
fn cargo_deb_or_skip(test: &str) -> bool {
    let ok = Command::new("cargo").args(["deb", "--version"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        support::skip(test, "cargo-deb is not installed (cargo install cargo-deb --locked)");
    }
    ok
}

/// Runs `cmd` to its end (a release build of the package takes minutes;
/// 30 of them mean it hangs) and insists that it succeeds.
fn run_ok(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let out = run(cmd, Duration::from_secs(30 * 60)).unwrap_or_else(|_| panic!("{what} did not finish in 30 min"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Status}", package])
        .output()
        .map(|o| o.stdout == b"installed")
        .unwrap_or(false)
}

/// Removes a policy-rc.d it created, on drop.
struct PolicyRcD(bool);

impl Drop for PolicyRcD {
    fn drop(&mut self) {
        if self.0 {
            let _ = fs::remove_file("/usr/sbin/policy-rc.d");
        }
    }
}

/// Builds the .deb with `cargo deb` (a release build, in its own target
/// directory so it never waits on the lock of the one running the tests),
/// checks its contents, and, in CI (or with SPROUT_TEST_INSTALL_DEB=1, as
/// root), installs it with dpkg, runs /usr/bin/sprout, checks the user, the
/// units and the start script as installed, and purges it again.
#[test]
fn deb_installs_and_runs() {
    let test = "deb_installs_and_runs";
    if !cargo_deb_or_skip(test) {
        return;
    }
    let target = Binary::sprout().path.parent().and_then(Path::parent).expect("target dir").to_path_buf();
    let out_dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    run_ok(
        Command::new("cargo")
            .args(["deb", "--locked", "--quiet", "--output"])
            .arg(out_dir.path())
            .current_dir(repo())
            .env("CARGO_TARGET_DIR", target.join("deb")),
    );
    eprintln!("{test}: cargo deb took {:.0?}", started.elapsed());
    let deb = fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("cargo deb made no .deb");

    let listing = run_ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let listing = String::from_utf8_lossy(&listing.stdout);
    for path in [
        "./usr/bin/sprout",
        "./usr/libexec/sprout/sprout-start",
        "./lib/systemd/system/sprout.service",
        "./lib/systemd/system/sprout.socket",
        "./lib/systemd/system/sprout@.service",
        "./lib/systemd/system/sprout@.socket",
        "./etc/default/sprout",
        "./usr/share/man/man1/sprout.1.gz",
        "./usr/share/doc/sprout/copyright",
        "./usr/share/doc/sprout/examples/instance.env",
        "./usr/share/doc/sprout/examples/sprout-metrics.socket",
        "./usr/share/doc/sprout/examples/sprout-dashboard.json",
        "./usr/share/doc/sprout/examples/sprout-alerts.yml",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(path)), "{} lacks {path}:\n{listing}", deb.display());
    }
    let control = tempfile::tempdir().unwrap();
    run_ok(Command::new("dpkg-deb").arg("--control").arg(&deb).arg(control.path()));
    for script in ["postinst", "prerm", "postrm"] {
        assert_eq!(read(&control.path().join(script)), read(&packaging(&format!("debian/{script}"))), "{script}");
    }
    assert_eq!(read(&control.path().join("conffiles")).trim(), "/etc/default/sprout");

    let opted_in = std::env::var("SPROUT_TEST_INSTALL_DEB").is_ok_and(|v| v == "1");
    if !(in_ci() || opted_in) {
        eprintln!(
            "{test}: built and checked {}; not installing it outside CI (SPROUT_TEST_INSTALL_DEB=1 does)",
            deb.display()
        );
        return;
    }
    assert!(is_root(), "{test}: installing the package needs root");
    let was_installed = dpkg_installed("sprout");
    // Where systemd runs, postinst would start the service on port 11300;
    // a policy-rc.d that says no keeps it from starting, as .ci/run does
    // for beanstalkd.
    let _policy =
        PolicyRcD(if Path::new("/run/systemd/system").exists() && !Path::new("/usr/sbin/policy-rc.d").exists() {
            fs::write("/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n").unwrap();
            fs::set_permissions("/usr/sbin/policy-rc.d", fs::Permissions::from_mode(0o755)).unwrap();
            true
        } else {
            false
        });
    run_ok(Command::new("dpkg").arg("-i").arg(&deb).env("DEBIAN_FRONTEND", "noninteractive"));

    let version = run_ok(Command::new("/usr/bin/sprout").arg("-v"));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("sprout {} (beanstalkd 1.12 protocol)\n", env!("CARGO_PKG_VERSION"))
    );
    // The system user, with no login, owning the state directory.
    let (uid, gid) = user_ids("sprout").expect("postinst creates the sprout user");
    assert!(uid < 1000, "sprout should be a system user, uid {uid}");
    let passwd = read(Path::new("/etc/passwd"));
    let entry = passwd.lines().find(|l| l.starts_with("sprout:")).unwrap();
    assert!(entry.ends_with("nologin") || entry.ends_with("/bin/false"), "{entry}");
    let meta = fs::metadata("/var/lib/sprout").expect("/var/lib/sprout");
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));

    // The installed units verify as they are, ExecStart and all.
    if let Some(analyze) = tool_or_skip(test, "systemd-analyze", "systemd") {
        for unit in VERIFIED.iter().filter(|u| !u.contains("reports")) {
            // The examples are installed as documentation, not as units:
            // verified where they are, beside the installed units.
            let example = format!("/usr/share/doc/sprout/examples/{unit}");
            let target = if Path::new(&example).exists() { example } else { unit.to_string() };
            let out = Command::new(&analyze).args(["verify", "--man=no", &target]).output().unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "installed {unit}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // The installed start script and binary, as the service would run them
    // (but on a free port, with a temporary state directory, dropping to
    // the sprout user with -u since no service manager does it here).
    let state = tempfile::tempdir().unwrap();
    chown(state.path(), uid, gid);
    let proc = Server::command("installed sprout-start", |port| {
        start_script(
            Path::new(START_SCRIPT),
            &[
                ("SPROUT_LISTEN_PORT", &port.to_string()),
                ("STATE_DIRECTORY", state.path().to_str().unwrap()),
                ("SPROUT_EXTRA", "-u sprout"),
            ],
        )
    })
    .start();
    assert_eq!(procfs::ids(proc.pid(), "Uid"), [uid; 4]);
    let exe = fs::read_link(format!("/proc/{}/exe", proc.pid())).unwrap();
    assert_eq!(exe, Path::new("/usr/bin/sprout"));
    let mut c = proc.connect();
    put_reserve_delete(&mut c, "from the package");
    drop(proc);

    if !was_installed {
        run_ok(Command::new("dpkg").args(["--purge", "sprout"]));
        assert!(!Path::new("/usr/bin/sprout").exists());
        assert!(user_ids("sprout").is_none(), "purge leaves the sprout user");
        assert!(!Path::new("/var/lib/sprout").exists());
    }
}

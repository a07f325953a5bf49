//! Command line, listening sockets, signals and lifecycle of the real binary.
//!
//! Where sprout must behave like beanstalkd 1.12, the same body also runs
//! against the reference server (`<case>::beanstalkd`, skipped locally when
//! it is not installed). Every invocation that could start a server names a
//! loopback address and a free port, so a misparsed flag never binds a
//! public or default port.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::Server;

/// Runs `$body(bin: &Path, name: &str)` against sprout and, in a sibling
/// test, against the reference beanstalkd.
macro_rules! on_both {
    ($body:ident) => {
        mod $body {
            #[test]
            fn sprout() {
                super::$body(&super::support::sprout_bin(), "sprout");
            }

            #[test]
            fn beanstalkd() {
                if let Some(bin) = super::support::beanstalkd_or_skip(concat!(stringify!($body), "::beanstalkd")) {
                    super::$body(&bin, "beanstalkd");
                }
            }
        }
    };
}

// ---------------------------------------------------------------------------
// helpers

/// Runs the binary to completion (killed after 10 s) and returns its output.
fn run(bin: &Path, args: &[&str]) -> Output {
    let out = assert_cmd::Command::new(bin).args(args).timeout(Duration::from_secs(10)).output().expect("run");
    assert!(
        out.status.signal() != Some(libc::SIGKILL),
        "{} {args:?} did not exit within 10 s (stderr: {})",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Where a daemon listens.
#[derive(Clone)]
enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A server process started with exactly the given arguments, killed on drop.
struct Daemon {
    child: Child,
    addr: Addr,
}

impl Daemon {
    /// Starts `bin` listening on a free TCP port of `host`; `args` builds the
    /// command line from the port number. Retries with another port if the
    /// port turned out to be taken (a concurrently starting server may have
    /// drawn the same free port).
    fn start_tcp(bin: &Path, host: IpAddr, args: impl Fn(&str) -> Vec<String>) -> Daemon {
        for _attempt in 0..5 {
            let port = TcpListener::bind((host, 0)).unwrap().local_addr().unwrap().port();
            let args = args(&port.to_string());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Some(d) = Daemon::try_start(bin, &args, Addr::Tcp(SocketAddr::new(host, port))) {
                return d;
            }
        }
        panic!("{} never started on a free port", bin.display());
    }

    /// Starts `bin args` listening at `addr` (a UNIX socket path, say).
    fn start(bin: &Path, args: &[&str], addr: Addr) -> Daemon {
        Daemon::try_start(bin, args, addr).unwrap_or_else(|| panic!("{} {args:?} did not start", bin.display()))
    }

    /// Spawns the server and waits until the server answering at `addr` is
    /// this very process (stats `pid`); None if it exited or someone else
    /// answers there.
    fn try_start(bin: &Path, args: &[&str], addr: Addr) -> Option<Daemon> {
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut daemon = Daemon { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                eprintln!("{} {args:?} exited at startup: {status}", bin.display());
                return None;
            }
            if let Some(pid) = daemon.answering_pid() {
                if pid == daemon.child.id() {
                    return Some(daemon);
                }
                eprintln!("{} {args:?}: another server (pid {pid}) answers there", bin.display());
                return None;
            }
            assert!(Instant::now() < deadline, "{} {args:?} is not listening after 10 s", bin.display());
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pid reported by `stats` at the daemon's address, if it answers.
    fn answering_pid(&self) -> Option<u32> {
        let (mut w, r): (Box<dyn Write>, Box<dyn Read>) = match &self.addr {
            Addr::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, Duration::from_secs(1)).ok()?;
                // A connect to a free port can pick that port as its own
                // source and connect to itself.
                if s.local_addr().ok()? == s.peer_addr().ok()? {
                    return None;
                }
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                (Box::new(s.try_clone().ok()?), Box::new(s))
            }
            Addr::Unix(p) => {
                let s = UnixStream::connect(p).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                (Box::new(s.try_clone().ok()?), Box::new(s))
            }
        };
        w.write_all(b"stats\r\n").ok()?;
        let mut reader = BufReader::new(r);
        let mut line = String::new();
        while reader.read_line(&mut line).ok()? > 0 {
            if let Some(pid) = line.strip_prefix("pid: ") {
                return pid.trim().parse().ok();
            }
            line.clear();
        }
        None
    }

    fn connect(&self) -> Conn {
        Conn::to(&self.addr)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw protocol client over TCP or a UNIX socket.
struct Conn {
    writer: Box<dyn Write>,
    reader: BufReader<Box<dyn Read>>,
}

impl Conn {
    fn to(addr: &Addr) -> Conn {
        let timeout = Some(Duration::from_secs(10));
        let (writer, reader): (Box<dyn Write>, Box<dyn Read>) = match addr {
            Addr::Tcp(a) => {
                let s = TcpStream::connect(a).expect("connect");
                s.set_read_timeout(timeout).unwrap();
                (Box::new(s.try_clone().unwrap()), Box::new(s))
            }
            Addr::Unix(p) => {
                let s = UnixStream::connect(p).expect("connect");
                s.set_read_timeout(timeout).unwrap();
                (Box::new(s.try_clone().unwrap()), Box::new(s))
            }
        };
        Conn { writer, reader: BufReader::new(reader) }
    }

    /// Sends raw bytes and returns one whole reply (body included).
    fn call(&mut self, command: &[u8]) -> String {
        self.writer.write_all(command).unwrap();
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read reply");
        let line = text(&line);
        assert!(line.ends_with("\r\n"), "incomplete reply {line:?}");
        let words: Vec<&str> = line.trim_end().split(' ').collect();
        let body = match words.as_slice() {
            ["RESERVED", _, n] | ["FOUND", _, n] | ["OK", n] => n.parse::<usize>().unwrap(),
            _ => return line,
        };
        let mut rest = vec![0; body + 2];
        self.reader.read_exact(&mut rest).unwrap();
        line + &text(&rest)
    }

    /// One field of the `stats` YAML.
    fn stat(&mut self, key: &str) -> String {
        let reply = self.call(b"stats\r\n");
        let prefix = format!("{key}: ");
        reply
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {key} in stats: {reply:?}"))
            .to_string()
    }
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `-l 127.0.0.1 -p PORT` followed by `extra`.
fn on_port(port: &str, extra: &[&str]) -> Vec<String> {
    ["-l", "127.0.0.1", "-p", port].iter().chain(extra).map(|s| s.to_string()).collect()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// -h, -v, bad flags

/// `-h` prints a usage text naming every beanstalkd flag and exits 0.
fn help_lists_every_flag(bin: &Path, name: &str) {
    let port = support::free_port().to_string();
    let out = run(bin, &["-l", "127.0.0.1", "-p", &port, "-h"]);
    let usage = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{name} -h: {} {usage}", out.status);
    let tokens: Vec<&str> = usage.split_whitespace().map(|t| t.trim_end_matches(',')).collect();
    for flag in ["-b", "-f", "-F", "-l", "-p", "-u", "-z", "-s", "-v", "-V", "-h"] {
        assert!(tokens.contains(&flag), "{name} -h does not list {flag}:\n{usage}");
    }
}
on_both!(help_lists_every_flag);

/// `-v` prints a version line on stdout and exits 0.
fn version_flag(bin: &Path, name: &str) {
    let port = support::free_port().to_string();
    let out = run(bin, &["-l", "127.0.0.1", "-p", &port, "-v"]);
    assert!(out.status.success(), "{name} -v: {}", out.status);
    let stdout = text(&out.stdout);
    let line = stdout.lines().next().unwrap_or_default();
    eprintln!("{name} -v: {line:?}");
    assert!(line.chars().any(|c| c.is_ascii_digit()), "{name} -v printed no version: {stdout:?}");
}
on_both!(version_flag);

/// Bad command lines fail (beanstalkd: exit 5) with a message naming what
/// was wrong, and start no server.
fn bad_command_lines_fail(bin: &Path, name: &str) {
    let port = support::free_port().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["-x"], "-x"),
        (&["--no-such-flag"], "--no-such-flag"),
        (&["stray-argument"], "stray-argument"),
        (&["-z", "abc"], "abc"),
        (&["-z", "10x"], "10x"),
        (&["-s", "abc"], "abc"),
        (&["-f", "abc"], "abc"),
        (&["-u", "no-such-user-here"], "no-such-user-here"),
    ];
    for (extra, named) in cases {
        let mut args = vec!["-l", "127.0.0.1", "-p", &port];
        args.extend_from_slice(extra);
        let out = run(bin, &args);
        let stderr = text(&out.stderr);
        eprintln!("{name} {extra:?}: {} {:?}", out.status, stderr.lines().next().unwrap_or_default());
        assert!(!out.status.success(), "{name} {extra:?} succeeded");
        if name == "beanstalkd" && extra[0] != "-u" {
            assert_eq!(out.status.code(), Some(5), "{name} {extra:?}");
        }
        assert!(stderr.contains(named), "{name} {extra:?}: stderr does not name {named:?}: {stderr:?}");
    }
    // A flag missing its value, as the last argument.
    for flag in ["-p", "-l", "-z"] {
        let mut args = vec!["-l", "127.0.0.1", "-p", &port];
        args.push(flag);
        let out = run(bin, &args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{name} {args:?} succeeded");
        assert!(stderr.contains(flag), "{name} {args:?}: stderr does not name {flag}: {stderr:?}");
    }
}
on_both!(bad_command_lines_fail);

// ---------------------------------------------------------------------------
// flag forms

/// beanstalkd's getopt-like forms: values attached (`-z100`, `-pPORT`),
/// flags clustered (`-Vz100`), values as the next argument, the last of a
/// repeated flag wins, `-c`/`-n` are accepted no-ops, and the fsync/binlog
/// size flags are accepted without `-b`.
fn flag_forms(bin: &Path, name: &str) {
    type Form = fn(&str) -> Vec<String>;
    let forms: &[(Form, &str)] = &[
        (|p| words(&format!("-l127.0.0.1 -p{p} -z100")), "100"),
        (|p| words(&format!("-l 127.0.0.1 -p {p} -Vz100")), "100"),
        (|p| words(&format!("-l 127.0.0.1 -Vp {p} -z 7")), "7"),
        (|p| words(&format!("-l 127.0.0.1 -p {p} -z 5 -z 300 -c -n -f0 -F -s 4096")), "300"),
        (|p| words(&format!("-l 127.0.0.1 -p 1 -p {p} -f 20 -V -V")), "65535"),
    ];
    for (form, max_job_size) in forms {
        let d = Daemon::start_tcp(bin, LOCALHOST, form);
        let mut c = d.connect();
        assert_eq!(c.stat("max-job-size"), *max_job_size, "{name} {:?}", form("PORT"));
        assert_eq!(c.call(b"list-tube-used\r\n"), "USING default\r\n", "{name}");
    }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}
on_both!(flag_forms);

/// sprout also takes long options.
#[test]
fn long_options() {
    let bin = support::sprout_bin();
    let d = Daemon::start_tcp(&bin, LOCALHOST, |p| words(&format!("--listen 127.0.0.1 --port {p} --max-job-size 123")));
    assert_eq!(d.connect().stat("max-job-size"), "123");
    drop(d);
    let d = Daemon::start_tcp(&bin, LOCALHOST, |p| words(&format!("--listen=127.0.0.1 --port={p} --max-job-size=321")));
    assert_eq!(d.connect().stat("max-job-size"), "321");
}

/// `-z` is clamped to 1073741824; a small `-z` is enforced exactly.
fn max_job_size_flag(bin: &Path, name: &str) {
    let d = Daemon::start_tcp(bin, LOCALHOST, |p| on_port(p, &["-z", "2000000000"]));
    assert_eq!(d.connect().stat("max-job-size"), "1073741824", "{name}");
    drop(d);

    let d = Daemon::start_tcp(bin, LOCALHOST, |p| on_port(p, &["-z", "10"]));
    let mut c = d.connect();
    assert_eq!(c.stat("max-job-size"), "10", "{name}");
    assert_eq!(c.call(b"put 0 0 60 10\r\n0123456789\r\n"), "INSERTED 1\r\n", "{name}");
    assert_eq!(c.call(b"put 0 0 60 11\r\n0123456789a\r\n"), "JOB_TOO_BIG\r\n", "{name}");
    assert_eq!(c.call(b"peek 1\r\n"), "FOUND 1 10\r\n0123456789\r\n", "{name}");
    drop(d);

    let d = Daemon::start_tcp(bin, LOCALHOST, |p| on_port(p, &["-z", "0"]));
    let mut c = d.connect();
    assert_eq!(c.stat("max-job-size"), "0", "{name}");
    assert_eq!(c.call(b"put 0 0 60 0\r\n\r\n"), "INSERTED 1\r\n", "{name}");
    assert_eq!(c.call(b"put 0 0 60 1\r\nx\r\n"), "JOB_TOO_BIG\r\n", "{name}");
}
on_both!(max_job_size_flag);

/// `-b DIR` is honoured, never silently ignored: the binlog shows in
/// `stats`, a job acknowledged with INSERTED survives the server being
/// killed (SIGKILL, no chance to flush), and a second server on the same
/// directory is refused (beanstalkd: exit 10, "failed to lock wal dir").
/// (This replaced the "-b must fail until the binlog lands" check.)
fn binlog_flag(bin: &Path, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap().to_string();
    let with_binlog = |p: &str| on_port(p, &["-b", &dir_arg]);
    let d = Daemon::start_tcp(bin, LOCALHOST, with_binlog);
    let mut c = d.connect();
    assert_ne!(c.stat("binlog-current-index"), "0", "{name} -b: no binlog file in use");
    assert_eq!(c.call(b"put 5 0 60 7\r\nlogged!\r\n"), "INSERTED 1\r\n", "{name}");

    let port = support::free_port().to_string();
    let out = run(bin, &on_port(&port, &["-b", &dir_arg]).iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = text(&out.stderr);
    eprintln!("{name}: second server on the same -b: {} {stderr:?}", out.status);
    assert!(!out.status.success(), "{name}: two servers share one -b directory");
    if name == "beanstalkd" {
        assert_eq!(out.status.code(), Some(10));
    }
    drop(c);
    drop(d); // SIGKILL

    let d = Daemon::start_tcp(bin, LOCALHOST, with_binlog);
    let mut c = d.connect();
    assert_eq!(c.call(b"peek-ready\r\n"), "FOUND 1 7\r\nlogged!\r\n", "{name} lost a job over a restart");
    assert_eq!(c.call(b"put 0 0 60 1\r\nx\r\n"), "INSERTED 2\r\n", "{name}");
}
on_both!(binlog_flag);

// ---------------------------------------------------------------------------
// listening sockets

/// `-l ::1` listens on the IPv6 loopback.
fn listens_on_ipv6_loopback(bin: &Path, name: &str) {
    if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
        assert!(!support::in_ci(), "no IPv6 loopback in CI");
        eprintln!("listens_on_ipv6_loopback: skipped, no IPv6 loopback here");
        return;
    }
    let d = Daemon::start_tcp(bin, IpAddr::V6(Ipv6Addr::LOCALHOST), |p| words(&format!("-l ::1 -p {p}")));
    let Addr::Tcp(addr) = d.addr.clone() else { unreachable!() };
    let port = addr.port();
    let mut c = d.connect();
    assert_eq!(c.call(b"put 0 0 60 2\r\nv6\r\n"), "INSERTED 1\r\n", "{name}");
    assert_eq!(c.call(b"reserve\r\n"), "RESERVED 1 2\r\nv6\r\n", "{name}");
    // Not on the IPv4 loopback.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "{name} -l ::1 also accepts on 127.0.0.1");
}
on_both!(listens_on_ipv6_loopback);

/// `-l unix:PATH` listens on a UNIX stream socket; a stale socket file at
/// PATH is replaced, any other file is an error.
fn listens_on_unix_socket(bin: &Path, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sprout.sock");
    drop(UnixListener::bind(&path).unwrap()); // leaves a stale socket file
    assert!(path.exists());
    let spec = format!("unix:{}", path.display());
    let d = Daemon::start(bin, &["-l", &spec], Addr::Unix(path.clone()));
    let mut c = d.connect();
    assert_eq!(c.call(b"put 0 0 60 4\r\nunix\r\n"), "INSERTED 1\r\n", "{name}");
    let mut other = d.connect();
    assert_eq!(other.call(b"reserve\r\n"), "RESERVED 1 4\r\nunix\r\n", "{name}");
    assert_eq!(other.call(b"delete 1\r\n"), "DELETED\r\n", "{name}");
    // (The start-up probe connection may still be closing.)
    wait_until("two connections", || c.stat("current-connections") == "2");
    drop((c, other, d));

    let file = dir.path().join("plain-file");
    std::fs::write(&file, "not a socket").unwrap();
    let out = run(bin, &["-l", &format!("unix:{}", file.display())]);
    eprintln!("{name} -l unix:<regular file>: {} {:?}", out.status, text(&out.stderr));
    assert!(!out.status.success(), "{name} listened on top of a regular file");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a socket", "{name} clobbered a regular file");
}
on_both!(listens_on_unix_socket);

/// A port already in use is a clear startup error with a non-zero exit
/// (beanstalkd: exit 111, "bind(): Address already in use").
fn port_in_use_fails(bin: &Path, name: &str) {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let out = run(bin, &["-l", "127.0.0.1", "-p", &port]);
    let stderr = text(&out.stderr);
    eprintln!("{name} on a busy port: {} {stderr:?}", out.status);
    assert!(!out.status.success(), "{name} started on a port in use");
    let lower = stderr.to_lowercase();
    assert!(lower.contains("in use") || lower.contains("addrinuse"), "{name}: unclear error {stderr:?}");
}
on_both!(port_in_use_fails);

// ---------------------------------------------------------------------------
// signals

/// SIGUSR1 turns on drain mode: `put` reads its body then answers DRAINING,
/// `stats` shows `draining: true`, everything else keeps working.
fn sigusr1_drains(bin: &Path, name: &str) {
    let d = Daemon::start_tcp(bin, LOCALHOST, |p| on_port(p, &[]));
    let mut c = d.connect();
    assert_eq!(c.stat("draining"), "false");
    assert_eq!(c.call(b"put 0 0 60 3\r\nold\r\n"), "INSERTED 1\r\n", "{name}");
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGUSR1);
    }
    wait_until("draining: true", || c.stat("draining") == "true");

    // The put's body is still read (and not parsed as commands).
    assert_eq!(c.call(b"put 0 0 60 10\r\nstats\r\nabc\r\n"), "DRAINING\r\n", "{name}");
    // An oversized body is still skipped and JOB_TOO_BIG (checked first).
    let mut big = b"put 0 0 60 100000\r\n".to_vec();
    big.resize(big.len() + 100_000, b'z');
    big.extend_from_slice(b"\r\n");
    assert_eq!(c.call(&big), "JOB_TOO_BIG\r\n", "{name}");
    let mut fresh = d.connect();
    assert_eq!(fresh.call(b"use elsewhere\r\n"), "USING elsewhere\r\n", "{name}");
    assert_eq!(fresh.call(b"put 0 0 60 1\r\nx\r\n"), "DRAINING\r\n", "{name}");
    assert_eq!(c.call(b"reserve\r\n"), "RESERVED 1 3\r\nold\r\n", "{name}");
    assert_eq!(c.call(b"release 1 0 0\r\n"), "RELEASED\r\n", "{name}");
    assert_eq!(c.call(b"peek-ready\r\n"), "FOUND 1 3\r\nold\r\n", "{name}");
    assert_eq!(c.call(b"reserve-with-timeout 0\r\n"), "RESERVED 1 3\r\nold\r\n", "{name}");
    assert_eq!(c.call(b"delete 1\r\n"), "DELETED\r\n", "{name}");
    assert_eq!(c.stat("total-jobs"), "1", "{name}");
    assert_eq!(c.stat("draining"), "true", "{name}");
    assert_eq!(c.stat("current-jobs-ready"), "0", "{name}");
    // A second SIGUSR1 changes nothing.
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGUSR1);
    }
    assert_eq!(c.call(b"put 0 0 60 1\r\nx\r\n"), "DRAINING\r\n", "{name}");
}
on_both!(sigusr1_drains);

/// SIGTERM and SIGINT make sprout exit promptly with status 0, even with
/// clients connected and one blocked in `reserve`. (beanstalkd simply dies
/// of the signal; sprout exits cleanly on purpose.)
#[test]
fn sigterm_and_sigint_exit_zero() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut s = Server::sprout(&[]);
        let mut idle = s.connect();
        assert_eq!(idle.call("put 0 0 60 1\r\nj\r\n"), "INSERTED 1\r\n");
        let mut worker = s.connect();
        assert_eq!(worker.call("reserve\r\n"), "RESERVED 1 1\r\nj\r\n");
        let mut waiter = s.connect();
        waiter.send(b"reserve\r\n");
        wait_until("the waiter to block", || {
            let reply = idle.call("stats\r\n");
            reply.contains("\ncurrent-waiting: 1\n")
        });
        s.signal(sig);
        let status = s.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| panic!("sprout ignored signal {sig}"));
        assert!(status.success(), "sprout exited with {status} on signal {sig}");
        assert!(waiter.is_closed(), "waiter not disconnected after signal {sig}");
    }
}

/// VmRSS of a process, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
    kib * 1024
}

/// After a burst of jobs is drained, sprout gives the memory back to the
/// kernel (beanstalkd keeps it: 288 MiB after a million jobs came and went).
#[test]
fn memory_goes_back_to_the_kernel_after_a_drain() {
    const JOBS: usize = 100_000;
    const BATCH: usize = 1000;
    let s = Server::sprout(&[]);
    let mut c = s.connect();
    let put = format!("put 0 0 60 200\r\n{}\r\n", "x".repeat(200)).repeat(BATCH);
    for _ in 0..JOBS / BATCH {
        c.send(put.as_bytes());
        for _ in 0..BATCH {
            let reply = c.read_reply();
            assert!(reply.starts_with(b"INSERTED "), "{}", String::from_utf8_lossy(&reply));
        }
    }
    let loaded = resident_bytes(s.pid());
    let reserve = "reserve-with-timeout 0\r\n".repeat(BATCH);
    for _ in 0..JOBS / BATCH {
        c.send(reserve.as_bytes());
        let mut deletes = String::new();
        for _ in 0..BATCH {
            let reply = String::from_utf8(c.read_reply()).unwrap();
            let id = reply.strip_prefix("RESERVED ").and_then(|r| r.split(' ').next()).expect("RESERVED");
            deletes.push_str(&format!("delete {id}\r\n"));
        }
        c.send(deletes.as_bytes());
        for _ in 0..BATCH {
            assert_eq!(c.read_reply(), b"DELETED\r\n");
        }
    }
    // Memory goes back at the end of the last delete's turn, just after its
    // reply went out.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut drained = resident_bytes(s.pid());
    while drained >= loaded / 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        drained = resident_bytes(s.pid());
    }
    assert!(
        drained < loaded / 2,
        "{} MiB resident with {JOBS} jobs, {} MiB after they were deleted",
        loaded >> 20,
        drained >> 20
    );
}

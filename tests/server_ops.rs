//! Command line, listening sockets, signals and lifecycle of the real binary.
//!
//! Where sprout must behave like beanstalkd 1.12, the same body also runs
//! against the reference server (`<case>::beanstalkd`, skipped locally when
//! it is not installed). Every invocation that could start a server names a
//! loopback address and a free port, so a misparsed flag never binds a
//! public or default port.

mod support;

use std::net::{IpAddr, Ipv6Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use support::{Binary, Server, free_port, on_both, procfs, wait_until};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

// ---------------------------------------------------------------------------
// -h, -v, bad flags

/// `-h` prints a usage text naming every beanstalkd flag and exits 0.
fn help_lists_every_flag(bin: &Binary) {
    let name = bin.name;
    let port = free_port().to_string();
    let out = bin.run(&["-l", "127.0.0.1", "-p", &port, "-h"]);
    let usage = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{name} -h: {} {usage}", out.status);
    let tokens: Vec<&str> = usage.split_whitespace().map(|t| t.trim_end_matches(',')).collect();
    for flag in ["-b", "-f", "-F", "-l", "-p", "-u", "-z", "-s", "-v", "-V", "-h"] {
        assert!(tokens.contains(&flag), "{name} -h does not list {flag}:\n{usage}");
    }
}
on_both!(help_lists_every_flag);

/// `-v` prints a version line on stdout and exits 0.
fn version_flag(bin: &Binary) {
    let name = bin.name;
    let port = free_port().to_string();
    let out = bin.run(&["-l", "127.0.0.1", "-p", &port, "-v"]);
    assert!(out.status.success(), "{name} -v: {}", out.status);
    let stdout = text(&out.stdout);
    let line = stdout.lines().next().unwrap_or_default();
    eprintln!("{name} -v: {line:?}");
    assert!(line.chars().any(|c| c.is_ascii_digit()), "{name} -v printed no version: {stdout:?}");
}
on_both!(version_flag);

/// Bad command lines fail (beanstalkd: exit 5) with a message naming what
/// was wrong, and start no server.
fn bad_command_lines_fail(bin: &Binary) {
    let name = bin.name;
    let port = free_port().to_string();
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
        let out = bin.run(&args);
        let stderr = text(&out.stderr);
        eprintln!("{name} {extra:?}: {} {:?}", out.status, stderr.lines().next().unwrap_or_default());
        assert!(!out.status.success(), "{name} {extra:?} succeeded");
        if !bin.is_sprout() && extra[0] != "-u" {
            assert_eq!(out.status.code(), Some(5), "{name} {extra:?}");
        }
        assert!(stderr.contains(named), "{name} {extra:?}: stderr does not name {named:?}: {stderr:?}");
    }
    // A flag missing its value, as the last argument.
    for flag in ["-p", "-l", "-z"] {
        let args = ["-l", "127.0.0.1", "-p", &port, flag];
        let out = bin.run(&args);
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
fn flag_forms(bin: &Binary) {
    type Form = fn(u16) -> Vec<String>;
    let forms: &[(Form, &str)] = &[
        (|p| words(&format!("-l127.0.0.1 -p{p} -z100")), "100"),
        (|p| words(&format!("-l 127.0.0.1 -p {p} -Vz100")), "100"),
        (|p| words(&format!("-l 127.0.0.1 -Vp {p} -z 7")), "7"),
        (|p| words(&format!("-l 127.0.0.1 -p {p} -z 5 -z 300 -c -n -f0 -F -s 4096")), "300"),
        (|p| words(&format!("-l 127.0.0.1 -p 1 -p {p} -f 20 -V -V")), "65535"),
    ];
    for (form, max_job_size) in forms {
        let d = bin.server().command_line(form).start();
        let mut c = d.connect();
        assert_eq!(c.stat("max-job-size"), *max_job_size, "{} {:?}", bin.name, form(0));
        assert_eq!(c.call("list-tube-used\r\n"), "USING default\r\n", "{}", bin.name);
    }
}
on_both!(flag_forms);

/// sprout also takes long options.
#[test]
fn long_options() {
    let d =
        Server::sprout().command_line(|p| words(&format!("--listen 127.0.0.1 --port {p} --max-job-size 123"))).start();
    assert_eq!(d.connect().stat("max-job-size"), "123");
    drop(d);
    let d =
        Server::sprout().command_line(|p| words(&format!("--listen=127.0.0.1 --port={p} --max-job-size=321"))).start();
    assert_eq!(d.connect().stat("max-job-size"), "321");
}

/// `-z` is clamped to 1073741824; a small `-z` is enforced exactly.
fn max_job_size_flag(bin: &Binary) {
    let name = bin.name;
    let d = bin.server().args(["-z", "2000000000"]).start();
    assert_eq!(d.connect().stat("max-job-size"), "1073741824", "{name}");
    drop(d);

    let d = bin.server().args(["-z", "10"]).start();
    let mut c = d.connect();
    assert_eq!(c.stat("max-job-size"), "10", "{name}");
    assert_eq!(c.call("put 0 0 60 10\r\n0123456789\r\n"), "INSERTED 1\r\n", "{name}");
    assert_eq!(c.call("put 0 0 60 11\r\n0123456789a\r\n"), "JOB_TOO_BIG\r\n", "{name}");
    assert_eq!(c.call("peek 1\r\n"), "FOUND 1 10\r\n0123456789\r\n", "{name}");
    drop(d);

    let d = bin.server().args(["-z", "0"]).start();
    let mut c = d.connect();
    assert_eq!(c.stat("max-job-size"), "0", "{name}");
    assert_eq!(c.call("put 0 0 60 0\r\n\r\n"), "INSERTED 1\r\n", "{name}");
    assert_eq!(c.call("put 0 0 60 1\r\nx\r\n"), "JOB_TOO_BIG\r\n", "{name}");
}
on_both!(max_job_size_flag);

/// `-b DIR` is honoured, never silently ignored: the binlog shows in
/// `stats`, a job acknowledged with INSERTED survives the server being
/// killed (SIGKILL, no chance to flush), and a second server on the same
/// directory is refused (beanstalkd: exit 10, "failed to lock wal dir").
/// (This replaced the "-b must fail until the binlog lands" check.)
fn binlog_flag(bin: &Binary) {
    let name = bin.name;
    let dir = tempfile::tempdir().unwrap();
    let mut d = bin.server().binlog(dir.path()).start();
    let mut c = d.connect();
    assert_ne!(c.stat("binlog-current-index"), "0", "{name} -b: no binlog file in use");
    assert_eq!(c.call("put 5 0 60 7\r\nlogged!\r\n"), "INSERTED 1\r\n", "{name}");

    match bin.server().binlog(dir.path()).try_start() {
        Ok(second) => panic!("{name}: two servers share one -b directory (pids {} and {})", d.pid(), second.pid()),
        Err(refused) => {
            eprintln!("{name}: second server on the same -b: {} {:?}", refused.status, refused.stderr);
            if !bin.is_sprout() {
                assert_eq!(refused.status.code(), Some(10));
            }
        }
    }
    drop(c);
    d.kill9();

    let d = bin.server().binlog(dir.path()).start();
    let mut c = d.connect();
    assert_eq!(c.call("peek-ready\r\n"), "FOUND 1 7\r\nlogged!\r\n", "{name} lost a job over a restart");
    assert_eq!(c.call("put 0 0 60 1\r\nx\r\n"), "INSERTED 2\r\n", "{name}");
}
on_both!(binlog_flag);

// ---------------------------------------------------------------------------
// listening sockets

/// `-l ::1` listens on the IPv6 loopback.
fn listens_on_ipv6_loopback(bin: &Binary) {
    if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
        support::skip("listens_on_ipv6_loopback", "no IPv6 loopback here");
        return;
    }
    let name = bin.name;
    let d = bin.server().listen_on(IpAddr::V6(Ipv6Addr::LOCALHOST)).start();
    let mut c = d.connect();
    assert_eq!(c.call("put 0 0 60 2\r\nv6\r\n"), "INSERTED 1\r\n", "{name}");
    assert_eq!(c.call("reserve\r\n"), "RESERVED 1 2\r\nv6\r\n", "{name}");
    // Not on the IPv4 loopback.
    assert!(TcpStream::connect(("127.0.0.1", d.port())).is_err(), "{name} -l ::1 also accepts on 127.0.0.1");
}
on_both!(listens_on_ipv6_loopback);

/// `-l unix:PATH` listens on a UNIX stream socket; a stale socket file at
/// PATH is replaced, any other file is an error.
fn listens_on_unix_socket(bin: &Binary) {
    let name = bin.name;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sprout.sock");
    drop(UnixListener::bind(&path).unwrap()); // leaves a stale socket file
    assert!(path.exists());
    let d = bin.server().unix_socket(&path).start();
    let mut c = d.connect();
    assert_eq!(c.call("put 0 0 60 4\r\nunix\r\n"), "INSERTED 1\r\n", "{name}");
    let mut other = d.connect();
    assert_eq!(other.call("reserve\r\n"), "RESERVED 1 4\r\nunix\r\n", "{name}");
    assert_eq!(other.call("delete 1\r\n"), "DELETED\r\n", "{name}");
    // (The start-up probe connection may still be closing.)
    let two = wait_until(Duration::from_secs(10), || c.stat("current-connections") == "2");
    assert!(two, "{name}: current-connections is not 2");
    drop((c, other, d));

    let file = dir.path().join("plain-file");
    std::fs::write(&file, "not a socket").unwrap();
    let out = bin.run(&["-l", &format!("unix:{}", file.display())]);
    eprintln!("{name} -l unix:<regular file>: {} {:?}", out.status, text(&out.stderr));
    assert!(!out.status.success(), "{name} listened on top of a regular file");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a socket", "{name} clobbered a regular file");
}
on_both!(listens_on_unix_socket);

/// A port already in use is a clear startup error with a non-zero exit
/// (beanstalkd: exit 111, "bind(): Address already in use").
fn port_in_use_fails(bin: &Binary) {
    let name = bin.name;
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let out = bin.run(&["-l", "127.0.0.1", "-p", &port]);
    let stderr = text(&out.stderr);
    eprintln!("{name} on a busy port: {} {stderr:?}", out.status);
    assert!(!out.status.success(), "{name} started on a port in use");
    let lower = stderr.to_lowercase();
    assert!(lower.contains("in use") || lower.contains("addrinuse"), "{name}: unclear error {stderr:?}");
}
on_both!(port_in_use_fails);

// ---------------------------------------------------------------------------
// signals

/// A burst of connections while the server is busy elsewhere (here: stopped
/// by SIGSTOP) is queued by the kernel, as beanstalkd's listen backlog of
/// 1024 queues it: each connect completes at once. (With a backlog of 128,
/// the connects past it had their handshakes dropped and each waited a
/// second or more for its SYN to be sent again.)
fn a_burst_of_connections_is_queued_while_the_server_is_busy(bin: &Binary) {
    const BURST: usize = 600;
    let name = bin.name;
    let mut d = bin.server().start();
    let mut c = d.connect();
    let before: usize = c.stat("total-connections").parse().unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], d.port()));
    d.signal(libc::SIGSTOP);
    // Not a measurement: a queued handshake completes in the kernel at
    // once, busy machine or not; a dropped one waits for a second SYN.
    let mut connected = Vec::with_capacity(BURST);
    while connected.len() < BURST {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            Ok(stream) => connected.push(stream),
            Err(_) => break,
        }
    }
    d.signal(libc::SIGCONT);
    let done = connected.len();
    assert_eq!(done, BURST, "{name}: connect {} of {BURST} did not complete while the server was stopped", done + 1);
    let want = (before + BURST).to_string();
    assert!(
        wait_until(Duration::from_secs(20), || c.stat("total-connections") == want),
        "{name}: the queued connections were not all accepted"
    );
}
on_both!(a_burst_of_connections_is_queued_while_the_server_is_busy);

/// SIGUSR1 turns on drain mode: `put` reads its body then answers DRAINING,
/// `stats` shows `draining: true`, everything else keeps working.
fn sigusr1_drains(bin: &Binary) {
    let name = bin.name;
    let mut d = bin.server().start();
    let mut c = d.connect();
    assert_eq!(c.stat("draining"), "false");
    assert_eq!(c.call("put 0 0 60 3\r\nold\r\n"), "INSERTED 1\r\n", "{name}");
    d.signal(libc::SIGUSR1);
    assert!(wait_until(Duration::from_secs(10), || c.stat("draining") == "true"), "{name}: not draining");

    // The put's body is still read (and not parsed as commands).
    assert_eq!(c.call("put 0 0 60 10\r\nstats\r\nabc\r\n"), "DRAINING\r\n", "{name}");
    // An oversized body is still skipped and JOB_TOO_BIG (checked first).
    let mut big = b"put 0 0 60 100000\r\n".to_vec();
    big.resize(big.len() + 100_000, b'z');
    big.extend_from_slice(b"\r\n");
    assert_eq!(c.call(&big), "JOB_TOO_BIG\r\n", "{name}");
    let mut fresh = d.connect();
    assert_eq!(fresh.call("use elsewhere\r\n"), "USING elsewhere\r\n", "{name}");
    assert_eq!(fresh.call("put 0 0 60 1\r\nx\r\n"), "DRAINING\r\n", "{name}");
    assert_eq!(c.call("reserve\r\n"), "RESERVED 1 3\r\nold\r\n", "{name}");
    assert_eq!(c.call("release 1 0 0\r\n"), "RELEASED\r\n", "{name}");
    assert_eq!(c.call("peek-ready\r\n"), "FOUND 1 3\r\nold\r\n", "{name}");
    assert_eq!(c.call("reserve-with-timeout 0\r\n"), "RESERVED 1 3\r\nold\r\n", "{name}");
    assert_eq!(c.call("delete 1\r\n"), "DELETED\r\n", "{name}");
    assert_eq!(c.stat("total-jobs"), "1", "{name}");
    assert_eq!(c.stat("draining"), "true", "{name}");
    assert_eq!(c.stat("current-jobs-ready"), "0", "{name}");
    // A second SIGUSR1 changes nothing.
    d.signal(libc::SIGUSR1);
    assert_eq!(c.call("put 0 0 60 1\r\nx\r\n"), "DRAINING\r\n", "{name}");
}
on_both!(sigusr1_drains);

/// SIGTERM and SIGINT make sprout exit promptly with status 0, even with
/// clients connected and one blocked in `reserve`. (beanstalkd simply dies
/// of the signal; sprout exits cleanly on purpose.)
#[test]
fn sigterm_and_sigint_exit_zero() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut s = Server::sprout().start();
        let mut idle = s.connect();
        assert_eq!(idle.call("put 0 0 60 1\r\nj\r\n"), "INSERTED 1\r\n");
        let mut worker = s.connect();
        assert_eq!(worker.call("reserve\r\n"), "RESERVED 1 1\r\nj\r\n");
        let mut waiter = s.connect();
        waiter.send("reserve\r\n");
        let blocked = wait_until(Duration::from_secs(10), || idle.stat("current-waiting") == "1");
        assert!(blocked, "the waiter did not block");
        s.signal(sig);
        let status = s.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| panic!("sprout ignored signal {sig}"));
        assert!(status.success(), "sprout exited with {status} on signal {sig}");
        assert!(waiter.is_closed(), "waiter not disconnected after signal {sig}");
    }
}

/// After a burst of jobs is drained, sprout gives the memory back to the
/// kernel (beanstalkd keeps it: 288 MiB after a million jobs came and went).
#[test]
fn memory_goes_back_to_the_kernel_after_a_drain() {
    const JOBS: usize = 100_000;
    const BATCH: usize = 1000;
    let s = Server::sprout().start();
    let mut c = s.connect();
    let put = format!("put 0 0 60 200\r\n{}\r\n", "x".repeat(200)).repeat(BATCH);
    for _ in 0..JOBS / BATCH {
        c.send(&put);
        for _ in 0..BATCH {
            let reply = c.read_reply();
            assert!(reply.starts_with(b"INSERTED "), "{}", String::from_utf8_lossy(&reply));
        }
    }
    let loaded = procfs::resident_kb(s.pid());
    let reserve = "reserve-with-timeout 0\r\n".repeat(BATCH);
    for _ in 0..JOBS / BATCH {
        c.send(&reserve);
        let mut deletes = String::new();
        for _ in 0..BATCH {
            let reply = String::from_utf8(c.read_reply()).unwrap();
            let id = reply.strip_prefix("RESERVED ").and_then(|r| r.split(' ').next()).expect("RESERVED");
            deletes.push_str(&format!("delete {id}\r\n"));
        }
        c.send(&deletes);
        for _ in 0..BATCH {
            assert_eq!(c.read_reply(), b"DELETED\r\n");
        }
    }
    // Memory goes back at the end of the last delete's turn, just after its
    // reply went out.
    let mut drained = procfs::resident_kb(s.pid());
    wait_until(Duration::from_secs(10), || {
        drained = procfs::resident_kb(s.pid());
        drained < loaded / 2
    });
    assert!(
        drained < loaded / 2,
        "{} MiB resident with {JOBS} jobs, {} MiB after they were deleted",
        loaded >> 10,
        drained >> 10
    );
}

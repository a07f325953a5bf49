//! Bounds under abuse: how much a client can make the server hold, and that
//! it cannot stop the server from serving everyone else. Each test drives
//! the real binary, states its bound in a comment and asserts it from what
//! `/proc` says (resident and virtual memory, descriptors, bytes a socket
//! holds unread), from the reply bytes, and from `stats`' counts:
//!
//! - ten thousand connections each stalled halfway through a command,
//! - a client that pipelines requests and never reads the replies,
//! - running out of file descriptors.
//!
//! Memory bounds are taken against the server's own figures just before the
//! abuse, so they hold for a debug build and a release one alike. Nothing
//! is timed: every wait polls a condition up to a generous deadline.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use support::{Binary, Client, Server, on_both, procfs, show, wait_until};

/// Raises this process's RLIMIT_NOFILE soft limit to the hard limit (servers
/// started afterwards inherit it) and returns the new soft limit.
fn raise_nofile_limit() -> u64 {
    sprout::host::raise_fd_limit();
    procfs::open_files_limit(std::process::id())
}

/// Raises this process's open-files limit for `conns` client connections,
/// or says why the test is skipped (and returns `None`).
fn room_for_connections(test: &str, conns: usize) -> Option<u64> {
    let limit = raise_nofile_limit();
    let needed = conns as u64 + 100;
    if limit < needed {
        support::skip(test, &format!("RLIMIT_NOFILE hard limit {limit} < {needed}"));
        return None;
    }
    Some(limit)
}

/// A put, a reserve and a delete from `c`: the server is serving. The
/// job's priority, 0, puts it ahead of the other ready jobs of these tests.
fn round_trip(c: &mut Client) {
    let id = c.put(0, 0, 60, b"round trip");
    c.exchange(b"reserve-with-timeout 0\r\n", format!("RESERVED {id} 10\r\nround trip\r\n"));
    c.exchange(format!("delete {id}\r\n"), b"DELETED\r\n");
}

/// Waits until the server behind `c` counts `n` connections.
#[track_caller]
fn wait_for_connections(c: &mut Client, n: usize) {
    let want = n.to_string();
    let mut now = String::new();
    let counted = wait_until(Duration::from_secs(30), || {
        now = c.stat("current-connections");
        now == want
    });
    assert!(counted, "the server counts {now} connections, not {n}");
}

/// Waits until the server on `port` has read every byte its clients sent.
#[track_caller]
fn wait_until_all_read(port: u16) {
    let read = wait_until(Duration::from_secs(30), || procfs::unread_bytes_on_port(port) == 0);
    assert!(read, "{} bytes sent to the server stay unread", procfs::unread_bytes_on_port(port));
}

// ---------------------------------------------------------------------------
// slowloris: connections stalled halfway through a command

/// Halves of commands, what completes each, and the reply then (a put's is
/// checked up to its id; its priority, 1, leaves the round trips' jobs
/// first).
const HALVES: [(&[u8], &[u8], &[u8]); 6] = [
    (b"put 1 0 10 5", b"\r\nhello\r\n", b"INSERTED "),
    (b"put 1 0 10 5\r", b"\nhello\r\n", b"INSERTED "),
    (b"list-tube-us", b"ed\r\n", b"USING default\r\n"),
    (b"watch abuse-tube", b"-2\r\n", b"WATCHING 2\r\n"),
    (b"stats-job 0", b"\r\n", b"NOT_FOUND\r\n"),
    // The longest line there is, but its CRLF: 222 bytes held.
    (LONGEST_HALF, b"\r\n", b"NOT_FOUND\r\n"),
];

/// `delete 9` with 215 spaces: with its CRLF, a line of 224 bytes, the
/// longest a command may be.
const LONGEST_HALF: &[u8] = {
    const LEN: usize = 222;
    const BYTES: [u8; LEN] = {
        let mut line = [b' '; LEN];
        let head = b"delete";
        let mut i = 0;
        while i < head.len() {
            line[i] = head[i];
            i += 1;
        }
        line[LEN - 1] = b'9';
        line
    };
    &BYTES
};

/// Opens `n` connections that each send half a command ([`HALVES`], in
/// turn) and stop. Every 1,000, waits for the server to accept them (so its
/// accept queue never overflows) and checks that `busy` is served: a put, a
/// reserve and a delete.
fn open_half_commands(s: &Server, busy: &mut Client, n: usize) -> Vec<Client> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut conn = s.connect();
        conn.send(HALVES[i % HALVES.len()].0);
        conns.push(conn);
        if i % 1000 == 999 {
            wait_for_connections(busy, i + 2);
            round_trip(busy);
        }
    }
    conns
}

/// 10,000 connections each send half a command and stop (slowloris).
/// sprout keeps serving a normal client throughout, completes every
/// half-command it is given the rest of, and gives everything back when
/// they close.
///
/// Bound: 1 KiB of resident memory a connection over the RSS before. What
/// a stalled connection holds: its `Connection` (at most 200 bytes,
/// `a_connection_stays_small`) in a slot of the server's slab, its session
/// in the engine (its watch list, the tube it uses), and the half line in
/// an allocation of its own (at most 222 bytes). The socket buffers are the
/// kernel's. Measured: 420 bytes a connection (debug build).
///
/// When they close, the memory is released: a second wave of 10,000 raises
/// the peak by less than 1 MiB over the first.
#[test]
fn ten_thousand_connections_stalled_halfway_through_a_command() {
    const CONNS: usize = 10_000;
    const BOUND_PER_CONN: u64 = 1024;
    let Some(limit) = room_for_connections("ten_thousand_connections_stalled_halfway_through_a_command", CONNS) else {
        return;
    };
    let s = Server::sprout().nofile_limit(limit).start();
    let pid = s.pid();
    let mut busy = s.connect();
    // (The start-up probe's connection closes.)
    wait_for_connections(&mut busy, 1);
    let total_before = busy.stats().num("total-connections") as usize;
    round_trip(&mut busy);
    let rss_before = procfs::resident_kb(pid);

    let mut conns = open_half_commands(&s, &mut busy, CONNS);
    wait_for_connections(&mut busy, CONNS + 1);
    assert_eq!(busy.stats().num("total-connections") as usize, total_before + CONNS);
    wait_until_all_read(s.port());
    let rss = procfs::resident_kb(pid);
    let per_conn = (rss.saturating_sub(rss_before) * 1024) / CONNS as u64;
    eprintln!("sprout: RSS {rss_before} kB, then {rss} kB with {CONNS} stalled connections: {per_conn} bytes each");
    assert!(
        rss <= rss_before + CONNS as u64 * BOUND_PER_CONN / 1024,
        "RSS {rss} kB with {CONNS} stalled connections, from {rss_before} kB: over {BOUND_PER_CONN} bytes each"
    );

    // The busy client is served, pipelining too, and some stalled
    // connections finish their commands and get their replies.
    busy.send(b"use other\r\nput 1 0 60 2\r\nhi\r\nwatch other\r\nreserve\r\n");
    busy.expect_reply(b"USING other\r\n");
    let id = support::inserted_id(&busy.read_reply()).expect("INSERTED");
    busy.expect_reply(b"WATCHING 2\r\n");
    busy.expect_reply(format!("RESERVED {id} 2\r\nhi\r\n"));
    busy.exchange(format!("delete {id}\r\n"), b"DELETED\r\n");
    for (i, conn) in conns.iter_mut().enumerate().step_by(997) {
        let (_, rest, want) = HALVES[i % HALVES.len()];
        let reply = conn.request(rest);
        assert!(reply.starts_with(want) && reply.ends_with(b"\r\n"), "connection {i}: {}", show(&reply));
    }

    drop(conns);
    wait_for_connections(&mut busy, 1);
    round_trip(&mut busy);
    let peak_first = procfs::peak_resident_kb(pid);
    let conns = open_half_commands(&s, &mut busy, CONNS);
    wait_until_all_read(s.port());
    let peak_second = procfs::peak_resident_kb(pid);
    eprintln!("sprout: peak RSS {peak_first} kB after the first wave, {peak_second} kB after the second");
    assert!(
        peak_second <= peak_first + 1024,
        "a second wave of {CONNS} took the peak RSS from {peak_first} kB to {peak_second} kB: the first was not released"
    );
    drop(conns);
    wait_for_connections(&mut busy, 1);
    round_trip(&mut busy);
}

// ---------------------------------------------------------------------------
// clients that never read

/// A client pipelines 25,000 `peek` of a 60 kB job (1.5 GB of replies) and
/// reads nothing. The server must stop reading from it instead of queueing
/// the replies: its RSS stays bounded and another client is served
/// meanwhile. Then the slow client reads everything, complete and in order.
///
/// Bound: RSS under 100 MiB throughout. sprout sends bodies of 2 KiB and
/// more from the job's own allocation, so its queued replies hold a few
/// bytes each: measured, its RSS stays at its 7.6 MiB at the start (debug
/// build); beanstalkd's at 2.8 MiB.
fn slow_reader_is_backpressured(bin: &Binary) {
    let s = bin.server().start();
    const JOB: usize = 60_000;
    const PEEKS: usize = 25_000;
    const RSS_LIMIT_KB: u64 = 100 * 1024;
    let pid = s.pid();
    let mut other = s.connect();
    let body: Vec<u8> = (0..JOB).map(|i| b'a' + (i % 26) as u8).collect();
    let mut put = format!("put 0 0 60 {JOB}\r\n").into_bytes();
    put.extend_from_slice(&body);
    put.extend_from_slice(b"\r\n");
    other.exchange(&put, b"INSERTED 1\r\n");

    let mut slow = s.connect();
    let mut w = slow.writer();
    let writer = thread::spawn(move || w.write_all(&b"peek 1\r\n".repeat(PEEKS)).unwrap());

    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let rss = procfs::resident_kb(pid);
        assert!(rss < RSS_LIMIT_KB, "{} RSS {rss} kB with a client not reading its replies", s.name);
        thread::sleep(Duration::from_millis(50));
    }
    // Another client is served meanwhile.
    let both = wait_until(Duration::from_secs(10), || other.stat("current-connections") == "2");
    assert!(both, "{}: the slow client's connection is not counted", s.name);
    other.exchange(b"put 0 0 60 1\r\nq\r\n", b"INSERTED 2\r\n");
    other.exchange(b"reserve-job 2\r\n", b"RESERVED 2 1\r\nq\r\n");
    other.exchange(b"delete 2\r\n", b"DELETED\r\n");
    let rss = procfs::resident_kb(pid);
    eprintln!("{}: RSS with a stalled reader: {rss} kB", s.name);
    assert!(rss < RSS_LIMIT_KB, "{} RSS {rss} kB with a client not reading its replies", s.name);

    // Now the slow client reads every reply.
    let mut want = format!("FOUND 1 {JOB}\r\n").into_bytes();
    want.extend_from_slice(&body);
    want.extend_from_slice(b"\r\n");
    for i in 0..PEEKS {
        let got = slow.read_bytes(want.len());
        if got != want {
            panic!("reply {i} of {PEEKS} differs: starts {}", show(&got[..40]));
        }
    }
    writer.join().unwrap();
    other.exchange(b"peek 2\r\n", b"NOT_FOUND\r\n");
    let peak = procfs::peak_resident_kb(pid);
    eprintln!("{}: peak RSS over the slow-reader test: {peak} kB", s.name);
    assert!(peak < RSS_LIMIT_KB, "{} peak RSS {peak} kB", s.name);
}
on_both!(slow_reader_is_backpressured);

// ---------------------------------------------------------------------------
// out of file descriptors

/// Reads from each connection without blocking; records which have received
/// `want` in full. Returns the number of newly completed connections.
fn poll_replies(conns: &mut [(TcpStream, Vec<u8>)], want: &[u8]) -> usize {
    let mut done = 0;
    for (conn, got) in conns.iter_mut() {
        if got.len() >= want.len() {
            continue;
        }
        let mut buf = [0u8; 64];
        match conn.read(&mut buf) {
            Ok(0) => panic!("server closed a connection (after {})", show(got)),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() >= want.len() {
                    assert_eq!(show(got), show(want));
                    done += 1;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    done
}

/// Polls `conns` until `n` in all have their reply.
#[track_caller]
fn wait_for_replies(conns: &mut [(TcpStream, Vec<u8>)], want: &[u8], n: usize) {
    let mut served = conns.iter().filter(|(_, got)| got.len() >= want.len()).count();
    let done = wait_until(Duration::from_secs(30), || {
        served += poll_replies(conns, want);
        served >= n
    });
    assert!(done, "{served} connections served, not {n}");
}

/// Connects `n` raw sockets that each send `list-tube-used`, to be read
/// without blocking: those the server cannot accept wait in its backlog.
fn connect_raw(port: u16, n: usize) -> Vec<(TcpStream, Vec<u8>)> {
    (0..n)
        .map(|_| {
            let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
            conn.set_nodelay(true).unwrap();
            conn.write_all(b"list-tube-used\r\n").unwrap();
            conn.set_nonblocking(true).unwrap();
            (conn, Vec::new())
        })
        .collect()
}

/// Out of file descriptors (RLIMIT_NOFILE 64): sprout accepts exactly as
/// many connections as its descriptors allow, keeps serving them, neither
/// exits nor spins while others wait, and accepts the waiting ones, and
/// new ones, as soon as descriptors come back, each time they do.
/// (beanstalkd retries its failing accept in a busy loop: protocol.md,
/// departure 6.)
///
/// Bound: connections open at once = 64 - the descriptors below 64 sprout
/// holds for itself (8: the standard three, the listener, the poller, the
/// two ends of the signal socket pair and the timer; one more here, which
/// the test runner inherited and passed on); CPU while out of descriptors
/// under a quarter of the time (measured: none).
#[test]
fn out_of_file_descriptors() {
    const NOFILE: u64 = 64;
    const CONNS: usize = 80;
    let want = b"USING default\r\n";
    let mut server = Server::sprout().nofile_limit(NOFILE).start();
    let pid = server.pid();
    let mut watcher = server.connect();
    wait_for_connections(&mut watcher, 1);
    // Descriptors numbered past the limit (inherited ones can be) take no
    // room below it.
    let below_limit = procfs::open_fds(pid).into_iter().filter(|&fd| u64::from(fd) < NOFILE).count();
    let own = below_limit - 1;
    let room = NOFILE as usize - own;
    eprintln!("sprout with RLIMIT_NOFILE={NOFILE}: {own} descriptors of its own, room for {room} connections");

    // It accepts until the descriptors run out: the watcher and room - 1
    // of these. The rest wait in the listen backlog.
    let mut conns = connect_raw(server.port(), CONNS);
    wait_for_replies(&mut conns, want, room - 1);
    assert_eq!(watcher.stats().num("current-connections") as usize, room);
    thread::sleep(Duration::from_millis(500));
    poll_replies(&mut conns, want);
    let served = conns.iter().filter(|(_, got)| !got.is_empty()).count();
    assert_eq!(served, room - 1, "more connections served than descriptors allow");

    // Out of descriptors with clients waiting: no exit, no busy loop.
    let cpu_before = procfs::cpu_seconds(pid);
    let wall = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let cpu = procfs::cpu_seconds(pid) - cpu_before;
    let elapsed = wall.elapsed().as_secs_f64();
    eprintln!("sprout out of fds: {cpu:.2} s CPU in {elapsed:.2} s");
    assert!(cpu < 0.25 * elapsed, "sprout used {cpu:.2} s of CPU in {elapsed:.2} s while out of fds (spinning?)");
    assert_eq!(server.exit_status(), None, "sprout exited when out of fds");

    // The accepted connections are still served.
    let (mut accepted, mut waiting): (Vec<_>, Vec<_>) = conns.into_iter().partition(|(_, got)| !got.is_empty());
    for (conn, got) in accepted.iter_mut().step_by(7) {
        conn.write_all(b"list-tube-used\r\n").unwrap();
        got.clear();
    }
    let all = accepted.len();
    wait_for_replies(&mut accepted, want, all);

    // Ten close: ten waiting ones are accepted, and the descriptors run out
    // again.
    accepted.truncate(accepted.len() - 10);
    wait_for_replies(&mut waiting, want, 10);
    wait_for_connections(&mut watcher, room);
    let served = waiting.iter().filter(|(_, got)| !got.is_empty()).count();
    assert_eq!(served, 10, "more connections served than descriptors came back");
    // All close: every waiting one is accepted, and new ones too.
    drop(accepted);
    let late = waiting.len();
    wait_for_replies(&mut waiting, want, late);
    let mut fresh = connect_raw(server.port(), 10);
    wait_for_replies(&mut fresh, want, 10);
    wait_for_connections(&mut watcher, 1 + late + 10);
    round_trip(&mut watcher);
    assert_eq!(server.exit_status(), None, "sprout exited");
}

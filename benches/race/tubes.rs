//! The `tubes` scenario (issue 4): what a put and a reserve cost as the
//! number of tubes a worker watches, or the number of reserves waiting, grows.
//! Each variant runs at every n of `--tubes-n` (10, 1,000 and 10,000 by
//! default); a row that stays flat across n is a cost that does not grow
//! with n.
//!
//! - `N tubes, 1 worker watching all`: the worker watches t0..tN-1 (and not
//!   `default`). A producer puts `--tubes-jobs` jobs round-robin over the
//!   tubes (`use` + `put`, 100 in flight, priorities 0, 1, 2 in turn); the
//!   worker then reserves and deletes them all (100 in flight), and must get
//!   them in (priority, id) order. Then, with every tube empty, the worker
//!   blocks in `reserve` and a put into one tube wakes it, `--tubes-wakes`
//!   times in a row: the put-to-RESERVED time is the wake latency.
//! - `N reserves waiting on 1 tube` / `on N tubes`: N connections block in
//!   `reserve` (on `default`, or each on a tube of its own); a producer puts
//!   one job at a time (into the waiter's own tube in the second case), each
//!   handed straight to a waiter. Once every waiter has its job, each deletes
//!   it and reserves again, and the next round starts, until `--tubes-jobs`
//!   jobs have been put (on 1 tube, rounded up to whole rounds: which waiter
//!   beanstalkd serves is not known in advance; with a tube each, the last
//!   round serves the first waiters only).
//!
//! A small blocking client of its own: each connection is one socket read
//! through a buffer, so 10,000 waiters take 10,000 descriptors. Every reply
//! is checked exactly (ids, bodies, the order and the tube a job comes from);
//! anything else ends the run with an error.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::scenarios::{Env, Metric, Unit, Variant};

/// Requests in flight for the pipelined phases.
const IN_FLIGHT: usize = 100;

/// Connections opened before waiting for the server to catch up.
const CONNECT_BATCH: usize = 500;

pub fn variants(opts: &crate::Opts, body: &std::sync::Arc<[u8]>, out: &mut Vec<Variant>) {
    if opts.tubes_n.contains(&0) {
        eprintln!("race: --tubes-n takes positive numbers");
        std::process::exit(2);
    }
    for &n in &opts.tubes_n {
        let body = body.clone();
        out.push(Variant {
            scenario: "tubes",
            label: format!("{n} tubes, 1 worker watching all"),
            flags: vec![],
            binlog: false,
            fixture: None,
            run: Box::new(move |env| watch_all(env, n, &body)),
        });
    }
    for own_tubes in [false, true] {
        for &n in &opts.tubes_n {
            let body = body.clone();
            let label = if own_tubes {
                format!("{n} reserves waiting on {n} tubes (one each)")
            } else {
                format!("{n} reserves waiting on 1 tube")
            };
            out.push(Variant {
                scenario: "tubes",
                label,
                flags: vec![],
                binlog: false,
                fixture: None,
                run: Box::new(move |env| waiters(env, n, own_tubes, &body)),
            });
        }
    }
}

/// One connection: a socket behind a read buffer, and the commands queued
/// for its next write.
struct Conn {
    sock: BufReader<TcpStream>,
    out: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr, buffer: usize) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
        Ok(Conn { sock: BufReader::with_capacity(buffer, stream), out: Vec::new() })
    }

    fn queue(&mut self, command: &str) {
        self.out.extend_from_slice(command.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn queue_put(&mut self, pri: u32, body: &[u8]) {
        self.queue(&format!("put {pri} 0 120 {}", body.len()));
        self.out.extend_from_slice(body);
        self.out.extend_from_slice(b"\r\n");
    }

    fn flush(&mut self) -> Result<(), String> {
        self.sock.get_mut().write_all(&self.out).map_err(|e| format!("write: {e}"))?;
        self.out.clear();
        Ok(())
    }

    /// The next reply line, without its CRLF.
    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.sock.read_line(&mut line) {
            Ok(0) => return Err("server closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
        match line.strip_suffix("\r\n") {
            Some(text) => Ok(text.to_string()),
            None => Err(format!("reply without CRLF: {line:?}")),
        }
    }

    fn expect(&mut self, want: &str) -> Result<(), String> {
        let got = self.line()?;
        if got == want { Ok(()) } else { Err(format!("expected {want:?}, got {got:?}")) }
    }

    fn inserted(&mut self) -> Result<u64, String> {
        let got = self.line()?;
        got.strip_prefix("INSERTED ").and_then(|id| id.parse().ok()).ok_or(format!("expected INSERTED, got {got:?}"))
    }

    /// A `RESERVED <id> <size>` reply whose body must be `body`; its id.
    fn reserved(&mut self, body: &[u8]) -> Result<u64, String> {
        let got = self.line()?;
        let parsed = got.strip_prefix("RESERVED ").and_then(|rest| {
            let (id, size) = rest.split_once(' ')?;
            Some((id.parse::<u64>().ok()?, size.parse::<usize>().ok()?))
        });
        let Some((id, size)) = parsed else { return Err(format!("expected RESERVED, got {got:?}")) };
        let mut data = vec![0; size + 2];
        self.sock.read_exact(&mut data).map_err(|e| format!("read body of job {id}: {e}"))?;
        if &data[size..] != b"\r\n" || &data[..size] != body {
            return Err(format!("job {id}: body of {size} bytes differs from the {} bytes put", body.len()));
        }
        Ok(id)
    }

    /// One numeric field of `stats`.
    fn stat(&mut self, key: &str) -> Result<u64, String> {
        self.queue("stats");
        self.flush()?;
        let head = self.line()?;
        let size: usize =
            head.strip_prefix("OK ").and_then(|s| s.parse().ok()).ok_or(format!("expected OK, got {head:?}"))?;
        let mut yaml = vec![0; size + 2];
        self.sock.read_exact(&mut yaml).map_err(|e| format!("read stats: {e}"))?;
        let text = String::from_utf8_lossy(&yaml[..size]);
        let prefix = format!("{key}: ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
            .ok_or(format!("stats has no numeric {key}"))
    }

    /// Polls `stats` until `current-waiting` is `want`.
    fn await_waiting(&mut self, want: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let waiting = self.stat("current-waiting")?;
            if waiting == want as u64 {
                return Ok(());
            }
            if waiting > want as u64 || Instant::now() > deadline {
                return Err(format!("current-waiting is {waiting}, expected {want}"));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

fn per_sec(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The q-quantile of `samples` (sorted here), in milliseconds.
fn quantile_ms(samples: &mut [Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3
}

/// One worker watching `n` tubes: pipelined puts spread over them, then
/// pipelined reserves (checked against (priority, id) order), then wakes.
fn watch_all(env: &Env, n: usize, body: &[u8]) -> Result<Vec<Metric>, String> {
    let jobs = env.opts.tubes_jobs;
    let server = env.start();
    let mut worker = Conn::open(server.addr, 1 << 16)?;
    for start in (0..n).step_by(1000) {
        let end = (start + 1000).min(n);
        (start..end).for_each(|i| worker.queue(&format!("watch t{i}")));
        worker.flush()?;
        for i in start..end {
            worker.expect(&format!("WATCHING {}", i + 2))?;
        }
    }
    worker.queue("ignore default");
    worker.flush()?;
    worker.expect(&format!("WATCHING {n}"))?;

    // Job j goes to tube t(j mod n), with priority j mod 3.
    let mut producer = Conn::open(server.addr, 1 << 16)?;
    let mut put = Vec::with_capacity(jobs);
    let t0 = Instant::now();
    for start in (0..jobs).step_by(IN_FLIGHT) {
        let end = (start + IN_FLIGHT).min(jobs);
        for j in start..end {
            producer.queue(&format!("use t{}", j % n));
            producer.queue_put((j % 3) as u32, body);
        }
        producer.flush()?;
        for j in start..end {
            producer.expect(&format!("USING t{}", j % n))?;
            let id = producer.inserted()?;
            if put.last().is_some_and(|&(_, last)| id <= last) {
                return Err(format!("INSERTED {id} after a higher id"));
            }
            put.push(((j % 3) as u32, id));
        }
    }
    let put_rate = per_sec(jobs, t0.elapsed());

    // Every job is ready: reserves must come in (priority, id) order. Each
    // write carries the previous batch's deletes and the next batch's reserves.
    put.sort_unstable();
    let t0 = Instant::now();
    let mut previous: Vec<u64> = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + IN_FLIGHT).min(jobs);
        previous.iter().for_each(|id| worker.queue(&format!("delete {id}")));
        (start..end).for_each(|_| worker.queue("reserve"));
        worker.flush()?;
        for _ in previous.drain(..) {
            worker.expect("DELETED")?;
        }
        for &(pri, want) in &put[start..end] {
            let id = worker.reserved(body)?;
            if id != want {
                return Err(format!("reserve gave job {id}; the best ready job was {want} (priority {pri})"));
            }
            previous.push(id);
        }
        if start == jobs {
            break;
        }
        start = end;
    }
    let reserve_rate = per_sec(jobs, t0.elapsed());

    // Every tube is empty: the worker blocks, and a put into one tube wakes it.
    // The worker sends `delete` and `reserve` in one write and the producer
    // puts only once DELETED is back, so the reserve is waiting by then.
    let wakes = env.opts.tubes_wakes;
    let tube = format!("t{}", n / 2);
    producer.queue(&format!("use {tube}"));
    producer.flush()?;
    producer.expect(&format!("USING {tube}"))?;
    worker.queue("reserve");
    worker.flush()?;
    producer.await_waiting(1)?;
    let mut latencies = Vec::with_capacity(wakes);
    for _ in 0..wakes {
        let sent = Instant::now();
        producer.queue_put(0, body);
        producer.flush()?;
        let id = worker.reserved(body)?;
        latencies.push(sent.elapsed());
        let inserted = producer.inserted()?;
        if inserted != id {
            return Err(format!("put {inserted} into {tube} but the waiting worker got job {id}"));
        }
        worker.queue(&format!("delete {id}"));
        worker.queue("reserve");
        worker.flush()?;
        worker.expect("DELETED")?;
    }
    Ok(vec![
        Metric::new(&format!("use+put jobs/s ({IN_FLIGHT} in flight)"), put_rate, Unit::PerSec),
        Metric::new(&format!("reserve+delete jobs/s ({IN_FLIGHT} in flight)"), reserve_rate, Unit::PerSec),
        Metric::new("blocked reserve woken by a put, p50", quantile_ms(&mut latencies, 0.5), Unit::Millis),
        Metric::new("blocked reserve woken by a put, p99", quantile_ms(&mut latencies, 0.99), Unit::Millis),
    ])
}

/// `n` connections blocked in `reserve` (on `default`, or each on its own
/// tube), and one job at a time put for them, round after round.
fn waiters(env: &Env, n: usize, own_tubes: bool, body: &[u8]) -> Result<Vec<Metric>, String> {
    let server = env.start();
    let mut control = Conn::open(server.addr, 1 << 16)?;
    let mut waiting: Vec<Conn> = Vec::with_capacity(n);
    while waiting.len() < n {
        for _ in 0..CONNECT_BATCH.min(n - waiting.len()) {
            let mut conn = Conn::open(server.addr, 256).map_err(|e| format!("waiter {}: {e}", waiting.len()))?;
            if own_tubes {
                conn.queue(&format!("watch w{}", waiting.len()));
                conn.queue("ignore default");
            }
            conn.queue("reserve");
            conn.flush()?;
            waiting.push(conn);
        }
        // Let the server accept this batch before the next (its backlog is finite).
        control.await_waiting(waiting.len())?;
    }
    if own_tubes {
        for conn in &mut waiting {
            conn.expect("WATCHING 2")?;
            conn.expect("WATCHING 1")?;
        }
    }

    let mut producer = Conn::open(server.addr, 1 << 16)?;
    let total = if own_tubes { env.opts.tubes_jobs.max(1) } else { env.opts.tubes_jobs.div_ceil(n).max(1) * n };
    let mut round_trips = Vec::with_capacity(total);
    let mut putting = Duration::ZERO;
    let mut inserted = Vec::with_capacity(n);
    let mut round = 0;
    while round_trips.len() < total {
        // This round serves waiters 0..m.
        let m = n.min(total - round_trips.len());
        inserted.clear();
        for i in 0..m {
            let sent = Instant::now();
            if own_tubes {
                producer.queue(&format!("use w{i}"));
            }
            producer.queue_put(0, body);
            producer.flush()?;
            if own_tubes {
                producer.expect(&format!("USING w{i}"))?;
            }
            inserted.push(producer.inserted()?);
            let took = sent.elapsed();
            round_trips.push(took);
            putting += took;
        }
        // Each of waiters 0..m got one of this round's jobs (with a tube each,
        // the one put into its tube). On 1 tube, m is n.
        let mut got = Vec::with_capacity(n);
        for (i, conn) in waiting[..m].iter_mut().enumerate() {
            let id = conn.reserved(body).map_err(|e| format!("waiter {i}: {e}"))?;
            if own_tubes && id != inserted[i] {
                return Err(format!("waiter {i} on tube w{i} got job {id}; job {} was put there", inserted[i]));
            }
            got.push(id);
        }
        let mut handed = got.clone();
        handed.sort_unstable();
        inserted.sort_unstable();
        if handed != inserted {
            return Err(format!("round {round}: the jobs the waiters got are not the {m} jobs put"));
        }
        round += 1;
        if round_trips.len() < total {
            for (conn, id) in waiting[..m].iter_mut().zip(&got) {
                conn.queue(&format!("delete {id}"));
                conn.queue("reserve");
                conn.flush()?;
            }
            for conn in &mut waiting[..m] {
                conn.expect("DELETED")?;
            }
            control.await_waiting(n)?;
        }
    }
    Ok(vec![
        Metric::new(
            "put round trips/s (1 in flight, each hands out)",
            per_sec(round_trips.len(), putting),
            Unit::PerSec,
        ),
        Metric::new("put round trip p50", quantile_ms(&mut round_trips, 0.5), Unit::Millis),
        Metric::new("put round trip p99", quantile_ms(&mut round_trips, 0.99), Unit::Millis),
    ])
}

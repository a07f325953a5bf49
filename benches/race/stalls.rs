//! The `stalls` scenario (opt-in): how long one client waits for a `put`
//! while the binlog is busy with its files.
//!
//! With `-b` at the default policy, a job is put and buried first, so it
//! pins the oldest file and compaction keeps moving it to the head. One
//! connection then loads the server as hard as it goes: 1,000 pipelined
//! `put`s, then the 1,000 `delete`s of their jobs, over and over, so files
//! fill, are compacted and retired all the time. Beside it a probe puts one
//! small job at a time, about every half millisecond, and times each round
//! trip (then deletes the job, untimed). Whatever the server does between
//! turns with its files (making them durable, reading one back, freeing
//! one) the probe waits for: its tail is the stall.
//!
//! Reported: the probe's round trip at p50, p99, p99.9 and its longest,
//! the load's rate, and `binlog-records-migrated`, which shows that
//! compaction ran.

use std::thread;
use std::time::{Duration, Instant};

use crate::blocking::Conn;
use crate::client::{self, Reply};
use crate::scenarios::{Env, Metric, Unit, Variant};
use crate::server::{self, Server};

/// Jobs a load round trip puts (then deletes).
const BATCH: usize = 1000;

/// How long a read waits before the run fails.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The probe's pause between puts.
const PROBE_GAP: Duration = Duration::from_micros(500);

pub fn variants(opts: &crate::Opts) -> Vec<Variant> {
    vec![Variant {
        scenario: "stalls",
        label: format!("-b, a buried job pinning the head, 1 x {BATCH} put+delete load + 1 probe"),
        flags: vec![],
        binlog: true,
        fixture: None,
        run: Box::new({
            let body = client::pattern(opts.body);
            move |env| run(env, &body)
        }),
    }]
}

fn run(env: &Env, body: &[u8]) -> Result<Vec<Metric>, String> {
    let server = env.start();
    let mut pin = Conn::open(&server, READ_TIMEOUT)?;
    pin.send(b"put 0 0 60 3\r\npin\r\nreserve\r\n")?;
    pin.reply(|r| matches!(r, Reply::Inserted(_)).then_some(()).ok_or(format!("pin put: {r:?}")))?;
    let pinned = pin.reply(|r| match r {
        Reply::Reserved { id, .. } => Ok(id),
        r => Err(format!("pin reserve: {r:?}")),
    })?;
    pin.send(format!("bury {pinned} 0\r\n").as_bytes())?;
    pin.reply(|r| matches!(r, Reply::Other(b"BURIED")).then_some(()).ok_or(format!("pin bury: {r:?}")))?;

    let warmup = Duration::from_secs_f64(env.opts.warmup);
    let until = Instant::now() + warmup + Duration::from_secs_f64(env.opts.duration);
    let (loaded, probes) = thread::scope(|scope| {
        let load = scope.spawn(|| load(&server, body, until));
        let probes = probe(&server, Instant::now() + warmup, until);
        (load.join().unwrap_or_else(|_| Err("the load thread panicked".into())), probes)
    });
    let (jobs, secs) = loaded?;
    let mut probes = probes?;
    if probes.is_empty() {
        return Err("no probe put was timed".into());
    }
    probes.sort_unstable();
    let at = |q: f64| probes[((probes.len() as f64 * q) as usize).min(probes.len() - 1)].as_secs_f64() * 1e3;
    let stats = server::stats(server.addr).map_err(|e| e.to_string())?;
    let migrated = server::stat(&stats, "binlog-records-migrated").unwrap_or(0);
    server.kill();
    Ok(vec![
        Metric::new("probe put round trip p50", at(0.5), Unit::Millis),
        Metric::new("probe put round trip p99", at(0.99), Unit::Millis),
        Metric::new("probe put round trip p99.9", at(0.999), Unit::Millis),
        Metric::new("probe put round trip, longest", at(1.0), Unit::Millis),
        Metric::new("load (put then delete, 1 x 1000) jobs/s", jobs as f64 / secs, Unit::PerSec),
        Metric::new("binlog-records-migrated", migrated as f64, Unit::Count),
    ])
}

/// Puts `BATCH` jobs, deletes them, and again, until `until`; returns the
/// jobs put and the seconds taken.
fn load(server: &Server, body: &[u8], until: Instant) -> Result<(usize, f64), String> {
    let mut conn = Conn::open(server, READ_TIMEOUT)?;
    let mut put = format!("put 0 0 60 {}\r\n", body.len()).into_bytes();
    put.extend_from_slice(body);
    put.extend_from_slice(b"\r\n");
    let puts = put.repeat(BATCH);
    let (started, mut jobs) = (Instant::now(), 0);
    while Instant::now() < until {
        conn.send(&puts)?;
        let mut deletes = Vec::with_capacity(BATCH * 16);
        for _ in 0..BATCH {
            let id = conn.inserted()?;
            deletes.extend_from_slice(format!("delete {id}\r\n").as_bytes());
        }
        conn.send(&deletes)?;
        for _ in 0..BATCH {
            conn.reply(|r| matches!(r, Reply::Deleted).then_some(()).ok_or(format!("delete: {r:?}")))?;
        }
        jobs += BATCH;
    }
    Ok((jobs, started.elapsed().as_secs_f64()))
}

/// Times one put at a time from `from` until `until`.
fn probe(server: &Server, from: Instant, until: Instant) -> Result<Vec<Duration>, String> {
    let mut conn = Conn::open(server, READ_TIMEOUT)?;
    conn.stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    while Instant::now() < until {
        let sent = Instant::now();
        conn.send(b"put 0 0 60 5\r\nprobe\r\n")?;
        let id = conn.inserted()?;
        if sent >= from {
            times.push(sent.elapsed());
        }
        conn.send(format!("delete {id}\r\n").as_bytes())?;
        conn.reply(|r| matches!(r, Reply::Deleted).then_some(()).ok_or(format!("probe delete: {r:?}")))?;
        thread::sleep(PROBE_GAP);
    }
    Ok(times)
}

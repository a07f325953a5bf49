//! The `metrics` scenario (issue 14): what `--metrics` costs.
//!
//! - `scrape, N tubes`: N tubes, each holding a ready and a delayed job;
//!   then 50 scrapes of `GET /metrics`, one at a time: the time from the
//!   request to the last byte (p50, max) and the size. beanstalkd has no
//!   endpoint: its column is what an exporter polls for the same figures,
//!   `stats`, `list-tubes` and a `stats-tube` per tube (pipelined), timed
//!   the same way (3 times with 10,000 tubes: each takes seconds).
//!   Also each server's resident memory with the N tubes (and sprout's
//!   scrape buffers).
//! - `N tubes x M ready, memory`: the same with M ready jobs a tube (1M in
//!   all by default), for the cost of knowing each tube's oldest ready job.
//! - `load with 10,000 tubes`: 50 connections putting, reserving and
//!   deleting in `default` while 10,000 other tubes exist; sprout without
//!   `--metrics`, with it, and with it and a scraper hitting `/metrics` ten
//!   times a second. beanstalkd runs the same load each time (with no
//!   metrics): its three rows show how much the machine alone moves.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::client::{self, Role};
use crate::scenarios::{Env, Metric, Unit, Variant, limit, measure};
use crate::server::{Kind, Server, free_port};

/// The load's connections, each with one put+reserve, delete in flight.
const LOAD_CONNS: usize = 50;

/// Scrapes a second during the load.
const SCRAPES_PER_SEC: f64 = 10.0;

pub fn variants(opts: &crate::Opts, body: &Arc<[u8]>, out: &mut Vec<Variant>) {
    for (n, cap) in [(10, None), (10_000, None), (10_000, Some(10_000))] {
        let label = match cap {
            None => format!("scrape, {n} tubes"),
            Some(cap) => format!("scrape, {n} tubes, --metrics-tubes {cap}"),
        };
        out.push(Variant {
            scenario: "metrics",
            label,
            flags: vec![],
            binlog: false,
            fixture: None,
            run: Box::new(move |env| scrapes(env, n, 1, cap)),
        });
    }
    let per_tube = (opts.preload * 5).div_ceil(10_000).max(1) as usize;
    out.push(Variant {
        scenario: "metrics",
        label: format!("scrape, 10000 tubes x {per_tube} ready"),
        flags: vec![],
        binlog: false,
        fixture: None,
        run: Box::new(move |env| scrapes(env, 10_000, per_tube, None)),
    });
    for (metrics, scraper) in [(false, false), (true, false), (true, true)] {
        let body = body.clone();
        let label = match (metrics, scraper) {
            (false, _) => "load with 10000 tubes, sprout without --metrics",
            (true, false) => "load with 10000 tubes, --metrics, no scraper",
            (true, true) => "load with 10000 tubes, --metrics, scraper 10/s",
        };
        out.push(Variant {
            scenario: "metrics",
            label: format!("{label}, {LOAD_CONNS}x1"),
            flags: vec![],
            binlog: false,
            fixture: None,
            run: Box::new(move |env| load(env, metrics, scraper, &body)),
        });
    }
}

/// Starts the server: sprout with `--metrics` on a port of its own (and
/// the cap) when `metrics`, beanstalkd as it is.
fn start(env: &Env, metrics: bool, cap: Option<usize>) -> (Server, Option<SocketAddr>) {
    let mut flags = env.flags.clone();
    let mut http = None;
    if metrics && env.binary.kind == Kind::Sprout {
        let port = free_port();
        flags.extend(["--metrics".to_string(), format!("127.0.0.1:{port}")]);
        if let Some(cap) = cap {
            flags.extend(["--metrics-tubes".to_string(), cap.to_string()]);
        }
        http = Some(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    (Server::start(env.binary, &flags, &env.log), http)
}

/// `n` tubes t0.., each with `ready` ready jobs and one delayed an hour.
fn make_tubes(addr: SocketAddr, n: usize, ready: usize) -> Result<(), String> {
    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let writer = {
        let mut stream = stream;
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut batch = Vec::new();
            for i in 0..n {
                batch.extend(format!("use t{i}\r\nput 0 3600 60 1\r\nd\r\n").bytes());
                for _ in 0..ready {
                    batch.extend(b"put 0 0 60 1\r\nr\r\n");
                }
                if batch.len() > 64 * 1024 {
                    stream.write_all(&batch)?;
                    batch.clear();
                }
            }
            stream.write_all(&batch)
        })
    };
    let mut line = String::new();
    for _ in 0..n * (2 + ready) {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if !(line.starts_with("USING") || line.starts_with("INSERTED")) {
            return Err(format!("making tubes: {line:?}"));
        }
    }
    writer.join().map_err(|_| "writer panicked")?.map_err(|e| e.to_string())
}

/// One `GET /metrics`: the time to the last byte, and the body's size.
fn scrape(http: SocketAddr) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let mut s = TcpStream::connect(http).map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    s.read_to_end(&mut response).map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no response head")?;
    if !response.starts_with(b"HTTP/1.1 200 ") {
        return Err(format!("scrape: {}", String::from_utf8_lossy(&response[..head_end])));
    }
    Ok((took, response.len() - head_end - 4))
}

/// What an exporter asks beanstalkd for the same figures: stats,
/// list-tubes, and stats-tube for each tube.
fn poll_like_an_exporter(addr: SocketAddr) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut ask = |cmd: &str| -> Result<Vec<u8>, String> {
        w.write_all(cmd.as_bytes()).map_err(|e| e.to_string())?;
        let mut head = String::new();
        r.read_line(&mut head).map_err(|e| e.to_string())?;
        let len: usize =
            head.strip_prefix("OK ").and_then(|n| n.trim().parse().ok()).ok_or(format!("{cmd}: {head}"))?;
        let mut body = vec![0; len + 2];
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
        Ok(body)
    };
    let mut bytes = ask("stats\r\n")?.len();
    let tubes = ask("list-tubes\r\n")?;
    bytes += tubes.len();
    let names: Vec<String> =
        String::from_utf8_lossy(&tubes).lines().filter_map(|l| l.strip_prefix("- ")).map(str::to_string).collect();
    // Pipelined, as a good exporter would.
    let mut batch = String::new();
    for name in &names {
        batch.push_str(&format!("stats-tube {name}\r\n"));
    }
    w.write_all(batch.as_bytes()).map_err(|e| e.to_string())?;
    for _ in &names {
        let mut head = String::new();
        r.read_line(&mut head).map_err(|e| e.to_string())?;
        let len: usize =
            head.strip_prefix("OK ").and_then(|n| n.trim().parse().ok()).ok_or(format!("stats-tube: {head}"))?;
        let mut body = vec![0; len + 2];
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
        bytes += body.len();
    }
    Ok((started.elapsed(), bytes))
}

fn scrapes(env: &Env, n: usize, ready: usize, cap: Option<usize>) -> Result<Vec<Metric>, String> {
    let (server, http) = start(env, true, cap);
    make_tubes(server.addr, n, ready)?;
    let rss = server.status_bytes("VmRSS");
    let mut times = Vec::new();
    let mut size = 0;
    // beanstalkd answers 10,000 stats-tubes in seconds: fewer polls there.
    let polls = if http.is_none() && n > 1000 { 3 } else { 50 };
    for _ in 0..polls {
        let (took, bytes) = match http {
            Some(http) => scrape(http)?,
            None => poll_like_an_exporter(server.addr)?,
        };
        times.push(took.as_nanos() as i64);
        size = bytes;
    }
    times.sort_unstable();
    let ms = |q| client::quantile(&times, q).map_or(f64::NAN, |ns| ns as f64 / 1e6);
    Ok(vec![
        Metric::new("scrape (beanstalkd: stats + list-tubes + stats-tube each) p50", ms(0.5), Unit::Millis),
        Metric::new("scrape max", ms(1.0), Unit::Millis),
        Metric::new("scrape size", size as f64, Unit::Bytes),
        Metric::new("RSS with the tubes", rss as f64, Unit::Bytes),
        Metric::new("RSS after the scrapes", server.status_bytes("VmRSS") as f64, Unit::Bytes),
    ])
}

fn load(env: &Env, metrics: bool, scraper: bool, body: &[u8]) -> Result<Vec<Metric>, String> {
    let (server, http) = start(env, metrics, None);
    make_tubes(server.addr, 10_000, 1)?;
    let rss = server.status_bytes("VmRSS");
    let stop = Arc::new(AtomicBool::new(false));
    let scraping = (scraper && http.is_some()).then(|| {
        let (stop, http) = (stop.clone(), http.unwrap());
        std::thread::spawn(move || -> Result<(u64, Vec<i64>), String> {
            let period = Duration::from_secs_f64(1.0 / SCRAPES_PER_SEC);
            let mut next = Instant::now();
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                times.push(scrape(http)?.0.as_nanos() as i64);
                next += period;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            Ok((times.len() as u64, times))
        })
    });
    let roles = (0..LOAD_CONNS).map(|_| Role::cycle(body, 1)).collect();
    let m = measure(&server, roles, limit(env.opts), env.opts, 0.0);
    stop.store(true, Ordering::Relaxed);
    let scraped = scraping.map(|t| t.join().map_err(|_| "scraper panicked".to_string())?).transpose()?;
    let m = m?;
    let mut out =
        vec![m.rate("put+reserve+delete jobs/s"), Metric::new("RSS with 10000 tubes", rss as f64, Unit::Bytes)];
    if let Some((count, mut times)) = scraped {
        times.sort_unstable();
        let p50 = client::quantile(&times, 0.5).map_or(f64::NAN, |ns| ns as f64 / 1e6);
        out.push(Metric::new("scrapes during the run", count as f64, Unit::Count));
        out.push(Metric::new("scrape under load p50", p50, Unit::Millis));
    }
    Ok(out)
}

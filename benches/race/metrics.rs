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
//! - `load with 10000 tubes`: a connection putting, reserving and deleting
//!   in `default` (100 in flight) while 10,000 other tubes exist, in windows
//!   (`--duration` each, fresh connections) on one server: with
//!   `--metrics`, alternately without and with a scraper hitting
//!   `/metrics` ten times a second (the pairs share the server and nearly
//!   the machine's state); and sprout without `--metrics`. beanstalkd runs
//!   the same windows with no metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::client::{self, Role};
use crate::scenarios::{Env, Metric, Unit, Variant, limit, measure};
use crate::server::{Server, free_port};

/// The load: one connection with 100 put+reserve, delete cycles in flight,
/// which keeps the server busy (50 connections with one each left it
/// waiting for the client most of the time here, where a scraper's wake-ups
/// alone moved the rate by half or double).
const LOAD_CONNS: usize = 1;
const LOAD_DEPTH: usize = 100;

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
    for (metrics, cap) in [(false, None), (true, None), (true, Some(10_000))] {
        let body = body.clone();
        let label = match (metrics, cap) {
            (false, _) => "load with 10000 tubes, sprout without --metrics".to_string(),
            (true, None) => "load with 10000 tubes, --metrics, windows without and with a scraper at 10/s".to_string(),
            (true, Some(cap)) => {
                format!("load with 10000 tubes, --metrics-tubes {cap}, windows without and with a scraper at 10/s")
            }
        };
        out.push(Variant {
            scenario: "metrics",
            label: format!("{label}, {LOAD_CONNS}x{LOAD_DEPTH}"),
            flags: vec![],
            binlog: false,
            fixture: None,
            run: Box::new(move |env| load(env, metrics, cap, &body)),
        });
    }
}

/// Starts the server: sprout with `--metrics` on a port of its own (and
/// the cap) when `metrics`, beanstalkd as it is.
fn start(env: &Env, metrics: bool, cap: Option<usize>) -> (Server, Option<SocketAddr>) {
    let mut flags = env.flags.clone();
    let mut http = None;
    if metrics && env.binary.kind.is_sprout() {
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

/// Windows of load, each on fresh connections, alternately without and
/// with a scraper (with `--metrics`), on one server: the pairs see the same
/// server and nearly the same machine, which moves a lot here.
const WINDOWS: usize = 6;

fn load(env: &Env, metrics: bool, cap: Option<usize>, body: &[u8]) -> Result<Vec<Metric>, String> {
    let (server, http) = start(env, metrics, cap);
    make_tubes(server.addr, 10_000, 1)?;
    let rss = server.status_bytes("VmRSS");
    // Each window's rate, the server's CPU per job in ns (both threads: the
    // loop and the encoder), and the scrapes' times.
    let window = |scraper: bool| -> Result<(f64, f64, Vec<i64>), String> {
        let stop = Arc::new(AtomicBool::new(false));
        let scraping = (scraper && http.is_some()).then(|| {
            let (stop, http) = (stop.clone(), http.unwrap());
            std::thread::spawn(move || -> Result<Vec<i64>, String> {
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
                Ok(times)
            })
        });
        let roles = (0..LOAD_CONNS).map(|_| Role::cycle(body, LOAD_DEPTH)).collect();
        let m = measure(&server, roles, limit(env.opts), env.opts, 0.0);
        stop.store(true, Ordering::Relaxed);
        let times = scraping.map(|t| t.join().map_err(|_| "scraper panicked".to_string())?).transpose()?;
        let m = m?;
        let rate = m.outcome.rate();
        Ok((rate, 1e9 * m.cpu.0 / rate, times.unwrap_or_default()))
    };
    let (mut without, mut with, mut scrape_times) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_without, mut cpu_with) = (Vec::new(), Vec::new());
    for _ in 0..WINDOWS {
        let (rate, cpu, _) = window(false)?;
        without.push(rate);
        cpu_without.push(cpu);
        if http.is_some() {
            let (rate, cpu, times) = window(true)?;
            with.push(rate);
            cpu_with.push(cpu);
            scrape_times.extend(times);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (without, with) = (median(&mut without), median(&mut with));
    let (cpu_without, cpu_with) = (median(&mut cpu_without), median(&mut cpu_with));
    scrape_times.sort_unstable();
    let p50 = client::quantile(&scrape_times, 0.5).map_or(f64::NAN, |ns| ns as f64 / 1e6);
    Ok(vec![
        Metric::new("jobs/s, no scraper (median of the windows)", without, Unit::PerSec),
        Metric::new("jobs/s, scraper 10/s (median of the windows)", with, Unit::PerSec),
        Metric::new("scraper / no scraper, percent", 100.0 * with / without, Unit::Count),
        Metric::new("server CPU ns per job, no scraper (median)", cpu_without, Unit::Count),
        Metric::new("server CPU ns per job, scraper 10/s (median)", cpu_with, Unit::Count),
        Metric::new("scrapes", scrape_times.len() as f64, Unit::Count),
        Metric::new("scrape under load p50", p50, Unit::Millis),
        Metric::new("RSS with 10000 tubes", rss as f64, Unit::Bytes),
    ])
}

//! The scenarios: what load each runs and what it reports.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::client::{self, BodyCheck, Limit, Plan, Role, Stamp, StampTime};
use crate::server::{self, Binary, Server};
use crate::{Opts, floor};

#[derive(Clone, Copy, Debug)]
pub enum Unit {
    PerSec,
    Millis,
    Secs,
    Bytes,
    MibPerSec,
    Count,
}

impl Unit {
    pub fn format(self, v: f64) -> String {
        if !v.is_finite() {
            return "-".into();
        }
        match self {
            Unit::PerSec => format!("{}/s", group(v.round() as u64)),
            Unit::Millis => format!("{v:.2} ms"),
            Unit::Secs => format!("{v:.3} s"),
            Unit::Bytes if v >= 10.0 * 1024.0 * 1024.0 => format!("{:.1} MiB", v / 1024.0 / 1024.0),
            Unit::Bytes if v >= 10.0 * 1024.0 => format!("{:.1} KiB", v / 1024.0),
            Unit::Bytes => format!("{v:.0} B"),
            Unit::MibPerSec => format!("{v:.0} MiB/s"),
            Unit::Count => group(v.round() as u64),
        }
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One number a run produced.
#[derive(Clone, Debug)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: Unit,
    /// Server and client CPU use over the window, as fractions of one core.
    pub cpu: Option<(f64, f64)>,
}

impl Metric {
    pub fn new(name: &str, value: f64, unit: Unit) -> Metric {
        Metric { name: name.into(), value, unit, cpu: None }
    }
}

/// What a variant's run gets: the server to start and its flags.
pub struct Env<'a> {
    pub binary: &'a Binary,
    /// Scenario flags, `-b DIR` if any, then --server-flags.
    pub flags: Vec<String>,
    pub log: PathBuf,
    pub opts: &'a Opts,
    /// This round's fixture, if the variant makes one.
    pub fixture: Option<&'a Path>,
}

impl Env<'_> {
    pub fn start(&self) -> Server {
        Server::start(self.binary, &self.flags, &self.log)
    }

    pub fn binlog_dir(&self) -> Option<&Path> {
        let i = self.flags.iter().position(|f| f == "-b")?;
        self.flags.get(i + 1).map(Path::new)
    }
}

type RunFn = Box<dyn Fn(&Env) -> Result<Vec<Metric>, String>>;

/// What a variant's fixture step gets: an empty directory to fill, once a
/// round, for both servers' runs to start from (they get it as
/// [`Env::fixture`]). The fixture is beanstalkd's doing, whatever `--only`
/// says, and its metrics go in beanstalkd's column.
pub struct FixtureEnv<'a> {
    pub beanstalkd: &'a Binary,
    pub dir: PathBuf,
    /// The variant's flags, `-b dir`, then --server-flags.
    pub flags: Vec<String>,
    pub log: PathBuf,
    pub opts: &'a Opts,
}

type FixtureFn = Box<dyn Fn(&FixtureEnv) -> Result<Vec<Metric>, String>>;

pub struct Variant {
    pub scenario: &'static str,
    pub label: String,
    /// Flags before `-b` and --server-flags.
    pub flags: Vec<String>,
    /// Give each server a fresh `-b` directory.
    pub binlog: bool,
    /// Made once a round, before either server's run.
    pub fixture: Option<FixtureFn>,
    pub run: RunFn,
}

impl Variant {
    /// Whether the do-nothing server (`do_nothing.rs`) is raced in this
    /// variant too: the loads it answers, puts (with and without its
    /// least-possible log, `do_nothing_log.rs`) and reserve+delete without
    /// a binlog.
    pub fn do_nothing_answers(&self) -> bool {
        matches!(self.scenario, "put" | "put-binlog" | "reserve-delete")
            || (self.scenario == "instructions" && !self.binlog)
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// The timed (or counted, with --count) limit for throughput runs.
pub fn limit(opts: &Opts) -> Limit {
    match opts.count {
        Some(total) => Limit::Count { total, timeout: Duration::from_secs(600) },
        None => Limit::Time { warmup: secs(opts.warmup), measure: secs(opts.duration), grace: Duration::ZERO },
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Runs `roles` against `server` and returns the outcome with the server's and
/// client's CPU use (fractions of a core) over the measured window.
pub fn measure(server: &Server, roles: Vec<Role>, limit: Limit, opts: &Opts, rate: f64) -> Result<Measured, String> {
    let plan = Plan { addr: server.addr, roles, threads: opts.threads, limit: limit.clone(), rate };
    let cpu = Cell::new((f64::NAN, f64::NAN));
    let sample = |t0: Instant| match limit {
        Limit::Time { warmup, measure, .. } => {
            sleep_until(t0 + warmup);
            let a = server.cpu_seconds();
            sleep_until(t0 + warmup + measure);
            cpu.set((a, server.cpu_seconds()));
        }
        Limit::Count { .. } => cpu.set((server.cpu_seconds(), f64::NAN)),
    };
    let outcome = client::run(&plan, Some(&sample))?;
    let (a, mut b) = cpu.get();
    if b.is_nan() {
        b = server.cpu_seconds();
    }
    let secs = outcome.secs.max(1e-9);
    Ok(Measured { cpu: ((b - a) / secs, outcome.client_cpu / secs), outcome })
}

pub struct Measured {
    pub outcome: client::Outcome,
    /// Server and client CPU use over the window, as fractions of one core.
    pub cpu: (f64, f64),
}

impl Measured {
    pub fn rate(&self, name: &str) -> Metric {
        Metric { cpu: Some(self.cpu), ..Metric::new(name, self.outcome.rate(), Unit::PerSec) }
    }

    fn quantile_ms(&self, name: &str, q: f64) -> Metric {
        let v = self.outcome.quantile(q).map_or(f64::NAN, |ns| ns as f64 / 1e6);
        Metric::new(name, v, Unit::Millis)
    }

    /// A delayed job's lateness taken when the worker read the reply, not
    /// when it arrived: adds the worker's own wait for a CPU.
    fn read_lateness_ms(&self, name: &str, q: f64) -> Metric {
        let v = client::quantile(&self.outcome.samples_read, q).map_or(f64::NAN, |ns| ns as f64 / 1e6);
        Metric::new(name, v, Unit::Millis)
    }

    /// How late the client itself sent paced puts: latencies are measured
    /// from the due time, so this is their floor, whatever the server does.
    fn send_lateness_ms(&self, name: &str, q: f64) -> Metric {
        let v = self.outcome.send_lateness_quantile(q).map_or(f64::NAN, |ns| ns as f64 / 1e6);
        Metric::new(name, v, Unit::Millis)
    }
}

/// With `RACE_TRACE_DIR` set, writes the run's job timelines there as
/// `<server>-<scenario>-r<round>.csv` (nanoseconds since the client's epoch;
/// the header gives that epoch on `CLOCK_MONOTONIC`, the clock `perf record
/// -k CLOCK_MONOTONIC` stamps events with).
fn write_timelines(env: &Env, server: &Server, outcome: &client::Outcome) {
    let Some(dir) = std::env::var_os("RACE_TRACE_DIR") else { return };
    let name = env.log.file_stem().map_or("run".into(), |s| s.to_string_lossy().into_owned());
    let path = Path::new(&dir).join(format!("{name}.csv"));
    let mut text = format!(
        "# epoch_monotonic_ns {} server_pid {} client_tids {:?}\nid,due,sent,inserted,asked,arrived,reserved\n",
        client::epoch_monotonic_ns(),
        server.pid(),
        outcome.thread_ids
    );
    for t in &outcome.timelines {
        let _ = writeln!(text, "{},{},{},{},{},{},{}", t.id, t.due, t.sent, t.inserted, t.asked, t.arrived, t.reserved);
    }
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("race: write {}: {e}", path.display());
    }
}

fn putters(body: &[u8], conns: usize, depth: usize) -> Vec<Role> {
    (0..conns).map(|_| Role::putter(body, depth)).collect()
}

fn shapes(opts: &Opts, default: &[(usize, usize)]) -> Vec<(usize, usize)> {
    if let (Some(c), Some(d)) = (opts.conns, opts.depth) {
        return vec![(c, d)];
    }
    if opts.conns.is_some() || opts.depth.is_some() {
        let (c, d) = default[0];
        return vec![(opts.conns.unwrap_or(c), opts.depth.unwrap_or(d))];
    }
    if opts.shapes.is_empty() { default.to_vec() } else { opts.shapes.clone() }
}

/// Loads `total` jobs of `body` through 4 connections x 100 pipelined.
/// Puts `total` jobs (ready, or delayed by `delay` seconds) over a few
/// pipelined connections, and checks that stats counts them all.
pub fn preload(server: &Server, body: &[u8], total: u64, delay: u32, opts: &Opts) -> Result<Measured, String> {
    let conns = if total >= 400 { 4 } else { 1 };
    let limit = Limit::Count { total, timeout: Duration::from_secs(900) };
    let roles = (0..conns).map(|_| Role::delayed_putter(body, delay, 100)).collect();
    let loaded = measure(server, roles, limit, opts, 0.0)?;
    let stats = server::stats(server.addr).map_err(|e| format!("stats after preload: {e}"))?;
    let held = server::stat(&stats, held_stat(delay));
    if held != Some(total) {
        return Err(format!("after loading {total} jobs, stats says {}: {held:?}", held_stat(delay)));
    }
    Ok(loaded)
}

/// The stats key counting jobs put with `delay`.
fn held_stat(delay: u32) -> &'static str {
    if delay > 0 { "current-jobs-delayed" } else { "current-jobs-ready" }
}

fn policy_flags(policy: &str) -> Result<Vec<String>, String> {
    match policy {
        "default" | "none" => Ok(vec![]),
        "F" => Ok(vec!["-F".into()]),
        p if p.starts_with('f') && p[1..].parse::<u64>().is_ok() => Ok(vec!["-f".into(), p[1..].into()]),
        p => Err(format!("unknown fsync policy {p:?}: use default, F, f0, f50, ...")),
    }
}

fn policy_label(flags: &[String]) -> String {
    if flags.is_empty() { "default".into() } else { flags.join(" ") }
}

/// A `--policies` word as the server's flags, whether it runs with `-b`,
/// and the row's label; an unknown word ends the run.
fn binlog_policy(policy: &str) -> (Vec<String>, bool, String) {
    let flags = policy_flags(policy).unwrap_or_else(|e| {
        eprintln!("race: {e}");
        std::process::exit(2);
    });
    let binlog = policy != "none";
    let label = if binlog { policy_label(&flags) } else { "no -b".to_string() };
    (flags, binlog, label)
}

fn shape_label(c: usize, d: usize) -> String {
    format!("{c}x{d}")
}

pub fn variants(opts: &Opts) -> Vec<Variant> {
    let mut out = Vec::new();
    let body = client::pattern(opts.body);
    for scenario in &opts.scenarios {
        match scenario.as_str() {
            "put" => {
                for (c, d) in shapes(opts, &[(1, 100), (1, 1000), (50, 16), (50, 1)]) {
                    let body = body.clone();
                    out.push(Variant {
                        scenario: "put",
                        label: shape_label(c, d),
                        flags: vec![],
                        binlog: false,
                        fixture: None,
                        run: Box::new(move |env| {
                            let server = env.start();
                            let m = measure(&server, putters(&body, c, d), limit(env.opts), env.opts, 0.0)?;
                            Ok(vec![m.rate("put jobs/s")])
                        }),
                    });
                }
            }
            "put-binlog" => {
                for (c, d) in shapes(opts, &[(50, 1), (1, 100)]) {
                    for policy in &opts.policies {
                        let (flags, binlog, label) = binlog_policy(policy);
                        let body = body.clone();
                        out.push(Variant {
                            scenario: "put-binlog",
                            label: format!("{label} {}", shape_label(c, d)),
                            flags: flags.clone(),
                            binlog,
                            fixture: None,
                            run: Box::new(move |env| {
                                let server = env.start();
                                let m = measure(&server, putters(&body, c, d), limit(env.opts), env.opts, 0.0)?;
                                Ok(vec![m.rate("put jobs/s")])
                            }),
                        });
                    }
                }
            }
            "instructions" => out.extend(crate::instructions::variants(opts)),
            "stalls" => out.extend(crate::stalls::variants(opts)),
            "recovery" => {
                // Ready jobs, then jobs delayed an hour: a delayed job has a
                // deadline and a timer that a ready one does not.
                for (delay, what) in [(0, ""), (3600, ", delayed 1 h")] {
                    out.push(Variant {
                        scenario: "recovery",
                        label: format!("{} x {} B{what}", opts.recovery_jobs, opts.recovery_body),
                        flags: vec![],
                        binlog: true,
                        fixture: None,
                        run: Box::new(move |env| recovery(env, delay)),
                    });
                }
            }
            "reserve-delete" => {
                for (c, d) in shapes(opts, &[(1, 100), (1, 1000), (50, 1)]) {
                    let body = body.clone();
                    out.push(Variant {
                        scenario: "reserve-delete",
                        label: format!("{} preloaded, {}", opts.preload, shape_label(c, d)),
                        flags: vec![],
                        binlog: false,
                        fixture: None,
                        run: Box::new(move |env| reserve_delete(env, &body, c, d)),
                    });
                }
            }
            "reserve-delete-binlog" => {
                for (c, d) in shapes(opts, &[(50, 1), (1, 100)]) {
                    for policy in &opts.policies {
                        let (flags, binlog, label) = binlog_policy(policy);
                        let body = body.clone();
                        out.push(Variant {
                            scenario: "reserve-delete-binlog",
                            label: format!("{label} {} preloaded, {}", opts.preload, shape_label(c, d)),
                            flags,
                            binlog,
                            fixture: None,
                            run: Box::new(move |env| reserve_delete(env, &body, c, d)),
                        });
                    }
                }
            }
            "mixed" => {
                let rates = opts.rates.iter().map(|&r| (true, r)).chain([(false, 0.0)]);
                for (paced, rate) in rates {
                    let size = opts.body;
                    let label = if paced {
                        format!("25 producers @ {rate} jobs/s total + 25 workers")
                    } else {
                        "25 producers unpaced + 25 workers".to_string()
                    };
                    out.push(Variant {
                        scenario: "mixed",
                        label,
                        flags: vec![],
                        binlog: false,
                        fixture: None,
                        run: Box::new(move |env| {
                            let server = env.start();
                            let mut roles: Vec<Role> =
                                (0..25).map(|_| Role::stamped_producer(size, 0, StampTime::Due, paced, 1)).collect();
                            let check = client::stamped_check(size);
                            roles.extend((0..25).map(|_| Role::worker(check.clone(), Stamp::Latency, false, 1, true)));
                            let opts = env.opts;
                            let limit = Limit::Time {
                                warmup: secs(opts.warmup),
                                measure: secs(opts.duration),
                                grace: Duration::ZERO,
                            };
                            let m = measure(&server, roles, limit, opts, rate)?;
                            if paced {
                                return Ok(vec![
                                    m.rate("consumed jobs/s"),
                                    m.quantile_ms("put-to-reserve latency p50", 0.5),
                                    m.quantile_ms("put-to-reserve latency p99", 0.99),
                                    m.send_lateness_ms("client send lateness p99", 0.99),
                                ]);
                            }
                            // Unpaced, latency is only queueing: report the backlog instead.
                            let stats = server::stats(server.addr).map_err(|e| e.to_string())?;
                            let backlog = server::stat(&stats, "current-jobs-ready").unwrap_or(0);
                            Ok(vec![
                                m.rate("consumed jobs/s"),
                                Metric::new("ready backlog at the end", backlog as f64, Unit::Count),
                            ])
                        }),
                    });
                }
            }
            "idle" => {
                let body = body.clone();
                out.push(Variant {
                    scenario: "idle",
                    label: format!("{} idle + 1x100 busy", opts.idle_conns),
                    flags: vec![],
                    binlog: false,
                    fixture: None,
                    run: Box::new(move |env| idle(env, &body)),
                });
            }
            "delayed" => {
                let size = opts.body;
                out.push(Variant {
                    scenario: "delayed",
                    label: format!("delay 1 s, {} jobs/s, 10 producers + 10 workers", opts.delayed_rate),
                    flags: vec![],
                    binlog: false,
                    fixture: None,
                    run: Box::new(move |env| {
                        let server = env.start();
                        let opts = env.opts;
                        let mut roles: Vec<Role> =
                            (0..10).map(|_| Role::stamped_producer(size, 1, StampTime::Sent, true, 1)).collect();
                        let check = client::stamped_check(size);
                        let late = Stamp::Lateness(Duration::from_secs(1));
                        roles.extend((0..10).map(|_| Role::worker(check.clone(), late, false, 1, true)));
                        let limit =
                            Limit::Time { warmup: Duration::ZERO, measure: secs(opts.duration), grace: secs(2.5) };
                        let period = Duration::from_secs_f64(1.0 / opts.delayed_rate);
                        let floor = floor::start(period, secs(opts.duration + 1.5));
                        let m = measure(&server, roles, limit, opts, opts.delayed_rate)?;
                        let floor = floor.join().map_err(|_| "the timer probe panicked")?;
                        let floor_max = client::quantile(&floor, 1.0).map_or(f64::NAN, |ns| ns as f64 / 1e6);
                        write_timelines(env, &server, &m.outcome);
                        let missing = m.outcome.inserted.saturating_sub(m.outcome.reserved);
                        Ok(vec![
                            m.quantile_ms("lateness p50", 0.5),
                            m.quantile_ms("lateness p99", 0.99),
                            m.quantile_ms("lateness max", 1.0),
                            m.read_lateness_ms("lateness max, as the worker read it", 1.0),
                            m.send_lateness_ms("client send lateness p99", 0.99),
                            Metric::new("machine: bare timerfd wake-up lateness max", floor_max, Unit::Millis),
                            Metric::new("jobs", m.outcome.reserved as f64, Unit::Count),
                            Metric::new("not ready 1.5 s late", missing as f64, Unit::Count),
                        ])
                    }),
                });
            }
            "big" => {
                let size = opts.big_body;
                let big = client::pattern(size);
                let flags = if size > 65535 { vec!["-z".to_string(), size.to_string()] } else { vec![] };
                out.push(Variant {
                    scenario: "big",
                    label: format!("{size} B bodies, 50 conns x (put+reserve, delete)"),
                    flags,
                    binlog: false,
                    fixture: None,
                    run: Box::new(move |env| {
                        let server = env.start();
                        let roles = (0..50).map(|_| Role::cycle(&big, 1)).collect();
                        let m = measure(&server, roles, limit(env.opts), env.opts, 0.0)?;
                        let mib = m.outcome.rate() * size as f64 / 1024.0 / 1024.0;
                        Ok(vec![
                            m.rate("put+reserve+delete jobs/s"),
                            Metric::new("body MiB/s (each way)", mib, Unit::Count),
                        ])
                    }),
                });
            }
            "takeover" => out.push(crate::takeover::variant(opts)),
            "buried" => out.extend(crate::buried::variants(opts)),
            "tubes" => crate::tubes::variants(opts, &body, &mut out),
            "metrics" => crate::metrics::variants(opts, &body, &mut out),
            _ => unreachable!("scenario names are checked"),
        }
    }
    out
}

/// Preloads `--preload` jobs of `body`, then reserves and deletes them all
/// over `conns` connections with `depth` reserves in flight each.
fn reserve_delete(env: &Env, body: &[u8], conns: usize, depth: usize) -> Result<Vec<Metric>, String> {
    let server = env.start();
    let total = env.opts.preload;
    preload(&server, body, total, 0, env.opts)?;
    let check = BodyCheck::Exact(body.into());
    let roles = (0..conns).map(|_| Role::worker(check.clone(), Stamp::None, true, depth, true)).collect();
    let limit = Limit::Count { total, timeout: Duration::from_secs(900) };
    let m = measure(&server, roles, limit, env.opts, 0.0)?;
    let left = server::stats(server.addr).map_err(|e| e.to_string())?;
    if server::stat(&left, "current-jobs-ready") != Some(0) {
        return Err("jobs left after reserving and deleting them all".into());
    }
    Ok(vec![m.rate("reserve+delete jobs/s")])
}

/// Loads the jobs, notes peak RSS, SIGKILLs the server, restarts it on the
/// same binlog and times until `stats` shows every job back (ready, or
/// delayed if put with a delay).
fn recovery(env: &Env, delay: u32) -> Result<Vec<Metric>, String> {
    let opts = env.opts;
    let total = opts.recovery_jobs;
    let body = client::pattern(opts.recovery_body);
    let server = env.start();
    let loaded = preload(&server, &body, total, delay, opts)?;
    let hwm = server.status_bytes("VmHWM");
    let disk = env.binlog_dir().map_or(0, dir_size);
    server.kill();

    let (restarted, elapsed) = start_until_held(env.binary, &env.flags, &env.log, &[], total, delay)?;
    let rss = restarted.status_bytes("VmRSS");
    restarted.kill();
    Ok(vec![
        Metric {
            cpu: Some(loaded.cpu),
            ..Metric::new("load (4x100 pipelined) jobs/s", loaded.outcome.rate(), Unit::PerSec)
        },
        Metric::new("peak RSS after load (VmHWM)", hwm as f64, Unit::Bytes),
        Metric::new("binlog on disk", disk as f64, Unit::Bytes),
        Metric::new("restart until stats counts every job", elapsed.as_secs_f64(), Unit::Secs),
        // The files' lengths (a spare file made ahead counts whole, though a
        // replay skips its holes) over the restart: the rate it read at.
        Metric::new(
            "binlog on disk / restart (read rate)",
            disk as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64(),
            Unit::MibPerSec,
        ),
        Metric::new("RSS after restart", rss as f64, Unit::Bytes),
    ])
}

/// Starts the server (with `vars` added to its environment) and times until
/// a connection's `stats` counts `total` jobs back (ready, or delayed if put
/// with `delay`), polling every 0.5 ms from the moment it is spawned.
pub fn start_until_held(
    binary: &Binary,
    flags: &[String],
    log: &Path,
    vars: &[(&str, &str)],
    total: u64,
    delay: u32,
) -> Result<(Server, Duration), String> {
    start_until_counted(binary, flags, log, vars, held_stat(delay), total)
}

/// Starts the server (with `vars` added to its environment) and times until
/// a connection's `stats` says `total` for `key`, polling every 0.5 ms from
/// the moment it is spawned.
pub fn start_until_counted(
    binary: &Binary,
    flags: &[String],
    log: &Path,
    vars: &[(&str, &str)],
    key: &str,
    total: u64,
) -> Result<(Server, Duration), String> {
    let t0 = Instant::now();
    let mut server = Server::spawn_env(binary, flags, log, vars);
    let deadline = t0 + Duration::from_secs(600);
    loop {
        if let Ok(stream) = TcpStream::connect(server.addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(600)));
            let stats = server::stats_on(&stream).map_err(|e| format!("stats after restart: {e}"))?;
            let held = server::stat(&stats, key);
            if held == Some(total) {
                return Ok((server, t0.elapsed()));
            }
            if held.is_some_and(|r| r > total) {
                return Err(format!("after restart: {key}: {held:?}, expected {total}"));
            }
        }
        server.check_alive();
        if Instant::now() > deadline {
            return Err(format!("not ready with {total} jobs 600 s after restart"));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Holds many idle connections, then measures one busy pipelined producer.
fn idle(env: &Env, body: &[u8]) -> Result<Vec<Metric>, String> {
    let opts = env.opts;
    let server = env.start();
    let control = TcpStream::connect(server.addr).map_err(|e| e.to_string())?;
    control.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let connections = |stats: &[(String, String)]| server::stat(stats, "current-connections").unwrap_or(0);
    let before = server.status_bytes("VmRSS");
    let mut idle = Vec::with_capacity(opts.idle_conns);
    while idle.len() < opts.idle_conns {
        let batch = (opts.idle_conns - idle.len()).min(500);
        for _ in 0..batch {
            idle.push(TcpStream::connect(server.addr).map_err(|e| format!("idle connection {}: {e}", idle.len()))?);
        }
        // Let the server accept this batch before the next (its backlog is finite).
        let want = idle.len() as u64 + 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        while connections(&server::stats_on(&control).map_err(|e| e.to_string())?) < want {
            if Instant::now() > deadline {
                return Err(format!("server did not accept {want} connections within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let after = server.status_bytes("VmRSS");
    let per_conn = (after as f64 - before as f64) / opts.idle_conns.max(1) as f64;
    let busy = measure(&server, putters(body, 1, 100), limit(opts), opts, 0.0)?;
    drop(idle);
    Ok(vec![Metric::new("RSS growth per idle connection", per_conn, Unit::Bytes), busy.rate("busy put 1x100 jobs/s")])
}

/// The targets the project reports, from this run's medians.
pub fn targets(results: &BTreeMap<(String, String, String), [f64; 3]>) -> String {
    let mut out = String::new();
    let get = |s: &str, v: &str, m: &str| {
        results.get(&(s.to_string(), v.to_string(), m.to_string())).map(|&[b, s, _]| [b, s])
    };
    // Issue 15: how close sprout comes to the do-nothing server.
    let preloaded = |shape: &str| format!("{} preloaded, {shape}", results_preload(results));
    for (scenario, variant, metric, target) in [
        ("put", "1x1000".to_string(), "put jobs/s", 0.9),
        ("put", "50x16".to_string(), "put jobs/s", 0.85),
        ("reserve-delete", preloaded("1x1000"), "reserve+delete jobs/s", 0.7),
    ] {
        if let Some(&[_, s, d]) = results.get(&(scenario.to_string(), variant.clone(), metric.to_string()))
            && d.is_finite()
        {
            let _ = writeln!(
                out,
                "- {scenario} {variant}: sprout/do-nothing = {:.2} (target >= {target}){}",
                s / d,
                check(s / d >= target)
            );
        }
    }
    for (label, shape) in [("-f 0 50x1", "50x1"), ("-f 0 1x100", "1x100")] {
        if let Some([b, s]) = get("put-binlog", label, "put jobs/s") {
            let _ = writeln!(
                out,
                "- put-binlog {label}: sprout/beanstalkd = {:.2} (target >= 8 with 50 connections){}",
                s / b,
                if shape == "50x1" { check(s / b >= 8.0) } else { "" }
            );
        }
    }
    // Issue 15: sprout with -b against sprout without, in the same rounds;
    // for puts, beside what the do-nothing server's log (nothing but each
    // record written before its reply) gets against no log: the ceiling.
    for (scenario, metric) in [("put-binlog", "put jobs/s"), ("reserve-delete-binlog", "reserve+delete jobs/s")] {
        for ((sc, variant, m), &[_, without, ceiling_without]) in results {
            let Some(shape) = variant.strip_prefix("no -b ") else { continue };
            if sc != scenario || m != metric {
                continue;
            }
            for (policy, target) in [("default", 0.85), ("-F", 0.95)] {
                let key = (scenario.to_string(), format!("{policy} {shape}"), metric.to_string());
                if let Some(&[_, with, ceiling_with]) = results.get(&key) {
                    let ceiling = ceiling_with / ceiling_without;
                    let ceiling = if ceiling.is_finite() {
                        format!("; a log that only writes, the do-nothing server's: {ceiling:.2}")
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        out,
                        "- sprout {scenario} {shape}: {policy} / no -b = {:.2} (target >= {target}{ceiling}){}",
                        with / without,
                        check(with / without >= target)
                    );
                }
            }
        }
    }
    if let Some([b, s]) = get("put", "50x16", "put jobs/s") {
        let _ = writeln!(out, "- put 50x16: sprout/beanstalkd = {:.2} (target >= 10){}", s / b, check(s / b >= 10.0));
    }
    let mixed_10k = "25 producers @ 10000 jobs/s total + 25 workers";
    if let Some([b, s]) = get("mixed", mixed_10k, "put-to-reserve latency p99") {
        let _ = writeln!(
            out,
            "- mixed @ 10000 jobs/s: put-to-reserve p99 sprout/beanstalkd = {:.2} (target <= 0.7){}",
            s / b,
            check(s / b <= 0.7)
        );
    }
    let delayed = |metric: &str| results.iter().find(|((sc, _, m), _)| sc == "delayed" && m == metric).map(|(_, v)| *v);
    if let (Some([_, s, _]), Some([_, floor, _])) =
        (delayed("lateness max"), delayed("machine: bare timerfd wake-up lateness max"))
    {
        let _ = writeln!(
            out,
            "- delayed: sprout's worst lateness {s:.2} ms (target <= 2); a bare timerfd on this machine at the same \
             moments woke up to {floor:.2} ms late{}",
            check(s <= 2.0)
        );
    }
    // The targets are issue 15's, for ready jobs (the first recovery
    // variant).
    for (name, metric, target) in [
        ("restart time", "restart until stats counts every job", 0.15),
        ("peak RSS after load", "peak RSS after load (VmHWM)", 0.45),
    ] {
        if let Some(((_, v, _), [b, s, _])) = results.iter().find(|((sc, _, m), _)| sc == "recovery" && m == metric) {
            let _ = writeln!(
                out,
                "- recovery {v}: {name} sprout/beanstalkd = {:.2} (target <= {target}){}",
                s / b,
                check(s / b <= target)
            );
        }
    }
    // Issue 15: a million buried jobs (the target was set without -b).
    for ((_, v, _), [b, s, _]) in results.iter().filter(|((sc, _, m), _)| sc == "buried" && m == crate::buried::PEAK) {
        let _ = writeln!(
            out,
            "- buried {v}: peak RSS sprout/beanstalkd = {:.2} (target <= 0.6){}",
            s / b,
            check(s / b <= 0.6)
        );
    }
    let takeover = crate::takeover::START;
    if let Some(((_, v, _), [b, s, _])) = results.iter().find(|((sc, _, m), _)| sc == "takeover" && m == takeover) {
        let _ = writeln!(
            out,
            "- takeover {v}: sprout's takeover / beanstalkd's restart on the same binlog = {:.2} (target < 1){}",
            s / b,
            check(s / b < 1.0)
        );
    }
    out
}

/// The preload of this run's reserve-delete variants (their labels carry it).
fn results_preload(results: &BTreeMap<(String, String, String), [f64; 3]>) -> String {
    results
        .keys()
        .find_map(|(scenario, variant, _)| {
            (scenario == "reserve-delete").then(|| variant.split(' ').next().unwrap_or_default().to_string())
        })
        .unwrap_or_default()
}

fn check(ok: bool) -> &'static str {
    if ok { " — met" } else { " — NOT met" }
}

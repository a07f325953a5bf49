//! The `takeover` scenario (issue 12): sprout taking over a binlog directory
//! that beanstalkd wrote, against beanstalkd restarting on it.
//!
//! Each round, beanstalkd started with `-b DIR` (at its default fsync
//! policy) is loaded with `--recovery-jobs` jobs of `--recovery-body` bytes
//! (4 connections x 100 pipelined), its peak RSS read, and killed with
//! SIGKILL: `DIR` is the round's fixture, the same bytes for both servers.
//! Each server's run copies it into a directory of its own (copied, synced,
//! and the filesystem `syncfs`ed before the clock starts, so both read it
//! from the page cache, with no write-back under way), starts on the copy
//! and is timed from spawn until a connection's `stats` counts every job
//! ready (polled every 0.5 ms): beanstalkd replays its own log; sprout takes
//! it over (reads and replays beanstalkd's files, writes and syncs its own
//! log of the live jobs, moves beanstalkd's files into
//! `beanstalkd-imported-<time>/`, reads its own log back). Sprout's log (at
//! info level) splits its time; the server's CPU over the start, and the
//! rest of the machine's, tell a slow start from a starved one. `peek-ready`
//! and `peek` of the first, a middle and the last job must give the load's
//! ids and bodies. Then the server is killed, the copy's disk use measured,
//! and the server started once more on it: for sprout, the ordinary restart
//! after a takeover.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::client;
use crate::scenarios::{self, Env, FixtureEnv, Metric, Unit, Variant};
use crate::server::{self, Server};

/// Where sprout moves beanstalkd's files: `DIR/<this><time>/`.
const IMPORTED_PREFIX: &str = "beanstalkd-imported-";

/// The row of the timed first start (the targets look it up).
pub const START: &str =
    "start on beanstalkd's binlog until stats counts every job (sprout: the takeover; lower is better)";

/// Said once in sprout's log when it took a directory over.
const TOOK_OVER: &str = "took over beanstalkd's log";

pub fn variant(opts: &crate::Opts) -> Variant {
    Variant {
        scenario: "takeover",
        label: format!("{} x {} B", opts.recovery_jobs, opts.recovery_body),
        flags: vec![],
        binlog: true,
        fixture: Some(Box::new(load)),
        run: Box::new(run),
    }
}

/// The fixture: beanstalkd's binlog of the loaded jobs, cut by SIGKILL.
fn load(env: &FixtureEnv) -> Result<Vec<Metric>, String> {
    let opts = env.opts;
    let total = opts.recovery_jobs;
    let body = client::pattern(opts.recovery_body);
    let server = Server::start(env.beanstalkd, &env.flags, &env.log);
    let loaded = scenarios::preload(&server, &body, total, 0, opts)?;
    check_bodies(&server, total, &body).map_err(|e| format!("beanstalkd after the load: {e}"))?;
    let hwm = server.status_bytes("VmHWM");
    server.kill();
    let files = binlog_files(&env.dir).map_err(|e| format!("{}: {e}", env.dir.display()))?;
    let disk: u64 = files.iter().map(|m| m.blocks() * 512).sum();
    Ok(vec![
        Metric {
            cpu: Some(loaded.cpu),
            ..Metric::new("beanstalkd's load (4x100 pipelined) jobs/s", loaded.outcome.rate(), Unit::PerSec)
        },
        Metric::new("beanstalkd's peak RSS after the load (VmHWM)", hwm as f64, Unit::Bytes),
        Metric::new("disk before: beanstalkd's binlog", disk as f64, Unit::Bytes),
        Metric::new("beanstalkd's binlog files", files.len() as f64, Unit::Count),
    ])
}

/// One server on a copy of the fixture: the timed first start, its memory
/// and the directory it leaves, then a second start.
fn run(env: &Env) -> Result<Vec<Metric>, String> {
    let opts = env.opts;
    let total = opts.recovery_jobs;
    let body = client::pattern(opts.recovery_body);
    let fixture = env.fixture.ok_or("takeover: no fixture")?;
    let dir = env.binlog_dir().ok_or("takeover: no -b directory")?;
    let theirs =
        copy_synced(fixture, dir).map_err(|e| format!("copy {} to {}: {e}", fixture.display(), dir.display()))?;
    let sprout = env.binary.kind.is_sprout();
    // At info level sprout logs how long opening the binlog (the takeover,
    // then reading its own log back) and restoring the jobs took.
    let vars: &[(&str, &str)] = if sprout { &[("RUST_LOG", "info")] } else { &[] };

    let busy_before = machine_busy_secs();
    let (first, took) = scenarios::start_until_held(env.binary, &env.flags, &env.log, vars, total, 0)?;
    let server_cpu = first.cpu_seconds();
    let others_cpu = machine_busy_secs() - busy_before - server_cpu;
    check_bodies(&first, total, &body).map_err(|e| format!("after the first start: {e}"))?;
    let hwm = first.status_bytes("VmHWM");
    let rss = first.status_bytes("VmRSS");
    first.kill();
    let log = fs::read_to_string(&env.log).unwrap_or_default();
    if sprout && !log.contains(TOOK_OVER) {
        return Err(format!("sprout's log never says {TOOK_OVER:?}:\n{log}"));
    }
    let (open_ms, restore_ms) = if sprout { opened_and_restored_ms(&log) } else { (f64::NAN, f64::NAN) };

    let whole = allocated(dir);
    let live: u64 = binlog_files(dir).map_err(|e| e.to_string())?.iter().map(|m| m.blocks() * 512).sum();
    let imported: u64 = (fs::read_dir(dir).map_err(|e| e.to_string())?.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(IMPORTED_PREFIX))
        .map(|e| allocated(&e.path()))
        .sum();
    if sprout && imported == 0 {
        return Err(format!("no {IMPORTED_PREFIX}* directory with beanstalkd's files in {}", dir.display()));
    }

    let (second, again) = scenarios::start_until_held(env.binary, &env.flags, &env.log, &[], total, 0)?;
    check_bodies(&second, total, &body).map_err(|e| format!("after the second start: {e}"))?;
    second.kill();
    if fs::read_to_string(&env.log).unwrap_or_default().contains(TOOK_OVER) {
        return Err("the second start took the directory over again".into());
    }

    let mib = theirs as f64 / 1024.0 / 1024.0;
    let percent = |cpu: f64| 100.0 * cpu / took.as_secs_f64();
    Ok(vec![
        Metric::new(START, took.as_secs_f64(), Unit::Secs),
        Metric::new("of which sprout's binlog open: import + read-back (its log)", open_ms / 1e3, Unit::Secs),
        Metric::new("of which sprout's restore into the engine (its log)", restore_ms / 1e3, Unit::Secs),
        Metric::new("server CPU during that start (% of one core)", percent(server_cpu), Unit::Count),
        Metric::new(
            "machine: CPU busy outside the server during that start (% of one core)",
            percent(others_cpu).max(0.0),
            Unit::Count,
        ),
        Metric::new("beanstalkd's binlog read, per second of that start", mib / took.as_secs_f64(), Unit::MibPerSec),
        Metric::new("peak RSS of that start (VmHWM)", hwm as f64, Unit::Bytes),
        Metric::new("RSS once every job is back (VmRSS)", rss as f64, Unit::Bytes),
        Metric::new("disk after: the whole directory", whole as f64, Unit::Bytes),
        Metric::new("disk after: its binlog.N files (the server's log)", live as f64, Unit::Bytes),
        Metric::new("disk after: beanstalkd-imported-*/ (beanstalkd's files, moved)", imported as f64, Unit::Bytes),
        Metric::new(
            "second start, on the same directory, until stats counts every job (lower is better)",
            again.as_secs_f64(),
            Unit::Secs,
        ),
    ])
}

/// `peek-ready` must give job 1, and `peek` of the first, a middle and the
/// last job their ids and the load's body: the load put jobs 1..=total into
/// a fresh beanstalkd, all at priority 0.
fn check_bodies(server: &Server, total: u64, body: &[u8]) -> Result<(), String> {
    if total == 0 {
        return Ok(());
    }
    let stream = TcpStream::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let asks = [("peek-ready".to_string(), 1)]
        .into_iter()
        .chain([1, total / 2 + 1, total].map(|id| (format!("peek {id}"), id)));
    for (cmd, want) in asks {
        match server::peek_on(&stream, &cmd).map_err(|e| format!("{cmd}: {e}"))? {
            Some((id, got)) if id == want && got == body => {}
            Some((id, got)) => {
                return Err(format!(
                    "{cmd}: job {id} with {} bytes ({}), expected job {want} with the load's {} bytes",
                    got.len(),
                    if got == body { "the load's body" } else { "not the load's body" },
                    body.len()
                ));
            }
            None => return Err(format!("{cmd}: NOT_FOUND")),
        }
    }
    Ok(())
}

/// Copies the files of `from` into `to`, syncs them and `to`, and returns
/// the size of the `binlog.N` files copied.
fn copy_synced(from: &Path, to: &Path) -> std::io::Result<u64> {
    let mut binlog = 0;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let target = to.join(entry.file_name());
        let len = fs::copy(entry.path(), &target)?;
        fs::File::open(&target)?.sync_all()?;
        if is_binlog_name(&entry.file_name().to_string_lossy()) {
            binlog += len;
        }
    }
    fs::File::open(to)?.sync_all()?;
    flush_filesystem(to)?;
    Ok(binlog)
}

/// Writes back everything dirty on the filesystem of `path` (`syncfs`):
/// the fixture beanstalkd has just written, the directories of the rounds
/// before, removed, so that no write-back from them runs under the clock.
fn flush_filesystem(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = fs::File::open(path)?;
    // SAFETY: syncfs only reads the descriptor, which `dir` keeps open.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn is_binlog_name(name: &str) -> bool {
    name.strip_prefix("binlog.").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The metadata of the `binlog.N` files directly in `dir`.
fn binlog_files(dir: &Path) -> std::io::Result<Vec<fs::Metadata>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if is_binlog_name(&entry.file_name().to_string_lossy()) {
            files.push(entry.metadata()?);
        }
    }
    Ok(files)
}

/// Bytes allocated on disk (what `du` counts) to the files under `path`.
fn allocated(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.blocks() * 512;
    }
    (fs::read_dir(path).into_iter().flatten().flatten()).map(|e| allocated(&e.path())).sum()
}

/// CPU time the whole machine has spent busy (not idle, not waiting for
/// I/O) since boot, from the first line of /proc/stat.
fn machine_busy_secs() -> f64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else { return f64::NAN };
    let ticks: Vec<u64> = cpu.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is in user already)
    let busy: u64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    busy as f64 / hz
}

/// From sprout's log at info level, the line
/// `binlog: recovered N jobs (read in A ms, restored in B ms); ...`: A and B.
fn opened_and_restored_ms(log: &str) -> (f64, f64) {
    let number = |line: &str, before: &str| -> Option<f64> {
        let rest = &line[line.find(before)? + before.len()..];
        rest.split(" ms").next()?.trim().parse().ok()
    };
    log.lines()
        .find(|l| l.contains("binlog: recovered "))
        .and_then(|l| Some((number(l, "read in ")?, number(l, "restored in ")?)))
        .unwrap_or((f64::NAN, f64::NAN))
}

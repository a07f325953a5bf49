//! What the server takes, sampled through the run and held to the bounds,
//! and the lines that say how the run goes.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Bounds, mib};
use crate::shared::{Counts, Shared, pause};

/// The current server and the peaks over every server of the run.
#[derive(Default)]
pub struct Gauges {
    /// The server's pid while it runs, else 0.
    pub pid: AtomicU32,
    pub rss: AtomicU64,
    pub rss_peak: AtomicU64,
    pub disk: AtomicU64,
    pub disk_peak: AtomicU64,
    /// CPU seconds (in ms) of the servers before this one.
    pub cpu_ms_before: AtomicU64,
    pub kill9: AtomicU64,
    pub term: AtomicU64,
    pub kill9_twice: AtomicU64,
    /// Warnings the restarts logged (a torn tail cut, an empty file
    /// removed), and the distinct kinds of them.
    pub warnings: AtomicU64,
}

impl Gauges {
    /// Samples the server (its peak resident set so far, which the kernel
    /// keeps) and holds it to the bound.
    pub fn sample_server(&self, shared: &Shared, bounds: Bounds) {
        let pid = self.pid.load(Ordering::Relaxed);
        if pid != 0
            && let (Some(rss), Some(peak)) = (status_bytes(pid, "VmRSS"), status_bytes(pid, "VmHWM"))
        {
            self.rss.store(rss, Ordering::Relaxed);
            let before = self.rss_peak.fetch_max(peak, Ordering::Relaxed);
            if peak > bounds.rss && before <= bounds.rss {
                shared.fail(format!("RSS: the server's resident set reached {}, bound {}", mib(peak), mib(bounds.rss)));
            }
        }
    }

    /// Samples the binlog directory and holds it to the bound.
    pub fn sample_dir(&self, shared: &Shared, dir: &Path, bounds: Bounds) {
        let disk = dir_bytes(dir);
        self.disk.store(disk, Ordering::Relaxed);
        let before = self.disk_peak.fetch_max(disk, Ordering::Relaxed);
        if disk > bounds.disk && before <= bounds.disk {
            let ledger = shared.ledger();
            shared.fail(format!(
                "DISK: the binlog directory took {}, bound {} ({} live jobs, {} of log)",
                mib(disk),
                mib(bounds.disk),
                ledger.live,
                mib(ledger.live_bytes)
            ));
        }
    }

    /// CPU seconds the servers used so far, this one included.
    pub fn cpu_seconds(&self) -> f64 {
        let pid = self.pid.load(Ordering::Relaxed);
        let now = if pid == 0 { 0.0 } else { cpu_seconds(pid).unwrap_or(0.0) };
        self.cpu_ms_before.load(Ordering::Relaxed) as f64 / 1000.0 + now
    }

    /// Adds the CPU time of the server `pid`, about to die.
    pub fn add_cpu_of(&self, pid: u32) {
        let ms = (cpu_seconds(pid).unwrap_or(0.0) * 1000.0) as u64;
        self.cpu_ms_before.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn restarts(&self) -> u64 {
        [&self.kill9, &self.term, &self.kill9_twice].iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Samples every 100 ms and prints a progress line every
/// `progress_every`, until the run stops.
pub fn run(shared: &Shared, dir: &Path, started: Instant) {
    let bounds = shared.cfg.bounds();
    let mut next_line = started + shared.cfg.progress_every;
    while !shared.control.stopping() {
        shared.gauges.sample_server(shared, bounds);
        shared.gauges.sample_dir(shared, dir, bounds);
        if Instant::now() >= next_line {
            eprintln!("{}", progress(shared, started.elapsed()));
            next_line += shared.cfg.progress_every;
        }
        pause(100);
    }
}

fn get(counter: &AtomicU64) -> u64 {
    Counts::get(counter)
}

/// One line: how far, what the load did, the faults, memory and disk.
pub fn progress(shared: &Shared, elapsed: Duration) -> String {
    let (c, g, bounds) = (&shared.counts, &shared.gauges, shared.cfg.bounds());
    let (live, live_bytes) = {
        let ledger = shared.ledger();
        (ledger.live, ledger.live_bytes)
    };
    format!(
        "soak {} of {}: {} puts, {} deletes, {live} live ({} of log); {} restarts ({} kill -9, {} SIGTERM, \
         {} kill -9 twice); RSS {}, peak {} (bound {}); disk {}, peak {} (bound {}); {} failures",
        clock(elapsed),
        clock(shared.cfg.duration),
        get(&c.puts),
        get(&c.deletes),
        mib(live_bytes),
        g.restarts(),
        get(&g.kill9),
        get(&g.term),
        get(&g.kill9_twice),
        mib(get(&g.rss)),
        mib(get(&g.rss_peak)),
        mib(bounds.rss),
        mib(get(&g.disk)),
        mib(get(&g.disk_peak)),
        mib(bounds.disk),
        shared.failures().len()
    )
}

/// The report at the end of a run.
pub fn report(shared: &Shared, elapsed: Duration) -> String {
    let (c, g) = (&shared.counts, &shared.gauges);
    let failures = shared.failures();
    let kind = |word: &str| failures.iter().filter(|f| f.contains(word)).count();
    let cpu = g.cpu_seconds();
    format!(
        "{}\n  load: {} reserves, {} releases, {} buries, {} kick-jobs, {} kick N ({} jobs kicked), {} touches, \
         {} peeks of deleted jobs, {} visits ({} torn puts), {} bytes sent by the slow reader and never read; \
         {} reservations lost to the TTR\n  checks: {} (after every restart); in-flight commands found done {}, \
         not done {}; restart warnings {}\n  log: {} files made, {} jobs moved by compaction\n  server CPU {cpu:.1} s ({:.1}% of one core)\n  \
         lost {}, resurrected {}, phantom {}, mismatched {}, counts {}, other failures {}",
        progress(shared, elapsed),
        get(&c.reserves),
        get(&c.releases),
        get(&c.buries),
        get(&c.kick_jobs),
        get(&c.bulk_kicks),
        get(&c.bulk_kicked),
        get(&c.touches),
        get(&c.peeks_of_deleted),
        get(&c.visits),
        get(&c.torn_puts),
        get(&c.unread_bytes),
        get(&c.lost_reservations),
        get(&c.checks),
        get(&c.uncertain_done),
        get(&c.uncertain_not_done),
        get(&g.warnings),
        get(&c.files_made),
        get(&c.migrated),
        100.0 * cpu / elapsed.as_secs_f64(),
        kind("LOST"),
        kind("RESURRECTED"),
        kind("PHANTOM"),
        kind("MISMATCH"),
        kind("COUNT"),
        failures.len() - ["LOST", "RESURRECTED", "PHANTOM", "MISMATCH", "COUNT"].iter().map(|w| kind(w)).sum::<usize>()
    )
}

/// `h:mm:ss`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A `kB` line of `/proc/PID/status`, in bytes; `None` once the process is
/// gone (or a zombie, which has no memory lines).
fn status_bytes(pid: u32, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    Some(line.trim().strip_suffix(" kB")?.trim().parse::<u64>().ok()? * 1024)
}

/// CPU seconds of `pid` (user and system), while it exists.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / hz as f64)
}

/// Bytes of the files in `dir` (the binlog files, the lock), as their
/// sizes say: files are allocated whole, so this is what they hold.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
}

//! The coordinator: starts sprout on the directory, lets the load run for
//! a while, makes the server die (`kill -9`, SIGTERM, or `kill -9` twice,
//! the second a few milliseconds into the restart), waits until every
//! actor has stopped, restarts it on the same directory (a new port, the
//! next fsync policy), checks it against the ledger, and opens the next
//! epoch; until the time is up or something failed.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::check;
use crate::config::{FSYNC_POLICIES, Fault, Faults};
use crate::control::Control;
use crate::shared::{Counts, Shared, between, pause};
use crate::support::server::EXIT_LISTEN;
use crate::support::{Client, Rng, Server, ServerBuilder, Stats};

/// How long the actors may take to notice the server is gone.
const ACTORS_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Under load this long, the actors must have read some reply (the
/// visitor alone asks something every 40 ms at most); generous, for a busy
/// machine.
const STALL: Duration = Duration::from_secs(10);

/// How long a SIGTERM'd server may take to exit.
const TERM_TIMEOUT: Duration = Duration::from_secs(60);

/// Ends the run when dropped, however the coordinator leaves.
struct StopOnDrop<'a>(&'a Control);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

pub fn run(shared: &Shared, dir: &Path, actors: usize, started: Instant) {
    let _stop = StopOnDrop(&shared.control);
    let mut rng = shared.rng(1);
    let mut starts = 0;
    let Some(mut server) = start(shared, dir, &mut starts) else { return };
    let mut floor = check::probe(&mut server.connect());
    let mut epoch = 1;
    shared.control.up(epoch, server.addr().clone());
    for restart in 1.. {
        let (low, high) = shared.cfg.fault_every;
        let load = low + Duration::from_millis(rng.below((high - low).as_millis() as u64 + 1));
        let progress = shared.counts.progress();
        let until = Instant::now() + load;
        while Instant::now() < until && !shared.failed() {
            pause(20);
        }
        if shared.failed() {
            break;
        }
        if load >= STALL && shared.counts.progress() == progress {
            shared.fail(format!("STALL: epoch {epoch}: no reply read in {load:?}"));
            break;
        }
        log_stats(shared, &server);
        let fault = match &shared.cfg.faults {
            Faults::Cycle(faults) => faults[(restart - 1) % faults.len()],
            Faults::Random => match rng.below(100) {
                0..70 => Fault::Kill9,
                70..90 => Fault::Term,
                _ => Fault::Kill9Twice,
            },
        };
        let died = kill(shared, &mut server, fault);
        if !shared.control.all_waiting(actors, ACTORS_STOP_TIMEOUT) {
            shared.fail(format!("restart {restart}: the actors did not stop within {ACTORS_STOP_TIMEOUT:?}"));
            break;
        }
        if fault == Fault::Kill9Twice {
            kill_while_starting(shared, &builder(shared, dir, &mut starts), &mut rng);
        }
        let policy = FSYNC_POLICIES[starts % FSYNC_POLICIES.len()];
        let Some(restarted) = start(shared, dir, &mut starts) else { break };
        server = restarted;
        let began = Instant::now();
        let checked = check::after_restart(shared, &mut server.connect(), died, floor, restart as u64);
        eprintln!(
            "soak restart {restart} ({fault:?}, then {policy:?}) at {:.0} s: {} jobs and {} deletes checked in {:.2} s{}",
            started.elapsed().as_secs_f64(),
            checked.jobs,
            checked.deleted,
            began.elapsed().as_secs_f64(),
            if checked.failures.is_empty() { String::new() } else { format!(", {} FAILURES", checked.failures.len()) }
        );
        floor = checked.probe;
        for failure in checked.failures {
            shared.fail(failure);
        }
        warnings(shared, &server, restart);
        if shared.failed() || started.elapsed() >= shared.cfg.duration {
            break;
        }
        epoch += 1;
        shared.control.up(epoch, server.addr().clone());
    }
    shared.control.stop();
    if server.exit_status().is_none() {
        shared.gauges.add_cpu_of(server.pid());
        shared.gauges.pid.store(0, Ordering::Relaxed);
        let status = server.terminate();
        if !status.success() {
            shared.fail(format!("the last server exited with {status} after SIGTERM"));
        }
    }
}

/// What the server says of its log before it dies: the files it made and
/// the jobs compaction moved.
fn log_stats(shared: &Shared, server: &Server) {
    let Ok(mut c) = Client::try_connect(server.addr()) else { return };
    let Ok(()) = c.try_send("stats\r\n") else { return };
    let Ok(reply) = c.try_read_reply(Duration::from_secs(10)) else { return };
    let stats = Stats::parse(&reply);
    Counts::add(&shared.counts.migrated, stats.num("binlog-records-migrated"));
    shared.counts.files_made.fetch_max(stats.num("binlog-current-index"), Ordering::Relaxed);
}

/// sprout on `dir` with small files and the next fsync policy.
fn builder(shared: &Shared, dir: &Path, starts: &mut usize) -> ServerBuilder<'static> {
    let policy = FSYNC_POLICIES[*starts % FSYNC_POLICIES.len()];
    *starts += 1;
    let size = shared.cfg.file_size.to_string();
    Server::sprout().binlog(dir).args(["-s", size.as_str()]).args(policy).env_remove("RUST_LOG")
}

/// Starts sprout and waits until it serves; `None` (a failure) if it will
/// not start.
fn start(shared: &Shared, dir: &Path, starts: &mut usize) -> Option<Server> {
    match builder(shared, dir, starts).try_start() {
        Ok(server) => {
            shared.gauges.pid.store(server.pid(), Ordering::Relaxed);
            Some(server)
        }
        Err(exited) => {
            shared.fail(format!("sprout did not start ({}): {}", exited.status, exited.stderr));
            None
        }
    }
}

/// Closes the epoch and makes the server die by `fault`; when it is gone.
fn kill(shared: &Shared, server: &mut Server, fault: Fault) -> Instant {
    let gauges = &shared.gauges;
    gauges.sample_server(shared, shared.cfg.bounds());
    gauges.add_cpu_of(server.pid());
    shared.control.down();
    if let Some(status) = server.exit_status() {
        shared.fail(format!("the server exited by itself ({status}): {}", server.stderr_text()));
    } else if fault == Fault::Term {
        server.signal(libc::SIGTERM);
        match server.wait_exit(TERM_TIMEOUT) {
            Some(status) if status.success() => {}
            Some(status) => shared.fail(format!("SIGTERM: the server exited with {status}")),
            None => {
                shared.fail(format!("SIGTERM: the server did not exit within {TERM_TIMEOUT:?}"));
                server.kill9();
            }
        }
        Counts::add(&gauges.term, 1);
    } else {
        server.kill9();
        Counts::add(if fault == Fault::Kill9 { &gauges.kill9 } else { &gauges.kill9_twice }, 1);
    }
    gauges.pid.store(0, Ordering::Relaxed);
    errors(shared, server, "before it died");
    Instant::now()
}

/// Starts sprout and kills it a few milliseconds later: before it
/// listens, while it replays the log, or just after.
fn kill_while_starting(shared: &Shared, builder: &ServerBuilder, rng: &mut Rng) {
    let mut server = builder.spawn();
    pause(between(rng, (0, 40)));
    match server.exit_status() {
        // The port the kit picked was taken meanwhile (by a process that
        // is none of ours): it exited before it touched the log.
        Some(status) if status.code() == Some(EXIT_LISTEN) => {}
        Some(status) => {
            shared.fail(format!("sprout exited by itself while starting ({status}): {}", server.stderr_text()))
        }
        None => {
            server.kill9();
        }
    }
    errors(shared, &server, "while starting");
}

/// An error the server logged is a failure.
fn errors(shared: &Shared, server: &Server, when: &str) {
    for line in server.stderr_text().lines().filter(|l| l.contains("ERROR")) {
        shared.fail(format!("the server logged {when}: {line}"));
    }
}

/// Prints what the restarted server warned about (a torn tail cut, an
/// empty file removed: what a kill leaves), and counts it.
fn warnings(shared: &Shared, server: &Server, restart: usize) {
    let text = server.stderr_text();
    for line in text.lines().filter(|l| l.contains("WARN")) {
        Counts::add(&shared.gauges.warnings, 1);
        eprintln!("soak restart {restart}: the server warned: {line}");
    }
    errors(shared, server, "at its start");
}

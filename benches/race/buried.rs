//! The `buried` scenario (issue 15, part 3): what a million buried jobs
//! cost each server, and whether they come back in burial order.
//!
//! One connection buries `--recovery-jobs` jobs of `--recovery-body` bytes,
//! a thousand at a time: 1,000 pipelined `put`s, their 1,000 `reserve`s,
//! then 1,000 `bury`s in the reverse of the order they were reserved in, so
//! that burial order is not id order (a server that kicked or restored
//! buried jobs by id would be caught). `stats` must count every job buried;
//! then the peak RSS (VmHWM) is read.
//!
//! With `-b` (the second variant) the server is then killed with SIGKILL
//! and started again on its binlog, timed until `stats` counts every job
//! buried. Then (in both variants) the buried jobs are kicked `KICK_STEP`
//! at a time, each kick after a `peek-buried` that must name the job the
//! burial order puts next; the row counts the peeks that named another job.
//! sprout must have none (the run fails otherwise); beanstalkd's figure is
//! reported as it comes.

use std::time::{Duration, Instant};

use crate::blocking::Conn;
use crate::client::{self, Reply};
use crate::scenarios::{self, Env, Metric, Unit, Variant};
use crate::server::{self, Server};

/// Jobs put, reserved and buried per round trip of each.
const BATCH: usize = 1000;

/// Jobs kicked per checked `peek-buried`: not a divisor of [`BATCH`], so
/// the checks land at every position within a batch's reversed order.
const KICK_STEP: usize = 997;

/// The row of the peak RSS (the targets look it up).
pub const PEAK: &str = "peak RSS with every job buried (VmHWM)";

/// The row of the kick order check.
pub const OUT_OF_ORDER: &str = "peek-buried before a kick not the next in burial order (checks failed)";

pub fn variants(opts: &crate::Opts) -> Vec<Variant> {
    [(false, "no -b"), (true, "-b")]
        .into_iter()
        .map(|(binlog, what)| Variant {
            scenario: "buried",
            label: format!("{} x {} B, {what}", opts.recovery_jobs, opts.recovery_body),
            flags: vec![],
            binlog,
            fixture: None,
            run: Box::new(move |env| run(env, binlog)),
        })
        .collect()
}

fn run(env: &Env, binlog: bool) -> Result<Vec<Metric>, String> {
    let opts = env.opts;
    let total = opts.recovery_jobs as usize;
    let body = client::pattern(opts.recovery_body);
    let server = env.start();
    let client_cpu = || server::proc_cpu_seconds("/proc/thread-self/stat");
    let (server0, client0, t0) = (server.cpu_seconds(), client_cpu(), Instant::now());
    let order = bury_all(&server, &body, total)?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = ((server.cpu_seconds() - server0) / secs, (client_cpu() - client0) / secs);
    let counted = server::stats(server.addr).map_err(|e| format!("stats after burying: {e}"))?;
    if server::stat(&counted, "current-jobs-buried") != Some(total as u64) {
        return Err(format!("after burying {total} jobs, stats says current-jobs-buried: {counted:?}"));
    }
    let hwm = server.status_bytes("VmHWM");
    let mut metrics = vec![
        Metric {
            cpu: Some(cpu),
            ..Metric::new(
                "bury load (put, reserve, bury; 1 x 1000 pipelined) jobs/s",
                total as f64 / secs,
                Unit::PerSec,
            )
        },
        Metric::new(PEAK, hwm as f64, Unit::Bytes),
    ];
    let server = if binlog {
        server.kill();
        let (restarted, elapsed) =
            scenarios::start_until_counted(env.binary, &env.flags, &env.log, &[], "current-jobs-buried", total as u64)?;
        metrics.push(Metric::new("restart until stats counts every job buried", elapsed.as_secs_f64(), Unit::Secs));
        metrics.push(Metric::new("RSS after restart", restarted.status_bytes("VmRSS") as f64, Unit::Bytes));
        restarted
    } else {
        server
    };
    let failed = kick_in_order(&server, &order)?;
    if failed > 0 && env.binary.kind.is_sprout() {
        return Err(format!("{failed} peek-buried checks named a job out of burial order"));
    }
    metrics.push(Metric::new(OUT_OF_ORDER, failed as f64, Unit::Count));
    server.kill();
    Ok(metrics)
}

/// Buries `total` jobs of `body` and returns their ids in burial order.
fn bury_all(server: &Server, body: &[u8], total: usize) -> Result<Vec<u64>, String> {
    let mut conn = Conn::open(server, Duration::from_secs(120))?;
    let mut order = Vec::with_capacity(total);
    let mut put = format!("put 0 0 60 {}\r\n", body.len()).into_bytes();
    put.extend_from_slice(body);
    put.extend_from_slice(b"\r\n");
    while order.len() < total {
        let n = BATCH.min(total - order.len());
        conn.send(&put.repeat(n))?;
        for _ in 0..n {
            conn.expect(|r| matches!(r, Reply::Inserted(_)), "put")?;
        }
        conn.send(&b"reserve\r\n".repeat(n))?;
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(conn.reserved()?);
        }
        ids.reverse();
        let buries: String = ids.iter().map(|id| format!("bury {id} 0\r\n")).collect();
        conn.send(buries.as_bytes())?;
        for _ in 0..n {
            conn.expect(|r| matches!(r, Reply::Other(b"BURIED")), "bury")?;
        }
        order.extend(ids);
    }
    Ok(order)
}

/// Kicks every buried job, `KICK_STEP` at a time, and counts the
/// `peek-buried`s before each kick that named another job than the one
/// `order` (burial order) puts next.
fn kick_in_order(server: &Server, order: &[u64]) -> Result<usize, String> {
    let mut conn = Conn::open(server, Duration::from_secs(120))?;
    let starts: Vec<usize> = (0..order.len()).step_by(KICK_STEP).collect();
    let mut failed = 0;
    for group in starts.chunks(BATCH) {
        conn.send(&format!("peek-buried\r\nkick {KICK_STEP}\r\n").repeat(group.len()).into_bytes())?;
        for &at in group {
            let peeked = conn.found()?;
            failed += usize::from(peeked != order[at]);
            let kicked = conn.line()?;
            let expected = KICK_STEP.min(order.len() - at);
            if kicked != format!("KICKED {expected}").into_bytes() {
                return Err(format!("kick {KICK_STEP} at {at}: {:?}", String::from_utf8_lossy(&kicked)));
            }
        }
    }
    let left = server::stats_on(&conn.stream).map_err(|e| e.to_string())?;
    if server::stat(&left, "current-jobs-buried") != Some(0) {
        return Err("jobs left buried after kicking them all".into());
    }
    Ok(failed)
}

//! The YAML bodies of `stats`, `stats-tube`, `stats-job` and the tube lists.
//!
//! Keys come in beanstalkd 1.12's order, which admin tools depend on. String
//! values (hostname, os, platform, tube names) are double-quoted as in
//! beanstalkd 1.13, because 1.12's bare `os: #1 SMP ...` reads as a comment to
//! a YAML parser. Each format is one function, so key order lives in one place.

use std::fmt::Write;

use super::Op;

/// Everything `stats` reports.
#[derive(Clone, Debug, Default)]
pub struct ServerStats {
    pub urgent: u64,
    pub ready: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
    /// Counters indexed by `Op as usize`.
    pub ops: [u64; Op::COUNT],
    pub job_timeouts: u64,
    pub total_jobs: u64,
    pub max_job_size: u32,
    pub tubes: usize,
    pub connections: u64,
    pub producers: u64,
    pub workers: u64,
    pub waiting: u64,
    pub total_connections: u64,
    pub pid: u32,
    pub version: String,
    /// User and system CPU time, in microseconds.
    pub rusage_utime_us: u64,
    pub rusage_stime_us: u64,
    pub uptime_secs: u64,
    pub binlog: BinlogStats,
    pub draining: bool,
    pub instance_id: String,
    pub hostname: String,
    pub os: String,
    pub platform: String,
}

/// The binlog's part of `stats` (all zero except `max_size` without `-b`).
#[derive(Clone, Copy, Debug, Default)]
pub struct BinlogStats {
    pub oldest_index: u64,
    pub current_index: u64,
    pub records_migrated: u64,
    pub records_written: u64,
    pub max_size: u64,
}

/// Everything `stats-tube` reports.
#[derive(Clone, Debug, Default)]
pub struct TubeStats {
    pub name: String,
    pub urgent: u64,
    pub ready: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
    pub total_jobs: u64,
    pub using: u64,
    pub watching: u64,
    pub waiting: u64,
    pub deletes: u64,
    pub pauses: u64,
    pub pause_secs: u64,
    pub pause_time_left: u64,
}

/// Everything `stats-job` reports.
#[derive(Clone, Debug, Default)]
pub struct JobStats {
    pub id: u64,
    pub tube: String,
    pub state: &'static str,
    pub pri: u32,
    pub age: u64,
    pub delay: u64,
    pub ttr: u64,
    pub time_left: u64,
    pub file: u64,
    pub reserves: u32,
    pub timeouts: u32,
    pub releases: u32,
    pub buries: u32,
    pub kicks: u32,
}

/// A YAML double-quoted scalar.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn server_stats(s: &ServerStats) -> Vec<u8> {
    let mut y = String::with_capacity(1024);
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(y, "{k}: {v}");
    };
    kv("current-jobs-urgent", &s.urgent);
    kv("current-jobs-ready", &s.ready);
    kv("current-jobs-reserved", &s.reserved);
    kv("current-jobs-delayed", &s.delayed);
    kv("current-jobs-buried", &s.buried);
    for (op, key) in Op::REPORTED {
        kv(key, &s.ops[op as usize]);
    }
    kv("job-timeouts", &s.job_timeouts);
    kv("total-jobs", &s.total_jobs);
    kv("max-job-size", &s.max_job_size);
    kv("current-tubes", &s.tubes);
    kv("current-connections", &s.connections);
    kv("current-producers", &s.producers);
    kv("current-workers", &s.workers);
    kv("current-waiting", &s.waiting);
    kv("total-connections", &s.total_connections);
    kv("pid", &s.pid);
    kv("version", &quoted(&s.version));
    kv("rusage-utime", &seconds_micros(s.rusage_utime_us));
    kv("rusage-stime", &seconds_micros(s.rusage_stime_us));
    kv("uptime", &s.uptime_secs);
    kv("binlog-oldest-index", &s.binlog.oldest_index);
    kv("binlog-current-index", &s.binlog.current_index);
    kv("binlog-records-migrated", &s.binlog.records_migrated);
    kv("binlog-records-written", &s.binlog.records_written);
    kv("binlog-max-size", &s.binlog.max_size);
    kv("draining", &s.draining);
    kv("id", &s.instance_id);
    kv("hostname", &quoted(&s.hostname));
    kv("os", &quoted(&s.os));
    kv("platform", &quoted(&s.platform));
    document(y)
}

pub fn tube_stats(t: &TubeStats) -> Vec<u8> {
    let mut y = String::with_capacity(512);
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(y, "{k}: {v}");
    };
    kv("name", &quoted(&t.name));
    kv("current-jobs-urgent", &t.urgent);
    kv("current-jobs-ready", &t.ready);
    kv("current-jobs-reserved", &t.reserved);
    kv("current-jobs-delayed", &t.delayed);
    kv("current-jobs-buried", &t.buried);
    kv("total-jobs", &t.total_jobs);
    kv("current-using", &t.using);
    kv("current-watching", &t.watching);
    kv("current-waiting", &t.waiting);
    kv("cmd-delete", &t.deletes);
    kv("cmd-pause-tube", &t.pauses);
    kv("pause", &t.pause_secs);
    kv("pause-time-left", &t.pause_time_left);
    document(y)
}

pub fn job_stats(j: &JobStats) -> Vec<u8> {
    let mut y = String::with_capacity(256);
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(y, "{k}: {v}");
    };
    kv("id", &j.id);
    kv("tube", &quoted(&j.tube));
    kv("state", &j.state);
    kv("pri", &j.pri);
    kv("age", &j.age);
    kv("delay", &j.delay);
    kv("ttr", &j.ttr);
    kv("time-left", &j.time_left);
    kv("file", &j.file);
    kv("reserves", &j.reserves);
    kv("timeouts", &j.timeouts);
    kv("releases", &j.releases);
    kv("buries", &j.buries);
    kv("kicks", &j.kicks);
    document(y)
}

/// `list-tubes` and `list-tubes-watched`: names are bare, as in 1.12 and
/// 1.13 (every tube-name character is plain in YAML).
pub fn tube_list<'a>(names: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut y = String::new();
    for name in names {
        let _ = writeln!(y, "- {name}");
    }
    document(y)
}

fn document(body: String) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(b"---\n");
    out.extend_from_slice(body.as_bytes());
    out
}

fn seconds_micros(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list() {
        assert_eq!(tube_list(["default", "a"].into_iter()), b"---\n- default\n- a\n");
    }

    #[test]
    fn server_stats_key_order() {
        let text = String::from_utf8(server_stats(&ServerStats::default())).unwrap();
        let keys: Vec<&str> = text.lines().skip(1).map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(keys.len(), 51);
        assert_eq!(
            &keys[..6],
            [
                "current-jobs-urgent",
                "current-jobs-ready",
                "current-jobs-reserved",
                "current-jobs-delayed",
                "current-jobs-buried",
                "cmd-put"
            ]
        );
        assert_eq!(&keys[45..], ["binlog-max-size", "draining", "id", "hostname", "os", "platform"]);
        assert!(text.contains("\nrusage-utime: 0.000000\n"));
        assert!(text.contains("\nos: \"\"\n"));
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quoted("#1 SMP \"x\""), "\"#1 SMP \\\"x\\\"\"");
    }
}

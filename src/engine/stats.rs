//! Turning the engine's state into the `stats*` documents.

use super::Engine;
use super::ids::{JobId, TubeId};
use super::job::{Job, JobState};
use super::journal::Journal;
use super::time::{Nanos, SECOND};
use super::tubes::Tube;
use crate::protocol::yaml::{self, BinlogStats, JobStats, ServerStats, TubeStats};

impl<J: Journal> Engine<J> {
    pub(super) fn server_stats(&self, now: Nanos) -> Vec<u8> {
        yaml::server_stats(&self.server_figures(now))
    }

    /// Every figure `stats` reports (metrics report them too).
    pub(super) fn server_figures(&self, now: Nanos) -> ServerStats {
        let c = &self.counts;
        let host = &self.config.host;
        let (utime, stime) = (host.rusage)();
        ServerStats {
            urgent: c.urgent,
            ready: c.ready,
            reserved: c.reserved,
            delayed: c.delayed,
            buried: c.buried,
            ops: c.ops,
            job_timeouts: c.job_timeouts,
            total_jobs: c.total_jobs,
            max_job_size: self.config.max_job_size,
            tubes: self.tubes.len(),
            connections: c.connections,
            producers: c.producers,
            workers: c.workers,
            waiting: c.waiting,
            total_connections: c.total_connections,
            pid: host.pid,
            version: host.version.clone(),
            rusage_utime_us: utime,
            rusage_stime_us: stime,
            uptime_secs: (now - self.started_at) / SECOND,
            binlog: {
                let j = self.journal.stats();
                BinlogStats {
                    oldest_index: j.oldest_index,
                    current_index: j.current_index,
                    records_migrated: j.records_migrated,
                    records_written: j.records_written,
                    max_size: self.config.binlog_max_size,
                }
            },
            draining: self.draining,
            instance_id: host.instance_id.clone(),
            hostname: host.hostname.clone(),
            os: host.os.clone(),
            platform: host.platform.clone(),
        }
    }

    pub(super) fn tube_stats(&self, now: Nanos, id: TubeId) -> Vec<u8> {
        yaml::tube_stats(&tube_figures(&self.tubes[id], now))
    }

    pub(super) fn job_stats(&self, now: Nanos, id: JobId, job: &Job) -> Vec<u8> {
        let extras = self.extras.get(id);
        let time_left = match job.state() {
            JobState::Reserved | JobState::Delayed => extras.deadline.saturating_sub(now) / SECOND,
            _ => 0,
        };
        let counts = extras.counts;
        yaml::job_stats(&JobStats {
            id,
            tube: self.tubes[job.tube()].name.to_string(),
            state: job.state().name(),
            pri: job.pri,
            age: now.saturating_sub(job.created_at) / SECOND,
            delay: extras.delay_secs.into(),
            ttr: self.long_ttrs.secs(id, job.ttr).into(),
            time_left,
            file: self.journal.job_file(job),
            reserves: counts.reserves,
            timeouts: counts.timeouts,
            releases: counts.releases,
            buries: counts.buries,
            kicks: counts.kicks,
        })
    }
}

/// What `stats-tube` reports about a tube (metrics report it too).
pub(super) fn tube_figures(t: &Tube, now: Nanos) -> TubeStats {
    TubeStats {
        name: t.name.to_string(),
        urgent: t.urgent,
        ready: t.ready.len() as u64,
        reserved: t.reserved,
        delayed: t.delayed.len() as u64,
        buried: t.buried.len() as u64,
        total_jobs: t.total_jobs,
        using: t.using,
        watching: t.watching,
        waiting: t.waiters.len() as u64,
        deletes: t.deletes,
        pauses: t.pauses,
        pause_secs: t.pause.map_or(0, |p| p.duration / SECOND),
        pause_time_left: t.pause.map_or(0, |p| p.until.saturating_sub(now) / SECOND),
    }
}

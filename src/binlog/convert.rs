//! The engine's jobs as records, and records as jobs to restore.

use super::record::{FullJob, JobToWrite, JobUpdate, LoggedState};
use crate::engine::{BodyRef, JobCounts, JobState, JobView, JournalTag, RestoredChange, RestoredJob};

fn logged_state(state: JobState) -> LoggedState {
    match state {
        JobState::Ready => LoggedState::Ready,
        JobState::Reserved => LoggedState::Reserved,
        JobState::Delayed => LoggedState::Delayed,
        JobState::Buried => LoggedState::Buried,
    }
}

pub(super) fn job_update(view: JobView) -> JobUpdate {
    let (job, extras, c) = (view.job, view.extras, view.extras.counts);
    JobUpdate {
        id: view.id,
        pri: job.pri,
        state: logged_state(job.state()),
        delay: extras.delay(),
        // For delayed jobs when they become ready; for buried ones when they
        // were buried (so they come back in that order).
        ready_at: match job.state() {
            JobState::Delayed | JobState::Buried => extras.deadline as i64,
            _ => 0,
        },
        reserves: c.reserves,
        timeouts: c.timeouts,
        releases: c.releases,
        buries: c.buries,
        kicks: c.kicks,
    }
}

/// The job's full record, as the writer takes it: made where it is
/// encoded (a put, a migration), from the engine's own fields.
#[inline(always)]
pub(super) fn full_job(view: JobView<'_>) -> JobToWrite<'_> {
    JobToWrite {
        update: job_update(view),
        tube: view.tube,
        ttr: view.ttr,
        created_at: view.job.created_at as i64,
        body: view.body,
    }
}

pub(super) fn restored_job(job: FullJob<BodyRef>, journal_tag: JournalTag) -> RestoredJob {
    RestoredJob {
        id: job.update.id,
        tube: job.tube,
        change: restored_change(job.update),
        ttr: job.ttr,
        created_at: job.created_at.max(0) as u64,
        body: job.body,
        journal_tag,
    }
}

/// What a job's record says of its state, as the engine restores it.
pub(super) fn restored_change(u: JobUpdate) -> RestoredChange {
    RestoredChange {
        pri: u.pri,
        state: match u.state {
            LoggedState::Delayed => JobState::Delayed,
            LoggedState::Buried => JobState::Buried,
            // A reserved job's worker is gone: it is ready again.
            LoggedState::Ready | LoggedState::Reserved => JobState::Ready,
        },
        delay: u.delay,
        ready_at: u.ready_at.max(0) as u64,
        counts: JobCounts {
            reserves: u.reserves,
            timeouts: u.timeouts,
            releases: u.releases,
            buries: u.buries,
            kicks: u.kicks,
        },
    }
}

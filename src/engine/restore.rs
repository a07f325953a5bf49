//! Startup: the jobs the write-ahead log recovered go back into a fresh
//! engine, in the states they were logged in, and job ids resume past them.

use std::collections::HashMap;

use super::Engine;
use super::bodies::{Bodies, BodyRef};
use super::extras::{JobCounts, JobExtras};
use super::ids::{JobId, TubeId};
use super::job::{Job, JobState, JournalTag, Place};
use super::journal::Journal;
use super::time::{Nanos, whole_secs};
use super::ttr::RecordTtr;
use crate::protocol::TubeName;

/// While restoring, the list of recovered jobs gives memory back each time
/// this many were taken from it.
const SHRINK_EVERY: usize = 1 << 16;

/// A job read back from the write-ahead log at startup.
#[derive(Clone, Debug)]
pub struct RestoredJob {
    /// The job's id, kept across the restart.
    pub id: JobId,
    /// Its tube, created if no other job brought it back first.
    pub tube: TubeName,
    /// Its priority.
    pub pri: u32,
    /// The delay last given to it (whole seconds).
    pub delay: Nanos,
    /// Its time to run (whole seconds; 0 comes back as one second).
    pub ttr: Nanos,
    /// When it was first put.
    pub created_at: Nanos,
    /// Ready, delayed or buried (reserved jobs come back ready).
    pub state: JobState,
    /// For a delayed job, when it becomes ready.
    pub ready_at: Nanos,
    /// Its `stats-job` counters.
    pub counts: JobCounts,
    /// Where the body is, in the store given to [`Engine::restore_all`].
    pub body: BodyRef,
    /// Where the journal keeps it.
    pub journal_tag: JournalTag,
}

/// Restored jobs to place in bulk once every job is in the table.
#[derive(Default)]
struct ToPlace {
    /// (tube, priority, id), for `place_ready_all`.
    ready: Vec<(TubeId, u32, JobId)>,
    /// For `place_delayed_all`.
    delayed: DelayedByTube,
}

/// Delayed jobs grouped by tube: each tube's (deadline, id) in the order
/// they were restored, ready to be collected into its set in place.
#[derive(Default)]
struct DelayedByTube {
    lists: Vec<(TubeId, Vec<(Nanos, JobId)>)>,
    /// Where each tube's list is in `lists`.
    at: HashMap<TubeId, usize>,
    /// The list pushed to last: jobs come in runs of one tube.
    last: usize,
}

impl DelayedByTube {
    fn push(&mut self, tube: TubeId, deadline: Nanos, id: JobId) {
        if self.lists.get(self.last).is_none_or(|&(last, _)| last != tube) {
            let lists = &mut self.lists;
            self.last = *self.at.entry(tube).or_insert_with(|| {
                lists.push((tube, Vec::new()));
                lists.len() - 1
            });
        }
        self.lists[self.last].1.push((deadline, id));
    }
}

impl<J: Journal> Engine<J> {
    /// Restores a job, except that a job that comes back ready or delayed
    /// is only marked so, and listed in `to_place`.
    fn restore_into(&mut self, now: Nanos, restored: RestoredJob, tube: TubeId, to_place: &mut ToPlace) {
        let id = restored.id;
        // A delay that ended while the server was down ends now: ready.
        let delayed_until =
            (restored.state == JobState::Delayed && restored.ready_at > now).then_some(restored.ready_at);
        let ttr_secs = whole_secs(restored.ttr).max(1);
        let job = Job {
            pri: restored.pri,
            ttr: RecordTtr::of(ttr_secs),
            body: restored.body,
            created_at: restored.created_at,
            place: Place::new(tube, if delayed_until.is_some() { JobState::Delayed } else { JobState::Ready }),
            journal_tag: restored.journal_tag,
        };
        self.jobs.insert(id, job);
        self.long_ttrs.keep(id, ttr_secs);
        let deadline = delayed_until.unwrap_or(0);
        let extras = JobExtras { counts: restored.counts, delay_secs: whole_secs(restored.delay), deadline, holder: 0 };
        self.extras.set(id, extras);
        self.next_job_id = self.next_job_id.max(id + 1);
        match (restored.state, delayed_until) {
            (JobState::Buried, _) => self.place_buried(id, restored.ready_at),
            (_, Some(deadline)) => to_place.delayed.push(tube, deadline, id),
            (_, None) => to_place.ready.push((tube, restored.pri, id)),
        }
    }

    /// Puts the jobs recovered from the log back in their states, with the
    /// store holding their bodies. Buried jobs must come in the order they
    /// were buried. Only for a fresh engine, before any job was put.
    pub fn restore_all(&mut self, now: Nanos, bodies: Bodies, mut jobs: Vec<RestoredJob>) {
        assert!(self.counts.total_jobs == 0 && self.jobs.is_empty(), "restore into a fresh engine only");
        self.replies.detach(&self.bodies);
        self.bodies = bodies;
        self.jobs.reserve(jobs.len());
        let mut last_tube: Option<(TubeName, TubeId)> = None;
        let mut to_place = ToPlace::default();
        // Taken from the back, the list shrinking as the job table grows, so
        // that a restart needs little more memory than the jobs themselves.
        jobs.reverse();
        while let Some(job) = jobs.pop() {
            if jobs.len().is_multiple_of(SHRINK_EVERY) {
                jobs.shrink_to_fit();
            }
            // Jobs mostly come in runs of one tube: skip the name lookup.
            let tube = match &last_tube {
                Some((name, id)) if *name == job.tube => *id,
                _ => {
                    let id = self.tube_named(&job.tube);
                    last_tube = Some((job.tube.clone(), id));
                    id
                }
            };
            self.restore_into(now, job, tube, &mut to_place);
        }
        self.place_ready_all(now, to_place.ready);
        self.place_delayed_all(to_place.delayed.lists);
    }

    /// Ids handed out from now on are at least `next`.
    pub fn raise_next_job_id(&mut self, next: JobId) {
        self.next_job_id = self.next_job_id.max(next);
    }

    /// The id the next put will get.
    pub fn next_job_id(&self) -> JobId {
        self.next_job_id
    }
}

//! Startup: the jobs the write-ahead log recovered go back into a fresh
//! engine, in the states they were logged in, and job ids resume past them.
//!
//! The log is replayed into a [`Restoration`] record by record, as it is
//! read (a later record changes or deletes what an earlier one restored),
//! straight into the tables the engine will keep: no list of recovered
//! jobs is made beside them, which cost a restart about a hundred bytes a
//! job of fresh memory and two passes. [`Engine::restore_all`] then adopts
//! those tables whole and puts each job in its state's home, in bulk.

use std::collections::HashMap;

use super::Engine;
use super::bodies::{Bodies, BodyRef};
use super::extras::{Extras, JobCounts, JobExtras};
use super::ids::{JobId, TubeId};
use super::job::{Job, JobState, JournalTag, Place};
use super::journal::Journal;
use super::time::{Nanos, whole_secs};
use super::ttr::{LongTtrs, RecordTtr};
use crate::idindex::IdIndex;
use crate::protocol::TubeName;

/// A job read back from the write-ahead log at startup, as its full record
/// left it.
#[derive(Clone, Debug)]
pub struct RestoredJob {
    /// The job's id, kept across the restart.
    pub id: JobId,
    /// Its tube, created if no other job brought it back first.
    pub tube: TubeName,
    /// Its priority, state, delay, deadline and counters.
    pub change: RestoredChange,
    /// Its time to run (whole seconds; 0 comes back as one second).
    pub ttr: Nanos,
    /// When it was first put.
    pub created_at: Nanos,
    /// Where the body is: in the restoration's store
    /// ([`Restoration::store_body`]).
    pub body: BodyRef,
    /// Where the journal keeps it.
    pub journal_tag: JournalTag,
}

/// What a later record of the log may change about a restored job.
#[derive(Clone, Copy, Debug)]
pub struct RestoredChange {
    /// Its priority.
    pub pri: u32,
    /// Ready, delayed or buried (reserved jobs come back ready).
    pub state: JobState,
    /// The delay last given to it (whole seconds).
    pub delay: Nanos,
    /// For a delayed job, when it becomes ready; for a buried one, when it
    /// was buried (buried jobs come back in that order). Otherwise unused.
    pub ready_at: Nanos,
    /// Its `stats-job` counters.
    pub counts: JobCounts,
}

/// What became of a job a later record replaced or deleted: what the
/// journal counted for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone {
    /// Where the journal kept it.
    pub journal_tag: JournalTag,
    /// Its body's length.
    pub body_len: usize,
}

/// The jobs of a restart while the log is read: the job table, extras and
/// body store the engine will adopt ([`Engine::restore_all`]). Each job is
/// marked with the state it was logged in, in no queue yet: placing jobs
/// one at a time, before a later record may change them, would cost more
/// than placing them all at once.
#[derive(Debug, Default)]
pub struct Restoration {
    /// A job's tube here is its index in `tubes`, until adopted.
    jobs: IdIndex<Job>,
    long_ttrs: LongTtrs,
    extras: Extras,
    bodies: Bodies,
    /// The tubes named so far, in the order the log first named them, with
    /// how many of the restored jobs each holds.
    tubes: Vec<(TubeName, u64)>,
    /// Where each name is in `tubes`.
    tube_index: HashMap<TubeName, u32>,
    /// The index of the tube named last: jobs come in long runs of one
    /// tube, and its name is then a pointer comparison away.
    last_tube: u32,
}

impl Restoration {
    /// A restoration whose jobs' bodies are already in `bodies`.
    pub fn with_bodies(bodies: Bodies) -> Restoration {
        Restoration { bodies, ..Restoration::default() }
    }

    /// Keeps a body for a job about to be restored.
    pub fn store_body(&mut self, body: &[u8]) -> BodyRef {
        self.bodies.insert(body)
    }

    /// Restores a job, or replaces it if it was restored already (its full
    /// record written again further on, by compaction): then says what the
    /// journal counted for the replaced one.
    pub fn restore(&mut self, restored: RestoredJob) -> Option<Gone> {
        let tube = self.tube_index(&restored.tube);
        let change = restored.change;
        let ttr_secs = whole_secs(restored.ttr).max(1);
        let job = Job {
            pri: change.pri,
            ttr: RecordTtr::of(ttr_secs),
            body: restored.body,
            created_at: restored.created_at,
            place: Place::new(TubeId::from_slot(tube as usize), change.state),
            journal_tag: restored.journal_tag,
        };
        self.tubes[tube as usize].1 += 1;
        let id = restored.id;
        let gone = match self.jobs.get_mut(id) {
            Some(old) => Some(std::mem::replace(old, job)),
            None => {
                self.jobs.insert(id, job);
                None
            }
        };
        let gone = gone.map(|old| self.let_go(id, old));
        self.long_ttrs.keep(id, ttr_secs);
        // A fresh job with no extras, the usual one, costs no look-up.
        let extras = extras_of(change);
        if extras != JobExtras::default() {
            self.extras.set(id, extras);
        } else if gone.is_some() {
            self.extras.forget(id);
        }
        gone
    }

    /// Changes a restored job as a later record says; false if no job of
    /// that id was restored (or it was deleted since).
    pub fn change(&mut self, id: JobId, change: RestoredChange) -> bool {
        let Some(job) = self.jobs.get_mut(id) else { return false };
        job.pri = change.pri;
        job.set_state(change.state);
        let extras = extras_of(change);
        if extras != JobExtras::default() {
            self.extras.set(id, extras);
        } else {
            self.extras.forget(id);
        }
        true
    }

    /// Deletes a restored job, if it is there, and says what the journal
    /// counted for it.
    pub fn delete(&mut self, id: JobId) -> Option<Gone> {
        let job = self.jobs.remove(id)?;
        self.extras.forget(id);
        Some(self.let_go(id, job))
    }

    /// Whether a job of that id is restored.
    pub fn contains(&self, id: JobId) -> bool {
        self.jobs.contains(id)
    }

    /// How many jobs are restored.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job is restored.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The restored jobs, in id order: a copy, for tests and tools to look
    /// at what a restart would bring back.
    pub fn jobs(&self) -> Vec<RestoredJob> {
        let mut ids: Vec<JobId> = self.jobs.ids().collect();
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| {
                let job = &self.jobs[id];
                let extras = self.extras.get(id);
                let state = job.state();
                let ready_at = if state == JobState::Ready { 0 } else { extras.deadline };
                RestoredJob {
                    id,
                    tube: self.tubes[job.tube().slot()].0.clone(),
                    change: RestoredChange {
                        pri: job.pri,
                        state,
                        delay: extras.delay(),
                        ready_at,
                        counts: extras.counts,
                    },
                    ttr: self.long_ttrs.get(id, job.ttr),
                    created_at: job.created_at,
                    body: job.body,
                    journal_tag: job.journal_tag,
                }
            })
            .collect()
    }

    /// A restored job's body.
    pub fn body(&self, body: BodyRef) -> &[u8] {
        self.bodies.get(body)
    }

    /// The index in `tubes` of the tube of that name, added if new.
    fn tube_index(&mut self, name: &TubeName) -> u32 {
        if self.tubes.get(self.last_tube as usize).is_some_and(|(last, _)| last == name) {
            return self.last_tube;
        }
        let tubes = &mut self.tubes;
        let index = *self.tube_index.entry(name.clone()).or_insert_with(|| {
            tubes.push((name.clone(), 0));
            (tubes.len() - 1) as u32
        });
        self.last_tube = index;
        index
    }

    /// Frees what a replaced or deleted job held.
    fn let_go(&mut self, id: JobId, job: Job) -> Gone {
        self.tubes[job.tube().slot()].1 -= 1;
        self.long_ttrs.forget(id, job.ttr);
        let body_len = job.body.len();
        self.bodies.remove(job.body);
        Gone { journal_tag: job.journal_tag, body_len }
    }
}

/// The extras a restored job starts with: its deadline is the time it
/// becomes ready if delayed, its burial time if buried.
fn extras_of(change: RestoredChange) -> JobExtras {
    let deadline = match change.state {
        JobState::Delayed | JobState::Buried => change.ready_at,
        JobState::Ready | JobState::Reserved => 0,
    };
    JobExtras { counts: change.counts, delay_secs: whole_secs(change.delay), deadline, holder: 0 }
}

/// Restored jobs to place in bulk once every job is in the table.
#[derive(Default)]
struct ToPlace {
    /// (tube, priority, id), for `place_ready_all`.
    ready: Vec<(TubeId, u32, JobId)>,
    /// For `place_delayed_all`.
    delayed: DelayedByTube,
    /// (burial time, id), placed in that order.
    buried: Vec<(Nanos, JobId)>,
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
    /// Takes over the restored jobs, with the store holding their bodies,
    /// and puts them back in their states: a delay that ended while the
    /// server was down ends now, and buried jobs return in the order they
    /// were buried. Their tubes are made in the order the log first named
    /// them. Only for a fresh engine, before any job was put.
    pub fn restore_all(&mut self, now: Nanos, restoration: Restoration) {
        assert!(self.counts.total_jobs == 0 && self.jobs.is_empty(), "restore into a fresh engine only");
        let Restoration { mut jobs, long_ttrs, extras, bodies, tubes, .. } = restoration;
        self.replies.detach(&self.bodies);
        self.bodies = bodies;
        self.extras = extras;
        self.long_ttrs = long_ttrs;
        // A tube whose jobs were all deleted is not made; no job names it.
        let default = self.tubes.default_tube();
        let tube_ids: Vec<TubeId> =
            tubes.iter().map(|(name, held)| if *held > 0 { self.tube_named(name) } else { default }).collect();
        let mut to_place = ToPlace::default();
        let mut next_job_id = self.next_job_id;
        for (id, job) in jobs.iter_mut() {
            let tube = tube_ids[job.tube().slot()];
            job.place = Place::new(tube, job.state());
            next_job_id = next_job_id.max(id + 1);
            match job.state() {
                JobState::Buried => to_place.buried.push((self.extras.get(id).deadline, id)),
                JobState::Delayed => {
                    let deadline = self.extras.get(id).deadline;
                    if deadline > now {
                        to_place.delayed.push(tube, deadline, id);
                    } else {
                        job.set_state(JobState::Ready);
                        let mut extras = self.extras.get(id);
                        extras.deadline = 0;
                        if extras == JobExtras::default() {
                            self.extras.forget(id);
                        } else {
                            self.extras.set(id, extras);
                        }
                        to_place.ready.push((tube, job.pri, id));
                    }
                }
                JobState::Ready | JobState::Reserved => to_place.ready.push((tube, job.pri, id)),
            }
        }
        self.jobs = jobs;
        self.next_job_id = next_job_id;
        to_place.buried.sort_unstable();
        for (buried_at, id) in to_place.buried {
            self.place_buried(id, buried_at);
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

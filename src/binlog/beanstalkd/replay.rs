//! beanstalkd's recovery rules (`file.c` `readrec`, `prot.c` `prot_replay`)
//! over a directory's files, oldest first, to the jobs it held.
//!
//! The rules, record by record:
//! - A full record for an id not seen yet makes a job of every field, tube
//!   and body included; for a known id (compaction wrote the job again) it
//!   replaces every field and the body.
//! - A short record for an unknown id is ignored: the job's full record was
//!   in a file since deleted, so the job was deleted or written again
//!   later. For a known id it replaces every `Jobrec` field; tube and body
//!   stay.
//! - State deleted: the job is gone. Reserved: the job comes back ready (its
//!   worker is gone). Delayed: it keeps its wall-clock deadline.
//!
//! sprout departs from beanstalkd where beanstalkd loses or changes jobs:
//! - No size limit. beanstalkd drops a job whose body (with CRLF) exceeds
//!   `-z` at replay, and the rest of that file with it (so a 65,534-byte job
//!   accepted under the default `-z` is lost, and every record after it).
//! - Buried jobs come back in burial order, counters as logged. beanstalkd
//!   restores them in the order they first appear in the files and adds one
//!   to every buried job's `bury_ct` at each restart (its #668).
//! - Ids are never reused: the next id is past every id any record names,
//!   deleted jobs' too (beanstalkd only counts the jobs it restores).

use std::collections::{HashMap, HashSet};

use super::layout::State;
use super::read::{FileRead, Record};
use crate::engine::{Bodies, BodyRef, JobCounts};
use crate::protocol::TubeName;

/// A job as the files leave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedJob {
    /// Its id, kept.
    pub id: u64,
    /// Its tube.
    pub tube: TubeName,
    /// Its priority.
    pub pri: u32,
    /// The delay last given by put or release.
    pub delay_ns: u64,
    /// Its time to run.
    pub ttr_ns: u64,
    /// When it was put, wall-clock nanoseconds since the epoch.
    pub created_at_ns: i64,
    /// Ready, delayed or buried.
    pub state: ImportedState,
    /// The last record said reserved (it comes back ready: its worker is
    /// gone).
    pub reserved: bool,
    /// Its counters, as logged.
    pub counts: JobCounts,
    /// Its body (without CRLF), in [`Imported::bodies`].
    pub body: BodyRef,
}

/// The state a job comes back in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportedState {
    /// Ready (or reserved when logged: its worker is gone).
    Ready,
    /// Delayed until then.
    Delayed {
        /// When it becomes ready, wall-clock nanoseconds since the epoch
        /// (it may have passed while no server ran).
        ready_at_ns: i64,
    },
    /// Buried.
    Buried {
        /// Its place in burial order: higher was buried later. Ranks are
        /// distinct and follow the position (file, offset) of the record
        /// that buried the job.
        rank: u64,
    },
}

/// What the import found, for the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Records applied.
    pub records: u64,
    /// Live jobs that come back ready (those logged reserved included).
    pub ready: u64,
    /// Live jobs that come back delayed.
    pub delayed: u64,
    /// Live jobs that come back buried.
    pub buried: u64,
    /// Of the ready ones, jobs logged reserved.
    pub reserved_made_ready: u64,
    /// Jobs a deleted-state record removed.
    pub deleted_seen: u64,
    /// Short records ignored: their job's full record was in a file since
    /// deleted.
    pub short_records_ignored: u64,
    /// Full records for a job already seen (compaction's rewrites).
    pub full_records_rewritten: u64,
}

/// The live jobs of a beanstalkd directory.
#[derive(Debug)]
pub struct Imported {
    /// Ready and delayed jobs in id order, then buried jobs in burial order.
    pub jobs: Vec<ImportedJob>,
    /// Their bodies.
    pub bodies: Bodies,
    /// 1 + the highest id any record names, deleted jobs' and ignored
    /// records' included (1 with no records; saturates at `u64::MAX`).
    pub next_id: u64,
    /// What the import found.
    pub counts: ImportCounts,
}

/// beanstalkd's files replayed one after another into live jobs.
#[derive(Debug)]
pub struct Replay {
    /// Live jobs, with holes where jobs were deleted (reused by `free`).
    jobs: Vec<Option<ImportedJob>>,
    free: Vec<u32>,
    /// Job id to its place in `jobs`. Not the engine's `IdIndex`: ids here
    /// are untrusted, and its window arithmetic overflows near `u64::MAX`;
    /// SipHash keeps chosen ids from colliding, too.
    slots: HashMap<u64, u32>,
    bodies: Bodies,
    /// One shared copy of each tube's name.
    tubes: HashSet<TubeName>,
    next_id: u64,
    /// Records applied so far: the position that ranks burials.
    position: u64,
    last_seq: Option<u64>,
    counts: ImportCounts,
}

impl Default for Replay {
    fn default() -> Replay {
        Replay::new()
    }
}

impl Replay {
    /// No files replayed yet.
    pub fn new() -> Replay {
        Replay {
            jobs: Vec::new(),
            free: Vec::new(),
            slots: HashMap::new(),
            bodies: Bodies::default(),
            tubes: HashSet::new(),
            next_id: 1,
            position: 0,
            last_seq: None,
            counts: ImportCounts::default(),
        }
    }

    /// Applies a file's records, in file order. Files must come oldest
    /// first (`seq` is N of `binlog.N`, and must grow from call to call):
    /// burial order is the order of the records. Bodies are copied, so the
    /// file's bytes may go once this returns. How the file ended is the
    /// caller's to judge: only its valid records are applied.
    pub fn apply(&mut self, seq: u64, file: &FileRead<'_>) {
        debug_assert!(self.last_seq.is_none_or(|last| last < seq), "file {seq} after file {:?}", self.last_seq);
        self.last_seq = Some(seq);
        for record in &file.records {
            self.apply_record(record);
        }
    }

    fn apply_record(&mut self, record: &Record<'_>) {
        self.counts.records += 1;
        self.position += 1;
        self.next_id = self.next_id.max(record.id.saturating_add(1));
        let slot = self.slots.get(&record.id).copied();
        if record.state == State::Deleted {
            if let Some(slot) = slot {
                self.remove(record.id, slot);
                self.counts.deleted_seen += 1;
            } else if !record.is_full() {
                self.counts.short_records_ignored += 1;
            }
            return;
        }
        let old = slot.and_then(|slot| self.jobs[slot as usize].as_ref());
        let old_rank = old.and_then(|live| match live.state {
            ImportedState::Buried { rank } => Some(rank),
            _ => None,
        });
        let state = match record.state {
            // (Deleted was dealt with above.)
            State::Ready | State::Reserved | State::Deleted => ImportedState::Ready,
            State::Delayed => ImportedState::Delayed { ready_at_ns: record.deadline_at_ns },
            // Kept buried (by a compaction's rewrite, say): it keeps the
            // rank of its burial.
            State::Buried => ImportedState::Buried { rank: old_rank.unwrap_or(self.position) },
        };
        let (tube, body) = match (&record.tube, old) {
            (Some(tube), _) => (self.intern(tube), self.bodies.insert(record.body.unwrap_or_default())),
            (None, Some(old)) => (old.tube.clone(), old.body),
            (None, None) => {
                self.counts.short_records_ignored += 1;
                return;
            }
        };
        let live = imported(record, tube, state, body);
        match slot {
            Some(slot) => {
                let replaced = self.jobs[slot as usize].replace(live);
                if record.is_full() {
                    if let Some(replaced) = replaced {
                        self.bodies.remove(replaced.body);
                    }
                    self.counts.full_records_rewritten += 1;
                }
            }
            None => self.insert(live),
        }
    }

    fn insert(&mut self, live: ImportedJob) {
        let id = live.id;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.jobs[slot as usize] = Some(live);
                slot
            }
            None => {
                self.jobs.push(Some(live));
                u32::try_from(self.jobs.len() - 1).expect("fewer than 2^32 jobs")
            }
        };
        self.slots.insert(id, slot);
    }

    fn remove(&mut self, id: u64, slot: u32) {
        self.slots.remove(&id);
        if let Some(gone) = self.jobs[slot as usize].take() {
            self.bodies.remove(gone.body);
        }
        self.free.push(slot);
    }

    /// The shared copy of a tube's name.
    fn intern(&mut self, tube: &TubeName) -> TubeName {
        match self.tubes.get(tube) {
            Some(shared) => shared.clone(),
            None => {
                self.tubes.insert(tube.clone());
                tube.clone()
            }
        }
    }

    /// The live jobs: ready and delayed in id order, then buried in burial
    /// order.
    pub fn finish(self) -> Imported {
        let mut counts = self.counts;
        drop(self.slots);
        // In place, into the memory of the list with holes (an `Option` of
        // a job is the size of a job): a second list of a million jobs
        // would be the import's peak.
        let mut jobs = self.jobs;
        jobs.retain(Option::is_some);
        let mut jobs: Vec<ImportedJob> = jobs.into_iter().map(|live| live.expect("kept above")).collect();
        for live in &jobs {
            match live.state {
                ImportedState::Ready => counts.ready += 1,
                ImportedState::Delayed { .. } => counts.delayed += 1,
                ImportedState::Buried { .. } => counts.buried += 1,
            }
            counts.reserved_made_ready += u64::from(live.reserved);
        }
        jobs.sort_unstable_by_key(|job| match job.state {
            ImportedState::Buried { rank } => (1, rank),
            _ => (0, job.id),
        });
        Imported { jobs, bodies: self.bodies, next_id: self.next_id, counts }
    }
}

fn imported(record: &Record<'_>, tube: TubeName, state: ImportedState, body: BodyRef) -> ImportedJob {
    ImportedJob {
        id: record.id,
        tube,
        pri: record.pri,
        // Never negative from `read_file`; a hand-made record's negative
        // duration counts as none.
        delay_ns: u64::try_from(record.delay_ns).unwrap_or(0),
        ttr_ns: u64::try_from(record.ttr_ns).unwrap_or(0),
        created_at_ns: record.created_at_ns,
        state,
        reserved: record.state == State::Reserved,
        counts: record.counts,
        body,
    }
}

//! Tubes: each one's queues, and the registry that creates tubes on first
//! use, drops them when nothing refers to them any more, and keeps the index
//! of their best ready jobs ([`Heads`]).

use std::collections::{BTreeSet, HashMap};

use super::buried::BuriedJobs;

use slab::Slab;

use super::heads::Heads;
use super::ids::{JobId, TubeId};
use super::ready::{ReadyKey, ReadyQueue};
use super::time::Nanos;
use super::waiters::TubeWaiters;
use crate::protocol::TubeName;

/// Jobs with a priority below this count as urgent.
pub const URGENT_PRIORITY: u32 = 1024;

/// A tube's ready jobs, by (priority, id). Read-only outside this module:
/// they change through [`Tubes::insert_ready`] and [`Tubes::remove_ready`],
/// which keep the heads index, so a change that would bypass the index does
/// not compile.
#[derive(Debug, Default)]
pub struct ReadyJobs(ReadyQueue);

impl std::ops::Deref for ReadyJobs {
    type Target = ReadyQueue;
    fn deref(&self) -> &ReadyQueue {
        &self.0
    }
}

/// A paused tube's pause (`pause-tube`).
#[derive(Clone, Copy, Debug)]
pub struct Pause {
    /// As asked for (`pause` in `stats-tube`).
    pub duration: Nanos,
    /// When it ends; a timer resumes the tube then.
    pub until: Nanos,
}

/// One tube: its jobs by state, its waiters, and what `stats-tube` counts.
#[derive(Debug)]
pub struct Tube {
    /// Its name, unique among live tubes.
    pub name: TubeName,
    /// Ready jobs by (priority, id): the first is the next to reserve.
    pub ready: ReadyJobs,
    /// Delayed jobs by (deadline, id).
    pub delayed: BTreeSet<(Nanos, JobId)>,
    /// Buried jobs in burial order (the order kicks take them in).
    pub buried: BuriedJobs,
    /// Connections blocked in a reserve that watch this tube.
    pub waiters: TubeWaiters,
    /// Its jobs that are reserved (they are held by their sessions).
    pub reserved: u64,
    /// Its ready jobs with a priority below [`URGENT_PRIORITY`].
    pub urgent: u64,
    /// Changed only through [`Tubes::set_pause`], which keeps the heads index.
    pub pause: Option<Pause>,
    /// Connections using this tube: each keeps it alive.
    pub using: u64,
    /// Connections watching this tube: each keeps it alive.
    pub watching: u64,
    /// Jobs ever put into it (`total-jobs`).
    pub total_jobs: u64,
    /// Its jobs deleted (`cmd-delete`).
    pub deletes: u64,
    /// Times it was paused (`cmd-pause-tube`).
    pub pauses: u64,
    /// Position in the registry's listing order.
    list_pos: usize,
}

impl Tube {
    fn new(name: TubeName, list_pos: usize) -> Tube {
        Tube {
            name,
            ready: ReadyJobs::default(),
            delayed: BTreeSet::new(),
            buried: BuriedJobs::default(),
            waiters: TubeWaiters::default(),
            reserved: 0,
            urgent: 0,
            pause: None,
            using: 0,
            watching: 0,
            total_jobs: 0,
            deletes: 0,
            pauses: 0,
            list_pos,
        }
    }

    /// Its jobs in every state: while there are any, it lives.
    pub fn job_count(&self) -> u64 {
        (self.ready.len() + self.delayed.len() + self.buried.len()) as u64 + self.reserved
    }

    /// Whether a pause holds back its ready jobs from reserves.
    pub fn is_paused(&self) -> bool {
        self.pause.is_some()
    }

    /// The best ready job, if the tube may hand one out: its head.
    pub fn reservable(&self) -> Option<ReadyKey> {
        if self.is_paused() { None } else { self.ready.first() }
    }
}

/// All live tubes. `default` always exists; any other tube lives while a
/// connection uses or watches it or a job is in it.
#[derive(Debug)]
pub struct Tubes {
    tubes: Slab<Tube>,
    by_name: HashMap<TubeName, TubeId>,
    /// Listing order for `list-tubes`: creation order, except that removing a
    /// tube moves the last one into its place, as beanstalkd does.
    order: Vec<TubeId>,
    default: TubeId,
    /// The head of every unpaused tube with ready jobs.
    heads: Heads,
}

impl Tubes {
    /// A registry holding only `default`.
    pub fn new() -> Tubes {
        let mut tubes = Tubes {
            tubes: Slab::new(),
            by_name: HashMap::new(),
            order: Vec::new(),
            default: TubeId::from_slot(0),
            heads: Heads::default(),
        };
        tubes.default = tubes.get_or_create(&TubeName::new(b"default").unwrap());
        tubes
    }

    /// `default`, which always lives.
    pub fn default_tube(&self) -> TubeId {
        self.default
    }

    /// The live tube of that name.
    pub fn find(&self, name: &TubeName) -> Option<TubeId> {
        self.by_name.get(name).copied()
    }

    /// The live tube of that name, created (last in listing order) if there
    /// is none. The caller must make something hold it, or drop it.
    pub fn get_or_create(&mut self, name: &TubeName) -> TubeId {
        if let Some(id) = self.find(name) {
            return id;
        }
        let id = TubeId::from_slot(self.tubes.insert(Tube::new(name.clone(), self.order.len())));
        self.by_name.insert(name.clone(), id);
        self.order.push(id);
        id
    }

    /// Drops the tube if nothing refers to it any more, and returns it (the
    /// caller cancels its pause's timer, if it has one).
    pub fn drop_if_unused(&mut self, id: TubeId) -> Option<Tube> {
        let tube = &self.tubes[id.slot()];
        if id == self.default || tube.using > 0 || tube.watching > 0 || tube.job_count() > 0 {
            return None;
        }
        let tube = self.tubes.remove(id.slot());
        self.by_name.remove(&tube.name);
        self.order.swap_remove(tube.list_pos);
        if let Some(&moved) = self.order.get(tube.list_pos) {
            self.tubes[moved.slot()].list_pos = tube.list_pos;
        }
        Some(tube)
    }

    /// How many tubes live (`current-tubes`).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Makes a job ready in the tube. O(log n).
    pub fn insert_ready(&mut self, id: TubeId, key: ReadyKey) {
        let tube = &mut self.tubes[id.slot()];
        let old = tube.reservable();
        tube.ready.0.insert(key);
        if !tube.is_paused() && old.is_none_or(|head| key < head) {
            self.heads.replace(id, old, Some(key));
        }
    }

    /// Makes many jobs ready in the tube at once (recovery), with one head
    /// update. O(1) a key if the keys come sorted and after the tube's ready
    /// jobs (a fresh tube's), O(log n) otherwise.
    pub fn append_ready(&mut self, id: TubeId, keys: impl IntoIterator<Item = ReadyKey>) {
        let tube = &mut self.tubes[id.slot()];
        let old = tube.reservable();
        tube.ready.0.append(keys);
        self.heads.replace(id, old, tube.reservable());
    }

    /// Takes a ready job out of the tube. O(log n).
    pub fn remove_ready(&mut self, id: TubeId, key: ReadyKey) {
        let tube = &mut self.tubes[id.slot()];
        let old = tube.reservable();
        let removed = tube.ready.0.remove(key);
        debug_assert!(removed, "{key:?} was not ready");
        if old == Some(key) {
            self.heads.replace(id, old, tube.reservable());
        }
    }

    /// Pauses the tube (`Some`) or resumes it (`None`). O(log n).
    pub fn set_pause(&mut self, id: TubeId, pause: Option<Pause>) {
        let tube = &mut self.tubes[id.slot()];
        let old = tube.reservable();
        tube.pause = pause;
        self.heads.replace(id, old, tube.reservable());
    }

    /// The best ready job of every tube that may hand one out, best first.
    pub fn heads(&self) -> &Heads {
        &self.heads
    }

    /// Every live tube's handle.
    pub fn ids(&self) -> impl Iterator<Item = TubeId> + '_ {
        self.order.iter().copied()
    }

    /// Tubes in listing order.
    pub fn iter(&self) -> impl Iterator<Item = &Tube> {
        self.order.iter().map(|id| &self.tubes[id.slot()])
    }
}

impl std::ops::Index<TubeId> for Tubes {
    type Output = Tube;
    fn index(&self, id: TubeId) -> &Tube {
        &self.tubes[id.slot()]
    }
}

impl std::ops::IndexMut<TubeId> for Tubes {
    fn index_mut(&mut self, id: TubeId) -> &mut Tube {
        &mut self.tubes[id.slot()]
    }
}

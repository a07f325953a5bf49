//! Metrics (`--metrics`): the engine's hooks that feed its [`Meter`], and
//! the figures of a scrape.
//!
//! Off, the engine has no meter and each hook is one untaken branch. On,
//! what the hooks cost (measured with `cargo bench --bench micro`, see
//! BENCHMARKS.md):
//! - a job becoming ready: its time is noted (in its extras' deadline,
//!   which means nothing while a job is ready, when it has extras; a job
//!   without extras was put ready and is ready since it was put), and an
//!   entry is appended to its tube's [`ReadySince`](super::ready_since)
//!   queue, O(1) on average;
//! - a reserve: how long the job was ready, into a histogram;
//! - a delete, release or bury of a reserved job: how long it was held,
//!   from its TTR deadline less its TTR (or the reserve time a touch put
//!   aside), into a histogram;
//! - a TTR expiry or a `DEADLINE_SOON`: a counter of the job's tube.
//!
//! A scrape walks every tube once (O(tubes)) and drops the stale entries
//! ahead of each oldest ready job (paid for by the appends).

use super::Engine;
use super::extras::Extras;
use super::ids::{ConnId, JobId, TubeId};
use super::job::{Job, JobState};
use super::journal::Journal;
use super::meter::Meter;
use super::stats::tube_figures;
use super::time::Nanos;
use crate::idindex::IdIndex;
use crate::metrics::{Figures, OTHER_TUBES, TubeFigures};

/// When a ready job became ready: kept in its extras' deadline once it has
/// extras (a ready job's deadline means nothing else), else it was put
/// ready and is ready since it was put.
pub(super) fn ready_since(extras: &Extras, id: JobId, job: &Job) -> Nanos {
    match extras.get(id).deadline {
        0 => job.created_at,
        since => since,
    }
}

/// Whether job `id` is ready, and has been since `since`.
fn is_ready_since(jobs: &IdIndex<Job>, extras: &Extras, since: Nanos, id: JobId) -> bool {
    jobs.get(id).is_some_and(|job| job.state() == JobState::Ready && ready_since(extras, id, job) == since)
}

impl<J: Journal> Engine<J> {
    /// Turns metrics on: from now on the engine measures what
    /// [`Engine::figures`] reports. Up to `tube_cap` tubes get figures of
    /// their own; the others are counted together. Call it before
    /// [`Engine::restore_all`], so restored jobs are measured too.
    pub fn enable_metrics(&mut self, tube_cap: usize) {
        let mut meter = Meter::new(tube_cap);
        for tube in self.tubes.ids() {
            meter.tube_created(tube);
        }
        self.meter = Some(Box::new(meter));
    }

    /// Whether metrics are on.
    pub fn metrics_enabled(&self) -> bool {
        self.meter.is_some()
    }

    /// Job `id` of `tube` became ready at `now` (after `place_ready` set
    /// its place, before it may be handed out).
    #[inline]
    pub(super) fn meter_ready(&mut self, now: Nanos, id: JobId, tube: TubeId) {
        if self.meter.is_some() {
            self.note_ready(now, id, tube);
        }
    }

    #[inline(never)]
    fn note_ready(&mut self, now: Nanos, id: JobId, tube: TubeId) {
        let Engine { meter, jobs, extras, tubes, counts, .. } = self;
        let Some(meter) = meter.as_deref_mut() else { return };
        if let Some(mut e) = extras.get_mut_if_kept(id) {
            e.deadline = now;
        } else if jobs[id].created_at != now {
            // Put ready, its body long after its line (created then): ready
            // since the body came, kept where a ready job's deadline goes.
            extras.get_mut(id).deadline = now;
        }
        let is_own = meter.own(tube).is_some();
        // The jobs that can be current in the queue: the tube's ready jobs,
        // or for the tubes beyond the cap, at most every ready job.
        let ready = if is_own { tubes[tube].ready.len() } else { counts.ready as usize };
        let is_current = |since, id| is_ready_since(jobs, extras, since, id);
        meter.tube(tube).ready_since.push(now, id, ready, is_current);
    }

    /// Job `id`, ready, is being reserved at `now`: how long it waited.
    #[inline]
    pub(super) fn meter_reserve(&mut self, now: Nanos, id: JobId) {
        if self.meter.is_some() {
            self.note_reserve(now, id);
        }
    }

    #[inline(never)]
    fn note_reserve(&mut self, now: Nanos, id: JobId) {
        let job = &self.jobs[id];
        if job.state() != JobState::Ready {
            return;
        }
        let (tube, since) = (job.tube(), ready_since(&self.extras, id, job));
        if let Some(meter) = &mut self.meter {
            meter.tube(tube).ready_wait.observe(now.saturating_sub(since));
        }
    }

    /// When the reservation of job `id` (reserved) began.
    fn reserved_at(&self, meter: &Meter, id: JobId) -> Nanos {
        match meter.touched.get(&id) {
            Some(&at) => at,
            None => self.extras.get(id).deadline.saturating_sub(self.long_ttrs.get(id, self.jobs[id].ttr)),
        }
    }

    /// Job `id` is about to be deleted, released or buried at `now`: if it
    /// is reserved, how long it was held.
    #[inline]
    pub(super) fn meter_hold_ends(&mut self, now: Nanos, id: JobId) {
        if self.meter.is_some() {
            self.note_hold_ends(now, id);
        }
    }

    #[inline(never)]
    fn note_hold_ends(&mut self, now: Nanos, id: JobId) {
        let Some(meter) = self.meter.as_deref() else { return };
        let job = &self.jobs[id];
        if job.state() != JobState::Reserved {
            return;
        }
        let (tube, held) = (job.tube(), now.saturating_sub(self.reserved_at(meter, id)));
        if let Some(meter) = &mut self.meter {
            meter.tube(tube).hold.observe(held);
        }
    }

    /// Job `id`'s reservation is about to be touched: when it began, to be
    /// put aside by [`Engine::meter_touched`] once the touch moved its
    /// deadline.
    pub(super) fn meter_before_touch(&self, id: JobId) -> Option<Nanos> {
        self.meter.as_deref().map(|meter| self.reserved_at(meter, id))
    }

    /// Job `id` was touched; its reservation began at `reserved_at`.
    pub(super) fn meter_touched(&mut self, id: JobId, reserved_at: Option<Nanos>) {
        if let (Some(meter), Some(at)) = (&mut self.meter, reserved_at) {
            meter.touched.insert(id, at);
        }
    }

    /// Job `id`'s reservation ended (any way): forget its touch, if any.
    #[inline]
    pub(super) fn meter_unreserved(&mut self, id: JobId) {
        if let Some(meter) = &mut self.meter
            && !meter.touched.is_empty()
        {
            meter.touched.remove(&id);
        }
    }

    /// Job `id`'s TTR ran out.
    pub(super) fn meter_ttr_expiry(&mut self, id: JobId) {
        let tube = self.jobs[id].tube();
        if let Some(meter) = &mut self.meter {
            meter.tube(tube).ttr_expiries += 1;
        }
    }

    /// `conn` is answered `DEADLINE_SOON`: counted in the tube of its job
    /// whose TTR ends first.
    pub(super) fn meter_deadline_soon(&mut self, conn: ConnId) {
        if self.meter.is_none() {
            return;
        }
        let Some((_, id)) = self.soonest_held(conn) else { return };
        let tube = self.jobs[id].tube();
        if let Some(meter) = &mut self.meter {
            meter.tube(tube).deadline_soon += 1;
        }
    }

    /// Jobs restored ready (`place_ready_all`), at `now`: each is ready
    /// since it was put if it has no extras (it never left the ready
    /// state), else since `now` (when it became ready before the restart
    /// is not logged). Called before they are placed.
    pub(super) fn meter_restored_ready(&mut self, now: Nanos, ids: impl ExactSizeIterator<Item = JobId>) {
        if self.meter.is_none() {
            return;
        }
        let mut entries: Vec<(Nanos, JobId, TubeId)> = Vec::with_capacity(ids.len());
        for id in ids {
            let job = &self.jobs[id];
            let tube = job.tube();
            // A job with extras, or put "later" than now (the wall clock
            // went back across the restart), counts as ready since now.
            let since = if self.extras.contains(id) || job.created_at > now {
                self.extras.get_mut(id).deadline = now;
                now
            } else {
                job.created_at
            };
            entries.push((since, id, tube));
        }
        entries.sort_unstable();
        let meter = self.meter.as_deref_mut().expect("metrics are on");
        for (since, id, tube) in entries {
            // No compaction: every entry is current.
            meter.tube(tube).ready_since.push(since, id, usize::MAX / 4, |_, _| true);
        }
    }

    /// What a scrape reports, at `now`: every `stats` figure, and per tube
    /// (up to the cap, the rest together) what `stats-tube` reports and
    /// what the meter measured. Without metrics on, only the `stats`
    /// figures. O(tubes).
    pub fn figures(&mut self, now: Nanos) -> Figures {
        let server = self.server_figures(now);
        let Engine { meter, tubes, jobs, extras, .. } = self;
        let Some(meter) = meter.as_deref_mut() else { return Figures { server, ..Figures::default() } };
        let mut figures =
            Figures { server, tube_cap: meter.cap() as u64, other_tubes: meter.other_tubes, ..Figures::default() };
        let age = |since: Option<Nanos>| since.map_or(0, |since| now.saturating_sub(since));
        let mut other = TubeFigures::default();
        for id in tubes.ids() {
            let t = &tubes[id];
            match meter.own(id) {
                Some(m) => figures.tubes.push(TubeFigures {
                    stats: tube_figures(t, now),
                    paused: u64::from(t.is_paused()),
                    oldest_ready_age: age(m.ready_since.oldest(|since, id| is_ready_since(jobs, extras, since, id))),
                    ready_wait: m.ready_wait,
                    hold: m.hold,
                    ttr_expiries: m.ttr_expiries,
                    deadline_soon: m.deadline_soon,
                }),
                None => {
                    let o = &mut other.stats;
                    o.urgent += t.urgent;
                    o.ready += t.ready.len() as u64;
                    o.reserved += t.reserved;
                    o.delayed += t.delayed.len() as u64;
                    o.buried += t.buried.len() as u64;
                    o.total_jobs += t.total_jobs;
                    o.using += t.using;
                    o.watching += t.watching;
                    o.waiting += t.waiters.len() as u64;
                    o.deletes += t.deletes;
                    o.pauses += t.pauses;
                    other.paused += u64::from(t.is_paused());
                }
            }
        }
        let dropped = meter.other_dropped;
        other.stats.name = OTHER_TUBES.to_string();
        other.stats.total_jobs += dropped.total_jobs;
        other.stats.deletes += dropped.deletes;
        other.stats.pauses += dropped.pauses;
        let m = &mut meter.other;
        other.oldest_ready_age = age(m.ready_since.oldest(|since, id| is_ready_since(jobs, extras, since, id)));
        other.ready_wait = m.ready_wait;
        other.hold = m.hold;
        other.ttr_expiries = m.ttr_expiries;
        other.deadline_soon = m.deadline_soon;
        figures.other = other;
        figures
    }
}

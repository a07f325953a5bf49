//! What a job carries only once something has happened to it, kept apart
//! from the job record, and the table of the jobs that have any.

use super::ids::{ConnId, JobId};
use super::time::{Nanos, secs};
use crate::idindex::IdIndex;

/// The per-job counters `stats-job` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Times the job was reserved.
    pub reserves: u32,
    /// Times its TTR ran out while reserved (a disconnect does not count).
    pub timeouts: u32,
    /// Times it was released.
    pub releases: u32,
    /// Times it was buried.
    pub buries: u32,
    /// Times it was kicked.
    pub kicks: u32,
}

/// What a job carries only once something has happened to it: its counters,
/// the delay it was last given, the deadline of its state, and who holds it
/// while reserved. A job put ready without a delay has none of these (all
/// zero), and it is the job a queue holds millions of. Packed to 4-byte
/// alignment, like [`Job`](super::job::Job): 36 bytes. The table keeps it
/// narrower while it can (see [`Extras`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, packed(4))]
pub struct JobExtras {
    /// What `stats-job` counts for the job.
    pub counts: JobCounts,
    /// The delay last given by put or release, in seconds (reported by
    /// stats-job).
    pub delay_secs: u32,
    /// Delayed: when the job becomes ready. Reserved: when its TTR runs out.
    /// Buried: when it was buried. Meaningless when ready.
    pub deadline: Nanos,
    /// Reserved: the connection holding it. Meaningless otherwise.
    pub holder: u32,
}

impl JobExtras {
    /// The delay last given by put or release.
    pub fn delay(&self) -> Nanos {
        secs(self.delay_secs)
    }

    /// Notes that `conn` holds the job, until `deadline`.
    pub fn hold(&mut self, conn: ConnId, deadline: Nanos) {
        self.holder = u32::try_from(conn).unwrap_or_else(|_| panic!("connection id {conn} out of range"));
        self.deadline = deadline;
    }
}

/// A job's extras as the table keeps them while every counter fits in a
/// byte and the holder's id in two: 20 bytes a job, against 40 for a
/// [`JobExtras`] in its slot. A million buried jobs all have extras (a
/// reserve and a burial each), few jobs are reserved, released, buried or
/// kicked 256 times, and connection ids are slab keys, which stay small
/// (one per open connection); a job past these moves to the wide table,
/// leaving this slot marked [`Form::Wide`].
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
struct NarrowExtras {
    deadline: Nanos,
    delay_secs: u32,
    /// Reserves, timeouts, releases, buries, kicks.
    counts: [u8; 5],
    /// Also the niche of the id index's `Option`: an empty slot needs no
    /// tag of its own.
    form: Form,
    /// The holder, in the two bytes the fields above leave to make 20.
    holder: u16,
}

/// Where a kept job's extras are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Form {
    /// In the narrow slot itself.
    Narrow = 1,
    /// In the wide table: a counter passed 255, or the holder's id passed
    /// 65,535.
    Wide = 2,
}

impl NarrowExtras {
    /// The slot of a job whose extras are in the wide table.
    const WIDE: NarrowExtras = NarrowExtras { deadline: 0, delay_secs: 0, counts: [0; 5], form: Form::Wide, holder: 0 };

    /// All-zero extras.
    const EMPTY: NarrowExtras = NarrowExtras { form: Form::Narrow, ..NarrowExtras::WIDE };

    /// The extras in the narrow form, if every counter fits in a byte and
    /// the holder in two.
    fn pack(e: JobExtras) -> Option<NarrowExtras> {
        let c = e.counts;
        let byte = |n: u32| u8::try_from(n).ok();
        Some(NarrowExtras {
            deadline: e.deadline,
            delay_secs: e.delay_secs,
            counts: [byte(c.reserves)?, byte(c.timeouts)?, byte(c.releases)?, byte(c.buries)?, byte(c.kicks)?],
            form: Form::Narrow,
            holder: u16::try_from(e.holder).ok()?,
        })
    }

    fn unpack(self) -> JobExtras {
        let [reserves, timeouts, releases, buries, kicks] = self.counts.map(u32::from);
        let counts = JobCounts { reserves, timeouts, releases, buries, kicks };
        JobExtras { counts, delay_secs: self.delay_secs, deadline: self.deadline, holder: self.holder.into() }
    }
}

/// The extras of the jobs that have any, by job id: id indexes like the
/// job table, since a million delayed or buried jobs all have extras (a hash
/// map of them took 86 bytes a job, twice that while it grew). Every kept
/// job has a narrow slot (20 bytes); the few whose counters outgrow a byte
/// also have a wide one (see [`NarrowExtras`]).
#[derive(Debug, Default)]
pub struct Extras {
    narrow: IdIndex<NarrowExtras>,
    wide: IdIndex<JobExtras>,
}

impl Extras {
    /// The job's extras, all zero if it has none.
    pub fn get(&self, id: JobId) -> JobExtras {
        match self.narrow.get(id) {
            None => JobExtras::default(),
            Some(slot) if slot.form == Form::Narrow => slot.unpack(),
            Some(_) => self.wide[id],
        }
    }

    /// The connection holding the job, if it is reserved (else the one
    /// that held it last, or 0), found without unpacking the rest.
    pub fn holder(&self, id: JobId) -> ConnId {
        match self.narrow.get(id) {
            None => 0,
            Some(slot) if slot.form == Form::Narrow => slot.holder.into(),
            Some(_) => self.wide[id].holder as ConnId,
        }
    }

    /// The job's extras, to change: kept from now on (written back when
    /// the returned guard goes).
    pub fn get_mut(&mut self, id: JobId) -> ExtrasMut<'_> {
        let slot = self.narrow.get_or_insert_with(id, || NarrowExtras::EMPTY);
        ExtrasMut::new(slot, &mut self.wide, id)
    }

    /// The job's extras, to change, if it has any (none are made).
    pub fn get_mut_if_kept(&mut self, id: JobId) -> Option<ExtrasMut<'_>> {
        let slot = self.narrow.get_mut(id)?;
        Some(ExtrasMut::new(slot, &mut self.wide, id))
    }

    /// Sets the extras of a job that has none yet (all-zero ones are not
    /// kept).
    pub fn set(&mut self, id: JobId, extras: JobExtras) {
        if extras != JobExtras::default() {
            self.store(id, extras);
        }
    }

    /// Keeps `value` as the job's extras, in the narrow form if it fits.
    fn store(&mut self, id: JobId, value: JobExtras) {
        let slot = self.narrow.get_or_insert_with(id, || NarrowExtras::EMPTY);
        store(slot, &mut self.wide, id, value);
    }

    /// Forgets a deleted job.
    pub fn forget(&mut self, id: JobId) {
        if self.narrow.remove(id).is_some_and(|slot| slot.form == Form::Wide) {
            self.wide.remove(id);
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.narrow.is_empty() && self.wide.is_empty()
    }

    /// Whether the job has extras.
    pub fn contains(&self, id: JobId) -> bool {
        self.narrow.contains(id)
    }

    /// The jobs with extras.
    pub fn ids(&self) -> impl Iterator<Item = JobId> + '_ {
        self.narrow.ids()
    }

    /// Checks that the two tables agree: a job is in the wide table exactly
    /// when its narrow slot says so, and only if its extras do not fit the
    /// narrow form.
    pub fn check(&self) {
        for id in self.narrow.ids() {
            let is_wide = self.narrow[id].form == Form::Wide;
            assert_eq!(self.wide.contains(id), is_wide, "job {id}'s wide extras");
            if is_wide {
                assert!(NarrowExtras::pack(self.wide[id]).is_none(), "job {id}'s extras kept wide but fit narrow");
            }
        }
        for id in self.wide.ids() {
            assert!(self.narrow.contains(id), "job {id} has wide extras and no narrow slot");
        }
    }
}

/// Keeps `value` as job `id`'s extras: in its narrow slot if it fits,
/// else in the wide table, the slot saying so.
fn store(slot: &mut NarrowExtras, wide: &mut IdIndex<JobExtras>, id: JobId, value: JobExtras) {
    let was_wide = slot.form == Form::Wide;
    match NarrowExtras::pack(value) {
        Some(narrow) => {
            *slot = narrow;
            if was_wide {
                wide.remove(id);
            }
        }
        None => {
            *slot = NarrowExtras::WIDE;
            *wide.get_or_insert_with(id, JobExtras::default) = value;
        }
    }
}

/// A job's extras being changed: a copy, written back to its slot (found
/// once, when the guard is made) when the guard goes.
#[derive(Debug)]
pub struct ExtrasMut<'a> {
    slot: &'a mut NarrowExtras,
    wide: &'a mut IdIndex<JobExtras>,
    id: JobId,
    value: JobExtras,
}

impl<'a> ExtrasMut<'a> {
    fn new(slot: &'a mut NarrowExtras, wide: &'a mut IdIndex<JobExtras>, id: JobId) -> ExtrasMut<'a> {
        let value = if slot.form == Form::Narrow { slot.unpack() } else { wide[id] };
        ExtrasMut { slot, wide, id, value }
    }
}

impl std::ops::Deref for ExtrasMut<'_> {
    type Target = JobExtras;
    fn deref(&self) -> &JobExtras {
        &self.value
    }
}

impl std::ops::DerefMut for ExtrasMut<'_> {
    fn deref_mut(&mut self) -> &mut JobExtras {
        &mut self.value
    }
}

impl Drop for ExtrasMut<'_> {
    fn drop(&mut self) {
        store(self.slot, self.wide, self.id, self.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_stays_small() {
        assert_eq!(std::mem::size_of::<Option<NarrowExtras>>(), 20);
        assert_eq!(std::mem::size_of::<Option<JobExtras>>(), 40);
    }

    #[test]
    fn counters_past_a_byte_move_to_the_wide_table_and_back() {
        let mut extras = Extras::default();
        for n in 1..=300u32 {
            extras.get_mut(9).counts.reserves += 1;
            extras.get_mut(9).deadline = u64::from(n) << 40;
            extras.check();
            let e = extras.get(9);
            assert_eq!((e.counts.reserves, e.deadline), (n, u64::from(n) << 40));
            assert_eq!(extras.wide.contains(9), n > 255, "after {n} reserves");
        }
        extras.get_mut(9).counts.reserves = 3;
        extras.check();
        assert!(!extras.wide.contains(9), "back to narrow");
        assert_eq!(extras.get(9).counts.reserves, 3);
        let wide = JobExtras {
            delay_secs: u32::MAX,
            counts: JobCounts { kicks: 1 << 20, ..JobCounts::default() },
            deadline: 5,
            holder: 0,
        };
        extras.set(10, wide);
        extras.check();
        assert_eq!(extras.get(10), wide);
        extras.forget(10);
        extras.forget(9);
        extras.check();
        assert!(extras.is_empty());
    }

    #[test]
    fn a_holder_past_two_bytes_moves_to_the_wide_table() {
        let mut extras = Extras::default();
        for (conn, wide) in [(0, false), (65_535, false), (65_536, true), (u32::MAX as ConnId, true), (7, false)] {
            extras.get_mut(3).hold(conn, 10);
            extras.check();
            assert_eq!((extras.holder(3), extras.get(3).deadline), (conn, 10));
            assert_eq!(extras.wide.contains(3), wide, "holder {conn}");
        }
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn a_holder_past_four_bytes_is_refused() {
        Extras::default().get_mut(3).hold(1 << 32, 10);
    }

    #[test]
    fn extras_cost_nothing_until_used() {
        let mut extras = Extras::default();
        extras.set(7, JobExtras::default());
        assert!(extras.is_empty());
        extras.get_mut(7).counts.reserves += 1;
        assert_eq!(extras.get(7).counts.reserves, 1);
        assert_eq!(extras.get(8), JobExtras::default());
        extras.forget(7);
        assert!(extras.is_empty());
    }
}

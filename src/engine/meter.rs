//! What the engine measures for `--metrics`, beyond what `stats` counts:
//! per tube, when its ready jobs became ready, how long jobs waited ready
//! and were held, TTR expiries and `DEADLINE_SOON`s. Kept only while
//! metrics are on (the engine holds an `Option` of it: off, every hook is
//! one untaken branch and nothing is allocated).
//!
//! The label cardinality is bounded: the first `cap` tubes created get
//! figures of their own ([`Slot::Own`]) and keep them for their life; the
//! others share one set ([`Slot::Other`]), reported as `tube="[other]"`. A
//! tube dropped frees its place for the next one created; a tube never
//! moves between the two while it lives, so its series never jump.
//!
//! How long a job was held is taken from its TTR deadline, which is its
//! reserve time plus its TTR, unless a `touch` moved the deadline: the
//! reserve times of touched reservations are kept apart ([`Meter::touched`],
//! emptied as those reservations end).

use std::collections::HashMap;

use super::ids::{JobId, TubeId};
use super::ready_since::ReadySince;
use super::time::Nanos;
use super::tubes::Tube;
use crate::metrics::JobHistogram;

/// What is measured for one tube, or for the tubes beyond the cap together.
#[derive(Debug, Default)]
pub struct TubeMeter {
    /// Its ready jobs by when they became ready.
    pub ready_since: ReadySince,
    /// How long jobs were ready before a reserve took them.
    pub ready_wait: JobHistogram,
    /// How long jobs were held, from the reserve to a delete, release or
    /// bury.
    pub hold: JobHistogram,
    /// Reservations whose TTR ran out.
    pub ttr_expiries: u64,
    /// `DEADLINE_SOON` answers about one of its jobs.
    pub deadline_soon: u64,
}

/// Where a tube's figures go.
#[derive(Debug, Default)]
enum Slot {
    /// No live tube sits in this registry slot.
    #[default]
    Vacant,
    /// The tube has figures of its own.
    Own(Box<TubeMeter>),
    /// The tube is counted with the others beyond the cap.
    Other,
}

/// Counters of the tubes beyond the cap that were dropped, so that the
/// other tubes' counters never go down.
#[derive(Clone, Copy, Debug, Default)]
pub struct DroppedCounts {
    /// Jobs put into them.
    pub total_jobs: u64,
    /// Their jobs deleted.
    pub deletes: u64,
    /// Times they were paused.
    pub pauses: u64,
}

/// Everything measured for metrics (see the module docs).
#[derive(Debug)]
pub struct Meter {
    /// The most tubes with figures of their own.
    cap: usize,
    /// Indexed by the tube registry's slots.
    slots: Vec<Slot>,
    /// Tubes with figures of their own.
    own: usize,
    /// The tubes beyond the cap, together.
    pub other: TubeMeter,
    /// Tubes beyond the cap that live now.
    pub other_tubes: u64,
    /// What the dropped tubes beyond the cap had counted.
    pub other_dropped: DroppedCounts,
    /// The reserve times of reservations touched since (their TTR deadline
    /// no longer tells when they began).
    pub touched: HashMap<JobId, Nanos>,
}

impl Meter {
    /// Nothing measured yet; up to `cap` tubes get figures of their own.
    pub fn new(cap: usize) -> Meter {
        Meter {
            cap,
            slots: Vec::new(),
            own: 0,
            other: TubeMeter::default(),
            other_tubes: 0,
            other_dropped: DroppedCounts::default(),
            touched: HashMap::new(),
        }
    }

    /// The most tubes with figures of their own.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A tube was created: it gets figures of its own if there is room.
    pub fn tube_created(&mut self, tube: TubeId) {
        let slot = tube.slot();
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, Slot::default);
        }
        debug_assert!(matches!(self.slots[slot], Slot::Vacant), "tube slot {slot} created twice");
        self.slots[slot] = if self.own < self.cap {
            self.own += 1;
            Slot::Own(Box::default())
        } else {
            self.other_tubes += 1;
            Slot::Other
        };
    }

    /// A tube was dropped (it held no job): its place is free again, and
    /// if it was counted with the others, its counters stay in theirs.
    pub fn tube_dropped(&mut self, tube: TubeId, dropped: &Tube) {
        match std::mem::take(&mut self.slots[tube.slot()]) {
            Slot::Own(_) => self.own -= 1,
            Slot::Other => {
                self.other_tubes -= 1;
                let d = &mut self.other_dropped;
                d.total_jobs += dropped.total_jobs;
                d.deletes += dropped.deletes;
                d.pauses += dropped.pauses;
            }
            Slot::Vacant => debug_assert!(false, "an unknown tube dropped"),
        }
    }

    /// Where the tube's figures go: its own, or the other tubes'.
    #[inline]
    pub fn tube(&mut self, tube: TubeId) -> &mut TubeMeter {
        match &mut self.slots[tube.slot()] {
            Slot::Own(meter) => meter,
            _ => &mut self.other,
        }
    }

    /// Every ready-since queue: the own tubes', then the other tubes'.
    pub fn ready_since_queues(&self) -> impl Iterator<Item = &ReadySince> {
        let own = self.slots.iter().filter_map(|slot| match slot {
            Slot::Own(meter) => Some(&meter.ready_since),
            _ => None,
        });
        own.chain([&self.other.ready_since])
    }

    /// The tube's own figures, if it has them.
    pub fn own(&mut self, tube: TubeId) -> Option<&mut TubeMeter> {
        match self.slots.get_mut(tube.slot()) {
            Some(Slot::Own(meter)) => Some(meter),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tubes::Tubes;
    use crate::protocol::TubeName;

    #[test]
    fn tubes_beyond_the_cap_share_and_a_dropped_one_frees_its_place() {
        let mut tubes = Tubes::new();
        let mut meter = Meter::new(2);
        meter.tube_created(tubes.default_tube());
        let a = tubes.get_or_create(&TubeName::new(b"a").unwrap());
        meter.tube_created(a);
        let b = tubes.get_or_create(&TubeName::new(b"b").unwrap());
        meter.tube_created(b);
        assert!(meter.own(a).is_some());
        assert!(meter.own(b).is_none(), "beyond the cap");
        assert_eq!(meter.other_tubes, 1);
        meter.tube(b).ttr_expiries += 1;
        assert_eq!(meter.other.ttr_expiries, 1);

        tubes[b].total_jobs = 5;
        let dropped = tubes.drop_if_unused(b).expect("b is unused");
        meter.tube_dropped(b, &dropped);
        assert_eq!((meter.other_tubes, meter.other_dropped.total_jobs), (0, 5));
        let dropped = tubes.drop_if_unused(a).expect("a is unused");
        meter.tube_dropped(a, &dropped);
        let c = tubes.get_or_create(&TubeName::new(b"c").unwrap());
        meter.tube_created(c);
        assert!(meter.own(c).is_some(), "a's place went to c");
    }
}

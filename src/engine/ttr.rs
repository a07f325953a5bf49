//! A job's time to run: two bytes in its record, the rare longer ones apart.
//!
//! A TTR is up to 2^32 - 1 seconds, but nearly every job's is minutes, and
//! the record is what a million queued jobs cost: two bytes there are a
//! million times two. A TTR of 65,536 s (18 h 12 min) or more is kept in a
//! map beside the records instead, its record saying so.

use super::ids::JobId;
use super::time::{Nanos, secs};
use crate::idmap::IdMap;

/// A job's TTR as its record keeps it: the seconds (at least one), or
/// [`RecordTtr::LONG`] (zero, which no TTR is: beanstalkd raises 0 to 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordTtr(u16);

impl RecordTtr {
    /// Kept in [`LongTtrs`].
    const LONG: RecordTtr = RecordTtr(0);

    /// What a record keeps of a TTR of `ttr_secs` (at least one): a long
    /// one must be kept in [`LongTtrs`] too.
    pub fn of(ttr_secs: u32) -> RecordTtr {
        debug_assert!(ttr_secs > 0, "a TTR is at least a second");
        if ttr_secs <= u32::from(u16::MAX) { RecordTtr(ttr_secs as u16) } else { RecordTtr::LONG }
    }

    /// The seconds, unless the TTR is kept in [`LongTtrs`].
    fn secs(self) -> Option<u32> {
        (self != RecordTtr::LONG).then_some(self.0.into())
    }
}

/// The TTRs that do not fit a job's record, by job id.
#[derive(Debug, Default)]
pub struct LongTtrs(IdMap<u32>);

impl LongTtrs {
    /// Keeps job `id`'s TTR of `ttr_secs` if its record cannot
    /// ([`RecordTtr::of`]), once the job is kept.
    pub fn keep(&mut self, id: JobId, ttr_secs: u32) {
        if ttr_secs > u32::from(u16::MAX) {
            self.0.insert(id, ttr_secs);
        }
    }

    /// Job `id`'s TTR in seconds, its record keeping `ttr`.
    pub fn secs(&self, id: JobId, ttr: RecordTtr) -> u32 {
        ttr.secs().unwrap_or_else(|| self.0[&id])
    }

    /// Job `id`'s TTR, its record keeping `ttr`.
    pub fn get(&self, id: JobId, ttr: RecordTtr) -> Nanos {
        secs(self.secs(id, ttr))
    }

    /// Forgets a deleted job, its record keeping `ttr`.
    pub fn forget(&mut self, id: JobId, ttr: RecordTtr) {
        if ttr == RecordTtr::LONG {
            self.0.remove(&id);
        }
    }

    /// Panics unless the jobs whose records say their TTR is long (of
    /// `records`, each job's id and what its record keeps) are exactly
    /// those kept here, each with a TTR too long for a record.
    pub fn check(&self, records: impl Iterator<Item = (JobId, RecordTtr)>) {
        let mut long = 0;
        for (id, ttr) in records {
            if ttr == RecordTtr::LONG {
                let secs = self.0.get(&id).unwrap_or_else(|| panic!("job {id}'s long TTR is not kept"));
                assert!(*secs > u32::from(u16::MAX), "job {id}'s TTR of {secs} s kept apart");
                long += 1;
            }
        }
        assert_eq!(self.0.len(), long, "long TTRs kept for jobs whose records hold theirs, or gone");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttr_of_two_bytes_stays_in_the_record_a_longer_one_goes_apart() {
        let mut ttrs = LongTtrs::default();
        let kept: Vec<_> = [1, 120, 65_535, 65_536, u32::MAX].iter().map(|&s| (s, RecordTtr::of(s))).collect();
        for &(s, _) in &kept {
            ttrs.keep(s.into(), s);
        }
        ttrs.check(kept.iter().map(|&(s, ttr)| (s.into(), ttr)));
        for &(s, ttr) in &kept {
            assert_eq!(ttr == RecordTtr::LONG, s > 65_535, "{s} s");
            assert_eq!(ttrs.secs(s.into(), ttr), s);
            assert_eq!(ttrs.get(s.into(), ttr), secs(s));
        }
        for &(s, ttr) in &kept {
            ttrs.forget(s.into(), ttr);
        }
        ttrs.check(std::iter::empty());
    }

    #[test]
    #[should_panic(expected = "not kept")]
    fn the_check_finds_a_long_ttr_lost() {
        LongTtrs::default().check([(7, RecordTtr::LONG)].into_iter());
    }
}

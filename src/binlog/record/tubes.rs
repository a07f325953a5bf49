//! A format-2 file's tube table: its job records name their tube by a
//! small index, which the first record of the file that uses a tube
//! declares along with the name. The writer keeps one table per file it
//! appends to ([`WrittenTubes`]), the reader one per file it reads
//! ([`DeclaredTubes`]); both start empty with each file.
//!
//! A declaration names its index, rather than taking the next one: if
//! `--skip-damaged-records` skips a declaring record, the declarations
//! after it keep their meaning, and only the records that refer to the lost
//! index become unreadable (damage, dropped and logged as such), never read
//! as another tube. The writer declares a tube again every
//! [`REDECLARE_AFTER`] job records, which bounds what one lost declaration
//! takes with it.

use std::collections::HashMap;

use super::v2::TubeRef;
use crate::protocol::TubeName;

/// The tubes a file being read has declared so far.
#[derive(Debug, Default)]
pub struct DeclaredTubes {
    /// Indexes 0, 1, 2, ...: what the writer declares, in order.
    dense: Vec<TubeName>,
    /// Indexes declared past a gap, which only skipped damage leaves (the
    /// gap's declarations were in it). A map, so that a damaged file can
    /// make it no larger than the records it holds.
    sparse: HashMap<u32, TubeName>,
}

impl DeclaredTubes {
    /// The tube declared as `index`.
    pub(super) fn get(&self, index: u32) -> Option<&TubeName> {
        match self.dense.get(index as usize) {
            Some(tube) => Some(tube),
            None => self.sparse.get(&index),
        }
    }

    /// Declares `index`; false if it was declared as another tube (the
    /// writer gives each index one tube per file, and declares it again
    /// now and then: see [`REDECLARE_AFTER`]).
    pub(super) fn declare(&mut self, index: u32, tube: TubeName) -> bool {
        if let Some(declared) = self.get(index) {
            return *declared == tube;
        }
        if index as usize == self.dense.len() {
            self.dense.push(tube);
        } else {
            self.sparse.insert(index, tube);
        }
        true
    }

    /// Every declaration, in no particular order.
    fn iter(&self) -> impl Iterator<Item = (u32, &TubeName)> {
        let dense = self.dense.iter().enumerate().map(|(i, t)| (i as u32, t));
        dense.chain(self.sparse.iter().map(|(&i, t)| (i, t)))
    }
}

/// A writer declares a tube again once this many job records (of any tube)
/// were written to the file since it last did: if `--skip-damaged-records` skips a declaration, the
/// records that name the tube until the next one are lost with it, at most
/// this many, for about 8 bytes every 64 records (0.1% of a put's).
pub(super) const REDECLARE_AFTER: u64 = 64;

/// The tubes a writer has declared in the file it appends to, so that
/// later records of the file name them by index.
#[derive(Debug, Default)]
pub struct WrittenTubes {
    /// Each tube's index, and the count of job records when it was last
    /// declared.
    indexes: HashMap<TubeName, (u32, u64)>,
    /// The tube named last, as in `indexes`: runs of puts into one tube
    /// skip the map.
    last: Option<(TubeName, u32, u64)>,
    /// The index the next new tube takes.
    next: u32,
    /// Job records written to the file by this writer.
    jobs: u64,
}

impl WrittenTubes {
    /// A writer's table for appending to a file that declared these tubes
    /// (a restart appends to the newest file). New tubes take indexes
    /// above every one declared, even one lost to skipped damage: the
    /// reader refuses an index declared as another name.
    pub(super) fn resume(declared: &DeclaredTubes) -> WrittenTubes {
        let mut tubes = WrittenTubes::default();
        for (index, tube) in declared.iter() {
            tubes.indexes.insert(tube.clone(), (index, 0));
            tubes.next = tubes.next.max(index + 1);
        }
        tubes
    }

    /// How the next job record names `tube`: by its index, or declaring it
    /// (first use in the file, or [`REDECLARE_AFTER`] records since it was
    /// last declared).
    #[inline]
    pub(super) fn name(&self, tube: &TubeName) -> TubeRef {
        let known = match &self.last {
            Some((last, index, declared_at)) if last == tube => Some((*index, *declared_at)),
            _ => self.indexes.get(tube).copied(),
        };
        match known {
            Some((index, declared_at)) if self.jobs - declared_at < REDECLARE_AFTER => TubeRef::Index(index),
            Some((index, _)) => TubeRef::Declare(index),
            None => TubeRef::Declare(self.next),
        }
    }

    /// The index the next job record names `tube` by if it is the tube of
    /// the job record before and was declared recently enough: a run of
    /// puts into one tube, answered without the map. `None` means: ask
    /// [`WrittenTubes::name`].
    #[inline(always)]
    pub(super) fn in_run(&self, tube: &TubeName) -> Option<u32> {
        match &self.last {
            Some((last, index, declared_at)) if self.jobs - declared_at < REDECLARE_AFTER && last == tube => {
                Some(*index)
            }
            _ => None,
        }
    }

    /// Notes that a job record named its tube as [`WrittenTubes::in_run`]
    /// said, and was appended.
    #[inline(always)]
    pub(super) fn named_in_run(&mut self) {
        self.jobs += 1;
    }

    /// Notes that a job record named `tube` as `named` (what
    /// [`WrittenTubes::name`] said) and was appended.
    #[inline]
    pub(super) fn named(&mut self, tube: &TubeName, named: TubeRef) {
        self.jobs += 1;
        if let (TubeRef::Index(_), Some((last, ..))) = (named, &self.last)
            && last == tube
        {
            // A run of puts into one tube: nothing else changes.
            return;
        }
        let jobs = self.jobs - 1;
        let (index, declared_at) = match named {
            TubeRef::Index(index) => {
                let declared_at = self.last.as_ref().filter(|(t, ..)| t == tube).map(|l| l.2);
                (index, declared_at.unwrap_or_else(|| self.indexes[tube].1))
            }
            TubeRef::Declare(index) => {
                self.indexes.insert(tube.clone(), (index, jobs));
                if index == self.next {
                    // Each declaration takes a record of at least 12 bytes:
                    // 2^32 of them would make a file of 48 GiB, and a server
                    // of 2^32 tubes.
                    self.next = self.next.checked_add(1).expect("fewer than 2^32 tubes declared in one binlog file");
                }
                (index, jobs)
            }
        };
        self.last = Some((tube.clone(), index, declared_at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tube(name: &str) -> TubeName {
        TubeName::new(name.as_bytes()).unwrap()
    }

    #[test]
    fn an_index_is_one_tube_and_gaps_are_allowed() {
        let mut declared = DeclaredTubes::default();
        assert!(declared.declare(0, tube("a")));
        assert!(declared.declare(0, tube("a")), "declared again, the same");
        assert!(!declared.declare(0, tube("b")), "declared as another tube");
        // Index 1's declaration was lost to damage.
        assert!(declared.declare(2, tube("c")));
        assert_eq!(declared.get(1), None);
        assert!(declared.declare(1, tube("d")));
        assert!(!declared.declare(2, tube("e")), "another tube, past a gap");
        assert_eq!(declared.get(2), Some(&tube("c")));
        let mut all: Vec<_> = declared.iter().map(|(i, t)| (i, t.as_str().to_string())).collect();
        all.sort();
        assert_eq!(all, [(0, "a".to_string()), (1, "d".to_string()), (2, "c".to_string())]);
    }

    #[test]
    fn a_resumed_writer_declares_new_tubes_above_every_index_read() {
        let mut declared = DeclaredTubes::default();
        declared.declare(0, tube("a"));
        declared.declare(5, tube("b"));
        let written = WrittenTubes::resume(&declared);
        assert_eq!(written.name(&tube("a")), TubeRef::Index(0));
        assert_eq!(written.name(&tube("b")), TubeRef::Index(5));
        assert_eq!(written.name(&tube("c")), TubeRef::Declare(6));
    }

    #[test]
    fn the_writer_declares_in_order_and_again_every_so_many_records() {
        let mut written = WrittenTubes::default();
        let (a, b) = (tube("a"), tube("b"));
        assert_eq!(written.name(&a), TubeRef::Declare(0));
        written.named(&a, TubeRef::Declare(0));
        assert_eq!(written.name(&b), TubeRef::Declare(1));
        written.named(&b, TubeRef::Declare(1));
        let mut names = Vec::new();
        for _ in 0..2 * REDECLARE_AFTER {
            let named = written.name(&a);
            written.named(&a, named);
            names.push(named);
        }
        let declared: Vec<usize> =
            (names.iter().enumerate()).filter(|(_, n)| matches!(n, TubeRef::Declare(_))).map(|(i, _)| i).collect();
        // a was declared by the file's job record 0 and b by record 1; the
        // loop's records start at 2, and a is declared again by record
        // REDECLARE_AFTER (of any tube, since a's last declaration), then
        // every REDECLARE_AFTER.
        let first = REDECLARE_AFTER as usize - 2;
        assert_eq!(declared, [first, first + REDECLARE_AFTER as usize]);
        assert!(names.iter().all(|n| matches!(n, TubeRef::Declare(0) | TubeRef::Index(0))));
        assert_eq!(written.name(&b), TubeRef::Declare(1), "b's declaration is old by now");
        assert_eq!(written.name(&tube("c")), TubeRef::Declare(2));
    }
}

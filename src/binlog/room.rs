//! Space reservation: a change is logged only where room was promised, and
//! room is allocated as whole files, so a full disk refuses a change instead
//! of failing in the middle of a write.
//!
//! Files are made between commands, not during them: at the end of every
//! turn, [`Binlog::prepare_ahead`] allocates spare files until a whole
//! file's worth of room is free beyond what is promised, and commands use
//! that room. The server ends a turn early when [`Binlog::room_is_low`], so
//! a burst is cut into turns and each turn's end prepares the next file.
//! Only a command that needs more than half a file (a body that large, a
//! kick of some 90,000 jobs with the default `-s`) can find the prepared
//! room short; it then makes a file on the spot, as every command that
//! crossed into a new file once did (`made_inline` counts these).

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::record::{HEADER_LEN, Header, Record};
use super::segment::Segment;
use super::syncer::NewFile;
use super::{Binlog, DELETE_LEN, FsyncPolicy};
use crate::engine::JobId;

/// How long after a failed preparation (a full disk) the next is tried,
/// unless a file was deleted meanwhile: often enough to notice room freed
/// by someone else, rarely enough that a full disk costs nothing.
const RETRY_PREPARATION: Duration = Duration::from_millis(100);

/// Makes a file: [`Segment::create`], or in tests a full disk.
pub(super) type MakeFile = fn(&Path, Header, u64, bool) -> io::Result<Segment>;

/// How preparing files ahead went.
#[derive(Debug)]
pub(super) struct Preparation {
    /// Swapped for a failing function in tests, as beanstalkd's tests swap
    /// its `falloc`.
    pub(super) make_file: MakeFile,
    /// When making a file last failed; `None` once one was made again.
    /// While set, commands use only the room already allocated.
    failed_at: Option<Instant>,
    /// A file was deleted since the failure: worth trying again at once.
    freed: bool,
    /// The end of the last turn: a command that fails to make a file
    /// counts as failing then (the clock is the server's to read).
    turn_ended_at: Instant,
    /// Files made during a command, because it needed more than the
    /// prepared room.
    pub(super) made_inline: u64,
}

impl Default for Preparation {
    fn default() -> Self {
        Preparation {
            make_file: Segment::create,
            failed_at: None,
            freed: false,
            turn_ended_at: Instant::now(),
            made_inline: 0,
        }
    }
}

impl Preparation {
    /// Notes that a file was deleted, which may be the room a failed
    /// preparation lacked.
    pub(super) fn file_deleted(&mut self) {
        self.freed = true;
    }

    /// True while the last attempt to make a file failed (a full disk).
    pub(super) fn has_failed(&self) -> bool {
        self.failed_at.is_some()
    }
}

impl Binlog {
    /// Allocated room no promise covers: unwritten bytes from the current
    /// file on, less the deletes promised to live jobs and one delete's
    /// worth per file for the ends of files that deletes cannot fill.
    pub(super) fn free_room(&self) -> u64 {
        let files = self.segments.len() - self.current;
        let room: u64 = self.segments[self.current..].iter().map(Segment::remaining).sum();
        room.saturating_sub(self.reserved + DELETE_LEN * files as u64)
    }

    /// True if a record of `need` bytes fits in the allocated room on top
    /// of what is promised, counting the ends of the files it would skip
    /// because it does not fit in them.
    pub(super) fn has_room(&self, need: u64) -> bool {
        self.room_margin(need).is_some()
    }

    /// If a record of `need` bytes fits (see `has_room`): the room left
    /// over, and whether the current file is the one it would go to. One
    /// pass over the files from the current one on (usually two).
    pub(super) fn room_margin(&self, need: u64) -> Option<(u64, bool)> {
        let mut room = 0;
        let mut skipped = None;
        let mut files = 0;
        for segment in self.segments[self.current..].iter() {
            let remaining = segment.remaining();
            if skipped.is_none() && remaining >= need {
                skipped = Some((room, files == 0));
            }
            room += remaining;
            files += 1;
        }
        let (skipped, in_current) = skipped?;
        let margin = (room - skipped).checked_sub(self.reserved + need + DELETE_LEN * files)?;
        Some((margin, in_current))
    }

    /// Makes sure `need` more bytes fit on top of what is promised. Called
    /// during commands: uses the prepared room, and makes a file only when
    /// one command needs more than the prepared room (never when making a
    /// file last failed). `false` if the disk cannot give the room.
    // The usual answer, the budget's, inlined into each change's logging;
    // the rest out of line.
    #[inline]
    pub(super) fn ensure_room(&mut self, need: u64) -> bool {
        (!self.failed && need <= self.file_size / 2 && self.budget_covers_half_a_file())
            || self.ensure_room_by_walk(need)
    }

    /// [`Binlog::ensure_room`] once the budget does not answer.
    #[inline(never)]
    fn ensure_room_by_walk(&mut self, need: u64) -> bool {
        if self.failed {
            return false;
        }
        if self.has_room(need) {
            return true;
        }
        if self.preparation.failed_at.is_some() {
            return false;
        }
        loop {
            log::debug!("binlog: a command needs more than the prepared room ({need} bytes); making a file now");
            if let Err(e) = self.add_segment(need) {
                self.preparation_failed(&e, self.preparation.turn_ended_at);
                return false;
            }
            self.preparation.made_inline += 1;
            if self.has_room(need) {
                return true;
            }
        }
    }

    /// Appends the delete of job `id` to a file from the current one on,
    /// where the room promised to every live job's delete makes sure it
    /// fits; false if it was not logged. Only a start that found less room
    /// than its jobs' deletes need and could make no file (a full disk;
    /// `Binlog::open` warns) breaks that promise: then a delete with no
    /// room left makes a file on the spot, and if the disk cannot give one
    /// either, the log fails (logged, as a failed write): the delete is not
    /// logged, and nothing more is.
    #[inline]
    pub(super) fn append_delete(&mut self, id: JobId) -> bool {
        // Almost always into the current file: one look-up, no walk.
        if let Some(segment) = self.segments.get_mut(self.current)
            && segment.append_delete(id)
        {
            self.records_written += 1;
            self.written_bytes += DELETE_LEN;
            return true;
        }
        self.append_delete_further(id)
    }

    /// [`Binlog::append_delete`] past the current file.
    #[inline(never)]
    fn append_delete_further(&mut self, id: JobId) -> bool {
        if !self.delete_fits_further() {
            return false;
        }
        self.append(&Record::<&[u8]>::Delete(id));
        true
    }

    /// True if a delete fits in a file from the current one on, making a
    /// file if none has room.
    fn delete_fits_further(&mut self) -> bool {
        let fits = |b: &Binlog| b.segments[b.current..].iter().any(|s| s.remaining() >= DELETE_LEN);
        if fits(self) {
            return true;
        }
        if let Err(e) = self.add_segment(DELETE_LEN) {
            log::error!(
                "binlog: no room left for a delete and cannot allocate a file in {}: {e}; refusing changes from \
                 now on",
                self.dir.display()
            );
            self.failed = true;
            return false;
        }
        fits(self)
    }

    /// True if `need` bytes fit in the room already allocated; never makes
    /// a file (compaction, which can wait for the next turn).
    pub(super) fn has_room_now(&self, need: u64) -> bool {
        !self.failed && self.has_room(need)
    }

    /// Makes spare files until a whole file's worth of room (`-s`) is free
    /// beyond what is promised, so that no command waits for a file to be
    /// made. The server calls it at the end of every turn, after the
    /// turn's replies were written; it costs nothing while there is room.
    ///
    /// A file that cannot be made (a full disk) is logged once; until one
    /// can, commands use only the room already allocated (puts are then
    /// refused with `OUT_OF_MEMORY`), and the next end of a turn tries
    /// again at once if a file was deleted meanwhile, else 100 ms later.
    pub fn prepare_ahead(&mut self, now: Instant) {
        self.preparation.turn_ended_at = now;
        if self.failed || self.free_room() >= self.file_size {
            return;
        }
        if let Some(failed_at) = self.preparation.failed_at
            && !self.preparation.freed
            && now.saturating_duration_since(failed_at) < RETRY_PREPARATION
        {
            return;
        }
        self.preparation.freed = false;
        while self.free_room() < self.file_size {
            if let Err(e) = self.add_segment(0) {
                self.preparation_failed(&e, now);
                return;
            }
        }
        if self.preparation.failed_at.take().is_some() {
            log::info!("binlog: files can be allocated in {} again", self.dir.display());
        }
    }

    fn preparation_failed(&mut self, e: &io::Error, now: Instant) {
        self.preparation.freed = false;
        if self.preparation.failed_at.replace(now).is_none() {
            log::warn!(
                "binlog: cannot allocate a new file in {}: {e}; new jobs will be refused once the allocated room \
                 is used, until room is freed",
                self.dir.display()
            );
        }
    }

    /// True while commands are eating into the last half file of prepared
    /// room and the next file can be made (the last try did not fail). The
    /// server then stops taking commands for this turn, so that the end of
    /// the turn prepares more room before the next: with that, only a
    /// single command that needs more than half a file makes a file during
    /// a command. False on a full disk: waiting would not make room, and
    /// commands that need none (reserve, delete) go on.
    // Inlined into the server's loop, which asks before every command: the
    // usual answer is the budget's sum and compare, with no call.
    #[inline]
    pub fn room_is_low(&self) -> bool {
        !self.budget_covers_half_a_file() && self.room_is_low_by_walk()
    }

    /// [`Binlog::room_is_low`] once the budget does not answer.
    #[inline(never)]
    fn room_is_low_by_walk(&self) -> bool {
        !self.failed && self.preparation.failed_at.is_none() && !self.has_room_for_half_a_file()
    }

    pub(super) fn add_segment(&mut self, min_record: u64) -> io::Result<()> {
        let seq = self.last_seq + 1;
        if seq > u64::from(u32::MAX) {
            // A start reads no file numbered past 2^32 (and format 2's
            // header holds the number in 32 bits).
            return Err(io::Error::other("binlog file numbers are used up (2^32 files made in this directory)"));
        }
        let capacity = self.file_size.max(HEADER_LEN as u64 + min_record).next_multiple_of(4096);
        // With the sync thread, it makes the file durable, before any
        // later request syncs records (requests go in order); else it is
        // synced here, unless nothing is ever synced (`-F`).
        let durable = self.fsync != FsyncPolicy::Never && self.syncer.is_none();
        let segment = (self.preparation.make_file)(&self.dir, Header::new(seq, self.next_id), capacity, durable)?;
        if let Some(syncer) = &mut self.syncer {
            syncer.request_new_file(NewFile { path: segment.path().to_owned(), dir: self.dir.clone() });
        }
        self.segments.push(segment);
        self.last_seq = seq;
        Ok(())
    }

    /// Queues a record in the first file, from the current one on, that has
    /// room for it (room was ensured, for `record::max_len` bytes: its
    /// length depends on the file's format and, in format 2, on its base
    /// time and the tubes it declared). That file is the current one
    /// afterwards.
    // Always inlined: out of line it costs a put and a delete some twenty
    // instructions each (callgrind), and the record's kind is known where
    // it is called.
    #[inline(always)]
    pub(super) fn append(&mut self, record: &Record<impl AsRef<[u8]>>) {
        self.append_then(|segment| segment.append(record), |_| ());
    }

    /// Queues a record as [`Binlog::append`] does, `append` putting it in a
    /// file if it fits (its length; `None` if not), then `then` on the file
    /// it went to, while it is at hand (no second look-up of the current
    /// file).
    // The current file is tried here, with no loop: in a loop that tries
    // one file after another, a put's encoder, inlined, had its work on the
    // job's fields hoisted out of the loop, all of it, ahead of the first
    // try (350 instructions a put more, callgrind).
    #[inline(always)]
    pub(super) fn append_then<T>(
        &mut self,
        mut append: impl FnMut(&mut Segment) -> Option<u64>,
        then: impl FnOnce(&mut Segment) -> T,
    ) -> T {
        let segment = &mut self.segments[self.current];
        let (len, done) = match append(segment) {
            Some(len) => (len, then(segment)),
            None => self.append_past_current(append, then),
        };
        self.records_written += 1;
        self.written_bytes += len;
        done
    }

    /// [`Binlog::append_then`] once the record did not fit in the current
    /// file: the first of the next files it fits in is the current one.
    #[cold]
    #[inline(never)]
    fn append_past_current<T>(
        &mut self,
        mut append: impl FnMut(&mut Segment) -> Option<u64>,
        then: impl FnOnce(&mut Segment) -> T,
    ) -> (u64, T) {
        loop {
            assert!(self.current + 1 < self.segments.len(), "binlog room was not ensured");
            self.current += 1;
            let segment = &mut self.segments[self.current];
            if let Some(len) = append(segment) {
                return (len, then(segment));
            }
        }
    }

    /// Bytes the log's files take on disk (allocated whole), spare files
    /// included.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.capacity).sum()
    }
}

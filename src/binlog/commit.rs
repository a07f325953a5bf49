//! Group commit: a turn's records reach the kernel in one write per file,
//! and the disk when the fsync policy says so, in the loop (`-f 0`) or on
//! the sync thread (`-f MS`).

use std::io;
use std::time::{Duration, Instant};

use super::segment::Segment;
use super::syncer::{Syncer, Wake};
use super::{Binlog, FsyncPolicy};

impl Binlog {
    /// Writes every record queued this turn (one write per file), fsyncs if
    /// the policy says so now, and deletes the old files that this or an
    /// earlier sync freed. The server calls it once per turn, before the
    /// turn's replies are sent: once it returns `Ok`, every change those
    /// replies acknowledge is written, and with `-f 0` synced.
    ///
    /// After an error (logged here), nothing more is written and every
    /// change that needs room is refused; later calls return `Ok`.
    pub fn commit(&mut self, now: Instant) -> io::Result<()> {
        if self.failed {
            return Ok(());
        }
        let result = self.write_and_sync(now);
        if let Err(e) = &result {
            log::error!("binlog write failed: {e}; refusing changes from now on");
            self.failed = true;
        }
        result
    }

    /// Moves the interval policy's fsyncs (`-f MS`, MS > 0) to a thread of
    /// their own, so that a slow disk never stalls the event loop; `wake`
    /// is called after each, so the loop can delete the files it freed.
    /// Without it, they run in the loop. Does nothing for `-f 0` (every
    /// reply waits for the fsync anyway) and `-F`.
    pub fn sync_in_background(&mut self, wake: Wake) -> io::Result<()> {
        if matches!(self.fsync, FsyncPolicy::Every { ms } if ms > 0) {
            self.syncer = Some(Syncer::start(wake, self.fsync_times.clone())?);
        }
        Ok(())
    }

    fn write_and_sync(&mut self, now: Instant) -> io::Result<()> {
        for (i, segment) in self.segments.iter_mut().enumerate() {
            segment.write_pending()?;
            if i < self.current {
                // Nothing is appended to a file before the current one
                // again: its buffer (as large as a busy turn's records)
                // would only sit there until the file is deleted.
                segment.drop_buffer();
            }
        }
        if self.syncer.as_ref().is_some_and(Syncer::failed) {
            return Err(io::Error::other("fsync failed"));
        }
        let sync_due = match self.fsync {
            FsyncPolicy::Never => false,
            FsyncPolicy::Every { ms } => now.duration_since(self.last_sync) >= Duration::from_millis(ms),
        };
        if let (Some(syncer), Some((request, up_to))) = (&self.syncer, self.deletable_after_sync)
            && syncer.done() >= request
        {
            self.deletable_after_sync = None;
            self.collect_garbage(up_to);
        }
        let syncer_idle = !self.syncer.as_ref().is_some_and(Syncer::busy);
        if sync_due && syncer_idle && self.segments.iter().any(Segment::is_unsynced) {
            match &mut self.syncer {
                Some(syncer) => {
                    let mut files = Vec::new();
                    for segment in self.segments.iter_mut().filter(|s| s.is_unsynced()) {
                        files.push(segment.handle_to_sync()?);
                    }
                    let request = syncer.request(files);
                    self.deletable_after_sync = Some((request, self.deletable_prefix()));
                }
                None => {
                    for segment in self.segments.iter_mut() {
                        segment.sync(&self.fsync_times)?;
                    }
                }
            }
            self.last_sync = now;
        }
        // Without the sync thread, files may go once what released them (a
        // migrated job's new record, the deletes of its old jobs) is synced.
        if self.syncer.is_none()
            && (self.fsync == FsyncPolicy::Never || !self.segments.iter().any(Segment::is_unsynced))
        {
            self.collect_garbage(u64::MAX);
        }
        Ok(())
    }

    /// When the interval policy next wants an fsync of written records
    /// (`None` if nothing waits for one): the server wakes up then, so that
    /// a change is on disk at the latest MS milliseconds after its write.
    pub fn next_sync_at(&self) -> Option<Instant> {
        match self.fsync {
            FsyncPolicy::Every { ms } if self.segments.iter().any(|s| s.is_unsynced() || s.has_unwritten()) => {
                Some(self.last_sync + Duration::from_millis(ms))
            }
            _ => None,
        }
    }

    /// Writes and fsyncs everything, waiting for the sync thread (clean
    /// shutdown): after `Ok`, nothing acknowledged can be lost.
    pub fn close(&mut self) -> io::Result<()> {
        if let Some(mut syncer) = self.syncer.take() {
            syncer.finish();
        }
        for segment in self.segments.iter_mut() {
            segment.write_pending()?;
            segment.sync(&self.fsync_times)?;
        }
        Ok(())
    }
}

//! A thread that runs the interval policy's fsyncs (`-f MS` with MS > 0),
//! so that a slow disk never stalls the event loop.
//!
//! Nothing waits for these syncs: under the interval policy a reply never
//! waits for the disk, so the loop only hands over the files to sync and
//! goes on. When a sync is done the thread wakes the loop, which may then
//! delete old files whose releasing records are now safe. (`-f 0` syncs in
//! the loop itself, since every reply must wait for it anyway.) It also
//! makes each new file durable, with its directory entry: the loop only
//! creates it, as an fsync there stalled every client for 0.2-4 ms per
//! file under load.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;

use super::fsyncs::FsyncTimes;
use super::segment::sync_dir;

/// Called after each sync; the server wakes its event loop with it.
pub type Wake = Box<dyn Fn() + Send>;

/// A request: its number, the files to sync, and a file just made, to be
/// synced by its path with the directory it is in.
type Request = (u64, Vec<File>, Option<NewFile>);

#[derive(Debug)]
pub struct NewFile {
    pub path: PathBuf,
    pub dir: PathBuf,
}

impl NewFile {
    /// Its header and allocated size, then its directory entry. A file
    /// already gone needs neither (none is deleted before a later request
    /// is done, so this is defence only).
    fn sync(&self, times: &FsyncTimes) -> io::Result<()> {
        match File::open(&self.path) {
            Ok(file) => times.sync(&file)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        sync_dir(&self.dir)
    }
}

#[derive(Debug)]
pub struct Syncer {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// The last request whose files are all synced.
    done: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    requested: u64,
}

impl Syncer {
    pub fn start(wake: Wake, times: FsyncTimes) -> io::Result<Syncer> {
        let (requests, incoming) = channel::<Request>();
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let (thread_done, thread_failed) = (done.clone(), failed.clone());
        let thread = std::thread::Builder::new().name("binlog-sync".into()).spawn(move || {
            for (generation, files, made) in incoming {
                for file in files {
                    if let Err(e) = times.sync(&file) {
                        log::error!("binlog fsync failed: {e}");
                        thread_failed.store(true, Ordering::Release);
                    }
                }
                if let Some(made) = made
                    && let Err(e) = made.sync(&times)
                {
                    log::error!("binlog: fsync of the new {} failed: {e}", made.path.display());
                    thread_failed.store(true, Ordering::Release);
                }
                thread_done.store(generation, Ordering::Release);
                wake();
            }
        })?;
        Ok(Syncer { requests: Some(requests), thread: Some(thread), done, failed, requested: 0 })
    }

    /// True while a sync handed over earlier has not finished.
    pub fn busy(&self) -> bool {
        self.done() != self.requested
    }

    /// The last request whose files are all synced.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Hands over these files (duplicated handles) to be synced; returns
    /// the request's number, which `done` reaches once it is.
    pub fn request(&mut self, files: Vec<File>) -> u64 {
        self.send(files, None)
    }

    /// Hands over a file just made (its header written, its room
    /// allocated), to be synced with its directory entry. Requests
    /// are served in order: any later request, for records in this file
    /// or in a later one, finds the file durable.
    pub fn request_new_file(&mut self, made: NewFile) -> u64 {
        self.send(Vec::new(), Some(made))
    }

    fn send(&mut self, files: Vec<File>, made: Option<NewFile>) -> u64 {
        self.requested += 1;
        if let Some(requests) = &self.requests {
            let _ = requests.send((self.requested, files, made));
        }
        self.requested
    }

    /// Waits for every handed-over sync to finish.
    pub fn finish(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.finish();
    }
}

//! What holding jobs costs in memory, counted by the allocator. A field
//! added to every job, or an index that stops packing, shows up here as
//! bytes, not as a benchmark number somebody has to notice.
//!
//! The counting allocator belongs to this test binary, which holds one
//! test: tests in one binary run in parallel and would count each other's
//! allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sprout::engine::{Engine, EngineConfig};
use sprout::host::HostInfo;
use sprout::protocol::Command;
use sprout::protocol::command::NewJob;

/// Bytes allocated and not freed yet.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes it hands out.
struct Counting;

// SAFETY: GlobalAlloc's contract (valid memory for the layout, or null; a
// pointer given back is freed once, with its layout) is System's: every
// call is passed on to it unchanged and its result returned unchanged. The
// counting adds only relaxed atomic arithmetic, which neither allocates
// (an allocator must not re-enter itself) nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's promise (`layout` has a non-zero size) is
        // passed on with the layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller promises `ptr` came from this allocator with
        // `layout`; every block of ours came from System with that layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for dealloc, `ptr` and `layout` are a block System
        // gave out; the caller promises `new_size` is valid for it.
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocated bytes per job after putting 2^18 jobs with 100-byte bodies
/// into a fresh engine. 2^18: the tables and the id index grow by doubling,
/// so at a power of two they hold as many jobs as they have room for (the
/// allocator counts room; the kernel counts only the pages touched).
fn bytes_a_job(delay: u32) -> f64 {
    const JOBS: u64 = 1 << 18;
    let config = EngineConfig { max_job_size: 65535, binlog_max_size: 10 << 20, host: HostInfo::fake() };
    let mut engine = Engine::new(config, 0);
    engine.connect(0);
    let body: Rc<[u8]> = Rc::from(&[b'x'; 100][..]);
    let before = LIVE.load(Ordering::Relaxed);
    for now in 0..JOBS {
        let put = NewJob { pri: 1024, delay, ttr: 120, body: Rc::clone(&body) };
        engine.begin_put(0);
        engine.apply(now, 0, Command::Put(put));
        engine.take_replies().for_each(drop);
    }
    let per_job = (LIVE.load(Ordering::Relaxed) - before) as f64 / JOBS as f64;
    drop(engine);
    eprintln!("delay {delay}: {per_job:.1} bytes a job");
    assert!(per_job > 100.0, "the bodies are kept: {per_job:.1} bytes a job");
    per_job
}

/// Where the bytes of a job with a 100-byte body go (BENCHMARKS.md). Ready:
/// the body 100, the record 36, the tube's ready order ~4.2, the id index 4
/// (144.4); the bound leaves no room for another field, even a 4-byte one.
/// Delayed (214.5): the body, the record and the id index, its extras
/// (deadline, delay, counters) in their table (40), and an entry in the
/// tube's delayed set; only a tube's first delayed job has a timer. One
/// test, since tests in one binary run in parallel.
#[test]
fn a_job_with_a_100_byte_body_costs_under_148_bytes_ready_and_under_220_delayed() {
    let ready = bytes_a_job(0);
    assert!(ready < 148.0, "ready: {ready:.1} bytes a job");
    let delayed = bytes_a_job(3600);
    assert!(delayed < 220.0, "delayed: {delayed:.1} bytes a job");
}

//! Giving memory back to the kernel after the queue drains.
//!
//! The engine frees what a deleted job held, but the allocator keeps freed
//! heap memory for reuse: a server that held a million jobs for an hour
//! would hold their 100 MB for good (beanstalkd does). Several instances
//! often share a host, so once the engine has freed enough in bulk (the
//! body pages of a size class whose last job went), the allocator is asked
//! to return its free pages. Only bulk frees count: memory freed job by job
//! in a busy queue is about to be used again. That is rare (a burst, then
//! a drain), and costs a walk of the allocator's free lists, a few
//! milliseconds for a large heap.

/// Bulk frees smaller than this are not worth a walk of the heap.
const LEAST_RETURN: u64 = 16 << 20;

#[derive(Debug, Default)]
pub struct Reclaim {
    /// The engine's bulk frees when memory was last given back.
    returned_at: u64,
}

impl Reclaim {
    /// Called once a turn with the engine's bulk frees so far.
    pub fn after_turn(&mut self, bulk_freed: u64) {
        if bulk_freed - self.returned_at >= LEAST_RETURN {
            log::debug!("memory: {} MiB freed in bulk, giving it back", (bulk_freed - self.returned_at) >> 20);
            give_back_free_memory();
            self.returned_at = bulk_freed;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(super) fn give_back_free_memory() {
    // SAFETY: malloc_trim only works on glibc's own heap, under its lock.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators give memory back on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(super) fn give_back_free_memory() {}

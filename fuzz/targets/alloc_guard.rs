//! The allocation guard: a global allocator that notices any single
//! allocation larger than the bound a target states for the input at hand,
//! so that an allocation sized by a length read from the input, unchecked,
//! is a finding even when it is small enough to succeed.
//!
//! The bound is per thread ([`within`]), so the replay test's threads and
//! the test harness's own allocations are not held to it. An allocation
//! over the bound is recorded and [`within`] panics once its closure
//! returns (an allocator must not unwind); one over the bound and over
//! [`REFUSE_OVER`] is refused outright, which aborts the process with
//! Rust's "memory allocation failed", so that a bad length never makes a
//! fuzzer on a shared machine touch gigabytes.
//!
//! The fuzz binaries and `tests/fuzz_corpora.rs` both install [`Guard`]
//! (this file's `#[global_allocator]`), so a corpus replays under the same
//! check it was found with.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// An allocation over the bound and over this many bytes is refused.
pub const REFUSE_OVER: usize = 256 << 20;

thread_local! {
    /// The bound in force on this thread (`usize::MAX`: none).
    static LIMIT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// The largest allocation over the bound since [`within`] began.
    static OVER: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, watched.
pub struct Guard;

#[global_allocator]
static GUARD: Guard = Guard;

impl Guard {
    /// Records `size` if it is over this thread's bound; false if it must
    /// be refused.
    fn admit(size: usize) -> bool {
        // `try_with`: a thread's locals may be gone while it exits (these
        // have no destructor, but stay safe).
        let limit = LIMIT.try_with(Cell::get).unwrap_or(usize::MAX);
        if size <= limit {
            return true;
        }
        let _ = OVER.try_with(|over| over.set(over.get().max(size)));
        size <= REFUSE_OVER
    }
}

// SAFETY: every call is passed to `System` unchanged, or refused with a
// null pointer as `GlobalAlloc` allows; the bookkeeping touches only
// const-initialised thread-locals without destructors, which never
// allocate.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Guard::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Guard::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !Guard::admit(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` with no single allocation on this thread allowed over `limit`
/// bytes; panics after `f` if one was. Nests: the inner bound holds inside.
pub fn within<R>(limit: usize, what: &str, f: impl FnOnce() -> R) -> R {
    let outer_limit = LIMIT.with(|l| l.replace(limit));
    let outer_over = OVER.with(|o| o.replace(0));
    let result = f();
    LIMIT.with(|l| l.set(outer_limit));
    let over = OVER.with(|o| o.replace(outer_over.max(o.get())));
    assert!(over == 0, "{what}: one allocation of {over} bytes, over the bound of {limit} bytes");
    result
}

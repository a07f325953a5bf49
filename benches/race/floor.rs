//! The machine's own floor for timed wake-ups: a bare timerfd, armed for
//! absolute instants at the delayed scenario's rate, in a thread of its own
//! while a server is measured. A delayed job cannot come reliably sooner
//! than this thread wakes: on a shared virtual machine both wait for the
//! same (v)CPUs.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Starts the probe: it wakes every `period` for `span`, then returns how
/// late each wake-up was (nanoseconds after the instant it was armed for).
pub fn start(period: Duration, span: Duration) -> JoinHandle<Vec<i64>> {
    std::thread::spawn(move || {
        // SAFETY: timerfd_create returns a new descriptor or -1.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Vec::new();
        }
        // SAFETY: `raw` is a descriptor we own from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let end = Instant::now() + span;
        let period = period.as_nanos() as u64;
        let mut at = monotonic_ns() + period;
        let mut late = Vec::new();
        while Instant::now() < end {
            let spec = libc::itimerspec {
                it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
                it_value: libc::timespec {
                    tv_sec: (at / 1_000_000_000) as libc::time_t,
                    tv_nsec: (at % 1_000_000_000) as _,
                },
            };
            let mut expirations = [0u8; 8];
            // SAFETY: timerfd_settime reads `spec`; read writes at most 8
            // bytes into the buffer.
            unsafe {
                libc::timerfd_settime(fd.as_raw_fd(), libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut());
                libc::read(fd.as_raw_fd(), expirations.as_mut_ptr().cast(), expirations.len());
            }
            late.push(monotonic_ns().saturating_sub(at) as i64);
            at += period;
        }
        late.sort_unstable();
        late
    })
}

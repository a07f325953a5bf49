//! A wake-up at an exact instant, for the engine's deadlines.
//!
//! `epoll_wait` takes its timeout in whole milliseconds, rounded up, so a
//! job due 0.2 ms from now would become ready 1 ms late. A timerfd armed for
//! the deadline itself (nanosecond resolution) wakes the loop on time.
//!
//! The timer is armed for an absolute time on `CLOCK_MONOTONIC`, the clock
//! [`monotonic_now`] reads. Armed relative to a clock read, it would fire as
//! late as the thread was preempted between that read and the
//! `timerfd_settime`, and on a busy machine that is milliseconds.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::engine::Nanos;

/// `CLOCK_MONOTONIC` in nanoseconds: the clock the timer is armed on.
pub fn monotonic_now() -> Nanos {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as Nanos * 1_000_000_000 + ts.tv_nsec as Nanos
}

pub struct DeadlineTimer {
    fd: OwnedFd,
    /// The `CLOCK_MONOTONIC` time the timer is set for, if it is set.
    armed_for: Option<Nanos>,
}

impl DeadlineTimer {
    pub fn new(registry: &Registry, token: Token) -> io::Result<DeadlineTimer> {
        // SAFETY: timerfd_create returns a new descriptor or -1.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we own from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(DeadlineTimer { fd, armed_for: None })
    }

    /// Makes the timer fire at `at` (on `CLOCK_MONOTONIC`) or before it.
    ///
    /// A timer that will fire sooner is left as it is (and one that is no
    /// longer needed, armed): it wakes the loop early, nothing is due, and it
    /// is set for the real deadline then. The engine's next deadline moves
    /// later at nearly every turn under load (the job whose TTR ends first is
    /// deleted), and following it cost a `timerfd_settime` per turn.
    pub fn arm(&mut self, at: Option<Nanos>) {
        let Some(at) = at else { return };
        if self.armed_for.is_some_and(|armed| monotonic_now() < armed && armed <= at) {
            return;
        }
        // An absolute time already past fires at once; zero would disarm.
        let at = at.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: (at / 1_000_000_000) as libc::time_t,
                tv_nsec: (at % 1_000_000_000) as _,
            },
        };
        // SAFETY: timerfd_settime reads `spec` and writes nothing else.
        let r =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        if r == 0 {
            self.armed_for = Some(at);
        } else {
            log::warn!("timerfd_settime: {}", io::Error::last_os_error());
            self.armed_for = None;
        }
    }

    /// Acknowledges an expiry, so the descriptor stops being readable.
    pub fn clear(&mut self) {
        let mut expirations = [0u8; 8];
        // SAFETY: reads at most 8 bytes into the buffer.
        unsafe { libc::read(self.fd.as_raw_fd(), expirations.as_mut_ptr().cast(), expirations.len()) };
        self.armed_for = None;
    }
}

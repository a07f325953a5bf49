//! A wake-up at an exact instant, for the engine's deadlines.
//!
//! `epoll_wait` takes its timeout in whole milliseconds, rounded up, so a
//! job due 0.2 ms from now would become ready 1 ms late. A timerfd armed for
//! the deadline itself (nanosecond resolution) wakes the loop on time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

pub struct DeadlineTimer {
    fd: OwnedFd,
    armed_for: Option<Instant>,
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

    /// Makes the timer fire at `at` or before it.
    ///
    /// A timer that will fire sooner is left as it is (and one that is no
    /// longer needed, armed): it wakes the loop early, nothing is due, and it
    /// is set for the real deadline then. The engine's next deadline moves
    /// later at nearly every turn under load (the job whose TTR ends first is
    /// deleted), and following it cost a `timerfd_settime` per turn.
    pub fn arm(&mut self, at: Option<Instant>) {
        let Some(at) = at else { return };
        let now = Instant::now();
        if self.armed_for.is_some_and(|armed| now < armed && armed <= at) {
            return;
        }
        // A deadline already past fires after one nanosecond (a zero would
        // disarm the timer).
        let value = at.saturating_duration_since(now).max(std::time::Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: value.as_secs() as libc::time_t, tv_nsec: value.subsec_nanos() as _ },
        };
        // SAFETY: timerfd_settime reads `spec` and writes nothing else.
        let r = unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
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

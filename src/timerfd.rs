//! A Linux timerfd on `CLOCK_MONOTONIC`, the one clock sprout arms timers
//! on: the server's deadline timer is one, and the benchmark client's pacing
//! and its wake-up floor probe use the same wrapper.
//!
//! A timerfd fires to the nanosecond, where `epoll_wait`'s timeout is whole
//! milliseconds (mio rounds up): a loop that slept on the poll timeout would
//! wake up to a millisecond late.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Nanoseconds on `CLOCK_MONOTONIC`.
pub type MonotonicNanos = u64;

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock [`TimerFd`] is armed on.
pub fn monotonic_now() -> MonotonicNanos {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the struct it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether reading an unexpired timer waits for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// A read waits for the expiry: for a thread that sleeps on the timer.
    Block,
    /// A read of an unexpired timer fails with `WouldBlock`: for an event
    /// loop, which polls the descriptor.
    NonBlocking,
}

/// A one-shot timer, readable once it expires. Closed on drop.
#[derive(Debug)]
pub struct TimerFd {
    fd: OwnedFd,
}

impl TimerFd {
    /// A new, disarmed timer (closed on exec).
    pub fn new(reads: Reads) -> io::Result<TimerFd> {
        let flags = match reads {
            Reads::Block => libc::TFD_CLOEXEC,
            Reads::NonBlocking => libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        };
        // SAFETY: timerfd_create takes no pointers; it returns a new
        // descriptor or -1.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, flags) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just created for us, open, and
        // owned by nothing else.
        Ok(TimerFd { fd: unsafe { OwnedFd::from_raw_fd(raw) } })
    }

    /// Makes the timer expire at `at` on `CLOCK_MONOTONIC` (at once if
    /// that is past), replacing any earlier setting. Armed for an absolute
    /// time, it fires on time even if this thread is preempted between
    /// reading the clock and this call.
    pub fn set_at(&self, at: MonotonicNanos) -> io::Result<()> {
        // An absolute time already past fires at once; zero would disarm.
        let at = at.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: (at / 1_000_000_000) as libc::time_t,
                tv_nsec: (at % 1_000_000_000) as _,
            },
        };
        // SAFETY: timerfd_settime reads `spec` and, with a null old value,
        // writes nothing; the descriptor is ours and open.
        let r =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    /// Reads the expiry count, so the descriptor stops being readable: waits
    /// for the expiry with [`Reads::Block`]; with [`Reads::NonBlocking`]
    /// fails with `WouldBlock` if the timer has not expired.
    pub fn take_expiry(&self) -> io::Result<u64> {
        let mut expirations = [0u8; 8];
        // SAFETY: read writes at most 8 bytes into the 8-byte buffer; the
        // descriptor is ours and open.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), expirations.as_mut_ptr().cast(), expirations.len()) };
        if n == 8 { Ok(u64::from_ne_bytes(expirations)) } else { Err(io::Error::last_os_error()) }
    }
}

impl AsFd for TimerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_an_absolute_time_and_is_acknowledged() {
        let timer = TimerFd::new(Reads::NonBlocking).unwrap();
        assert_eq!(timer.take_expiry().unwrap_err().kind(), io::ErrorKind::WouldBlock, "disarmed");
        timer.set_at(monotonic_now()).unwrap();
        let blocking = TimerFd::new(Reads::Block).unwrap();
        blocking.set_at(monotonic_now() + 1_000_000).unwrap();
        assert_eq!(blocking.take_expiry().unwrap(), 1, "waits for its expiry");
        assert_eq!(timer.take_expiry().unwrap(), 1, "a time already past fires at once");
        assert_eq!(timer.take_expiry().unwrap_err().kind(), io::ErrorKind::WouldBlock, "acknowledged");
    }
}

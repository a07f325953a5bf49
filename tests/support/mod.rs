//! The test kit: every integration test starts its servers and talks to them
//! through this module, so each helper exists once.
//!
//! - [`server`]: [`Binary`] (sprout, or the reference beanstalkd) and the
//!   [`ServerBuilder`] that starts it on a free loopback port or a UNIX socket,
//!   waits until the server answering there is our process, and hands back a
//!   [`Server`] that is killed and reaped when dropped.
//! - [`process`]: [`Process`], any child a test starts (stderr kept in a file,
//!   signals, `wait_exit`, `kill9`), and [`run`] for a command run to its end.
//! - [`spawn`]: the one lock under which tests pick ports, fork, and probe
//!   a starting server.
//! - [`client`]: [`Client`], raw protocol bytes over TCP or a UNIX socket, a
//!   reply reader that knows which replies carry a body, and the `stats`
//!   YAML as [`Stats`].
//! - [`http`]: the metrics port a server logged, raw HTTP requests and
//!   their responses, and Python's `prometheus_client` parser.
//! - [`browser`]: headless chromium, to load the status page as a person's
//!   browser would (the document after its scripts ran, a screenshot).
//! - [`procfs`]: what `/proc` says about a process (memory, CPU, ids).
//! - [`rng`]: a seeded generator for reproducible "random" input.
//!
//! Here: whether we run in CI (where nothing may be skipped), waiting for a
//! condition, and [`on_both!`], which runs one scenario against sprout and
//! against beanstalkd.
//!
//! Tests never time anything against a wall clock budget and never use a
//! fixed port: every wait polls a condition up to a generous deadline.
//!
//! A test file takes it with `mod support;` (a test made of a directory,
//! `tests/binlog/`, with `#[path = "../support/mod.rs"] mod support;`). Each
//! test crate compiles the whole kit and uses a part of it, so unused items
//! and re-exports are expected here.
#![allow(dead_code, unused_imports)]

pub mod browser;
pub mod client;
pub mod http;
pub mod process;
pub mod procfs;
pub mod rng;
pub mod server;
pub mod spawn;

use std::time::{Duration, Instant};

pub use client::{Addr, Client, Ending, ReadError, Stats, found, inserted_id, put_command, show};
pub use process::{Process, run};
pub use rng::Rng;
pub use server::{Binary, Exited, Server, ServerBuilder};
pub use spawn::free_port;

/// True when the tests run in CI (`CI` set, and not to `0` or `false`),
/// where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| !v.is_empty() && v != "0" && v != "false").unwrap_or(false)
}

/// Says why `test` cannot run here and returns, so the caller can return
/// too; in CI, where nothing may be skipped, it fails the test instead.
pub fn skip(test: &str, reason: &str) {
    assert!(!in_ci(), "{test}: {reason}, and CI must not skip");
    eprintln!("{test}: skipped, {reason}");
}

/// True when the tests run as root (mounts, `-u`, installing the package).
pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Polls `cond` until it holds (true) or `timeout` passes (false): at
/// once, then after 1 ms, 2 ms, 4 ms and every 10 ms from there (most
/// waits, a process's exit, a server noticing a close, end within a few
/// ms). Callers assert on the result, naming what they waited for.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Runs `$body(&Binary)` against sprout and, in a sibling test, against the
/// reference beanstalkd: `on_both!(case)` makes `case::sprout` and
/// `case::beanstalkd`. Without beanstalkd the second is skipped locally and
/// fails in CI. The body starts the servers it needs from the binary, so a
/// case that needs flags, several servers or none at all (`-h`) has the
/// same shape as the rest.
#[allow(unused_macros)]
macro_rules! on_both {
    ($body:ident) => {
        mod $body {
            #[test]
            fn sprout() {
                super::$body(&$crate::support::Binary::sprout());
            }

            #[test]
            fn beanstalkd() {
                let test = concat!(stringify!($body), "::beanstalkd");
                if let Some(beanstalkd) = $crate::support::Binary::beanstalkd_or_skip(test) {
                    super::$body(&beanstalkd);
                }
            }
        }
    };
}
pub(crate) use on_both;

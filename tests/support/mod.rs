//! Shared helpers for the integration tests: start a server (sprout or the
//! reference beanstalkd) on a free loopback port, kill it on drop, and talk
//! raw protocol bytes to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process owned by a test. Dropping it kills the process, so a
/// failing test never leaves a server behind.
pub struct Server {
    child: Child,
    pub port: u16,
    pub name: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of the sprout binary built by cargo for this test run.
pub fn sprout_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("sprout")
}

/// The reference server, if installed (Debian's `beanstalkd` package).
pub fn beanstalkd_bin() -> Option<PathBuf> {
    let candidates = ["/usr/bin/beanstalkd", "/usr/sbin/beanstalkd", "/usr/local/bin/beanstalkd"];
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// True when the tests run in CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| !v.is_empty() && v != "0" && v != "false").unwrap_or(false)
}

/// Returns the reference server's path, or prints why the test is skipped.
/// In CI a missing beanstalkd is a failure, never a skip.
pub fn beanstalkd_or_skip(test: &str) -> Option<PathBuf> {
    match beanstalkd_bin() {
        Some(p) => Some(p),
        None if in_ci() => panic!("{test}: beanstalkd is not installed, and CI must not skip"),
        None => {
            eprintln!("{test}: skipped, beanstalkd is not installed (apt-get install -y beanstalkd)");
            None
        }
    }
}

/// Asks the kernel for a free loopback port. The listener is dropped before
/// the server binds, so a collision is possible but rare; `start` retries.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    /// Starts sprout on a free port with extra flags.
    pub fn sprout(args: &[&str]) -> Server {
        Self::start("sprout", &sprout_bin(), args)
    }

    /// Starts the reference beanstalkd on a free port with extra flags.
    pub fn beanstalkd(bin: &Path, args: &[&str]) -> Server {
        Self::start("beanstalkd", bin, args)
    }

    fn start(name: &'static str, bin: &Path, args: &[&str]) -> Server {
        // `free_port` briefly opens a listener; a child forked by another
        // thread meanwhile would hold a copy of it until its exec. Picking
        // the port and spawning under one lock keeps test servers from
        // racing each other for it.
        static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());
        for _attempt in 0..5 {
            let guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
            let port = free_port();
            let child = Command::new(bin)
                .args(["-l", "127.0.0.1", "-p", &port.to_string()])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            drop(guard);
            let mut server = Server { child, port, name };
            if server.wait_until_listening() {
                return server;
            }
            // Someone else's server on that port, or ours failed to bind:
            // dropping `server` kills our child; try another port.
        }
        panic!("{name} did not start listening");
    }

    /// Polls until the port accepts connections; false if the process died.
    /// Since tests running in parallel may draw the same free port, the
    /// server that answers must report our child's pid in `stats`.
    fn wait_until_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return self.answers_with_our_pid();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn answers_with_our_pid(&self) -> bool {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut client = Client { reader: BufReader::new(stream.try_clone().unwrap()), stream };
        client.send(b"stats\r\n");
        let Ok(reply) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client.read_reply())) else {
            return false;
        };
        let want = format!("\npid: {}\n", self.child.id());
        String::from_utf8_lossy(&reply).contains(&want)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }
}

/// A raw protocol client with a reply reader that understands the framing of
/// beanstalk replies (a line, plus a body for RESERVED, FOUND and OK).
pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads one whole reply, body included, as raw bytes.
    pub fn read_reply(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read reply line");
        assert!(line.ends_with(b"\r\n"), "incomplete reply line: {:?}", String::from_utf8_lossy(&line));
        let text = String::from_utf8_lossy(&line).to_string();
        let words: Vec<&str> = text.trim_end().split(' ').collect();
        let body_len = match words.as_slice() {
            ["RESERVED", _, n] | ["FOUND", _, n] => n.parse::<usize>().ok(),
            ["OK", n] => n.parse::<usize>().ok(),
            _ => None,
        };
        if let Some(n) = body_len {
            let mut body = vec![0; n + 2];
            self.reader.read_exact(&mut body).expect("read reply body");
            line.extend_from_slice(&body);
        }
        line
    }

    /// Sends a command and returns its reply as a string.
    pub fn call(&mut self, command: &str) -> String {
        self.send(command.as_bytes());
        String::from_utf8(self.read_reply()).unwrap()
    }

    /// True if nothing arrives within `wait` (the server sent no reply).
    pub fn is_silent_for(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut byte = [0u8; 1];
        let silent = match self.reader.read(&mut byte) {
            Ok(0) => false,
            Ok(_) => false,
            Err(_) => true,
        };
        self.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        silent
    }

    /// True once the server has closed the connection (EOF).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}

/// A tiny deterministic pseudo-random sequence (xorshift64*), so "random"
/// input and timings in tests are reproducible from their seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

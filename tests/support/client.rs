//! The one protocol client of the tests: raw bytes out, whole replies in.
//!
//! A reply is a line, plus `<bytes>` and CRLF of body after `RESERVED <id>
//! <bytes>`, `FOUND <id> <bytes>` and `OK <bytes>`. The client keeps what it
//! received in its own buffer, so it can also say what arrived when a reply
//! did not (a timeout, a closed connection), which is what the differential
//! transcripts record.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::ops::Index;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

/// How long a reply may take before a test gives up on it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Addr {
    /// `127.0.0.1:port`.
    pub fn loopback(port: u16) -> Addr {
        Addr::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(addr) => write!(f, "{addr}"),
            Addr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A connected socket of either kind.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn connect(addr: &Addr) -> io::Result<Stream> {
        Ok(match addr {
            Addr::Tcp(addr) => {
                let stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                Stream::Tcp(stream)
            }
            Addr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        })
    }

    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(timeout)),
            Stream::Unix(s) => s.set_read_timeout(Some(timeout)),
        }
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why [`Client::try_read_reply`] has no whole reply. `partial` is what
/// arrived of one (taken out of the buffer).
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The server closed the connection (or reset it).
    Closed { partial: Vec<u8> },
    /// The time was up.
    TimedOut { partial: Vec<u8> },
}

/// What came of a wait for silence.
#[derive(Debug, PartialEq, Eq)]
pub enum Silence {
    /// Nothing arrived.
    Silent,
    /// The server closed the connection, sending nothing.
    Closed,
    /// These bytes arrived (they stay buffered for the next read).
    Spoke(Vec<u8>),
}

enum Fill {
    Data,
    Eof,
    Timeout,
}

pub struct Client {
    stream: Stream,
    /// Received and not read yet.
    buf: Vec<u8>,
    eof: bool,
    /// The connection ended with a reset (RST), not a clean close.
    reset: bool,
}

/// How the server ended a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// A clean close (FIN): every byte sent before it arrived.
    Closed,
    /// A reset (RST): what the server had not sent yet is lost.
    Reset,
}

impl Client {
    /// Connects, or panics naming the address.
    pub fn connect(addr: &Addr) -> Client {
        Client::try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// Connects to `127.0.0.1:port`.
    pub fn connect_tcp(port: u16) -> Client {
        Client::connect(&Addr::loopback(port))
    }

    pub fn try_connect(addr: &Addr) -> io::Result<Client> {
        Ok(Client { stream: Stream::connect(addr)?, buf: Vec::new(), eof: false, reset: false })
    }

    /// True for a TCP connection whose two ends are the same socket: a
    /// connect to a free port may pick that very port as its source and
    /// connect to itself.
    pub fn is_connected_to_itself(&self) -> bool {
        match &self.stream {
            Stream::Tcp(s) => s.local_addr().ok() == s.peer_addr().ok(),
            Stream::Unix(_) => false,
        }
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.try_send(bytes).expect("send to the server");
    }

    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(bytes.as_ref())
    }

    /// A second handle for writing, for a thread that sends while this one
    /// reads (so neither side's socket buffer can stall the other).
    pub fn writer(&self) -> impl Write + Send + 'static {
        self.stream.try_clone().expect("clone the connection")
    }

    /// Shuts down our writing side (a half-close).
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// Reads one whole reply, body included; panics after 10 s or if the
    /// connection closes first.
    pub fn read_reply(&mut self) -> Vec<u8> {
        match self.try_read_reply(REPLY_TIMEOUT) {
            Ok(reply) => {
                assert!(reply.ends_with(b"\r\n"), "reply not ended by CRLF: {}", show(&reply));
                reply
            }
            Err(ReadError::Closed { partial }) => panic!("connection closed before a whole reply: {}", show(&partial)),
            Err(ReadError::TimedOut { partial }) => {
                panic!("no whole reply within {REPLY_TIMEOUT:?}: {}", show(&partial))
            }
        }
    }

    /// Reads one whole reply within `timeout`.
    pub fn try_read_reply(&mut self, timeout: Duration) -> Result<Vec<u8>, ReadError> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let total = nl + 1 + body_len(&self.buf[..=nl]).map_or(0, |n| n + 2);
                if self.buf.len() >= total {
                    return Ok(self.take_front(total));
                }
            }
            match self.fill(until) {
                Fill::Data => {}
                Fill::Eof => return Err(ReadError::Closed { partial: std::mem::take(&mut self.buf) }),
                Fill::Timeout => return Err(ReadError::TimedOut { partial: std::mem::take(&mut self.buf) }),
            }
        }
    }

    /// Reads exactly `n` bytes, whatever they are; panics if they do not
    /// come within 10 s.
    pub fn read_bytes(&mut self, n: usize) -> Vec<u8> {
        let until = Instant::now() + REPLY_TIMEOUT;
        while self.buf.len() < n {
            if !matches!(self.fill(until), Fill::Data) {
                panic!("{} of {n} bytes came", self.buf.len());
            }
        }
        self.take_front(n)
    }

    /// The first `n` bytes of the buffer, taken out of it. (Copied in bulk:
    /// a byte-by-byte drain is slow in the unoptimised builds tests run in,
    /// and some tests read gigabytes.)
    fn take_front(&mut self, n: usize) -> Vec<u8> {
        let front = self.buf[..n].to_vec();
        self.buf.drain(..n);
        front
    }

    /// Receives more bytes into the buffer, waiting until `until`.
    fn fill(&mut self, until: Instant) -> Fill {
        if self.eof {
            return Fill::Eof;
        }
        let now = Instant::now();
        if now >= until {
            return Fill::Timeout;
        }
        self.stream.set_read_timeout(until - now).unwrap();
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Fill::Eof
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Fill::Data
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Fill::Timeout,
            Err(e) if e.kind() == ErrorKind::Interrupted => Fill::Data,
            // A close with unread data in the server's buffer comes as RST.
            Err(_) => {
                self.eof = true;
                self.reset = true;
                Fill::Eof
            }
        }
    }

    /// Reads until the server ends the connection (panics after 10 s):
    /// every byte that came, and how it ended.
    pub fn read_until_closed(&mut self) -> (Vec<u8>, Ending) {
        let until = Instant::now() + REPLY_TIMEOUT;
        loop {
            match self.fill(until) {
                Fill::Data => {}
                Fill::Eof => break,
                Fill::Timeout => panic!("still open after {REPLY_TIMEOUT:?}: {}", show(&self.buf)),
            }
        }
        let ending = if self.reset { Ending::Reset } else { Ending::Closed };
        (std::mem::take(&mut self.buf), ending)
    }

    /// Sends raw bytes and reads one reply.
    pub fn request(&mut self, command: impl AsRef<[u8]>) -> Vec<u8> {
        self.send(command);
        self.read_reply()
    }

    /// Sends raw bytes and returns the reply as text.
    pub fn call(&mut self, command: impl AsRef<[u8]>) -> String {
        let reply = self.request(command);
        String::from_utf8(reply).unwrap_or_else(|e| panic!("reply is not UTF-8: {}", show(e.as_bytes())))
    }

    /// Reads one reply and asserts its exact bytes (shown escaped).
    #[track_caller]
    pub fn expect_reply(&mut self, want: impl AsRef<[u8]>) {
        let got = self.read_reply();
        assert_eq!(show(&got), show(want.as_ref()));
    }

    /// Sends a command and asserts the exact bytes of its reply.
    #[track_caller]
    pub fn exchange(&mut self, command: impl AsRef<[u8]>, want: impl AsRef<[u8]>) {
        let command = command.as_ref();
        let got = self.request(command);
        assert_eq!(show(&got), show(want.as_ref()), "reply to {}", show(&command[..command.len().min(80)]));
    }

    /// Sends `commands` from a second thread while reading `n` replies.
    pub fn pipeline(&mut self, commands: Vec<u8>, n: usize) -> Vec<Vec<u8>> {
        let mut writer = self.writer();
        let sender = thread::spawn(move || writer.write_all(&commands));
        let replies = (0..n).map(|_| self.read_reply()).collect();
        sender.join().expect("writer thread").expect("write the commands");
        replies
    }

    /// True if nothing arrives within `wait` (and the connection stays open).
    pub fn is_silent_for(&mut self, wait: Duration) -> bool {
        self.silence(wait) == Silence::Silent
    }

    /// Waits `wait` for anything to arrive.
    pub fn silence(&mut self, wait: Duration) -> Silence {
        let until = Instant::now() + wait;
        while self.buf.is_empty() && matches!(self.fill(until), Fill::Data) {}
        if !self.buf.is_empty() {
            Silence::Spoke(self.buf.clone())
        } else if self.eof {
            Silence::Closed
        } else {
            Silence::Silent
        }
    }

    /// Reads until the server closes the connection or `timeout` passes:
    /// whether it closed, and what arrived unread before.
    pub fn wait_closed(&mut self, timeout: Duration) -> (bool, Vec<u8>) {
        let until = Instant::now() + timeout;
        while matches!(self.fill(until), Fill::Data) {}
        (self.eof, std::mem::take(&mut self.buf))
    }

    /// True once the server has closed the connection having sent nothing
    /// more (waits up to 10 s).
    pub fn is_closed(&mut self) -> bool {
        let (closed, unread) = self.wait_closed(REPLY_TIMEOUT);
        closed && unread.is_empty()
    }

    /// Whatever has arrived and was not read, without waiting.
    pub fn unread(&mut self) -> Vec<u8> {
        self.stream.set_nonblocking(true).unwrap();
        let mut chunk = [0u8; 65536];
        while let Ok(n @ 1..) = self.stream.read(&mut chunk) {
            self.buf.extend_from_slice(&chunk[..n]);
        }
        self.stream.set_nonblocking(false).unwrap();
        std::mem::take(&mut self.buf)
    }

    // ----- commands ---------------------------------------------------------

    /// `stats`.
    pub fn stats(&mut self) -> Stats {
        Stats::parse(&self.request("stats\r\n"))
    }

    /// One value of `stats`.
    pub fn stat(&mut self, key: &str) -> String {
        self.stats()[key].clone()
    }

    /// The YAML reply of `command` (no CRLF): `stats-tube default`, ...
    pub fn yaml(&mut self, command: &str) -> Stats {
        Stats::parse(&self.request(format!("{command}\r\n")))
    }

    /// `stats-job`, or `None` for `NOT_FOUND`.
    pub fn stats_job(&mut self, id: u64) -> Option<Stats> {
        let reply = self.request(format!("stats-job {id}\r\n"));
        if reply == b"NOT_FOUND\r\n" { None } else { Some(Stats::parse(&reply)) }
    }

    /// The reply to a put.
    pub fn put_reply(&mut self, pri: u32, delay: u32, ttr: u32, body: impl AsRef<[u8]>) -> String {
        String::from_utf8(self.request(put_command(pri, delay, ttr, body))).expect("UTF-8 reply to put")
    }

    /// Puts a job and returns its id; panics unless `INSERTED`.
    pub fn put(&mut self, pri: u32, delay: u32, ttr: u32, body: impl AsRef<[u8]>) -> u64 {
        let reply = self.put_reply(pri, delay, ttr, body);
        inserted_id(reply.as_bytes()).unwrap_or_else(|| panic!("put: expected INSERTED, got {reply:?}"))
    }

    /// `peek <id>`: the body, or `None` for `NOT_FOUND`.
    pub fn peek(&mut self, id: u64) -> Option<Vec<u8>> {
        found(&self.request(format!("peek {id}\r\n"))).map(|(got, body)| {
            assert_eq!(got, id, "peek {id} answered another job");
            body
        })
    }

    /// The id `command` (`peek-ready`, `peek-buried`, `reserve-job 3`, ...)
    /// finds, or `None` for `NOT_FOUND`.
    pub fn peek_id(&mut self, command: &str) -> Option<u64> {
        found(&self.request(format!("{command}\r\n"))).map(|(id, _)| id)
    }
}

/// The body length a reply line announces.
fn body_len(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?.strip_suffix("\r\n")?;
    match text.split(' ').collect::<Vec<_>>().as_slice() {
        ["RESERVED", _, n] | ["FOUND", _, n] | ["OK", n] => n.parse().ok(),
        _ => None,
    }
}

/// The bytes of `put <pri> <delay> <ttr> <bytes>`, its body and CRLF.
pub fn put_command(pri: u32, delay: u32, ttr: u32, body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let mut command = format!("put {pri} {delay} {ttr} {}\r\n", body.len()).into_bytes();
    command.extend_from_slice(body);
    command.extend_from_slice(b"\r\n");
    command
}

/// The id of an `INSERTED <id>` reply.
pub fn inserted_id(reply: &[u8]) -> Option<u64> {
    std::str::from_utf8(reply).ok()?.strip_prefix("INSERTED ")?.strip_suffix("\r\n")?.parse().ok()
}

/// `Some((id, body))` for `FOUND` and `RESERVED`, `None` for `NOT_FOUND`;
/// panics on any other reply.
pub fn found(reply: &[u8]) -> Option<(u64, Vec<u8>)> {
    if reply == b"NOT_FOUND\r\n" {
        return None;
    }
    let line_end = reply.windows(2).position(|w| w == b"\r\n").expect("a reply line");
    let line = std::str::from_utf8(&reply[..line_end]).expect("UTF-8 reply line");
    match line.split(' ').collect::<Vec<_>>().as_slice() {
        ["FOUND" | "RESERVED", id, _] => Some((id.parse().unwrap(), reply[line_end + 2..reply.len() - 2].to_vec())),
        _ => panic!("expected FOUND, RESERVED or NOT_FOUND, got {}", show(reply)),
    }
}

/// Bytes shown readably (`\r`, `\n`, `\x00`, ...) in assertion messages.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// The `key: value` lines of a YAML reply (`stats`, `stats-job`,
/// `stats-tube`), with the quotes of quoted strings removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats(HashMap<String, String>);

impl Stats {
    /// Parses an `OK <bytes>` reply; panics on any other.
    pub fn parse(reply: &[u8]) -> Stats {
        let text = String::from_utf8_lossy(reply);
        assert!(text.starts_with("OK "), "expected an OK reply, got {text:?}");
        let fields = text.lines().skip(2).filter_map(|l| l.split_once(": "));
        Stats(fields.map(|(k, v)| (k.to_string(), v.trim().trim_matches('"').to_string())).collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A numeric value; panics naming the key if it is missing or not a
    /// number.
    pub fn num(&self, key: &str) -> u64 {
        self[key].parse().unwrap_or_else(|_| panic!("{key} is not a number: {self:?}"))
    }
}

impl Index<&str> for Stats {
    type Output = String;

    fn index(&self, key: &str) -> &String {
        self.0.get(key).unwrap_or_else(|| panic!("no {key} in {self:?}"))
    }
}

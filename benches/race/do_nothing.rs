//! The do-nothing server: the ceiling sprout is raced against (issue 15).
//!
//! It reads the requests the race sends, `put`, `reserve`, `delete` and
//! `stats`, and answers them byte for byte as sprout and beanstalkd do, but
//! keeps no queue: no tubes, no priorities, no reservations, no timers, one
//! global list of bodies that `reserve` takes from the front of, and a
//! `delete` of any id is `DELETED`. Like sprout it is one thread on a mio
//! (epoll) loop, reads into one shared buffer, and answers all a read
//! decoded in one write. What it can do is what this machine, its kernel's
//! loopback and the race's client can do for a beanstalk server; the table's
//! sprout/do-nothing column is how close sprout comes.
//!
//! It is not a `[[bin]]` of the package: the race runs its own executable
//! with [`FLAG`] first (see `server.rs`), so `cargo bench --bench race`
//! builds it with nothing else, and it is measured as a process of its own,
//! as the real servers are.
//!
//! With `-b DIR` it also logs each put, as little as a log can
//! (`do_nothing_log.rs`), and sends a turn's replies only after the turn's
//! records are written, as sprout does.
//!
//! Deliberate simplifications, none of which the race's loads reach: a
//! `reserve` on an empty list answers `TIMED_OUT` instead of waiting, and
//! any command it does not know is `UNKNOWN_COMMAND`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::do_nothing_log::Log;

/// The first argument that makes the race's executable this server.
pub const FLAG: &str = "--serve-do-nothing";

const LISTENER: Token = Token(usize::MAX);

/// The longest request line beanstalkd accepts (224 bytes with the CRLF).
const LINE_MAX: usize = 224;

/// One read's room, shared by all connections, as sprout's is.
const READ_BUFFER: usize = 128 * 1024;

/// The job size limit (`-z`), beanstalkd's default.
const MAX_JOB_SIZE: usize = 65_535;

/// One client: what it sent that is not a whole request yet, and replies
/// the socket has not taken yet.
struct Conn {
    stream: TcpStream,
    pending_input: Vec<u8>,
    output: Vec<u8>,
    output_sent: usize,
    closing: bool,
}

/// The whole server state: the jobs put and not yet reserved, in put
/// order, and the log of the puts, with `-b`.
#[derive(Default)]
struct Jobs {
    ready: VecDeque<(u64, Box<[u8]>)>,
    last_id: u64,
    connections: usize,
    log: Option<Log>,
}

/// Serves on `-l ADDR -p PORT`, logging puts with `-b DIR` (and `-s`,
/// `-f`, `-F`; other flags are ignored), until killed.
pub fn serve(args: &[String]) -> ! {
    let value = |flag: &str| flag_value(args, flag).cloned();
    let host = value("-l").unwrap_or_else(|| "127.0.0.1".into());
    let port = value("-p").unwrap_or_else(|| "11300".into());
    let addr: SocketAddr = format!("{host}:{port}").parse().expect("do-nothing: -l and -p make an address");
    if let Err(e) = Log::open(args).and_then(|log| run(addr, log)) {
        eprintln!("do-nothing: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

/// The word after `flag` in `args`, if `flag` is there.
pub fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1))
}

fn run(addr: SocketAddr, log: Option<Log>) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<Conn> = Slab::new();
    let mut jobs = Jobs { log, ..Jobs::default() };
    let mut scratch = vec![0u8; READ_BUFFER];
    // With a log: the connections whose replies wait for the turn's write.
    let mut answered = Vec::new();
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut conns, &mut jobs)?;
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else { continue };
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                read_and_answer(conn, &mut jobs, &mut scratch);
            }
            if jobs.log.is_some() {
                answered.push(key);
            } else {
                flush_or_close(&mut conns, key, &poll, &mut jobs);
            }
        }
        if let Some(log) = &mut jobs.log {
            log.commit()?;
            for key in answered.drain(..) {
                flush_or_close(&mut conns, key, &poll, &mut jobs);
            }
        }
    }
}

/// Sends connection `key`'s replies; closes it if it is done.
fn flush_or_close(conns: &mut Slab<Conn>, key: usize, poll: &Poll, jobs: &mut Jobs) {
    let Some(conn) = conns.get_mut(key) else { return };
    flush(conn);
    if conn.closing && conn.output_sent == conn.output.len() {
        let mut conn = conns.remove(key);
        let _ = poll.registry().deregister(&mut conn.stream);
        jobs.connections -= 1;
    }
}

fn accept_all(listener: &TcpListener, poll: &Poll, conns: &mut Slab<Conn>, jobs: &mut Jobs) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let entry = conns.vacant_entry();
                let mut conn =
                    Conn { stream, pending_input: Vec::new(), output: Vec::new(), output_sent: 0, closing: false };
                poll.registry().register(
                    &mut conn.stream,
                    Token(entry.key()),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                entry.insert(conn);
                jobs.connections += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads until the socket is drained, answering every whole request as it
/// comes; the replies go out in one write afterwards ([`flush`]).
fn read_and_answer(conn: &mut Conn, jobs: &mut Jobs, scratch: &mut [u8]) {
    while !conn.closing {
        let n = match conn.stream.read(scratch) {
            Ok(0) => {
                conn.closing = true;
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                conn.closing = true;
                return;
            }
        };
        if conn.pending_input.is_empty() {
            let used = answer_all(&scratch[..n], jobs, &mut conn.output, &mut conn.closing);
            conn.pending_input.extend_from_slice(&scratch[used..n]);
        } else {
            conn.pending_input.extend_from_slice(&scratch[..n]);
            let used = answer_all(&conn.pending_input, jobs, &mut conn.output, &mut conn.closing);
            conn.pending_input.drain(..used);
        }
    }
}

fn flush(conn: &mut Conn) {
    while conn.output_sent < conn.output.len() {
        match conn.stream.write(&conn.output[conn.output_sent..]) {
            Ok(0) => {
                conn.closing = true;
                conn.output.clear();
                conn.output_sent = 0;
                return;
            }
            Ok(n) => conn.output_sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                conn.closing = true;
                conn.output.clear();
                conn.output_sent = 0;
                return;
            }
        }
    }
    conn.output.clear();
    conn.output_sent = 0;
}

/// Answers every whole request at the front of `input` into `out`; returns
/// how many bytes they took.
fn answer_all(input: &[u8], jobs: &mut Jobs, out: &mut Vec<u8>, closing: &mut bool) -> usize {
    let mut used = 0;
    while !*closing {
        match answer_one(&input[used..], jobs, out) {
            Step::Used(n) => used += n,
            Step::Incomplete => break,
            Step::Quit => *closing = true,
        }
    }
    used
}

enum Step {
    Used(usize),
    Incomplete,
    Quit,
}

fn answer_one(input: &[u8], jobs: &mut Jobs, out: &mut Vec<u8>) -> Step {
    let window = &input[..input.len().min(LINE_MAX)];
    let Some(end) = memchr::memmem::find(window, b"\r\n") else {
        if window.len() == LINE_MAX {
            out.extend_from_slice(b"BAD_FORMAT\r\n");
            return Step::Quit;
        }
        return Step::Incomplete;
    };
    let line = &input[..end];
    let after_line = end + 2;
    let mut words = line.split(|&b| b == b' ');
    let name = words.next().unwrap_or_default();
    match name {
        b"put" => {
            let fields: Vec<&[u8]> = words.collect();
            let [pri, delay, ttr, bytes] = fields[..] else {
                out.extend_from_slice(b"BAD_FORMAT\r\n");
                return Step::Used(after_line);
            };
            let numbers = (number(pri), number(delay), number(ttr), number(bytes));
            let (Some(_), Some(_), Some(_), Some(size)) = numbers else {
                out.extend_from_slice(b"BAD_FORMAT\r\n");
                return Step::Used(after_line);
            };
            let size = size as usize;
            if size > MAX_JOB_SIZE {
                // The race never sends one: answering without reading the
                // body past is enough here.
                out.extend_from_slice(b"JOB_TOO_BIG\r\n");
                return Step::Used(after_line);
            }
            let whole = after_line + size + 2;
            if input.len() < whole {
                return Step::Incomplete;
            }
            if &input[after_line + size..whole] != b"\r\n" {
                out.extend_from_slice(b"EXPECTED_CRLF\r\n");
                return Step::Used(whole);
            }
            jobs.last_id += 1;
            let body = &input[after_line..after_line + size];
            if let Some(log) = &mut jobs.log {
                log.append(body);
            }
            jobs.ready.push_back((jobs.last_id, body.into()));
            out.extend_from_slice(b"INSERTED ");
            push_decimal(out, jobs.last_id);
            out.extend_from_slice(b"\r\n");
            Step::Used(whole)
        }
        b"reserve" | b"reserve-with-timeout" => {
            match jobs.ready.pop_front() {
                Some((id, body)) => {
                    out.extend_from_slice(b"RESERVED ");
                    push_decimal(out, id);
                    out.push(b' ');
                    push_decimal(out, body.len() as u64);
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&body);
                    out.extend_from_slice(b"\r\n");
                }
                None => out.extend_from_slice(b"TIMED_OUT\r\n"),
            }
            Step::Used(after_line)
        }
        b"delete" => {
            match words.next().and_then(number) {
                Some(_) => out.extend_from_slice(b"DELETED\r\n"),
                None => out.extend_from_slice(b"BAD_FORMAT\r\n"),
            }
            Step::Used(after_line)
        }
        b"stats" => {
            let yaml = format!(
                "---\ncurrent-jobs-ready: {}\ncurrent-connections: {}\ntotal-jobs: {}\n",
                jobs.ready.len(),
                jobs.connections,
                jobs.last_id
            );
            out.extend_from_slice(format!("OK {}\r\n{yaml}\r\n", yaml.len()).as_bytes());
            Step::Used(after_line)
        }
        b"quit" => Step::Quit,
        _ => {
            out.extend_from_slice(b"UNKNOWN_COMMAND\r\n");
            Step::Used(after_line)
        }
    }
}

/// A decimal of ASCII digits only, as beanstalkd reads its numbers.
fn number(word: &[u8]) -> Option<u64> {
    if word.is_empty() || word.len() > 20 {
        return None;
    }
    word.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Appends `n` in decimal without `fmt`'s machinery.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

//! The load generator: mio-driven client threads that pipeline requests,
//! batch their writes (one write per connection per wake-up) and check every
//! reply exactly. Any unexpected reply ends the run with an error.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use sprout::timerfd::{Reads, TimerFd, monotonic_now};

/// The clock that timestamps in job bodies count from (shared by all threads).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch(t: Instant) -> u64 {
    t.duration_since(epoch()).as_nanos() as u64
}

/// `CLOCK_MONOTONIC` at [`epoch`], in nanoseconds (`Instant` is that clock
/// on Linux), to line client timelines up with `perf` or `strace` traces.
pub fn epoch_monotonic_ns() -> u64 {
    monotonic_now() - epoch().elapsed().as_nanos() as u64
}

/// `CLOCK_REALTIME` at [`epoch`], in nanoseconds: the kernel stamps
/// received data on that clock.
fn epoch_realtime_ns() -> u64 {
    static AT: OnceLock<u64> = OnceLock::new();
    *AT.get_or_init(|| {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes the struct it is given and nothing
        // else.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        now - epoch().elapsed().as_nanos() as u64
    })
}

/// Reads like `read`, and returns when the kernel received the last of the
/// data read (`SO_TIMESTAMPNS` must be on), in nanoseconds since [`epoch`].
/// On loopback that is when the server's write ran, whether or not this
/// thread was on a CPU then.
fn recv_stamped(sock: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; the fields set below point at
    // live buffers of the sizes given.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: recvmsg writes into the buffers `msg` describes.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG_* macros walk the control buffer recvmsg filled.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                let at = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                stamp = Some(at.saturating_sub(epoch_realtime_ns()));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

/// Whether to record a [`Timeline`] per stamped job (`RACE_TRACE_DIR` set).
pub fn tracing() -> bool {
    std::env::var_os("RACE_TRACE_DIR").is_some()
}

/// One stamped job's life as the client saw it, in nanoseconds since
/// [`epoch`]: to tell the client's delays from the server's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timeline {
    pub id: u64,
    /// The stamp: when the put was due to leave.
    pub due: u64,
    /// When the client wrote it.
    pub sent: u64,
    /// When the client read its `INSERTED`.
    pub inserted: u64,
    /// When the worker that got it wrote its `reserve`.
    pub asked: u64,
    /// When the `RESERVED` reached the worker's socket (the kernel's
    /// receive stamp; 0 without one).
    pub arrived: u64,
    /// When the client read the `RESERVED`.
    pub reserved: u64,
}

/// Digits of a timestamp at the start of a stamped body.
const STAMP_LEN: usize = 20;

/// A reply from the server, parsed strictly.
#[derive(Debug)]
pub enum Reply<'a> {
    Inserted(u64),
    Reserved {
        id: u64,
        body: &'a [u8],
    },
    Deleted,
    /// Any other line, kept for the error message.
    Other(&'a [u8]),
}

/// Replies longer than this without a CRLF are garbage.
const MAX_LINE: usize = 256;

fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Parses one reply from the front of `buf`: `Ok(None)` if it is not all there yet.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, String> {
    let Some(end) = memchr::memmem::find(&buf[..buf.len().min(MAX_LINE + 2)], b"\r\n") else {
        if buf.len() > MAX_LINE {
            return Err(format!("reply line too long: {:?}", String::from_utf8_lossy(&buf[..MAX_LINE])));
        }
        return Ok(None);
    };
    let line = &buf[..end];
    let used = end + 2;
    if let Some(rest) = line.strip_prefix(b"INSERTED ") {
        return match digits(rest) {
            Some(id) => Ok(Some((Reply::Inserted(id), used))),
            None => Ok(Some((Reply::Other(line), used))),
        };
    }
    if let Some(rest) = line.strip_prefix(b"RESERVED ") {
        let mut parts = rest.splitn(2, |&b| b == b' ');
        let (Some(id), Some(size)) = (parts.next().and_then(digits), parts.next().and_then(digits)) else {
            return Ok(Some((Reply::Other(line), used)));
        };
        let size = size as usize;
        if buf.len() < used + size + 2 {
            return Ok(None);
        }
        if &buf[used + size..used + size + 2] != b"\r\n" {
            return Err(format!("RESERVED {id} {size}: body not followed by CRLF"));
        }
        return Ok(Some((Reply::Reserved { id, body: &buf[used..used + size] }, used + size + 2)));
    }
    if line == b"DELETED" {
        return Ok(Some((Reply::Deleted, used)));
    }
    Ok(Some((Reply::Other(line), used)))
}

/// What a body must look like.
#[derive(Clone, Debug)]
pub enum BodyCheck {
    /// Exactly these bytes.
    Exact(Arc<[u8]>),
    /// A timestamp of [`STAMP_LEN`] digits, then these padding bytes.
    Stamped(Arc<[u8]>),
}

/// What a worker does with the timestamp in a body.
#[derive(Clone, Copy, Debug)]
pub enum Stamp {
    /// Nothing (the body is checked all the same).
    None,
    /// Record reserve time - stamp (end-to-end latency).
    Latency,
    /// Record arrival - (stamp + delay) (how late a delayed job came), the
    /// arrival being when the `RESERVED` reached the worker's socket (the
    /// kernel's receive stamp), so that the worker's own wait for a CPU is
    /// not counted; the reply as read is kept apart
    /// ([`Outcome::samples_read`]).
    Lateness(Duration),
}

/// Which time a producer writes at the start of a stamped body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StampTime {
    /// When the put was due to leave (a paced put's token; else the
    /// wake-up): latencies from it include the client's own lateness,
    /// which is what a user waiting for the job sees.
    Due,
    /// The clock read just before the put is written: latencies from it
    /// leave out how late the client was, e.g. a delayed job's lateness
    /// counts from the put the server actually got.
    Sent,
}

/// What a stamped producer puts: the stamp, then `pad`, with `delay`.
#[derive(Clone, Debug)]
pub struct Stamping {
    pad: Arc<[u8]>,
    delay: u32,
    time: StampTime,
}

/// A body of `size` bytes: `a..z` repeated.
pub fn pattern(size: usize) -> Arc<[u8]> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

#[derive(Clone, Debug)]
pub enum RoleKind {
    /// Puts, `depth` in flight. `paced` producers spend the thread's rate
    /// tokens; stamped bodies start with a time (see [`StampTime`]).
    Producer { cmd: Arc<[u8]>, stamped: Option<Stamping>, paced: bool },
    /// `reserve` then `delete`, `depth` reserves in flight. `limited` ones
    /// spend the thread's quota; others reserve for as long as the run lasts.
    Worker { check: BodyCheck, stamp: Stamp, limited: bool },
    /// `put` + `reserve` together, then `delete`: bounded memory with big bodies.
    Cycle { cmd: Arc<[u8]>, check: BodyCheck },
}

/// One connection's behaviour.
#[derive(Clone, Debug)]
pub struct Role {
    pub kind: RoleKind,
    pub depth: usize,
    /// Whether its completed units count as the measured operations.
    pub counts: bool,
}

impl Role {
    /// `put 0 0 120 <size>` with a fixed body.
    pub fn putter(body: &[u8], depth: usize) -> Role {
        Role::delayed_putter(body, 0, depth)
    }

    /// `put 0 <delay> 120 <size>` with a fixed body.
    pub fn delayed_putter(body: &[u8], delay: u32, depth: usize) -> Role {
        let cmd = put_cmd(body, delay);
        Role { kind: RoleKind::Producer { cmd, stamped: None, paced: false }, depth, counts: true }
    }

    /// A producer whose bodies carry a time (padded to `size`).
    pub fn stamped_producer(size: usize, delay: u32, time: StampTime, paced: bool, depth: usize) -> Role {
        let stamping = Stamping { pad: pattern(size.max(STAMP_LEN) - STAMP_LEN), delay, time };
        let kind = RoleKind::Producer { cmd: Arc::from(&[][..]), stamped: Some(stamping), paced };
        Role { kind, depth, counts: false }
    }

    pub fn worker(check: BodyCheck, stamp: Stamp, limited: bool, depth: usize, counts: bool) -> Role {
        Role { kind: RoleKind::Worker { check, stamp, limited }, depth, counts }
    }

    pub fn cycle(body: &[u8], depth: usize) -> Role {
        let mut cmd = put_cmd(body, 0).to_vec();
        cmd.extend_from_slice(b"reserve\r\n");
        Role { kind: RoleKind::Cycle { cmd: cmd.into(), check: BodyCheck::Exact(body.into()) }, depth, counts: true }
    }

    fn is_paced(&self) -> bool {
        matches!(self.kind, RoleKind::Producer { paced: true, .. })
    }
}

pub fn stamped_check(size: usize) -> BodyCheck {
    BodyCheck::Stamped(pattern(size.max(STAMP_LEN) - STAMP_LEN))
}

fn put_cmd(body: &[u8], delay: u32) -> Arc<[u8]> {
    let mut cmd = format!("put 0 {delay} 120 {}\r\n", body.len()).into_bytes();
    cmd.extend_from_slice(body);
    cmd.extend_from_slice(b"\r\n");
    cmd.into()
}

/// How long a run lasts and what counts.
#[derive(Clone, Debug)]
pub enum Limit {
    /// Issue for `warmup + measure`, count completions inside the last
    /// `measure`, then keep reading for `grace` (replies still count).
    Time { warmup: Duration, measure: Duration, grace: Duration },
    /// Issue exactly this many operations in total and wait for all of them;
    /// fail after `timeout`.
    Count { total: u64, timeout: Duration },
}

/// A load to run against one server.
#[derive(Clone, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    pub roles: Vec<Role>,
    pub threads: usize,
    pub limit: Limit,
    /// Total rate for paced producers (jobs/s).
    pub rate: f64,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Completed units inside the window.
    pub ops: u64,
    /// The window, in seconds.
    pub secs: f64,
    /// Latency (or lateness) samples in nanoseconds, sorted.
    pub samples: Vec<i64>,
    /// Lateness samples taken when the worker read the reply instead of
    /// when it arrived ([`Stamp::Lateness`]), sorted.
    pub samples_read: Vec<i64>,
    /// How late paced puts left the client (sent - due), in nanoseconds,
    /// sorted: the floor under any latency measured from the due time.
    pub send_lateness: Vec<i64>,
    /// Client CPU seconds used inside the window (all threads).
    pub client_cpu: f64,
    /// Jobs inserted / reserved by producers / workers over the whole run.
    pub inserted: u64,
    pub reserved: u64,
    /// Stamped jobs' timelines, when [`tracing`], and the client threads'
    /// ids, to find them in a `perf` trace.
    pub timelines: Vec<Timeline>,
    pub thread_ids: Vec<i32>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9)
    }

    /// The q-quantile of the samples (0..=1), in nanoseconds.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        quantile(&self.samples, q)
    }

    /// The q-quantile of the paced puts' send lateness, in nanoseconds.
    pub fn send_lateness_quantile(&self, q: f64) -> Option<i64> {
        quantile(&self.send_lateness, q)
    }
}

pub fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    let n = sorted.len();
    (n > 0).then(|| sorted[((n - 1) as f64 * q).round() as usize])
}

/// Opens the connections (blocking connect, then non-blocking), splitting
/// roles over threads so each thread gets its share of every kind of role.
pub fn run(plan: &Plan, start_signal: Option<&dyn Fn(Instant)>) -> Result<Outcome, String> {
    let threads = plan.threads.max(1);
    let mut per_thread: Vec<Vec<Role>> = vec![Vec::new(); threads];
    let mut seen = std::collections::HashMap::new();
    for role in &plan.roles {
        let key = std::mem::discriminant(&role.kind);
        let n = seen.entry((key, role.counts, role.is_paced())).or_insert(0usize);
        per_thread[*n % threads].push(role.clone());
        *n += 1;
    }
    let paced_total = plan.roles.iter().filter(|r| r.is_paced()).count().max(1);
    let mut setups = Vec::new();
    for roles in per_thread {
        let mut conns = Vec::with_capacity(roles.len());
        for role in roles {
            let stream = StdStream::connect(plan.addr).map_err(|e| format!("connect {}: {e}", plan.addr))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            stream.set_nonblocking(true).map_err(|e| e.to_string())?;
            conns.push(Conn::new(TcpStream::from_std(stream), role).map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?);
        }
        setups.push(conns);
    }
    // Split quota and pace over threads in proportion to their roles.
    let counting_total = plan.roles.len().max(1);
    let barrier = Arc::new(Barrier::new(setups.len() + 1));
    let start = Arc::new(OnceLock::new());
    let _ = epoch();
    let mut handles = Vec::new();
    let mut quota_left = match plan.limit {
        Limit::Count { total, .. } => total,
        Limit::Time { .. } => 0,
    };
    let n_threads = setups.len();
    for (i, conns) in setups.into_iter().enumerate() {
        let paced_here = conns.iter().filter(|c| c.role.is_paced()).count();
        let rate = plan.rate * paced_here as f64 / paced_total as f64;
        let quota = match plan.limit {
            Limit::Count { total, .. } => {
                let share =
                    if i + 1 == n_threads { quota_left } else { total * conns.len() as u64 / counting_total as u64 };
                quota_left -= share;
                share
            }
            Limit::Time { .. } => 0,
        };
        let limit = plan.limit.clone();
        let barrier = Arc::clone(&barrier);
        let start = Arc::clone(&start);
        handles.push(
            std::thread::Builder::new()
                .name(format!("race-client-{i}"))
                .spawn(move || {
                    barrier.wait();
                    barrier.wait();
                    let t0: Instant = *start.get().expect("start time set");
                    thread_main(conns, limit, quota, rate, t0)
                })
                .map_err(|e| e.to_string())?,
        );
    }
    barrier.wait();
    let t0 = Instant::now();
    let _ = start.set(t0);
    barrier.wait();
    if let Some(signal) = start_signal {
        signal(t0);
    }
    let mut total = Outcome::default();
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(part)) => {
                total.ops += part.ops;
                total.secs = total.secs.max(part.secs);
                total.samples.extend(part.samples);
                total.samples_read.extend(part.samples_read);
                total.send_lateness.extend(part.send_lateness);
                total.client_cpu += part.client_cpu;
                total.inserted += part.inserted;
                total.reserved += part.reserved;
                total.timelines.extend(part.timelines);
                total.thread_ids.extend(part.thread_ids);
            }
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => first_error = first_error.or(Some("a client thread panicked".to_string())),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if let Limit::Time { measure, .. } = plan.limit {
        total.secs = measure.as_secs_f64();
    }
    total.samples.sort_unstable();
    total.samples_read.sort_unstable();
    total.send_lateness.sort_unstable();
    Ok(total)
}

/// CPU seconds used by the calling thread.
fn thread_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(usage.ru_utime) + tv(usage.ru_stime)
    }
}

/// Per-thread state shared by its connections.
struct Ctx {
    now: Instant,
    window_start: Instant,
    window_end: Instant,
    /// Producers and limited workers issue until then.
    issue_end: Instant,
    end: Instant,
    count_mode: bool,
    quota: u64,
    /// Paced producers: tokens handed out so far, and the rate.
    paced_sent: u64,
    rate: f64,
    start: Instant,
    ops: u64,
    completed_total: u64,
    samples: Vec<i64>,
    samples_read: Vec<i64>,
    send_lateness: Vec<i64>,
    inserted: u64,
    reserved: u64,
    /// Set when [`tracing`]: puts whose `INSERTED` came (id -> due, sent,
    /// inserted), and finished timelines.
    tracing: bool,
    put_times: std::collections::HashMap<u64, (u64, u64, u64)>,
    timelines: Vec<Timeline>,
    /// When the last read returned data, and when the kernel received it
    /// (on sockets with receive stamps).
    read_at: u64,
    arrived_at: Option<u64>,
}

impl Ctx {
    fn in_window(&self) -> bool {
        self.now >= self.window_start && self.now < self.window_end
    }

    fn running(&self) -> bool {
        self.now < self.end
    }

    /// Whether a producer or limited worker may start one more unit.
    fn may_issue(&mut self) -> bool {
        if self.count_mode {
            if self.quota == 0 {
                return false;
            }
            self.quota -= 1;
            true
        } else {
            self.now < self.issue_end
        }
    }

    /// A rate token: the intended send time of the next paced put.
    fn take_token(&mut self) -> Option<Instant> {
        if self.rate <= 0.0 || self.now >= self.issue_end {
            return None;
        }
        let due = self.start + Duration::from_secs_f64(self.paced_sent as f64 / self.rate);
        if due <= self.now {
            self.paced_sent += 1;
            Some(due)
        } else {
            None
        }
    }

    fn next_token_at(&self) -> Option<Instant> {
        (self.rate > 0.0).then(|| self.start + Duration::from_secs_f64(self.paced_sent as f64 / self.rate))
    }

    fn complete(&mut self, counts: bool) {
        if counts {
            self.completed_total += 1;
            if self.count_mode || self.in_window() {
                self.ops += 1;
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Inserted,
    Reserved,
    Deleted,
}

struct Conn {
    sock: TcpStream,
    role: Role,
    out: Vec<u8>,
    out_pos: usize,
    inb: Vec<u8>,
    in_len: usize,
    expects: VecDeque<Expect>,
    /// Units started and not yet finished.
    outstanding: usize,
    last_id: u64,
    /// When tracing: the due and send times of stamped puts in flight (a
    /// send time of 0 until the flush that writes it), and when the last
    /// `reserve` was written (0 until then).
    puts: VecDeque<(u64, u64)>,
    asked: u64,
    /// Reads go through [`recv_stamped`] (`SO_TIMESTAMPNS` is on).
    rx_stamps: bool,
}

impl Conn {
    fn new(sock: TcpStream, role: Role) -> io::Result<Conn> {
        let rx_stamps = matches!(role.kind, RoleKind::Worker { stamp: Stamp::Lateness(_), .. });
        if rx_stamps {
            let on: libc::c_int = 1;
            // SAFETY: setsockopt reads an int from the pointer given.
            let r = unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_TIMESTAMPNS,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Conn {
            sock,
            role,
            out: Vec::with_capacity(1 << 16),
            out_pos: 0,
            inb: vec![0; 1 << 16],
            in_len: 0,
            expects: VecDeque::new(),
            outstanding: 0,
            last_id: 0,
            puts: VecDeque::new(),
            asked: 0,
            rx_stamps,
        })
    }

    /// Starts units until the role's depth is reached (or it may not).
    fn fill(&mut self, ctx: &mut Ctx) {
        while self.outstanding < self.role.depth {
            match &self.role.kind {
                RoleKind::Producer { cmd, stamped, paced } => {
                    let sent_at = if *paced {
                        match ctx.take_token() {
                            Some(due) => due,
                            None => return,
                        }
                    } else if ctx.may_issue() {
                        ctx.now
                    } else {
                        return;
                    };
                    match stamped {
                        None => self.out.extend_from_slice(cmd),
                        Some(Stamping { pad, delay, time }) => {
                            let size = STAMP_LEN + pad.len();
                            let stamp = match time {
                                StampTime::Due => nanos_since_epoch(sent_at),
                                StampTime::Sent => nanos_since_epoch(Instant::now()),
                            };
                            if *paced && (ctx.count_mode || ctx.in_window()) {
                                ctx.send_lateness.push(ctx.now.duration_since(sent_at).as_nanos() as i64);
                            }
                            if ctx.tracing {
                                self.puts.push_back((nanos_since_epoch(sent_at), 0));
                            }
                            let _ = write!(self.out, "put 0 {delay} 120 {size}\r\n{stamp:020}");
                            self.out.extend_from_slice(pad);
                            self.out.extend_from_slice(b"\r\n");
                        }
                    }
                    self.expects.push_back(Expect::Inserted);
                }
                RoleKind::Worker { limited, .. } => {
                    let ok = if *limited { ctx.may_issue() } else { ctx.running() };
                    if !ok {
                        return;
                    }
                    self.out.extend_from_slice(b"reserve\r\n");
                    if ctx.tracing {
                        self.asked = 0;
                    }
                    self.expects.push_back(Expect::Reserved);
                }
                RoleKind::Cycle { cmd, .. } => {
                    if !ctx.may_issue() {
                        return;
                    }
                    self.out.extend_from_slice(cmd);
                    self.expects.push_back(Expect::Inserted);
                    self.expects.push_back(Expect::Reserved);
                }
            }
            self.outstanding += 1;
        }
    }

    fn check_body(check: &BodyCheck, id: u64, body: &[u8]) -> Result<Option<u64>, String> {
        match check {
            BodyCheck::Exact(want) => {
                if body != &want[..] {
                    return Err(format!(
                        "job {id}: body of {} bytes differs from the {} bytes put",
                        body.len(),
                        want.len()
                    ));
                }
                Ok(None)
            }
            BodyCheck::Stamped(pad) => {
                let ok = body.len() == STAMP_LEN + pad.len() && body[STAMP_LEN..] == pad[..];
                let stamp = ok.then(|| digits(&body[..STAMP_LEN])).flatten();
                stamp.map(Some).ok_or_else(|| format!("job {id}: body is not a timestamped body of the size put"))
            }
        }
    }

    fn on_reply(&mut self, reply: Reply<'_>, ctx: &mut Ctx) -> Result<(), String> {
        let expect = self.expects.pop_front().ok_or_else(|| format!("reply with nothing in flight: {reply:?}"))?;
        match (expect, reply) {
            (Expect::Inserted, Reply::Inserted(id)) => {
                if id <= self.last_id {
                    return Err(format!("INSERTED {id} after INSERTED {} on the same connection", self.last_id));
                }
                self.last_id = id;
                ctx.inserted += 1;
                if let Some((due, sent)) = self.puts.pop_front() {
                    ctx.put_times.insert(id, (due, sent, ctx.read_at));
                }
                if matches!(self.role.kind, RoleKind::Producer { .. }) {
                    self.outstanding -= 1;
                    ctx.complete(self.role.counts);
                }
            }
            (Expect::Reserved, Reply::Reserved { id, body }) => {
                let (check, stamp) = match &self.role.kind {
                    RoleKind::Worker { check, stamp, .. } => (check, *stamp),
                    RoleKind::Cycle { check, .. } => (check, Stamp::None),
                    RoleKind::Producer { .. } => unreachable!("producers do not reserve"),
                };
                let stamped = Self::check_body(check, id, body)?;
                ctx.reserved += 1;
                if let Some((due, sent, inserted)) = ctx.put_times.remove(&id) {
                    let (asked, reserved, arrived) = (self.asked, ctx.read_at, ctx.arrived_at.unwrap_or(0));
                    ctx.timelines.push(Timeline { id, due, sent, inserted, asked, arrived, reserved });
                }
                if let Some(stamped) = stamped {
                    let now = nanos_since_epoch(ctx.now) as i64;
                    let sample = match stamp {
                        Stamp::None => None,
                        Stamp::Latency => Some(now - stamped as i64),
                        Stamp::Lateness(delay) => {
                            let due = (stamped + delay.as_nanos() as u64) as i64;
                            ctx.samples_read.push(now - due);
                            let arrived = ctx.arrived_at.ok_or("RESERVED without a receive timestamp")?;
                            Some(arrived as i64 - due)
                        }
                    };
                    if let Some(sample) = sample
                        && (ctx.count_mode || ctx.in_window() || matches!(stamp, Stamp::Lateness(_)))
                    {
                        ctx.samples.push(sample);
                    }
                }
                let _ = write!(self.out, "delete {id}\r\n");
                self.expects.push_back(Expect::Deleted);
            }
            (Expect::Deleted, Reply::Deleted) => {
                self.outstanding -= 1;
                ctx.complete(self.role.counts);
            }
            (expect, reply) => {
                let text = match reply {
                    Reply::Other(line) => String::from_utf8_lossy(line).into_owned(),
                    other => format!("{other:?}"),
                };
                return Err(format!("expected {expect:?}, got {text:?}"));
            }
        }
        Ok(())
    }

    /// Reads everything available and handles each complete reply.
    fn read(&mut self, ctx: &mut Ctx) -> Result<(), String> {
        loop {
            if self.inb.len() - self.in_len < 1 << 15 {
                let grow = self.inb.len();
                self.inb.resize(grow * 2, 0);
            }
            let read = if self.rx_stamps {
                recv_stamped(&self.sock, &mut self.inb[self.in_len..]).map(|(n, at)| {
                    ctx.arrived_at = at;
                    n
                })
            } else {
                self.sock.read(&mut self.inb[self.in_len..])
            };
            match read {
                Ok(0) => {
                    if self.expects.is_empty() {
                        return Ok(());
                    }
                    return Err(format!("server closed the connection with {} replies pending", self.expects.len()));
                }
                Ok(n) => {
                    self.in_len += n;
                    if ctx.tracing {
                        ctx.read_at = nanos_since_epoch(Instant::now());
                    }
                    self.handle_input(ctx)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn handle_input(&mut self, ctx: &mut Ctx) -> Result<(), String> {
        let mut pos = 0;
        let inb = std::mem::take(&mut self.inb);
        let result = (|| {
            while let Some((reply, used)) = parse_reply(&inb[pos..self.in_len])? {
                pos += used;
                self.on_reply(reply, ctx)?;
                self.fill(ctx);
            }
            Ok(())
        })();
        self.inb = inb;
        if pos > 0 {
            self.inb.copy_within(pos..self.in_len, 0);
            self.in_len -= pos;
        }
        result
    }

    fn flush(&mut self) -> Result<(), String> {
        if !self.puts.is_empty() || (self.asked == 0 && matches!(self.role.kind, RoleKind::Worker { .. })) {
            let now = nanos_since_epoch(Instant::now());
            for put in self.puts.iter_mut().filter(|p| p.1 == 0) {
                put.1 = now;
            }
            if self.asked == 0 {
                self.asked = now;
            }
        }
        while self.out_pos < self.out.len() {
            match self.sock.write(&self.out[self.out_pos..]) {
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(())
    }
}

/// The pace timer's token (connections have their index).
const PACE: Token = Token(usize::MAX);

/// Wakes the poll when the next paced put is due. `epoll_wait` takes whole
/// milliseconds (mio rounds up), so a loop that slept on the poll timeout
/// sent paced puts up to 1 ms late; the body carries the due time, so that
/// lateness was measured as the server's put-to-reserve latency. A timerfd
/// fires to the microsecond.
struct PaceTimer {
    timer: TimerFd,
    armed_for: Option<Instant>,
}

impl PaceTimer {
    fn new(poll: &Poll, token: Token) -> Result<PaceTimer, String> {
        let timer = TimerFd::new(Reads::NonBlocking).map_err(|e| format!("timerfd_create: {e}"))?;
        poll.registry()
            .register(&mut SourceFd(&timer.as_raw_fd()), token, Interest::READABLE)
            .map_err(|e| format!("register the pace timer: {e}"))?;
        Ok(PaceTimer { timer, armed_for: None })
    }

    /// Makes the timer fire at `at` (in the future), unless it already does.
    fn arm(&mut self, at: Instant) -> Result<(), String> {
        if self.armed_for == Some(at) {
            return Ok(());
        }
        // `Instant` reads CLOCK_MONOTONIC too, but has no public value on
        // it: the timer is set for the same span from now.
        let after = at.saturating_duration_since(Instant::now()).max(Duration::from_nanos(1));
        self.timer.set_at(monotonic_now() + after.as_nanos() as u64).map_err(|e| format!("timerfd_settime: {e}"))?;
        self.armed_for = Some(at);
        Ok(())
    }

    /// Acknowledges an expiry, so the descriptor stops being readable.
    fn clear(&mut self) {
        // WouldBlock when it did not expire after all: nothing to clear.
        let _ = self.timer.take_expiry();
        self.armed_for = None;
    }
}

fn thread_main(mut conns: Vec<Conn>, limit: Limit, quota: u64, rate: f64, t0: Instant) -> Result<Outcome, String> {
    let far = t0 + Duration::from_secs(86400 * 365);
    let (window_start, window_end, issue_end, end, count_mode) = match limit {
        Limit::Time { warmup, measure, grace } => {
            let window_end = t0 + warmup + measure;
            (t0 + warmup, window_end, window_end, window_end + grace, false)
        }
        Limit::Count { timeout, .. } => (t0, far, far, t0 + timeout, true),
    };
    let mut ctx = Ctx {
        now: Instant::now(),
        window_start,
        window_end,
        issue_end,
        end,
        count_mode,
        quota,
        paced_sent: 0,
        rate,
        start: t0,
        ops: 0,
        completed_total: 0,
        samples: Vec::new(),
        samples_read: Vec::new(),
        send_lateness: Vec::new(),
        inserted: 0,
        reserved: 0,
        tracing: tracing(),
        put_times: std::collections::HashMap::new(),
        timelines: Vec::new(),
        read_at: 0,
        arrived_at: None,
    };
    let counted_units = quota;
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(1024);
    for (i, conn) in conns.iter_mut().enumerate() {
        poll.registry()
            .register(&mut conn.sock, Token(i), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| e.to_string())?;
    }
    let any_paced = conns.iter().any(|c| c.role.is_paced());
    let mut pace_timer = if any_paced { Some(PaceTimer::new(&poll, PACE)?) } else { None };
    let mut cpu_start = if count_mode { Some(thread_cpu()) } else { None };
    let mut cpu_end = None;
    for conn in &mut conns {
        conn.fill(&mut ctx);
        conn.flush()?;
    }
    let mut finished_at = None;
    loop {
        ctx.now = Instant::now();
        if cpu_start.is_none() && ctx.now >= ctx.window_start {
            cpu_start = Some(thread_cpu());
        }
        if cpu_end.is_none() && ctx.now >= ctx.window_end {
            cpu_end = Some(thread_cpu());
        }
        if count_mode && ctx.completed_total >= counted_units && ctx.quota == 0 {
            finished_at = Some(ctx.now);
            break;
        }
        if ctx.now >= ctx.end {
            if count_mode {
                return Err(format!(
                    "count run timed out: {} of {} operations done",
                    ctx.completed_total, counted_units
                ));
            }
            break;
        }
        let mut wake = ctx.end.min(ctx.now + Duration::from_millis(50));
        if ctx.now < ctx.window_start {
            wake = wake.min(ctx.window_start);
        } else if ctx.now < ctx.window_end {
            wake = wake.min(ctx.window_end);
        }
        // A token is only worth waking for if a paced producer can spend it.
        // When every one has its put in flight, the next `INSERTED` brings
        // the wake-up (and the overdue token goes out then): waking for it
        // now would spin on a zero timeout, taking the CPU from the server
        // that is to send that reply.
        let producer_free = conns.iter().any(|c| c.role.is_paced() && c.outstanding < c.role.depth);
        if let Some(timer) = &mut pace_timer
            && producer_free
            && let Some(next) = ctx.next_token_at()
        {
            if next <= ctx.now {
                wake = ctx.now;
            } else {
                timer.arm(next)?;
            }
        }
        let timeout = wake.saturating_duration_since(ctx.now);
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        ctx.now = Instant::now();
        for event in events.iter() {
            if event.token() == PACE {
                if let Some(timer) = &mut pace_timer {
                    timer.clear();
                }
                continue;
            }
            let conn = &mut conns[event.token().0];
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                conn.read(&mut ctx).map_err(|e| format!("connection {}: {e}", event.token().0))?;
            }
            conn.flush().map_err(|e| format!("connection {}: {e}", event.token().0))?;
        }
        if any_paced {
            for conn in conns.iter_mut().filter(|c| c.role.is_paced()) {
                conn.fill(&mut ctx);
                conn.flush()?;
            }
        }
    }
    let cpu_end = cpu_end.unwrap_or_else(thread_cpu);
    let secs = match finished_at {
        Some(at) => at.duration_since(t0).as_secs_f64(),
        None => (window_end - window_start).as_secs_f64(),
    };
    Ok(Outcome {
        ops: ctx.ops,
        secs,
        samples: ctx.samples,
        samples_read: ctx.samples_read,
        send_lateness: ctx.send_lateness,
        client_cpu: cpu_end - cpu_start.unwrap_or(cpu_end),
        inserted: ctx.inserted,
        reserved: ctx.reserved,
        timelines: ctx.timelines,
        // SAFETY: gettid has no preconditions.
        thread_ids: vec![unsafe { libc::gettid() }],
    })
}

//! The event loop: one thread, one mio `Poll`, sockets and buffers only.
//!
//! Each wake-up (a turn) reads what the ready connections sent, decodes every
//! complete command in their buffers and runs them through the engine; at the
//! end of the turn the binlog writes (and with `-f 0` syncs) the changes, and
//! only then are the replies written, so a batch of pipelined commands costs
//! one read, one log write and one socket write. Queue state lives in the
//! [`Engine`]; this module never looks inside it.

mod connection;
mod listener;
mod memory;
mod output;
mod systemd;
mod timer;
mod user;

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::binlog::{Binlog, Opened};
use crate::engine::{Engine, EngineConfig, Nanos};
use crate::host::HostInfo;
use crate::protocol::Frame;
use crate::protocol::decoder::PartialBody;
use crate::settings::{Config, ListenAddr};
use connection::{Connection, READ_BUFFER, READ_CHUNK, ReadOutcome};
pub use listener::Listener;
use timer::{DeadlineTimer, monotonic_now};
pub use user::become_user;

const SIGNALS: Token = Token(usize::MAX);
/// The binlog's sync thread wakes the loop with this.
const WAKER: Token = Token(usize::MAX - 1);
/// The engine's next deadline fires this.
const TIMER: Token = Token(usize::MAX - 2);
/// Listener `i` has token `LISTENERS + i`; connections have their slab key,
/// far below.
const LISTENERS: usize = usize::MAX / 2;

/// Reads per connection per wake-up, so one busy client cannot starve the
/// others.
const READS_PER_TURN: usize = 8;

/// How soon an idle server takes the next compaction step.
const COMPACTION_PACE: Duration = Duration::from_millis(5);

/// How often to retry `accept` after running out of file descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Why the server could not start or had to stop.
#[derive(Debug)]
pub enum ServerError {
    Bind { addr: String, source: io::Error },
    Io(io::Error),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServerError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<io::Error> for ServerError {
    fn from(e: io::Error) -> Self {
        ServerError::Io(e)
    }
}

/// Opens the listening sockets: those systemd passed (socket activation),
/// all of them, or else one bound to the configured address.
pub fn listen(config: &Config) -> Result<Vec<Listener>, ServerError> {
    let inherited = systemd::listen_fds();
    if !inherited.is_empty() {
        log::info!("{} inherited listening socket(s); ignoring -l and -p", inherited.len());
        return inherited.into_iter().map(|fd| Listener::from_inherited_fd(fd).map_err(ServerError::Io)).collect();
    }
    let addr = match &config.listen {
        ListenAddr::Tcp { host, port } => format!("{host}:{port}"),
        ListenAddr::Unix(path) => format!("unix:{}", path.display()),
    };
    let listener = Listener::bind(&config.listen).map_err(|source| ServerError::Bind { addr, source })?;
    Ok(vec![listener])
}

/// Runs the server until SIGTERM or SIGINT. `binlog` is the opened log
/// (`-b`), whose jobs are restored before the first client is served.
pub fn run(
    config: &Config,
    listeners: Vec<Listener>,
    host: HostInfo,
    binlog: Option<Opened>,
) -> Result<(), ServerError> {
    let mut server = Server::new(config, listeners, host, binlog)?;
    systemd::notify("READY=1");
    server.serve()
}

/// How long a shutdown waits for clients to take their last replies.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    signals: Signals,
    conns: Slab<Connection>,
    engine: Engine<Option<Binlog>>,
    /// Engine time: wall-clock nanoseconds at start, advanced by
    /// `CLOCK_MONOTONIC` (so it never jumps, and the binlog can store it).
    /// `origin_mono` is that clock at start; the timer is armed on it.
    origin_mono: Nanos,
    origin_wall: Nanos,
    /// Wakes the loop at the engine's next deadline, to the microsecond.
    timer: DeadlineTimer,
    max_job_size: u32,
    /// One read buffer shared by all connections, lent to the one being
    /// driven.
    scratch: Vec<u8>,
    /// A body allocation an aimed read did not use, for the next one.
    spare_body: Option<PartialBody>,
    /// Connections that got replies (or still have unread input) and must be
    /// driven before the next poll.
    woken: Vec<usize>,
    /// The connection being driven, which needs no wake-up of its own.
    driving: Option<usize>,
    /// Connections with replies to send at the end of this turn, each listed
    /// once in one of the two lists (see [`Connection::flush_queued`]):
    /// those answered while another connection was driven (a waiting
    /// reserve served), in that order, and the others.
    handed: Vec<usize>,
    dirty: Vec<usize>,
    /// Set after accept failed for lack of file descriptors.
    accept_paused: bool,
    stopping: bool,
    /// Gives freed memory back to the kernel after a large drain.
    memory: memory::Reclaim,
}

impl Server {
    fn new(
        config: &Config,
        mut listeners: Vec<Listener>,
        host: HostInfo,
        opened: Option<Opened>,
    ) -> Result<Server, ServerError> {
        let poll = Poll::new()?;
        for (i, listener) in listeners.iter_mut().enumerate() {
            poll.registry().register(listener, Token(LISTENERS + i), Interest::READABLE)?;
        }
        let mut signals = Signals::new([SIGUSR1, SIGTERM, SIGINT])?;
        poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
        let origin_mono = monotonic_now();
        let origin_wall =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as Nanos);
        let engine_config =
            EngineConfig { max_job_size: config.max_job_size, binlog_max_size: config.binlog_size, host };
        let mut engine = match opened {
            None => Engine::with_journal(engine_config, origin_wall, None),
            Some(Opened { binlog, jobs, bodies, next_id, read_in }) => {
                let count = jobs.len();
                let restoring = Instant::now();
                let mut engine = Engine::with_journal(engine_config, origin_wall, Some(binlog));
                engine.restore_all(origin_wall, bodies, jobs);
                engine.raise_next_job_id(next_id);
                // Restored jobs were never handed to a client: nothing to send.
                engine.take_replies().for_each(drop);
                log::info!(
                    "binlog: recovered {count} jobs (read in {} ms, restored in {} ms); next job id {}",
                    read_in.as_millis(),
                    restoring.elapsed().as_millis(),
                    engine.next_job_id()
                );
                engine
            }
        };
        let timer = DeadlineTimer::new(poll.registry(), TIMER)?;
        if let Some(binlog) = engine.journal_mut() {
            let waker = mio::Waker::new(poll.registry(), WAKER)?;
            binlog.sync_in_background(Box::new(move || {
                let _ = waker.wake();
            }))?;
        }
        for listener in &listeners {
            log::info!("listening on {}", listener.local_description());
        }
        Ok(Server {
            poll,
            listeners,
            signals,
            conns: Slab::new(),
            engine,
            origin_mono,
            origin_wall,
            timer,
            max_job_size: config.max_job_size,
            scratch: vec![0; READ_BUFFER],
            spare_body: None,
            woken: Vec::new(),
            driving: None,
            handed: Vec::new(),
            dirty: Vec::new(),
            accept_paused: false,
            stopping: false,
            memory: memory::Reclaim::default(),
        })
    }

    /// The `CLOCK_MONOTONIC` time at which the engine's clock reads `at`.
    fn monotonic_of(&self, at: Nanos) -> Nanos {
        self.origin_mono + at.saturating_sub(self.origin_wall)
    }

    fn now(&self) -> Nanos {
        self.origin_wall + monotonic_now().saturating_sub(self.origin_mono)
    }

    fn serve(&mut self) -> Result<(), ServerError> {
        let mut events = Events::with_capacity(1024);
        while !self.stopping {
            let deadline = self.engine.next_deadline().map(|at| self.monotonic_of(at));
            self.timer.arm(deadline);
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            // Signals first: a client that sent SIGUSR1 and then a put
            // expects DRAINING even when both arrive in the same wake-up.
            if events.iter().any(|e| e.token() == SIGNALS) {
                self.handle_signals();
            }
            for event in events.iter() {
                match event.token() {
                    SIGNALS | WAKER => {}
                    TIMER => self.timer.clear(),
                    Token(i) if i >= LISTENERS => self.accept_all(i - LISTENERS),
                    Token(key) => {
                        let Some(conn) = self.conns.get_mut(key) else { continue };
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            conn.readable = true;
                        }
                        if event.is_read_closed() || event.is_error() {
                            conn.hung_up = true;
                        }
                        if event.is_read_closed() && self.engine.is_waiting(key) {
                            self.engine.hang_up(key);
                            self.deliver_replies();
                        }
                        self.drive(key);
                    }
                }
            }
            if self.accept_paused {
                self.accept_on_every_listener();
            }
            let now = self.now();
            self.engine.tick(now);
            self.deliver_replies();
            self.drive_woken();
            self.end_turn();
            self.memory.after_turn(self.engine.bulk_freed());
        }
        self.shut_down();
        Ok(())
    }

    /// The end of a turn: log what changed, then send what was answered.
    /// Replies go out only after the changes they acknowledge were written
    /// (and with `-f 0`, synced): one write and one fsync for all clients.
    /// Connections answered on behalf of others (a job handed to a waiting
    /// worker) are written first, in the order they were answered, so the
    /// job goes out before the `INSERTED` of the put that brought it; then
    /// the others, in key order. (Writing every connection in the order of
    /// its first reply cut 64 KiB bodies from ~14k to ~9k jobs/s in
    /// `cargo bench --bench race -- --scenarios big`.)
    fn end_turn(&mut self) {
        if self.engine.journal().is_some() {
            // Compaction's rewrites go out in the same write as the turn's
            // changes.
            self.engine.maintain_journal();
        }
        if let Some(binlog) = self.engine.journal_mut() {
            let _ = binlog.commit(Instant::now());
        }
        let mut dirty = std::mem::take(&mut self.handed);
        let mut driven = std::mem::take(&mut self.dirty);
        driven.sort_unstable();
        dirty.append(&mut driven);
        for key in dirty.drain(..) {
            let Some(conn) = self.conns.get_mut(key) else { continue };
            if !std::mem::take(&mut conn.flush_queued) {
                // Listed for a connection that closed; a new one took its key.
                continue;
            }
            conn.flush();
            let waiting = self.engine.is_waiting(key);
            if conn.is_finished(waiting) {
                self.close(key);
            } else if conn.can_process() && !waiting && (!conn.input_stalled || conn.wants_input()) {
                // Output drained with commands still buffered or unread.
                self.woken.push(key);
            }
        }
        // Closing a connection can hand its jobs to other clients; their
        // replies were queued meanwhile and go out next turn.
        std::mem::swap(&mut self.dirty, &mut driven);
        self.dirty.append(&mut driven);
        if let Some(binlog) = self.engine.journal_mut() {
            // After the replies: no command waits for the next file.
            binlog.prepare_ahead(Instant::now());
        }
    }

    /// Sleep until the engine's next timer, or not at all when connections
    /// still have work from the last turn.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.woken.is_empty() {
            return Some(Duration::ZERO);
        }
        // The timer wakes the loop at the engine's deadline; the rounded-up
        // poll timeout stays as a fallback.
        let now = self.now();
        let mut timeout = self.engine.next_deadline().map(|at| Duration::from_nanos(at.saturating_sub(now)));
        if let Some(binlog) = self.engine.journal() {
            let mut until = binlog.next_sync_at().map(|at| at.saturating_duration_since(Instant::now()));
            if binlog.wants_compaction() {
                // Compaction goes on between requests too, a batch a turn.
                until = Some(until.map_or(COMPACTION_PACE, |t| t.min(COMPACTION_PACE)));
            }
            if let Some(until) = until {
                timeout = Some(timeout.map_or(until, |t| t.min(until)));
            }
        }
        if self.accept_paused {
            timeout = Some(timeout.map_or(ACCEPT_RETRY, |t| t.min(ACCEPT_RETRY)));
        }
        timeout
    }

    fn accept_on_every_listener(&mut self) {
        for i in 0..self.listeners.len() {
            self.accept_all(i);
        }
    }

    fn accept_all(&mut self, listener: usize) {
        loop {
            match self.listeners[listener].accept() {
                Ok(mut stream) => {
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) =
                        self.poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)
                    {
                        log::warn!("cannot watch a new connection: {e}");
                        continue;
                    }
                    entry.insert(Connection::new(stream, self.max_job_size));
                    self.engine.connect(key);
                    self.accept_paused = false;
                    log::info!("accept {key}");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_out_of_descriptors(&e) => {
                    if !self.accept_paused {
                        log::warn!("accept failed: {e}; serving the open connections and retrying");
                    }
                    self.accept_paused = true;
                    return;
                }
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn handle_signals(&mut self) {
        for signal in self.signals.pending() {
            match signal {
                SIGUSR1 => {
                    log::info!("SIGUSR1: entering drain mode");
                    self.engine.set_draining();
                }
                SIGTERM | SIGINT => {
                    log::info!("signal {signal}: shutting down");
                    // systemd wants to hear this when shutdown starts.
                    systemd::notify("STOPPING=1");
                    self.stopping = true;
                }
                _ => {}
            }
        }
    }

    /// Moves the engine's replies into their connections' output buffers.
    /// The connection being driven is marked dirty once, when its drive ends;
    /// others are marked here, and woken to take up their pipelines.
    fn deliver_replies(&mut self) {
        for (key, reply) in self.engine.take_replies() {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.push_reply(&reply);
                if self.driving != Some(key) {
                    if !std::mem::replace(&mut conn.flush_queued, true) {
                        self.handed.push(key);
                    }
                    self.woken.push(key);
                }
            }
        }
    }

    fn drive_woken(&mut self) {
        let mut woken = std::mem::take(&mut self.woken);
        woken.sort_unstable();
        woken.dedup();
        for key in woken {
            if self.conns.contains(key) {
                self.drive(key);
            }
        }
    }

    /// Runs buffered commands and reads more, until the connection has
    /// nothing more to do this turn. Replies are sent at the end of the turn.
    fn drive(&mut self, key: usize) {
        let outer = self.driving.replace(key);
        assert!(outer.is_none(), "drives do not nest: the read buffer is lent to one connection");
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut fresh = 0;
        let mut reads = 0;
        loop {
            self.process_input(key, &scratch[..fresh]);
            fresh = 0;
            let conn = &mut self.conns[key];
            conn.settle_after_read();
            if !conn.wants_input() {
                break;
            }
            if reads == READS_PER_TURN {
                // Come back after the others have had their turn.
                self.woken.push(key);
                break;
            }
            reads += 1;
            // A connection waiting in a reserve keeps what it reads: it reads
            // no more than a chunk at a time then.
            let room = if self.engine.is_waiting(key) { READ_CHUNK } else { scratch.len() };
            match conn.read_some(&mut scratch[..room], &mut self.spare_body) {
                ReadOutcome::Data(n) => fresh = n,
                ReadOutcome::WouldBlock => break,
                ReadOutcome::Eof => {
                    if self.engine.is_waiting(key) {
                        self.engine.hang_up(key);
                        self.deliver_replies();
                    }
                }
            }
        }
        self.scratch = scratch;
        self.driving = None;
        let waiting = self.engine.is_waiting(key);
        if self.conns[key].is_finished(waiting) {
            // Nothing left to send: close now, so that stats taken in this
            // same turn already count the connection as gone.
            self.close(key);
        } else {
            self.queue_flush(key);
        }
    }

    /// Lists the connection for the flush at the end of the turn.
    fn queue_flush(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !std::mem::replace(&mut conn.flush_queued, true)
        {
            self.dirty.push(key);
        }
    }

    /// Decodes and runs every complete command the connection has buffered
    /// and `fresh` (bytes it just sent, in the read buffer), stopping while it
    /// waits in a reserve or its output is backed up. What is not decoded is
    /// kept for later.
    fn process_input(&mut self, key: usize, mut fresh: &[u8]) {
        let now = self.now();
        loop {
            let conn = &mut self.conns[key];
            if !conn.can_process() || self.engine.is_waiting(key) {
                break;
            }
            let step = conn.decode_step(&mut fresh);
            match step.frame {
                None if step.consumed == 0 => {
                    if fresh.is_empty() {
                        conn.input_stalled = true;
                        break;
                    }
                    // Buffered bytes and fresh ones make up the next frame:
                    // buffer as many fresh ones as it may need (the rest of
                    // a line, a CRLF), then go on from `fresh` once the
                    // buffer is used up.
                    let needed = conn.decoder.wanted().saturating_sub(conn.unprocessed().len());
                    let (front, rest) = fresh.split_at(needed.clamp(1, fresh.len()));
                    conn.keep(front);
                    fresh = rest;
                }
                None => {}
                Some(Frame::Reply(reply)) => conn.push_reply(&reply),
                Some(Frame::Quit) => conn.quitting = true,
                Some(Frame::Command(command)) => {
                    let eof = conn.eof;
                    self.engine.apply(now, key, command);
                    if eof && self.engine.is_waiting(key) {
                        // A reserve from a client that already hung up.
                        self.engine.hang_up(key);
                    }
                    self.deliver_replies();
                }
            }
        }
        self.conns[key].keep(fresh);
    }

    fn close(&mut self, key: usize) {
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let now = self.now();
        self.engine.disconnect(now, key);
        self.deliver_replies();
        log::info!("close {key}");
        if self.accept_paused {
            self.accept_on_every_listener();
        }
    }

    /// Stops accepting and reading, logs and sends the replies already
    /// made, waits briefly for slow clients to take them, and closes the log.
    fn shut_down(&mut self) {
        for listener in &mut self.listeners {
            let _ = self.poll.registry().deregister(listener);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.queue_flush(key);
        }
        self.end_turn();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut events = Events::with_capacity(1024);
        while self.conns.iter().any(|(_, c)| c.output_pending() > 0 && !c.broken) && Instant::now() < deadline {
            let _ = self.poll.poll(&mut events, Some(deadline.saturating_duration_since(Instant::now())));
            for (_, conn) in self.conns.iter_mut() {
                conn.flush();
            }
        }
        if let Some(binlog) = self.engine.journal_mut() {
            match binlog.close() {
                Ok(()) => log::info!("binlog: flushed and synced"),
                Err(e) => log::error!("binlog: final sync failed: {e}"),
            }
        }
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

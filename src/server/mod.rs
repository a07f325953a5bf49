//! The event loop: one thread, one mio `Poll`, sockets and buffers only.
//!
//! Each wake-up (a turn) reads what the ready connections sent, decodes every
//! complete command in their buffers and runs them through the engine; at the
//! end of the turn the binlog writes (and with `-f 0` syncs) the changes, and
//! only then are the replies written, so a batch of pipelined commands costs
//! one read, one log write and one socket write. Queue state lives in the
//! [`Engine`]; this module never looks inside it.
//!
//! A map of the module, one behaviour a file:
//! - `mod.rs`: [`listen`], [`run`], and the `Server` state they share.
//! - `event_loop.rs`: the turn: poll, hand each event to its handler, act
//!   on timers, drive woken connections, end the turn; how long to sleep.
//! - `connections.rs`: accepting connections (backing off when out of file
//!   descriptors), and closing them.
//! - `signals.rs`: SIGUSR1 (drain mode), SIGTERM and SIGINT (stop).
//! - `drive.rs`: driving one connection: read, decode, apply; the engine's
//!   replies into the output buffers of the connections they are for.
//! - `end_of_turn.rs`: log what changed, then send what was answered, in
//!   the order that keeps a handed-out job ahead of the put that brought it.
//! - `shutdown.rs`: the last replies, the last sync, and closing.
//! - `clock.rs`: engine time from the machine's clocks.
//! - `restore.rs`: the engine built, with the jobs the binlog read back.
//! - `connection.rs`, `conn_state.rs`, `output.rs`: one client's socket,
//!   buffers and flags, and its replies on their way out; `allowance.rs`:
//!   the room all connections' bodies may take before their bytes arrive.
//! - `listener.rs`, `systemd.rs`, `user.rs`, `timer.rs`, `memory.rs`: the
//!   listening sockets (bound or inherited), systemd's two protocols, `-u`,
//!   the deadline timer, and giving memory back after a drain.
//! - `web.rs`, `http.rs`, `encoder.rs`: the HTTP side (`--metrics`), apart
//!   from the beanstalk connections: its listeners, connections, routes
//!   (`GET /metrics`) and timeouts; one HTTP connection's request parsing
//!   and response writing; the thread that encodes scrapes off the loop.
//! - `status.rs`: the status page (`GET /`), its document
//!   (`GET /status.json`), and sampling the rates it charts on a timer.

#![warn(missing_docs)]

mod allowance;
mod clock;
mod conn_state;
mod connection;
mod connections;
mod drive;
mod encoder;
mod end_of_turn;
mod event_loop;
mod http;
mod listener;
mod memory;
mod output;
mod restore;
mod shutdown;
mod signals;
mod status;
mod systemd;
mod timer;
mod user;
mod web;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use mio::{Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::binlog::{Binlog, Opened};
use crate::engine::{ConnId, Engine};
use crate::host::HostInfo;
use crate::protocol::decoder::PartialBody;
use crate::settings::{Config, ListenAddr};
use allowance::BodyAllowance;
use clock::Clock;
use connection::{Connection, READ_BUFFER};
pub use listener::Listener;
use timer::DeadlineTimer;
pub use user::become_user;

/// The signals' token.
const SIGNALS: Token = Token(usize::MAX);
/// The binlog's sync thread and the metrics encoder wake the loop with this.
const WAKER: Token = Token(usize::MAX - 1);
/// The engine's next deadline fires this.
const TIMER: Token = Token(usize::MAX - 2);
/// Listener `i` has token `LISTENERS + i`; the HTTP side's tokens lie
/// below ([`web::METRICS_LISTENERS`], [`web::HTTP_CONNS`]), and
/// connections have their slab key, below those.
const LISTENERS: usize = usize::MAX / 2;

/// Why the server could not start or had to stop.
#[derive(Debug)]
pub enum ServerError {
    /// The configured address could not be bound.
    Bind {
        /// The address, as `host:port` or `unix:PATH`.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The poller, the signal handler or the timer failed.
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

/// The listening sockets the server serves.
pub struct Listeners {
    /// The beanstalk protocol's.
    pub queue: Vec<Listener>,
    /// HTTP's, for `GET /metrics` (none: metrics are off).
    pub metrics: Vec<Listener>,
}

/// Opens the listening sockets. The queue's: those systemd passed (socket
/// activation), all of them but those named `metrics`, or else one bound
/// to `-l`/`-p`. The metrics': those systemd passed named `metrics`
/// (`FileDescriptorName=metrics`), or else one bound to `--metrics`, if
/// given.
pub fn listen(config: &Config) -> Result<Listeners, ServerError> {
    let inherit = |fds: Vec<(OwnedFd, String)>| -> Result<Vec<Listener>, ServerError> {
        fds.into_iter().map(|(fd, _)| Listener::from_inherited_fd(fd).map_err(ServerError::Io)).collect()
    };
    let (metrics_fds, queue_fds): (Vec<_>, Vec<_>) =
        systemd::listen_fds().into_iter().partition(|(_, name)| name == systemd::METRICS_FD_NAME);
    let queue = if queue_fds.is_empty() {
        vec![bind(&config.listen)?]
    } else {
        log::info!("{} inherited listening socket(s); ignoring -l and -p", queue_fds.len());
        inherit(queue_fds)?
    };
    let metrics = match &config.metrics {
        _ if !metrics_fds.is_empty() => {
            log::info!("{} inherited metrics socket(s); ignoring --metrics", metrics_fds.len());
            inherit(metrics_fds)?
        }
        Some(addr) => vec![bind(addr)?],
        None => Vec::new(),
    };
    Ok(Listeners { queue, metrics })
}

fn bind(addr: &ListenAddr) -> Result<Listener, ServerError> {
    Listener::bind(addr).map_err(|source| {
        let addr = match addr {
            ListenAddr::Tcp { host, port } => format!("{host}:{port}"),
            ListenAddr::Unix(path) => format!("unix:{}", path.display()),
        };
        ServerError::Bind { addr, source }
    })
}

/// Runs the server until SIGTERM or SIGINT. `binlog` is the opened log
/// (`-b`), whose jobs are restored before the first client is served.
pub fn run(config: &Config, listeners: Listeners, host: HostInfo, binlog: Option<Opened>) -> Result<(), ServerError> {
    let mut server = Server::new(config, listeners, host, binlog)?;
    systemd::notify("READY=1");
    server.serve()
}

/// Everything the loop owns. Connections are keyed by their slab key, which
/// is also their engine connection id and their poll token.
struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    /// The HTTP side: metrics listeners, connections, their deadlines.
    web: web::Web,
    signals: Signals,
    conns: Slab<Connection>,
    engine: Engine<Option<Binlog>>,
    clock: Clock,
    /// Wakes the loop at the engine's next deadline, to the microsecond.
    timer: DeadlineTimer,
    max_job_size: u32,
    /// One read buffer shared by all connections, lent to the one being
    /// driven.
    scratch: Vec<u8>,
    /// A body allocation an aimed read did not use, for the next one.
    spare_body: Option<PartialBody>,
    /// Room bodies larger than a read may take before their bytes arrive.
    body_allowance: BodyAllowance,
    /// Connections that got replies (or still have unread input) and must be
    /// driven before the next poll.
    woken: Vec<ConnId>,
    /// The connection being driven, which needs no wake-up of its own.
    driving: Option<ConnId>,
    /// Connections with replies to send at the end of this turn, each listed
    /// once in one of the two lists (see `end_of_turn.rs`): those answered
    /// while another connection was driven (a waiting reserve served), in
    /// that order, and the others.
    handed: Vec<ConnId>,
    dirty: Vec<ConnId>,
    /// Set after accept failed for lack of file descriptors.
    accept_paused: bool,
    /// Set by SIGTERM or SIGINT: the loop ends after this turn.
    stopping: bool,
    /// Gives freed memory back to the kernel after a large drain.
    memory: memory::Reclaim,
}

impl Server {
    fn new(
        config: &Config,
        listeners: Listeners,
        host: HostInfo,
        opened: Option<Opened>,
    ) -> Result<Server, ServerError> {
        let Listeners { queue: mut listeners, metrics } = listeners;
        let poll = Poll::new()?;
        for (i, listener) in listeners.iter_mut().enumerate() {
            poll.registry().register(listener, Token(LISTENERS + i), Interest::READABLE)?;
        }
        let metrics_tubes = (!metrics.is_empty()).then_some(config.metrics_tubes);
        // One waker per poller (mio's rule), shared by the threads that wake
        // the loop: the binlog's sync thread and the metrics encoder.
        let waker = if opened.is_some() || !metrics.is_empty() {
            Some(Arc::new(mio::Waker::new(poll.registry(), WAKER)?))
        } else {
            None
        };
        let web = web::Web::new(poll.registry(), metrics, waker.clone())?;
        let mut signals = Signals::new([SIGUSR1, SIGTERM, SIGINT])?;
        poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
        let clock = Clock::start();
        let mut engine = restore::engine(config, host, clock.started_at(), opened, metrics_tubes);
        let timer = DeadlineTimer::new(poll.registry(), TIMER)?;
        if let Some(binlog) = engine.journal_mut() {
            binlog.read_back_in_background();
        }
        if let (Some(binlog), Some(waker)) = (engine.journal_mut(), waker) {
            binlog.sync_in_background(Box::new(move || {
                let _ = waker.wake();
            }))?;
        }
        for listener in &listeners {
            log::info!("listening on {}", listener.local_description());
        }
        web.log_listening();
        Ok(Server {
            poll,
            listeners,
            web,
            signals,
            conns: Slab::new(),
            engine,
            clock,
            timer,
            max_job_size: config.max_job_size,
            scratch: vec![0; READ_BUFFER],
            spare_body: None,
            body_allowance: BodyAllowance::default(),
            woken: Vec::new(),
            driving: None,
            handed: Vec::new(),
            dirty: Vec::new(),
            accept_paused: false,
            stopping: false,
            memory: memory::Reclaim::default(),
        })
    }
}

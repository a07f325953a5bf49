//! The HTTP side of the loop (`--metrics`): its listeners and connections,
//! kept apart from the beanstalk ones (tokens of their own, a slab of
//! their own), what each request is answered, and the timeouts.
//!
//! Routes: `GET /metrics` (and `HEAD`) is a scrape, in the Prometheus text
//! format or OpenMetrics as `Accept` asks; `GET /` is the status page and
//! `GET /status.json` what it shows (status.rs); another method on any of
//! them is 405 with `Allow: GET, HEAD`; any other path is 404. A scrape's figures are
//! taken in the loop, at one instant (O(tubes), see `Engine::figures`),
//! encoded on a thread of their own (encoder.rs) and written as the socket
//! takes them, so a slow scraper costs a buffer, never a wait.
//!
//! Bounds: at most [`MAX_HTTP_CONNS`] connections (a new one beyond that
//! closes the one that made progress longest ago), each holding at most a
//! request head (8 KiB, http.rs) and one response. A connection that makes
//! no progress (a whole request read, or response bytes written) for
//! [`HTTP_TIMEOUT`] is closed, with a 408 if it was sending a request:
//! bytes trickling in do not count, so a slow client cannot hold a
//! connection by sending a byte at a time. Deadlines are kept in an
//! ordered set, and the loop wakes for the first one (event_loop.rs).

use std::collections::BTreeSet;
use std::io;

use std::sync::Arc;

use mio::{Interest, Registry, Token, Waker};
use slab::Slab;

use super::Server;
use super::connections::is_out_of_descriptors;
use super::encoder::{Encoded, Encoder};
use super::http::{HttpConn, Parsed, ReadOutcome, Request, Response, Status};
use super::listener::Listener;
use super::status::status_page;
use crate::binlog::Binlog;
use crate::engine::{Nanos, SECOND};
use crate::metrics::Format;
use crate::status::RateHistory;

/// Metrics listener `i` has token `METRICS_LISTENERS + i`.
pub const METRICS_LISTENERS: usize = usize::MAX / 4;
/// HTTP connection `key` has token `HTTP_CONNS + key`; beanstalk
/// connections' tokens are their slab keys, far below.
pub const HTTP_CONNS: usize = usize::MAX / 8;

/// The most HTTP connections open at once.
pub const MAX_HTTP_CONNS: usize = 32;

/// How long an HTTP connection may go without progress.
pub const HTTP_TIMEOUT: Nanos = 10 * SECOND;

/// The HTTP side's sockets and deadlines.
pub struct Web {
    listeners: Vec<Listener>,
    /// Encodes scrapes off the loop (started with the first listener).
    encoder: Option<Encoder>,
    /// Numbers scrapes, so an encoded one goes to its own request even if
    /// its connection closed and the slot was reused.
    next_serial: u64,
    conns: Slab<HttpConn>,
    /// Each connection's deadline, by (deadline, key); the connection's
    /// own is `deadline_of[key]`.
    deadlines: BTreeSet<(Nanos, usize)>,
    deadline_of: Vec<Nanos>,
    /// The status page's rates, sampled on a timer (status.rs): only
    /// while there are listeners.
    pub(super) rates: Option<RateHistory>,
}

impl Web {
    /// Registers the metrics listeners (none: metrics are off).
    /// `waker` wakes the loop when the encoding thread has a scrape (there
    /// is one whenever there are listeners).
    pub fn new(registry: &Registry, mut listeners: Vec<Listener>, waker: Option<Arc<Waker>>) -> io::Result<Web> {
        for (i, listener) in listeners.iter_mut().enumerate() {
            registry.register(listener, Token(METRICS_LISTENERS + i), Interest::READABLE)?;
        }
        let encoder = match waker {
            Some(waker) if !listeners.is_empty() => Some(Encoder::start(waker)?),
            _ => None,
        };
        let rates = (!listeners.is_empty()).then(RateHistory::new);
        Ok(Web {
            rates,
            listeners,
            encoder,
            next_serial: 0,
            conns: Slab::new(),
            deadlines: BTreeSet::new(),
            deadline_of: Vec::new(),
        })
    }

    pub fn log_listening(&self) {
        for listener in &self.listeners {
            match listener {
                Listener::Tcp(_) => {
                    log::info!("metrics on http://{}/metrics", listener.local_description());
                    log::info!("status page on http://{}/", listener.local_description());
                }
                Listener::Unix(_) => {
                    log::info!("metrics on {} (GET /metrics, status page GET /)", listener.local_description())
                }
            }
        }
    }

    /// The first HTTP deadline (a connection's, or the next sample of
    /// the rates), if any.
    pub fn next_deadline(&self) -> Option<Nanos> {
        let conn = self.deadlines.first().map(|&(at, _)| at);
        match (conn, self.next_sample_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the rates are to be sampled next, if they are kept.
    pub(super) fn next_sample_at(&self) -> Option<Nanos> {
        self.rates.as_ref().map(|rates| rates.next_sample_at(0))
    }

    fn set_deadline(&mut self, key: usize, at: Nanos) {
        if self.deadline_of.len() <= key {
            self.deadline_of.resize(key + 1, 0);
        }
        self.deadlines.remove(&(self.deadline_of[key], key));
        self.deadlines.insert((at, key));
        self.deadline_of[key] = at;
    }

    fn listener_count(&self) -> usize {
        self.listeners.len()
    }
}

impl Server {
    /// Accepts every connection waiting on metrics listener `i`.
    pub(super) fn accept_http(&mut self, i: usize) {
        loop {
            let mut stream = match self.web.listeners[i].accept() {
                Ok(stream) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if is_out_of_descriptors(&e) {
                        // accept_on_every_listener retries.
                        self.accept_paused = true;
                    }
                    log::warn!("metrics accept failed: {e}");
                    return;
                }
            };
            self.accept_paused = false;
            if self.web.conns.len() >= MAX_HTTP_CONNS
                && let Some(&(_, oldest)) = self.web.deadlines.first()
            {
                log::info!("http {oldest}: closed for a new connection ({MAX_HTTP_CONNS} open)");
                self.close_http(oldest);
            }
            let entry = self.web.conns.vacant_entry();
            let key = entry.key();
            let token = Token(HTTP_CONNS + key);
            if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
                log::warn!("cannot watch a new metrics connection: {e}");
                continue;
            }
            entry.insert(HttpConn::new(stream));
            let at = self.clock.read() + HTTP_TIMEOUT;
            self.web.set_deadline(key, at);
            log::debug!("http {key}: accepted");
        }
    }

    /// Accepts on every metrics listener (after running out of descriptors).
    pub(super) fn accept_http_on_every_listener(&mut self) {
        for i in 0..self.web.listener_count() {
            self.accept_http(i);
        }
    }

    /// Writes, reads, parses and answers until connection `key` waits for
    /// its socket (or is closed).
    pub(super) fn drive_http(&mut self, key: usize) {
        let mut progressed = false;
        loop {
            let Some(conn) = self.web.conns.get_mut(key) else { return };
            if conn.is_awaiting() {
                // Its scrape is being encoded: send_scrapes drives it on.
                break;
            }
            if conn.has_output() {
                let flushed = conn.flush();
                progressed |= conn.take_wrote();
                match flushed {
                    Err(_) => return self.close_http(key),
                    Ok(false) => break,
                    Ok(true) if conn.closes_when_written() => conn.linger(),
                    Ok(true) => {}
                }
            }
            match conn.parse() {
                Parsed::Request(request) => {
                    progressed = true;
                    match self.answer(&request) {
                        Some(response) => {
                            log::debug!("http {key}: {} {} -> {:?}", request.method, request.path, response.status);
                            self.web.conns[key].respond(response, Some(&request));
                        }
                        None => self.scrape(key, request),
                    }
                    continue;
                }
                Parsed::Bad(status) => {
                    log::debug!("http {key}: bad request -> {status:?}");
                    conn.respond(Response::plain(status), None);
                    continue;
                }
                Parsed::Incomplete => {}
            }
            if conn.input_ended() {
                // Nothing more can come, and nothing more is to be said.
                return self.close_http(key);
            }
            match conn.read() {
                Ok(ReadOutcome::Data | ReadOutcome::Eof) => {}
                Ok(ReadOutcome::WouldBlock) => break,
                Err(_) => return self.close_http(key),
            }
        }
        if progressed {
            let at = self.clock.read() + HTTP_TIMEOUT;
            self.web.set_deadline(key, at);
        }
    }

    /// Closes the HTTP connections whose deadline passed: those sending a
    /// request are told 408 on the way out (as much as their socket takes
    /// at once).
    pub(super) fn expire_http(&mut self) {
        let now = self.clock.read();
        while let Some(&(at, key)) = self.web.deadlines.first() {
            if at > now {
                break;
            }
            let conn = &mut self.web.conns[key];
            // A slow reader's socket may have taken bytes without a
            // writable event (edge-triggered, the kernel reports one only
            // once a third of its buffer is free): a write now tells.
            if conn.has_output() {
                let flushed = conn.flush();
                if conn.take_wrote() {
                    if flushed.is_ok_and(|done| done) && conn.closes_when_written() {
                        conn.linger();
                    }
                    self.web.set_deadline(key, now + HTTP_TIMEOUT);
                    continue;
                }
            }
            if conn.has_partial_request() && !conn.has_output() && !conn.is_lingering() {
                conn.respond(Response::plain(Status::RequestTimeout), None);
                let _ = conn.flush();
            }
            log::debug!("http {key}: timed out");
            self.close_http(key);
        }
    }

    fn close_http(&mut self, key: usize) {
        let mut conn = self.web.conns.remove(key);
        let _ = self.poll.registry().deregister(conn.stream_mut());
        self.web.deadlines.remove(&(self.web.deadline_of[key], key));
        log::debug!("http {key}: closed");
    }

    /// The response to a request (the routes); `None` for a scrape, whose
    /// response is made off the loop ([`Server::scrape`]).
    fn answer(&mut self, request: &Request) -> Option<Response> {
        let get = matches!(request.method.as_str(), "GET" | "HEAD");
        match request.path.as_str() {
            "/metrics" if get => None,
            "/" if get => Some(status_page()),
            "/status.json" if get => Some(self.status_json()),
            "/metrics" | "/" | "/status.json" => {
                Some(Response { allow_get: true, ..Response::plain(Status::MethodNotAllowed) })
            }
            _ => Some(Response::plain(Status::NotFound)),
        }
    }

    /// Takes the figures now (the engine's, the binlog's) for connection
    /// `key`'s scrape, and hands them to the encoding thread.
    fn scrape(&mut self, key: usize, request: Request) {
        let now = self.clock.now();
        let mut figures = self.engine.figures(now);
        figures.binlog = self.engine.journal().as_ref().map(Binlog::figures);
        let format = Format::from_accept(request.accept.as_deref());
        let serial = self.web.next_serial;
        self.web.next_serial += 1;
        self.web.conns[key].await_response(serial, request);
        match &self.web.encoder {
            Some(encoder) => encoder.encode(key, serial, figures, format),
            None => unreachable!("HTTP connections come from metrics listeners, which start the encoder"),
        }
    }

    /// Sends the scrapes the encoding thread finished, and drives their
    /// connections on (pipelined requests).
    pub(super) fn send_scrapes(&mut self) {
        while let Some(Encoded { key, serial, format, body }) = self.web.encoder.as_ref().and_then(Encoder::finished) {
            let Some(conn) = self.web.conns.get_mut(key) else { continue };
            let Some(request) = conn.take_awaited(serial) else { continue };
            log::debug!("http {key}: {} {} -> 200 ({} bytes)", request.method, request.path, body.len());
            let response = Response {
                status: Status::Ok,
                content_type: format.content_type(),
                body: body.into_bytes(),
                allow_get: false,
                headers: "",
            };
            conn.respond(response, Some(&request));
            self.drive_http(key);
        }
    }
}

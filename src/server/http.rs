//! One HTTP/1.1 connection on a metrics listener: its request read and
//! parsed (`httparse`), its response queued and written as the socket
//! takes it. What is answered is web.rs's business.
//!
//! Bounded: a request head (request line and headers) may take at most
//! [`MAX_REQUEST_HEAD`] bytes and [`MAX_HEADERS`] headers, or it is
//! answered 431; anything `httparse` rejects is answered 400. Request
//! bodies are not read: a request that has one is answered and the
//! connection closed after. A response is written as the socket takes it,
//! never waited for; the next request is read only once it is written
//! (pipelined requests wait in the socket). A connection to be closed is
//! shut down for writing first and its input read and thrown away until
//! the peer closes too (a lingering close): closing with unread input
//! would reset the connection, and the peer could lose the response.

use std::io::{self, Read, Write};

use super::listener::Stream;

/// The most bytes a request's line and headers may take (431 beyond).
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// The most headers a request may have (431 beyond).
pub const MAX_HEADERS: usize = 64;

/// A parsed request: what web.rs needs to answer it.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `HEAD`, or anything else (answered 405 or 404).
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The `Accept` header, if any (OpenMetrics or the Prometheus format).
    pub accept: Option<Vec<u8>>,
    /// Whether the connection stays open after the response: HTTP/1.1
    /// unless `Connection: close`, HTTP/1.0 only with `Connection:
    /// keep-alive`, and never after a request with a body.
    pub keep_alive: bool,
    /// HTTP/1.0 (the response says `Connection: keep-alive` to keep it).
    pub http10: bool,
}

/// What the buffered input amounts to.
#[derive(Debug)]
pub enum Parsed {
    /// A whole request head (taken out of the buffer).
    Request(Request),
    /// Not a whole request head yet.
    Incomplete,
    /// A request that cannot be answered: this status, then close.
    Bad(Status),
}

/// The statuses sprout answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    HeadersTooLarge,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::RequestTimeout => "408 Request Timeout",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
        }
    }
}

/// A response to queue.
#[derive(Debug)]
pub struct Response {
    pub status: Status,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// `Allow: GET, HEAD` (a 405).
    pub allow_get: bool,
    /// More header lines, each ending in CRLF.
    pub headers: &'static str,
}

impl Response {
    /// A short plain-text answer: the status line's words.
    pub fn plain(status: Status) -> Response {
        let body = format!("{}\n", status.line()).into_bytes();
        Response { status, content_type: "text/plain; charset=utf-8", body, allow_get: false, headers: "" }
    }
}

/// What one read brought.
pub enum ReadOutcome {
    /// Bytes arrived.
    Data,
    /// Nothing more for now.
    WouldBlock,
    /// The peer will send nothing more.
    Eof,
}

/// One HTTP client (see the module docs).
pub struct HttpConn {
    stream: Stream,
    /// The unparsed input: at most [`MAX_REQUEST_HEAD`] bytes.
    input: Vec<u8>,
    /// The response being written, and how much of it was.
    output: Vec<u8>,
    written: usize,
    /// Close once the output is written.
    close_when_written: bool,
    /// Shut down for writing; input is thrown away until the peer closes.
    lingering: bool,
    /// The peer ended its input.
    eof: bool,
    /// A request whose response is being made elsewhere (a scrape being
    /// encoded), with its serial: nothing more is read or parsed meanwhile.
    awaiting: Option<(u64, Request)>,
    /// Bytes were written since [`HttpConn::take_wrote`] last asked.
    wrote: bool,
}

impl HttpConn {
    pub fn new(stream: Stream) -> HttpConn {
        HttpConn {
            stream,
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            close_when_written: false,
            lingering: false,
            eof: false,
            awaiting: None,
            wrote: false,
        }
    }

    /// The socket, to register with the poller or take it off.
    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// Waits for the response to request `serial` (made elsewhere).
    pub fn await_response(&mut self, serial: u64, request: Request) {
        self.awaiting = Some((serial, request));
    }

    /// Whether it waits for a response made elsewhere.
    pub fn is_awaiting(&self) -> bool {
        self.awaiting.is_some()
    }

    /// The request waited for, if its serial is `serial`, taken: its
    /// response is here.
    pub fn take_awaited(&mut self, serial: u64) -> Option<Request> {
        match &self.awaiting {
            Some((s, _)) if *s == serial => self.awaiting.take().map(|(_, request)| request),
            _ => None,
        }
    }

    /// A response waits to be written.
    pub fn has_output(&self) -> bool {
        self.written < self.output.len()
    }

    /// Some of a request arrived and is not answered yet.
    pub fn has_partial_request(&self) -> bool {
        !self.input.is_empty()
    }

    /// The peer ended its input.
    pub fn input_ended(&self) -> bool {
        self.eof
    }

    /// In its lingering close (see the module docs).
    pub fn is_lingering(&self) -> bool {
        self.lingering
    }

    /// Reads what the socket has, up to the request-head limit (or,
    /// lingering, reads and throws it away).
    pub fn read(&mut self) -> io::Result<ReadOutcome> {
        let mut buf = [0u8; 4096];
        let room = if self.lingering { buf.len() } else { (MAX_REQUEST_HEAD - self.input.len()).min(buf.len()) };
        debug_assert!(room > 0, "a full buffer is answered 431 before reading more");
        loop {
            match self.stream.read(&mut buf[..room]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(ReadOutcome::Eof);
                }
                Ok(n) => {
                    if !self.lingering {
                        self.input.extend_from_slice(&buf[..n]);
                    }
                    return Ok(ReadOutcome::Data);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next request in the buffered input, if whole.
    pub fn parse(&mut self) -> Parsed {
        if self.input.is_empty() || self.lingering {
            return Parsed::Incomplete;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(&self.input) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if self.input.len() >= MAX_REQUEST_HEAD => {
                return Parsed::Bad(Status::HeadersTooLarge);
            }
            Ok(httparse::Status::Partial) => return Parsed::Incomplete,
            Err(httparse::Error::TooManyHeaders) => return Parsed::Bad(Status::HeadersTooLarge),
            Err(_) => return Parsed::Bad(Status::BadRequest),
        };
        let http10 = req.version == Some(0);
        let (mut close, mut keep, mut body, mut accept) = (false, false, false, None);
        for h in req.headers.iter() {
            let value = h.value;
            if h.name.eq_ignore_ascii_case("connection") {
                for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if h.name.eq_ignore_ascii_case("accept") {
                accept = Some(value.to_vec());
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                body = true;
            } else if h.name.eq_ignore_ascii_case("content-length") {
                body |= value.trim_ascii() != b"0";
            }
        }
        let path = req.path.unwrap_or("/");
        let request = Request {
            method: req.method.unwrap_or("").to_string(),
            path: path.split_once('?').map_or(path, |(p, _)| p).to_string(),
            accept,
            keep_alive: !close && !body && (!http10 || keep),
            http10,
        };
        self.input.drain(..len);
        Parsed::Request(request)
    }

    /// Queues the response to `request` (or, without one, to a request
    /// that could not be read: then the connection closes after).
    pub fn respond(&mut self, response: Response, request: Option<&Request>) {
        let keep_alive = request.is_some_and(|r| r.keep_alive);
        let head_only = request.is_some_and(|r| r.method == "HEAD");
        let mut head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            response.status.line(),
            response.content_type,
            response.body.len()
        );
        if response.allow_get {
            head.push_str("Allow: GET, HEAD\r\n");
        }
        head.push_str(response.headers);
        match (keep_alive, request.is_some_and(|r| r.http10)) {
            (false, _) => head.push_str("Connection: close\r\n"),
            (true, true) => head.push_str("Connection: keep-alive\r\n"),
            (true, false) => {}
        }
        head.push_str("\r\n");
        self.output.clear();
        self.written = 0;
        self.output.extend_from_slice(head.as_bytes());
        if !head_only {
            self.output.extend_from_slice(&response.body);
        }
        self.close_when_written = !keep_alive;
    }

    /// Writes what the socket takes. `Ok(true)` once all of it is written.
    /// [`HttpConn::take_wrote`] tells whether any bytes went.
    pub fn flush(&mut self) -> io::Result<bool> {
        let before = self.written;
        let result = self.write_out();
        self.wrote |= self.written > before || result.as_ref().is_ok_and(|&done| done);
        result
    }

    /// Whether bytes were written since the last call (progress).
    pub fn take_wrote(&mut self) -> bool {
        std::mem::take(&mut self.wrote)
    }

    fn write_out(&mut self) -> io::Result<bool> {
        while self.has_output() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // A large scrape's buffer is not kept for the next.
        self.output = Vec::new();
        self.written = 0;
        Ok(true)
    }

    /// Whether the connection is to close now that its output is written.
    pub fn closes_when_written(&self) -> bool {
        self.close_when_written
    }

    /// Starts the lingering close: nothing more will be written.
    pub fn linger(&mut self) {
        self.lingering = true;
        self.input = Vec::new();
        let _ = self.stream.shutdown_write();
    }
}

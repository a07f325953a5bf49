//! HTTP for the metrics tests: where a server answers `GET /metrics`, raw
//! requests and their responses, and the real Prometheus parser (Python's
//! `prometheus_client`) to read a scrape with.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Server, wait_until};

/// The metrics port of a server started with `--metrics 127.0.0.1:0 -V`,
/// from its log line `metrics on http://127.0.0.1:PORT/metrics`.
pub fn metrics_port(server: &Server) -> u16 {
    let mut port = None;
    let found = wait_until(Duration::from_secs(10), || {
        let text = server.stderr_text();
        port = text.lines().find_map(|l| {
            let rest = l.split("metrics on http://").nth(1)?;
            rest.split('/').next()?.rsplit_once(':')?.1.parse().ok()
        });
        port.is_some()
    });
    assert!(found, "no metrics port in the log (started with -V?):\n{}", server.stderr_text());
    port.unwrap()
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }
}

/// A connection to the metrics port.
pub fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
}

/// Reads one response: head, then `Content-Length` bytes of body (none for
/// a response to HEAD, `head_only`), or a chunked body (as Prometheus's
/// own server sends larger ones).
pub fn read_response(stream: &mut TcpStream, head_only: bool) -> io::Result<Response> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        // A signal (a child's exit) may interrupt the read: read again,
        // as `read_exact` does.
        let read = loop {
            match stream.read(&mut byte) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                read => break read?,
            }
        };
        if read == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("closed after {buf:?}")));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).expect("an ASCII head");
    let mut lines = head.lines();
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers: BTreeMap<String, String> =
        lines.filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
    if headers.get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) && !head_only {
        let body = read_chunked(stream)?;
        return Ok(Response { status, headers, body });
    }
    let len: usize = headers.get("content-length").expect("Content-Length").parse().unwrap();
    let mut body = vec![0; if head_only { 0 } else { len }];
    stream.read_exact(&mut body)?;
    Ok(Response { status, headers, body })
}

/// A chunked body: hex size lines, each chunk and its CRLF, to a chunk of
/// size 0 (no trailers expected).
fn read_chunked(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            stream.read_exact(&mut byte)?;
            line.push(byte[0]);
        }
        let size_text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|e| panic!("chunk size {size_text:?}: {e}"));
        let mut chunk = vec![0; size + 2];
        stream.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// Sends `raw` on a new connection and reads one response.
pub fn exchange(port: u16, raw: &[u8]) -> Response {
    let mut stream = connect(port);
    stream.write_all(raw).unwrap();
    read_response(&mut stream, raw.starts_with(b"HEAD")).expect("a response")
}

/// `GET path` with extra header lines (each ending in CRLF).
pub fn get(port: u16, path: &str, headers: &str) -> Response {
    exchange(port, format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n").as_bytes())
}

/// A scrape, as Python's `prometheus_client` parses it: each sample's
/// `name{label="value",...}` (labels sorted) and its value. `None` (after
/// saying why the test is skipped; in CI, a failure) if python3 or the
/// library is missing. `openmetrics` picks that parser.
pub fn parse_with_prometheus_client(test: &str, text: &str, openmetrics: bool) -> Option<BTreeMap<String, f64>> {
    const SCRIPT: &str = r#"
import sys
try:
    from prometheus_client.parser import text_string_to_metric_families as prom
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
except ImportError:
    sys.exit(3)
parse = om if sys.argv[1] == "openmetrics" else prom
for family in parse(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print("%s{%s}\t%r" % (s.name, labels, s.value))
"#;
    let mut child = match Command::new("python3")
        .args(["-c", SCRIPT, if openmetrics { "openmetrics" } else { "prometheus" }])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            super::skip(test, &format!("cannot run python3: {e}"));
            return None;
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    let input = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    if out.status.code() == Some(3) {
        super::skip(test, "python3 has no prometheus_client (python3 -m pip install prometheus_client)");
        return None;
    }
    assert!(out.status.success(), "prometheus_client rejected the scrape: {}", String::from_utf8_lossy(&out.stderr));
    let samples = String::from_utf8(out.stdout).unwrap();
    Some(
        samples
            .lines()
            .map(|l| {
                let (key, value) = l.split_once('\t').unwrap();
                (key.to_string(), value.parse::<f64>().unwrap_or_else(|_| panic!("value of {l}")))
            })
            .collect(),
    )
}

//! A blocking connection that reads replies as they come: for the
//! scenarios that talk to one server a request (or a batch) at a time
//! (`buried`, `stalls`), not through the load generator.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::client::{self, Reply};
use crate::server::Server;

/// A blocking connection that reads replies as they come.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects; a read waits at most `timeout`.
    pub fn open(server: &Server, timeout: Duration) -> Result<Conn, String> {
        let stream = TcpStream::connect(server.addr).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        Ok(Conn { stream, buf: Vec::new() })
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).map_err(|e| e.to_string())
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                // A signal interrupted a blocked read: read again.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// The next reply, given to `take`, which says what it means.
    pub fn reply<T>(&mut self, take: impl Fn(Reply) -> Result<T, String>) -> Result<T, String> {
        loop {
            if let Some((reply, used)) = client::parse_reply(&self.buf)? {
                let value = take(reply);
                self.buf.drain(..used);
                return value;
            }
            self.fill()?;
        }
    }

    pub fn expect(&mut self, ok: impl Fn(&Reply) -> bool, what: &str) -> Result<(), String> {
        self.reply(|r| if ok(&r) { Ok(()) } else { Err(format!("{what}: {r:?}")) })
    }

    pub fn reserved(&mut self) -> Result<u64, String> {
        self.reply(|r| match r {
            Reply::Reserved { id, .. } => Ok(id),
            r => Err(format!("reserve: {r:?}")),
        })
    }

    /// An `INSERTED <id>` reply's id.
    pub fn inserted(&mut self) -> Result<u64, String> {
        self.reply(|r| match r {
            Reply::Inserted(id) => Ok(id),
            r => Err(format!("put: {r:?}")),
        })
    }

    /// One reply line, without its CRLF.
    pub fn line(&mut self) -> Result<Vec<u8>, String> {
        self.reply(|r| match r {
            Reply::Other(line) => Ok(line.to_vec()),
            r => Err(format!("expected a line, got {r:?}")),
        })
    }

    /// A `FOUND <id> <bytes>` reply's id, its body skipped.
    pub fn found(&mut self) -> Result<u64, String> {
        let line = self.line()?;
        let text = String::from_utf8_lossy(&line).into_owned();
        let (id, size) = text
            .strip_prefix("FOUND ")
            .and_then(|s| s.split_once(' '))
            .and_then(|(id, size)| Some((id.parse::<u64>().ok()?, size.parse::<usize>().ok()?)))
            .ok_or_else(|| format!("peek-buried: {text:?}"))?;
        while self.buf.len() < size + 2 {
            self.fill()?;
        }
        self.buf.drain(..size + 2);
        Ok(id)
    }
}

//! Encoding scrapes off the loop: the loop takes a scrape's figures (one
//! walk over the tubes, at one instant) and hands them to this thread,
//! which writes the document and wakes the loop to send it. The encoding
//! is most of a scrape's cost, and grows with the tubes that have series of
//! their own (about 7 µs each, `--metrics-tubes`): on the loop, a scrape of
//! 10,000 such tubes held the queue for 0.4 s.
//!
//! The thread exists only while metrics are on, and ends when the server
//! drops its end of the channel.

use std::io;
use std::sync::mpsc::{Receiver, Sender, channel};

use std::sync::Arc;

use mio::Waker;

use crate::metrics::{Figures, Format, encode};

/// A scrape to encode, for HTTP connection `key`'s request `serial`.
struct Job {
    key: usize,
    serial: u64,
    figures: Figures,
    format: Format,
}

/// An encoded scrape, for HTTP connection `key`'s request `serial`.
pub struct Encoded {
    pub key: usize,
    pub serial: u64,
    pub format: Format,
    pub body: String,
}

/// The encoding thread's two ends.
pub struct Encoder {
    jobs: Sender<Job>,
    done: Receiver<Encoded>,
}

impl Encoder {
    /// Starts the thread; it wakes the loop with `waker` when a scrape is
    /// encoded.
    pub fn start(waker: Arc<Waker>) -> io::Result<Encoder> {
        let (jobs, incoming) = channel::<Job>();
        let (finished, done) = channel::<Encoded>();
        std::thread::Builder::new().name("metrics-encode".into()).spawn(move || {
            for Job { key, serial, figures, format } in incoming {
                let body = encode(figures, format);
                if finished.send(Encoded { key, serial, format, body }).is_err() {
                    return;
                }
                let _ = waker.wake();
            }
        })?;
        Ok(Encoder { jobs, done })
    }

    /// Hands over a scrape's figures.
    pub fn encode(&self, key: usize, serial: u64, figures: Figures, format: Format) {
        // The thread lives as long as this end: the send cannot fail.
        let _ = self.jobs.send(Job { key, serial, figures, format });
    }

    /// The next encoded scrape, if one is done.
    pub fn finished(&self) -> Option<Encoded> {
        self.done.try_recv().ok()
    }
}

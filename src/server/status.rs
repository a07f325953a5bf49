//! The status page's side of the loop (`--metrics`): the page itself, the
//! document it reads, and sampling the rates it charts. What they hold is
//! the `status` module's business.
//!
//! The rates are sampled every [`SAMPLE_INTERVAL`] on the loop's timer
//! (web.rs counts the next sample among its deadlines), only while there
//! are metrics listeners: with metrics off there is no timer and no ring.
//! A sample is a scrape's walk over the tubes (`Engine::figures`, O(tubes):
//! 0.1-0.2 ms with 10,000 tubes) and a ring entry per tube with figures of
//! its own.

use super::Server;
use super::http::{Response, Status};
use crate::status::{PAGE, SAMPLE_INTERVAL, StatusDocument, sampled};

/// The page's headers: never cached (it is small, and a stale copy after
/// an upgrade would read a document it does not know), and nothing
/// loaded from anywhere: inline script and style, `status.json` from the
/// same listener, SVG drawn in the page.
const PAGE_HEADERS: &str = "Cache-Control: no-store\r\n\
    X-Content-Type-Options: nosniff\r\n\
    Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'\r\n";

/// `GET /`: the page, as built into the binary.
pub(super) fn status_page() -> Response {
    Response {
        status: Status::Ok,
        content_type: "text/html; charset=utf-8",
        body: PAGE.as_bytes().to_vec(),
        allow_get: false,
        headers: PAGE_HEADERS,
    }
}

impl Server {
    /// `GET /status.json`: the figures now, and the rates sampled so far.
    pub(super) fn status_json(&mut self) -> Response {
        let now = self.clock.now();
        let figures = self.engine.figures(now);
        let Some(rates) = &self.web.rates else {
            unreachable!("HTTP connections come from metrics listeners, which keep the rates")
        };
        Response {
            status: Status::Ok,
            content_type: "application/json",
            body: StatusDocument::new(&figures, rates).to_json(),
            allow_get: false,
            headers: "Cache-Control: no-store\r\n",
        }
    }

    /// Samples the tubes' put and reserve counters if a sample is due.
    pub(super) fn sample_rates_if_due(&mut self) {
        let read = self.clock.read();
        if self.web.next_sample_at().is_none_or(|at| at > read) {
            return;
        }
        let now = self.clock.now();
        let figures = self.engine.figures(now);
        if let Some(rates) = &mut self.web.rates {
            rates.sample(now, sampled(&figures));
        }
        debug_assert!(self.web.next_sample_at().is_some_and(|at| at >= now + SAMPLE_INTERVAL));
    }
}

//! The status page (`GET /` on the `--metrics` listener): a read-only page
//! a person opens in a browser to see the server at a glance, and the JSON
//! document it reads (`GET /status.json`). Nothing here touches a socket
//! or a clock: the server samples the rates on a timer and answers the
//! requests (`server/status.rs`).
//!
//! A map of the module, one concept a file:
//! - `page.html`: the page, served as it is ([`PAGE`]): inline CSS and
//!   script, no external assets, no forms; it fetches `status.json` every
//!   [`REFRESH_SECS`] seconds and draws the tubes' table and charts.
//! - `rates.rs`: [`RateHistory`], the fixed-size rings of each tube's put
//!   and reserve growth over the last ten minutes.
//! - `document.rs`: [`StatusDocument`], what `status.json` holds.
//!
//! Bounded like the metrics: the tubes with figures of their own (the
//! first `--metrics-tubes`) have rows and rates; the others are one
//! `[other]` row, added up, that says how many tubes it stands for. A
//! document lists at most [`MAX_ROWS`] tubes (those with the most ready
//! jobs) however high the cap is raised, and says how many it left out.

mod document;
mod rates;

pub use document::{Connections, Jobs, MAX_ROWS, StatusDocument, TubeRow, counters, sampled};
pub use rates::{BYTES_PER_SERIES, Counters, Growth, RateHistory, SAMPLE_INTERVAL, SAMPLES};

/// The page, as served.
pub const PAGE: &str = include_str!("page.html");

/// How often the page fetches the document again (the page's script says
/// so too: a test checks they agree).
pub const REFRESH_SECS: u64 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_refreshes_as_said_and_loads_nothing_from_elsewhere() {
        assert!(PAGE.contains(&format!("const REFRESH_SECS = {REFRESH_SECS};")), "the page's refresh agrees");
        // Its one absolute URL is SVG's namespace, a name, not a fetch.
        assert_eq!(PAGE.matches("://").count(), 1, "no external assets");
        assert!(PAGE.contains("const SVG = \"http://www.w3.org/2000/svg\";"));
        for write in ["<form", "method:", "\"POST\"", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"]
        {
            assert!(!PAGE.contains(write), "the page holds {write:?}: read-only, data only as text");
        }
    }
}

//! The beanstalk wire protocol as beanstalkd 1.12 speaks it, with no I/O.
//!
//! - [`decoder`] turns a connection's incoming bytes into [`Event`]s: it
//!   finds command lines, enforces the line cap, collects `put` bodies and
//!   discards oversized ones as they stream. Framing is its business alone:
//!   a put's line and its body are separate events, and only a whole
//!   command is a [`Command`].
//! - [`parse`] reads one command line with beanstalkd's number and
//!   tube-name grammar.
//! - [`reply`] is every answer the server can send, and its bytes.
//! - [`yaml`] formats the stats and list bodies in beanstalkd's key order.

mod body;
pub mod command;
pub mod decoder;
pub mod parse;
pub mod reply;
pub mod yaml;

pub use command::{Command, Op, TubeName};
pub use decoder::{Decoder, Event};
pub use reply::{BodyBytes, JobBody, Reply};

/// Longest command line accepted, CRLF included (beanstalkd's `LINE_BUF_SIZE`).
pub const MAX_LINE: usize = 224;

/// Longest tube name.
pub const MAX_TUBE_NAME: usize = 200;

/// Largest `-z` beanstalkd allows: 1 GiB.
pub const MAX_JOB_SIZE_LIMIT: u32 = 1_073_741_824;

/// Default `-z`.
pub const DEFAULT_MAX_JOB_SIZE: u32 = 65_535;

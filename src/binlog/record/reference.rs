//! Format 2 written the plainest way, a byte pushed at a time, as
//! docs/binlog-format.md words it: what the tests hold [`FileEncoder`]'s
//! bytes to, record by record, whatever shortcuts the encoder takes.
//!
//! [`FileEncoder`]: super::FileEncoder

use std::collections::HashMap;

use super::tubes::REDECLARE_AFTER;
use super::{FRAME_LEN, JobUpdate, Record, TYPE_DELETE, TYPE_JOB, TYPE_PADDING, TYPE_STATE};
use crate::protocol::TubeName;

const NS_PER_SEC: u64 = 1_000_000_000;

/// One file's writer: its base time and the tubes its records declared.
pub(crate) struct ReferenceWriter {
    base: i64,
    /// Each tube's index, and the number of job records written before
    /// the one that last declared it.
    tubes: HashMap<TubeName, (u32, u64)>,
    jobs: u64,
}

impl ReferenceWriter {
    /// For a new file of base time `base_secs`.
    pub(crate) fn new(base_secs: u32) -> ReferenceWriter {
        ReferenceWriter { base: i64::from(base_secs) * NS_PER_SEC as i64, tubes: HashMap::new(), jobs: 0 }
    }

    /// The record's bytes, its CRC left zero, if it takes at most `room`
    /// bytes; `None`, and nothing noted, if not.
    pub(crate) fn record(&mut self, record: &Record<&[u8]>, room: u64) -> Option<Vec<u8>> {
        let mut payload = Vec::new();
        let mut declared = None;
        match record {
            Record::Job(job) => {
                let known = self.tubes.get(&job.tube).copied();
                let (index, declares) = match known {
                    Some((index, at)) if self.jobs - at < REDECLARE_AFTER => (index, false),
                    Some((index, _)) => (index, true),
                    None => (self.tubes.len() as u32, true),
                };
                let whole = job.ttr % NS_PER_SEC == 0 && job.update.delay % NS_PER_SEC == 0;
                payload.push(TYPE_JOB);
                payload.push(flags(&job.update, whole) | if declares { 1 << 6 } else { 0 });
                self.update(&job.update, whole, &mut payload);
                varint(&mut payload, if whole { job.ttr / NS_PER_SEC } else { job.ttr });
                zigzag(&mut payload, job.created_at.wrapping_sub(self.base));
                varint(&mut payload, index.into());
                if declares {
                    payload.push(job.tube.as_str().len() as u8);
                    payload.extend_from_slice(job.tube.as_str().as_bytes());
                    declared = Some((job.tube.clone(), index));
                }
                varint(&mut payload, job.body.len() as u64);
                payload.extend_from_slice(job.body);
            }
            Record::State(update) => {
                let whole = update.delay % NS_PER_SEC == 0;
                payload.push(TYPE_STATE);
                payload.push(flags(update, whole));
                self.update(update, whole, &mut payload);
            }
            Record::Delete(id) => {
                payload.push(TYPE_DELETE);
                payload.extend_from_slice(&id.to_le_bytes());
            }
            Record::Padding(filler) => {
                payload.push(TYPE_PADDING);
                payload.resize(1 + filler, 0);
            }
        }
        if (FRAME_LEN + payload.len()) as u64 > room {
            return None;
        }
        if let Record::Job(_) = record {
            if let Some((tube, index)) = declared {
                self.tubes.insert(tube, (index, self.jobs));
            }
            self.jobs += 1;
        }
        let mut bytes = vec![0; 4];
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&payload);
        Some(bytes)
    }

    fn update(&self, u: &JobUpdate, whole: bool, out: &mut Vec<u8>) {
        varint(out, u.id);
        varint(out, u.pri.into());
        if u.delay != 0 {
            varint(out, if whole { u.delay / NS_PER_SEC } else { u.delay });
        }
        if u.ready_at != 0 {
            zigzag(out, u.ready_at.wrapping_sub(self.base));
        }
        if has_counters(u) {
            for n in [u.reserves, u.timeouts, u.releases, u.buries, u.kicks] {
                varint(out, n.into());
            }
        }
    }
}

fn has_counters(u: &JobUpdate) -> bool {
    [u.reserves, u.timeouts, u.releases, u.buries, u.kicks] != [0; 5]
}

/// The flags byte but the tube's declaration bit.
fn flags(u: &JobUpdate, whole: bool) -> u8 {
    let bit = |set: bool, bit: u8| if set { 1 << bit } else { 0 };
    u.state as u8 | bit(has_counters(u), 2) | bit(u.delay != 0, 3) | bit(u.ready_at != 0, 4) | bit(!whole, 5)
}

/// `v`'s bytes as a varint.
pub(super) fn varint_bytes(v: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    varint(&mut bytes, v);
    bytes
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

//! One chunk of a ready queue: up to [`CHUNK`] sorted keys, written down
//! as narrowly as they allow. What the keys of a chunk have in common (the
//! id they are near, and often their priority) is kept once for the chunk,
//! so a key costs nothing when the chunk's keys are a run (one priority,
//! ids without a gap), 4 bytes when they share a priority, 8 when they do
//! not, and 12 only when their ids lie 2^32 or more apart.

use std::collections::VecDeque;

use super::ReadyKey;
use crate::engine::chunked;
use crate::engine::ids::JobId;

/// The most keys a chunk holds. 256 keys shift in about as long as a cache
/// miss or two takes. A power of two, and so is every chunk's capacity (a
/// growing `VecDeque` doubles it; where this module picks one, it picks a
/// power of two): a growing chunk's capacity lands on `CHUNK` exactly and
/// never goes past it.
pub(super) const CHUNK: usize = 256;

/// A key as a chunk writes it down: relative to the chunk's frame, what all
/// of the chunk's keys have in common, which the chunk keeps once.
trait Code: Copy {
    type Frame: Copy;

    /// `None` if the key does not fit the frame; otherwise `decode` gives
    /// it back.
    fn encode(key: ReadyKey, frame: Self::Frame) -> Option<Self>;

    fn decode(self, frame: Self::Frame) -> ReadyKey;
}

/// `id` as an offset from `base`, if it is at most `u32::MAX` above it.
fn offset(id: JobId, base: JobId) -> Option<u32> {
    id.checked_sub(base).and_then(|offset| u32::try_from(offset).ok())
}

/// The key's id as an offset from the chunk's base id; the chunk holds the
/// priority. 4 bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct IdOffset(u32);

impl Code for IdOffset {
    /// The chunk's priority and base id.
    type Frame = (u32, JobId);

    fn encode((pri, id): ReadyKey, (chunk_pri, base): (u32, JobId)) -> Option<IdOffset> {
        if pri != chunk_pri {
            return None;
        }
        offset(id, base).map(IdOffset)
    }

    fn decode(self, (pri, base): (u32, JobId)) -> ReadyKey {
        (pri, base + u64::from(self.0))
    }
}

/// The priority, and the id as an offset from the chunk's base id. 8 bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct NearKey {
    pri: u32,
    offset: u32,
}

impl Code for NearKey {
    /// The chunk's base id.
    type Frame = JobId;

    fn encode((pri, id): ReadyKey, base: JobId) -> Option<NearKey> {
        offset(id, base).map(|offset| NearKey { pri, offset })
    }

    fn decode(self, base: JobId) -> ReadyKey {
        (self.pri, base + u64::from(self.offset))
    }
}

/// The whole key, in 12 bytes instead of 16.
#[derive(Clone, Copy, Debug)]
pub(super) struct PackedKey {
    pri: u32,
    id_high: u32,
    id_low: u32,
}

impl Code for PackedKey {
    type Frame = ();

    fn encode((pri, id): ReadyKey, (): ()) -> Option<PackedKey> {
        Some(PackedKey { pri, id_high: (id >> 32) as u32, id_low: id as u32 })
    }

    fn decode(self, (): ()) -> ReadyKey {
        (self.pri, u64::from(self.id_high) << 32 | u64::from(self.id_low))
    }
}

/// Sorted keys, at most [`CHUNK`]; never empty while it is in the queue.
/// Each variant is a coding, narrower to wider; `base` is at most every id
/// in the chunk. The frame's fields sit in the variants themselves, next to
/// the tag, so a chunk takes 48 bytes, not 56.
#[derive(Debug)]
pub(super) enum Chunk {
    /// Keys `(pri, first)`, `(pri, first + 1)`, ... `(pri, first + len -
    /// 1)`: jobs put one after another into a tube no other tube's puts
    /// came between, the usual queue. No codes at all.
    Run { pri: u32, first: JobId, len: u32 },
    /// Every key has priority `pri`; ids are less than 2^32 above `base`.
    OnePriority { pri: u32, base: JobId, codes: VecDeque<IdOffset> },
    /// Ids are less than 2^32 above `base`.
    NearIds { base: JobId, codes: VecDeque<NearKey> },
    /// Any keys: a job buried 2^32 jobs ago may be kicked next to new ones.
    FarIds { codes: VecDeque<PackedKey> },
}

/// Evaluates `$body` with `$frame` and `$codes` bound to the chunk's frame
/// and codes, whatever its coding: the body is compiled once per coding, so
/// that the methods that do not care which coding it is are written once.
macro_rules! with_codes {
    ($chunk:expr, |$frame:pat, $codes:ident| $body:expr) => {
        match $chunk {
            Chunk::Run { .. } => unreachable!("a run has no codes"),
            Chunk::OnePriority { pri, base, codes: $codes } => {
                let $frame = (*pri, *base);
                $body
            }
            Chunk::NearIds { base, codes: $codes } => {
                let $frame = *base;
                $body
            }
            Chunk::FarIds { codes: $codes } => {
                let $frame = ();
                $body
            }
        }
    };
}

impl Chunk {
    /// The keys (sorted, at least one) in the narrowest coding that fits
    /// them all, with room for `capacity` of them.
    pub(super) fn narrowest(keys: &[ReadyKey], capacity: usize) -> Chunk {
        let (pri, _) = keys[0];
        let one_priority = keys.iter().all(|&(key_pri, _)| key_pri == pri);
        let lowest = keys.iter().map(|&(_, id)| id).min().expect("a chunk has keys");
        let highest = keys.iter().map(|&(_, id)| id).max().expect("a chunk has keys");
        // Sorted keys of one priority are a run when their ids leave no gap.
        if one_priority && highest - lowest == keys.len() as u64 - 1 {
            return Chunk::Run { pri, first: lowest, len: keys.len() as u32 };
        }
        if offset(highest, lowest).is_none() {
            Chunk::FarIds { codes: encode_all(keys, (), capacity) }
        } else if one_priority {
            Chunk::OnePriority { pri, base: lowest, codes: encode_all(keys, (pri, lowest), capacity) }
        } else {
            Chunk::NearIds { base: lowest, codes: encode_all(keys, lowest, capacity) }
        }
    }

    /// A chunk of one key: the first, or one past a full last chunk. (What
    /// `narrowest` would write, without its work.)
    pub(super) fn single((pri, id): ReadyKey) -> Chunk {
        Chunk::Run { pri, first: id, len: 1 }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        match self {
            Chunk::Run { len, .. } => *len as usize,
            _ => with_codes!(self, |_, codes| codes.len()),
        }
    }

    /// Keys the chunk has room for; a run's room is nominal (it takes none:
    /// the next power of two, as a chunk of codes would have).
    pub(super) fn capacity(&self) -> usize {
        match self {
            Chunk::Run { len, .. } => (*len as usize).next_power_of_two(),
            _ => with_codes!(self, |_, codes| codes.capacity()),
        }
    }

    // `first`, `last` and `insert` are on the path of every put and
    // reserve, and the compiler would call them out of line (about 20 more
    // instructions a put and a reserve, counted with callgrind).
    #[inline(always)]
    pub(super) fn first(&self) -> ReadyKey {
        match self {
            Chunk::Run { pri, first, .. } => (*pri, *first),
            _ => with_codes!(self, |frame, codes| codes.front().expect("a chunk has keys").decode(frame)),
        }
    }

    #[inline(always)]
    pub(super) fn last(&self) -> ReadyKey {
        match self {
            Chunk::Run { pri, first, len } => (*pri, first + u64::from(*len) - 1),
            _ => with_codes!(self, |frame, codes| codes.back().expect("a chunk has keys").decode(frame)),
        }
    }

    /// The keys, decoded, with room for one more.
    pub(super) fn keys(&self) -> Vec<ReadyKey> {
        let mut keys = Vec::with_capacity(self.len() + 1);
        match self {
            Chunk::Run { pri, first, len } => keys.extend((0..u64::from(*len)).map(|i| (*pri, first + i))),
            _ => with_codes!(self, |frame, codes| keys.extend(codes.iter().map(|code| code.decode(frame)))),
        }
        keys
    }

    /// The keys, decoded, with `key` inserted at `pos`.
    fn keys_with(&self, pos: usize, key: ReadyKey) -> Vec<ReadyKey> {
        let mut keys = self.keys();
        keys.insert(pos, key);
        keys
    }

    /// Where the key is (`Ok`), or where it would go (`Err`).
    pub(super) fn search(&self, key: ReadyKey) -> Result<usize, usize> {
        match *self {
            Chunk::Run { pri, first, len } => {
                if key < (pri, first) {
                    Err(0)
                } else if key > self.last() {
                    Err(len as usize)
                } else {
                    // Same priority, id in the run.
                    Ok((key.1 - first) as usize)
                }
            }
            _ => with_codes!(self, |frame, codes| codes.binary_search_by(|code| code.decode(frame).cmp(&key))),
        }
    }

    /// Inserts the key at `pos`, which keeps the keys sorted, into a chunk
    /// that is not full. A key that does not fit the chunk's coding has the
    /// chunk rewritten in one that fits them all.
    #[inline(always)]
    pub(super) fn insert(&mut self, pos: usize, key: ReadyKey) {
        debug_assert!(self.len() < CHUNK, "a full chunk is split, not grown");
        let fits = match self {
            // The next job of the run: the usual put.
            Chunk::Run { pri, first, len } => {
                let extends =
                    pos == *len as usize && key.0 == *pri && first.checked_add(u64::from(*len)) == Some(key.1);
                *len += u32::from(extends);
                extends
            }
            _ => with_codes!(self, |frame, codes| insert_code(codes, pos, key, frame)),
        };
        if !fits {
            self.rewrite_with(pos, key);
        }
    }

    /// Rewrites the chunk with `key` inserted at `pos`, in the narrowest
    /// coding for them all. Cold: it happens once a change of coding, and
    /// kept out of [`Chunk::insert`] it leaves that small.
    #[cold]
    fn rewrite_with(&mut self, pos: usize, key: ReadyKey) {
        let capacity = if self.len() < self.capacity() { self.capacity() } else { 2 * self.capacity() };
        *self = Chunk::narrowest(&self.keys_with(pos, key), capacity);
    }

    #[inline]
    pub(super) fn remove(&mut self, pos: usize) {
        if let Chunk::Run { first, len, .. } = self {
            if pos == 0 {
                // A reserve, the usual removal. (An emptied run goes: its
                // first id may be the largest there is.)
                *first = first.wrapping_add(1);
                *len -= 1;
            } else if pos + 1 == *len as usize {
                *len -= 1;
            } else {
                self.rewrite_without(pos);
            }
            return;
        }
        with_codes!(self, |_, codes| {
            if pos == 0 {
                // A reserve, the usual removal: cheaper than the general one.
                codes.pop_front();
            } else {
                codes.remove(pos);
            }
        })
    }

    /// A run with a key taken out of its middle: the rest in codes. Cold:
    /// a job leaves the middle of a queue only when deleted or reserved by
    /// id while ready.
    #[cold]
    fn rewrite_without(&mut self, pos: usize) {
        let mut keys = self.keys();
        keys.remove(pos);
        *self = Chunk::narrowest(&keys, keys.len().next_power_of_two());
    }

    pub(super) fn shrink_to(&mut self, capacity: usize) {
        if !matches!(self, Chunk::Run { .. }) {
            with_codes!(self, |_, codes| codes.shrink_to(capacity))
        }
    }

    /// A full chunk with `key` inserted at `pos` (not after its last key),
    /// split in two, each part in its narrowest coding. Where the key is
    /// the last of its priority in the chunk, the split goes right after
    /// it, if both parts keep more than `CHUNK / 4` keys: the keys of that
    /// priority that come next, in id order, then go between the parts, at
    /// the end of the lower one, which fills up (see
    /// [`ReadyQueue::insert`](super::ReadyQueue::insert)). Elsewhere the split goes in the middle.
    pub(super) fn split_with(&self, pos: usize, key: ReadyKey) -> (Chunk, Chunk) {
        let keys = self.keys_with(pos, key);
        let ends_its_priority = keys[pos + 1].0 != key.0;
        let balanced = CHUNK / 4 < pos + 1 && CHUNK / 4 < keys.len() - (pos + 1);
        let at = if ends_its_priority && balanced { pos + 1 } else { CHUNK / 2 + 1 };
        let (lower, upper) = keys.split_at(at);
        // Capacities are powers of two (see CHUNK).
        (
            Chunk::narrowest(lower, lower.len().next_power_of_two()),
            Chunk::narrowest(upper, upper.len().next_power_of_two()),
        )
    }

    /// The coding's initial: One priority, Near ids, Far ids (tests only).
    #[cfg(test)]
    pub(super) fn coding(&self) -> char {
        match self {
            Chunk::Run { .. } => 'R',
            Chunk::OnePriority { .. } => 'O',
            Chunk::NearIds { .. } => 'N',
            Chunk::FarIds { .. } => 'F',
        }
    }

    /// Bytes the chunk's codes take on the heap, spare room included.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        fn of<C>(codes: &VecDeque<C>) -> usize {
            codes.capacity() * std::mem::size_of::<C>()
        }
        match self {
            Chunk::Run { .. } => 0,
            _ => with_codes!(self, |_, codes| of(codes)),
        }
    }
}

impl chunked::Chunk for Chunk {
    fn len(&self) -> usize {
        Chunk::len(self)
    }

    fn capacity(&self) -> usize {
        Chunk::capacity(self)
    }

    fn shrink_to(&mut self, capacity: usize) {
        Chunk::shrink_to(self, capacity);
    }
}

/// The keys written in `frame`, which fits them all.
fn encode_all<C: Code>(keys: &[ReadyKey], frame: C::Frame, capacity: usize) -> VecDeque<C> {
    let mut codes = VecDeque::with_capacity(capacity);
    codes.extend(keys.iter().map(|&key| C::encode(key, frame).expect("the frame fits every key")));
    codes
}

/// Inserts the key at `pos` if it fits `frame`; `false` if it does not.
#[inline]
fn insert_code<C: Code>(codes: &mut VecDeque<C>, pos: usize, key: ReadyKey, frame: C::Frame) -> bool {
    let Some(code) = C::encode(key, frame) else {
        return false;
    };
    if pos == codes.len() {
        // An append, the usual insert: cheaper than the general insert.
        codes.push_back(code);
    } else {
        codes.insert(pos, code);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_keys_that_fit_their_frame_and_only_those() {
        assert_eq!(std::mem::size_of::<IdOffset>(), 4);
        assert_eq!(std::mem::size_of::<NearKey>(), 8);
        assert_eq!(std::mem::size_of::<PackedKey>(), 12);
        assert!(std::mem::size_of::<Chunk>() <= 48);
        let top = u64::from(u32::MAX);
        for (key, frame) in [((7, 10), (7, 10)), ((7, 10 + top), (7, 10)), ((0, u64::MAX), (0, u64::MAX - top))] {
            assert_eq!(IdOffset::encode(key, frame).map(|code| code.decode(frame)), Some(key));
        }
        for (key, frame) in [((6, 10), (7, 10)), ((7, 9), (7, 10)), ((7, 11 + top), (7, 10))] {
            assert!(IdOffset::encode(key, frame).is_none(), "{key:?} in {frame:?}");
        }
        for (key, base) in [((7, 10), 10), ((u32::MAX, 10 + top), 10), ((0, u64::MAX), u64::MAX)] {
            assert_eq!(NearKey::encode(key, base).map(|code| code.decode(base)), Some(key));
        }
        for (key, base) in [((7, 9), 10), ((7, 11 + top), 10), ((7, 0), u64::MAX)] {
            assert!(NearKey::encode(key, base).is_none(), "{key:?} from {base}");
        }
        for key in [(0, 0), (0, top), (1, top + 1), (u32::MAX, u64::MAX)] {
            assert_eq!(PackedKey::encode(key, ()).map(|code| code.decode(())), Some(key));
        }
    }
}

//! How many more bytes the log can take before its prepared room runs low,
//! so that the question asked before every command ([`Binlog::room_is_low`])
//! and before every put's record (`ensure_room`) is a sum and a compare, inlined, instead of
//! a walk over the files (2-3% of the server's time for `-b` puts).
//!
//! The budget is worked out when the exact answer is (`Binlog::has_room`
//! for half a file, the low-room mark), and it is a lower bound: while the
//! files from the current one on are the same ones and the bytes appended
//! plus the bytes newly promised stay within it, `has_room(half)` is still
//! true, so the answers are the same as the walk's.
//!
//! Why the bound holds. Say the walk found the first file with room for half
//! a file at position `k` from the current one, and a margin `M` of room
//! beyond what it needs. Records go into the current file while it is the
//! current one (the files being the same ones means it did not change). If
//! `k = 0`, an append of `a` bytes takes `a` from both the room and the
//! current file's remaining bytes: the answer holds while `a <= M` and the
//! current file keeps half a file free (`a <= remaining - half`). If
//! `k > 0`, appends go to a file before `k`, which had less than half a file
//! and so never becomes the first with room; the room counted from `k` on
//! does not move: only newly promised bytes eat into `M`. A smaller need
//! than half a file fits wherever half a file does, so the budget answers
//! `ensure_room` for any record up to half a file too.

use super::Binlog;

/// A budget good for the files it was worked out on.
#[derive(Clone, Copy, Debug)]
pub(super) struct RoomBudget {
    /// `(current, number of files, last seq)`: a file made raises the last
    /// seq; with none made, a file retired shrinks both the count and
    /// `current`, and a move to the next file raises `current`.
    files: (usize, usize, u64),
    /// `reserved` when the budget was worked out: promises released since
    /// (deletes) do not count as room, so `reserved` counts from here at
    /// least.
    reserved_from: u64,
    /// How far `written_bytes + max(reserved, reserved_from)` may go: their
    /// sum when the budget was worked out, plus the bytes appended and
    /// newly promised that keep room from being low. One sum, so that the
    /// question asked before every command is an addition and a compare.
    limit: u64,
}

impl Binlog {
    fn files_key(&self) -> (usize, usize, u64) {
        (self.current, self.segments.len(), self.last_seq)
    }

    /// True if room for half a file is known to be there without walking
    /// the files: the budget worked out last is for these files and is not
    /// spent yet.
    #[inline]
    pub(super) fn budget_covers_half_a_file(&self) -> bool {
        let Some(budget) = self.room_budget.get() else { return false };
        let covers = self.written_bytes + self.reserved.max(budget.reserved_from) <= budget.limit
            && budget.files == self.files_key();
        debug_assert!(!covers || self.has_room(self.file_size / 2), "the room budget promised room that is not there");
        covers
    }

    /// `has_room(half a file)`, worked out by walking the files, and the
    /// budget that answers it next time if it is true.
    pub(super) fn has_room_for_half_a_file(&self) -> bool {
        let need = self.file_size / 2;
        let Some((margin, in_current)) = self.room_margin(need) else {
            self.room_budget.set(None);
            return false;
        };
        let bytes = if in_current { margin.min(self.segments[self.current].remaining() - need) } else { margin };
        self.room_budget.set(Some(RoomBudget {
            files: self.files_key(),
            reserved_from: self.reserved,
            limit: self.written_bytes + self.reserved + bytes,
        }));
        true
    }
}

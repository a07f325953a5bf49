//! Room given to bodies before their bytes arrive, shared by all
//! connections and bounded.
//!
//! A body's room grows with what arrives (`PartialBody`), so a client that
//! announces a gigabyte and sends three bytes costs three bytes. Growing
//! costs an honest client that sends a large body in one go an allocation
//! per doubling, though, each one fresh pages for the kernel to fault in:
//! a 16 MiB put took 6 times the CPU (22 ms, not 4). So a body larger than
//! a read is given its whole room at its line, as long as the bodies given
//! room that way add up to no more than [`BODY_ALLOWANCE`]; past that,
//! bodies grow as they arrive. What clients merely announce takes at most
//! that much memory, however many of them there are.

/// The most room all bodies may hold ahead of their bytes, together: two
/// 16 MiB bodies, or 32 of 1 MiB, arriving at once.
pub const BODY_ALLOWANCE: usize = 32 << 20;

/// What is left of [`BODY_ALLOWANCE`].
#[derive(Debug)]
pub struct BodyAllowance {
    left: usize,
}

impl Default for BodyAllowance {
    fn default() -> BodyAllowance {
        BodyAllowance { left: BODY_ALLOWANCE }
    }
}

impl BodyAllowance {
    /// Takes `bytes` of the allowance if that much is left.
    pub fn take(&mut self, bytes: usize) -> bool {
        let taken = bytes <= self.left;
        if taken {
            self.left -= bytes;
        }
        taken
    }

    /// Bytes left to take.
    #[cfg(test)]
    pub fn left(&self) -> usize {
        self.left
    }

    /// Gives back `bytes` taken before: the body is complete, dropped, or
    /// its connection gone.
    pub fn give_back(&mut self, bytes: usize) {
        self.left += bytes;
        assert!(self.left <= BODY_ALLOWANCE, "gave back more than was taken");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_what_is_left_and_gets_it_back() {
        let mut allowance = BodyAllowance::default();
        assert!(allowance.take(BODY_ALLOWANCE - 10));
        assert!(!allowance.take(11), "more than is left");
        assert!(allowance.take(10));
        assert!(!allowance.take(1));
        allowance.give_back(10);
        allowance.give_back(BODY_ALLOWANCE - 10);
        assert!(allowance.take(BODY_ALLOWANCE));
    }
}

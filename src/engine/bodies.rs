//! Job bodies, packed.
//!
//! Most bodies are small, and a queue may hold millions: a heap allocation
//! each would add its own header and rounding (a 100-byte body took 128
//! bytes as an `Rc<[u8]>`), and a fat pointer in every job record. So
//! bodies up to [`SMALL_MAX`] bytes live in cells of fixed-size pages, one
//! page list per size class (4-byte steps), and the job keeps an 8-byte
//! [`BodyRef`]. Larger bodies keep their own shared allocation, which
//! replies share instead of copying.
//!
//! A freed cell goes on its class's free list and is reused first. A class's
//! pages but one are returned when its last body goes (a drained queue gives
//! its memory back); partly used pages are kept, as a heap allocator keeps
//! partly used arenas.

use std::rc::Rc;

use slab::Slab;

use crate::protocol::BodyBytes;

/// Bodies up to this size are packed into cells.
pub const SMALL_MAX: usize = 1024;

/// Size classes are this many bytes apart: a body wastes 1.5 bytes on
/// average, and the 256 classes each keep at most one partly used page.
const CLASS_STEP: usize = 4;

/// Bytes per page: small enough that one partly used page per class costs
/// little (at most 4 MiB over all classes), large enough that a million
/// bodies need only a few thousand pages.
const PAGE_BYTES: usize = 16 * 1024;

/// Where a job's body is: 8 bytes in the job record. The default is the
/// empty body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodyRef {
    len: u32,
    /// The cell in the length's size class, or the key of a large body.
    at: u32,
}

impl BodyRef {
    /// The body's length, without looking it up (the binlog counts a
    /// restored job's record by it).
    pub(crate) fn len(self) -> usize {
        self.len as usize
    }
}

/// Every live job's body. A body is stored once, when its job is put or
/// restored, read by reference for as long as the job lives, and removed
/// with the job; its [`BodyRef`] means nothing after that.
#[derive(Debug, Default)]
pub struct Bodies {
    /// Index `k` holds the bodies of `(k - 1) * 4 + 1 ..= k * 4` bytes
    /// (index 0, empty bodies, holds no cells).
    classes: Vec<SizeClass>,
    large: Slab<Rc<[u8]>>,
    /// Bytes of pages given back when their class emptied, so far.
    pages_freed: u64,
}

#[derive(Debug)]
struct SizeClass {
    cell: usize,
    /// Pages of `cells_per_page` cells. A page is written up to its last
    /// cell handed out so far: a fresh page is not zeroed first, only
    /// written once, cell by cell.
    pages: Vec<Vec<u8>>,
    /// Cells handed out so far, freed ones included.
    used: u32,
    free: Vec<u32>,
    live: usize,
}

impl SizeClass {
    fn new(cell: usize) -> SizeClass {
        SizeClass { cell, pages: Vec::new(), used: 0, free: Vec::new(), live: 0 }
    }

    fn cells_per_page(&self) -> usize {
        PAGE_BYTES / self.cell
    }

    fn take_cell(&mut self) -> u32 {
        self.live += 1;
        if let Some(at) = self.free.pop() {
            return at;
        }
        if self.used as usize == self.pages.len() * self.cells_per_page() {
            self.pages.push(Vec::with_capacity(self.cells_per_page() * self.cell));
        }
        self.used += 1;
        self.used - 1
    }

    /// Frees a cell; returns the bytes of pages given back with it.
    fn release_cell(&mut self, at: u32) -> usize {
        self.live -= 1;
        if self.live == 0 {
            // Everything goes at once (the free list would only point into
            // pages nobody uses), but the first page: a queue that keeps
            // emptying would otherwise get a page for every job.
            let freed = self.pages.iter().skip(1).map(|page| page.capacity()).sum();
            self.pages.truncate(1);
            self.free = Vec::new();
            self.used = 0;
            freed
        } else {
            self.free.push(at);
            0
        }
    }

    /// Writes `body` into the cell: in place if the cell was written
    /// before, else at the end of its page (cells are handed out in order).
    fn write(&mut self, at: u32, body: &[u8]) {
        let cell = self.cell(at);
        let page = self.page(at);
        let page = &mut self.pages[page];
        if cell.end <= page.len() {
            page[cell][..body.len()].copy_from_slice(body);
        } else {
            debug_assert_eq!(cell.start, page.len(), "cells are handed out in order");
            page.extend_from_slice(body);
            page.resize(cell.end, 0);
        }
    }

    fn cell(&self, at: u32) -> std::ops::Range<usize> {
        let start = (at as usize % self.cells_per_page()) * self.cell;
        start..start + self.cell
    }

    fn page(&self, at: u32) -> usize {
        at as usize / self.cells_per_page()
    }
}

fn class_of(len: usize) -> usize {
    len.div_ceil(CLASS_STEP)
}

impl Bodies {
    /// Stores a copy of `body`.
    pub fn insert(&mut self, body: &[u8]) -> BodyRef {
        let len = u32::try_from(body.len()).expect("bodies are limited to -z, at most 2^32 bytes");
        if body.is_empty() {
            return BodyRef { len, at: 0 };
        }
        if body.len() > SMALL_MAX {
            return self.insert_large(Rc::from(body));
        }
        let k = class_of(body.len());
        while self.classes.len() <= k {
            self.classes.push(SizeClass::new(self.classes.len() * CLASS_STEP));
        }
        let class = &mut self.classes[k];
        let at = class.take_cell();
        class.write(at, body);
        BodyRef { len, at }
    }

    /// Stores a body that already has its own allocation: a large one is
    /// kept as it is rather than copied.
    pub fn insert_shared(&mut self, body: Rc<[u8]>) -> BodyRef {
        if body.len() <= SMALL_MAX {
            return self.insert(&body);
        }
        self.insert_large(body)
    }

    /// Stores a body lent to it: borrowed bytes are copied, a shared
    /// allocation is kept if large ([`Bodies::insert_shared`]).
    pub fn insert_lent(&mut self, body: BodyBytes<'_>) -> BodyRef {
        match body {
            BodyBytes::Borrowed(bytes) => self.insert(bytes),
            BodyBytes::Shared(body) => self.insert_shared(body),
        }
    }

    fn insert_large(&mut self, body: Rc<[u8]>) -> BodyRef {
        let len = u32::try_from(body.len()).expect("bodies are limited to -z, at most 2^32 bytes");
        let at = u32::try_from(self.large.insert(body)).expect("fewer than 2^32 large bodies");
        BodyRef { len, at }
    }

    /// The bytes of a body this store holds.
    pub fn get(&self, body: BodyRef) -> &[u8] {
        match body.len() {
            0 => &[],
            len if len > SMALL_MAX => &self.large[body.at as usize],
            len => {
                let class = &self.classes[class_of(len)];
                &class.pages[class.page(body.at)][class.cell(body.at)][..len]
            }
        }
    }

    /// The body lent for a reply being written: a large one's allocation
    /// shared, a small one's bytes borrowed.
    pub fn lend(&self, body: BodyRef) -> BodyBytes<'_> {
        match body.len() {
            len if len > SMALL_MAX => BodyBytes::Shared(Rc::clone(&self.large[body.at as usize])),
            _ => BodyBytes::Borrowed(self.get(body)),
        }
    }

    /// The body as a shareable value, for a reply kept after the body may
    /// be gone: large bodies are shared, small ones copied.
    pub fn share(&self, body: BodyRef) -> Rc<[u8]> {
        match body.len() {
            len if len > SMALL_MAX => Rc::clone(&self.large[body.at as usize]),
            _ => Rc::from(self.get(body)),
        }
    }

    /// Frees a body this store holds (its job was deleted): its cell is
    /// reused, or its pages given back when its size class empties.
    pub fn remove(&mut self, body: BodyRef) {
        match body.len() {
            0 => {}
            len if len > SMALL_MAX => drop(self.large.remove(body.at as usize)),
            len => self.pages_freed += self.classes[class_of(len)].release_cell(body.at) as u64,
        }
    }

    /// Bytes of pages given back so far, each time a size class emptied:
    /// memory freed in bulk, which the server may hand back to the kernel.
    pub fn pages_freed(&self) -> u64 {
        self.pages_freed
    }

    /// Bytes held for bodies, whole pages counted.
    #[cfg(test)]
    fn footprint(&self) -> usize {
        let small: usize = self.classes.iter().flat_map(|c| &c.pages).map(|page| page.capacity()).sum();
        small + self.large.iter().map(|(_, b)| b.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn every_size_comes_back_intact() {
        let mut bodies = Bodies::default();
        let sizes = [0, 1, 7, 8, 9, 100, 1023, 1024, 1025, 65_536];
        let refs: Vec<_> = sizes.iter().enumerate().map(|(i, &len)| bodies.insert(&body(len, i as u8))).collect();
        for (i, (&len, &r)) in sizes.iter().zip(&refs).enumerate() {
            assert_eq!(bodies.get(r), &body(len, i as u8)[..], "{len} bytes");
            assert_eq!(&bodies.share(r)[..], &body(len, i as u8)[..]);
        }
        for r in refs {
            bodies.remove(r);
        }
        assert_eq!(bodies.pages_freed(), 0, "no class had a second page");
        // One page is kept per class used: 4-, 8-, 12-, 100- and 1024-byte
        // cells.
        let kept: usize = [4, 8, 12, 100, 1024].iter().map(|cell| PAGE_BYTES / cell * cell).sum();
        assert_eq!(bodies.footprint(), kept, "every other page returned");
    }

    #[test]
    fn freed_cells_are_reused_and_neighbours_untouched() {
        let mut bodies = Bodies::default();
        let refs: Vec<_> = (0..1000).map(|i| bodies.insert(&body(100, i as u8))).collect();
        let footprint = bodies.footprint();
        for r in refs.iter().step_by(2) {
            bodies.remove(*r);
        }
        let again: Vec<_> = (0..500).map(|i| bodies.insert(&body(97, (200 + i) as u8))).collect();
        assert_eq!(bodies.footprint(), footprint, "the freed cells took the new bodies");
        for (i, r) in refs.iter().enumerate().skip(1).step_by(2) {
            assert_eq!(bodies.get(*r), &body(100, i as u8)[..]);
        }
        for (i, r) in again.iter().enumerate() {
            assert_eq!(bodies.get(*r), &body(97, (200 + i) as u8)[..]);
        }
    }

    #[test]
    fn an_emptied_class_counts_the_pages_it_gave_back() {
        let mut bodies = Bodies::default();
        let per_page = PAGE_BYTES / 100;
        let refs: Vec<_> = (0..3 * per_page).map(|i| bodies.insert(&body(100, i as u8))).collect();
        for r in &refs[1..] {
            bodies.remove(*r);
        }
        assert_eq!(bodies.pages_freed(), 0, "the class still has a body");
        bodies.remove(refs[0]);
        assert_eq!(bodies.pages_freed(), 2 * (per_page * 100) as u64, "all pages but one");
    }

    #[test]
    fn a_hundred_byte_body_costs_about_a_hundred_bytes() {
        let mut bodies = Bodies::default();
        for i in 0..100_000 {
            bodies.insert(&body(100, i as u8));
        }
        let per_body = bodies.footprint() as f64 / 100_000.0;
        assert!(per_body < 100.5, "{per_body} bytes per body");
    }

    #[test]
    fn large_bodies_are_shared_not_copied() {
        let mut bodies = Bodies::default();
        let big: Rc<[u8]> = Rc::from(body(SMALL_MAX + 1, 1));
        let r = bodies.insert_shared(Rc::clone(&big));
        assert!(Rc::ptr_eq(&bodies.share(r), &big));
        bodies.remove(r);
        assert_eq!(Rc::strong_count(&big), 1);
    }
}

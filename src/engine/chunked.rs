//! What the packed queues (ready/ and buried.rs) share: a queue is a list
//! of chunks of up to 256 keys, and these rules keep the list from holding
//! on to memory as keys leave it.

use std::collections::VecDeque;

/// A chunk of a packed queue: keys in a `VecDeque`-like store.
pub(super) trait Chunk {
    fn len(&self) -> usize;
    fn capacity(&self) -> usize;
    fn shrink_to(&mut self, capacity: usize);
}

/// Keeps chunk `at` from holding on to memory after a removal. Two rules,
/// which every change keeps: any two neighbouring chunks hold more than
/// `small` keys between them (unless `merge_with_next` refused to merge
/// them), and a chunk's capacity is less than four times its keys (or at
/// most 4). An empty chunk goes; a small one joins a neighbour it fits with
/// (`merge_with_next(chunks, i)` joins chunk `i + 1` onto chunk `i`, or
/// returns `false` and changes nothing); then spare capacity goes back.
pub(super) fn tidy<C: Chunk>(
    chunks: &mut VecDeque<C>,
    at: usize,
    small: usize,
    mut merge_with_next: impl FnMut(&mut VecDeque<C>, usize) -> bool,
) {
    let len = chunks[at].len();
    if len == 0 {
        // Its neighbours held more than `small` keys with one key here, so
        // each alone held at least that many.
        chunks.remove(at);
        return;
    }
    let fits = |chunk: Option<&C>| chunk.is_some_and(|c| c.len() + len <= small);
    // One merge is enough: if both neighbours were small, each still had
    // more than `small - len` keys, so the merged chunk and the other
    // neighbour hold more than `small` together.
    if at > 0 && fits(chunks.get(at - 1)) && merge_with_next(chunks, at - 1) {
        return;
    }
    if fits(chunks.get(at + 1)) && merge_with_next(chunks, at) {
        return;
    }
    let chunk = &mut chunks[at];
    if chunk.capacity() >= 4 * len && chunk.capacity() > 4 {
        chunk.shrink_to((2 * len).next_power_of_two());
    }
}

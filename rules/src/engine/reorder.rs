//! The reorder buffer: stage hits waiting for events that arrive late, taken oldest first.
//!
//! Events mostly arrive in order, so a hit no older than the newest one held joins the back
//! of a queue (kept sorted that way, no heap sift); only a hit older than that goes into a
//! heap. The oldest hit held is the older of the queue's front and the heap's top, so hits
//! leave in the same order a single heap would give.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

#[derive(Debug)]
pub(super) struct ReorderBuffer<T: Ord> {
    /// Sorted, oldest at the front.
    queue: VecDeque<T>,
    /// Hits that arrived after a newer one.
    heap: BinaryHeap<Reverse<T>>,
}

impl<T: Ord> Default for ReorderBuffer<T> {
    fn default() -> Self {
        ReorderBuffer {
            queue: VecDeque::new(),
            heap: BinaryHeap::new(),
        }
    }
}

impl<T: Ord> ReorderBuffer<T> {
    pub(super) fn push(&mut self, item: T) {
        if self.queue.back().is_none_or(|newest| *newest <= item) {
            self.queue.push_back(item);
        } else {
            self.heap.push(Reverse(item));
        }
    }

    /// The oldest item held.
    pub(super) fn peek(&self) -> Option<&T> {
        match (self.queue.front(), self.heap.peek()) {
            (Some(q), Some(Reverse(h))) => Some(if h < q { h } else { q }),
            (Some(q), None) => Some(q),
            (None, Some(Reverse(h))) => Some(h),
            (None, None) => None,
        }
    }

    /// Takes the oldest item held.
    pub(super) fn pop(&mut self) -> Option<T> {
        let from_heap = match (self.queue.front(), self.heap.peek()) {
            (Some(q), Some(Reverse(h))) => h < q,
            (None, Some(_)) => true,
            _ => false,
        };
        if from_heap {
            self.heap.pop().map(|Reverse(h)| h)
        } else {
            self.queue.pop_front()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReorderBuffer;
    use proptest::prelude::*;

    proptest! {
        /// Pushes and pops interleaved in any order, mostly ascending or not: every pop
        /// gives the least item held, as a heap would.
        #[test]
        fn pops_the_oldest_like_a_heap(ops in prop::collection::vec((0u32..50, any::<bool>()), 0..300)) {
            let mut buf = ReorderBuffer::default();
            let mut model: Vec<u32> = Vec::new();
            let mut t = 0u32;
            for (step, pop) in ops {
                if pop {
                    model.sort_unstable();
                    let want = (!model.is_empty()).then(|| model.remove(0));
                    prop_assert_eq!(buf.peek().copied(), want);
                    prop_assert_eq!(buf.pop(), want);
                } else {
                    // Mostly ascending, sometimes earlier than the newest.
                    t = if step < 40 { t + step } else { t.saturating_sub(step) };
                    buf.push(t);
                    model.push(t);
                }
            }
            model.sort_unstable();
            for want in model {
                prop_assert_eq!(buf.pop(), Some(want));
            }
            prop_assert_eq!(buf.pop(), None);
        }
    }
}

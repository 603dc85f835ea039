//! The bump allocator: hands out memory linearly from the start of its heap and takes it all
//! back at once, when the last live allocation is freed. The cheapest allocator there is, for
//! phases whose allocations all die together.

use super::{HeapAllocator, HeapStats, align_up};
use core::alloc::Layout;
use core::ptr;

/// A linear allocator that reclaims its heap only when every allocation has been freed.
pub struct BumpAllocator {
    /// First address of the heap.
    heap_start: usize,
    /// One past the last address of the heap.
    heap_end: usize,
    /// Where the next allocation starts looking.
    next: usize,
    /// Allocations handed out and not yet freed.
    allocations: usize,
}

// SAFETY: `allocate` hands out `[start, end)` inside the heap, with `start` aligned, and
// moves `next` past it; blocks below `next` are never handed out again while any is live,
// because `next` only returns to the start of the heap once no block is live.
unsafe impl HeapAllocator for BumpAllocator {
    const NAME: &'static str = "bump";

    const EMPTY: Self = Self {
        heap_start: 0,
        heap_end: 0,
        next: 0,
        allocations: 0,
    };

    /// Gives the allocator the heap `[heap_start, heap_start + heap_size)`, forgetting any
    /// previous heap. A range running past the end of the address space is cut short.
    unsafe fn init(&mut self, heap_start: usize, heap_size: usize) {
        self.heap_start = heap_start;
        self.heap_end = heap_start.saturating_add(heap_size);
        self.next = heap_start;
        self.allocations = 0;
    }

    /// Allocates a block for `layout`, or returns null if the rest of the heap cannot hold it.
    /// A zero-sized request takes one byte, so that every block has its own address.
    fn allocate(&mut self, layout: Layout) -> *mut u8 {
        let Some(start) = align_up(self.next, layout.align()) else {
            return ptr::null_mut();
        };
        let Some(end) = start.checked_add(layout.size().max(1)) else {
            return ptr::null_mut();
        };
        if end > self.heap_end {
            return ptr::null_mut();
        }
        self.next = end;
        self.allocations = self.allocations.saturating_add(1);
        ptr::with_exposed_provenance_mut(start)
    }

    /// Frees a block; once no block is live any more, the whole heap is free again.
    unsafe fn deallocate(&mut self, _ptr: *mut u8, _layout: Layout) {
        self.allocations = self.allocations.saturating_sub(1);
        if self.allocations == 0 {
            self.next = self.heap_start;
        }
    }

    /// The heap's size and the bytes consumed since it was last empty (see [`HeapStats`]).
    fn stats(&self) -> HeapStats {
        HeapStats {
            heap_size: self.heap_end - self.heap_start,
            used_bytes: self.next - self.heap_start,
            unclaimed_bytes: self.heap_end - self.next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{BumpAllocator, HeapAllocator};
    use crate::mm::heap::test_support::{
        Arena, TestHeap, check_alignments, check_uninitialised, layout, random_workload,
    };

    #[test]
    fn honours_every_alignment_up_to_4096() {
        check_alignments::<BumpAllocator>(64 * 1024);
    }

    #[test]
    fn hands_out_consecutive_blocks_and_counts_padding() {
        let arena = Arena::new(4096);
        let mut heap = BumpAllocator::over(&arena);
        let a = heap.allocate(layout(3, 1));
        let b = heap.allocate(layout(8, 8));
        assert_eq!(a.addr(), arena.start());
        assert_eq!(
            b.addr(),
            arena.start() + 8,
            "the second block starts at the next 8-aligned byte"
        );
        assert_eq!(heap.stats().used_bytes, 16);
        assert_eq!(heap.stats().heap_size, 4096);
    }

    #[test]
    fn reuses_memory_once_every_block_is_freed() {
        let arena = Arena::new(4096);
        let mut heap = BumpAllocator::over(&arena);
        let a = heap.allocate(layout(100, 8));
        let b = heap.allocate(layout(100, 8));
        heap.free(a, layout(100, 8));
        let c = heap.allocate(layout(100, 8));
        assert_ne!(c, a, "a block must not be reused while another is live");
        heap.free(b, layout(100, 8));
        heap.free(c, layout(100, 8));
        assert_eq!(heap.stats().used_bytes, 0);
        let d = heap.allocate(layout(100, 8));
        assert_eq!(d, a, "the heap restarts from its beginning once empty");
    }

    #[test]
    fn exhaustion_returns_null_and_recovers_after_frees() {
        let arena = Arena::new(4096);
        let mut heap = BumpAllocator::over(&arena);
        let mut blocks = heap.allocate_until_full(layout(100, 4));
        assert_eq!(blocks.len(), 40, "4096 / 100 blocks fit");
        assert!(heap.allocate(layout(isize::MAX as usize, 1)).is_null());
        assert!(heap.allocate(layout(1, 1 << 40)).is_null());
        for ptr in blocks.drain(..) {
            heap.free(ptr, layout(100, 4));
        }
        assert!(
            !heap.allocate(layout(4096, 1)).is_null(),
            "the whole heap is free again"
        );
    }

    #[test]
    fn uninitialised_allocator_returns_null() {
        check_uninitialised::<BumpAllocator>();
    }

    #[test]
    fn random_workload_keeps_blocks_disjoint_and_intact() {
        let failures = random_workload::<BumpAllocator>(1 << 20, 0xb0b, 4000, 8192, Some(300));
        assert!(failures < 4000 / 10, "{failures} allocations failed");
    }
}

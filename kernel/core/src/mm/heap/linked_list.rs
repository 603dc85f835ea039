//! Enigma's linked-list allocator: a first-fit allocator whose free regions form a singly
//! linked list kept inside the free memory itself, sorted by address so that a freed block is
//! merged with the free neighbours on either side. It serves general allocations and is the
//! fallback of the fixed-size-block allocator.
//!
//! Every region and every block starts on a [`GRANULE`] boundary and spans a whole number of
//! granules, and a granule holds one list node. So whatever is left in front of or behind a
//! block carved out of a free region is either nothing or big enough to stay in the list, and
//! no byte is ever lost to a remainder too small to track.

use super::{HeapAllocator, HeapStats, align_down, align_up};
use core::alloc::Layout;
use core::mem::{align_of, size_of};
use core::ptr;

/// The allocation unit: a list node's size, a power of two (16 bytes on 64-bit targets).
const GRANULE: usize = size_of::<FreeRegion>();

const _: () = assert!(GRANULE.is_power_of_two() && GRANULE >= align_of::<FreeRegion>());

/// The header of a free region, stored in the region's first bytes.
struct FreeRegion {
    /// The region's size in bytes, a non-zero multiple of [`GRANULE`].
    size: usize,
    /// The next free region, at a higher address, or null.
    next: *mut FreeRegion,
}

/// Number of bytes a block for a request of `size` bytes really takes: at least one granule,
/// rounded up to whole granules. `None` if that overflows.
fn block_size(size: usize) -> Option<usize> {
    align_up(size.max(1), GRANULE)
}

/// A first-fit allocator over an address-sorted list of free regions that merges neighbours.
pub struct LinkedListAllocator {
    /// The free region at the lowest address, or null when nothing is free.
    head: *mut FreeRegion,
    /// Bytes managed, after aligning the heap's ends to granules.
    heap_size: usize,
    /// Bytes in live blocks.
    used: usize,
}

// SAFETY: the allocator's pointers only lead into the heap it was given, which nothing else
// uses; moving the allocator to another thread moves that ownership with it.
unsafe impl Send for LinkedListAllocator {}

impl LinkedListAllocator {
    /// Takes the granule-aligned `[start, end)` out of the free `region`, whose predecessor is
    /// `prev` (null if `region` is the head), keeping whatever is left in front and behind.
    ///
    /// # Safety
    /// `region` must be a node of the list, `prev` its predecessor, and `[start, end)` a
    /// granule-aligned range inside it.
    unsafe fn carve(
        &mut self,
        prev: *mut FreeRegion,
        region: *mut FreeRegion,
        start: usize,
        end: usize,
    ) {
        // SAFETY: the caller guarantees that `region` is a node of the list.
        let (region_size, next) = unsafe { ((*region).size, (*region).next) };
        let region_end = region.addr().saturating_add(region_size);
        let mut rest = next;
        if end < region_end {
            let back = region.with_addr(end);
            // SAFETY: `[end, region_end)` is free, granule-aligned and at least one granule
            // long, so it holds a node.
            unsafe {
                back.write(FreeRegion {
                    size: region_end - end,
                    next: rest,
                });
            }
            rest = back;
        }
        if start > region.addr() {
            // SAFETY: the front part `[region, start)` stays free and keeps its node.
            unsafe {
                (*region).size = start - region.addr();
                (*region).next = rest;
            }
            return;
        }
        if prev.is_null() {
            self.head = rest;
        } else {
            // SAFETY: the caller guarantees that `prev` is the node before `region`.
            unsafe { (*prev).next = rest };
        }
    }
}

// SAFETY: `allocate` hands out a granule-aligned range carved out of a free region, which lies
// inside the heap, aligned to at least `layout.align()` and at least `layout.size()` bytes long;
// the range leaves the free list, and only `deallocate` puts it back.
unsafe impl HeapAllocator for LinkedListAllocator {
    const NAME: &'static str = "linked_list";

    const EMPTY: Self = Self {
        head: ptr::null_mut(),
        heap_size: 0,
        used: 0,
    };

    /// Gives the allocator the heap `[heap_start, heap_start + heap_size)`, forgetting any
    /// previous heap. Both ends are trimmed inwards to granule boundaries; a range running past
    /// the end of the address space is cut short.
    unsafe fn init(&mut self, heap_start: usize, heap_size: usize) {
        self.head = ptr::null_mut();
        self.heap_size = 0;
        self.used = 0;
        let end = align_down(heap_start.saturating_add(heap_size), GRANULE);
        let Some(start) = align_up(heap_start, GRANULE) else {
            return;
        };
        if end <= start {
            return;
        }
        let region: *mut FreeRegion = ptr::with_exposed_provenance_mut(start);
        // SAFETY: the caller hands us `[start, end)`, which is granule-aligned and at least one
        // granule long, so it holds a node.
        unsafe {
            region.write(FreeRegion {
                size: end - start,
                next: ptr::null_mut(),
            });
        }
        self.head = region;
        self.heap_size = end - start;
    }

    /// Allocates a block for `layout` from the first free region that can hold it, or returns
    /// null if none can.
    fn allocate(&mut self, layout: Layout) -> *mut u8 {
        let Some(size) = block_size(layout.size()) else {
            return ptr::null_mut();
        };
        let align = layout.align().max(GRANULE);
        let mut prev: *mut FreeRegion = ptr::null_mut();
        let mut region = self.head;
        while !region.is_null() {
            // SAFETY: `region` is a node of the list: initialised, aligned, inside the heap.
            let (region_size, next) = unsafe { ((*region).size, (*region).next) };
            let region_start = region.addr();
            let region_end = region_start.saturating_add(region_size);
            let fit = align_up(region_start, align)
                .and_then(|start| Some((start, start.checked_add(size)?)))
                .filter(|&(_, end)| end <= region_end);
            if let Some((start, end)) = fit {
                // SAFETY: `[start, end)` lies within `region`, which `prev` links to.
                unsafe { self.carve(prev, region, start, end) };
                self.used = self.used.saturating_add(size);
                return region.cast::<u8>().with_addr(start);
            }
            prev = region;
            region = next;
        }
        ptr::null_mut()
    }

    /// Returns a block to the free list, merging it with the free regions right before and
    /// right after it.
    unsafe fn deallocate(&mut self, ptr: *mut u8, layout: Layout) {
        let Some(size) = block_size(layout.size()) else {
            return;
        };
        let start = ptr.addr();
        let Some(end) = start.checked_add(size) else {
            return;
        };
        let mut prev: *mut FreeRegion = ptr::null_mut();
        let mut next = self.head;
        while !next.is_null() && next.addr() < start {
            prev = next;
            // SAFETY: `next` is a node of the list.
            next = unsafe { (*next).next };
        }
        debug_assert!(
            next.is_null() || end <= next.addr(),
            "freed block overlaps a free region"
        );
        let (mut merged_size, mut merged_next) = (size, next);
        if !next.is_null() && next.addr() == end {
            // SAFETY: `next` is a node of the list, and it is absorbed into the freed block.
            unsafe {
                (merged_size, merged_next) = (size.saturating_add((*next).size), (*next).next)
            };
        }
        // SAFETY: `prev`, if not null, is a node of the list.
        let prev_end =
            (!prev.is_null()).then(|| prev.addr().saturating_add(unsafe { (*prev).size }));
        debug_assert!(
            prev_end.is_none_or(|prev_end| prev_end <= start),
            "double free"
        );
        if prev_end == Some(start) {
            // SAFETY: `prev` is a node of the list, and it absorbs the freed block.
            unsafe {
                (*prev).size += merged_size;
                (*prev).next = merged_next;
            }
        } else {
            let node = ptr.cast::<FreeRegion>();
            // SAFETY: the block is granule-aligned, at least a granule long and ours again.
            unsafe {
                node.write(FreeRegion {
                    size: merged_size,
                    next: merged_next,
                });
            }
            if prev.is_null() {
                self.head = node;
            } else {
                // SAFETY: `prev` is a node of the list.
                unsafe { (*prev).next = node };
            }
        }
        self.used = self.used.saturating_sub(size);
    }

    /// The heap's size and the bytes in live blocks (see [`HeapStats`]).
    fn stats(&self) -> HeapStats {
        HeapStats {
            heap_size: self.heap_size,
            used_bytes: self.used,
            unclaimed_bytes: self.heap_size - self.used,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{GRANULE, HeapAllocator, LinkedListAllocator};
    use crate::mm::heap::test_support::{
        Arena, Rng, TestHeap, check_alignments, check_uninitialised, layout, random_workload,
    };

    #[test]
    fn honours_every_alignment_up_to_4096() {
        check_alignments::<LinkedListAllocator>(64 * 1024);
    }

    #[test]
    fn rounds_blocks_to_granules() {
        let arena = Arena::new(4096);
        let mut heap = LinkedListAllocator::over(&arena);
        assert_eq!(heap.stats().heap_size, 4096);
        let a = heap.allocate(layout(1, 1));
        let b = heap.allocate(layout(GRANULE + 1, 1));
        assert_eq!(heap.stats().used_bytes, 3 * GRANULE);
        assert_eq!(b.addr(), a.addr() + GRANULE);
    }

    #[test]
    fn reuses_a_freed_block() {
        let arena = Arena::new(4096);
        let mut heap = LinkedListAllocator::over(&arena);
        let a = heap.allocate(layout(100, 8));
        let b = heap.allocate(layout(100, 8));
        heap.free(a, layout(100, 8));
        let c = heap.allocate(layout(100, 8));
        assert_eq!(c, a, "the freed block is the first fit");
        assert_ne!(c, b);
    }

    #[test]
    fn alignment_gap_in_front_stays_free() {
        let arena = Arena::new(8192);
        let mut heap = LinkedListAllocator::over(&arena);
        let small = heap.allocate(layout(16, 16));
        let aligned = heap.allocate(layout(64, 4096));
        assert_eq!(aligned.addr(), arena.start() + 4096);
        let in_gap = heap.allocate(layout(4096 - 2 * GRANULE, 1));
        assert_eq!(
            in_gap.addr(),
            small.addr() + GRANULE,
            "the gap before the aligned block is reused"
        );
    }

    #[test]
    fn exhaustion_returns_null_and_recovers_after_frees() {
        let arena = Arena::new(4096);
        let mut heap = LinkedListAllocator::over(&arena);
        let mut blocks = heap.allocate_until_full(layout(200, 8));
        assert_eq!(blocks.len(), 4096 / 208, "as many 208-byte blocks as fit");
        assert!(heap.allocate(layout(isize::MAX as usize, 1)).is_null());
        assert!(heap.allocate(layout(1, 1 << 40)).is_null());
        for ptr in blocks.drain(..) {
            heap.free(ptr, layout(200, 8));
        }
        assert_eq!(heap.stats().used_bytes, 0);
        assert!(
            !heap.allocate(layout(4096, 1)).is_null(),
            "every region merged back into one"
        );
    }

    #[test]
    fn merges_freed_neighbours() {
        let arena = Arena::new(4096);
        let mut heap = LinkedListAllocator::over(&arena);
        let blocks: Vec<_> = (0..4).map(|_| heap.allocate(layout(1024, 8))).collect();
        assert!(blocks.iter().all(|ptr| !ptr.is_null()));
        assert!(heap.allocate(layout(1, 1)).is_null(), "the heap is full");
        heap.free(blocks[2], layout(1024, 8));
        heap.free(blocks[1], layout(1024, 8));
        let joined = heap.allocate(layout(2048, 8));
        assert_eq!(
            joined, blocks[1],
            "the two freed neighbours merged into one region"
        );
        heap.free(joined, layout(2048, 8));
        heap.free(blocks[0], layout(1024, 8));
        heap.free(blocks[3], layout(1024, 8));
        assert_eq!(
            heap.allocate(layout(4096, 8)),
            blocks[0],
            "merged with both neighbours"
        );
    }

    #[test]
    fn trims_an_unaligned_heap() {
        let arena = Arena::new(4096);
        let mut heap = LinkedListAllocator::EMPTY;
        // SAFETY: the range lies inside the arena, which outlives the allocator.
        unsafe { heap.init(arena.start() + 3, 4000) };
        assert_eq!(heap.stats().heap_size, 4003 / GRANULE * GRANULE - GRANULE);
        let ptr = heap.allocate(layout(1, 1));
        assert_eq!(ptr.addr(), arena.start() + GRANULE);
    }

    #[test]
    fn uninitialised_allocator_returns_null() {
        check_uninitialised::<LinkedListAllocator>();
    }

    #[test]
    fn random_workload_keeps_blocks_disjoint_and_intact() {
        for seed in [1, 2, 3] {
            let failures =
                random_workload::<LinkedListAllocator>(1 << 20, seed, 4000, 16 * 1024, None);
            assert_eq!(failures, 0, "a 1 MiB heap holds the workload");
        }
    }

    #[test]
    fn fully_merges_after_random_workload() {
        let arena = Arena::new(1 << 16);
        let mut heap = LinkedListAllocator::over(&arena);
        let mut live = Vec::new();
        let mut rng = Rng::new(7);
        for _ in 0..2000 {
            if live.is_empty() || rng.below(2) == 0 {
                let l = layout(1 + rng.below(300), 1 << rng.below(7));
                let ptr = heap.allocate(l);
                if !ptr.is_null() {
                    live.push((ptr, l));
                }
            } else {
                let (ptr, l) = live.swap_remove(rng.below(live.len()));
                heap.free(ptr, l);
            }
        }
        for (ptr, l) in live {
            heap.free(ptr, l);
        }
        assert_eq!(
            heap.allocate(layout(1 << 16, 8)).addr(),
            arena.start(),
            "one region again"
        );
    }
}

//! The fixed-size-block allocator, the kernel's main heap: small requests are served from one
//! free list per power-of-two size class (8 to 4096 bytes) in constant time, and everything
//! else goes to Enigma's linked-list allocator, which also supplies the chunks that the classes
//! carve their blocks from.
//!
//! A class whose list is empty takes its next block from the unused tail of its current chunk,
//! and only asks the fallback for a new chunk (of up to [`CHUNK_BLOCKS`] blocks) once that tail
//! is used up, so refills are rare and cost one fallback allocation for many blocks. Freed blocks
//! return to their class's list, never to the fallback.

use super::{HeapAllocator, HeapStats, LinkedListAllocator};
use core::alloc::Layout;
use core::mem::{align_of, size_of};
use core::ptr;

/// Smallest class size; every smaller request is rounded up to it.
const MIN_BLOCK: usize = 8;
/// Largest class size; bigger requests (or alignments) go to the fallback.
const MAX_BLOCK: usize = 4096;
/// Number of size classes: 8, 16, 32, ..., 4096.
const CLASSES: usize = (MAX_BLOCK.trailing_zeros() - MIN_BLOCK.trailing_zeros() + 1) as usize;
/// Blocks per chunk a class asks the fallback for, at most [`MAX_CHUNK`] bytes; when the
/// fallback cannot spare that much, the class settles for smaller chunks, down to one block.
const CHUNK_BLOCKS: usize = 64;
/// Upper bound of a chunk's size in bytes.
const MAX_CHUNK: usize = 16 * 1024;

const _: () = assert!(
    MIN_BLOCK.is_power_of_two()
        && MAX_BLOCK.is_power_of_two()
        && MIN_BLOCK >= size_of::<FreeBlock>()
        && MIN_BLOCK >= align_of::<FreeBlock>()
);

/// A free block of a class, linked through its first bytes.
struct FreeBlock {
    /// The next free block of the same class, or null.
    next: *mut FreeBlock,
}

/// Size in bytes of the blocks of class `class`.
const fn class_size(class: usize) -> usize {
    MIN_BLOCK << class
}

/// The class that serves `layout`, or `None` if its size or alignment exceeds [`MAX_BLOCK`].
/// A block of a class is aligned to the class size, so the class must cover the alignment too.
fn class_of(layout: Layout) -> Option<usize> {
    let need = layout.size().max(layout.align());
    if need > MAX_BLOCK {
        return None;
    }
    let rounded = need.max(MIN_BLOCK).next_power_of_two();
    Some((rounded.trailing_zeros() - MIN_BLOCK.trailing_zeros()) as usize)
}

/// Blocks of one size class: the freed ones, and the untouched tail of the current chunk.
#[derive(Clone, Copy)]
struct Class {
    /// Most recently freed block, or null.
    free: *mut FreeBlock,
    /// Next never-used block of the current chunk.
    tail: *mut u8,
    /// Bytes left in the current chunk from `tail` on (a multiple of the class size).
    tail_len: usize,
}

impl Class {
    /// A class with no blocks at all.
    const EMPTY: Self = Self {
        free: ptr::null_mut(),
        tail: ptr::null_mut(),
        tail_len: 0,
    };
}

/// Power-of-two size classes with O(1) free lists, over a linked-list fallback.
pub struct FixedSizeBlockAllocator {
    /// One entry per size class.
    classes: [Class; CLASSES],
    /// Serves large blocks and the chunks the classes are carved from.
    fallback: LinkedListAllocator,
    /// Bytes in live blocks: class sizes for small ones, the fallback's rounding for large.
    used: usize,
}

// SAFETY: the allocator's pointers only lead into the heap it was given, which nothing else
// uses; moving the allocator to another thread moves that ownership with it.
unsafe impl Send for FixedSizeBlockAllocator {}

impl FixedSizeBlockAllocator {
    /// An empty allocator, with no heap until [`init`](HeapAllocator::init):
    /// [`EMPTY`](HeapAllocator::EMPTY) as a `const fn`, which the kernel's `static` heap is
    /// initialised with (a trait's functions cannot be `const`).
    pub const fn new() -> Self {
        Self::EMPTY
    }

    /// Gets a new chunk for class `index` from the fallback, as large as it can spare up to
    /// [`CHUNK_BLOCKS`] blocks, returns its first block and keeps the rest as the class's tail.
    /// Returns null if the fallback cannot spare even one block.
    #[cold]
    fn refill(&mut self, index: usize) -> *mut u8 {
        let size = class_size(index);
        let mut chunk_size = size.saturating_mul(CHUNK_BLOCKS).min(MAX_CHUNK);
        loop {
            let chunk = Layout::from_size_align(chunk_size, size)
                .map_or(ptr::null_mut(), |layout| self.fallback.allocate(layout));
            if !chunk.is_null() {
                let class = &mut self.classes[index];
                // SAFETY: the chunk is `chunk_size` bytes long and `size <= chunk_size`.
                class.tail = unsafe { chunk.add(size) };
                class.tail_len = chunk_size - size;
                return chunk;
            }
            if chunk_size == size {
                return ptr::null_mut();
            }
            chunk_size /= 2;
        }
    }
}

impl Default for FixedSizeBlockAllocator {
    fn default() -> Self {
        Self::EMPTY
    }
}

// SAFETY: a small block is a whole block of its class, carved from a chunk the fallback handed
// out or taken back from the class's list, and the class's size covers both `layout.size()`
// and `layout.align()`; a large block comes from the fallback, whose guarantees it keeps. A
// block leaves its list or tail when handed out, and only `deallocate` puts it back.
unsafe impl HeapAllocator for FixedSizeBlockAllocator {
    const NAME: &'static str = "fixed_size_block";

    const EMPTY: Self = Self {
        classes: [Class::EMPTY; CLASSES],
        fallback: LinkedListAllocator::EMPTY,
        used: 0,
    };

    /// Gives the allocator the heap `[heap_start, heap_start + heap_size)`, forgetting any
    /// previous heap and every block of it.
    unsafe fn init(&mut self, heap_start: usize, heap_size: usize) {
        self.classes = [Class::EMPTY; CLASSES];
        self.used = 0;
        // SAFETY: the caller's guarantees are the fallback's.
        unsafe { self.fallback.init(heap_start, heap_size) };
    }

    /// Allocates a block for `layout`, or returns null if the heap cannot provide one.
    fn allocate(&mut self, layout: Layout) -> *mut u8 {
        let Some(index) = class_of(layout) else {
            let before = self.fallback.stats().used_bytes;
            let block = self.fallback.allocate(layout);
            let after = self.fallback.stats().used_bytes;
            self.used = self.used.saturating_add(after.saturating_sub(before));
            return block;
        };
        let size = class_size(index);
        let class = &mut self.classes[index];
        let block = if !class.free.is_null() {
            let block = class.free;
            // SAFETY: blocks on a class list are free, aligned and hold the link to the next.
            class.free = unsafe { (*block).next };
            block.cast::<u8>()
        } else if class.tail_len >= size {
            let block = class.tail;
            class.tail_len -= size;
            // SAFETY: the chunk still had `size` bytes from `tail` on, so the new `tail` stays
            // within it or one past its end.
            class.tail = unsafe { block.add(size) };
            block
        } else {
            self.refill(index)
        };
        if !block.is_null() {
            self.used = self.used.saturating_add(size);
        }
        block
    }

    /// Frees a block: a small one goes back on its class's list, a large one to the fallback.
    unsafe fn deallocate(&mut self, ptr: *mut u8, layout: Layout) {
        let Some(index) = class_of(layout) else {
            let before = self.fallback.stats().used_bytes;
            // SAFETY: the caller's guarantees are the fallback's, which allocated the block.
            unsafe { self.fallback.deallocate(ptr, layout) };
            self.used = self
                .used
                .saturating_sub(before.saturating_sub(self.fallback.stats().used_bytes));
            return;
        };
        let class = &mut self.classes[index];
        let block = ptr.cast::<FreeBlock>();
        // SAFETY: the block belongs to this class, so it is aligned to and at least as large as
        // `MIN_BLOCK`, which holds a `FreeBlock`; the caller gives it back to us.
        unsafe { block.write(FreeBlock { next: class.free }) };
        class.free = block;
        self.used = self.used.saturating_sub(class_size(index));
    }

    /// The heap's size and the bytes in live blocks (see [`HeapStats`]).
    fn stats(&self) -> HeapStats {
        let fallback = self.fallback.stats();
        HeapStats {
            heap_size: fallback.heap_size,
            used_bytes: self.used,
            unclaimed_bytes: fallback.unclaimed_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CLASSES, FixedSizeBlockAllocator, HeapAllocator, MAX_BLOCK, class_of, class_size};
    use crate::mm::heap::test_support::{
        Arena, TestHeap, check_alignments, check_uninitialised, layout, random_workload,
    };

    #[test]
    fn picks_the_smallest_class_covering_size_and_alignment() {
        assert_eq!(class_of(layout(1, 1)), Some(0));
        assert_eq!(class_of(layout(8, 8)), Some(0));
        assert_eq!(class_of(layout(9, 1)), Some(1));
        assert_eq!(class_of(layout(8, 64)), Some(3));
        assert_eq!(class_of(layout(MAX_BLOCK, 8)), Some(CLASSES - 1));
        assert_eq!(class_size(CLASSES - 1), MAX_BLOCK);
        assert_eq!(class_of(layout(MAX_BLOCK + 1, 8)), None);
        assert_eq!(class_of(layout(8, 2 * MAX_BLOCK)), None);
    }

    #[test]
    fn honours_every_alignment_up_to_4096() {
        check_alignments::<FixedSizeBlockAllocator>(256 * 1024);
    }

    #[test]
    fn sends_alignment_beyond_the_classes_to_the_fallback() {
        let arena = Arena::new(64 * 1024);
        let mut heap = FixedSizeBlockAllocator::over(&arena);
        let first = heap.allocate(layout(8, 8));
        let aligned = heap.allocate(layout(8, 2 * MAX_BLOCK));
        assert!(!aligned.is_null());
        assert_eq!(aligned.addr() % (2 * MAX_BLOCK), 0);
        assert!(arena.contains(aligned, 8));
        assert_ne!(first, aligned);
        assert_eq!(
            heap.stats().used_bytes,
            8 + 16,
            "a class-8 block and a granule"
        );
    }

    #[test]
    fn reuses_a_freed_block_of_the_same_class() {
        let arena = Arena::new(64 * 1024);
        let mut heap = FixedSizeBlockAllocator::over(&arena);
        let a = heap.allocate(layout(40, 8));
        let b = heap.allocate(layout(40, 8));
        assert_eq!(heap.stats().used_bytes, 128, "two 64-byte blocks");
        heap.free(a, layout(40, 8));
        assert_eq!(
            heap.allocate(layout(64, 8)),
            a,
            "the freed block is reused first"
        );
        assert_ne!(a, b);
        let big = heap.allocate(layout(5000, 8));
        heap.free(big, layout(5000, 8));
        assert_eq!(
            heap.allocate(layout(5000, 8)),
            big,
            "the fallback reuses its block"
        );
    }

    #[test]
    fn carves_consecutive_blocks_from_a_chunk() {
        let arena = Arena::new(64 * 1024);
        let mut heap = FixedSizeBlockAllocator::over(&arena);
        let first = heap.allocate(layout(32, 8));
        for i in 1..100 {
            assert_eq!(heap.allocate(layout(32, 8)).addr(), first.addr() + 32 * i);
        }
    }

    #[test]
    fn exhaustion_returns_null_and_recovers_after_frees() {
        let arena = Arena::new(64 * 1024);
        let mut heap = FixedSizeBlockAllocator::over(&arena);
        let mut blocks = heap.allocate_until_full(layout(512, 8));
        assert_eq!(blocks.len(), 128, "shrinking chunks use the whole heap");
        assert!(heap.allocate(layout(8, 8)).is_null());
        assert!(heap.allocate(layout(4096, 8)).is_null());
        assert!(heap.allocate(layout(isize::MAX as usize, 1)).is_null());
        assert!(heap.allocate(layout(1, 1 << 40)).is_null());
        for ptr in blocks.drain(..) {
            heap.free(ptr, layout(512, 8));
        }
        assert_eq!(heap.stats().used_bytes, 0);
        for _ in 0..128 {
            assert!(
                !heap.allocate(layout(512, 8)).is_null(),
                "freed blocks are handed out again"
            );
        }
        assert!(heap.allocate(layout(512, 8)).is_null());
    }

    #[test]
    fn fallback_merges_freed_neighbours() {
        let arena = Arena::new(64 * 1024);
        let mut heap = FixedSizeBlockAllocator::over(&arena);
        let blocks: Vec<_> = (0..4)
            .map(|_| heap.allocate(layout(16 * 1024, 8)))
            .collect();
        assert!(blocks.iter().all(|ptr| !ptr.is_null()));
        assert!(heap.allocate(layout(4096, 8)).is_null(), "the heap is full");
        heap.free(blocks[1], layout(16 * 1024, 8));
        heap.free(blocks[2], layout(16 * 1024, 8));
        assert_eq!(
            heap.allocate(layout(32 * 1024, 8)),
            blocks[1],
            "the neighbours merged"
        );
        assert_eq!(heap.stats().used_bytes, 64 * 1024);
    }

    #[test]
    fn uninitialised_allocator_returns_null() {
        check_uninitialised::<FixedSizeBlockAllocator>();
    }

    #[test]
    fn random_workload_keeps_blocks_disjoint_and_intact() {
        for seed in [11, 12, 13] {
            let failures =
                random_workload::<FixedSizeBlockAllocator>(2 << 20, seed, 4000, 16 * 1024, None);
            assert_eq!(failures, 0, "a 2 MiB heap holds the workload");
        }
    }
}

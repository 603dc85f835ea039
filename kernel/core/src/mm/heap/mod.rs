//! The kernel's heap allocators: Enigma's own bump, linked-list and fixed-size-block
//! allocators, the [`HeapAllocator`] interface they share, the [`HeapStats`] they report, and
//! the [`Locked`] wrapper through which each of them serves as a [`GlobalAlloc`]. Nothing here is
//! specific to x86: the same code is unit-tested on the host over an ordinary memory arena.

mod bump;
mod fixed_size_block;
mod linked_list;

pub use bump::BumpAllocator;
pub use fixed_size_block::FixedSizeBlockAllocator;
pub use linked_list::LinkedListAllocator;

use core::alloc::{GlobalAlloc, Layout};

/// A snapshot of how much of a heap is in use.
///
/// `heap_size` is the number of bytes the allocator manages: the range given to `init`, less
/// whatever it had to cut off at either end to align it (0 before `init`).
///
/// `used_bytes` is the number of bytes currently handed out to callers, each allocation counted
/// at the size the allocator really set aside for it: its request rounded up to the allocator's
/// granularity or size class. For the bump allocator, whose freed memory only comes back once
/// every allocation has been freed, it is every byte consumed since the last reset, alignment
/// padding included. Memory that the fixed-size-block allocator keeps for its size classes
/// (freed blocks and not yet used parts of chunks) is not counted as used, although only that
/// class can use it.
///
/// `unclaimed_bytes` is what any request may still get: bytes not handed out and not set
/// aside for one size class (for the fixed-size-block allocator, its fallback's free bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes managed by the allocator.
    pub heap_size: usize,
    /// Bytes currently handed out, including per-allocation rounding.
    pub used_bytes: usize,
    /// Bytes any request may still get.
    pub unclaimed_bytes: usize,
}

/// Rounds `addr` up to the next multiple of `align` (a power of two); `None` on overflow.
fn align_up(addr: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two());
    let mask = align - 1;
    addr.checked_add(mask).map(|bumped| bumped & !mask)
}

/// Rounds `addr` down to a multiple of `align` (a power of two).
fn align_down(addr: usize, align: usize) -> usize {
    debug_assert!(align.is_power_of_two());
    addr & !(align - 1)
}

/// An allocator behind a spinlock, so that a `static` of it can serve as the global allocator.
pub struct Locked<A> {
    inner: spin::Mutex<A>,
}

impl<A> Locked<A> {
    /// Wraps `inner` in a new, unlocked spinlock.
    pub const fn new(inner: A) -> Self {
        Self {
            inner: spin::Mutex::new(inner),
        }
    }

    /// Spins until the lock is free, then returns exclusive access to the allocator.
    pub fn lock(&self) -> spin::MutexGuard<'_, A> {
        self.inner.lock()
    }
}

/// The interface of Enigma's heap allocators, through which [`Locked`] makes any of them a
/// [`GlobalAlloc`] and the tests and the benchmark drive all three alike.
///
/// # Safety
/// [`allocate`](Self::allocate) must return either null or a block of at least `layout.size()`
/// bytes, aligned to `layout.align()`, inside the heap given to [`init`](Self::init), that
/// overlaps no other live block; a block stays valid until it is passed to
/// [`deallocate`](Self::deallocate) or the heap is replaced by another `init`.
pub unsafe trait HeapAllocator: Sized {
    /// The allocator's name in the benchmark's output.
    const NAME: &'static str;

    /// An allocator with no heap, on which every allocation fails until
    /// [`init`](Self::init). A constant rather than a function so that it can initialise a
    /// `static`.
    const EMPTY: Self;

    /// Gives the allocator the heap `[heap_start, heap_start + heap_size)`, forgetting any
    /// previous heap and every block of it.
    ///
    /// # Safety
    /// The range must be valid, writable memory that nothing else uses, and it must stay so
    /// for as long as the allocator (or any block it handed out) is in use.
    unsafe fn init(&mut self, heap_start: usize, heap_size: usize);

    /// Allocates a block for `layout`, or returns null if the heap cannot provide one.
    fn allocate(&mut self, layout: Layout) -> *mut u8;

    /// Frees a block, making its memory available to later allocations.
    ///
    /// # Safety
    /// `ptr` must be a live block returned by [`allocate`](Self::allocate) on this allocator
    /// with this same `layout`, freed only once.
    unsafe fn deallocate(&mut self, ptr: *mut u8, layout: Layout);

    /// The heap's size and the bytes in use (see [`HeapStats`]).
    fn stats(&self) -> HeapStats;
}

// SAFETY: `HeapAllocator::allocate` returns either null or a block of at least `layout.size()`
// bytes aligned to `layout.align()` that overlaps no other live block, and the lock serialises
// every access.
unsafe impl<A: HeapAllocator> GlobalAlloc for Locked<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.lock().allocate(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the `GlobalAlloc` contract makes `ptr` a live block allocated here with
        // `layout`.
        unsafe { self.lock().deallocate(ptr, layout) }
    }
}

/// Helpers shared by the allocators' unit tests: an aligned arena, a seeded generator, a
/// layout shorthand, what the tests add to every [`HeapAllocator`] and the checks that every
/// allocator must pass.
#[cfg(test)]
pub(crate) mod test_support {
    use super::HeapAllocator;
    use core::alloc::Layout;
    use std::collections::BTreeMap;

    /// Alignment of every test arena: the largest alignment the tests ask for.
    pub const ARENA_ALIGN: usize = 4096;

    /// A zeroed block of host memory, aligned to [`ARENA_ALIGN`], freed on drop.
    pub struct Arena {
        ptr: *mut u8,
        layout: Layout,
    }

    impl Arena {
        /// Allocates an arena of `size` bytes from the host allocator.
        pub fn new(size: usize) -> Self {
            let layout = Layout::from_size_align(size, ARENA_ALIGN).expect("arena layout");
            // SAFETY: `layout` has a non-zero size in every test.
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            assert!(!ptr.is_null(), "host allocation of the arena failed");
            Self { ptr, layout }
        }

        /// The arena's first address, with its provenance exposed for the allocator's use.
        pub fn start(&self) -> usize {
            self.ptr.expose_provenance()
        }

        /// The arena's size in bytes.
        pub fn size(&self) -> usize {
            self.layout.size()
        }

        /// Whether `[ptr, ptr + size)` lies inside the arena.
        pub fn contains(&self, ptr: *mut u8, size: usize) -> bool {
            let start = ptr.addr();
            start >= self.start()
                && start
                    .checked_add(size)
                    .is_some_and(|end| end <= self.start() + self.size())
        }
    }

    impl Drop for Arena {
        fn drop(&mut self) {
            // SAFETY: `ptr` came from `alloc_zeroed` with this very layout.
            unsafe { std::alloc::dealloc(self.ptr, self.layout) }
        }
    }

    /// A xorshift64* generator: small, seeded, reproducible.
    pub struct Rng(u64);

    impl Rng {
        /// A generator started from `seed` (any value; zero is remapped).
        pub fn new(seed: u64) -> Self {
            Self(seed | 1)
        }

        /// The next 64 pseudo-random bits.
        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A value in `0..bound` (`bound` > 0).
        pub fn below(&mut self, bound: usize) -> usize {
            (self.next_u64() % bound as u64) as usize
        }
    }

    /// The layout of `size` bytes aligned to `align`, which must be a valid pair.
    pub fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("layout")
    }

    /// What the tests add to every [`HeapAllocator`]: creation over an arena, and a safe free.
    pub trait TestHeap: HeapAllocator {
        /// Creates the allocator over `arena`.
        fn over(arena: &Arena) -> Self {
            let mut heap = Self::EMPTY;
            // SAFETY: the arena is valid, writable and unused, and every test drops the
            // allocator before the arena.
            unsafe { heap.init(arena.start(), arena.size()) };
            heap
        }

        /// Frees a block returned by `allocate` with the same layout.
        fn free(&mut self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the tests only free live blocks, with the layout they were allocated
            // with.
            unsafe { self.deallocate(ptr, layout) }
        }

        /// Allocates blocks of `layout` until an allocation fails; returns the blocks.
        fn allocate_until_full(&mut self, layout: Layout) -> Vec<*mut u8> {
            std::iter::from_fn(|| Some(self.allocate(layout)).filter(|ptr| !ptr.is_null()))
                .collect()
        }
    }

    impl<A: HeapAllocator> TestHeap for A {}

    /// Writes `tag`-derived bytes over the block.
    pub fn fill(ptr: *mut u8, size: usize, tag: u8) {
        for i in 0..size {
            // SAFETY: the block is live and at least `size` bytes long.
            unsafe { ptr.add(i).write(tag.wrapping_add(i as u8)) };
        }
    }

    /// Asserts that the block still holds the bytes `fill` wrote with `tag`.
    pub fn check(ptr: *mut u8, size: usize, tag: u8) {
        for i in 0..size {
            // SAFETY: the block is live and at least `size` bytes long.
            let byte = unsafe { ptr.add(i).read() };
            assert_eq!(
                byte,
                tag.wrapping_add(i as u8),
                "byte {i} of the block at {ptr:p} was overwritten"
            );
        }
    }

    /// Asserts that an allocator without a heap reports none and fails small and large
    /// allocations alike.
    pub fn check_uninitialised<H: HeapAllocator>() {
        let mut heap = H::EMPTY;
        assert!(heap.allocate(layout(1, 1)).is_null());
        assert!(heap.allocate(layout(10_000, 1)).is_null());
        assert_eq!(heap.stats().heap_size, 0);
    }

    /// Allocates blocks of every power-of-two alignment from 1 to 4096, two sizes each, and
    /// asserts that each is aligned, inside the arena and intact, then frees them all.
    pub fn check_alignments<H: TestHeap>(arena_size: usize) {
        let arena = Arena::new(arena_size);
        let mut heap = H::over(&arena);
        let mut live = Vec::new();
        for shift in 0..=12 {
            let align = 1usize << shift;
            for size in [1, align + 3] {
                let layout = layout(size, align);
                let ptr = heap.allocate(layout);
                assert!(!ptr.is_null(), "allocation of {layout:?} failed");
                assert_eq!(ptr.addr() % align, 0, "{ptr:p} is not aligned to {align}");
                assert!(arena.contains(ptr, size), "{ptr:p} is outside the arena");
                fill(ptr, size, live.len() as u8);
                live.push((ptr, layout));
            }
        }
        for (tag, &(ptr, layout)) in live.iter().enumerate() {
            check(ptr, layout.size(), tag as u8);
        }
        for (ptr, layout) in live {
            heap.free(ptr, layout);
        }
        assert_eq!(heap.stats().used_bytes, 0);
    }

    /// A live block in the model of the heap.
    struct Block {
        size: usize,
        layout: Layout,
        tag: u8,
    }

    /// Runs `steps` seeded random allocations and frees (sizes up to `max_size`, alignments up
    /// to 4096) against a model of the live blocks, asserting that no two live blocks overlap,
    /// that every block lies inside the arena and that each block's contents are intact when
    /// it is freed. Returns how many allocations failed. Every `free_all_every` steps (if
    /// given), every live block is freed.
    pub fn random_workload<H: TestHeap>(
        arena_size: usize,
        seed: u64,
        steps: usize,
        max_size: usize,
        free_all_every: Option<usize>,
    ) -> usize {
        let arena = Arena::new(arena_size);
        let mut heap = H::over(&arena);
        let mut rng = Rng::new(seed);
        let mut live: BTreeMap<usize, Block> = BTreeMap::new();
        let mut failures = 0;
        for step in 0..steps {
            if free_all_every.is_some_and(|every| step % every == every - 1) {
                for (addr, block) in std::mem::take(&mut live) {
                    let ptr = heap_ptr(&arena, addr);
                    check(ptr, block.size, block.tag);
                    heap.free(ptr, block.layout);
                }
                continue;
            }
            if live.is_empty() || rng.below(100) < 55 {
                let size = match rng.below(10) {
                    0 => 1 + rng.below(max_size),
                    1..=3 => 1 + rng.below(max_size.min(512)),
                    _ => 1 + rng.below(64),
                };
                let align = match rng.below(20) {
                    0 => 1 << rng.below(13),
                    1..=4 => 1 << rng.below(7),
                    _ => 8,
                };
                let layout = layout(size, align);
                let ptr = heap.allocate(layout);
                if ptr.is_null() {
                    failures += 1;
                    continue;
                }
                let addr = ptr.addr();
                assert_eq!(addr % align, 0, "{ptr:p} is not aligned to {align}");
                assert!(
                    arena.contains(ptr, size),
                    "{ptr:p}+{size} is outside the arena"
                );
                if let Some((&before, block)) = live.range(..=addr).next_back() {
                    assert!(
                        before + block.size <= addr,
                        "{ptr:p} overlaps the block at {before:#x}"
                    );
                }
                if let Some((&after, _)) = live.range(addr..).next() {
                    assert!(
                        addr + size <= after,
                        "{ptr:p}+{size} overlaps the block at {after:#x}"
                    );
                }
                let tag = rng.next_u64() as u8;
                fill(ptr, size, tag);
                live.insert(addr, Block { size, layout, tag });
            } else {
                let nth = rng.below(live.len());
                let addr = *live.keys().nth(nth).expect("nth live block");
                let block = live.remove(&addr).expect("live block");
                let ptr = heap_ptr(&arena, addr);
                check(ptr, block.size, block.tag);
                heap.free(ptr, block.layout);
            }
        }
        for (addr, block) in live {
            let ptr = heap_ptr(&arena, addr);
            check(ptr, block.size, block.tag);
            heap.free(ptr, block.layout);
        }
        assert_eq!(
            heap.stats().used_bytes,
            0,
            "bytes still counted as used after freeing all"
        );
        failures
    }

    /// The pointer to `addr`, which lies inside `arena`, carrying the arena's provenance.
    fn heap_ptr(arena: &Arena, addr: usize) -> *mut u8 {
        arena.ptr.with_addr(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{Arena, TestHeap, layout};
    use super::{
        BumpAllocator, FixedSizeBlockAllocator, HeapAllocator, LinkedListAllocator, Locked,
        align_down, align_up,
    };
    use core::alloc::GlobalAlloc;

    #[test]
    fn aligns_addresses_without_overflowing() {
        assert_eq!(align_up(0, 8), Some(0));
        assert_eq!(align_up(1, 8), Some(8));
        assert_eq!(align_up(4096, 4096), Some(4096));
        assert_eq!(align_up(usize::MAX - 2, 8), None);
        assert_eq!(align_down(15, 8), 8);
    }

    /// Allocates and frees through `GlobalAlloc`, as the kernel's `#[global_allocator]` does,
    /// with an `A` over a fresh 64 KiB arena.
    fn global_alloc_round_trip<A: HeapAllocator>() {
        let arena = Arena::new(64 * 1024);
        let heap = Locked::new(A::over(&arena));
        assert_eq!(heap.lock().stats().heap_size, 64 * 1024);
        let small = layout(24, 8);
        let large = layout(10_000, 64);
        // SAFETY: both layouts have a non-zero size.
        let (a, b) = unsafe { (heap.alloc(small), heap.alloc(large)) };
        assert!(!a.is_null() && !b.is_null());
        assert_eq!(b.addr() % 64, 0);
        assert!(heap.lock().stats().used_bytes >= 10_024);
        // SAFETY: `a` and `b` are live blocks allocated above with these layouts.
        unsafe {
            heap.dealloc(a, small);
            heap.dealloc(b, large);
        }
        assert_eq!(heap.lock().stats().used_bytes, 0);
    }

    #[test]
    fn locked_allocators_serve_as_global_allocators() {
        global_alloc_round_trip::<BumpAllocator>();
        global_alloc_round_trip::<LinkedListAllocator>();
        global_alloc_round_trip::<FixedSizeBlockAllocator>();
    }
}

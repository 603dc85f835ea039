//! Allocator benchmark: Enigma's bump, linked-list and fixed-size-block heaps against the
//! `linked_list_allocator` and `talc` crates, each over the same 32 MiB arena and driven by the
//! same pre-generated operation sequences (`small`, `mixed`, `realloc`). Prints one
//! `alloc-bench <allocator> <workload> <ns/op>` line per pair, the space efficiency of each
//! allocator on `mixed`, and fixed_size_block's throughput ratio against the two crates on
//! `small`. Run with `cargo bench -p enigma-core --bench alloc`.

use enigma_core::mm::heap::{
    BumpAllocator, FixedSizeBlockAllocator, HeapAllocator, LinkedListAllocator,
};
use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};
use talc::base::Talc;
use talc::base::binning::DefaultBinning;
use talc::source::Manual;

/// Size of the arena every allocator gets.
const ARENA_SIZE: usize = 32 << 20;
/// Alignment of the arena (a page, like a kernel heap).
const ARENA_ALIGN: usize = 4096;
/// Seeds of the three operation sequences; fixed so that every run measures the same work.
const SMALL_SEED: u64 = 0x5eed_e161_a000_0001;
const MIXED_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
const REALLOC_SEED: u64 = 0xd1b5_4a32_d192_ed03;
/// Every allocator/workload pair is timed at least this many times...
const MIN_RUNS: usize = 3;
/// ...and at most this many...
const MAX_RUNS: usize = 7;
/// ...stopping early once its runs have taken this long in all.
const TIME_BUDGET: Duration = Duration::from_secs(2);

/// One step of a workload. Sizes and alignments are stored narrow to keep the sequence compact;
/// every alignment is a power of two and every size fits in the arena.
#[derive(Clone, Copy)]
enum Op {
    /// Allocate a block into `slot`.
    Alloc { slot: u32, size: u32, align: u32 },
    /// Free the block in `slot`, allocated with this size and alignment.
    Free { slot: u32, size: u32, align: u32 },
    /// Resize the block in `slot` from `old` to `new` bytes, keeping its alignment.
    Realloc {
        slot: u32,
        old: u32,
        new: u32,
        align: u32,
    },
}

/// A named operation sequence: an untimed `setup` prefix, then the `timed` operations.
struct Workload {
    name: &'static str,
    slots: usize,
    setup: Vec<Op>,
    timed: Vec<Op>,
}

/// A xorshift64* generator: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u32) -> bool {
        self.range(0, 99) < percent
    }
}

/// Live blocks while a workload is generated: which slots hold what, and which are free.
struct Slots {
    live: Vec<(u32, u32, u32)>,
    free: Vec<u32>,
    count: u32,
}

impl Slots {
    fn new() -> Self {
        Self {
            live: Vec::new(),
            free: Vec::new(),
            count: 0,
        }
    }

    fn alloc(&mut self, size: u32, align: u32) -> Op {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.count += 1;
            self.count - 1
        });
        self.live.push((slot, size, align));
        Op::Alloc { slot, size, align }
    }

    fn free_at(&mut self, index: usize) -> Op {
        let (slot, size, align) = self.live.swap_remove(index);
        self.free.push(slot);
        Op::Free { slot, size, align }
    }

    fn free_random(&mut self, rng: &mut Rng) -> Op {
        let index = rng.range(0, self.live.len() as u32 - 1) as usize;
        self.free_at(index)
    }
}

/// Small objects (8–512 B) over a pre-fragmented heap: 20,000 blocks are allocated and every
/// other one freed (untimed), then 200,000 random allocations and frees.
fn small_workload() -> Workload {
    const PREFILL: usize = 20_000;
    const OPS: usize = 200_000;
    let mut rng = Rng::new(SMALL_SEED);
    let mut slots = Slots::new();
    let mut setup: Vec<Op> = (0..PREFILL)
        .map(|_| slots.alloc(rng.range(8, 512), 8))
        .collect();
    for index in (0..PREFILL / 2).rev() {
        setup.push(slots.free_at(2 * index + 1));
    }
    let target = slots.live.len();
    let timed = (0..OPS)
        .map(|_| {
            let alloc_percent = if slots.live.len() < target { 55 } else { 45 };
            if slots.live.is_empty() || rng.chance(alloc_percent) {
                slots.alloc(rng.range(8, 512), 8)
            } else {
                slots.free_random(&mut rng)
            }
        })
        .collect();
    Workload {
        name: "small",
        slots: slots.count as usize,
        setup,
        timed,
    }
}

/// A size from 8 B to 64 KiB, skewed towards small objects as a kernel heap sees them.
fn mixed_size(rng: &mut Rng) -> u32 {
    match rng.range(0, 99) {
        0..=49 => rng.range(8, 64),
        50..=74 => rng.range(65, 512),
        75..=89 => rng.range(513, 4096),
        90..=97 => rng.range(4097, 16 * 1024),
        _ => rng.range(16 * 1024 + 1, 64 * 1024),
    }
}

/// An alignment: mostly the natural 8 or 16, sometimes a cache line, rarely a page.
fn mixed_align(rng: &mut Rng) -> u32 {
    match rng.range(0, 99) {
        0..=84 => 8,
        85..=94 => 16,
        95..=98 => 64,
        _ => 4096,
    }
}

/// Mixed sizes (see [`mixed_size`]): 2,000 blocks allocated untimed, then 200,000 random
/// allocations and frees around that population.
fn mixed_workload() -> Workload {
    const POPULATION: usize = 2_000;
    const OPS: usize = 200_000;
    let mut rng = Rng::new(MIXED_SEED);
    let mut slots = Slots::new();
    let setup = (0..POPULATION)
        .map(|_| {
            let size = mixed_size(&mut rng);
            slots.alloc(size, mixed_align(&mut rng))
        })
        .collect();
    let timed = (0..OPS)
        .map(|_| {
            let alloc_percent = if slots.live.len() < POPULATION {
                55
            } else {
                45
            };
            if slots.live.is_empty() || rng.chance(alloc_percent) {
                let size = mixed_size(&mut rng);
                slots.alloc(size, mixed_align(&mut rng))
            } else {
                slots.free_random(&mut rng)
            }
        })
        .collect();
    Workload {
        name: "mixed",
        slots: slots.count as usize,
        setup,
        timed,
    }
}

/// Growing buffers: 500 buffers, each started at 8–64 B and grown step by step (60% doubling
/// like a `Vec`, 40% by 1–64 bytes like an exact `reserve`) up to a random final size of at
/// most 64 KiB, then freed and started again; 100,000 timed operations on random buffers.
fn realloc_workload() -> Workload {
    const BUFFERS: usize = 500;
    const OPS: usize = 100_000;
    const ALIGN: u32 = 8;
    let mut rng = Rng::new(REALLOC_SEED);
    let mut buffers: Vec<Option<(u32, u32)>> = vec![None; BUFFERS];
    let timed = (0..OPS)
        .map(|_| {
            let slot = rng.range(0, BUFFERS as u32 - 1);
            let buffer = &mut buffers[slot as usize];
            match *buffer {
                None => {
                    let size = rng.range(8, 64);
                    let target = if rng.chance(70) {
                        rng.range(256, 8192)
                    } else {
                        rng.range(8193, 64 * 1024)
                    };
                    *buffer = Some((size, target));
                    Op::Alloc {
                        slot,
                        size,
                        align: ALIGN,
                    }
                }
                Some((size, target)) if size >= target => {
                    *buffer = None;
                    Op::Free {
                        slot,
                        size,
                        align: ALIGN,
                    }
                }
                Some((size, target)) => {
                    let grown = if rng.chance(60) {
                        size * 2
                    } else {
                        size + rng.range(1, 64)
                    };
                    let new = grown.min(64 * 1024);
                    *buffer = Some((new, target));
                    Op::Realloc {
                        slot,
                        old: size,
                        new,
                        align: ALIGN,
                    }
                }
            }
        })
        .collect();
    Workload {
        name: "realloc",
        slots: BUFFERS,
        setup: Vec::new(),
        timed,
    }
}

/// The allocators under test, as the benchmark drives them.
trait BenchHeap {
    /// The name printed in the results.
    const NAME: &'static str;

    /// Creates the allocator over `[start, start + size)`.
    ///
    /// # Safety
    /// The range must be valid, writable, unused memory that outlives the allocator.
    unsafe fn create(start: *mut u8, size: usize) -> Self;

    /// Allocates `layout`; null on failure.
    fn alloc(&mut self, layout: Layout) -> *mut u8;

    /// Frees a block.
    ///
    /// # Safety
    /// `ptr` must be a live block allocated by `self` with `layout`.
    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout);

    /// Resizes a block to `new_size`; null (with the old block still live) on failure. The
    /// default allocates a new block, copies and frees the old one.
    ///
    /// # Safety
    /// `ptr` must be a live block allocated by `self` with `layout`.
    unsafe fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `new_size` comes from a workload, a valid size for `layout.align()`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = self.alloc(new_layout);
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct and at least this long.
            unsafe { ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the caller guarantees `ptr` is live with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

/// One of Enigma's allocators, driven through [`HeapAllocator`]. A wrapper rather than an impl
/// for every `HeapAllocator`, which the coherence rules would not allow next to the impls for
/// the two crates' foreign types.
struct Enigma<A>(A);

/// Enigma's bump allocator.
type Bump = Enigma<BumpAllocator>;
/// Enigma's linked-list allocator.
type LinkedList = Enigma<LinkedListAllocator>;
/// Enigma's fixed-size-block allocator.
type FixedSizeBlock = Enigma<FixedSizeBlockAllocator>;
/// The `talc` crate's allocator, over memory it is given by hand.
type TalcHeap = Talc<Manual, DefaultBinning>;

impl<A: HeapAllocator> BenchHeap for Enigma<A> {
    const NAME: &'static str = A::NAME;

    unsafe fn create(start: *mut u8, size: usize) -> Self {
        let mut heap = A::EMPTY;
        // SAFETY: the caller's guarantees.
        unsafe { heap.init(start.expose_provenance(), size) };
        Self(heap)
    }

    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        self.0.allocate(layout)
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees.
        unsafe { self.0.deallocate(ptr, layout) }
    }
}

impl BenchHeap for linked_list_allocator::Heap {
    const NAME: &'static str = "linked_list_allocator";

    unsafe fn create(start: *mut u8, size: usize) -> Self {
        let mut heap = Self::empty();
        // SAFETY: the caller's guarantees.
        unsafe { heap.init(start, size) };
        heap
    }

    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        self.allocate_first_fit(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees; a live block is never null.
        unsafe { self.deallocate(NonNull::new_unchecked(ptr), layout) }
    }
}

impl BenchHeap for TalcHeap {
    const NAME: &'static str = "talc";

    unsafe fn create(start: *mut u8, size: usize) -> Self {
        let mut heap = Self::new(Manual);
        // SAFETY: the caller's guarantees; 32 MiB is far above talc's minimum first heap.
        let claimed = unsafe { heap.claim(start, size) };
        assert!(claimed.is_some(), "talc could not claim the arena");
        heap
    }

    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        // SAFETY: every workload size is non-zero.
        unsafe { self.allocate(layout) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees.
        unsafe { self.deallocate(ptr, layout) }
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's guarantees; `new_size` is non-zero.
        if unsafe { self.try_realloc_in_place(ptr, layout, new_size) } {
            return ptr;
        }
        let new_layout = Layout::from_size_align(new_size, layout.align()).expect("layout");
        let new = self.alloc(new_layout);
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct and at least this long.
            unsafe { ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the caller guarantees `ptr` is live with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

/// The memory all allocators share, one after the other, pre-faulted so that no run pays for
/// the first touch of its pages.
struct Arena {
    ptr: *mut u8,
    layout: Layout,
}

impl Arena {
    fn new() -> Self {
        let layout = Layout::from_size_align(ARENA_SIZE, ARENA_ALIGN).expect("arena layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        assert!(!ptr.is_null(), "cannot allocate the arena");
        // SAFETY: the arena is `ARENA_SIZE` writable bytes.
        unsafe { ptr.write_bytes(0xa5, ARENA_SIZE) };
        Self { ptr, layout }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// An allocation failed: the allocator ran out of arena.
struct Exhausted;

/// Space use observed while running a workload with tracking on.
#[derive(Default)]
struct Footprint {
    live_requested: usize,
    peak_requested: usize,
    high_water: usize,
}

impl Footprint {
    fn on_alloc(&mut self, arena: *mut u8, ptr: *mut u8, size: usize) {
        self.live_requested += size;
        self.peak_requested = self.peak_requested.max(self.live_requested);
        self.high_water = self.high_water.max(ptr.addr() + size - arena.addr());
    }

    fn on_free(&mut self, size: usize) {
        self.live_requested -= size;
    }
}

/// Runs `ops` on `heap`, keeping each slot's block in `slots`. Each new block gets one byte
/// written, as a real caller would touch it. With `TRACK`, `footprint` follows the space use.
fn execute<H: BenchHeap, const TRACK: bool>(
    heap: &mut H,
    slots: &mut [*mut u8],
    ops: &[Op],
    arena: *mut u8,
    footprint: &mut Footprint,
) -> Result<(), Exhausted> {
    for &op in ops {
        match op {
            Op::Alloc { slot, size, align } => {
                // SAFETY: workload alignments are powers of two and sizes are small.
                let layout =
                    unsafe { Layout::from_size_align_unchecked(size as usize, align as usize) };
                let ptr = heap.alloc(layout);
                if ptr.is_null() {
                    return Err(Exhausted);
                }
                // SAFETY: the block is live and at least one byte long.
                unsafe { ptr.write(slot as u8) };
                slots[slot as usize] = black_box(ptr);
                if TRACK {
                    footprint.on_alloc(arena, ptr, size as usize);
                }
            }
            Op::Free { slot, size, align } => {
                // SAFETY: as above.
                let layout =
                    unsafe { Layout::from_size_align_unchecked(size as usize, align as usize) };
                // SAFETY: the workload frees only the live block of `slot`, with its layout.
                unsafe { heap.dealloc(slots[slot as usize], layout) };
                if TRACK {
                    footprint.on_free(size as usize);
                }
            }
            Op::Realloc {
                slot,
                old,
                new,
                align,
            } => {
                // SAFETY: as above.
                let layout =
                    unsafe { Layout::from_size_align_unchecked(old as usize, align as usize) };
                // SAFETY: the workload resizes only the live block of `slot`, with its layout.
                let ptr = unsafe { heap.realloc(slots[slot as usize], layout, new as usize) };
                if ptr.is_null() {
                    return Err(Exhausted);
                }
                // SAFETY: the block is live and `new` bytes long.
                unsafe { ptr.add(new as usize - 1).write(slot as u8) };
                slots[slot as usize] = black_box(ptr);
                if TRACK {
                    footprint.on_free(old as usize);
                    footprint.on_alloc(arena, ptr, new as usize);
                }
            }
        }
    }
    Ok(())
}

/// Runs `workload` once on a fresh `H` over the arena; returns the time of its timed part.
fn run_once<H: BenchHeap>(arena: &Arena, workload: &Workload) -> Result<Duration, Exhausted> {
    // SAFETY: the arena is valid and unused: the previous allocator over it is gone.
    let mut heap = unsafe { H::create(arena.ptr, ARENA_SIZE) };
    let mut slots = vec![ptr::null_mut(); workload.slots];
    let mut footprint = Footprint::default();
    execute::<H, false>(
        &mut heap,
        &mut slots,
        &workload.setup,
        arena.ptr,
        &mut footprint,
    )?;
    let start = Instant::now();
    execute::<H, false>(
        &mut heap,
        &mut slots,
        &workload.timed,
        arena.ptr,
        &mut footprint,
    )?;
    let elapsed = start.elapsed();
    black_box(&mut heap);
    Ok(elapsed)
}

/// Times `workload` on `H` several times and returns the best (minimum) time per timed
/// operation in nanoseconds: the minimum is the run least disturbed by the other work sharing
/// the machine's two cores. `None` if the allocator ran out of arena.
fn bench<H: BenchHeap>(arena: &Arena, workload: &Workload) -> Option<f64> {
    let mut best = Duration::MAX;
    let mut spent = Duration::ZERO;
    for run in 0..MAX_RUNS {
        if run >= MIN_RUNS && spent >= TIME_BUDGET {
            break;
        }
        let started = Instant::now();
        best = best.min(run_once::<H>(arena, workload).ok()?);
        spent += started.elapsed();
    }
    Some(best.as_nanos() as f64 / workload.timed.len() as f64)
}

/// Space efficiency of `H` on `workload`: the peak of the bytes requested by live blocks,
/// divided by the peak of the arena bytes used, the latter defined for every allocator alike
/// as the high-water mark of `block + size - arena_start` over every block it returned (so the
/// allocator's own metadata at the start of the arena, padding and fragmentation all count).
/// `None` if the allocator ran out of arena.
fn efficiency<H: BenchHeap>(arena: &Arena, workload: &Workload) -> Option<f64> {
    // SAFETY: the arena is valid and unused: the previous allocator over it is gone.
    let mut heap = unsafe { H::create(arena.ptr, ARENA_SIZE) };
    let mut slots = vec![ptr::null_mut(); workload.slots];
    let mut footprint = Footprint::default();
    execute::<H, true>(
        &mut heap,
        &mut slots,
        &workload.setup,
        arena.ptr,
        &mut footprint,
    )
    .ok()?;
    execute::<H, true>(
        &mut heap,
        &mut slots,
        &workload.timed,
        arena.ptr,
        &mut footprint,
    )
    .ok()?;
    Some(footprint.peak_requested as f64 / footprint.high_water as f64)
}

/// Formats a measurement, or `exhausted` if the allocator ran out of arena.
fn show(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(
        || "exhausted".to_owned(),
        |value| format!("{value:.decimals$}"),
    )
}

/// Benchmarks every allocator on `workload`, printing a line each; returns the ns/op of the
/// allocators in the order of [`ALLOCATORS`].
fn bench_all(arena: &Arena, workload: &Workload) -> [Option<f64>; 5] {
    let results = [
        bench::<Bump>(arena, workload),
        bench::<LinkedList>(arena, workload),
        bench::<FixedSizeBlock>(arena, workload),
        bench::<linked_list_allocator::Heap>(arena, workload),
        bench::<TalcHeap>(arena, workload),
    ];
    for (name, result) in ALLOCATORS.iter().zip(results) {
        println!("alloc-bench {name} {} {}", workload.name, show(result, 1));
    }
    results
}

/// The allocators' names, in the order of [`bench_all`].
const ALLOCATORS: [&str; 5] = [
    Bump::NAME,
    LinkedList::NAME,
    FixedSizeBlock::NAME,
    linked_list_allocator::Heap::NAME,
    TalcHeap::NAME,
];

fn main() {
    let arena = Arena::new();
    let small = small_workload();
    let mixed = mixed_workload();
    let realloc = realloc_workload();

    let small_results = bench_all(&arena, &small);
    bench_all(&arena, &mixed);
    bench_all(&arena, &realloc);

    let efficiencies = [
        efficiency::<Bump>(&arena, &mixed),
        efficiency::<LinkedList>(&arena, &mixed),
        efficiency::<FixedSizeBlock>(&arena, &mixed),
        efficiency::<linked_list_allocator::Heap>(&arena, &mixed),
        efficiency::<TalcHeap>(&arena, &mixed),
    ];
    for (name, ratio) in ALLOCATORS.iter().zip(efficiencies) {
        println!("alloc-efficiency {name} mixed {}", show(ratio, 3));
    }

    // Throughput is 1/(ns/op), so fixed_size_block's throughput over a peer's is the peer's
    // ns/op over fixed_size_block's.
    let [_, _, fixed, llalloc, talc] = small_results;
    let versus = |peer: Option<f64>| show(peer.zip(fixed).map(|(peer, fixed)| peer / fixed), 2);
    println!(
        "ratio vs_linked_list_allocator={} vs_talc={}",
        versus(llalloc),
        versus(talc)
    );
}

//! Memory management: physical frames, page tables, process address spaces, kernel stacks,
//! the kernel heap, and the kernel's own ELF file in memory.
//!
//! Kernel-half layout (every process shares it):
//!
//! | PML4 entry | start                   | what                                             |
//! |------------|-------------------------|--------------------------------------------------|
//! | 256        | `0xffff_8000_0000_0000` | all physical memory ([`physical_map::PHYSICAL_MEMORY_OFFSET`]) |
//! | 272..288   | `0xffff_8800_0000_0000` | the bootloader's dynamic range: kernel image, boot stack, boot info, framebuffer |
//! | 288        | `0xffff_9000_0000_0000` | the kernel heap ([`HEAP_START`], [`HEAP_SIZE`])   |
//! | 304        | `0xffff_9800_0000_0000` | kernel stacks with guard pages ([`kernel_stack`]) |
//!
//! The lower half is empty in the kernel's own table and private to each process.
pub mod address_space;
pub mod frame;
pub mod heap;
pub mod kernel_image;
pub mod kernel_stack;
pub mod paging;
pub mod physical_map;
pub mod ramdisk;
pub mod shared;
pub mod user_memory;

use ::x86_64::VirtAddr;
use ::x86_64::structures::paging::{Page, PageTableFlags};
use bootloader_api::info::MemoryRegions;

/// Start of the bootloader's dynamic range (see `BOOTLOADER_CONFIG` in `main.rs`).
pub const DYNAMIC_RANGE_START: u64 = 0xffff_8800_0000_0000;
/// Last address of the bootloader's dynamic range.
pub const DYNAMIC_RANGE_END: u64 = 0xffff_8fff_ffff_ffff;
/// Start of the kernel heap.
pub const HEAP_START: u64 = 0xffff_9000_0000_0000;
/// Size of the kernel heap: 16 MiB, mapped at boot.
pub const HEAP_SIZE: u64 = 16 * 1024 * 1024;

/// The kernel's global allocator: a fixed-size-block allocator over the heap region.
#[cfg(target_os = "none")]
#[global_allocator]
static HEAP: heap::Locked<heap::FixedSizeBlockAllocator> = heap::Locked::new(heap::FixedSizeBlockAllocator::new());

/// Heap bytes that must stay unclaimed before a syscall may allocate: more than any single
/// syscall allocates (the largest, `spawn`, takes a few tens of KiB), with room to spare for
/// fragmentation. A syscall that finds less fails with `ENOMEM` ([`heap_has_room`]) instead
/// of letting an allocation fail, which would panic the kernel.
pub const HEAP_RESERVE: usize = 1024 * 1024;

/// Whether the kernel heap still has [`HEAP_RESERVE`] bytes unclaimed.
pub fn heap_has_room() -> bool {
    heap_stats().unclaimed_bytes >= HEAP_RESERVE
}

/// Heap figures for `sysinfo` and the boot log.
pub fn heap_stats() -> heap::HeapStats {
    #[cfg(target_os = "none")]
    {
        crate::arch::cpu::without_interrupts(|| heap::HeapAllocator::stats(&*HEAP.lock()))
    }
    #[cfg(not(target_os = "none"))]
    {
        heap::HeapStats::default()
    }
}

/// Sets up frames, the kernel's page table and the heap, in that order. Once: a second call
/// would hand out the live heap again, so it panics.
pub fn init(regions: &MemoryRegions) {
    static DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    assert!(!DONE.swap(true, core::sync::atomic::Ordering::Relaxed), "mm::init called twice");
    frame::init(regions);
    paging::init();
    kernel_stack::init();
    let first = Page::containing_address(VirtAddr::new(HEAP_START));
    for index in 0..HEAP_SIZE / frame::FRAME_SIZE {
        paging::map_kernel_page(first + index, PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE)
            .expect("out of memory while mapping the kernel heap");
    }
    #[cfg(target_os = "none")]
    // SAFETY: the heap range was just mapped writable, is used by nothing else, and stays
    // mapped forever.
    unsafe {
        heap::HeapAllocator::init(&mut *HEAP.lock(), HEAP_START as usize, HEAP_SIZE as usize)
    };
}

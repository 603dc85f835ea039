//! The map of all physical memory in the kernel half, through which the kernel reaches any
//! frame (page tables, process pages, the frame allocator's own bookkeeping). A leaf: it
//! depends on nothing else in `mm`, so the frame allocator and the page tables both use it
//! without needing each other.

use ::x86_64::{PhysAddr, VirtAddr};

/// Where physical address 0 appears in the kernel's address space.
pub const PHYSICAL_MEMORY_OFFSET: u64 = abi::memory::PHYSICAL_MAP_OFFSET;

/// The kernel's view of physical address `address`.
pub fn phys_to_virt(address: PhysAddr) -> VirtAddr {
    VirtAddr::new(PHYSICAL_MEMORY_OFFSET + address.as_u64())
}

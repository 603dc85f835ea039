//! Memory management: physical frames, page tables, address spaces and the kernel heap.
pub mod heap;

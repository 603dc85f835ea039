//! Enigma's privileged core: every line of the kernel that needs `unsafe` lives in this crate,
//! behind safe functions and types that no caller can misuse into corrupting memory (the rule
//! of Asterinas's OSTD). The kernel crate proper (scheduler, objects, IPC, syscalls, loader)
//! is `#![forbid(unsafe_code)]` and reaches the machine only through what this crate exports.
//!
//! - [`arch`]: the CPU's tables and entry paths, interrupt controllers, the big kernel lock,
//!   context switching, and the legacy PC devices reached by port I/O.
//! - [`mm`]: physical frames, page tables, address spaces, user memory, kernel stacks, the
//!   kernel heap.
//! - [`usercopy`]: the only way to read or write the calling process's memory.
//!
//! Built for the host (`cargo test`), it carries the unit tests of the pure logic
//! (allocators, frame bookkeeping, region sets) and the allocator benchmark.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
pub mod mm;
pub mod usercopy;

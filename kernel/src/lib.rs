//! The Enigma kernel as a library: every subsystem lives here, and `main.rs` only wires the
//! bootloader's entry point to [`boot::kernel_main`]. Built for `x86_64-unknown-none` it is the
//! kernel; built for the host under `cargo test` it carries the unit tests of the pure logic
//! (allocators, frame bookkeeping, ELF checks, region sets, run queues, the log ring).
//!
//! `unsafe` code is confined to the privileged core (the `enigma-core` crate: [`arch`],
//! [`mm`], [`syscall::usercopy`]); every module here forbids it.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub use enigma_core::{arch, mm};
pub mod backtrace;
pub mod boot;
pub mod klog;
pub mod ipc;
pub mod ktest;
pub mod log_ring;
pub mod object;
pub mod syscall;
pub mod task;
pub mod time;

//! The Enigma kernel as a library: every subsystem lives here, and `main.rs` only wires the
//! bootloader's entry point to [`boot::kernel_main`]. Built for `x86_64-unknown-none` it is the
//! kernel; built for the host under `cargo test` it carries the unit tests of the pure logic
//! (allocators, frame bookkeeping, ELF checks, region sets, run queues, the log ring).
//!
//! `unsafe` code is confined to `arch/`, `mm/` and `syscall/usercopy.rs`; every other module
//! forbids it.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
#[forbid(unsafe_code)]
pub mod backtrace;
#[forbid(unsafe_code)]
pub mod boot;
#[forbid(unsafe_code)]
pub mod klog;
#[forbid(unsafe_code)]
pub mod ipc;
#[forbid(unsafe_code)]
pub mod ktest;
#[forbid(unsafe_code)]
pub mod log_ring;
pub mod mm;
#[forbid(unsafe_code)]
pub mod object;
pub mod syscall;
#[forbid(unsafe_code)]
pub mod task;
#[forbid(unsafe_code)]
pub mod time;

//! The Enigma kernel as a library: every subsystem lives here, and `main.rs` only wires the
//! bootloader's entry point to [`boot::kernel_main`]. Built for `x86_64-unknown-none` it is the
//! kernel; built for the host under `cargo test` it carries the unit tests of the pure logic
//! (allocators, frame bookkeeping, line discipline, ELF checks, region sets, run queues).
//!
//! `unsafe` code is confined to `arch/`, `mm/` and `syscall/usercopy.rs`; every other module
//! denies it.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
#[deny(unsafe_code)]
pub mod backtrace;
#[deny(unsafe_code)]
pub mod boot;
#[deny(unsafe_code)]
pub mod console;
#[deny(unsafe_code)]
pub mod drivers;
#[deny(unsafe_code)]
pub mod ktest;
pub mod mm;
pub mod syscall;
#[deny(unsafe_code)]
pub mod task;
#[deny(unsafe_code)]
pub mod time;

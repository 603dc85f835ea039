//! The Enigma kernel as a library: every subsystem lives here, and `main.rs` only wires the
//! bootloader's entry point to [`boot::kernel_main`]. Built for `x86_64-unknown-none` it is the
//! kernel; built for the host under `cargo test` it carries the unit tests of the pure logic
//! (allocators, frame bookkeeping, line discipline, ELF checks, user-range checks, queues).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod mm;
#[deny(unsafe_code)]
pub mod drivers;

//! The library Enigma user programs are written against.
//!
//! A program is a `#![no_std]`, `#![no_main]` binary in `userspace/src/bin/` that names its
//! main function with [`main!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! userlib::main!(main);
//! fn main() -> i32 {
//!     userlib::println!("hello, {}", userlib::args().get(1).copied().unwrap_or("world"));
//!     0
//! }
//! ```
//!
//! `userlib` supplies the entry point (`_start`: arguments, then `main`, then `exit` with its
//! status), a panic handler (message and backtrace, then exit status 101), `print!`/`println!`, a global
//! allocator growing the heap with `brk` (so `alloc`'s `Vec`, `String` and `Box` work), and a
//! wrapper for every syscall in [`sys`], over both entry paths (`syscall` by default,
//! `int 0x80` on request).
//!
//! Beyond the syscalls it carries what several programs share: [`process`] (starting programs
//! from files, the process table, the program list, how a process ended), [`fs`] (files and
//! directories, the current directory), [`float`] (`f64` arithmetic in SSE registers),
//! [`line_editor`] (interactive line input with history, as the shell reads commands),
//! [`time`] (durations as programs take them), [`thread`] and [`sync`] (threads, and the
//! futex-based `Mutex`, `Condvar` and `Once` they share data with) and [`testing`] (the
//! harness test programs such as `usertests` are written on).
//!
//! Under `cargo test` on the host the crate builds with `std`, without the entry point, panic
//! handler and allocator, so the pure logic (line editing, duration parsing, the test
//! harness's selection, reports and fault matching) is unit-tested.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(not(test))]
mod backtrace;
#[cfg(not(test))]
mod heap;
pub mod device;
pub mod exception;
pub mod float;
pub mod fs;
pub mod io;
pub mod ipc;
pub mod line_editor;
pub mod names;
pub mod process;
mod rt;
pub mod supervisor;
pub mod sync;
pub mod sys;
pub mod testing;
pub mod thread;
pub mod time;

pub use abi;
pub use rt::{Termination, args, program_name};

/// Declares the program's main function: `fn() -> i32`, or `fn()` for status 0.
///
/// `main` is called through a function pointer the optimiser cannot see through, so it is
/// never inlined: it keeps its own name in backtraces, and gdb can break on it.
#[macro_export]
macro_rules! main {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn __enigma_main() -> i32 {
            let main: fn() -> _ = $main;
            $crate::Termination::status(::core::hint::black_box(main)())
        }
    };
}

/// The privilege level the code runs at, read from the CS selector (3 in user programs).
pub fn privilege_level() -> u16 {
    let cs: u16;
    // SAFETY: reading CS has no side effects.
    unsafe { core::arch::asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags)) };
    cs & 3
}

/// Reads the time-stamp counter (guest instructions under QEMU's `-icount shift=0`).
pub fn timestamp() -> u64 {
    // SAFETY: `rdtsc` has no side effects and is allowed in ring 3 (CR4.TSD is clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

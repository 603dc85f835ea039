//! `bench`: path lengths of the kernel's hot paths, in TSC cycles per operation.
//!
//! Under the launcher's `--icount` (QEMU `-icount shift=0`) the TSC counts guest
//! instructions, so the figures are instruction counts and repeat exactly from run to run.
//! Each figure subtracts the cost of the same loop without the operation.
//!
//! - `null_syscall`, `null_int80`: `getpid` through `syscall` and `int 0x80` (100k each);
//! - `yield_switch`: one `yield` that switches to another process (ping-pong with a child);
//! - `spawn_wait`: starting a program that exits at once, and reaping it;
//! - `map_touch_unmap`: `mmap` of one page, one write to it, `munmap`;
//! - `longest_masked_ns`: the longest stretch the kernel ran with interrupts masked (from
//!   `sysinfo`), after the operations above and a few long ones: a 32 MiB `mmap`/`munmap`, a
//!   spawn of the largest program, and a `write` of 256 newlines to the console.
#![no_std]
#![no_main]

use core::hint::black_box;

use userlib::sys::{self, EntryPath};
use userlib::{args, println, timestamp};

userlib::main!(main);

const SYSCALL_ROUNDS: u64 = 100_000;
const YIELD_ROUNDS: u64 = 10_000;
const SPAWN_ROUNDS: u64 = 50;
const MAP_ROUNDS: u64 = 2_000;

/// Cycles per round of `operation`, minus an empty loop's cycles per round.
fn cycles_per_round(rounds: u64, mut operation: impl FnMut()) -> u64 {
    let start = timestamp();
    for round in 0..rounds {
        black_box(round);
    }
    let empty = timestamp() - start;
    let start = timestamp();
    for round in 0..rounds {
        black_box(round);
        operation();
    }
    let full = timestamp() - start;
    full.saturating_sub(empty) / rounds
}

fn null_call(path: EntryPath) -> u64 {
    cycles_per_round(SYSCALL_ROUNDS, || {
        // SAFETY: getpid takes no arguments and touches no memory.
        black_box(unsafe { sys::raw(path, abi::syscall::GETPID, [0; 6]) });
    })
}

/// Operations whose kernel side is long, and must let interrupts in along the way; returns
/// how many failed.
fn long_operations() -> u32 {
    let mut failures = 0;
    const BIG: u64 = 32 * 1024 * 1024;
    match sys::mmap(0, BIG, abi::PROT_READ | abi::PROT_WRITE) {
        // SAFETY: the mapping was just made and nothing refers to it.
        Ok(address) => failures += u32::from(unsafe { sys::munmap(address, BIG) }.is_err()),
        Err(_) => failures += 1,
    }
    match sys::spawn("usertests", &["usertests", "--child", "exit_with", "0"]) {
        Ok(pid) => failures += u32::from(sys::wait(Some(pid)).is_err()),
        Err(_) => failures += 1,
    }
    failures += u32::from(sys::write(1, &[b'\n'; 256]).is_err());
    failures
}

fn main() -> i32 {
    match args().get(1).copied() {
        Some("--exit") => return 0,
        Some("--yield") => {
            for _ in 0..YIELD_ROUNDS {
                sys::yield_now();
            }
            return 0;
        }
        _ => {}
    }
    println!("bench: null_syscall {}", null_call(EntryPath::Syscall));
    println!("bench: null_int80 {}", null_call(EntryPath::Int80));

    let Ok(partner) = sys::spawn("bench", &["bench", "--yield"]) else {
        println!("bench: cannot spawn the yield partner");
        return 1;
    };
    // Both processes yield YIELD_ROUNDS times, so each round here is two switches.
    let per_round = cycles_per_round(YIELD_ROUNDS, sys::yield_now);
    let _ = sys::wait(Some(partner));
    println!("bench: yield_switch {}", per_round / 2);

    let mut failures = 0;
    let spawn_wait = cycles_per_round(SPAWN_ROUNDS, || match sys::spawn("bench", &["bench", "--exit"]) {
        Ok(pid) => {
            let _ = sys::wait(Some(pid));
        }
        Err(_) => failures += 1,
    });
    println!("bench: spawn_wait {spawn_wait}");

    let map_touch_unmap = cycles_per_round(MAP_ROUNDS, || match sys::mmap(0, 4096, abi::PROT_READ | abi::PROT_WRITE) {
        Ok(address) => {
            // SAFETY: the page was just mapped writable for this process and nothing else
            // refers to it; it is unmapped right after the write.
            unsafe {
                core::ptr::write_volatile(address as *mut u8, 1);
                let _ = sys::munmap(address, 4096);
            }
        }
        Err(_) => failures += 1,
    });
    println!("bench: map_touch_unmap {map_touch_unmap}");

    failures += long_operations();
    match sys::sysinfo() {
        Ok(info) => println!("bench: longest_masked_ns {}", info.longest_masked_ns),
        Err(_) => failures += 1,
    }
    if failures > 0 {
        println!("bench: {failures} operations failed");
        return 1;
    }
    0
}

//! `crash fault|panic|wild-frame|breakpoint`: fails on purpose, to show what the kernel and
//! userlib print when a program goes wrong. `fault` writes to the program's own code, which is
//! mapped read-only, and the kernel ends it with a page fault; `panic` panics. Either way a
//! backtrace names the function that failed (`write_to_own_code`, `panic_on_purpose`) and
//! its callers. `wild-frame` points its frame pointer into the kernel half and then faults:
//! the kernel's report must name the faulting function and stop there. `breakpoint` runs
//! `int3` three times, saying so after each, then exits 0: alone it dies of the first; under
//! `catch` (which resumes breakpoints) it runs to the end.
#![no_std]
#![no_main]

use userlib::{args, eprintln};

userlib::main!(main);

fn main() -> i32 {
    match args().get(1).copied() {
        Some(how @ ("fault" | "panic")) => fail(how),
        Some("wild-frame") => fault_with_wild_frame_pointer(),
        Some("breakpoint") => {
            for round in 1..=3 {
                breakpoint();
                userlib::println!("crash: past breakpoint {round}");
            }
            0
        }
        _ => {
            eprintln!("usage: crash fault|panic|wild-frame|breakpoint");
            2
        }
    }
}

/// One more named frame between `main` and the failure. Never inlined, like the two below,
/// so each keeps its own frame and name in a backtrace; `black_box` keeps the calls from
/// becoming jumps that would leave this frame before the failure.
#[inline(never)]
fn fail(how: &str) -> i32 {
    let status = if how == "fault" { write_to_own_code() } else { panic_on_purpose() };
    core::hint::black_box(status)
}

#[inline(never)]
fn write_to_own_code() -> i32 {
    let code = core::hint::black_box(write_to_own_code as *const () as *mut u8);
    // SAFETY: none; this is the bug the program exists for. The page is mapped read and
    // execute only, so the write faults and the kernel ends the process before it happens.
    unsafe { code.write_volatile(0xcc) };
    0
}

#[inline(never)]
fn breakpoint() {
    // SAFETY: `int3` only traps; a handler resumes right after it (or the process ends).
    unsafe { core::arch::asm!("int3", options(nomem, nostack)) };
}

#[inline(never)]
fn panic_on_purpose() -> i32 {
    panic!("crash panic: panicking on purpose");
}

#[inline(never)]
fn fault_with_wild_frame_pointer() -> i32 {
    // SAFETY: none; on purpose. `ud2` ends the process right after the frame pointer is
    // ruined, so nothing in this program follows it.
    unsafe {
        core::arch::asm!(
            "mov rbp, {kernel}",
            "ud2",
            kernel = const userlib::abi::memory::PHYSICAL_MAP_OFFSET,
            options(noreturn)
        )
    }
}

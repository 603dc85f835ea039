//! `true`: exits at once with status 0. It is written without `userlib` (whose start-up reads
//! the arguments and sets up a heap), so that it is as small as a program can be: the
//! `spawn_file_wait` figure of `bench` measures starting a program, not its start-up.
#![no_std]
#![no_main]

use core::arch::naked_asm;

/// The entry point: `exit(0)`.
#[unsafe(no_mangle)]
#[unsafe(naked)]
extern "C" fn _start() -> ! {
    naked_asm!("xor edi, edi", "mov eax, {exit}", "syscall", "ud2", exit = const abi::syscall::EXIT)
}

/// Nothing here can panic; the handler only satisfies the compiler.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

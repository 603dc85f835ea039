//! Program start-up and shutdown: `_start`, the arguments, the exit status and the panic
//! handler (its message, then the backtrace from [`crate::backtrace`]).

use alloc::vec::Vec;

use spin::Once;

static ARGS: Once<Vec<&'static str>> = Once::new();

/// The program's arguments; `args()[0]` is its name.
pub fn args() -> &'static [&'static str] {
    ARGS.get().map_or(&[], Vec::as_slice)
}

/// The program's name (argv\[0\]), or `"?"`.
pub fn program_name() -> &'static str {
    args().first().copied().unwrap_or("?")
}

/// What `main` may return: its exit status.
pub trait Termination {
    /// The exit status.
    fn status(self) -> i32;
}

impl Termination for i32 {
    fn status(self) -> i32 {
        self
    }
}

impl Termination for () {
    fn status(self) -> i32 {
        0
    }
}

/// The entry point and the panic handler, left out of host unit-test builds (where `std`
/// provides both).
#[cfg(not(test))]
mod entry {
    use core::arch::naked_asm;
    use core::fmt::Write;

    use super::{ARGS, program_name};
    use crate::io::{Console, STDERR};
    use crate::sys;

    unsafe extern "Rust" {
        /// Defined by the program through `userlib::main!`.
        safe fn __enigma_main() -> i32;
    }

    /// The entry point. The kernel starts a process with the stack pointer at `argc`, followed
    /// by the `argv` pointers and a null pointer; the stack is 16-byte aligned.
    #[unsafe(no_mangle)]
    #[unsafe(naked)]
    unsafe extern "C" fn _start() -> ! {
        naked_asm!("xor ebp, ebp", "mov rdi, rsp", "and rsp, -16", "call {start}", "ud2", start = sym start);
    }

    extern "C" fn start(stack: *const u64) -> ! {
        ARGS.call_once(|| {
            // SAFETY: the kernel put argc at `stack`, then argc pointers to NUL-terminated UTF-8
            // strings on the stack, which stays mapped for the whole life of the process.
            unsafe {
                let argc = *stack as usize;
                (0..argc)
                    .map(|index| {
                        let text = *stack.add(1 + index) as *const u8;
                        let length = (0..).take_while(|&offset| *text.add(offset) != 0).count();
                        core::str::from_utf8(core::slice::from_raw_parts(text, length)).unwrap_or("?")
                    })
                    .collect()
            }
        });
        sys::exit(__enigma_main())
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        {
            let mut console = Console::new(STDERR);
            let _ = writeln!(console, "{}: panicked: {info}", program_name());
            let _ = crate::backtrace::write_backtrace(&mut console);
        }
        sys::exit(abi::status::PANIC)
    }
}

//! The kernel's own output. Its `log` lines and `println!`s go to COM1, write-only, and into
//! the log ring ([`crate::log_ring`]) that `dmesg` reads through the Log handle; what holders
//! of that handle write goes the same way ([`write_log`]). A panic also paints its message on
//! the framebuffer ([`panic_screen`]).
//!
//! Nothing else of the console is in ring 0: the `console` server drives the screen, the
//! keyboard and serial input, with the device handles `init` gives it.
//!
//! Output is safe from interrupt handlers: writers hold the serial port's and the ring's
//! locks only with interrupts masked. The panic path takes no lock it could wait for.
mod logger;
mod panic_screen;

use core::fmt::{self, Write};

use bootloader_api::info::FrameBuffer;

use crate::arch::{cpu, serial};

pub use panic_screen::ScreenSize;

/// Brings up the serial port and the logger.
pub fn init() {
    serial::init();
    logger::init();
}

/// Keeps the bootloader's framebuffer for painting panics; its size, or `None` if its pixel
/// format is not one the painter knows.
pub fn keep_framebuffer_for_panics(framebuffer: &'static mut FrameBuffer) -> Option<ScreenSize> {
    panic_screen::keep(framebuffer)
}

/// Formats into the serial console and the log ring.
struct KernelOutput;

impl Write for KernelOutput {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_log(text.as_bytes());
        Ok(())
    }
}

/// Writes `bytes` to the serial console and the log ring.
pub fn write_log(bytes: &[u8]) {
    cpu::without_interrupts(|| serial::write_bytes(bytes));
    crate::log_ring::append(bytes);
}

/// Formats to the serial console and the log ring; the body of [`print!`](crate::print).
pub fn print_fmt(args: fmt::Arguments) {
    cpu::without_interrupts(|| {
        // Formatting can call `write_str` many times; holding the interrupts off for the
        // whole message keeps it from interleaving with an interrupt handler's output.
        let _ = KernelOutput.write_fmt(args);
    });
}

/// Writes a panic message to the serial console without waiting for a lock a dead context
/// holds, and paints it on the framebuffer.
pub fn print_panic(args: fmt::Arguments) {
    struct PanicSink;
    impl Write for PanicSink {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            serial::write_bytes_for_panic(text.as_bytes());
            panic_screen::paint(text.as_bytes());
            Ok(())
        }
    }
    let _ = PanicSink.write_fmt(args);
}

/// Prints to the serial console and the log ring.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::klog::print_fmt(format_args!($($arg)*)));
}

/// Prints a line to the serial console and the log ring.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::klog::print_fmt(format_args!("{}\n", format_args!($($arg)*))));
}

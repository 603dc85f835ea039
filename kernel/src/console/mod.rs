//! The console: kernel and user output on both serial (COM1) and the framebuffer, the `log`
//! facade, and the input side that feeds keyboard and serial bytes to user programs.
//!
//! Output is safe from interrupt handlers: writers hold the sinks' locks only with
//! interrupts masked, so a handler can never spin on a lock its own interrupted code holds.
//! The panic path takes the framebuffer only if it is free and writes to the serial port
//! without its lock.
pub mod input;
pub mod line_discipline;
mod logger;

use core::fmt::{self, Write};

use bootloader_api::info::{FrameBuffer, PixelFormat as BootPixelFormat};
use spin::Mutex;

use crate::arch::x86_64::{cpu, serial};
use crate::drivers::framebuffer::{Geometry, PixelFormat, TextConsole};

static SCREEN: Mutex<Option<TextConsole<'static>>> = Mutex::new(None);

/// Brings up the serial port and the logger. The framebuffer joins in [`attach_framebuffer`].
pub fn init() {
    serial::init();
    logger::init();
}

/// The size of the framebuffer console, for the boot log.
#[derive(Clone, Copy, Debug)]
pub struct ScreenSize {
    width: usize,
    height: usize,
    columns: usize,
    rows: usize,
}

impl fmt::Display for ScreenSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{} pixels, {} columns x {} rows", self.width, self.height, self.columns, self.rows)
    }
}

/// Starts mirroring output onto the bootloader's framebuffer (this needs no heap). Returns
/// the console's size, or `None` if the pixel format is unsupported.
pub fn attach_framebuffer(framebuffer: &'static mut FrameBuffer) -> Option<ScreenSize> {
    let info = framebuffer.info();
    let format = match info.pixel_format {
        BootPixelFormat::Rgb => PixelFormat::Rgb,
        BootPixelFormat::Bgr => PixelFormat::Bgr,
        BootPixelFormat::U8 => PixelFormat::Gray,
        _ => return None,
    };
    let geometry = Geometry {
        width: info.width,
        height: info.height,
        stride: info.stride,
        bytes_per_pixel: info.bytes_per_pixel,
        format,
    };
    let console = TextConsole::new(framebuffer.buffer_mut(), geometry);
    let size = ScreenSize { width: info.width, height: info.height, columns: console.columns(), rows: console.rows() };
    cpu::without_interrupts(|| *SCREEN.lock() = Some(console));
    Some(size)
}

/// Writes raw bytes (UTF-8 text, possibly with ANSI colour sequences) to both consoles.
pub fn write_bytes(bytes: &[u8]) {
    cpu::without_interrupts(|| {
        serial::write_bytes(bytes);
        if let Some(screen) = SCREEN.lock().as_mut() {
            screen.write_bytes(bytes);
        }
    });
}

struct Both;

impl Write for Both {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_bytes(text.as_bytes());
        Ok(())
    }
}

/// Formats to both consoles; the body of [`print!`](crate::print).
pub fn print_fmt(args: fmt::Arguments) {
    cpu::without_interrupts(|| {
        // Formatting can call `write_str` many times; holding the interrupts off for the
        // whole message keeps it from interleaving with an interrupt handler's output.
        let _ = Both.write_fmt(args);
    });
}

/// Writes a panic message to both consoles without waiting for a lock a dead context holds.
pub fn print_panic(args: fmt::Arguments) {
    struct PanicSink;
    impl Write for PanicSink {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            serial::write_bytes_for_panic(text.as_bytes());
            if let Some(mut screen) = SCREEN.try_lock()
                && let Some(screen) = screen.as_mut()
            {
                screen.write_bytes(text.as_bytes());
            }
            Ok(())
        }
    }
    let _ = PanicSink.write_fmt(args);
}

/// Prints to the serial and framebuffer consoles.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::print_fmt(format_args!($($arg)*)));
}

/// Prints a line to the serial and framebuffer consoles.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))));
}

//! The console: kernel and user output on both serial (COM1) and the framebuffer, the `log`
//! facade, and the input side that feeds keyboard and serial bytes to user programs.
//!
//! Output is safe from interrupt handlers: writers hold the sinks' locks only with
//! interrupts masked, so a handler can never spin on a lock its own interrupted code holds.
//! The panic path takes the framebuffer only if it is free and writes to the serial port
//! without its lock.
//!
//! Output reaches the framebuffer's character grid at once, but its pixels are drawn in
//! bounded steps ([`TextConsole::draw_step`]), so that the kernel never keeps interrupts
//! masked for long because of the screen. The `write` syscall draws its own output with
//! preemption points between the steps ([`draw_in_steps`]); everything else the kernel
//! prints (its log, input echo) is drawn by a background task, one step each time the
//! executor runs it. During boot, before that task exists, output is drawn at once; a panic
//! draws its message at once too.
pub mod input;
pub mod line_discipline;
mod logger;

use core::fmt::{self, Write};
use core::future;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::Poll;

use bootloader_api::info::{FrameBuffer, PixelFormat as BootPixelFormat};
use futures_util::task::AtomicWaker;
use spin::{Mutex, MutexGuard};

use crate::arch::x86_64::{cpu, serial};
use crate::drivers::framebuffer::{Cell, Geometry, PixelFormat, TextConsole};
use crate::task::executor;

/// Most character cells of the screen: 182 x 45 for 1280x720 with the 7x16 font, and room
/// for screens four times that size; a larger screen shows fewer rows.
const MAX_SCREEN_CELLS: usize = 32 * 1024;

/// The grid's storage, handed to the console once (zero bytes, so it costs no image space).
static SCREEN_CELLS: Mutex<[Cell; MAX_SCREEN_CELLS]> = Mutex::new([Cell::UNUSED; MAX_SCREEN_CELLS]);
static SCREEN: Mutex<Option<TextConsole<'static>>> = Mutex::new(None);
/// Wakes the background drawing task.
static DRAWER: AtomicWaker = AtomicWaker::new();
/// Whether the background drawing task runs; until then kernel output is drawn at once.
static DRAWING_IN_BACKGROUND: AtomicBool = AtomicBool::new(false);

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
    // The storage is taken once and for good; a second framebuffer finds it gone.
    let cells = MutexGuard::leak(SCREEN_CELLS.try_lock()?);
    let mut console = TextConsole::new(framebuffer.buffer_mut(), cells, geometry);
    console.draw_all();
    let size = ScreenSize { width: info.width, height: info.height, columns: console.columns(), rows: console.rows() };
    cpu::without_interrupts(|| *SCREEN.lock() = Some(console));
    Some(size)
}

/// Writes raw bytes (UTF-8 text, possibly with ANSI colour sequences) to both consoles; the
/// framebuffer's pixels follow soon (see the module documentation).
pub fn write_bytes(bytes: &[u8]) {
    write_bytes_undrawn(bytes);
    draw_soon();
}

/// Writes raw bytes to the serial console and to the framebuffer's character grid, leaving
/// its pixels to the caller's [`draw_in_steps`].
pub fn write_bytes_undrawn(bytes: &[u8]) {
    cpu::without_interrupts(|| {
        serial::write_bytes(bytes);
        if let Some(screen) = SCREEN.lock().as_mut() {
            screen.write_bytes(bytes);
        }
    });
}

/// Brings the framebuffer up to date in bounded steps, calling `may_continue` before each
/// step (the `write` syscall passes its preemption point). When it returns false, the rest
/// is left to the background task.
pub fn draw_in_steps(mut may_continue: impl FnMut() -> bool) {
    let mut more = !is_drawn();
    while more {
        if !may_continue() {
            DRAWER.wake();
            return;
        }
        more = draw_step();
    }
}

fn is_drawn() -> bool {
    cpu::without_interrupts(|| SCREEN.lock().as_ref().is_none_or(TextConsole::is_drawn))
}

/// One bounded step of drawing; returns whether more is left.
fn draw_step() -> bool {
    cpu::without_interrupts(|| SCREEN.lock().as_mut().is_some_and(TextConsole::draw_step))
}

/// Has kernel output drawn: by the background task once it runs, at once before that.
fn draw_soon() {
    if DRAWING_IN_BACKGROUND.load(Ordering::Relaxed) {
        DRAWER.wake();
    } else {
        cpu::without_interrupts(|| {
            if let Some(screen) = SCREEN.lock().as_mut() {
                screen.draw_all();
            }
        });
    }
}

/// Starts the executor task that draws kernel output (and whatever a `write` cut short left
/// undrawn), one bounded step each time the executor polls it. From now on, kernel output
/// is no longer drawn at once.
pub fn start_drawing_in_background() {
    executor::spawn(future::poll_fn(|context| -> Poll<()> {
        DRAWER.register(context.waker());
        if draw_step() {
            context.waker().wake_by_ref();
        }
        Poll::Pending
    }));
    DRAWING_IN_BACKGROUND.store(true, Ordering::Relaxed);
}

/// Formats into both consoles without drawing; [`print_fmt`] draws once at the end.
struct Undrawn;

impl Write for Undrawn {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_bytes_undrawn(text.as_bytes());
        crate::log_ring::append(text.as_bytes());
        Ok(())
    }
}

/// Formats to both consoles and the log ring; the body of [`print!`](crate::print).
pub fn print_fmt(args: fmt::Arguments) {
    cpu::without_interrupts(|| {
        // Formatting can call `write_str` many times; holding the interrupts off for the
        // whole message keeps it from interleaving with an interrupt handler's output.
        let _ = Undrawn.write_fmt(args);
    });
    draw_soon();
}

/// Writes what a holder of the Log handle wrote: to the serial console and the log ring.
pub fn write_log(bytes: &[u8]) {
    cpu::without_interrupts(|| serial::write_bytes(bytes));
    crate::log_ring::append(bytes);
}

/// Writes a panic message to both consoles without waiting for a lock a dead context holds,
/// and draws it at once.
pub fn print_panic(args: fmt::Arguments) {
    struct PanicSink<'lock> {
        screen: Option<MutexGuard<'lock, Option<TextConsole<'static>>>>,
    }
    impl Write for PanicSink<'_> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            serial::write_bytes_for_panic(text.as_bytes());
            if let Some(screen) = self.screen.as_mut().and_then(|screen| screen.as_mut()) {
                screen.write_bytes(text.as_bytes());
            }
            Ok(())
        }
    }
    let mut sink = PanicSink { screen: SCREEN.try_lock() };
    let _ = sink.write_fmt(args);
    if let Some(screen) = sink.screen.as_mut().and_then(|screen| screen.as_mut()) {
        screen.draw_all();
    }
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

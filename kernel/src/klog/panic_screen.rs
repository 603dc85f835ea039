//! The kernel's last words on the screen: a panic paints its text on the framebuffer, white
//! on black from the top-left corner, wrapping long lines and stopping at the bottom. It is
//! a painter only (no scrolling, no colours, no escape sequences, which it skips): the
//! console server owns the screen until then.
//!
//! The framebuffer is taken with `try_lock`, so a panic in the middle of painting (or while
//! boot keeps the framebuffer) paints nothing rather than waiting.

use core::fmt;

use bootloader_api::info::{FrameBuffer, PixelFormat};
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};
use spin::Mutex;

const WEIGHT: FontWeight = FontWeight::Regular;
const HEIGHT: RasterHeight = RasterHeight::Size16;
const CELL_WIDTH: usize = get_raster_width(WEIGHT, HEIGHT);
const CELL_HEIGHT: usize = HEIGHT.val();

/// The framebuffer and where the next character goes.
struct PanicScreen {
    pixels: &'static mut [u8],
    width: usize,
    height: usize,
    stride: usize,
    bytes_per_pixel: usize,
    column: usize,
    row: usize,
    /// Cleared at the first character painted.
    cleared: bool,
    /// Inside an escape sequence, which is skipped.
    in_escape: bool,
}

static SCREEN: Mutex<Option<PanicScreen>> = Mutex::new(None);

/// The screen's size, for the boot log.
#[derive(Clone, Copy, Debug)]
pub struct ScreenSize {
    width: usize,
    height: usize,
}

impl fmt::Display for ScreenSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{} pixels", self.width, self.height)
    }
}

/// Keeps `framebuffer` for panics; `None` if its pixel format is unknown.
pub fn keep(framebuffer: &'static mut FrameBuffer) -> Option<ScreenSize> {
    let info = framebuffer.info();
    if !matches!(info.pixel_format, PixelFormat::Rgb | PixelFormat::Bgr | PixelFormat::U8) {
        return None;
    }
    let screen = PanicScreen {
        pixels: framebuffer.buffer_mut(),
        width: info.width,
        height: info.height,
        stride: info.stride,
        bytes_per_pixel: info.bytes_per_pixel,
        column: 0,
        row: 0,
        cleared: false,
        in_escape: false,
    };
    *SCREEN.lock() = Some(screen);
    Some(ScreenSize { width: info.width, height: info.height })
}

/// Paints `bytes` (UTF-8 text) after what was painted before.
pub fn paint(bytes: &[u8]) {
    let Some(mut guard) = SCREEN.try_lock() else { return };
    let Some(screen) = guard.as_mut() else { return };
    for character in core::str::from_utf8(bytes).unwrap_or("?").chars() {
        screen.put(character);
    }
}

impl PanicScreen {
    fn columns(&self) -> usize {
        self.width / CELL_WIDTH
    }

    fn rows(&self) -> usize {
        self.height / CELL_HEIGHT
    }

    fn put(&mut self, character: char) {
        if !self.cleared {
            self.pixels.fill(0);
            self.cleared = true;
        }
        if self.in_escape {
            // An escape sequence ends with a letter.
            self.in_escape = !character.is_ascii_alphabetic();
            return;
        }
        match character {
            '\x1b' => self.in_escape = true,
            '\n' => self.new_line(),
            '\r' => self.column = 0,
            character if character.is_control() => {}
            character => {
                if self.column >= self.columns() {
                    self.new_line();
                }
                if self.row < self.rows() {
                    self.draw(character);
                    self.column += 1;
                }
            }
        }
    }

    fn new_line(&mut self) {
        self.column = 0;
        self.row += 1;
    }

    fn draw(&mut self, character: char) {
        let Some(glyph) = get_raster(character, WEIGHT, HEIGHT).or_else(|| get_raster('?', WEIGHT, HEIGHT)) else { return };
        for (y, line) in glyph.rows().enumerate() {
            for (x, &intensity) in line.iter().enumerate() {
                let pixel = (self.row * CELL_HEIGHT + y) * self.stride + self.column * CELL_WIDTH + x;
                let start = pixel * self.bytes_per_pixel;
                // Grey (or white) on black: every colour byte gets the same value.
                let colours = self.bytes_per_pixel.min(3);
                if let Some(bytes) = self.pixels.get_mut(start..start + colours) {
                    bytes.fill(intensity);
                }
            }
        }
    }
}

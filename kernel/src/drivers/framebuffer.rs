//! Framebuffer text console: turns a byte stream (UTF-8 text, C0 control bytes and ANSI escape
//! sequences) into glyphs drawn on a linear framebuffer, like a small VT100-style terminal. This
//! module owns the pixel encoding (RGB, BGR, grey; any bytes per pixel and row stride), glyph
//! rendering from the Noto Sans Mono bitmap font, the cursor, scrolling, the 16-colour palette
//! and the subset of escape sequences the kernel and user programs rely on. It only sees the
//! framebuffer as a byte slice plus its [`Geometry`]; the boot code converts the bootloader's
//! description into that geometry.

use core::fmt;
use core::ops::Range;

use noto_sans_mono_bitmap::{
    FontWeight, RasterHeight, RasterizedChar, get_raster, get_raster_width,
};
use vte::{Params, ParamsIter, Parser, Perform};

/// Pixel layout of a linear framebuffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Visible pixels per row.
    pub width: usize,
    /// Visible pixel rows.
    pub height: usize,
    /// Pixels from the start of one row to the start of the next (at least `width`).
    pub stride: usize,
    /// Bytes that encode one pixel.
    pub bytes_per_pixel: usize,
    /// Order and meaning of the colour bytes inside a pixel.
    pub format: PixelFormat,
}

/// Order and meaning of the colour bytes of one pixel. A fourth byte (the padding of 32-bit
/// pixels) is written as zero; any further bytes are left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red.
    Bgr,
    /// A single luminance byte.
    Gray,
}

const FONT_WEIGHT: FontWeight = FontWeight::Regular;
const FONT_HEIGHT: RasterHeight = RasterHeight::Size16;
/// Width of one text cell in pixels (the font is monospaced).
const CELL_WIDTH: usize = get_raster_width(FONT_WEIGHT, FONT_HEIGHT);
/// Height of one text cell in pixels.
const CELL_HEIGHT: usize = FONT_HEIGHT.val();
const TAB_WIDTH: usize = 8;
/// Most bytes written per pixel; wider pixels keep their remaining bytes.
const ENCODED_BYTES: usize = 4;

/// Drawn for characters the font lacks. Looked up at compile time, so a missing glyph is a
/// build error rather than a runtime failure.
const REPLACEMENT_GLYPH: RasterizedChar =
    match get_raster(char::REPLACEMENT_CHARACTER, FONT_WEIGHT, FONT_HEIGHT) {
        Some(glyph) => glyph,
        None => panic!("the font must contain U+FFFD"),
    };

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rgb {
    red: u8,
    green: u8,
    blue: u8,
}

const fn rgb(red: u8, green: u8, blue: u8) -> Rgb {
    Rgb { red, green, blue }
}

/// The classic 16-colour VGA palette: eight normal colours, then their bright variants.
const PALETTE: [Rgb; 16] = [
    rgb(0, 0, 0),
    rgb(170, 0, 0),
    rgb(0, 170, 0),
    rgb(170, 85, 0),
    rgb(0, 0, 170),
    rgb(170, 0, 170),
    rgb(0, 170, 170),
    rgb(170, 170, 170),
    rgb(85, 85, 85),
    rgb(255, 85, 85),
    rgb(85, 255, 85),
    rgb(255, 255, 85),
    rgb(85, 85, 255),
    rgb(255, 85, 255),
    rgb(85, 255, 255),
    rgb(255, 255, 255),
];
const BRIGHT_OFFSET: u8 = 8;

/// Colours selected by SGR escape sequences, as palette indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Style {
    foreground: u8,
    background: u8,
    bold: bool,
}

impl Style {
    /// Light grey on black.
    const DEFAULT: Self = Self {
        foreground: 7,
        background: 0,
        bold: false,
    };

    fn foreground_colour(self) -> Rgb {
        let index = if self.bold && self.foreground < BRIGHT_OFFSET {
            self.foreground + BRIGHT_OFFSET
        } else {
            self.foreground
        };
        PALETTE[usize::from(index)]
    }

    fn background_colour(self) -> Rgb {
        PALETTE[usize::from(self.background)]
    }
}

/// The encoded bytes of one pixel, of which the first `bytes_per_pixel` (at most
/// [`ENCODED_BYTES`]) are written.
type EncodedPixel = [u8; ENCODED_BYTES];

fn encode(format: PixelFormat, colour: Rgb) -> EncodedPixel {
    let Rgb { red, green, blue } = colour;
    match format {
        PixelFormat::Rgb => [red, green, blue, 0],
        PixelFormat::Bgr => [blue, green, red, 0],
        PixelFormat::Gray => {
            // ITU-R BT.601 luma weights scaled to 256.
            let luma = (77 * u32::from(red) + 150 * u32::from(green) + 29 * u32::from(blue)) >> 8;
            let luma = u8::try_from(luma).unwrap_or(u8::MAX);
            [luma, luma, luma, 0]
        }
    }
}

/// Mixes `foreground` over `background` by a glyph coverage of `intensity` (0..=255).
fn blend(foreground: Rgb, background: Rgb, intensity: u8) -> Rgb {
    let mix = |front: u8, back: u8| {
        let coverage = u16::from(intensity);
        let mixed = (u16::from(front) * coverage + u16::from(back) * (255 - coverage) + 127) / 255;
        u8::try_from(mixed).unwrap_or(u8::MAX)
    };
    Rgb {
        red: mix(foreground.red, background.red),
        green: mix(foreground.green, background.green),
        blue: mix(foreground.blue, background.blue),
    }
}

fn write_pixel(pixel: &mut [u8], encoded: EncodedPixel) {
    let count = pixel.len().min(ENCODED_BYTES);
    pixel[..count].copy_from_slice(&encoded[..count]);
}

/// The part of the framebuffer the console draws into, clamped so that every pixel of it lies
/// inside the buffer it was given.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Pixels per row that are drawn.
    width: usize,
    /// Pixel rows that are drawn.
    height: usize,
    bytes_per_row: usize,
    bytes_per_pixel: usize,
    format: PixelFormat,
    columns: usize,
    rows: usize,
}

impl Layout {
    fn new(buffer_len: usize, geometry: Geometry) -> Self {
        let bytes_per_pixel = geometry.bytes_per_pixel;
        let width = geometry.width.min(geometry.stride);
        let bytes_per_row = geometry.stride.checked_mul(bytes_per_pixel).unwrap_or(0);
        // `width <= stride`, so this cannot overflow when `bytes_per_row` did not.
        let visible_bytes_per_row = if bytes_per_row == 0 {
            0
        } else {
            width * bytes_per_pixel
        };
        // The last row only needs its visible part, not the padding up to the stride.
        let height = if visible_bytes_per_row == 0 || buffer_len < visible_bytes_per_row {
            0
        } else {
            geometry
                .height
                .min((buffer_len - visible_bytes_per_row) / bytes_per_row + 1)
        };
        let width = if height == 0 { 0 } else { width };
        Self {
            width,
            height,
            bytes_per_row,
            bytes_per_pixel,
            format: geometry.format,
            columns: width / CELL_WIDTH,
            rows: height / CELL_HEIGHT,
        }
    }

    fn has_cells(&self) -> bool {
        self.columns > 0 && self.rows > 0
    }

    /// Byte range of pixels `x` (`x.start <= x.end <= width`) in pixel row `y < height`.
    fn span(&self, x: Range<usize>, y: usize) -> Range<usize> {
        let row_start = y * self.bytes_per_row;
        row_start + x.start * self.bytes_per_pixel..row_start + x.end * self.bytes_per_pixel
    }

    fn cell_columns(column: usize) -> Range<usize> {
        column * CELL_WIDTH..(column + 1) * CELL_WIDTH
    }

    fn cell_rows(row: usize) -> Range<usize> {
        row * CELL_HEIGHT..(row + 1) * CELL_HEIGHT
    }
}

/// The terminal state the escape-sequence parser drives.
struct Screen<'buf> {
    pixels: &'buf mut [u8],
    layout: Layout,
    row: usize,
    /// Column the next character goes to; equal to `layout.columns` after the last column was
    /// written, so the line wraps only once another character arrives.
    column: usize,
    style: Style,
}

impl Screen<'_> {
    /// Column of the cell the cursor is drawn on and edits apply to.
    fn cursor_column(&self) -> usize {
        self.column.min(self.layout.columns.saturating_sub(1))
    }

    fn fill(&mut self, x: Range<usize>, y: Range<usize>, colour: Rgb) {
        let encoded = encode(self.layout.format, colour);
        let bytes_per_pixel = self.layout.bytes_per_pixel;
        let used = &encoded[..bytes_per_pixel.min(ENCODED_BYTES)];
        // Black (and grey levels of grey-scale pixels) are one repeated byte: a plain memset.
        let uniform_byte =
            bytes_per_pixel <= ENCODED_BYTES && used.iter().all(|&byte| byte == used[0]);
        for pixel_row in y {
            let span = &mut self.pixels[self.layout.span(x.clone(), pixel_row)];
            if uniform_byte {
                span.fill(used[0]);
            } else {
                span.chunks_exact_mut(bytes_per_pixel)
                    .for_each(|pixel| write_pixel(pixel, encoded));
            }
        }
    }

    fn clear_all(&mut self) {
        let (width, height) = (self.layout.width, self.layout.height);
        self.fill(0..width, 0..height, self.style.background_colour());
    }

    /// Inverts every byte of the cursor's cell; doing it twice restores the cell exactly.
    fn toggle_cursor(&mut self) {
        if !self.layout.has_cells() {
            return;
        }
        let x = Layout::cell_columns(self.cursor_column());
        for pixel_row in Layout::cell_rows(self.row) {
            let span = self.layout.span(x.clone(), pixel_row);
            self.pixels[span].iter_mut().for_each(|byte| *byte = !*byte);
        }
    }

    fn draw_glyph(&mut self, glyph: RasterizedChar) {
        let foreground = self.style.foreground_colour();
        let background = self.style.background_colour();
        let format = self.layout.format;
        // Most glyph pixels are fully off or fully on; only the edges need blending.
        let encoded_foreground = encode(format, foreground);
        let encoded_background = encode(format, background);
        let x = Layout::cell_columns(self.column);
        for (pixel_row, intensities) in Layout::cell_rows(self.row).zip(glyph.rows()) {
            let span = &mut self.pixels[self.layout.span(x.clone(), pixel_row)];
            for (pixel, &intensity) in span
                .chunks_exact_mut(self.layout.bytes_per_pixel)
                .zip(intensities)
            {
                let encoded = match intensity {
                    0 => encoded_background,
                    u8::MAX => encoded_foreground,
                    _ => encode(format, blend(foreground, background, intensity)),
                };
                write_pixel(pixel, encoded);
            }
        }
    }

    fn put_char(&mut self, character: char) {
        if self.column >= self.layout.columns {
            self.column = 0;
            self.line_feed();
        }
        let glyph = get_raster(character, FONT_WEIGHT, FONT_HEIGHT).unwrap_or(REPLACEMENT_GLYPH);
        self.draw_glyph(glyph);
        self.column += 1;
    }

    fn line_feed(&mut self) {
        if self.row + 1 < self.layout.rows {
            self.row += 1;
        } else {
            self.scroll_up();
        }
    }

    /// Moves every text row up by one with a single memmove and clears the bottom row.
    fn scroll_up(&mut self) {
        let rows = self.layout.rows;
        if rows > 1 {
            let text_row_bytes = CELL_HEIGHT * self.layout.bytes_per_row;
            let end = self
                .layout
                .span(0..self.layout.width, rows * CELL_HEIGHT - 1)
                .end;
            self.pixels.copy_within(text_row_bytes..end, 0);
        }
        let width = self.layout.width;
        self.fill(
            0..width,
            Layout::cell_rows(rows - 1),
            self.style.background_colour(),
        );
    }

    /// Moves one column left; at the start of a line, to the last column of the line above, so
    /// that a line editor's "\x08 \x08" also erases across a wrapped line.
    fn backspace(&mut self) {
        if self.column > 0 {
            self.column -= 1;
        } else if self.row > 0 {
            self.row -= 1;
            self.column = self.layout.columns - 1;
        }
    }

    fn tab(&mut self) {
        let next_stop = (self.cursor_column() / TAB_WIDTH + 1) * TAB_WIDTH;
        self.column = next_stop.min(self.layout.columns - 1);
    }

    /// Erases part of the cursor's line: 0 from the cursor on, 1 up to the cursor, 2 all of it.
    fn erase_in_line(&mut self, mode: u16) {
        let cursor_x = Layout::cell_columns(self.cursor_column());
        let x = match mode {
            0 => cursor_x.start..self.layout.width,
            1 => 0..cursor_x.end,
            2 => 0..self.layout.width,
            _ => return,
        };
        self.fill(
            x,
            Layout::cell_rows(self.row),
            self.style.background_colour(),
        );
    }

    /// Erases part of the screen: 0 from the cursor on, 1 up to the cursor, 2 all of it (and
    /// moves the cursor home).
    fn erase_in_display(&mut self, mode: u16) {
        let width = self.layout.width;
        let background = self.style.background_colour();
        let cursor_rows = Layout::cell_rows(self.row);
        match mode {
            0 => {
                self.erase_in_line(0);
                let below = cursor_rows.end..self.layout.rows * CELL_HEIGHT;
                self.fill(0..width, below, background);
            }
            1 => {
                self.erase_in_line(1);
                self.fill(0..width, 0..cursor_rows.start, background);
            }
            2 => {
                self.clear_all();
                self.row = 0;
                self.column = 0;
            }
            _ => {}
        }
    }

    fn move_to(&mut self, row: usize, column: usize) {
        self.row = row.min(self.layout.rows - 1);
        self.column = column.min(self.layout.columns - 1);
    }

    fn select_graphic_rendition(&mut self, params: &Params) {
        if params.is_empty() {
            self.style = Style::DEFAULT;
            return;
        }
        let mut params = params.iter();
        while let Some(param) = params.next() {
            let code = param.first().copied().unwrap_or(0);
            // Called only by the arms whose range starts at `base`, so it cannot underflow.
            let offset_from = |base: u16| u8::try_from(code - base).unwrap_or(0);
            match code {
                0 => self.style = Style::DEFAULT,
                1 => self.style.bold = true,
                22 => self.style.bold = false,
                30..=37 => self.style.foreground = offset_from(30),
                39 => self.style.foreground = Style::DEFAULT.foreground,
                40..=47 => self.style.background = offset_from(40),
                49 => self.style.background = Style::DEFAULT.background,
                90..=97 => self.style.foreground = offset_from(90) + BRIGHT_OFFSET,
                100..=107 => self.style.background = offset_from(100) + BRIGHT_OFFSET,
                // The colon form carries its arguments as sub-parameters of this parameter.
                38 | 48 if param.len() == 1 => skip_extended_colour(&mut params),
                _ => {}
            }
        }
    }
}

/// Skips the arguments of an unsupported `38;5;n` or `38;2;r;g;b` colour so that they are not
/// read as SGR codes of their own.
fn skip_extended_colour(params: &mut ParamsIter<'_>) {
    const INDEXED: u16 = 5;
    const DIRECT: u16 = 2;
    match params.next().and_then(|kind| kind.first().copied()) {
        Some(INDEXED) => {
            params.next();
        }
        Some(DIRECT) => {
            params.nth(2);
        }
        _ => {}
    }
}

/// The first parameter of a control sequence, 0 when absent.
fn first_param(params: &Params) -> u16 {
    nth_param(params, 0)
}

fn nth_param(params: &Params, index: usize) -> u16 {
    params
        .iter()
        .nth(index)
        .and_then(|param| param.first().copied())
        .unwrap_or(0)
}

/// A movement count: absent or 0 means 1.
fn count_param(params: &Params) -> usize {
    usize::from(first_param(params).max(1))
}

impl Perform for Screen<'_> {
    fn print(&mut self, character: char) {
        if self.layout.has_cells() {
            self.put_char(character);
        }
    }

    fn execute(&mut self, byte: u8) {
        if !self.layout.has_cells() {
            return;
        }
        match byte {
            // Line feed, vertical tab and form feed all start a new line.
            b'\n' | 0x0b | 0x0c => {
                self.column = 0;
                self.line_feed();
            }
            b'\r' => self.column = 0,
            0x08 => self.backspace(),
            b'\t' => self.tab(),
            _ => {}
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: char) {
        // Private sequences such as `ESC [ ? 25 l` carry intermediates; none are supported.
        if ignore || !intermediates.is_empty() || !self.layout.has_cells() {
            return;
        }
        let row = self.row;
        let column = self.cursor_column();
        match action {
            'm' => self.select_graphic_rendition(params),
            'K' => self.erase_in_line(first_param(params)),
            'J' => self.erase_in_display(first_param(params)),
            'H' | 'f' => {
                let target_row = usize::from(nth_param(params, 0)).saturating_sub(1);
                let target_column = usize::from(nth_param(params, 1)).saturating_sub(1);
                self.move_to(target_row, target_column);
            }
            'A' => self.move_to(row.saturating_sub(count_param(params)), column),
            'B' => self.move_to(row.saturating_add(count_param(params)), column),
            'C' => self.move_to(row, column.saturating_add(count_param(params))),
            'D' => self.move_to(row, column.saturating_sub(count_param(params))),
            _ => {}
        }
    }
}

/// A text terminal drawn on a linear framebuffer; see the module documentation.
pub struct TextConsole<'buf> {
    parser: Parser,
    screen: Screen<'buf>,
}

impl<'buf> TextConsole<'buf> {
    /// Takes over `buffer`, laid out as `geometry`, and clears it. Rows or columns that do not
    /// fit into `buffer` are left out.
    pub fn new(buffer: &'buf mut [u8], geometry: Geometry) -> Self {
        let layout = Layout::new(buffer.len(), geometry);
        let mut screen = Screen {
            pixels: buffer,
            layout,
            row: 0,
            column: 0,
            style: Style::DEFAULT,
        };
        screen.clear_all();
        screen.toggle_cursor();
        Self {
            parser: Parser::new(),
            screen,
        }
    }

    /// Feeds terminal input: UTF-8 text, control bytes and ANSI escape sequences, possibly split
    /// anywhere across calls.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        self.screen.toggle_cursor();
        self.parser.advance(&mut self.screen, bytes);
        self.screen.toggle_cursor();
    }

    /// Text columns on the screen.
    pub fn columns(&self) -> usize {
        self.screen.layout.columns
    }

    /// Text rows on the screen.
    pub fn rows(&self) -> usize {
        self.screen.layout.rows
    }
}

impl fmt::Write for TextConsole<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.write_bytes(text.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    const COLUMNS: usize = 10;
    const ROWS: usize = 4;
    const BLACK: u8 = 0;
    /// A black pixel under the cursor, which inverts its cell.
    const INVERTED_BLACK: u8 = 0xff;

    fn geometry(format: PixelFormat, bytes_per_pixel: usize, padding: usize) -> Geometry {
        let width = COLUMNS * CELL_WIDTH;
        Geometry {
            width,
            height: ROWS * CELL_HEIGHT,
            stride: width + padding,
            bytes_per_pixel,
            format,
        }
    }

    fn bgr() -> Geometry {
        geometry(PixelFormat::Bgr, 3, 0)
    }

    fn buffer_for(geometry: Geometry) -> Vec<u8> {
        vec![BLACK; geometry.stride * geometry.height * geometry.bytes_per_pixel]
    }

    /// The framebuffer after writing `input` to a fresh console.
    fn render(geometry: Geometry, input: &[u8]) -> Vec<u8> {
        let mut buffer = buffer_for(geometry);
        TextConsole::new(&mut buffer, geometry).write_bytes(input);
        buffer
    }

    fn pixel_offset(geometry: Geometry, x: usize, y: usize) -> usize {
        (y * geometry.stride + x) * geometry.bytes_per_pixel
    }

    fn in_cell(x: usize, y: usize, row: usize, column: usize) -> bool {
        x / CELL_WIDTH == column && y / CELL_HEIGHT == row
    }

    /// The bytes of text cell (`row`, `column`), pixel row by pixel row.
    fn cell(buffer: &[u8], geometry: Geometry, row: usize, column: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for y in Layout::cell_rows(row) {
            let start = pixel_offset(geometry, column * CELL_WIDTH, y);
            bytes.extend_from_slice(&buffer[start..start + CELL_WIDTH * geometry.bytes_per_pixel]);
        }
        bytes
    }

    /// The cell at home after writing `text` alone: its glyph, without the cursor.
    fn glyph(geometry: Geometry, text: &str) -> Vec<u8> {
        cell(&render(geometry, text.as_bytes()), geometry, 0, 0)
    }

    fn is_blank(cell: &[u8]) -> bool {
        cell.iter().all(|&byte| byte == BLACK)
    }

    fn is_cursor_on_blank(cell: &[u8]) -> bool {
        cell.iter().all(|&byte| byte == INVERTED_BLACK)
    }

    fn inverted(cell: &[u8]) -> Vec<u8> {
        cell.iter().map(|byte| !byte).collect()
    }

    #[test]
    fn new_clears_the_screen_and_shows_the_cursor_at_home() {
        let geometry = bgr();
        let mut buffer = vec![0xaa; geometry.stride * geometry.height * 3];
        TextConsole::new(&mut buffer, geometry);
        assert!(is_cursor_on_blank(&cell(&buffer, geometry, 0, 0)));
        for row in 0..ROWS {
            for column in 0..COLUMNS {
                if (row, column) != (0, 0) {
                    assert!(
                        is_blank(&cell(&buffer, geometry, row, column)),
                        "cell {row},{column}"
                    );
                }
            }
        }
    }

    #[test]
    fn columns_and_rows_follow_the_geometry() {
        let geometry = Geometry {
            width: 1280,
            height: 720,
            stride: 1280,
            bytes_per_pixel: 3,
            format: PixelFormat::Bgr,
        };
        let mut buffer = vec![0; 1280 * 720 * 3];
        let console = TextConsole::new(&mut buffer, geometry);
        assert_eq!(
            (console.columns(), console.rows()),
            (1280 / CELL_WIDTH, 720 / CELL_HEIGHT)
        );
    }

    #[test]
    fn printed_character_changes_only_its_cell_and_the_cursor_cell() {
        let geometry = bgr();
        let before = render(geometry, b"");
        let after = render(geometry, b"A");
        let glyph_cell = cell(&after, geometry, 0, 0);
        assert!(
            glyph_cell.iter().any(|&byte| byte != BLACK),
            "the glyph draws something"
        );
        assert!(glyph_cell.contains(&BLACK), "the glyph is not a block");
        assert!(
            is_cursor_on_blank(&cell(&after, geometry, 0, 1)),
            "the cursor moved on"
        );
        for y in 0..geometry.height {
            for x in 0..geometry.width {
                if !in_cell(x, y, 0, 0) && !in_cell(x, y, 0, 1) {
                    let offset = pixel_offset(geometry, x, y);
                    assert_eq!(
                        before[offset..offset + 3],
                        after[offset..offset + 3],
                        "pixel {x},{y}"
                    );
                }
            }
        }
    }

    #[test]
    fn newline_moves_output_to_the_start_of_the_next_row() {
        let geometry = bgr();
        let buffer = render(geometry, b"AB\nC");
        assert_eq!(cell(&buffer, geometry, 0, 0), glyph(geometry, "A"));
        assert_eq!(cell(&buffer, geometry, 1, 0), glyph(geometry, "C"));
        assert!(is_cursor_on_blank(&cell(&buffer, geometry, 1, 1)));
    }

    #[test]
    fn carriage_return_moves_to_column_zero_of_the_same_row() {
        let geometry = bgr();
        let buffer = render(geometry, b"AB\rC");
        assert_eq!(cell(&buffer, geometry, 0, 0), glyph(geometry, "C"));
        assert_eq!(
            cell(&buffer, geometry, 0, 1),
            inverted(&glyph(geometry, "B")),
            "cursor on the B"
        );
    }

    #[test]
    fn printing_one_line_more_than_the_rows_scrolls_up_one_row() {
        let geometry = bgr();
        let buffer = render(geometry, b"AAA\nB\nC\nD\nE");
        let a = glyph(geometry, "A");
        for row in 0..ROWS {
            for column in 0..COLUMNS {
                assert_ne!(
                    cell(&buffer, geometry, row, column),
                    a,
                    "the first line is gone"
                );
            }
        }
        assert_eq!(
            cell(&buffer, geometry, 0, 0),
            glyph(geometry, "B"),
            "second line on top"
        );
        assert!(is_blank(&cell(&buffer, geometry, 0, 1)));
        assert_eq!(cell(&buffer, geometry, 1, 0), glyph(geometry, "C"));
        assert_eq!(cell(&buffer, geometry, 2, 0), glyph(geometry, "D"));
        assert_eq!(
            cell(&buffer, geometry, ROWS - 1, 0),
            glyph(geometry, "E"),
            "newest line last"
        );
    }

    #[test]
    fn row_scrolled_in_at_the_bottom_is_blank() {
        let geometry = bgr();
        let buffer = render(geometry, b"A\nB\nC\nDDD\n");
        assert_eq!(cell(&buffer, geometry, ROWS - 2, 2), glyph(geometry, "D"));
        assert!(is_cursor_on_blank(&cell(&buffer, geometry, ROWS - 1, 0)));
        for column in 1..COLUMNS {
            assert!(
                is_blank(&cell(&buffer, geometry, ROWS - 1, column)),
                "column {column}"
            );
        }
    }

    /// The lit pixels (any non-zero byte) of a cell in 3-byte pixels.
    fn lit_pixels(cell: &[u8]) -> Vec<[u8; 3]> {
        cell.as_chunks::<3>()
            .0
            .iter()
            .copied()
            .filter(|pixel| pixel.iter().any(|&byte| byte != 0))
            .collect()
    }

    #[test]
    fn sgr_31_draws_red_glyph_pixels_in_rgb_and_bgr_byte_order() {
        let rgb = geometry(PixelFormat::Rgb, 3, 0);
        let red_rgb = glyph(rgb, "\x1b[31mA");
        let lit = lit_pixels(&red_rgb);
        assert!(!lit.is_empty());
        assert!(
            lit.iter()
                .all(|&[red, green, blue]| red > 0 && green == 0 && blue == 0)
        );

        let red_bgr = glyph(bgr(), "\x1b[31mA");
        let swapped: Vec<u8> = red_bgr
            .as_chunks::<3>()
            .0
            .iter()
            .flat_map(|&[blue, green, red]| [red, green, blue])
            .collect();
        assert_eq!(swapped, red_rgb);
    }

    #[test]
    fn bold_selects_the_bright_colour_and_resets_restore_the_default() {
        let rgb = geometry(PixelFormat::Rgb, 3, 0);
        let brightest_red = |text: &str| lit_pixels(&glyph(rgb, text)).iter().map(|p| p[0]).max();
        assert_eq!(brightest_red("\x1b[1;31mA"), Some(255));
        assert_eq!(brightest_red("\x1b[31mA"), Some(170));
        assert_eq!(brightest_red("\x1b[91mA"), Some(255));
        assert_eq!(glyph(rgb, "\x1b[1;31m\x1b[22mA"), glyph(rgb, "\x1b[31mA"));
        let default = glyph(rgb, "A");
        assert_eq!(glyph(rgb, "\x1b[1;31;44m\x1b[0mA"), default);
        assert_eq!(glyph(rgb, "\x1b[1;31;44m\x1b[mA"), default);
        assert_eq!(glyph(rgb, "\x1b[31;44m\x1b[39;49mA"), default);
    }

    #[test]
    fn background_colours_fill_the_cell() {
        let rgb = geometry(PixelFormat::Rgb, 3, 0);
        let all_pixels_are = |cell: Vec<u8>, colour: [u8; 3]| {
            cell.as_chunks::<3>().0.iter().all(|&pixel| pixel == colour)
        };
        assert!(all_pixels_are(glyph(rgb, "\x1b[44m "), [0, 0, 170]));
        assert!(all_pixels_are(glyph(rgb, "\x1b[104m "), [85, 85, 255]));
    }

    #[test]
    fn three_and_four_bytes_per_pixel_work_and_stride_padding_is_untouched() {
        const SENTINEL: u8 = 0x5a;
        const PADDING: usize = 5;
        let mut glyphs = Vec::new();
        for bytes_per_pixel in [3, 4] {
            let geometry = geometry(PixelFormat::Bgr, bytes_per_pixel, PADDING);
            let mut buffer = vec![SENTINEL; geometry.stride * geometry.height * bytes_per_pixel];
            TextConsole::new(&mut buffer, geometry).write_bytes(b"\x1b[47m\x1b[2JA");
            for y in 0..geometry.height {
                for x in 0..geometry.stride {
                    let offset = pixel_offset(geometry, x, y);
                    let pixel = &buffer[offset..offset + bytes_per_pixel];
                    if x >= geometry.width {
                        assert!(
                            pixel.iter().all(|&byte| byte == SENTINEL),
                            "padding {x},{y}"
                        );
                    } else if !in_cell(x, y, 0, 0) && !in_cell(x, y, 0, 1) {
                        assert_eq!(pixel[..3], [170, 170, 170], "background {x},{y}");
                    }
                }
            }
            let a: Vec<u8> = cell(&buffer, geometry, 0, 0)
                .chunks_exact(bytes_per_pixel)
                .flat_map(|pixel| pixel[..3].to_vec())
                .collect();
            glyphs.push(a);
        }
        assert_eq!(glyphs[0], glyphs[1], "the same glyph in both pixel sizes");
    }

    #[test]
    fn gray_pixels_hold_the_luminance() {
        let gray = geometry(PixelFormat::Gray, 1, 0);
        let a = glyph(gray, "A");
        assert_eq!(a.iter().max(), Some(&170), "light grey at full coverage");
        assert!(glyph(gray, "\x1b[47m ").iter().all(|&luma| luma == 170));
    }

    #[test]
    fn backspace_moves_left_without_erasing() {
        let geometry = bgr();
        let buffer = render(geometry, b"A\x08");
        assert_eq!(
            cell(&buffer, geometry, 0, 0),
            inverted(&glyph(geometry, "A")),
            "cursor on the A"
        );
    }

    #[test]
    fn backspace_space_backspace_erases_a_glyph() {
        let geometry = bgr();
        assert_eq!(render(geometry, b"A\x08 \x08"), render(geometry, b""));
    }

    #[test]
    fn backspace_at_the_start_of_a_line_goes_to_the_end_of_the_line_above() {
        let geometry = bgr();
        let buffer = render(geometry, b"\n\x08X");
        // After the last column the cursor stays on it until the next character wraps.
        assert_eq!(
            cell(&buffer, geometry, 0, COLUMNS - 1),
            inverted(&glyph(geometry, "X"))
        );
        assert!(is_blank(&cell(&buffer, geometry, 1, 0)));
        let full_line = "A".repeat(COLUMNS + 1);
        let erased = format!("{full_line}\x08 \x08\x08 \x08");
        let buffer = render(geometry, erased.as_bytes());
        assert!(is_blank(&cell(&buffer, geometry, 1, 0)));
        assert!(is_cursor_on_blank(&cell(&buffer, geometry, 0, COLUMNS - 1)));
        assert_eq!(
            cell(&buffer, geometry, 0, COLUMNS - 2),
            glyph(geometry, "A")
        );
    }

    #[test]
    fn writing_past_the_last_column_wraps_to_the_next_line() {
        let geometry = bgr();
        let text = format!("{}B", "A".repeat(COLUMNS));
        let buffer = render(geometry, text.as_bytes());
        assert_eq!(
            cell(&buffer, geometry, 0, COLUMNS - 1),
            glyph(geometry, "A")
        );
        assert_eq!(cell(&buffer, geometry, 1, 0), glyph(geometry, "B"));
    }

    #[test]
    fn a_full_line_followed_by_newline_leaves_no_empty_line() {
        let geometry = bgr();
        let text = format!("{}\nB", "A".repeat(COLUMNS));
        let buffer = render(geometry, text.as_bytes());
        assert_eq!(cell(&buffer, geometry, 1, 0), glyph(geometry, "B"));
    }

    #[test]
    fn tab_moves_to_the_next_multiple_of_eight_within_the_line() {
        let geometry = bgr();
        let buffer = render(geometry, b"A\tB\tC");
        assert_eq!(cell(&buffer, geometry, 0, 8), glyph(geometry, "B"));
        // The tab stops at the last column; the cursor stays on the C printed there.
        assert_eq!(
            cell(&buffer, geometry, 0, COLUMNS - 1),
            inverted(&glyph(geometry, "C"))
        );
    }

    #[test]
    fn csi_2j_clears_the_screen_and_homes_the_cursor() {
        let geometry = bgr();
        assert_eq!(render(geometry, b"AB\nCD\x1b[2J"), render(geometry, b""));
        let buffer = render(geometry, b"AB\nCD\x1b[2JX");
        assert_eq!(cell(&buffer, geometry, 0, 0), glyph(geometry, "X"));
    }

    #[test]
    fn csi_k_erases_from_the_cursor_to_the_end_of_the_line() {
        let geometry = bgr();
        let buffer = render(geometry, b"ABCD\nE\x1b[A\x1b[C\x1b[K");
        assert_eq!(cell(&buffer, geometry, 0, 0), glyph(geometry, "A"));
        assert_eq!(cell(&buffer, geometry, 0, 1), glyph(geometry, "B"));
        assert!(is_cursor_on_blank(&cell(&buffer, geometry, 0, 2)));
        assert!(is_blank(&cell(&buffer, geometry, 0, 3)));
        assert_eq!(cell(&buffer, geometry, 1, 0), glyph(geometry, "E"));
    }

    #[test]
    fn csi_cursor_movements_go_where_asked_and_are_clamped() {
        let geometry = bgr();
        let x = glyph(geometry, "X");
        let cases: [(&[u8], usize, usize); 8] = [
            (b"\x1b[3;5HX", 2, 4),
            (b"\x1b[99;99HX", ROWS - 1, COLUMNS - 1),
            (b"\x1b[3;3H\x1b[HX", 0, 0),
            (b"\x1b[2;2H\x1b[5AX", 0, 1),
            (b"\x1b[9BX", ROWS - 1, 0),
            (b"\x1b[5C\x1b[2DX", 0, 3),
            (b"\x1b[99CX", 0, COLUMNS - 1),
            (b"ABC\x1b[99DX", 0, 0),
        ];
        for (input, row, column) in cases {
            // Park the cursor on a cell no case prints to.
            let buffer = render(geometry, &[input, b"\x1b[2;8H"].concat());
            assert_eq!(cell(&buffer, geometry, row, column), x, "{input:?}");
        }
    }

    #[test]
    fn characters_missing_from_the_font_render_as_the_replacement_character() {
        let geometry = bgr();
        let replacement = glyph(geometry, "\u{fffd}");
        assert_ne!(replacement, glyph(geometry, " "));
        assert_eq!(glyph(geometry, "é"), replacement);
        assert_eq!(
            cell(&render(geometry, b"\xff"), geometry, 0, 0),
            replacement,
            "invalid UTF-8"
        );
    }

    #[test]
    fn unsupported_sequences_are_ignored() {
        let geometry = bgr();
        let input = b"\x1b[?25l\x1b[5i\x1b]0;title\x07\x1b[38;5;31m\x1b[48;2;1;2;3m\x1b[38:5:31mA";
        assert_eq!(
            cell(&render(geometry, input), geometry, 0, 0),
            glyph(geometry, "A")
        );
    }

    #[test]
    fn escape_sequences_split_across_writes_still_apply() {
        let rgb = geometry(PixelFormat::Rgb, 3, 0);
        let mut buffer = buffer_for(rgb);
        let mut console = TextConsole::new(&mut buffer, rgb);
        console.write_bytes(b"\x1b[3");
        console.write_bytes(b"1mA");
        drop(console);
        assert_eq!(cell(&buffer, rgb, 0, 0), glyph(rgb, "\x1b[31mA"));
    }

    #[test]
    fn fmt_write_prints_formatted_text() {
        let geometry = bgr();
        let mut buffer = buffer_for(geometry);
        write!(TextConsole::new(&mut buffer, geometry), "{}", 7).unwrap();
        assert_eq!(cell(&buffer, geometry, 0, 0), glyph(geometry, "7"));
    }

    /// A small xorshift generator: deterministic test input without dependencies.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A byte biased towards the ones escape sequences are made of.
        fn terminal_byte(&mut self) -> u8 {
            const INTERESTING: &[u8] =
                b"\x1b\x1b\x1b[[[;;0123456789mmHJKABCD?\n\r\t\x08\x07\x18\x9b\xc3\xe2";
            let value = self.next();
            if value % 2 == 0 {
                INTERESTING[(value >> 8) as usize % INTERESTING.len()]
            } else {
                (value >> 8) as u8
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_and_a_reset_restores_a_fresh_screen() {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        let geometries = [
            bgr(),
            geometry(PixelFormat::Rgb, 4, 3),
            geometry(PixelFormat::Gray, 1, 0),
            geometry(PixelFormat::Bgr, 2, 1),
            geometry(PixelFormat::Rgb, 5, 0),
            Geometry {
                width: CELL_WIDTH,
                height: CELL_HEIGHT,
                stride: CELL_WIDTH,
                bytes_per_pixel: 3,
                format: PixelFormat::Bgr,
            },
            Geometry {
                width: 3 * CELL_WIDTH + 2,
                height: CELL_HEIGHT + 5,
                stride: 40,
                bytes_per_pixel: 3,
                format: PixelFormat::Rgb,
            },
        ];
        for geometry in geometries {
            let mut buffer = buffer_for(geometry);
            let mut console = TextConsole::new(&mut buffer, geometry);
            let mut chunk = Vec::new();
            for _ in 0..2_000 {
                chunk.clear();
                let length = random.next() % 40;
                chunk.extend((0..length).map(|_| random.terminal_byte()));
                console.write_bytes(&chunk);
            }
            // Cancel any half-read sequence, then reset the colours and clear.
            console.write_bytes(b"\x18\x1b[0m\x1b[2J");
            drop(console);
            assert_eq!(buffer, render(geometry, b""), "{geometry:?}");
        }
    }

    #[test]
    fn a_too_short_buffer_or_odd_geometry_does_not_panic() {
        let screen = Geometry {
            width: 1280,
            height: 720,
            stride: 1280,
            bytes_per_pixel: 3,
            format: PixelFormat::Bgr,
        };
        let input = b"hello\n\x1b[31mworld\x1b[2J\x1b[99;99H\x1b[K\x1b[J\x08\t".repeat(100);
        let two_and_a_half_rows = 1280 * 3 * (2 * CELL_HEIGHT + CELL_HEIGHT / 2);
        for length in [0, 1, 1000, two_and_a_half_rows] {
            let mut buffer = vec![0; length];
            let mut console = TextConsole::new(&mut buffer, screen);
            console.write_bytes(&input);
            let expected_rows = length / (1280 * 3) / CELL_HEIGHT;
            assert_eq!(console.rows(), expected_rows, "{length} bytes");
        }
        let odd = [
            Geometry {
                bytes_per_pixel: 0,
                ..screen
            },
            Geometry {
                stride: 0,
                ..screen
            },
            Geometry { width: 0, ..screen },
            Geometry {
                stride: usize::MAX,
                ..screen
            },
            Geometry {
                height: usize::MAX,
                ..screen
            },
        ];
        for geometry in odd {
            let mut buffer = vec![0; 4096];
            TextConsole::new(&mut buffer, geometry).write_bytes(&input);
        }
    }
}

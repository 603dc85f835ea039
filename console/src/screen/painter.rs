//! Pixels: the framebuffer's layout, colour encoding (RGB, BGR, grey; any bytes per pixel and
//! row stride), the 16-colour palette, and the three things the console does to pixels:
//! draw a run of cells from the Noto Sans Mono bitmap font, clear, and move pixel rows up.
//! Every operation is bounded by its arguments; the caller decides how much to do at once.

use core::ops::Range;

use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

use super::terminal::Cell;

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
pub const CELL_WIDTH: usize = get_raster_width(FONT_WEIGHT, FONT_HEIGHT);
/// Height of one text cell in pixels.
pub const CELL_HEIGHT: usize = FONT_HEIGHT.val();
/// Most bytes written per pixel; wider pixels keep their remaining bytes.
const ENCODED_BYTES: usize = 4;

/// Coverage bytes (0..=255), row by row, of the glyph drawn for characters the font lacks.
/// Looked up at compile time, so a missing glyph is a build error rather than a runtime
/// failure.
const REPLACEMENT_GLYPH: &[u8] =
    match get_raster(char::REPLACEMENT_CHARACTER, FONT_WEIGHT, FONT_HEIGHT) {
        Some(glyph) => glyph.pixels(),
        None => panic!("the font must contain U+FFFD"),
    };

fn glyph_pixels(character: char) -> &'static [u8] {
    get_raster(character, FONT_WEIGHT, FONT_HEIGHT)
        .map_or(REPLACEMENT_GLYPH, |glyph| glyph.pixels())
}

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

fn palette(index: u8) -> Rgb {
    PALETTE[usize::from(index) % PALETTE.len()]
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

/// Writes `colour_of(i)` into the `i`-th pixel of `span`. The common pixel sizes get their
/// own loop, so that writing a pixel is a single store.
fn paint(span: &mut [u8], bytes_per_pixel: usize, colour_of: impl FnMut(usize) -> EncodedPixel) {
    fn sized<const N: usize>(span: &mut [u8], mut colour_of: impl FnMut(usize) -> EncodedPixel) {
        for (index, pixel) in span.as_chunks_mut::<N>().0.iter_mut().enumerate() {
            pixel.copy_from_slice(&colour_of(index)[..N]);
        }
    }
    match bytes_per_pixel {
        1 => sized::<1>(span, colour_of),
        2 => sized::<2>(span, colour_of),
        3 => sized::<3>(span, colour_of),
        4 => sized::<4>(span, colour_of),
        _ => {
            let mut colour_of = colour_of;
            for (index, pixel) in span.chunks_exact_mut(bytes_per_pixel).enumerate() {
                pixel[..ENCODED_BYTES].copy_from_slice(&colour_of(index));
            }
        }
    }
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
        }
    }

    /// Byte range of pixels `x` (`x.start <= x.end <= width`) in pixel row `y < height`.
    fn span(&self, x: Range<usize>, y: usize) -> Range<usize> {
        let row_start = y * self.bytes_per_row;
        row_start + x.start * self.bytes_per_pixel..row_start + x.end * self.bytes_per_pixel
    }
}

fn cell_columns(column: usize) -> Range<usize> {
    column * CELL_WIDTH..(column + 1) * CELL_WIDTH
}

fn cell_rows(row: usize) -> Range<usize> {
    row * CELL_HEIGHT..(row + 1) * CELL_HEIGHT
}

/// The encoded pixel for every glyph coverage (0..=255) of one foreground over one
/// background, so that drawing a glyph pixel is a table lookup instead of a blend.
struct Shades {
    colours: (u8, u8),
    pixels: [EncodedPixel; 256],
}

/// How many colour pairs keep their [`Shades`]; a screen rarely shows more at once.
const SHADE_TABLES: usize = 4;

/// The shade table of `cell`'s colours from `tables`, made in place of the oldest (the one
/// at `next`) if missing.
fn shades<'table>(
    tables: &'table mut [Option<Shades>; SHADE_TABLES],
    next: &mut usize,
    format: PixelFormat,
    cell: Cell,
) -> &'table [EncodedPixel; 256] {
    let colours = (cell.foreground, cell.background);
    let found = tables
        .iter()
        .position(|table| table.as_ref().is_some_and(|table| table.colours == colours));
    let index = found.unwrap_or_else(|| {
        let index = *next;
        *next = (index + 1) % SHADE_TABLES;
        let (foreground, background) = (palette(colours.0), palette(colours.1));
        let table = tables[index].get_or_insert(Shades {
            colours,
            pixels: [[0; ENCODED_BYTES]; 256],
        });
        table.colours = colours;
        for (intensity, pixel) in (0..=u8::MAX).zip(table.pixels.iter_mut()) {
            *pixel = encode(format, blend(foreground, background, intensity));
        }
        index
    });
    let table = tables[index].as_ref().map(|table| &table.pixels);
    table.expect("the table was found or just made")
}

/// Draws on a linear framebuffer in units of text cells; see the module documentation.
pub struct Painter<'buf> {
    pixels: &'buf mut [u8],
    layout: Layout,
    /// Shade tables of recently drawn colour pairs; `next_shades` is replaced next.
    shades: [Option<Shades>; SHADE_TABLES],
    next_shades: usize,
}

impl<'buf> Painter<'buf> {
    /// Takes over `pixels`, laid out as `geometry`; pixels that do not fit into the buffer are
    /// left out.
    pub fn new(pixels: &'buf mut [u8], geometry: Geometry) -> Self {
        let layout = Layout::new(pixels.len(), geometry);
        Self {
            pixels,
            layout,
            shades: [const { None }; SHADE_TABLES],
            next_shades: 0,
        }
    }

    /// Text columns that fit.
    pub fn columns(&self) -> usize {
        self.layout.width / CELL_WIDTH
    }

    /// Text rows that fit.
    pub fn rows(&self) -> usize {
        self.layout.height / CELL_HEIGHT
    }

    /// Bytes from one pixel row to the next.
    pub fn bytes_per_row(&self) -> usize {
        self.layout.bytes_per_row
    }

    /// Fills the whole visible area with palette colour `background`.
    pub fn clear(&mut self, background: u8) {
        let (width, height) = (self.layout.width, self.layout.height);
        self.fill(0..width, 0..height, background);
    }

    fn fill(&mut self, x: Range<usize>, y: Range<usize>, background: u8) {
        let encoded = encode(self.layout.format, palette(background));
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
                paint(span, bytes_per_pixel, |_| encoded);
            }
        }
    }

    /// Draws `cells` on text row `row` from column `first_column` on; the cell at index
    /// `cursor` (if any) is drawn with every colour byte inverted. Runs of blank cells become
    /// plain fills.
    pub fn draw_cells(
        &mut self,
        row: usize,
        first_column: usize,
        cells: &[Cell],
        cursor: Option<usize>,
    ) {
        let mut index = 0;
        while index < cells.len() {
            let cell = cells[index];
            if cell.is_blank() && cursor != Some(index) {
                let run = cells[index..]
                    .iter()
                    .enumerate()
                    .take_while(|&(offset, next)| {
                        next.is_blank()
                            && next.background == cell.background
                            && cursor != Some(index + offset)
                    })
                    .count();
                let x = cell_columns(first_column + index).start
                    ..cell_columns(first_column + index + run - 1).end;
                self.fill(x, cell_rows(row), cell.background);
                index += run;
            } else {
                self.draw_glyph(row, first_column + index, cell, cursor == Some(index));
                index += 1;
            }
        }
    }

    fn draw_glyph(&mut self, row: usize, column: usize, cell: Cell, inverted: bool) {
        let shades = shades(
            &mut self.shades,
            &mut self.next_shades,
            self.layout.format,
            cell,
        );
        let x = cell_columns(column);
        let glyph_rows = glyph_pixels(cell.character).as_chunks::<CELL_WIDTH>().0;
        for (pixel_row, intensities) in cell_rows(row).zip(glyph_rows) {
            let span = &mut self.pixels[self.layout.span(x.clone(), pixel_row)];
            paint(span, self.layout.bytes_per_pixel, |index| {
                shades[usize::from(intensities[index])]
            });
            if inverted {
                let bytes_per_pixel = self.layout.bytes_per_pixel;
                for pixel in span.chunks_exact_mut(bytes_per_pixel) {
                    let encoded = &mut pixel[..bytes_per_pixel.min(ENCODED_BYTES)];
                    encoded.iter_mut().for_each(|byte| *byte = !*byte);
                }
            }
        }
    }

    /// Moves pixel rows `destination.end - destination.start` rows up by `distance` rows:
    /// rows `destination.start + distance..destination.end + distance` are copied onto
    /// `destination`. Needs `destination.end + distance <= ` the text rows' pixel height.
    pub fn move_rows_up(&mut self, destination: Range<usize>, distance: usize) {
        if destination.is_empty() {
            return;
        }
        let width = self.layout.width;
        let start = self.layout.span(0..width, destination.start).start;
        let source_end = self
            .layout
            .span(0..width, destination.end - 1 + distance)
            .end;
        let source_start = start + distance * self.layout.bytes_per_row;
        self.pixels.copy_within(source_start..source_end, start);
    }
}

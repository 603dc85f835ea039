//! Framebuffer text console: turns a byte stream (UTF-8 text, C0 control bytes and ANSI escape
//! sequences) into glyphs on a linear framebuffer, like a small VT100-style terminal, with the
//! cursor, scrolling, the 16-colour palette and the subset of escape sequences the kernel and
//! user programs rely on.
//!
//! Writing and drawing are separate steps, so that a caller can bound how long it draws:
//!
//! - [`TextConsole::write_bytes`] changes only the character grid ([`terminal`]): a line
//!   feed or a scroll costs a few cell writes, whatever the screen size.
//! - [`TextConsole::draw_step`] brings the pixels ([`painter`]) up to date by one bounded
//!   piece of work and says whether more is left: it moves the pixel rows of one chunk of
//!   pending scrolls, or draws the changed cells of one row (at most [`STEP_CELLS`]).
//!   Scrolls not yet drawn are merged: `k` line feeds at the bottom of the screen move the
//!   surviving rows once and draw the new ones, and when `k` reaches the row count every row
//!   is simply drawn afresh, so any amount of scrolling costs at most about one screen.
//!
//! The module needs no allocation and no kernel service: it sees the framebuffer as a byte
//! slice plus its [`Geometry`], and the grid as a slice of [`Cell`]s the owner provides.

mod painter;
mod terminal;

use core::ops::Range;

use vte::Parser;

use painter::{CELL_HEIGHT, Painter};
pub use painter::{Geometry, PixelFormat};
pub use terminal::Cell;
use terminal::{CellPosition, ColumnSpan, Terminal};

/// Most cells drawn by one [`TextConsole::draw_step`].
pub const STEP_CELLS: usize = 256;
/// Most bytes of pixel rows moved by one [`TextConsole::draw_step`]. Moving a byte costs far
/// less than drawing one, so a step of moving covers about as many pixels as a step of
/// drawing one row of text.
pub const STEP_MOVE_BYTES: usize = 1 << 20;

/// The rows of a scroll being moved on the pixels, step by step.
#[derive(Clone, Debug)]
struct RowMove {
    /// Destination pixel rows not moved yet.
    remaining: Range<usize>,
    /// How many pixel rows up they move.
    distance: usize,
}

/// A text terminal drawn on a linear framebuffer; see the module documentation.
pub struct TextConsole<'buf> {
    parser: Parser,
    terminal: Terminal<'buf>,
    painter: Painter<'buf>,
    /// A scroll whose pixel rows are being moved; while it lasts, nothing else is drawn.
    moving: Option<RowMove>,
    /// The cell whose pixels show the cursor (drawn inverted), if any.
    drawn_cursor: Option<CellPosition>,
}

impl<'buf> TextConsole<'buf> {
    /// Takes over `pixels`, laid out as `geometry`, and clears them; the grid lives in
    /// `cells`. Rows or columns that do not fit into `pixels` or `cells` are left out. The
    /// cursor appears with the first [`draw_step`](Self::draw_step).
    pub fn new(pixels: &'buf mut [u8], cells: &'buf mut [Cell], geometry: Geometry) -> Self {
        let mut painter = Painter::new(pixels, geometry);
        let terminal = Terminal::new(cells, painter.columns(), painter.rows());
        painter.clear(Cell::BLANK.background);
        Self {
            parser: Parser::new(),
            terminal,
            painter,
            moving: None,
            drawn_cursor: None,
        }
    }

    /// Feeds terminal input: UTF-8 text, control bytes and ANSI escape sequences, possibly
    /// split anywhere across calls. Changes the grid only; the pixels follow in
    /// [`draw_step`](Self::draw_step).
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        self.parser.advance(&mut self.terminal, bytes);
    }

    /// Whether the pixels show everything written so far.
    pub fn is_drawn(&self) -> bool {
        self.moving.is_none()
            && !self.terminal.has_changes()
            && self.drawn_cursor == self.terminal.cursor()
    }

    /// Does one bounded piece of drawing: moves at most [`STEP_MOVE_BYTES`] of pixel rows
    /// for pending scrolls, or draws at most [`STEP_CELLS`] changed cells of one row.
    /// Returns whether more is left.
    pub fn draw_step(&mut self) -> bool {
        if self.moving.is_none() {
            self.start_moving_scrolled_rows();
        }
        if let Some(moving) = &mut self.moving {
            let rows_per_step = (STEP_MOVE_BYTES / self.painter.bytes_per_row().max(1)).max(1);
            let end = moving
                .remaining
                .end
                .min(moving.remaining.start + rows_per_step);
            self.painter
                .move_rows_up(moving.remaining.start..end, moving.distance);
            moving.remaining.start = end;
            if moving.remaining.is_empty() {
                self.moving = None;
            }
        } else {
            self.mark_cursor_move();
            if let Some((slot, columns)) = self.terminal.take_change(STEP_CELLS) {
                self.draw_cells(slot, columns);
            }
        }
        !self.is_drawn()
    }

    /// Draws until the pixels show everything written.
    pub fn draw_all(&mut self) {
        while self.draw_step() {}
    }

    /// Turns the scrolls not drawn yet into a move of the pixel rows that stay on screen.
    /// The rows scrolled in were blanked in the grid and are recorded as changed; when every
    /// row was scrolled in, there is nothing to move.
    fn start_moving_scrolled_rows(&mut self) {
        let scrolls = self.terminal.take_unshown_scrolls();
        let rows = self.terminal.rows();
        if scrolls > 0 && scrolls < rows {
            self.moving = Some(RowMove {
                remaining: 0..(rows - scrolls) * CELL_HEIGHT,
                distance: scrolls * CELL_HEIGHT,
            });
        }
    }

    /// When the cursor has moved, records both its old and its new cell as changed.
    fn mark_cursor_move(&mut self) {
        let cursor = self.terminal.cursor();
        if self.drawn_cursor == cursor {
            return;
        }
        for position in [self.drawn_cursor, cursor].into_iter().flatten() {
            let columns = ColumnSpan {
                start: position.column,
                end: position.column + 1,
            };
            self.terminal.mark_changed(position.slot, columns);
        }
    }

    fn draw_cells(&mut self, slot: usize, columns: ColumnSpan) {
        let contains = |position: Option<CellPosition>| {
            position.filter(|position| {
                position.slot == slot && (columns.start..columns.end).contains(&position.column)
            })
        };
        let cursor = contains(self.terminal.cursor());
        let cells = &self.terminal.slot_cells(slot)[columns.start..columns.end];
        let row = self.terminal.screen_row(slot);
        let cursor_index = cursor.map(|position| position.column - columns.start);
        self.painter
            .draw_cells(row, columns.start, cells, cursor_index);
        if contains(self.drawn_cursor).is_some() {
            self.drawn_cursor = None;
        }
        if cursor.is_some() {
            self.drawn_cursor = cursor;
        }
    }

    /// Text columns on the screen.
    pub fn columns(&self) -> usize {
        self.terminal.columns()
    }

    /// Text rows on the screen.
    pub fn rows(&self) -> usize {
        self.terminal.rows()
    }
}

#[cfg(test)]
mod tests {
    use super::painter::CELL_WIDTH;
    use super::*;

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

    /// Grid storage for every cell of `geometry` (up to a limit, for absurd geometries).
    fn cells_for(geometry: Geometry) -> Vec<Cell> {
        let cells = (geometry.width / CELL_WIDTH).saturating_mul(geometry.height / CELL_HEIGHT);
        vec![Cell::UNUSED; cells.min(1 << 16)]
    }

    /// The framebuffer after writing `input` to a fresh console and drawing it all.
    fn render(geometry: Geometry, input: &[u8]) -> Vec<u8> {
        let mut buffer = buffer_for(geometry);
        let mut cells = cells_for(geometry);
        let mut console = TextConsole::new(&mut buffer, &mut cells, geometry);
        console.write_bytes(input);
        console.draw_all();
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
        for y in row * CELL_HEIGHT..(row + 1) * CELL_HEIGHT {
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
        let mut cells = cells_for(geometry);
        TextConsole::new(&mut buffer, &mut cells, geometry).draw_all();
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
        let mut cells = cells_for(geometry);
        let console = TextConsole::new(&mut buffer, &mut cells, geometry);
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
            let mut cells = cells_for(geometry);
            let mut console = TextConsole::new(&mut buffer, &mut cells, geometry);
            console.write_bytes(b"\x1b[47m\x1b[2JA");
            console.draw_all();
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
        let mut cells = cells_for(rgb);
        let mut console = TextConsole::new(&mut buffer, &mut cells, rgb);
        console.write_bytes(b"\x1b[3");
        console.write_bytes(b"1mA");
        console.draw_all();
        assert_eq!(cell(&buffer, rgb, 0, 0), glyph(rgb, "\x1b[31mA"));
    }

    /// Draws everything pending in `console` and returns how many steps that took.
    fn steps_to_draw(console: &mut TextConsole) -> usize {
        let mut steps = 0;
        while !console.is_drawn() {
            console.draw_step();
            steps += 1;
        }
        steps
    }

    #[test]
    fn draw_step_reports_whether_more_is_left() {
        let geometry = bgr();
        let mut buffer = buffer_for(geometry);
        let mut cells = cells_for(geometry);
        let mut console = TextConsole::new(&mut buffer, &mut cells, geometry);
        assert!(!console.is_drawn(), "the cursor is not drawn yet");
        assert!(!console.draw_step(), "one step draws the cursor");
        assert!(console.is_drawn());
        console.write_bytes(b"AB\nC");
        assert!(console.draw_step(), "two rows changed");
        assert!(!console.draw_step());
        assert!(!console.draw_step(), "nothing left");
        drop(console);
        assert_eq!(buffer, render(geometry, b"AB\nC"));
    }

    #[test]
    fn scrolling_a_drawn_screen_moves_its_rows_instead_of_redrawing_them() {
        const TALL_ROWS: usize = 20;
        let geometry = Geometry {
            height: TALL_ROWS * CELL_HEIGHT,
            ..bgr()
        };
        let full: String = (0..TALL_ROWS).map(|row| format!("row {row}\n")).collect();
        for scrolled_in in ["x", "\nx", "\n\n\nx", "\n\x1b[44mx\n\ny"] {
            let mut buffer = buffer_for(geometry);
            let mut cells = cells_for(geometry);
            let mut console = TextConsole::new(&mut buffer, &mut cells, geometry);
            console.write_bytes(full.as_bytes());
            console.draw_all();
            console.write_bytes(scrolled_in.as_bytes());
            let steps = steps_to_draw(&mut console);
            drop(console);
            let lines = scrolled_in.matches('\n').count() + 1;
            // One step moves the rows; then the new lines and the cursor's old cell.
            assert!(steps <= lines + 2, "{scrolled_in:?}: {steps} steps");
            let whole = [full.as_bytes(), scrolled_in.as_bytes()].concat();
            assert_eq!(buffer, render(geometry, &whole), "{scrolled_in:?}");
        }
    }

    /// A 1280x720 screen with 4-byte pixels, as QEMU's standard VGA shows it.
    fn full_screen() -> Geometry {
        Geometry {
            width: 1280,
            height: 720,
            stride: 1280,
            bytes_per_pixel: 4,
            format: PixelFormat::Bgr,
        }
    }

    /// `rows` lines that fill every column with glyphs.
    fn text_lines(columns: usize, rows: usize) -> String {
        (0..rows)
            .map(|row| {
                let line: String = (0..columns)
                    .map(|column| char::from(b'!' + ((row + column) % 90) as u8))
                    .collect();
                line + "\r\n"
            })
            .collect()
    }

    #[test]
    fn any_number_of_line_feeds_costs_at_most_one_screen_of_steps() {
        let geometry = full_screen();
        let mut buffer = buffer_for(geometry);
        let mut cells = cells_for(geometry);
        let mut console = TextConsole::new(&mut buffer, &mut cells, geometry);
        let (columns, rows) = (console.columns(), console.rows());
        let text = text_lines(columns, rows);
        console.write_bytes(text.as_bytes());
        console.draw_all();

        // One line: the surviving rows move in steps of at most STEP_MOVE_BYTES, then the
        // new bottom row and the cursor's old cell are drawn.
        console.write_bytes(b"\n");
        let moved_bytes = (rows - 1) * CELL_HEIGHT * geometry.stride * geometry.bytes_per_pixel;
        let move_steps = moved_bytes.div_ceil(STEP_MOVE_BYTES);
        assert_eq!(steps_to_draw(&mut console), move_steps + 2);

        // Ten thousand lines: every row is drawn once, nothing is moved.
        console.write_bytes(&[b'\n'; 10_000]);
        assert_eq!(steps_to_draw(&mut console), rows);

        // Fewer lines than rows: one move, then only the new rows.
        console.write_bytes(text.as_bytes());
        console.draw_all();
        console.write_bytes(&[b'\n'; 10]);
        let moved_bytes = (rows - 10) * CELL_HEIGHT * geometry.stride * geometry.bytes_per_pixel;
        assert_eq!(
            steps_to_draw(&mut console),
            moved_bytes.div_ceil(STEP_MOVE_BYTES) + 11
        );
        drop(console);

        let whole = [
            text.as_bytes(),
            b"\n",
            &[b'\n'; 10_000],
            text.as_bytes(),
            &[b'\n'; 10],
        ]
        .concat();
        assert_eq!(buffer, render(geometry, &whole));
    }

    #[test]
    fn output_written_between_the_steps_of_a_move_is_drawn_right() {
        let geometry = full_screen();
        let mut buffer = buffer_for(geometry);
        let mut cells = cells_for(geometry);
        let mut console = TextConsole::new(&mut buffer, &mut cells, geometry);
        let text = text_lines(console.columns(), console.rows());
        let mut written = text.clone().into_bytes();
        console.write_bytes(&written);
        console.draw_all();
        // Each write scrolls while the previous scroll's rows are still being moved; the
        // screen scrolls by 19 rows in all, so most rows of glyphs are only ever moved.
        for round in 0..10 {
            let output = format!(
                "\x1b[3{}mround {round}\n{}",
                round % 8,
                "\n".repeat(round % 3)
            );
            console.write_bytes(output.as_bytes());
            written.extend_from_slice(output.as_bytes());
            for _ in 0..round % 4 {
                console.draw_step();
            }
        }
        console.draw_all();
        drop(console);
        assert_eq!(buffer, render(geometry, &written));
    }

    #[test]
    fn a_step_draws_at_most_step_cells_of_a_long_row() {
        let columns = STEP_CELLS + 44;
        let geometry = Geometry {
            width: columns * CELL_WIDTH,
            stride: columns * CELL_WIDTH,
            ..bgr()
        };
        let mut buffer = buffer_for(geometry);
        let mut cells = cells_for(geometry);
        let mut console = TextConsole::new(&mut buffer, &mut cells, geometry);
        console.draw_all();
        let line = text_lines(columns - 1, 1);
        console.write_bytes(line.trim_end().as_bytes());
        assert!(
            console.draw_step(),
            "the first step stops after STEP_CELLS cells"
        );
        drop(console);
        let unfinished = buffer.clone();
        let mut console = TextConsole::new(&mut buffer, &mut cells, geometry);
        console.write_bytes(line.trim_end().as_bytes());
        assert_eq!(steps_to_draw(&mut console), 2);
        drop(console);
        let finished = render(geometry, line.trim_end().as_bytes());
        assert_eq!(buffer, finished);
        assert_eq!(
            cell(&unfinished, geometry, 0, STEP_CELLS - 1),
            cell(&finished, geometry, 0, STEP_CELLS - 1)
        );
        assert!(
            is_blank(&cell(&unfinished, geometry, 0, STEP_CELLS)),
            "cell STEP_CELLS waits"
        );
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
    fn random_bytes_drawn_in_random_steps_match_one_drawing_and_a_reset_restores_a_fresh_screen() {
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
            let mut cells = cells_for(geometry);
            let mut console = TextConsole::new(&mut buffer, &mut cells, geometry);
            let mut written = Vec::new();
            for _ in 0..2_000 {
                let length = random.next() % 40;
                let chunk: Vec<u8> = (0..length).map(|_| random.terminal_byte()).collect();
                console.write_bytes(&chunk);
                written.extend_from_slice(&chunk);
                for _ in 0..random.next() % 4 {
                    console.draw_step();
                }
            }
            console.draw_all();
            drop(console);
            assert_eq!(buffer, render(geometry, &written), "{geometry:?}");

            let mut console = TextConsole::new(&mut buffer, &mut cells, geometry);
            console.write_bytes(&written);
            // Cancel any half-read sequence, then reset the colours and clear.
            console.write_bytes(b"\x18\x1b[0m\x1b[2J");
            console.draw_all();
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
            let mut cells = cells_for(screen);
            let mut console = TextConsole::new(&mut buffer, &mut cells, screen);
            console.write_bytes(&input);
            console.draw_all();
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
            let mut cells = cells_for(geometry);
            let mut console = TextConsole::new(&mut buffer, &mut cells, geometry);
            console.write_bytes(&input);
            console.draw_all();
        }
        for cell_count in [0, 1, 10 * (1280 / CELL_WIDTH) + 1] {
            let mut buffer = buffer_for(screen);
            let mut cells = vec![Cell::UNUSED; cell_count];
            let mut console = TextConsole::new(&mut buffer, &mut cells, screen);
            console.write_bytes(&input);
            console.draw_all();
            let expected_rows = cell_count / (1280 / CELL_WIDTH);
            assert_eq!(console.rows(), expected_rows, "{cell_count} cells");
        }
    }
}

//! The terminal's state as characters: a grid of cells (character and colours), the cursor,
//! the selected colours, and what changed since the pixels were last drawn. The escape
//! sequence parser drives it through [`Perform`]. Nothing here touches pixels, so every
//! operation costs a few cell writes: a line feed at the bottom advances the first row of a
//! ring of rows and blanks one row, whatever the screen's size.
//!
//! Rows are stored as a ring: the screen row `r` lives in the storage row ("slot")
//! `(top + r) % rows`. Changes are recorded per slot as a span of columns, so a row that
//! moves up the screen keeps its record, and the scrolls not yet shown are counted.

use vte::{Params, ParamsIter, Perform};

/// Most text rows whose changes are recorded (4096 pixel rows of 16-pixel text).
pub const MAX_ROWS: usize = 256;
const TAB_WIDTH: usize = 8;
/// Palette indices 8..16 are the bright versions of 0..8.
const BRIGHT_OFFSET: u8 = 8;

/// One character cell: what it shows and in which palette colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The character; a space shows only the background.
    pub character: char,
    /// Palette index of the glyph (bold is already turned into the bright colour).
    pub foreground: u8,
    /// Palette index of the background.
    pub background: u8,
}

impl Cell {
    /// The value of cell storage the console has not taken over yet: all zero bytes, so a
    /// static array of them costs no space in the kernel image.
    pub const UNUSED: Self = Self {
        character: '\0',
        foreground: 0,
        background: 0,
    };

    /// An erased cell in the default colours.
    pub const BLANK: Self = Self {
        character: ' ',
        foreground: Style::DEFAULT.foreground,
        background: Style::DEFAULT.background,
    };

    /// Whether the cell shows nothing but its background.
    pub fn is_blank(self) -> bool {
        self.character == ' '
    }
}

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

    fn foreground_index(self) -> u8 {
        if self.bold && self.foreground < BRIGHT_OFFSET {
            self.foreground + BRIGHT_OFFSET
        } else {
            self.foreground
        }
    }

    fn cell(self, character: char) -> Cell {
        Cell {
            character,
            foreground: self.foreground_index(),
            background: self.background,
        }
    }
}

/// A half-open range of columns; empty when `start >= end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnSpan {
    pub start: usize,
    pub end: usize,
}

impl ColumnSpan {
    const EMPTY: Self = Self { start: 0, end: 0 };

    fn is_empty(self) -> bool {
        self.start >= self.end
    }

    fn union(self, other: Self) -> Self {
        if self.is_empty() {
            other
        } else if other.is_empty() {
            self
        } else {
            Self {
                start: self.start.min(other.start),
                end: self.end.max(other.end),
            }
        }
    }
}

/// Where a cell is stored: its slot (storage row) and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellPosition {
    pub slot: usize,
    pub column: usize,
}

/// The character grid and the cursor; see the module documentation.
pub struct Terminal<'cells> {
    cells: &'cells mut [Cell],
    columns: usize,
    rows: usize,
    /// The slot shown on the top screen row.
    top: usize,
    /// Screen row of the cursor.
    row: usize,
    /// Column the next character goes to; equal to `columns` after the last column was
    /// written, so the line wraps only once another character arrives.
    column: usize,
    style: Style,
    /// Columns changed since they were last taken for drawing, per slot.
    changed: [ColumnSpan; MAX_ROWS],
    /// Scrolls since the renderer last asked, at most `rows` (after that many, every row
    /// has been replaced).
    unshown_scrolls: usize,
}

impl<'cells> Terminal<'cells> {
    /// A blank grid of `columns` x `rows` in `cells`, cursor at home. Rows beyond
    /// [`MAX_ROWS`] or beyond what `cells` holds are left out; with no complete row, the
    /// grid has no cells and ignores all input.
    pub fn new(cells: &'cells mut [Cell], columns: usize, rows: usize) -> Self {
        let rows = cells
            .len()
            .checked_div(columns)
            .map_or(0, |rows_that_fit| rows.min(MAX_ROWS).min(rows_that_fit));
        let columns = if rows == 0 { 0 } else { columns };
        let used = columns * rows;
        cells[..used].fill(Cell::BLANK);
        Self {
            cells,
            columns,
            rows,
            top: 0,
            row: 0,
            column: 0,
            style: Style::DEFAULT,
            changed: [ColumnSpan::EMPTY; MAX_ROWS],
            unshown_scrolls: 0,
        }
    }

    /// Text columns.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Text rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn has_cells(&self) -> bool {
        self.rows > 0
    }

    fn slot(&self, screen_row: usize) -> usize {
        (self.top + screen_row) % self.rows
    }

    /// The screen row that shows `slot`.
    pub fn screen_row(&self, slot: usize) -> usize {
        (slot + self.rows - self.top) % self.rows
    }

    /// The cells of `slot`.
    pub fn slot_cells(&self, slot: usize) -> &[Cell] {
        &self.cells[slot * self.columns..(slot + 1) * self.columns]
    }

    /// Column of the cell the cursor is drawn on and edits apply to.
    fn cursor_column(&self) -> usize {
        self.column.min(self.columns.saturating_sub(1))
    }

    /// The cell the cursor is drawn on, if the grid has cells.
    pub fn cursor(&self) -> Option<CellPosition> {
        self.has_cells().then(|| CellPosition {
            slot: self.slot(self.row),
            column: self.cursor_column(),
        })
    }

    /// Records that `columns` of `slot` need drawing.
    pub fn mark_changed(&mut self, slot: usize, columns: ColumnSpan) {
        self.changed[slot] = self.changed[slot].union(columns);
    }

    /// Takes the scrolls made since the last call (at most `rows`).
    pub fn take_unshown_scrolls(&mut self) -> usize {
        core::mem::take(&mut self.unshown_scrolls)
    }

    /// Whether a scroll or a change is waiting to be drawn.
    pub fn has_changes(&self) -> bool {
        self.unshown_scrolls > 0
            || self.changed[..self.rows]
                .iter()
                .any(|span| !span.is_empty())
    }

    /// Takes up to `max_columns` changed columns of the highest changed screen row: the
    /// slot and the columns. The rest of that row's change stays recorded.
    pub fn take_change(&mut self, max_columns: usize) -> Option<(usize, ColumnSpan)> {
        let slot = (0..self.rows)
            .map(|row| self.slot(row))
            .find(|&slot| !self.changed[slot].is_empty())?;
        let span = self.changed[slot];
        let end = span.end.min(span.start.saturating_add(max_columns.max(1)));
        self.changed[slot].start = end;
        Some((
            slot,
            ColumnSpan {
                start: span.start,
                end,
            },
        ))
    }

    fn fill_cells(&mut self, slot: usize, columns: ColumnSpan) {
        if columns.is_empty() {
            return;
        }
        let blank = self.style.cell(' ');
        let start = slot * self.columns;
        self.cells[start + columns.start..start + columns.end].fill(blank);
        self.mark_changed(slot, columns);
    }

    fn fill_rows(&mut self, screen_rows: core::ops::Range<usize>) {
        for row in screen_rows {
            let slot = self.slot(row);
            self.fill_cells(
                slot,
                ColumnSpan {
                    start: 0,
                    end: self.columns,
                },
            );
        }
    }

    fn put_char(&mut self, character: char) {
        if self.column >= self.columns {
            self.column = 0;
            self.line_feed();
        }
        let slot = self.slot(self.row);
        self.cells[slot * self.columns + self.column] = self.style.cell(character);
        self.mark_changed(
            slot,
            ColumnSpan {
                start: self.column,
                end: self.column + 1,
            },
        );
        self.column += 1;
    }

    fn line_feed(&mut self) {
        if self.row + 1 < self.rows {
            self.row += 1;
        } else {
            self.scroll_up();
        }
    }

    /// Moves every row up by one: the top slot becomes the bottom row, blanked in the
    /// current background colour.
    fn scroll_up(&mut self) {
        self.top = (self.top + 1) % self.rows;
        self.fill_rows(self.rows - 1..self.rows);
        self.unshown_scrolls = (self.unshown_scrolls + 1).min(self.rows);
    }

    /// Moves one column left; at the start of a line, to the last column of the line above, so
    /// that a line editor's "\x08 \x08" also erases across a wrapped line.
    fn backspace(&mut self) {
        if self.column > 0 {
            self.column -= 1;
        } else if self.row > 0 {
            self.row -= 1;
            self.column = self.columns - 1;
        }
    }

    fn tab(&mut self) {
        let next_stop = (self.cursor_column() / TAB_WIDTH + 1) * TAB_WIDTH;
        self.column = next_stop.min(self.columns - 1);
    }

    /// Erases part of the cursor's line: 0 from the cursor on, 1 up to the cursor, 2 all of it.
    fn erase_in_line(&mut self, mode: u16) {
        let cursor = self.cursor_column();
        let columns = match mode {
            0 => ColumnSpan {
                start: cursor,
                end: self.columns,
            },
            1 => ColumnSpan {
                start: 0,
                end: cursor + 1,
            },
            2 => ColumnSpan {
                start: 0,
                end: self.columns,
            },
            _ => return,
        };
        self.fill_cells(self.slot(self.row), columns);
    }

    /// Erases part of the screen: 0 from the cursor on, 1 up to the cursor, 2 all of it (and
    /// moves the cursor home).
    fn erase_in_display(&mut self, mode: u16) {
        match mode {
            0 => {
                self.erase_in_line(0);
                self.fill_rows(self.row + 1..self.rows);
            }
            1 => {
                self.erase_in_line(1);
                self.fill_rows(0..self.row);
            }
            2 => {
                self.fill_rows(0..self.rows);
                self.row = 0;
                self.column = 0;
            }
            _ => {}
        }
    }

    fn move_to(&mut self, row: usize, column: usize) {
        self.row = row.min(self.rows - 1);
        self.column = column.min(self.columns - 1);
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

impl Perform for Terminal<'_> {
    fn print(&mut self, character: char) {
        if self.has_cells() {
            self.put_char(character);
        }
    }

    fn execute(&mut self, byte: u8) {
        if !self.has_cells() {
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
        if ignore || !intermediates.is_empty() || !self.has_cells() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use vte::Parser;

    const COLUMNS: usize = 4;
    const ROWS: usize = 3;

    /// Feeds `input` to a fresh 4x3 terminal in `cells` and returns the terminal.
    fn terminal<'cells>(cells: &'cells mut Vec<Cell>, input: &[u8]) -> Terminal<'cells> {
        cells.resize(COLUMNS * ROWS, Cell::UNUSED);
        let mut terminal = Terminal::new(cells, COLUMNS, ROWS);
        Parser::new().advance(&mut terminal, input);
        terminal
    }

    /// The characters of each screen row, top to bottom.
    fn screen_text(terminal: &Terminal) -> Vec<String> {
        (0..terminal.rows())
            .map(|row| {
                let cells = terminal.slot_cells(terminal.slot(row));
                cells.iter().map(|cell| cell.character).collect()
            })
            .collect()
    }

    fn span(start: usize, end: usize) -> ColumnSpan {
        ColumnSpan { start, end }
    }

    #[test]
    fn a_new_grid_is_blank_with_nothing_to_draw() {
        let mut cells = Vec::new();
        let terminal = terminal(&mut cells, b"");
        assert_eq!(screen_text(&terminal), ["    "; ROWS]);
        assert!(!terminal.has_changes());
        assert_eq!(terminal.cursor(), Some(CellPosition { slot: 0, column: 0 }));
    }

    #[test]
    fn line_feeds_at_the_bottom_rotate_the_rows_and_count_the_scrolls() {
        let mut cells = Vec::new();
        let mut terminal = terminal(&mut cells, b"a\nb\nc\nd");
        assert_eq!(screen_text(&terminal), ["b   ", "c   ", "d   "]);
        assert_eq!(terminal.top, 1, "the first slot is now the bottom row");
        assert_eq!(terminal.take_unshown_scrolls(), 1);
        assert_eq!(terminal.take_unshown_scrolls(), 0, "taken");
        Parser::new().advance(&mut terminal, &[b'\n'; 100]);
        assert_eq!(terminal.take_unshown_scrolls(), ROWS, "at most one screen");
        assert_eq!(screen_text(&terminal), ["    "; ROWS]);
    }

    #[test]
    fn changes_are_taken_top_row_first_and_long_spans_in_pieces() {
        let mut cells = Vec::new();
        let mut terminal = terminal(&mut cells, b"\nxyz\x1b[1;2Hq");
        assert_eq!(terminal.take_change(2), Some((0, span(1, 2))));
        assert_eq!(terminal.take_change(2), Some((1, span(0, 2))));
        assert_eq!(terminal.take_change(2), Some((1, span(2, 3))));
        assert_eq!(terminal.take_change(2), None);
        assert!(!terminal.has_changes());
    }

    #[test]
    fn a_scrolled_in_row_is_recorded_whole_and_rows_keep_their_changes() {
        let mut cells = Vec::new();
        let mut terminal = terminal(&mut cells, b"\n\nab\n");
        // "ab" was written on the bottom row, which is now one row higher; the row below
        // it came in blank.
        let ab_slot = 2;
        assert_eq!(terminal.screen_row(ab_slot), 1);
        let changes: Vec<_> = core::iter::from_fn(|| terminal.take_change(COLUMNS)).collect();
        assert_eq!(changes, [(ab_slot, span(0, 2)), (0, span(0, COLUMNS))]);
    }

    #[test]
    fn erasing_fills_with_the_current_background() {
        let mut cells = Vec::new();
        let terminal = terminal(&mut cells, b"abcd\x1b[44m\x1b[1;3H\x1b[K");
        let row = terminal.slot_cells(0);
        assert_eq!(
            row[1],
            Cell {
                character: 'b',
                ..Cell::BLANK
            }
        );
        assert_eq!(
            row[2],
            Cell {
                background: 4,
                ..Cell::BLANK
            }
        );
        assert_eq!(
            row[3],
            Cell {
                background: 4,
                ..Cell::BLANK
            }
        );
    }

    #[test]
    fn bold_is_stored_as_the_bright_foreground() {
        let mut cells = Vec::new();
        let terminal = terminal(&mut cells, b"\x1b[1;32ma\x1b[22mb\x1b[1;92mc");
        let colours: Vec<u8> = terminal.slot_cells(0)[..3]
            .iter()
            .map(|cell| cell.foreground)
            .collect();
        assert_eq!(colours, [10, 2, 10]);
    }

    #[test]
    fn storage_too_small_for_a_row_leaves_a_grid_without_cells_that_ignores_input() {
        let mut cells = vec![Cell::UNUSED; COLUMNS - 1];
        let mut terminal = Terminal::new(&mut cells, COLUMNS, ROWS);
        Parser::new().advance(&mut terminal, b"text\n\x1b[2J\x1b[5;5H\x08\t");
        assert_eq!((terminal.rows(), terminal.columns()), (0, 0));
        assert_eq!(terminal.cursor(), None);
        assert!(!terminal.has_changes());
    }
}

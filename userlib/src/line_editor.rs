//! Interactive line input with editing and history, as the shell reads its commands.
//!
//! [`LineEditor::read_line`] switches the console to raw mode, prints the prompt, and does its
//! own echo and editing until the line is complete; then it puts the console back in cooked
//! mode, so the programs the caller starts read the console with the console server's line
//! editing.
//! Keys:
//!
//! - printable characters (UTF-8) are inserted at the cursor;
//! - Backspace (`0x08` or `0x7f`) erases the character before the cursor, Delete (`ESC [ 3 ~`)
//!   the one under it;
//! - Left and Right move the cursor, Home and End jump to the ends of the line;
//! - Up and Down walk through the history (the last lines entered, oldest dropped first); Down
//!   past the newest entry brings back the line that was being typed;
//! - Enter (`\r`, `\n`, or `\r\n` as one) completes the line, Ctrl-C abandons it (echoing
//!   `^C`), Ctrl-D on an empty line reports the end of input; other control keys do nothing.
//!
//! Redrawing uses only printable characters, spaces and `\x08` (cursor left), so it works on
//! the framebuffer console, whose backspace also steps back over a wrapped line, and on serial
//! terminals. Every character is taken to be one column wide.
//!
//! The editing itself is a state machine from input bytes to echo bytes, unit-tested on the
//! host; [`LineEditor`] adds the console around it.

use abi::keys::{BACKSPACE, CTRL_C, CTRL_D, DELETE, ESCAPE};
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::{io, sys};

/// Most characters a line may hold; further typing is ignored.
pub const LINE_MAX: usize = 1024;


/// What [`LineEditor::read_line`] got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A completed line, without its line ending.
    Line(String),
    /// Ctrl-C: the line was abandoned (`^C` and a new line were echoed).
    Interrupted,
    /// Ctrl-D on an empty line, or the console's end of input.
    EndOfInput,
}

/// Reads lines from the console with editing and history.
pub struct LineEditor {
    state: LineState,
    /// Bytes read from the console but not yet edited: typed ahead of the current line.
    pending: VecDeque<u8>,
}

impl LineEditor {
    /// An editor remembering the last `history_capacity` lines.
    pub fn new(history_capacity: usize) -> Self {
        Self { state: LineState::new(history_capacity), pending: VecDeque::new() }
    }

    /// Prints `prompt` and reads one line in raw mode, editing it as the module documentation
    /// describes; the console is back in cooked mode when this returns.
    pub fn read_line(&mut self, prompt: &str) -> sys::Result<Input> {
        sys::console_mode(abi::CONSOLE_RAW)?;
        let input = self.edit(prompt);
        let cooked = sys::console_mode(abi::CONSOLE_COOKED);
        let input = input?;
        cooked.map(|_| input)
    }

    fn edit(&mut self, prompt: &str) -> sys::Result<Input> {
        let mut echo = Vec::from(prompt.as_bytes());
        loop {
            while let Some(byte) = self.pending.pop_front() {
                if let Some(input) = self.state.feed(byte, &mut echo) {
                    show(&mut echo);
                    return Ok(input);
                }
            }
            show(&mut echo);
            let mut chunk = [0u8; 128];
            match sys::read(io::STDIN, &mut chunk)? {
                // The end of input a Ctrl-D typed in cooked mode left behind acts as Ctrl-D.
                0 => self.pending.push_back(CTRL_D),
                count => self.pending.extend(&chunk[..count]),
            }
        }
    }
}

/// Writes out and empties `echo`.
fn show(echo: &mut Vec<u8>) {
    if !echo.is_empty() {
        // Output errors have nowhere to be reported; the console accepts everything.
        let _ = sys::write(io::STDOUT, echo);
        echo.clear();
    }
}

/// Where the decoder of escape sequences is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    /// Not inside an escape sequence.
    Idle,
    /// After `ESC`.
    Started,
    /// After `ESC [`: the first numeric parameter so far, and whether it has ended (at `;`).
    Csi { parameter: u16, parameter_ended: bool },
    /// After `ESC O` (the keypad's application mode): the next byte is the key.
    Ss3,
}

/// A UTF-8 character arriving one byte at a time.
#[derive(Clone, Copy, Debug, Default)]
struct Utf8Decoder {
    bytes: [u8; 4],
    len: usize,
    needed: usize,
}

impl Utf8Decoder {
    /// Takes one byte; returns the character it completes. Malformed input is dropped.
    fn push(&mut self, byte: u8) -> Option<char> {
        if byte & 0xc0 == 0x80 {
            if self.len == 0 || self.len >= self.needed {
                return None;
            }
            self.bytes[self.len] = byte;
            self.len += 1;
        } else {
            self.needed = match byte {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => 0,
            };
            self.bytes[0] = byte;
            self.len = usize::from(self.needed > 0);
        }
        if self.len == 0 || self.len < self.needed {
            return None;
        }
        let character = core::str::from_utf8(&self.bytes[..self.len]).ok().and_then(|text| text.chars().next());
        self.len = 0;
        character
    }
}

/// The line being edited, the cursor, the history, and the input decoders.
struct LineState {
    line: Vec<char>,
    /// Index in `line` of the character the cursor is on (`line.len()` at the end).
    cursor: usize,
    history: VecDeque<String>,
    history_capacity: usize,
    /// The history entry shown while walking the history.
    browsing: Option<usize>,
    /// The line that was being typed when the walk through the history began.
    draft: Vec<char>,
    escape: Escape,
    utf8: Utf8Decoder,
    after_carriage_return: bool,
}

impl LineState {
    fn new(history_capacity: usize) -> Self {
        Self {
            line: Vec::new(),
            cursor: 0,
            history: VecDeque::new(),
            history_capacity,
            browsing: None,
            draft: Vec::new(),
            escape: Escape::Idle,
            utf8: Utf8Decoder::default(),
            after_carriage_return: false,
        }
    }

    /// Processes one input byte, appending what must be shown to `echo`; returns the input
    /// once the line is over.
    fn feed(&mut self, byte: u8, echo: &mut Vec<u8>) -> Option<Input> {
        let after_carriage_return = core::mem::replace(&mut self.after_carriage_return, byte == b'\r');
        if after_carriage_return && byte == b'\n' {
            return None;
        }
        match self.escape {
            Escape::Idle => {}
            Escape::Started => {
                self.escape = match byte {
                    b'[' => Escape::Csi { parameter: 0, parameter_ended: false },
                    b'O' => Escape::Ss3,
                    _ => Escape::Idle,
                };
                return None;
            }
            Escape::Csi { parameter, parameter_ended } => {
                match byte {
                    b'0'..=b'9' if !parameter_ended => {
                        let parameter = parameter.saturating_mul(10).saturating_add(u16::from(byte - b'0'));
                        self.escape = Escape::Csi { parameter, parameter_ended };
                    }
                    0x40..=0x7e => {
                        self.escape = Escape::Idle;
                        self.key(byte, parameter, echo);
                    }
                    _ => self.escape = Escape::Csi { parameter, parameter_ended: true },
                }
                return None;
            }
            Escape::Ss3 => {
                self.escape = Escape::Idle;
                self.key(byte, 0, echo);
                return None;
            }
        }
        match byte {
            b'\r' | b'\n' => return Some(self.finish_line(echo)),
            CTRL_C => {
                self.move_to_end(echo);
                echo.extend_from_slice(b"^C\n");
                self.line.clear();
                self.cursor = 0;
                self.browsing = None;
                return Some(Input::Interrupted);
            }
            CTRL_D if self.line.is_empty() => return Some(Input::EndOfInput),
            BACKSPACE | DELETE if self.cursor > 0 => {
                self.cursor -= 1;
                echo.push(BACKSPACE);
                self.remove_at_cursor(echo);
            }
            ESCAPE => self.escape = Escape::Started,
            byte if !byte.is_ascii_control() => {
                if let Some(character) = self.utf8.push(byte) {
                    self.insert(character, echo);
                }
            }
            _ => {}
        }
        None
    }

    /// Acts on the final byte of an escape sequence.
    fn key(&mut self, last: u8, parameter: u16, echo: &mut Vec<u8>) {
        match (last, parameter) {
            (b'A', _) => self.history_back(echo),
            (b'B', _) => self.history_forward(echo),
            (b'C', _) if self.cursor < self.line.len() => {
                push_chars(echo, &self.line[self.cursor..=self.cursor]);
                self.cursor += 1;
            }
            (b'D', _) if self.cursor > 0 => {
                self.cursor -= 1;
                echo.push(BACKSPACE);
            }
            (b'H', _) => self.move_to_start(echo),
            (b'F', _) => self.move_to_end(echo),
            (b'~', 3) if self.cursor < self.line.len() => self.remove_at_cursor(echo),
            _ => {}
        }
    }

    fn insert(&mut self, character: char, echo: &mut Vec<u8>) {
        if self.line.len() >= LINE_MAX {
            return;
        }
        self.line.insert(self.cursor, character);
        push_chars(echo, &self.line[self.cursor..=self.cursor]);
        self.cursor += 1;
        self.redraw_tail(0, echo);
    }

    /// Removes the character under the cursor and redraws what followed it.
    fn remove_at_cursor(&mut self, echo: &mut Vec<u8>) {
        self.line.remove(self.cursor);
        self.redraw_tail(1, echo);
    }

    /// Reprints the line from the cursor on, then `stale` blanks over what the line no longer
    /// covers, and moves the cursor back where it was.
    fn redraw_tail(&self, stale: usize, echo: &mut Vec<u8>) {
        let tail = &self.line[self.cursor..];
        push_chars(echo, tail);
        echo.extend(core::iter::repeat_n(b' ', stale));
        echo.extend(core::iter::repeat_n(BACKSPACE, tail.len() + stale));
    }

    fn move_to_start(&mut self, echo: &mut Vec<u8>) {
        echo.extend(core::iter::repeat_n(BACKSPACE, self.cursor));
        self.cursor = 0;
    }

    fn move_to_end(&mut self, echo: &mut Vec<u8>) {
        push_chars(echo, &self.line[self.cursor..]);
        self.cursor = self.line.len();
    }

    /// Shows `line` instead of the current one, with the cursor at its end.
    fn replace_line(&mut self, line: Vec<char>, echo: &mut Vec<u8>) {
        self.move_to_start(echo);
        let stale = self.line.len().saturating_sub(line.len());
        self.line = line;
        push_chars(echo, &self.line);
        echo.extend(core::iter::repeat_n(b' ', stale));
        echo.extend(core::iter::repeat_n(BACKSPACE, stale));
        self.cursor = self.line.len();
    }

    fn history_back(&mut self, echo: &mut Vec<u8>) {
        let index = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = self.line.clone();
                self.history.len() - 1
            }
            Some(0) => return,
            Some(index) => index - 1,
        };
        self.browsing = Some(index);
        self.replace_line(self.history[index].chars().collect(), echo);
    }

    fn history_forward(&mut self, echo: &mut Vec<u8>) {
        let Some(index) = self.browsing else { return };
        if index + 1 < self.history.len() {
            self.browsing = Some(index + 1);
            self.replace_line(self.history[index + 1].chars().collect(), echo);
        } else {
            self.browsing = None;
            let draft = core::mem::take(&mut self.draft);
            self.replace_line(draft, echo);
        }
    }

    /// Enter: ends the line on the console, records it in the history and returns it.
    fn finish_line(&mut self, echo: &mut Vec<u8>) -> Input {
        self.move_to_end(echo);
        echo.push(b'\n');
        let line: String = self.line.drain(..).collect();
        self.cursor = 0;
        self.browsing = None;
        let is_repeat = self.history.back().is_some_and(|last| *last == line);
        if !line.trim().is_empty() && !is_repeat && self.history_capacity > 0 {
            if self.history.len() == self.history_capacity {
                self.history.pop_front();
            }
            self.history.push_back(line.clone());
        }
        Input::Line(line)
    }
}

/// Appends `characters`, UTF-8 encoded, to `echo`.
fn push_chars(echo: &mut Vec<u8>, characters: &[char]) {
    for character in characters {
        echo.extend_from_slice(character.encode_utf8(&mut [0; 4]).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: &[u8] = b"\x1b[A";
    const DOWN: &[u8] = b"\x1b[B";
    const RIGHT: &[u8] = b"\x1b[C";
    const LEFT: &[u8] = b"\x1b[D";

    /// Feeds `bytes`; returns the inputs completed and everything echoed.
    fn type_bytes(state: &mut LineState, bytes: &[u8]) -> (Vec<Input>, Vec<u8>) {
        let mut echo = Vec::new();
        let inputs = bytes.iter().filter_map(|&byte| state.feed(byte, &mut echo)).collect();
        (inputs, echo)
    }

    fn line(text: &str) -> Input {
        Input::Line(String::from(text))
    }

    /// What a terminal shows after `echo`: one line of cells, `\x08` moving left.
    fn screen(echo: &[u8]) -> String {
        let mut cells: Vec<char> = Vec::new();
        let mut column = 0;
        for character in String::from_utf8_lossy(echo).chars() {
            match character {
                '\x08' => column -= 1,
                character => {
                    if column == cells.len() {
                        cells.push(character);
                    } else {
                        cells[column] = character;
                    }
                    column += 1;
                }
            }
        }
        cells.into_iter().collect::<String>().trim_end().into()
    }

    #[test]
    fn typed_line_is_echoed_and_returned_on_enter() {
        let mut state = LineState::new(10);
        let (inputs, echo) = type_bytes(&mut state, b"echo hi\r");
        assert_eq!(inputs, [line("echo hi")]);
        assert_eq!(echo, b"echo hi\n");
    }

    #[test]
    fn crlf_is_one_enter_but_two_enters_are_two_lines() {
        let mut state = LineState::new(10);
        let (inputs, _) = type_bytes(&mut state, b"a\r\nb\n\n");
        assert_eq!(inputs, [line("a"), line("b"), line("")]);
    }

    #[test]
    fn backspace_erases_characters_and_stops_at_the_start() {
        let mut state = LineState::new(10);
        let (inputs, echo) = type_bytes(&mut state, "aé\x7f\x08\x08bc\x08d\n".as_bytes());
        assert_eq!(inputs, [line("bd")]);
        assert_eq!(screen(&echo[..echo.len() - 1]), "bd");
        assert!(echo.starts_with("aé\x08 \x08\x08 \x08".as_bytes()), "{echo:?}");
    }

    #[test]
    fn arrows_move_the_cursor_for_inserting_and_erasing_in_the_middle() {
        let mut state = LineState::new(10);
        let mut typed = b"ac".to_vec();
        typed.extend_from_slice(LEFT);
        typed.push(b'b');
        typed.extend_from_slice(LEFT);
        typed.extend_from_slice(LEFT);
        typed.push(0x7f);
        typed.extend_from_slice(LEFT);
        typed.extend_from_slice(RIGHT);
        typed.push(b'X');
        typed.extend_from_slice(b"\x1b[3~");
        typed.push(b'\n');
        let (inputs, echo) = type_bytes(&mut state, &typed);
        // "ac" → "abc" → Backspace at the start (nothing) → after 'a': "aXbc" → delete 'b'.
        assert_eq!(inputs, [line("aXc")]);
        assert_eq!(screen(&echo[..echo.len() - 1]), "aXc");
    }

    #[test]
    fn home_and_end_jump_to_the_ends() {
        let mut state = LineState::new(10);
        let (inputs, echo) = type_bytes(&mut state, b"bc\x1b[Ha\x1bOFd\n");
        assert_eq!(inputs, [line("abcd")]);
        assert_eq!(screen(&echo[..echo.len() - 1]), "abcd");
    }

    #[test]
    fn history_walks_back_and_forward_to_the_draft() {
        let mut state = LineState::new(10);
        type_bytes(&mut state, b"first\nsecond but longer\n");
        let mut typed = b"dra".to_vec();
        typed.extend_from_slice(UP);
        typed.extend_from_slice(UP);
        typed.extend_from_slice(UP);
        let (inputs, echo) = type_bytes(&mut state, &typed);
        assert!(inputs.is_empty());
        assert_eq!(screen(&echo), "first");
        let mut walk_forward = echo;
        walk_forward.extend_from_slice(type_bytes(&mut state, DOWN).1.as_slice());
        assert_eq!(screen(&walk_forward), "second but longer");
        walk_forward.extend_from_slice(type_bytes(&mut state, DOWN).1.as_slice());
        assert_eq!(screen(&walk_forward), "dra");
        let (inputs, _) = type_bytes(&mut state, b"ft\n");
        assert_eq!(inputs, [line("draft")]);
    }

    #[test]
    fn history_keeps_the_newest_lines_without_blanks_or_repeats() {
        let mut state = LineState::new(2);
        type_bytes(&mut state, b"one\ntwo\n  \ntwo\nthree\n");
        assert_eq!(state.history, ["two", "three"]);
        let mut typed = UP.to_vec();
        typed.extend_from_slice(UP);
        typed.extend_from_slice(UP);
        typed.push(b'\n');
        let (inputs, _) = type_bytes(&mut state, &typed);
        assert_eq!(inputs, [line("two")]);
    }

    #[test]
    fn ctrl_c_abandons_the_line_and_ctrl_d_ends_input_only_when_empty() {
        let mut state = LineState::new(10);
        let (inputs, echo) = type_bytes(&mut state, b"abc\x1b[D\x03");
        assert_eq!(inputs, [Input::Interrupted]);
        assert!(echo.ends_with(b"c^C\n"), "{echo:?}");
        let (inputs, _) = type_bytes(&mut state, b"x\x04\x7f\x04");
        assert_eq!(inputs, [Input::EndOfInput]);
    }

    #[test]
    fn control_bytes_and_unknown_sequences_are_ignored() {
        let mut state = LineState::new(10);
        let (inputs, echo) = type_bytes(&mut state, b"a\t\x01\x1b[1;5Z\x1b[15~b\n");
        assert_eq!(inputs, [line("ab")]);
        assert_eq!(echo, b"ab\n");
    }

    #[test]
    fn malformed_utf8_is_dropped() {
        let mut state = LineState::new(10);
        let (inputs, _) = type_bytes(&mut state, b"a\x80\xff\xc3b\xe2\x82\xac\n");
        assert_eq!(inputs, [line("ab€")]);
    }

    #[test]
    fn lines_stop_growing_at_the_limit() {
        let mut state = LineState::new(10);
        let mut typed = vec![b'x'; LINE_MAX + 5];
        typed.push(b'\n');
        let (inputs, _) = type_bytes(&mut state, &typed);
        assert_eq!(inputs, [Input::Line("x".repeat(LINE_MAX))]);
    }
}

//! The line discipline: turns typed bytes into what `read` returns.
//!
//! Keyboard and serial input arrive here as the same byte stream (UTF-8 text, `\r` or `\n`
//! for Enter, `0x08`/`0x7f` for Backspace, `0x03` for Ctrl-C, `0x04` for Ctrl-D, and ANSI
//! sequences such as `ESC [ A` for the arrow keys).
//!
//! - **Cooked** (the default): the line being typed is echoed and can be edited with
//!   Backspace (one whole UTF-8 character at a time); Enter completes it and makes it
//!   readable, and one `read` returns at most one line. Ctrl-C discards the line, echoes `^C`
//!   and asks the caller to interrupt the foreground process. Ctrl-D on an empty line makes
//!   the next `read` return 0 (end of input). Escape sequences are swallowed.
//! - **Raw**: every byte is readable as soon as it arrives, without echo, so a program such as
//!   the shell can do its own editing. Ctrl-C is still reported (and also delivered).
//!
//! This is pure logic, unit-tested on the host; the console server runs it.

use abi::keys::{BACKSPACE, CTRL_C, CTRL_D, DELETE, ESCAPE};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Longest line the cooked mode keeps; further bytes are dropped until Enter.
pub const LINE_MAX: usize = 1024;
/// Most complete lines waiting to be read in cooked mode.
const LINES_MAX: usize = 64;
/// Most bytes waiting to be read in raw mode.
const RAW_MAX: usize = 4096;


/// How input is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Line editing with echo.
    Cooked,
    /// Bytes as typed, no echo.
    Raw,
}

/// What the caller must do after feeding a byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing.
    None,
    /// Input became readable: wake the readers.
    InputReady,
    /// Ctrl-C: interrupt the foreground process (and wake readers in raw mode).
    Interrupt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    /// Not inside an escape sequence.
    Idle,
    /// After `ESC`.
    Started,
    /// After `ESC [`, until a final byte.
    Parameters,
}

/// The console's line discipline state.
#[derive(Debug)]
pub struct LineDiscipline {
    mode: Mode,
    line: Vec<u8>,
    /// Completed lines (cooked); an empty line is an end-of-input marker.
    lines: VecDeque<Vec<u8>>,
    /// Bytes waiting in raw mode.
    raw: VecDeque<u8>,
    escape: Escape,
    after_carriage_return: bool,
}

impl Default for LineDiscipline {
    fn default() -> Self {
        Self::new()
    }
}

impl LineDiscipline {
    /// An empty discipline in cooked mode.
    pub const fn new() -> Self {
        Self {
            mode: Mode::Cooked,
            line: Vec::new(),
            lines: VecDeque::new(),
            raw: VecDeque::new(),
            escape: Escape::Idle,
            after_carriage_return: false,
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Switches mode. Nothing typed is lost or reordered: switching to raw turns the
    /// completed cooked lines (an end-of-input mark becomes Ctrl-D) and the half-typed one into
    /// raw input, ahead of what is typed next. (Typing ahead while the shell switched to raw
    /// mode once split a command in two.)
    pub fn set_mode(&mut self, mode: Mode) {
        if self.mode == Mode::Cooked && mode == Mode::Raw {
            let lines = core::mem::take(&mut self.lines);
            let pending = lines
                .into_iter()
                .flat_map(|line| if line.is_empty() { alloc::vec![CTRL_D] } else { line })
                .chain(core::mem::take(&mut self.line));
            let room = RAW_MAX.saturating_sub(self.raw.len());
            self.raw.extend(pending.take(room));
        }
        self.mode = mode;
        self.escape = Escape::Idle;
    }

    /// Processes one input byte; `echo` receives whatever should appear on the console.
    pub fn feed(&mut self, byte: u8, echo: &mut impl FnMut(&[u8])) -> Reaction {
        let swallow_newline = self.after_carriage_return && byte == b'\n';
        self.after_carriage_return = byte == b'\r';
        if swallow_newline {
            return Reaction::None;
        }
        match self.mode {
            Mode::Raw => self.feed_raw(byte),
            Mode::Cooked => self.feed_cooked(byte, echo),
        }
    }

    fn feed_raw(&mut self, byte: u8) -> Reaction {
        if self.raw.len() < RAW_MAX {
            self.raw.push_back(byte);
        }
        if byte == CTRL_C { Reaction::Interrupt } else { Reaction::InputReady }
    }

    fn feed_cooked(&mut self, byte: u8, echo: &mut impl FnMut(&[u8])) -> Reaction {
        match self.escape {
            Escape::Started => {
                self.escape = if byte == b'[' { Escape::Parameters } else { Escape::Idle };
                return Reaction::None;
            }
            Escape::Parameters => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::Idle;
                }
                return Reaction::None;
            }
            Escape::Idle => {}
        }
        match byte {
            ESCAPE => {
                self.escape = Escape::Started;
                Reaction::None
            }
            b'\r' | b'\n' => {
                echo(b"\n");
                let mut line = core::mem::take(&mut self.line);
                line.push(b'\n');
                self.complete(line)
            }
            BACKSPACE | DELETE => {
                if self.pop_character() {
                    echo(b"\x08 \x08");
                }
                Reaction::None
            }
            CTRL_C => {
                self.line.clear();
                echo(b"^C\n");
                Reaction::Interrupt
            }
            CTRL_D if self.line.is_empty() => self.complete(Vec::new()),
            CTRL_D => {
                let line = core::mem::take(&mut self.line);
                self.complete(line)
            }
            byte if byte < 0x20 && byte != b'\t' => Reaction::None,
            byte => {
                if self.line.len() < LINE_MAX {
                    self.line.push(byte);
                    echo(&[byte]);
                }
                Reaction::None
            }
        }
    }

    fn complete(&mut self, line: Vec<u8>) -> Reaction {
        if self.lines.len() < LINES_MAX {
            self.lines.push_back(line);
        }
        Reaction::InputReady
    }

    /// Removes the last UTF-8 character of the line; false if the line was empty.
    fn pop_character(&mut self) -> bool {
        while let Some(byte) = self.line.pop() {
            // Continuation bytes are 0b10xx_xxxx; stop after removing the lead byte.
            if byte & 0xc0 != 0x80 {
                return true;
            }
        }
        false
    }

    /// Whether a `read` would return now.
    pub fn has_input(&self) -> bool {
        !self.lines.is_empty() || !self.raw.is_empty()
    }

    /// Moves readable input into `out`: raw bytes first, then at most one cooked line (the
    /// rest of a line longer than `out` stays for the next read). Returns `None` when
    /// nothing is readable, `Some(0)` for end of input.
    pub fn take(&mut self, out: &mut [u8]) -> Option<usize> {
        let count = self.peek(out)?;
        self.consume(count);
        Some(count)
    }

    /// Copies what [`take`](Self::take) would move into `out`, leaving it readable: the
    /// console hands input to a reader and lets it go only once the reader got it.
    pub fn peek(&self, out: &mut [u8]) -> Option<usize> {
        if !self.raw.is_empty() {
            let count = out.len().min(self.raw.len());
            for (slot, &byte) in out.iter_mut().zip(self.raw.iter()) {
                *slot = byte;
            }
            return Some(count);
        }
        let line = self.lines.front()?;
        let count = out.len().min(line.len());
        out[..count].copy_from_slice(&line[..count]);
        Some(count)
    }

    /// Lets go of the `count` bytes the last [`peek`](Self::peek) showed (0 for an end of
    /// input, which is let go of too).
    pub fn consume(&mut self, count: usize) {
        if !self.raw.is_empty() {
            self.raw.drain(..count.min(self.raw.len()));
            return;
        }
        let Some(line) = self.lines.front_mut() else { return };
        line.drain(..count.min(line.len()));
        if line.is_empty() {
            self.lines.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeked_input_stays_until_consumed() {
        let mut discipline = LineDiscipline::new();
        feed_all(&mut discipline, b"one\ntwo\n");
        let mut out = [0u8; 16];
        assert_eq!(discipline.peek(&mut out), Some(4));
        assert_eq!(discipline.peek(&mut out), Some(4), "a peek took the line");
        discipline.consume(4);
        assert_eq!(discipline.take(&mut out), Some(4));
        assert_eq!(&out[..4], b"two\n");
        discipline.set_mode(Mode::Raw);
        feed_all(&mut discipline, b"xy");
        assert_eq!(discipline.peek(&mut out[..1]), Some(1));
        discipline.consume(1);
        assert_eq!(discipline.take(&mut out), Some(1));
        assert_eq!(out[0], b'y');
        assert_eq!(discipline.take(&mut out), None);
    }

    fn feed_all(discipline: &mut LineDiscipline, bytes: &[u8]) -> (Vec<u8>, Vec<Reaction>) {
        let mut echoed = Vec::new();
        let reactions = bytes.iter().map(|&byte| discipline.feed(byte, &mut |text| echoed.extend_from_slice(text))).collect();
        (echoed, reactions)
    }

    fn read_all(discipline: &mut LineDiscipline) -> Vec<u8> {
        let mut buffer = [0u8; 256];
        let count = discipline.take(&mut buffer).expect("input expected");
        buffer[..count].to_vec()
    }

    #[test]
    fn typing_ahead_across_a_switch_to_raw_keeps_every_byte_in_order() {
        let mut discipline = LineDiscipline::new();
        feed_all(&mut discipline, b"uptime\necho se");
        discipline.set_mode(Mode::Raw);
        feed_all(&mut discipline, b"cond\n");
        let mut read = Vec::new();
        while discipline.has_input() {
            read.extend(read_all(&mut discipline));
        }
        assert_eq!(read, b"uptime\necho second\n");
    }

    #[test]
    fn cooked_line_is_echoed_and_readable_after_enter() {
        let mut discipline = LineDiscipline::new();
        let (echoed, reactions) = feed_all(&mut discipline, b"hi");
        assert_eq!(echoed, b"hi");
        assert!(!discipline.has_input());
        assert_eq!(reactions, [Reaction::None, Reaction::None]);
        let (echoed, reactions) = feed_all(&mut discipline, b"\r");
        assert_eq!(echoed, b"\n");
        assert_eq!(reactions, [Reaction::InputReady]);
        assert_eq!(read_all(&mut discipline), b"hi\n");
        assert_eq!(discipline.take(&mut [0; 8]), None);
    }

    #[test]
    fn backspace_erases_whole_utf8_characters() {
        let mut discipline = LineDiscipline::new();
        let (echoed, _) = feed_all(&mut discipline, "aé\x7f\x08\x08b\n".as_bytes());
        assert_eq!(read_all(&mut discipline), b"b\n");
        // Two erasures echoed (é and a), the third backspace on an empty line echoes nothing.
        assert_eq!(echoed.windows(3).filter(|window| window == b"\x08 \x08").count(), 2);
    }

    #[test]
    fn crlf_counts_as_one_enter() {
        let mut discipline = LineDiscipline::new();
        feed_all(&mut discipline, b"a\r\nb\n");
        assert_eq!(read_all(&mut discipline), b"a\n");
        assert_eq!(read_all(&mut discipline), b"b\n");
        assert!(!discipline.has_input());
    }

    #[test]
    fn ctrl_c_discards_the_line_and_asks_for_an_interrupt() {
        let mut discipline = LineDiscipline::new();
        let (echoed, reactions) = feed_all(&mut discipline, b"abc\x03");
        assert_eq!(reactions.last(), Some(&Reaction::Interrupt));
        assert!(echoed.ends_with(b"^C\n"));
        feed_all(&mut discipline, b"x\n");
        assert_eq!(read_all(&mut discipline), b"x\n");
    }

    #[test]
    fn ctrl_d_on_empty_line_is_end_of_input() {
        let mut discipline = LineDiscipline::new();
        feed_all(&mut discipline, b"\x04");
        assert_eq!(discipline.take(&mut [0; 8]), Some(0));
        assert_eq!(discipline.take(&mut [0; 8]), None);
    }

    #[test]
    fn long_line_is_read_in_pieces_and_capped() {
        let mut discipline = LineDiscipline::new();
        let long = vec![b'x'; LINE_MAX + 50];
        feed_all(&mut discipline, &long);
        feed_all(&mut discipline, b"\n");
        let mut total = 0;
        let mut buffer = [0u8; 100];
        while let Some(count) = discipline.take(&mut buffer) {
            total += count;
            if buffer[..count].ends_with(b"\n") {
                break;
            }
        }
        assert_eq!(total, LINE_MAX + 1);
    }

    #[test]
    fn escape_sequences_are_swallowed_in_cooked_mode() {
        let mut discipline = LineDiscipline::new();
        let (echoed, _) = feed_all(&mut discipline, b"a\x1b[Ab\n");
        assert_eq!(echoed, b"ab\n");
        assert_eq!(read_all(&mut discipline), b"ab\n");
    }

    #[test]
    fn raw_mode_delivers_bytes_at_once_without_echo() {
        let mut discipline = LineDiscipline::new();
        discipline.set_mode(Mode::Raw);
        let (echoed, reactions) = feed_all(&mut discipline, b"q\x1b[A\x03");
        assert!(echoed.is_empty());
        assert_eq!(reactions[0], Reaction::InputReady);
        assert_eq!(reactions.last(), Some(&Reaction::Interrupt));
        assert_eq!(read_all(&mut discipline), b"q\x1b[A\x03");
    }

    #[test]
    fn control_bytes_other_than_tab_are_ignored_in_cooked_mode() {
        let mut discipline = LineDiscipline::new();
        feed_all(&mut discipline, b"a\x01\tb\n");
        assert_eq!(read_all(&mut discipline), b"a\tb\n");
    }
}

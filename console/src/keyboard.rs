//! PS/2 keyboard decoding: scancode set 1 bytes to the console's input bytes.
//!
//! `pc-keyboard` turns scancodes into key events with a US layout; this module turns
//! those into the byte stream the line discipline reads, the same bytes a serial terminal
//! would send: UTF-8 text, `\n` for Enter, `0x08` for Backspace, control characters for
//! Ctrl+letter, and ANSI sequences for the arrow, Home and End keys.

use pc_keyboard::layouts::Us104Key;
use pc_keyboard::{DecodedKey, HandleControl, KeyCode, PS2Keyboard, ScancodeSet1};

/// The bytes one key press produces (at most four: a UTF-8 character or `ESC [ x`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyBytes {
    bytes: [u8; 4],
    len: usize,
}

impl KeyBytes {
    fn from_slice(bytes: &[u8]) -> Self {
        let mut key = Self::default();
        key.bytes[..bytes.len()].copy_from_slice(bytes);
        key.len = bytes.len();
        key
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Decoder state: modifier keys and multi-byte scancodes in flight.
pub struct KeyboardDecoder {
    keyboard: PS2Keyboard<Us104Key, ScancodeSet1>,
}

impl Default for KeyboardDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyboardDecoder {
    /// A decoder for a US keyboard sending scancode set 1 (what the PS/2 controller
    /// translates to by default).
    pub const fn new() -> Self {
        Self { keyboard: PS2Keyboard::new(ScancodeSet1::new(), Us104Key, HandleControl::MapLettersToUnicode) }
    }

    /// Feeds one scancode byte; returns the input bytes of a completed key press, if any.
    pub fn decode(&mut self, scancode: u8) -> Option<KeyBytes> {
        let event = self.keyboard.add_byte(scancode).ok()??;
        match self.keyboard.process_keyevent(event)? {
            DecodedKey::Unicode(character) => {
                let mut buffer = [0u8; 4];
                Some(KeyBytes::from_slice(character.encode_utf8(&mut buffer).as_bytes()))
            }
            DecodedKey::RawKey(code) => {
                let sequence: &[u8] = match code {
                    KeyCode::ArrowUp => b"\x1b[A",
                    KeyCode::ArrowDown => b"\x1b[B",
                    KeyCode::ArrowRight => b"\x1b[C",
                    KeyCode::ArrowLeft => b"\x1b[D",
                    KeyCode::Home => b"\x1b[H",
                    KeyCode::End => b"\x1b[F",
                    _ => return None,
                };
                Some(KeyBytes::from_slice(sequence))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_scancodes(codes: &[u8]) -> Vec<u8> {
        let mut decoder = KeyboardDecoder::new();
        codes.iter().filter_map(|&code| decoder.decode(code)).flat_map(|key| key.as_slice().to_vec()).collect()
    }

    #[test]
    fn letters_shift_and_enter() {
        // a, Shift down, b, Shift up, Enter (press and release codes).
        let codes = [0x1e, 0x9e, 0x2a, 0x30, 0xb0, 0xaa, 0x1c, 0x9c];
        assert_eq!(type_scancodes(&codes), b"aB\n");
    }

    #[test]
    fn control_c_and_backspace() {
        // Ctrl down, c, Ctrl up, Backspace.
        let codes = [0x1d, 0x2e, 0xae, 0x9d, 0x0e, 0x8e];
        assert_eq!(type_scancodes(&codes), b"\x03\x08");
    }

    #[test]
    fn arrow_keys_become_ansi_sequences() {
        // Extended (0xe0) up arrow press and release.
        let codes = [0xe0, 0x48, 0xe0, 0xc8];
        assert_eq!(type_scancodes(&codes), b"\x1b[A");
    }
}

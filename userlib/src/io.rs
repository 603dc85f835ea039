//! Standard streams: output (`print!`, `println!`, `eprint!`, `eprintln!`), line input, and
//! copying between streams. Handles 0, 1 and 2 are whatever the parent chose: the console, a
//! pipe's end or an open file; `read` and `write` work the same on each.

use alloc::string::String;
use core::fmt::{self, Write};

use crate::sys;

/// Standard input.
pub const STDIN: u64 = 0;
/// Standard output.
pub const STDOUT: u64 = 1;
/// Standard error.
pub const STDERR: u64 = 2;

/// Bytes [`copy`] moves per `read`.
const COPY_CHUNK: usize = 16 * 1024;

/// Copies the stream `from` to the stream `to` until `from` ends: the bytes copied.
pub fn copy(from: u64, to: u64) -> Result<u64, sys::Errno> {
    let mut chunk = alloc::vec![0u8; COPY_CHUNK];
    let mut total = 0;
    loop {
        match sys::read(from, &mut chunk)? {
            0 => return Ok(total),
            count => {
                crate::fs::write_all(to, &chunk[..count.min(chunk.len())])?;
                total += count as u64;
            }
        }
    }
}

/// A buffered writer to a stream handle; flushes when full and when dropped.
pub struct Console {
    fd: u64,
    buffer: [u8; 256],
    used: usize,
}

impl Console {
    /// A writer to `fd`.
    pub fn new(fd: u64) -> Self {
        Self { fd, buffer: [0; 256], used: 0 }
    }

    /// Sends what is buffered.
    pub fn flush(&mut self) {
        if self.used > 0 {
            // Output errors have nowhere to be reported (a reader that went away, say).
            let _ = crate::fs::write_all(self.fd, &self.buffer[..self.used]);
            self.used = 0;
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for &byte in text.as_bytes() {
            if self.used == self.buffer.len() {
                self.flush();
            }
            self.buffer[self.used] = byte;
            self.used += 1;
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Formats to `fd`; the body of the print macros.
pub fn print_to(fd: u64, args: fmt::Arguments) {
    let _ = Console::new(fd).write_fmt(args);
}

/// Reads one line from the console into `line` (appended, with its `\n` when there is one).
/// Returns the number of bytes read; 0 means end of input.
pub fn read_line(line: &mut String) -> Result<usize, sys::Errno> {
    let mut bytes = alloc::vec::Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let count = sys::read(STDIN, &mut chunk)?;
        bytes.extend_from_slice(&chunk[..count]);
        if count == 0 || bytes.ends_with(b"\n") {
            break;
        }
    }
    line.push_str(&String::from_utf8_lossy(&bytes));
    Ok(bytes.len())
}

/// Prints to standard output.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::io::print_to($crate::io::STDOUT, format_args!($($arg)*)));
}

/// Prints a line to standard output.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::io::print_to($crate::io::STDOUT, format_args!("{}\n", format_args!($($arg)*))));
}

/// Prints to standard error.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => ($crate::io::print_to($crate::io::STDERR, format_args!($($arg)*)));
}

/// Prints a line to standard error.
#[macro_export]
macro_rules! eprintln {
    () => ($crate::eprint!("\n"));
    ($($arg:tt)*) => ($crate::io::print_to($crate::io::STDERR, format_args!("{}\n", format_args!($($arg)*))));
}

//! `head [-n LINES] [FILE...]`: the first LINES lines (10 by default) of each FILE, or of
//! standard input. It stops reading as soon as it has them, so `yes | head -n 3` ends (and
//! `yes`, writing to a pipe nobody reads, gets `EPIPE`). Exit status 1 if a file could not
//! be read, 2 for bad usage.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use userlib::{args, eprintln, fs, io, sys};

userlib::main!(main);

fn main() -> i32 {
    let mut words = args().get(1..).unwrap_or_default();
    let mut lines = 10;
    if words.first() == Some(&"-n") {
        let Some(count) = words.get(1).and_then(|text| text.parse().ok()) else {
            eprintln!("usage: head [-n LINES] [FILE...]");
            return 2;
        };
        lines = count;
        words = &words[2..];
    }
    let sources: Vec<Option<&str>> = if words.is_empty() { alloc::vec![None] } else { words.iter().copied().map(Some).collect() };
    let mut status = 0;
    for source in sources {
        let copied = match source {
            None => copy_lines(io::STDIN, lines),
            Some(name) => fs::File::open(name).and_then(|file| copy_lines(file.handle().raw(), lines)),
        };
        if let Err(error) = copied {
            eprintln!("head: {}: {error}", source.unwrap_or("standard input"));
            status = 1;
        }
    }
    status
}

/// Copies the first `lines` lines of `stream` to standard output.
fn copy_lines(stream: u64, mut lines: u64) -> sys::Result<()> {
    let mut chunk = alloc::vec![0u8; 4096];
    while lines > 0 {
        let read = sys::read(stream, &mut chunk)?;
        if read == 0 {
            return Ok(());
        }
        let mut end = 0;
        for (index, &byte) in chunk[..read].iter().enumerate() {
            if byte == b'\n' {
                lines -= 1;
                if lines == 0 {
                    end = index + 1;
                    break;
                }
            }
            end = index + 1;
        }
        fs::write_all(io::STDOUT, &chunk[..end])?;
    }
    Ok(())
}

//! `yes [-n COUNT] [TEXT...]`: prints a line of `y` (or of the TEXT words separated by spaces)
//! over and over, forever or, with `-n`, COUNT times; for scrolling and output-throughput
//! tests. Lines go out in batches of about 4 KiB per `write`. When nobody reads the output
//! any more (`yes | head -n 3` once `head` has its lines) the write fails with `EPIPE`, and
//! `yes` ends quietly with status 0. Exit status 2 for a bad count, 1 for another error.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;

use userlib::{args, eprintln, io, sys};

userlib::main!(main);

/// Bytes of output per `write` (at least one line).
const BATCH_BYTES: usize = 4096;

fn main() -> i32 {
    let mut words = args().get(1..).unwrap_or_default();
    let mut remaining: Option<u64> = None;
    if words.first() == Some(&"-n") {
        let Some(count) = words.get(1).and_then(|text| text.parse().ok()) else {
            eprintln!("usage: yes [-n COUNT] [TEXT...]");
            return 2;
        };
        remaining = Some(count);
        words = &words[2..];
    }
    let mut line = if words.is_empty() { String::from("y") } else { words.join(" ") };
    line.push('\n');
    let lines_per_batch = (BATCH_BYTES / line.len()).max(1);
    let batch = line.repeat(lines_per_batch);
    loop {
        let lines = remaining.map_or(lines_per_batch, |remaining| remaining.min(lines_per_batch as u64) as usize);
        if lines == 0 {
            return 0;
        }
        match userlib::fs::write_all(io::STDOUT, &batch.as_bytes()[..lines * line.len()]) {
            Ok(()) => {}
            Err(sys::Errno(abi::errno::EPIPE)) => return 0,
            Err(error) => {
                eprintln!("yes: {error}");
                return 1;
            }
        }
        if let Some(remaining) = &mut remaining {
            *remaining -= lines as u64;
        }
    }
}

//! `wc [-l] [-w] [-c] [FILE...]`: counts the lines, words and bytes of each FILE (or of
//! standard input): with flags, only those counts, in that order; the file's name follows
//! when there is one. Exit status 1 if a file could not be read.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use userlib::{args, eprintln, fs, io, println, sys};

userlib::main!(main);

/// Lines, words and bytes.
#[derive(Default)]
struct Counts {
    lines: u64,
    words: u64,
    bytes: u64,
    in_word: bool,
}

impl Counts {
    fn add(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.lines += u64::from(byte == b'\n');
            let space = byte.is_ascii_whitespace();
            self.words += u64::from(!space && !self.in_word);
            self.in_word = !space;
        }
        self.bytes += bytes.len() as u64;
    }
}

fn main() -> i32 {
    let (mut flags, mut files) = (Vec::new(), Vec::new());
    for &arg in args().get(1..).unwrap_or_default() {
        match arg {
            "-l" | "-w" | "-c" => flags.push(arg),
            file => files.push(file),
        }
    }
    if flags.is_empty() {
        flags = alloc::vec!["-l", "-w", "-c"];
    }
    let mut status = 0;
    let sources: Vec<Option<&str>> = if files.is_empty() { alloc::vec![None] } else { files.into_iter().map(Some).collect() };
    for source in sources {
        let counted = match source {
            None => count(io::STDIN),
            Some(name) => fs::File::open(name).and_then(|file| count(file.handle().raw())),
        };
        match counted {
            Ok(counts) => {
                let mut line = String::new();
                for flag in ["-l", "-w", "-c"].iter().filter(|flag| flags.contains(flag)) {
                    let value = match *flag {
                        "-l" => counts.lines,
                        "-w" => counts.words,
                        _ => counts.bytes,
                    };
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(&alloc::format!("{value}"));
                }
                match source {
                    Some(name) => println!("{line} {name}"),
                    None => println!("{line}"),
                }
            }
            Err(error) => {
                eprintln!("wc: {}: {error}", source.unwrap_or("standard input"));
                status = 1;
            }
        }
    }
    status
}

fn count(stream: u64) -> sys::Result<Counts> {
    let mut counts = Counts::default();
    let mut chunk = alloc::vec![0u8; 16 * 1024];
    loop {
        match sys::read(stream, &mut chunk)? {
            0 => return Ok(counts),
            read => counts.add(&chunk[..read.min(chunk.len())]),
        }
    }
}

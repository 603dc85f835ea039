//! `grep TEXT [FILE...]`: prints the lines of each FILE (or of standard input) that contain
//! TEXT (a plain string, not a pattern), each after its file's name when there are several.
//! Exit status 0 if a line matched, 1 if none did, 2 for bad usage or a file that could not
//! be read.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use userlib::{args, eprintln, fs, io, print, sys};

userlib::main!(main);

fn main() -> i32 {
    let Some((&text, files)) = args().get(1..).and_then(<[&str]>::split_first) else {
        eprintln!("usage: grep TEXT [FILE...]");
        return 2;
    };
    let sources: Vec<Option<&str>> = if files.is_empty() { alloc::vec![None] } else { files.iter().copied().map(Some).collect() };
    let (mut matched, mut failed) = (false, false);
    for &source in &sources {
        let prefix = if sources.len() > 1 { source } else { None };
        let searched = match source {
            None => search(io::STDIN, text.as_bytes(), prefix),
            Some(name) => fs::File::open(name).and_then(|file| search(file.handle().raw(), text.as_bytes(), prefix)),
        };
        match searched {
            Ok(found) => matched |= found,
            Err(error) => {
                eprintln!("grep: {}: {error}", source.unwrap_or("standard input"));
                failed = true;
            }
        }
    }
    if failed {
        2
    } else if matched {
        0
    } else {
        1
    }
}

/// Prints the lines of `stream` that contain `text`; whether there was one.
fn search(stream: u64, text: &[u8], prefix: Option<&str>) -> sys::Result<bool> {
    let mut found = false;
    let mut line = Vec::new();
    let mut chunk = alloc::vec![0u8; 4096];
    loop {
        let read = sys::read(stream, &mut chunk)?;
        for &byte in &chunk[..read] {
            line.push(byte);
            if byte == b'\n' {
                found |= report(&line, text, prefix);
                line.clear();
            }
        }
        if read == 0 {
            if !line.is_empty() {
                line.push(b'\n');
                found |= report(&line, text, prefix);
            }
            return Ok(found);
        }
    }
}

/// Prints `line` if it contains `text`; whether it did.
fn report(line: &[u8], text: &[u8], prefix: Option<&str>) -> bool {
    let contains = text.is_empty() || line.windows(text.len()).any(|window| window == text);
    if contains {
        if let Some(name) = prefix {
            print!("{name}:");
        }
        print!("{}", alloc::string::String::from_utf8_lossy(line));
    }
    contains
}

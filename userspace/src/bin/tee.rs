//! `tee [-a] FILE...`: copies standard input to standard output and to each FILE (emptied
//! first, or appended to with `-a`). Exit status 1 if a file could not be opened or written.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use userlib::fs::{self, open};
use userlib::{args, eprintln, io, sys};

userlib::main!(main);

fn main() -> i32 {
    let mut mode = open::WRITE | open::CREATE | open::TRUNCATE;
    let mut outputs = Vec::new();
    let mut status = 0;
    for &name in args().get(1..).unwrap_or_default() {
        if name == "-a" {
            mode = open::WRITE | open::CREATE | open::APPEND;
            continue;
        }
        match fs::File::open_with(name, mode) {
            Ok(file) => outputs.push((name, file)),
            Err(error) => {
                eprintln!("tee: {name}: {error}");
                status = 1;
            }
        }
    }
    let mut chunk = alloc::vec![0u8; 4096];
    loop {
        let read = match sys::read(io::STDIN, &mut chunk) {
            Ok(0) => return status,
            Ok(read) => read,
            Err(error) => {
                eprintln!("tee: standard input: {error}");
                return 1;
            }
        };
        if fs::write_all(io::STDOUT, &chunk[..read]).is_err() {
            status = 1;
        }
        outputs.retain(|(name, file)| match file.write_all(&chunk[..read]) {
            Ok(()) => true,
            Err(error) => {
                eprintln!("tee: {name}: {error}");
                status = 1;
                false
            }
        });
    }
}

//! `ls [-l] [PATH...]`: lists each directory's entries in name order, one per line (a file is
//! listed as itself); no PATH lists the current directory. With `-l`, each line also says
//! `d` for a directory or `-` for a file, and the size (bytes, or entries of a directory).
//! Exit status 1 if a PATH could not be listed.
#![no_std]
#![no_main]

extern crate alloc;

use userlib::fs::{self, DirEntry, KIND_DIRECTORY};
use userlib::{args, eprintln, println};

userlib::main!(main);

fn main() -> i32 {
    let mut long = false;
    let mut paths = alloc::vec::Vec::new();
    for &arg in args().get(1..).unwrap_or_default() {
        match arg {
            "-l" => long = true,
            path => paths.push(path),
        }
    }
    if paths.is_empty() {
        paths.push(".");
    }
    let mut status = 0;
    for (index, &path) in paths.iter().enumerate() {
        let listed = fs::metadata(path).and_then(|metadata| {
            if !metadata.is_dir() {
                return Ok(alloc::vec![DirEntry { name: path.into(), kind: metadata.kind, size: metadata.size }]);
            }
            fs::read_dir(path)
        });
        match listed {
            Ok(entries) => {
                if paths.len() > 1 {
                    println!("{}{path}:", if index > 0 { "\n" } else { "" });
                }
                for entry in entries {
                    if long {
                        let kind = if entry.kind == KIND_DIRECTORY { 'd' } else { '-' };
                        println!("{kind} {:>8} {}", entry.size, entry.name);
                    } else {
                        println!("{}", entry.name);
                    }
                }
            }
            Err(error) => {
                eprintln!("ls: {path}: {error}");
                status = 1;
            }
        }
    }
    status
}



//! `cat [FILE...]`: copies each FILE (`-`, or no FILE at all, for standard input) to standard
//! output. Exit status 1 if a file could not be read (the others are still copied).
#![no_std]
#![no_main]

use userlib::{args, eprintln, fs, io};

userlib::main!(main);

fn main() -> i32 {
    let files = args().get(1..).unwrap_or_default();
    if files.is_empty() {
        return copy_or_report("standard input", io::STDIN);
    }
    let mut status = 0;
    for &name in files {
        status |= if name == "-" {
            copy_or_report(name, io::STDIN)
        } else {
            match fs::File::open(name) {
                Ok(file) => copy_or_report(name, file.handle().raw()),
                Err(error) => {
                    eprintln!("cat: {name}: {error}");
                    1
                }
            }
        };
    }
    status
}

/// Copies the stream `from` to standard output: 0, or 1 after saying what failed.
fn copy_or_report(name: &str, from: u64) -> i32 {
    match io::copy(from, io::STDOUT) {
        Ok(_) => 0,
        Err(error) => {
            eprintln!("cat: {name}: {error}");
            1
        }
    }
}

//! `mkdir DIR...`: makes each directory. Exit status 1 if one could not be made.
#![no_std]
#![no_main]

use userlib::{args, eprintln, fs};

userlib::main!(main);

fn main() -> i32 {
    let mut status = 0;
    for &name in args().get(1..).unwrap_or_default() {
        if let Err(error) = fs::mkdir(name) {
            eprintln!("mkdir: {name}: {error}");
            status = 1;
        }
    }
    status
}

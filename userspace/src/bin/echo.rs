//! `echo [ARGS...]`: prints its arguments separated by single spaces, then a newline.
#![no_std]
#![no_main]

extern crate alloc;

use userlib::{args, println};

userlib::main!(main);

fn main() {
    println!("{}", args().get(1..).unwrap_or_default().join(" "));
}

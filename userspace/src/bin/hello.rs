//! `hello [ARGS...]`: greets from ring 3 with its pid, privilege level and arguments.
#![no_std]
#![no_main]

extern crate alloc;

use userlib::{args, println, sys};

userlib::main!(main);

fn main() -> i32 {
    println!("Hello from ring 3");
    println!("pid={} cpl={}", sys::getpid(), userlib::privilege_level());
    println!("args: {}", args().join(" "));
    0
}

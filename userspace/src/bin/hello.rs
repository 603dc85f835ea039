//! `hello [ARGS...]`: greets from ring 3 with its pid, privilege level and arguments.
#![no_std]
#![no_main]

use userlib::{args, println, sys};

userlib::main!(main);

fn main() -> i32 {
    println!("Hello from ring 3");
    println!("pid={} cpl={}", sys::getpid(), userlib::privilege_level());
    let mut line = alloc::string::String::from("args:");
    for arg in args() {
        line.push(' ');
        line.push_str(arg);
    }
    println!("{line}");
    0
}

extern crate alloc;

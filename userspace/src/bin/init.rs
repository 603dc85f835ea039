//! `init`: the first process. Starts `hello` and exits with its status.
#![no_std]
#![no_main]

use userlib::{eprintln, sys};

userlib::main!(main);

fn main() -> i32 {
    match sys::spawn("hello", &[]) {
        Ok(pid) => sys::wait(Some(pid)).map_or(1, |(_, status)| status),
        Err(error) => {
            eprintln!("init: cannot start hello: {error}");
            1
        }
    }
}

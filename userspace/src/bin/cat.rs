//! `cat`: copies console input to the console, line by line, until end of input (Ctrl-D on an
//! empty line).
#![no_std]
#![no_main]

use userlib::{eprintln, sys};

userlib::main!(main);

fn main() -> i32 {
    let mut buffer = [0u8; 512];
    loop {
        match sys::read(userlib::io::STDIN, &mut buffer) {
            Ok(0) => return 0,
            Ok(count) => {
                let _ = sys::write(userlib::io::STDOUT, &buffer[..count]);
            }
            Err(error) => {
                eprintln!("cat: {error}");
                return 1;
            }
        }
    }
}

//! `mv FROM TO`: renames FROM to TO; if TO is a directory, to FROM's name in it. Exit status
//! 1 on failure, 2 for bad usage.
#![no_std]
#![no_main]

extern crate alloc;

use userlib::{args, eprintln, fs};

userlib::main!(main);

fn main() -> i32 {
    let [_, from, to] = args() else {
        eprintln!("usage: mv FROM TO");
        return 2;
    };
    let target = fs::into_directory(from, to);
    match fs::rename(from, &target) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("mv: {from} to {target}: {error}");
            1
        }
    }
}

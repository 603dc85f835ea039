//! `rm [-d] NAME...`: removes each file; after `-d`, empty directories instead. Exit status
//! 1 if one could not be removed.
#![no_std]
#![no_main]

use userlib::{args, eprintln, fs};

userlib::main!(main);

fn main() -> i32 {
    let mut directories = false;
    let mut status = 0;
    for &name in args().get(1..).unwrap_or_default() {
        if name == "-d" {
            directories = true;
            continue;
        }
        let removed = if directories { fs::rmdir(name) } else { fs::unlink(name) };
        if let Err(error) = removed {
            eprintln!("rm: {name}: {error}");
            status = 1;
        }
    }
    status
}

//! `touch FILE...`: makes each file that does not exist yet (empty); existing ones are left
//! as they are. Exit status 1 if one could not be made.
#![no_std]
#![no_main]

use userlib::fs::{self, open};
use userlib::{args, eprintln};

userlib::main!(main);

fn main() -> i32 {
    let mut status = 0;
    for &name in args().get(1..).unwrap_or_default() {
        if let Err(error) = fs::File::open_with(name, open::WRITE | open::CREATE) {
            eprintln!("touch: {name}: {error}");
            status = 1;
        }
    }
    status
}

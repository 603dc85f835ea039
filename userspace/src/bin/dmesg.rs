//! `dmesg`: prints the kernel's log, as much as its ring retains (the boot log first). It
//! reads through the log handle `init` registers with the name service as `log`, which may
//! only read.
#![no_std]
#![no_main]

extern crate alloc;

use userlib::{eprintln, names, print, sys};

userlib::main!(main);

/// The kernel's ring holds 64 KiB.
const RING_BYTES: usize = 64 * 1024;

fn main() -> i32 {
    let log = match names::lookup_handle("log") {
        Ok(log) => log,
        Err(error) => {
            eprintln!("dmesg: no log: {error}");
            return 1;
        }
    };
    let mut bytes = alloc::vec![0u8; RING_BYTES];
    match sys::log_read(log.raw(), &mut bytes) {
        Ok(count) => {
            print!("{}", alloc::string::String::from_utf8_lossy(&bytes[..count]));
            0
        }
        Err(error) => {
            eprintln!("dmesg: {error}");
            1
        }
    }
}

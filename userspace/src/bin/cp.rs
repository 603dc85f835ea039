//! `cp FROM TO`: copies the file FROM to TO (created, or emptied first); if TO is a
//! directory, to the file of FROM's name in it. Exit status 1 on failure, 2 for bad usage.
#![no_std]
#![no_main]

extern crate alloc;

use userlib::{args, eprintln, fs, io};

userlib::main!(main);

fn main() -> i32 {
    let [_, from, to] = args() else {
        eprintln!("usage: cp FROM TO");
        return 2;
    };
    let target = fs::into_directory(from, to);
    let copied = fs::File::open(from).and_then(|source| {
        let destination = fs::File::create(&target)?;
        io::copy(source.handle().raw(), destination.handle().raw())
    });
    match copied {
        Ok(_) => 0,
        Err(error) => {
            eprintln!("cp: {from} to {target}: {error}");
            1
        }
    }
}

//! `sleep DURATION`: blocks for DURATION, given as whole or fractional seconds (`2`, `0.5`,
//! `1.5s`) or as milliseconds (`300ms`). Exit status 2 for a bad argument.
#![no_std]
#![no_main]

use userlib::time::{self, DURATION_SYNTAX, parse_duration};
use userlib::{args, eprintln};

userlib::main!(main);

fn main() -> i32 {
    let [_, text] = args() else {
        eprintln!("usage: sleep DURATION ({DURATION_SYNTAX})");
        return 2;
    };
    let Some(duration) = parse_duration(text) else {
        eprintln!("sleep: bad duration '{text}': use {DURATION_SYNTAX}");
        return 2;
    };
    match time::sleep(duration) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("sleep: {error}");
            1
        }
    }
}

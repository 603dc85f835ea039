//! `spin [DURATION]`: keeps the CPU busy in ring 3, for trying out preemption and Ctrl-C.
//! Without an argument it spins until killed, making no syscalls at all; with one (`2`, `0.5`,
//! `300ms`, as `sleep` takes it) it spins that long and says when it is done. It announces its
//! pid when it starts.
#![no_std]
#![no_main]

use userlib::time::{self, DURATION_SYNTAX, parse_duration};
use userlib::{args, eprintln, println, sys};

userlib::main!(main);

fn main() -> i32 {
    let pid = sys::getpid();
    let limit = match args() {
        [_] => None,
        [_, text] => match parse_duration(text) {
            Some(limit) => Some(limit),
            None => {
                eprintln!("spin: bad duration '{text}': use {DURATION_SYNTAX}");
                return 2;
            }
        },
        _ => {
            eprintln!("usage: spin [DURATION] ({DURATION_SYNTAX})");
            return 2;
        }
    };
    let Some(limit) = limit else {
        println!("spin: pid {pid} spinning until killed");
        loop {
            burn();
        }
    };
    println!("spin: pid {pid} spinning for {limit:?}");
    let start = time::uptime();
    let mut rounds: u64 = 0;
    while time::uptime().saturating_sub(start) < limit {
        burn();
        rounds += 1;
    }
    println!("spin: pid {pid} done after {limit:?} ({rounds} rounds)");
    0
}

/// A stretch of pure computation: no syscalls, so only the timer can take the CPU away.
fn burn() {
    let mut sum: u64 = 0;
    for step in 0..100_000u64 {
        sum = core::hint::black_box(sum.wrapping_add(step));
    }
}

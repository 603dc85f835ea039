//! `parallel [PROCESSES] [MILLION_ROUNDS]`: a fixed CPU-bound job (MILLION_ROUNDS million rounds of integer
//! hashing, 200 by default) split evenly over PROCESSES processes (2 by default, at most 16),
//! started at once; prints how long the whole job took by the clock:
//! `parallel: 2 processes, 200 million rounds, 1234 ms`. Run with `--smp 1` and `--smp 2`,
//! the two times give the machine's speed-up on work that divides (`tests/smp.rs`).
#![no_std]
#![no_main]

extern crate alloc;

use core::hint::black_box;

use userlib::process::{self, Ending};
use userlib::{args, eprintln, fs, println, sys};

userlib::main!(main);

/// The most processes the job is split over.
const MOST_PROCESSES: u64 = 16;
/// The flag that makes a process one worker: `parallel --work ROUNDS`.
const WORK_FLAG: &str = "--work";

fn main() -> i32 {
    match args() {
        [_, flag, rounds] if *flag == WORK_FLAG => match rounds.parse() {
            Ok(rounds) => work(rounds),
            Err(_) => usage(),
        },
        [_] => split(2, 200),
        [_, processes] => number(processes).map_or_else(usage, |processes| split(processes, 200)),
        [_, processes, millions] => match (number(processes), number(millions)) {
            (Some(processes), Some(millions)) => split(processes, millions),
            _ => usage(),
        },
        _ => usage(),
    }
}

fn number(text: &str) -> Option<u64> {
    text.parse().ok()
}

fn usage() -> i32 {
    eprintln!("usage: parallel [PROCESSES (1 to {MOST_PROCESSES})] [MILLION_ROUNDS]");
    2
}

/// Starts `processes` workers with a share of `millions` million rounds each (from its own
/// image, read once from the file system) and waits for all of them; the time counted starts
/// at the first `spawn`.
fn split(processes: u64, millions: u64) -> i32 {
    if !(1..=MOST_PROCESSES).contains(&processes) {
        return usage();
    }
    let rounds = millions.saturating_mul(1_000_000);
    let share = rounds / processes;
    let share_text = alloc::format!("{share}");
    let image = match fs::load_image(&process::program_path("parallel")) {
        Ok((image, _)) => image,
        Err(errno) => {
            eprintln!("parallel: cannot read its own image: {errno}");
            return 1;
        }
    };
    let start = sys::uptime_ns();
    let mut workers = alloc::vec::Vec::new();
    for _ in 0..processes {
        match sys::spawn(image.handle().raw(), &["parallel", WORK_FLAG, &share_text], &[1, 2], None) {
            Ok(worker) => workers.push(worker),
            Err(errno) => {
                eprintln!("parallel: spawn: {errno}");
                for worker in &workers {
                    let _ = sys::kill(*worker);
                }
                return 1;
            }
        }
    }
    let mut failed = false;
    for worker in workers {
        match sys::wait(Some(worker)) {
            Ok((_, info)) if info == abi::ExitInfo::exited(0) => {}
            Ok((_, info)) => {
                eprintln!("parallel: a worker {}", Ending(info));
                failed = true;
            }
            Err(errno) => {
                eprintln!("parallel: wait: {errno}");
                failed = true;
            }
        }
    }
    let elapsed_ms = (sys::uptime_ns() - start) / 1_000_000;
    println!("parallel: {processes} processes, {millions} million rounds, {elapsed_ms} ms");
    i32::from(failed)
}

/// One worker's share: `rounds` rounds of a multiply-xorshift hash, without a syscall.
fn work(rounds: u64) -> i32 {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..rounds {
        state = black_box(state.wrapping_mul(0x0100_0000_01b3) ^ (state >> 29));
    }
    // The result is used, so the loop cannot be left out.
    i32::from(state == 0)
}

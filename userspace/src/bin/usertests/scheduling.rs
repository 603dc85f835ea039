//! Scheduling fairness: what the scheduler owes a process that shares a CPU with others.
//! A pair of processes handing the CPU to each other through IPC runs on one time slice
//! between them, so a third ready process still gets its turns while the pair works.

use alloc::format;

use userlib::check;
use userlib::ipc::{Endpoint, Message};
use userlib::sys;
use userlib::testing::{Case, Helper, Outcome};

use crate::common::*;
use crate::helpers::arg;

pub const CASES: &[Case] = userlib::cases![here ipc_pair_leaves_turns_to_a_third_process];

pub const HELPERS: &[(&str, Helper)] = &[("echo_server", helper_echo_server), ("pinger", helper_pinger)];

/// Round trips the pair of [`ipc_pair_leaves_turns_to_a_third_process`] makes: tens of time
/// slices' worth under TCG, whatever the host's load (a slower guest makes fewer per slice).
const ROUND_TRIPS: u64 = 30_000;
/// Turns the third process must get while the pair works.
const LEAST_TURNS: u64 = 3;

/// `echo_server`: answers every call on its handle 3 with the label plus one and the words
/// unchanged, through `reply_recv` (which hands the CPU straight to the caller), until killed.
fn helper_echo_server(_: &[&str]) -> i32 {
    userlib::ipc::serve(&Endpoint::from_raw(3), |request, _, _| {
        Message::new(request.message.label.wrapping_add(1), request.message.words)
    })
}

/// `pinger COUNT`: calls its handle 3 COUNT times; exits 0 if every answer was right, 1 at
/// the first failed call, 2 at the first wrong answer.
fn helper_pinger(args: &[&str]) -> i32 {
    let count: u64 = arg(args, 0);
    let endpoint = Endpoint::from_raw(3);
    for round in 0..count {
        match endpoint.call(&Message::new(round, [round, 0, 0, 0])) {
            Ok(answer) if answer.label == round + 1 && answer.words[0] == round => {}
            Ok(_) => return 2,
            Err(_) => return 1,
        }
    }
    0
}

/// With one CPU, two processes calling each other in a loop used to keep it for ever: every
/// hand-off began a fresh time slice. Now the partner runs on the rest of the caller's
/// slice, so this process (the third) is scheduled while the pair is still at work. Counted
/// in turns, not time: each look at the process table that finds the pinger started and not
/// yet ended is a turn this process got in the middle of the pair's work.
fn ipc_pair_leaves_turns_to_a_third_process() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw() as u32;
    let server = spawn_with_handles("echo_server", &[], &[0, 1, 2, ep])?;
    let rounds = format!("{ROUND_TRIPS}");
    let pinger = match spawn_with_handles("pinger", &[&rounds], &[0, 1, 2, ep]) {
        Ok(pinger) => pinger,
        Err(why) => {
            kill_and_reap(&[server])?;
            return Err(why);
        }
    };
    let mut turns = 0;
    let looked = loop {
        let table = match Table::read() {
            Ok(table) => table,
            Err(why) => break Err(why),
        };
        match table.find(pinger.pid) {
            None => break Ok(()),
            Some(row) if row.cpu_time_ns > 0 => turns += 1,
            Some(_) => {}
        }
        sys::yield_now();
    };
    let ended = finish_within(pinger, "the pinger");
    kill_and_reap(&[server])?;
    looked?;
    expect_exit("the pinger (1: a call failed, 2: a wrong answer)", ended?, 0)?;
    check!(
        turns >= LEAST_TURNS,
        "this process got {turns} turns while the pair made {ROUND_TRIPS} round trips (at least {LEAST_TURNS} expected)"
    );
    Ok(())
}

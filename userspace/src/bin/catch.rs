//! `catch PROG [ARGS]`: runs PROG with this program as its exception handler (faults as
//! messages, see `abi::exception`). Each fault of any of PROG's threads arrives here as a
//! message and is printed on one line; a breakpoint (`int3`) is resumed (the CPU already
//! left RIP past it), any other fault kills PROG, as it would have died without a handler.
//! Ends with how PROG ended, and with its status.
//!
//! PROG is spawned into a job of its own whose exception endpoint is set first (decision 72),
//! so even a fault at its first instruction arrives here.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use abi::fault::{BREAKPOINT, PAGE_FAULT};
use abi::ipc::FOREVER;
use userlib::exception::{self, Exception};
use userlib::ipc::{Endpoint, Message};
use userlib::process::{self, Ending};
use userlib::{args, eprintln, println, sys, thread};

userlib::main!(main);

/// The label of the message the waiter thread sends when PROG has ended (words: status,
/// fault vector, fault address, fault ip).
const ENDED: u64 = 1;

fn main() -> i32 {
    let arguments = args();
    let Some(&program) = arguments.get(1) else {
        eprintln!("usage: catch PROG [ARGS]");
        return 2;
    };
    let Ok(endpoint) = Endpoint::create() else {
        eprintln!("catch: cannot create an endpoint");
        return 1;
    };
    let Ok(job) = sys::job_create(None) else {
        eprintln!("catch: cannot create a job");
        return 1;
    };
    if let Err(errno) = exception::set_job(job, Some(&endpoint), 0) {
        eprintln!("catch: cannot set the job's exception endpoint: {errno:?}");
        return 1;
    }
    let argv: Vec<&str> = arguments[1..].to_vec();
    let child = process::spawn_child_in(Some(job), program, &argv, &process::standard_handles());
    // Only PROG was to start with this endpoint.
    let _ = userlib::ipc::close(job);
    let child = match child {
        Ok(child) => child,
        Err(errno) => {
            eprintln!("catch: cannot start {program}: {errno:?}");
            return 1;
        }
    };
    // A thread waits for PROG's end and says so on the same endpoint, so one `recv` hears
    // both faults and the end.
    let Ok(announcer) = endpoint.mint(ENDED, false) else {
        eprintln!("catch: cannot mint a handle");
        return 1;
    };
    let waiter = thread::spawn(move || {
        let info = sys::wait(Some(child)).map_or(abi::ExitInfo::exited(abi::status::KILLED), |(_, info)| info);
        let words = [info.status as u64, u64::from(info.fault_vector), info.fault_address, info.fault_ip];
        let _ = announcer.call(&Message::new(ENDED, words));
    });
    let pid = child.pid;
    let mut room = [0u8; exception::ROOM];
    loop {
        let Ok(request) = endpoint.recv(&mut room, FOREVER) else { continue };
        if request.badge == ENDED {
            let [status, vector, address, ip] = request.message.words;
            let info = abi::ExitInfo {
                status: status as i32,
                fault_vector: vector as u32,
                fault_address: address,
                fault_ip: ip,
                fault_error: 0,
            };
            println!("catch: pid {pid} {}", Ending(info));
            if let Some(reply) = request.reply {
                let _ = reply.send(&Message::default());
            }
            let _ = waiter.map(|waiter| waiter.join());
            return info.status;
        }
        let (Some(fault), Some(reply)) = (Exception::decode(&request, &room), request.reply) else { continue };
        let thread = fault.tid;
        let rip = fault.registers.rip;
        match fault.vector {
            BREAKPOINT => {
                // A trap: RIP is already past the `int3`.
                println!("catch: pid {pid} thread {thread}: breakpoint at {:#x}", rip - 1);
                let _ = exception::resume(reply, None);
            }
            PAGE_FAULT => {
                println!(
                    "catch: pid {pid} thread {thread}: page fault at {:#x} (ip {rip:#x}, error {:#x}); killing it",
                    fault.address, fault.error
                );
                let _ = exception::kill(reply);
            }
            _ => {
                println!("catch: pid {pid} thread {thread}: {} at {rip:#x} (error {:#x}); killing it", fault.name(), fault.error);
                let _ = exception::kill(reply);
            }
        }
    }
}

//! `trace PROG [ARGS]`: runs PROG in syscall mode (decision 72: spawned into a job whose
//! exception endpoint was set with `SYSCALLS`) and prints each of its system calls, with
//! its Enigma name where the number has one. It does not run them: every call is answered
//! with `-ENOSYS`, and PROG's `exit` (number 0) ends it there, so the trace shows what a
//! program asks for until it gives up. A fault of PROG is printed and ends it.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use abi::errno::ENOSYS;
use abi::exception::{Registers, SYSCALLS, VIA_INT80};
use abi::ipc::FOREVER;
use userlib::exception::{self, Exception, Syscall};
use userlib::ipc::Endpoint;
use userlib::process::{self, Ending};
use userlib::{args, eprintln, println, sys};

userlib::main!(main);

fn main() -> i32 {
    let arguments = args();
    let Some(&program) = arguments.get(1) else {
        eprintln!("usage: trace PROG [ARGS]");
        return 2;
    };
    let (Ok(endpoint), Ok(job)) = (Endpoint::create(), sys::job_create(None)) else {
        eprintln!("trace: cannot create an endpoint and a job");
        return 1;
    };
    if let Err(errno) = exception::set_job(job, Some(&endpoint), SYSCALLS) {
        eprintln!("trace: cannot put the job in syscall mode: {errno:?}");
        return 1;
    }
    let argv: Vec<&str> = arguments[1..].to_vec();
    let child = match process::spawn_child_in(Some(job), program, &argv, &process::standard_handles()) {
        Ok(child) => child,
        Err(errno) => {
            eprintln!("trace: cannot start {program}: {errno:?}");
            return 1;
        }
    };
    let pid = child.pid;
    let mut room = [0u8; exception::ROOM];
    loop {
        let Ok(request) = endpoint.recv(&mut room, FOREVER) else { continue };
        let (fault, call) = (Exception::decode(&request, &room), Syscall::decode(&request, &room));
        let Some(reply) = request.reply else { continue };
        if let Some(fault) = fault {
            println!("trace: [{}] {} at {:#x}", fault.tid, fault.name(), fault.registers.rip);
            let _ = exception::kill(reply);
            break;
        }
        let Some(call) = call else {
            let _ = exception::kill(reply);
            break;
        };
        let name = abi::syscall::by_number(call.number).map_or("?", |syscall| syscall.name);
        let via = if call.flags & VIA_INT80 != 0 { " (int 0x80)" } else { "" };
        let [a, b, c, d, e, f] = call.args();
        println!("trace: [{}] {}{via} {name}({a:#x}, {b:#x}, {c:#x}, {d:#x}, {e:#x}, {f:#x})", call.tid, call.number);
        if call.number == abi::syscall::EXIT {
            let _ = exception::kill(reply);
            break;
        }
        let _ = exception::resume(reply, Some(&Registers { rax: (-ENOSYS) as u64, ..call.registers }));
    }
    let ended = sys::wait(Some(child)).map(|(_, info)| info);
    let _ = sys::kill_handle(job);
    let _ = userlib::ipc::close(job);
    match ended {
        Ok(info) => println!("trace: pid {pid} {}", Ending(info)),
        Err(errno) => eprintln!("trace: wait for pid {pid}: {errno:?}"),
    }
    0
}

//! `usertests [NAME...]`: Enigma's ring-3 test suite, in the spirit of xv6's `usertests`,
//! written on `userlib::testing`.
//!
//! Each case checks one property of the kernel from user mode, and each file here holds one
//! subject: [`console`] (console I/O and the simple syscalls), [`numbers`] (syscall numbers
//! and entry paths), [`pointers`] (bad pointers and lengths), [`registers`] (raw register
//! state), [`privileged`] (privileged instructions), [`protection`] (memory protection),
//! [`memory`] (`brk`, `mmap`, `munmap`, `mprotect`, exhaustion), [`processes`] (the
//! process life cycle, through process handles), [`jobs`] (killing a job ends everything
//! in it), [`handles`] (handle numbers, kinds, rights,
//! lifetimes), [`ipc`] (endpoints, messages, notifications, shared memory, and the
//! hostile cases of each), [`files`] (the `fs` server and its handles), [`pipes`] (kernel
//! pipes, as streams between processes), [`streams`] (`read` and `write` forwarded to a
//! server), [`devices`] (device capabilities and the kernel's log), [`smp`] (processes
//! running at once on several CPUs), [`fpu`] (x87, SSE and AVX registers and the FS and GS
//! bases, per thread), [`threads`] (threads and futexes), [`exceptions`] (faults as messages
//! to an exception endpoint), [`debugging`] (another process's memory by handle), [`sysmsg`]
//! (system calls as messages, thread state, threads started in another process),
//! [`scheduling`] (fair turns for every ready process)
//! and [`services`] (who may do what with the servers `init` starts). [`helpers`] holds the
//! helper roles multi-process cases start (the subjects from `handles` on keep their own),
//! and [`common`] what the cases share.
//!
//! A case prints `PASS name` or `FAIL name: why`; the suite ends with `N passed, M failed`
//! and exits 0 only when nothing failed. Names on the command line run just those cases. A
//! case that could kill its process runs in a child (`usertests --child NAME`); a fault case
//! passes only if its child dies of exactly the fault it names. The suite ends with the
//! harness's `leak` check: the free frames, the kernel heap's bytes in use and the live
//! kernel objects must be back where they were before the first case.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../../dirty.rs"]
mod dirty;

mod common;
mod console;
mod cow;
mod debugging;
mod devices;
mod exceptions;
mod files;
mod fpu;
mod handles;
mod helpers;
mod ipc;
mod jobs;
mod memory;
mod numbers;
mod pipes;
mod pointers;
mod privileged;
mod processes;
mod protection;
mod registers;
mod scheduling;
mod services;
mod smp;
mod streams;
mod sysmsg;
mod threads;

use userlib::testing::Suite;

userlib::main!(main);

fn main() -> i32 {
    let cases = [
        console::CASES,
        numbers::CASES,
        pointers::CASES,
        registers::CASES,
        privileged::CASES,
        protection::CASES,
        memory::CASES,
        processes::CASES,
        jobs::CASES,
        handles::CASES,
        ipc::CASES,
        files::CASES,
        pipes::CASES,
        streams::CASES,
        devices::CASES,
        smp::CASES,
        threads::CASES,
        fpu::CASES,
        exceptions::CASES,
        debugging::CASES,
        cow::CASES,
        sysmsg::CASES,
        scheduling::CASES,
        services::CASES,
    ]
    .concat();
    let helpers = [
        helpers::HELPERS,
        handles::HELPERS,
        ipc::HELPERS,
        files::HELPERS,
        pipes::HELPERS,
        streams::HELPERS,
        devices::HELPERS,
        scheduling::HELPERS,
        smp::HELPERS,
        fpu::HELPERS,
        exceptions::HELPERS,
        debugging::HELPERS,
        cow::HELPERS,
        sysmsg::HELPERS,
        services::HELPERS,
        threads::HELPERS,
    ]
    .concat();
    Suite::new(&cases).helpers(&helpers).time_limit(common::CHILD_LIMIT).leak_check().main()
}

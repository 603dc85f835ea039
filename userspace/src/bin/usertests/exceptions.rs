//! Faults as messages: a process or thread with an exception endpoint does not die of a
//! fault; the kernel calls the endpoint for the faulting thread, which waits until the
//! handler resumes it (perhaps with new registers, sanitised) or kills it. The children here
//! wait for a go call on their handle 3 first, so the suite sets their endpoint before they
//! fault.

use alloc::format;
use alloc::string::String;
use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, Ordering};

use abi::errno::{EBADF, EPERM, EPIPE, ESRCH};
use abi::exception::{RFLAGS_IF, RFLAGS_TF, Registers};
use abi::fault::{BREAKPOINT, DEBUG, INVALID_OPCODE, PAGE_FAULT, PF_USER};
use abi::handle::{Kind, rights};
use abi::ipc::FOREVER;
use abi::status::{FAULT, KILLED};
use abi::ExitInfo;
use userlib::check;
use userlib::exception::{self, Exception};
use userlib::ipc::{Endpoint, Message, Reply};
use userlib::process::Ending;
use userlib::sys::{self, Child};
use userlib::testing::{Case, Context, Helper, Outcome};
use userlib::thread;

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here exceptions_new_process_and_thread_handles_carry_debug,
    here exceptions_setting_needs_debug_on_the_target,
    here exceptions_setting_needs_an_endpoint_with_send,
    here exceptions_ud2_resumes_with_the_handlers_registers,
    here exceptions_a_page_fault_names_the_address,
    here exceptions_int3_is_a_breakpoint_resumed_after_it,
    here exceptions_single_step_traps_after_one_instruction,
    here exceptions_a_kill_answer_ends_the_child_with_its_fault,
    here exceptions_a_reply_closed_unused_kills_the_child,
    here exceptions_a_handler_that_dies_kills_the_child,
    here exceptions_no_receiver_left_kills_the_child,
    here exceptions_a_handlers_own_fault_goes_to_its_endpoint,
    here exceptions_without_an_endpoint_a_fault_kills_as_before,
    here exceptions_clearing_the_endpoint_restores_killing,
    here exceptions_a_threads_endpoint_comes_before_its_processs,
    here exceptions_a_fault_in_a_second_thread_stops_only_it,
    here exceptions_a_kernel_half_rip_kills_the_child,
    here exceptions_rflags_keep_only_what_ring_3_may_change,
    here exceptions_the_stopped_child_can_be_killed,
];

pub const HELPERS: &[(&str, Helper)] = &[("exc_child", helper_exc_child), ("exc_handler", helper_exc_handler)];

// The faulting routines, in assembly so that the faulting instruction has a known address.
global_asm!(
    ".pushsection .text.usertests_exceptions, \"ax\"",
    // Returns 1 unless a handler changes rax; faults on the `ud2`.
    ".global usertests_exc_ud2",
    "usertests_exc_ud2:",
    "mov eax, 1",
    ".global usertests_exc_ud2_site",
    "usertests_exc_ud2_site:",
    "ud2",
    "ret",
    // Returns 7 unless a handler changes rax; breaks on the `int3`.
    ".global usertests_exc_int3",
    "usertests_exc_int3:",
    "mov eax, 7",
    ".global usertests_exc_int3_site",
    "usertests_exc_int3_site:",
    "int3",
    "ret",
    // Faults on the `ud2`, then returns the flags it resumed with.
    ".global usertests_exc_flags",
    "usertests_exc_flags:",
    "ud2",
    "pushfq",
    "pop rax",
    "ret",
    // Faults on the `ud2`; resumed past it with TF, traps after the `nop`.
    ".global usertests_exc_step",
    "usertests_exc_step:",
    "mov eax, 1",
    ".global usertests_exc_step_site",
    "usertests_exc_step_site:",
    "ud2",
    "nop",
    ".global usertests_exc_step_after",
    "usertests_exc_step_after:",
    "ret",
    ".popsection",
);

unsafe extern "C" {
    fn usertests_exc_ud2() -> u64;
    fn usertests_exc_int3() -> u64;
    fn usertests_exc_flags() -> u64;
    fn usertests_exc_step() -> u64;
}

/// The `ud2` of [`usertests_exc_ud2`]: the same address in every process of this program.
fn ud2_site() -> u64 {
    symbol_address!("usertests_exc_ud2_site")
}

/// Runs [`usertests_exc_ud2`]: 1, or what a handler put in rax.
fn ud2() -> u64 {
    // SAFETY: the routine faults; a handler resumes it past the `ud2` (or the process ends).
    unsafe { usertests_exc_ud2() }
}

/// `exc_child KIND`: calls its handle 3 (the go signal), then faults as KIND says and exits
/// with what the faulting routine returned.
fn helper_exc_child(args: &[&str]) -> i32 {
    let go = Endpoint::from_raw(3);
    if go.call(&Message::default()).is_err() {
        return CHILD_FAILED_GO;
    }
    match args.first().copied() {
        Some("ud2") => ud2() as i32,
        // SAFETY: breaks on the `int3`; resumed after it (or the process ends).
        Some("int3") => unsafe { usertests_exc_int3() as i32 },
        // SAFETY: as for `ud2`.
        Some("flags") => (unsafe { usertests_exc_flags() } & 0x3201) as i32,
        // SAFETY: as for `ud2`.
        Some("step") => unsafe { usertests_exc_step() as i32 },
        Some("peek") => {
            peek(HOLE);
            REACHED_END
        }
        Some("thread") => fault_in_a_second_thread(&go),
        Some("thread_own") => fault_in_a_thread_with_its_own_endpoint(),
        _ => REACHED_END,
    }
}

/// The status of a child whose go call failed.
const CHILD_FAILED_GO: i32 = 90;

/// A second thread faults on `ud2`; this one calls `go` twice more meanwhile (the second
/// call shows it runs after the suite saw the fault), then exits with the thread's result.
fn fault_in_a_second_thread(go: &Endpoint) -> i32 {
    let Ok(worker) = thread::spawn(ud2) else { return 91 };
    for _ in 0..2 {
        if go.call(&Message::default()).is_err() {
            return 92;
        }
    }
    worker.join().map_or(93, |result| result as i32)
}

/// A thread whose own endpoint (served here) comes before the process's (the suite's): it
/// faults on `ud2`, this thread resumes it with rax = 42, and the process exits with what it
/// returned (or a status saying what went wrong).
fn fault_in_a_thread_with_its_own_endpoint() -> i32 {
    static MAY_FAULT: AtomicU32 = AtomicU32::new(0);
    let Ok(endpoint) = Endpoint::create() else { return 94 };
    let Ok(worker) = thread::spawn(|| {
        while MAY_FAULT.load(Ordering::Acquire) == 0 {
            sys::yield_now();
        }
        (sys::gettid(), ud2())
    }) else {
        return 95;
    };
    if exception::set(worker.raw_handle(), Some(&endpoint)).is_err() {
        return 96;
    }
    MAY_FAULT.store(1, Ordering::Release);
    let mut room = [0u8; exception::ROOM];
    let Ok(request) = endpoint.recv(&mut room, FOREVER) else { return 97 };
    let Some(fault) = Exception::decode(&request, &room) else { return 98 };
    let Some(reply) = request.reply else { return 98 };
    let registers = Registers { rip: fault.registers.rip + 2, rax: 42, ..fault.registers };
    if exception::resume(reply, Some(&registers)).is_err() {
        return 99;
    }
    match worker.join() {
        Ok((tid, 42)) if tid == fault.tid && fault.vector == INVALID_OPCODE => 42,
        Ok(_) => 100,
        Err(_) => 101,
    }
}

/// `exc_handler MODE`: receives one fault on its handle 3, then with `drop` exits without
/// answering, with `fault` faults itself (on `ud2`).
fn helper_exc_handler(args: &[&str]) -> i32 {
    let endpoint = Endpoint::from_raw(3);
    let mut room = [0u8; exception::ROOM];
    let Ok(request) = endpoint.recv(&mut room, FOREVER) else { return 80 };
    if Exception::decode(&request, &room).is_none() {
        return 81;
    }
    match args.first().copied() {
        Some("drop") => 0,
        Some("fault") => {
            let reply = request.reply;
            let result = ud2();
            drop(reply);
            result as i32
        }
        _ => REACHED_END,
    }
}

/// A child `exc_child KIND`, stopped at its go call, and the endpoint that call arrives on.
struct Started {
    child: Child,
    go: Endpoint,
}

/// Starts `exc_child KIND`; it waits for [`Started::go`].
fn start(kind: &str) -> Result<Started, String> {
    let go = endpoint()?;
    let child = spawn_with_handles("exc_child", &[kind], &[0, 1, 2, go.handle().raw() as u32])?;
    Ok(Started { child, go })
}

impl Started {
    /// Answers the child's next call on the go endpoint (its first lets it fault).
    fn go(&self) -> Outcome {
        let request = self.go.recv(&mut [], HANG_NS).context("recv of the child's go call")?;
        let reply = request.reply.ok_or("the go call came without a reply handle")?;
        reply.send(&Message::default()).context("reply to the go call")
    }

    /// Waits for the child's end (killing it after the time limit).
    fn finish(self, what: &str) -> Result<ExitInfo, String> {
        finish_within(self.child, what)
    }
}

/// The next fault on `endpoint`, within [`HANG_NS`], and its reply handle.
fn next_fault(endpoint: &Endpoint) -> Result<(Exception, Reply), String> {
    let mut room = [0u8; exception::ROOM];
    let request = endpoint.recv(&mut room, HANG_NS).context("recv of a fault message")?;
    let fault = Exception::decode(&request, &room)
        .ok_or_else(|| format!("not a fault message: label {:#x}, {} bytes", request.message.label, request.arrived.len))?;
    let reply = request.reply.ok_or("the fault message came without a reply handle")?;
    Ok((fault, reply))
}

/// Starts `exc_child KIND` with `handler` as its process's endpoint and lets it fault; returns
/// it and the fault message.
fn start_handled(kind: &str, handler: &Endpoint) -> Result<(Started, Exception, Reply), String> {
    let started = start(kind)?;
    exception::set(started.child.handle, Some(handler)).context("exception_endpoint_set")?;
    started.go()?;
    let (fault, reply) = next_fault(handler)?;
    Ok((started, fault, reply))
}

/// Fails unless `info` is a fault ending with `vector` at instruction `ip`.
fn expect_fault(what: &str, info: ExitInfo, vector: u32, ip: u64) -> Outcome {
    check!(
        info.status == FAULT && info.fault() == Some(vector) && info.fault_ip == ip,
        "{what} {}, expected a fault {vector} at {ip:#x}",
        Ending(info)
    );
    Ok(())
}

fn exceptions_new_process_and_thread_handles_carry_debug() -> Outcome {
    check!(rights::PROCESS_HANDLE & rights::DEBUG != 0 && rights::THREAD_HANDLE & rights::DEBUG != 0, "no DEBUG in the rights");
    let started = start("ud2")?;
    expect_handle("spawn's handle", started.child.handle, Kind::Process, rights::PROCESS_HANDLE)?;
    let worker = thread::spawn(|| ()).context("thread spawn")?;
    expect_handle("thread_create's handle", worker.raw_handle(), Kind::Thread, rights::THREAD_HANDLE)?;
    worker.join().map_err(|info| format!("the thread ended {info:?}"))?;
    kill_and_reap(&[started.child])
}

fn exceptions_setting_needs_debug_on_the_target() -> Outcome {
    let handler = endpoint()?;
    let started = start("ud2")?;
    let target = OwnedHandleOf::new(ipc_duplicate(started.child.handle, rights::ALL & !rights::DEBUG)?);
    expect_errno_of("setting through a process handle without DEBUG", exception::set(target.0, Some(&handler)), EPERM)?;
    expect_errno_of("setting through an endpoint handle as the target", exception::set(handler.handle().raw(), Some(&handler)), EBADF)?;
    expect_errno_of("setting through a closed handle", sys::exception_endpoint_set(0x7fff_0000, None, 0), EBADF)?;
    kill_and_reap(&[started.child])
}

fn exceptions_setting_needs_an_endpoint_with_send() -> Outcome {
    let handler = endpoint()?;
    let started = start("ud2")?;
    let receive_only = OwnedHandleOf::new(ipc_duplicate(handler.handle().raw(), rights::RECEIVE | rights::DUPLICATE)?);
    let target = started.child.handle;
    expect_errno_of("an endpoint handle without SEND", sys::exception_endpoint_set(target, Some(receive_only.0), 0), EPERM)?;
    expect_errno_of("a process handle as the endpoint", sys::exception_endpoint_set(target, Some(target), 0), EBADF)?;
    expect_errno_of("a closed endpoint handle", sys::exception_endpoint_set(target, Some(0x7fff_0000), 0), EBADF)?;
    kill_and_reap(&[started.child])?;
    // An ended target: nothing is kept for it.
    let started = start("ud2")?;
    let kept = OwnedHandleOf::new(ipc_duplicate(started.child.handle, rights::ALL)?);
    kill_and_reap(&[started.child])?;
    expect_errno_of("setting on an ended process", exception::set(kept.0, Some(&handler)), ESRCH)
}

fn exceptions_ud2_resumes_with_the_handlers_registers() -> Outcome {
    let handler = endpoint()?;
    let (started, fault, reply) = start_handled("ud2", &handler)?;
    check!(fault.vector == INVALID_OPCODE, "vector {} ({}), expected invalid opcode", fault.vector, fault.name());
    check!(fault.registers.rip == ud2_site(), "rip {:#x}, expected the ud2 at {:#x}", fault.registers.rip, ud2_site());
    check!(fault.registers.rax == 1, "rax {}, expected 1 (set just before)", fault.registers.rax);
    check!(fault.tid == started.child.pid, "tid {}, expected the child's first thread {}", fault.tid, started.child.pid);
    check!(fault.address == 0 && fault.error == 0, "address {:#x} error {:#x} for a ud2", fault.address, fault.error);
    check!(fault.registers.rflags & RFLAGS_IF != 0, "rflags {:#x} without IF", fault.registers.rflags);
    let registers = Registers { rip: fault.registers.rip + 2, rax: 42, ..fault.registers };
    exception::resume(reply, Some(&registers)).context("resume")?;
    expect_exit("the resumed child", started.finish("the resumed child")?, 42)
}

fn exceptions_a_page_fault_names_the_address() -> Outcome {
    let handler = endpoint()?;
    let (started, fault, reply) = start_handled("peek", &handler)?;
    check!(fault.vector == PAGE_FAULT, "vector {} ({}), expected a page fault", fault.vector, fault.name());
    check!(fault.address == HOLE, "address {:#x}, expected {HOLE:#x}", fault.address);
    check!(fault.error & PF_USER != 0, "error {:#x} without the user bit", fault.error);
    check!(fault.registers.rip == peek_site(), "rip {:#x}, expected the read at {:#x}", fault.registers.rip, peek_site());
    check!(fault.registers.rdi == HOLE, "rdi {:#x}, expected the argument {HOLE:#x}", fault.registers.rdi);
    // Resumed as it was, it faults again on the same read.
    exception::resume(reply, None).context("resume")?;
    let (again, reply) = next_fault(&handler)?;
    check!(again.address == HOLE && again.registers.rip == peek_site(), "the second fault was {again:?}");
    exception::kill(reply).context("kill answer")?;
    let info = started.finish("the child")?;
    expect_fault("the child", info, PAGE_FAULT, peek_site())?;
    check!(info.fault_address == HOLE, "the exit info names address {:#x}", info.fault_address);
    Ok(())
}

fn exceptions_int3_is_a_breakpoint_resumed_after_it() -> Outcome {
    let handler = endpoint()?;
    let (started, fault, reply) = start_handled("int3", &handler)?;
    let site = symbol_address!("usertests_exc_int3_site");
    check!(fault.vector == BREAKPOINT, "vector {} ({}), expected a breakpoint", fault.vector, fault.name());
    check!(fault.registers.rip == site + 1, "rip {:#x}, expected just past the int3 at {site:#x}", fault.registers.rip);
    check!(fault.registers.rax == 7, "rax {}, expected 7", fault.registers.rax);
    exception::resume(reply, None).context("resume")?;
    expect_exit("the resumed child", started.finish("the resumed child")?, 7)
}

fn exceptions_single_step_traps_after_one_instruction() -> Outcome {
    let handler = endpoint()?;
    let (started, fault, reply) = start_handled("step", &handler)?;
    let site = symbol_address!("usertests_exc_step_site");
    check!(fault.vector == INVALID_OPCODE && fault.registers.rip == site, "first fault {fault:?}");
    let stepping = Registers { rip: site + 2, rflags: fault.registers.rflags | RFLAGS_TF, ..fault.registers };
    exception::resume(reply, Some(&stepping)).context("resume with TF")?;
    let (step, reply) = next_fault(&handler)?;
    let after = symbol_address!("usertests_exc_step_after");
    check!(step.vector == DEBUG, "vector {} ({}), expected a debug exception", step.vector, step.name());
    check!(step.registers.rip == after, "single step stopped at {:#x}, expected {after:#x}", step.registers.rip);
    check!(step.tid == started.child.pid, "tid {}", step.tid);
    let done = Registers { rflags: step.registers.rflags & !RFLAGS_TF, rax: 5, ..step.registers };
    exception::resume(reply, Some(&done)).context("resume without TF")?;
    expect_exit("the stepped child", started.finish("the stepped child")?, 5)
}

fn exceptions_a_kill_answer_ends_the_child_with_its_fault() -> Outcome {
    let handler = endpoint()?;
    let (started, fault, reply) = start_handled("ud2", &handler)?;
    check!(fault.vector == INVALID_OPCODE, "vector {}", fault.vector);
    exception::kill(reply).context("kill answer")?;
    expect_fault("the child", started.finish("the child")?, INVALID_OPCODE, ud2_site())
}

fn exceptions_a_reply_closed_unused_kills_the_child() -> Outcome {
    let handler = endpoint()?;
    let (started, _, reply) = start_handled("ud2", &handler)?;
    drop(reply);
    expect_fault("the child", started.finish("the child")?, INVALID_OPCODE, ud2_site())
}

fn exceptions_a_handler_that_dies_kills_the_child() -> Outcome {
    let handler = endpoint()?;
    let handler_process = spawn_with_handles("exc_handler", &["drop"], &[0, 1, 2, handler.handle().raw() as u32])?;
    let started = start("ud2")?;
    exception::set(started.child.handle, Some(&handler)).context("exception_endpoint_set")?;
    started.go()?;
    expect_exit("the handler", finish_within(handler_process, "the handler")?, 0)?;
    expect_fault("the child", started.finish("the child")?, INVALID_OPCODE, ud2_site())
}

fn exceptions_no_receiver_left_kills_the_child() -> Outcome {
    let handler = endpoint()?;
    let send_only = handler.mint(1, false).context("endpoint_mint")?;
    let started = start("ud2")?;
    exception::set(started.child.handle, Some(&send_only)).context("exception_endpoint_set")?;
    drop(handler);
    started.go()?;
    expect_fault("the child", started.finish("the child")?, INVALID_OPCODE, ud2_site())
}

fn exceptions_a_handlers_own_fault_goes_to_its_endpoint() -> Outcome {
    let first = endpoint()?;
    let second = endpoint()?;
    let handler_process = spawn_with_handles("exc_handler", &["fault"], &[0, 1, 2, first.handle().raw() as u32])?;
    exception::set(handler_process.handle, Some(&second)).context("exception_endpoint_set on the handler")?;
    let started = start("ud2")?;
    exception::set(started.child.handle, Some(&first)).context("exception_endpoint_set on the child")?;
    started.go()?;
    let (fault, reply) = next_fault(&second)?;
    check!(fault.tid == handler_process.pid, "the fault came from tid {}, not the handler {}", fault.tid, handler_process.pid);
    check!(fault.vector == INVALID_OPCODE && fault.registers.rip == ud2_site(), "the handler's fault was {fault:?}");
    exception::kill(reply).context("kill answer")?;
    expect_fault("the handler", finish_within(handler_process, "the handler")?, INVALID_OPCODE, ud2_site())?;
    expect_fault("the child", started.finish("the child")?, INVALID_OPCODE, ud2_site())
}

fn exceptions_without_an_endpoint_a_fault_kills_as_before() -> Outcome {
    let started = start("ud2")?;
    started.go()?;
    expect_fault("the child", started.finish("the child")?, INVALID_OPCODE, ud2_site())
}

fn exceptions_clearing_the_endpoint_restores_killing() -> Outcome {
    let handler = endpoint()?;
    let started = start("ud2")?;
    exception::set(started.child.handle, Some(&handler)).context("exception_endpoint_set")?;
    exception::set(started.child.handle, None).context("clearing")?;
    started.go()?;
    expect_fault("the child", started.finish("the child")?, INVALID_OPCODE, ud2_site())?;
    expect_errno_of("recv on the cleared endpoint", handler.recv(&mut [], 0).map(|_| ()), abi::errno::EAGAIN)
}

fn exceptions_a_threads_endpoint_comes_before_its_processs() -> Outcome {
    let handler = endpoint()?;
    let started = start("thread_own")?;
    exception::set(started.child.handle, Some(&handler)).context("exception_endpoint_set")?;
    started.go()?;
    let info = started.finish("the child")?;
    if let Ok(request) = handler.recv(&mut [0; exception::ROOM], 0) {
        return Err(format!("the process's endpoint got a message (label {:#x})", request.message.label));
    }
    expect_exit("the child", info, 42)
}

fn exceptions_a_fault_in_a_second_thread_stops_only_it() -> Outcome {
    let handler = endpoint()?;
    let (started, fault, reply) = start_handled("thread", &handler)?;
    check!(fault.tid != started.child.pid && fault.tid != 0, "tid {}, expected the second thread's", fault.tid);
    check!(fault.registers.rip == ud2_site(), "rip {:#x}", fault.registers.rip);
    // The first thread's calls: the second is made after the first was answered, which is
    // after the fault: the first thread runs while the second is stopped.
    started.go()?;
    started.go()?;
    check!(state_of(started.child.pid)?.is_some(), "the child ended");
    let registers = Registers { rip: fault.registers.rip + 2, rax: 42, ..fault.registers };
    exception::resume(reply, Some(&registers)).context("resume")?;
    expect_exit("the child", started.finish("the child")?, 42)
}

fn exceptions_a_kernel_half_rip_kills_the_child() -> Outcome {
    let handler = endpoint()?;
    let (started, fault, reply) = start_handled("ud2", &handler)?;
    let registers = Registers { rip: 0xffff_8000_0000_0000, ..fault.registers };
    exception::resume(reply, Some(&registers)).context("resume")?;
    expect_fault("the child", started.finish("the child")?, INVALID_OPCODE, ud2_site())?;
    // A non-canonical stack pointer is refused the same way.
    let (started, fault, reply) = start_handled("ud2", &handler)?;
    let registers = Registers { rip: fault.registers.rip + 2, rsp: 0x0000_8000_0000_0000, ..fault.registers };
    exception::resume(reply, Some(&registers)).context("resume")?;
    expect_fault("the second child", started.finish("the second child")?, INVALID_OPCODE, ud2_site())
}

fn exceptions_rflags_keep_only_what_ring_3_may_change() -> Outcome {
    let handler = endpoint()?;
    let (started, fault, reply) = start_handled("flags", &handler)?;
    const IOPL_3: u64 = 3 << 12;
    // Carry set, IOPL 3, IF cleared: carry is kept, IOPL dropped, IF forced on.
    let rflags = (fault.registers.rflags | 1 | IOPL_3) & !RFLAGS_IF;
    let registers = Registers { rip: fault.registers.rip + 2, rflags, ..fault.registers };
    exception::resume(reply, Some(&registers)).context("resume")?;
    let info = started.finish("the child")?;
    // The child exits with its flags' CF, IF and IOPL bits.
    check!(info == ExitInfo::exited(0x201), "the child {} (CF, IF, IOPL bits), expected 0x201", Ending(info));
    Ok(())
}

fn exceptions_the_stopped_child_can_be_killed() -> Outcome {
    let handler = endpoint()?;
    let (started, _, reply) = start_handled("ud2", &handler)?;
    sys::kill(started.child).context("kill")?;
    let info = finish_within(started.child, "the killed child")?;
    expect_exit("the killed child", info, KILLED)?;
    expect_errno_of("resuming the killed child", exception::resume(reply, None), EPIPE)
}

/// A handle closed when dropped.
struct OwnedHandleOf(u64);

impl OwnedHandleOf {
    fn new(number: u64) -> Self {
        Self(number)
    }
}

impl Drop for OwnedHandleOf {
    fn drop(&mut self) {
        let _ = userlib::ipc::close(self.0);
    }
}

/// A duplicate of `handle` with `rights`.
fn ipc_duplicate(handle: u64, rights: u32) -> Result<u64, String> {
    userlib::ipc::duplicate(handle, rights).context("handle_duplicate")
}

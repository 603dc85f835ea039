//! Faults as messages (decision 69) and system calls as messages (decision 72): a thread
//! that faults in ring 3 and has an exception endpoint (its own, else its process's; set with
//! `exception_endpoint_set`) does not die. The kernel `call`s the endpoint on its behalf,
//! with the fault's vector, error code, address and thread id in the words and the thread's
//! registers in the buffer (`abi::exception`). The thread waits like any caller, in its trap
//! frame on its own kernel stack: killing it (or its process) ends the wait, and the handler
//! gets a reply handle. The answer `RESUME` resumes it, with the registers the answer carries
//! (sanitised: RIP and RSP must be user addresses, the FS and GS bases lower-half ones, RFLAGS
//! keeps only what ring 3 may change) or, without any, with the registers a
//! `thread_state_write` left while it was stopped; `KILL`, any other answer, a reply handle
//! closed unused or a handler gone ends the process as a fault with no endpoint would.
//!
//! A process in syscall mode (born in a job whose endpoint was set with `SYSCALLS`) sends
//! each of its `syscall` and `int 0x80` instructions the same way, with label `SYSCALL`;
//! resumed, it goes on after the instruction with the registers the handler set, every one
//! of them (the `syscall` path returns through `iretq` when `sysretq` could not restore RCX
//! and R11); killed, its process ends with `status::KILLED`.
//!
//! While it waits, the thread is *stopped*: its registers are kept in its object
//! ([`ThreadObject::stopped`]) for `thread_state_read`/`thread_state_write`.

use alloc::sync::Arc;

use abi::errno::{EINTR, EINVAL};
use abi::exception::{BadRegisters, IN_SYSCALL, REGISTERS_SIZE, Registers, VIA_INT80};
use x86_64::structures::idt::PageFaultErrorCode;

use super::process::ProcessObject;
use super::scheduler;
use super::thread::{Stopped, ThreadObject};
use crate::arch::trap::{CpuFault, SYSCALL_VECTOR, TrapFrame};
use crate::arch::user_state::Base;
use crate::ipc::state::{Bytes, Destination, Outgoing, Room};
use crate::ipc::{self, Timeout};
use crate::mm::kernel_stack;
use crate::mm::user_memory::with_active_memory;

/// What becomes of a stopped thread.
enum Outcome {
    /// It goes back to ring 3 (or ends on the way, if it was killed while it waited).
    Resume,
    /// Its process ends; the reason is said first, if there is one.
    Kill(Option<Refused>),
}

/// Why a handler's answer could not be used.
enum Refused {
    Registers(BadRegisters),
    Length(u64),
}

impl Refused {
    fn report(&self) {
        let pid = scheduler::current_pid();
        match self {
            Refused::Registers(BadRegisters::InstructionPointer(rip)) => {
                crate::println!("pid {pid}: exception handler's rip {rip:#x} is not a user address");
            }
            Refused::Registers(BadRegisters::StackPointer(rsp)) => {
                crate::println!("pid {pid}: exception handler's rsp {rsp:#x} is not a user address");
            }
            Refused::Registers(BadRegisters::TlsBase(base)) => {
                crate::println!("pid {pid}: exception handler's FS or GS base {base:#x} is not a user address");
            }
            Refused::Length(len) => {
                crate::println!("pid {pid}: exception handler answered with {len} bytes of registers, not {REGISTERS_SIZE}");
            }
        }
    }
}

/// The kernel's `user_exception` hook: delivers the fault in `frame` to the running thread's
/// exception endpoint and returns when the thread may resume (with `frame` as the handler
/// set it), or ends the process.
pub fn user_exception(fault: &CpuFault, frame: &mut TrapFrame) {
    if is_copy_on_write_fault(fault) {
        return;
    }
    let words = [fault.vector, fault.error_code, fault.address.unwrap_or(0)];
    // Everything `deliver` held is dropped by now: ending the process never returns.
    if let Outcome::Kill(refused) = deliver(abi::exception::FAULT, words, 0, frame) {
        if let Some(refused) = refused {
            refused.report();
        }
        scheduler::kill_current_for_fault(fault);
    }
}

/// Whether `fault` was a write to a copy-on-write page of the running process, now made
/// writable (see `ProcessMemory::resolve_write_fault`): the thread runs the write again. A
/// write that finds no free frame for its copy is an ordinary fault.
fn is_copy_on_write_fault(fault: &CpuFault) -> bool {
    let write_to_present = PageFaultErrorCode::PROTECTION_VIOLATION | PageFaultErrorCode::CAUSED_BY_WRITE;
    let Some(address) = fault.address else { return false };
    fault.vector == u64::from(abi::fault::PAGE_FAULT)
        && PageFaultErrorCode::from_bits_truncate(fault.error_code).contains(write_to_present)
        && with_active_memory(|memory| memory.resolve_write_fault(address)).unwrap_or(false)
}

/// Runs a system call of a thread in syscall mode (`scheduler::syscalls_as_messages`): a
/// `SYSCALL` message to its exception endpoint, answered as a fault's is. Ends the process
/// with `status::KILLED` when the answer is not RESUME (or there is no endpoint).
pub fn user_syscall(frame: &mut TrapFrame) {
    let flags = if frame.vector == SYSCALL_VECTOR { IN_SYSCALL | VIA_INT80 } else { IN_SYSCALL };
    if let Outcome::Kill(refused) = deliver(abi::exception::SYSCALL, [frame.rax, flags, 0], flags, frame) {
        if let Some(refused) = refused {
            refused.report();
        }
        scheduler::exit_current(abi::status::KILLED);
    }
}

/// The running thread's registers, as a message carries them.
fn registers_of(frame: &TrapFrame, flags: u64) -> Registers {
    Registers {
        rip: frame.rip,
        rsp: frame.rsp,
        rflags: frame.rflags,
        rax: frame.rax,
        rbx: frame.rbx,
        rcx: frame.rcx,
        rdx: frame.rdx,
        rsi: frame.rsi,
        rdi: frame.rdi,
        rbp: frame.rbp,
        r8: frame.r8,
        r9: frame.r9,
        r10: frame.r10,
        r11: frame.r11,
        r12: frame.r12,
        r13: frame.r13,
        r14: frame.r14,
        r15: frame.r15,
        fs_base: kernel_stack::user_base(Base::Fs),
        gs_base: kernel_stack::user_base(Base::Gs),
        flags,
        reserved: 0,
    }
}

/// Puts sanitised registers into `frame` (segments stay ring 3's).
fn fill_frame(registers: &Registers, frame: &mut TrapFrame) {
    frame.rip = registers.rip;
    frame.rsp = registers.rsp;
    frame.rflags = registers.rflags;
    frame.rax = registers.rax;
    frame.rbx = registers.rbx;
    frame.rcx = registers.rcx;
    frame.rdx = registers.rdx;
    frame.rsi = registers.rsi;
    frame.rdi = registers.rdi;
    frame.rbp = registers.rbp;
    frame.r8 = registers.r8;
    frame.r9 = registers.r9;
    frame.r10 = registers.r10;
    frame.r11 = registers.r11;
    frame.r12 = registers.r12;
    frame.r13 = registers.r13;
    frame.r14 = registers.r14;
    frame.r15 = registers.r15;
}

/// Gives the running thread sanitised registers: its frame and, where they differ from
/// `stopped_with`'s, its FS and GS bases.
fn apply(registers: &Registers, stopped_with: &Registers, frame: &mut TrapFrame) {
    fill_frame(registers, frame);
    // Sanitised: both bases are lower-half addresses, which cannot be refused.
    if registers.fs_base != stopped_with.fs_base {
        let _ = kernel_stack::set_user_base(Base::Fs, registers.fs_base);
    }
    if registers.gs_base != stopped_with.gs_base {
        let _ = kernel_stack::set_user_base(Base::Gs, registers.gs_base);
    }
}

/// Calls the thread's exception endpoint, if it has one, with `label` and `words` (the
/// thread id is the last word) and its registers, and reads the answer.
fn deliver(label: u64, words: [u64; 3], flags: u64, frame: &mut TrapFrame) -> Outcome {
    let me = scheduler::current_thread();
    let endpoint = me.exception_endpoint.lock().clone();
    let endpoint = endpoint.or_else(|| me.process.exception_endpoint.lock().clone());
    let Some(endpoint) = endpoint else { return Outcome::Kill(None) };
    let registers = registers_of(frame, flags);
    me.ipc.lock().kernel_bytes.0 = registers.to_bytes();
    *me.stopped.lock() = Some(Stopped { registers, written: false });
    let [first, second, third] = words;
    let message = Outgoing {
        label,
        words: [first, second, third, u64::from(me.tid)],
        buffer: Some(Bytes::Kernel { len: REGISTERS_SIZE as u64 }),
        ..Outgoing::default()
    };
    let reply_into = Destination { buffer: Some(Room::Kernel) };
    let answer = ipc::call(&me, &endpoint, message, reply_into, Timeout::Forever);
    drop(endpoint);
    // No longer stopped: what `thread_state_write` left counts only if the answer carries no
    // registers.
    let written = me.stopped.lock().take().filter(|stopped| stopped.written).map(|stopped| stopped.registers);
    let received = match answer {
        // Killed while it waited: the way back to ring 3 ends it.
        Err(EINTR) => return Outcome::Resume,
        // No receiver, the handler gone, the reply closed unused, an answer that could not
        // be delivered.
        Err(_) => return Outcome::Kill(None),
        Ok(received) if received.label == abi::exception::RESUME => received,
        Ok(_) => return Outcome::Kill(None),
    };
    let chosen = match received.len {
        // Resumed as it stopped, but for what a state write changed (sanitised already).
        0 => written,
        len if len == REGISTERS_SIZE as u64 => {
            let bytes = me.ipc.lock().kernel_bytes;
            Registers::from_bytes(&bytes.0)
        }
        len => return Outcome::Kill(Some(Refused::Length(len))),
    };
    if let Some(chosen) = chosen {
        match chosen.sanitised() {
            Ok(chosen) => apply(&chosen, &registers, frame),
            Err(bad) => return Outcome::Kill(Some(Refused::Registers(bad))),
        }
    }
    Outcome::Resume
}

/// Why a thread cannot be started from registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The registers are refused (`EINVAL`).
    Registers(BadRegisters),
    /// As `thread_create` fails.
    Spawn(scheduler::SpawnError),
}

impl StartError {
    /// The errno `thread_start` returns.
    pub fn errno(self) -> i64 {
        match self {
            Self::Registers(_) => EINVAL,
            Self::Spawn(error) => error.errno(),
        }
    }
}

/// What a new thread enters ring 3 with, from `registers` sanitised as a RESUME's: its frame
/// and its FS and GS bases (the thread of `thread_start`, and the first thread of a
/// `process_copy`).
pub fn entry_state(registers: &Registers) -> Result<(TrapFrame, u64, u64), BadRegisters> {
    let registers = registers.sanitised()?;
    let mut frame = TrapFrame::new_user(registers.rip, registers.rsp);
    fill_frame(&registers, &mut frame);
    Ok((frame, registers.fs_base, registers.gs_base))
}

/// Starts a thread in `process` (any process, the caller's or another) that enters ring 3
/// with `registers`, sanitised as a RESUME's, FS and GS bases included, and clean
/// floating-point state: what `thread_start` does.
pub fn start_thread(process: &ProcessObject, registers: &Registers) -> Result<Arc<ThreadObject>, StartError> {
    let (frame, fs_base, gs_base) = entry_state(registers).map_err(StartError::Registers)?;
    scheduler::start_thread(process, frame, fs_base, gs_base).map_err(StartError::Spawn)
}

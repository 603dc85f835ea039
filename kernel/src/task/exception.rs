//! Faults as messages (decision 69): a thread that faults in ring 3 and has an exception
//! endpoint (its own, else its process's; set with `exception_endpoint_set`) does not die.
//! The kernel `call`s the endpoint on its behalf, with the fault's vector, error code,
//! address and thread id in the words and the thread's registers in the buffer
//! (`abi::exception`). The thread waits like any caller, in its trap frame on its own kernel
//! stack: killing it (or its process) ends the wait, and the handler gets a reply handle.
//! The answer `RESUME` resumes it, with the registers the answer carries (sanitised: RIP and
//! RSP must be user addresses, RFLAGS keeps only what ring 3 may change); `KILL`, any other
//! answer, a reply handle closed unused or a handler gone ends the process as a fault with no
//! endpoint would.

use abi::errno::EINTR;
use abi::exception::{BadRegisters, REGISTERS_SIZE, Registers};
use x86_64::structures::idt::PageFaultErrorCode;

use super::scheduler;
use crate::mm::user_memory::with_active_memory;
use crate::arch::trap::{CpuFault, TrapFrame};
use crate::ipc::state::{Bytes, Destination, Outgoing, Room};
use crate::ipc::{self, Timeout};

/// What becomes of a faulting thread.
enum Outcome {
    /// It goes back to ring 3 (or ends on the way, if it was killed while it waited).
    Resume,
    /// Its process ends with the fault; the reason is said first, if there is one.
    Kill(Option<Refused>),
}

/// Why a handler's answer could not be used.
enum Refused {
    Registers(BadRegisters),
    Length(u64),
}

/// The kernel's `user_exception` hook: delivers the fault in `frame` to the running thread's
/// exception endpoint and returns when the thread may resume (with `frame` as the handler
/// set it), or ends the process.
pub fn user_exception(fault: &CpuFault, frame: &mut TrapFrame) {
    if is_copy_on_write_fault(fault) {
        return;
    }
    // Everything `deliver` held is dropped by now: ending the process never returns.
    if let Outcome::Kill(refused) = deliver(fault, frame) {
        if let Some(refused) = refused {
            let pid = scheduler::current_pid();
            match refused {
                Refused::Registers(BadRegisters::InstructionPointer(rip)) => {
                    crate::println!("pid {pid}: exception handler's rip {rip:#x} is not a user address");
                }
                Refused::Registers(BadRegisters::StackPointer(rsp)) => {
                    crate::println!("pid {pid}: exception handler's rsp {rsp:#x} is not a user address");
                }
                Refused::Length(len) => {
                    crate::println!("pid {pid}: exception handler answered with {len} bytes of registers, not {REGISTERS_SIZE}");
                }
            }
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

/// The thread's registers as a fault message carries them.
fn registers_of(frame: &TrapFrame) -> Registers {
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
        flags: 0,
        reserved: 0,
    }
}

/// Sanitises `registers` (see `Registers::sanitised`) and puts them into `frame`, or says why
/// they cannot be used: a fault handler's answer, and the first thread of a `process_copy`.
pub fn apply_sanitised(registers: &Registers, frame: &mut TrapFrame) -> Result<(), BadRegisters> {
    apply(&registers.sanitised()?, frame);
    Ok(())
}

/// Puts sanitised registers into the frame the thread resumes with (segments stay ring 3's).
fn apply(registers: &Registers, frame: &mut TrapFrame) {
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

/// Calls the thread's exception endpoint, if it has one, and reads the answer.
fn deliver(fault: &CpuFault, frame: &mut TrapFrame) -> Outcome {
    let me = scheduler::current_thread();
    let endpoint = me.exception_endpoint.lock().clone();
    let endpoint = endpoint.or_else(|| me.process.exception_endpoint.lock().clone());
    let Some(endpoint) = endpoint else { return Outcome::Kill(None) };
    me.ipc.lock().kernel_bytes.0 = registers_of(frame).to_bytes();
    let message = Outgoing {
        label: abi::exception::FAULT,
        words: [fault.vector, fault.error_code, fault.address.unwrap_or(0), u64::from(me.tid)],
        buffer: Some(Bytes::Kernel { len: REGISTERS_SIZE as u64 }),
        ..Outgoing::default()
    };
    let reply_into = Destination { buffer: Some(Room::Kernel) };
    let answer = ipc::call(&me, &endpoint, message, reply_into, Timeout::Forever);
    drop(endpoint);
    let received = match answer {
        // Killed while it waited: the way back to ring 3 ends it.
        Err(EINTR) => return Outcome::Resume,
        // No receiver, the handler gone, the reply closed unused, an answer that could not
        // be delivered.
        Err(_) => return Outcome::Kill(None),
        Ok(received) if received.label == abi::exception::RESUME => received,
        Ok(_) => return Outcome::Kill(None),
    };
    match received.len {
        0 => Outcome::Resume,
        len if len == REGISTERS_SIZE as u64 => {
            let bytes = me.ipc.lock().kernel_bytes;
            let registers = Registers::from_bytes(&bytes.0).unwrap_or_else(|| registers_of(frame));
            match apply_sanitised(&registers, frame) {
                Ok(()) => Outcome::Resume,
                Err(bad) => Outcome::Kill(Some(Refused::Registers(bad))),
            }
        }
        len => Outcome::Kill(Some(Refused::Length(len))),
    }
}

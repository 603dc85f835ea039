//! Faults as messages: a handler for another program's (or thread's) faults.
//!
//! [`set`] points a process's or thread's faults at an endpoint; the handler receives on it
//! with room for [`ROOM`] bytes, decodes each call with [`Exception::decode`], and answers
//! with [`resume`] (optionally with changed registers) or [`kill`]. See `abi::exception` for
//! the message format.
//!
//! A personality server puts a job in syscall mode with [`set_job`] (`SYSCALLS`), spawns its
//! program there, and answers each [`Syscall`] with [`resume`] (rax = the result).
//!
//! ```ignore
//! let endpoint = Endpoint::create()?;
//! exception::set(child.handle, Some(&endpoint))?;
//! let mut room = [0u8; exception::ROOM];
//! let request = endpoint.recv(&mut room, FOREVER)?;
//! if let Some(exception) = Exception::decode(&request, &room) {
//!     let mut registers = exception.registers;
//!     registers.rip += 2; // past a `ud2`
//!     exception::resume(request.reply.unwrap(), Some(&registers))?;
//! }
//! ```

use abi::exception::{REGISTERS_SIZE, Registers};

use crate::ipc::{Endpoint, Message, Reply, Request, Transfer};
use crate::sys::{self, Result};

pub use abi::exception::{FAULT, IN_SYSCALL, KILL, RESUME, SYSCALL, SYSCALLS, VIA_INT80};

/// Room a handler receives a fault message into: its registers.
pub const ROOM: usize = REGISTERS_SIZE;

/// Sends the faults of the process or thread `target` (a handle with DEBUG) to `endpoint`;
/// `None` clears it, and its faults end it again.
pub fn set(target: u64, endpoint: Option<&Endpoint>) -> Result<()> {
    sys::exception_endpoint_set(target, endpoint.map(|endpoint| endpoint.handle().raw()), 0)
}

/// What processes spawned into the job `job` (a handle with MANAGE) from now on start with:
/// `endpoint` as their exception endpoint, and with `flags` = [`SYSCALLS`] every system call
/// of theirs a [`Syscall`] message to it.
pub fn set_job(job: u64, endpoint: Option<&Endpoint>, flags: u64) -> Result<()> {
    sys::exception_endpoint_set(job, endpoint.map(|endpoint| endpoint.handle().raw()), flags)
}

/// A system call of a process in syscall mode, as its handler receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    /// Its number (rax).
    pub number: u64,
    /// [`IN_SYSCALL`], with [`VIA_INT80`] for `int 0x80`.
    pub flags: u64,
    /// The calling thread.
    pub tid: u32,
    /// Its registers (rip after the instruction; the arguments in rdi, rsi, rdx, r10, r8, r9).
    pub registers: Registers,
}

impl Syscall {
    /// Decodes a syscall message (`None` for any other).
    pub fn decode(request: &Request, room: &[u8]) -> Option<Self> {
        if request.message.label != SYSCALL || request.arrived.len != REGISTERS_SIZE {
            return None;
        }
        let registers = Registers::from_bytes(room.get(..REGISTERS_SIZE)?)?;
        let [number, flags, _, tid] = request.message.words;
        Some(Self { number, flags, tid: tid as u32, registers })
    }

    /// The six arguments, in order.
    pub fn args(&self) -> [u64; 6] {
        let r = &self.registers;
        [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9]
    }
}

/// A fault, as a handler receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exception {
    /// The exception vector (`abi::fault`).
    pub vector: u32,
    /// The CPU's error code (0 when the exception has none).
    pub error: u64,
    /// The address accessed, for a page fault; 0 otherwise.
    pub address: u64,
    /// The faulting thread.
    pub tid: u32,
    /// Its registers at the fault (for a breakpoint, RIP is past the `int3`).
    pub registers: Registers,
}

impl Exception {
    /// Decodes a fault message: its words and the bytes that arrived in `room`. `None` for
    /// any other message (or one whose registers did not all arrive).
    pub fn decode(request: &Request, room: &[u8]) -> Option<Self> {
        Self::from_parts(&request.message, request.arrived.len, room)
    }

    /// [`decode`](Self::decode) from the message's registers, the length sent, and the bytes.
    pub fn from_parts(message: &Message, len: usize, room: &[u8]) -> Option<Self> {
        if message.label != FAULT || len != REGISTERS_SIZE {
            return None;
        }
        let registers = Registers::from_bytes(room.get(..REGISTERS_SIZE)?)?;
        let [vector, error, address, tid] = message.words;
        Some(Self { vector: vector as u32, error, address, tid: tid as u32, registers })
    }

    /// The exception's name (`abi::fault::name`).
    pub fn name(&self) -> &'static str {
        abi::fault::name(self.vector)
    }
}

/// Resumes the faulting thread: with `registers` (sanitised by the kernel; a RIP or RSP that
/// is not a user address ends the process instead), or as it was.
pub fn resume(reply: Reply, registers: Option<&Registers>) -> Result<()> {
    let bytes = registers.map(Registers::to_bytes);
    let mut transfer = Transfer { send: bytes.as_ref().map_or(&[][..], |bytes| &bytes[..]), ..Transfer::default() };
    reply.send_with(&Message::new(RESUME, [0; 4]), &mut transfer)
}

/// Ends the faulting process, as the fault would have with no handler.
pub fn kill(reply: Reply) -> Result<()> {
    reply.send(&Message::new(KILL, [0; 4]))
}

//! The process: what the kernel keeps for each running program.

use alloc::string::String;

use abi::{ExitInfo, NAME_MAX, ProcessInfo, ProcessState};

use crate::arch::x86_64::trap::CpuFault;
use crate::mm::kernel_stack::KernelStack;
use crate::mm::user_memory::UserMemory;

/// A process id. Ids start at 1 and are never reused while the kernel runs.
pub type Pid = u32;

/// Why a process is off the run queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockReason {
    /// In `read` on the console, waiting for input.
    ConsoleRead,
    /// In `wait`, waiting for a child to exit.
    WaitChild,
    /// In `sleep`, until the timer reaches this tick.
    Sleep {
        /// The tick to wake at.
        until_tick: u64,
    },
}

/// The life cycle of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// In the run queue.
    Ready,
    /// On the CPU.
    Running,
    /// Off the run queue until an event.
    Blocked(BlockReason),
    /// Exited with this status; kept until the parent's `wait` reaps it.
    Zombie(i32),
}

/// A process control block.
#[derive(Debug)]
pub struct Process {
    /// Its id.
    pub pid: Pid,
    /// Its parent's id (0 for the first process). Orphans are given to pid 1.
    pub parent: Pid,
    /// The program's name.
    pub name: String,
    /// Where it is in its life cycle.
    pub state: State,
    /// Its user memory; `None` once it has exited.
    pub memory: Option<UserMemory>,
    /// Its kernel stack; `None` once it has exited.
    pub kernel_stack: Option<KernelStack>,
    /// Set by `kill`: the process ends the next time it would return to ring 3.
    pub killed: bool,
    /// The CPU fault in ring 3 that ended it, for its parent's `wait`.
    pub fault: Option<CpuFault>,
}

impl Process {
    /// The process as `process_list` reports it.
    pub fn info(&self) -> ProcessInfo {
        let state = match self.state {
            State::Ready => ProcessState::Ready,
            State::Running => ProcessState::Running,
            State::Blocked(_) => ProcessState::Blocked,
            State::Zombie(_) => ProcessState::Zombie,
        };
        let mut name = [0u8; NAME_MAX];
        let length = self.name.len().min(NAME_MAX);
        name[..length].copy_from_slice(&self.name.as_bytes()[..length]);
        ProcessInfo {
            pid: self.pid,
            parent: self.parent,
            state: state as u32,
            name_len: length as u32,
            name,
            memory_bytes: self.memory.as_ref().map_or(0, UserMemory::mapped_bytes),
        }
    }

    /// How it ended, once it has: its status and the fault that killed it, if any.
    pub fn exit_info(&self) -> Option<ExitInfo> {
        let State::Zombie(status) = self.state else { return None };
        Some(match self.fault {
            Some(fault) => ExitInfo {
                status,
                fault_vector: fault.vector as u32,
                fault_address: fault.address.unwrap_or(0),
                fault_ip: fault.instruction,
                fault_error: fault.error_code,
            },
            None => ExitInfo::exited(status),
        })
    }

    /// Whether it has exited.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, State::Zombie(_))
    }
}

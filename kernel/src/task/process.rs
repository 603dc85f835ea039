//! The process: what the kernel keeps for each running program.

use alloc::string::String;
use alloc::sync::Arc;

use abi::{ExitInfo, NAME_MAX, ProcessInfo, ProcessState};

use crate::arch::trap::CpuFault;
use crate::mm::kernel_stack::KernelStack;
use crate::mm::user_memory::ProcessMemory;

/// A process id. Ids start at 1 and are never reused while the kernel runs.
pub type Pid = u32;

/// Hands out process ids: 1, 2, 3, ... and never one twice. Once `u32::MAX` is given out,
/// there are no more (spawning fails), rather than wrapping around to ids in use.
#[derive(Debug)]
pub struct PidAllocator {
    next: Option<Pid>,
}

impl Default for PidAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl PidAllocator {
    /// Starts at pid 1.
    pub const fn new() -> Self {
        Self { next: Some(1) }
    }

    /// The next unused id, or `None` when every id has been used.
    pub fn allocate(&mut self) -> Option<Pid> {
        let pid = self.next?;
        self.next = pid.checked_add(1);
        Some(pid)
    }
}

/// Why a process is off the run queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockReason {
    /// In `wait`, until a process it holds a handle to ends, or until the clock reaches
    /// `until_ns` (`u64::MAX`: no timeout).
    WaitProcess {
        /// Nanoseconds since boot to give up at.
        until_ns: u64,
    },
    /// In `sleep`, until the clock reaches this time.
    Sleep {
        /// Nanoseconds since boot to wake at.
        until_ns: u64,
    },
    /// In IPC (a call, a receive, a notification wait) until a partner delivers, or until
    /// the clock reaches `until_ns` (`u64::MAX`: no timeout).
    Ipc {
        /// Nanoseconds since boot to give up at.
        until_ns: u64,
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
    /// Ended: its CPU is switching away for the last time (see `scheduler::Departed`).
    Ending,
}

/// A process control block.
#[derive(Debug)]
pub struct Process {
    /// Its id.
    pub pid: Pid,
    /// Its parent's id (0 for the first process); kept as it was if the parent ends first.
    pub parent: Pid,
    /// The program's name.
    pub name: String,
    /// Where it is in its life cycle.
    pub state: State,
    /// Its user memory; `None` once it has started exiting.
    pub memory: Option<Arc<ProcessMemory>>,
    /// Its kernel stack.
    pub kernel_stack: Option<KernelStack>,
    /// Set by `kill`: the process ends the next time it would return to ring 3.
    pub killed: bool,
    /// Its handles and IPC state, shared with whoever holds a handle to it.
    pub object: Arc<ProcessObject>,
    /// The job it runs in, for life.
    pub job: Arc<crate::object::job::Job>,
    /// The CPU fault in ring 3 that is ending it, for `wait`.
    pub fault: Option<CpuFault>,
    /// The CPU it runs on, or last ran on.
    pub cpu: u32,
    /// Time spent running, up to `running_since_ns` if it runs now.
    pub cpu_time_ns: u64,
    /// When it last started running (clock nanoseconds).
    pub running_since_ns: u64,
    /// The I/O ports it enabled (`ioports_enable`), open in the TSS while it runs.
    pub io_ports: crate::arch::gdt::PortRanges,
}

impl super::table::Keyed for Process {
    fn key(&self) -> u32 {
        self.pid
    }
}

impl Process {
    /// Adds the time since it started running, up to `now_ns`, to its CPU time (it stops
    /// running, or is charged anew).
    pub fn charge_cpu_time(&mut self, now_ns: u64) {
        self.cpu_time_ns = self.cpu_time_ns.saturating_add(now_ns.saturating_sub(self.running_since_ns));
        self.running_since_ns = now_ns;
    }

    /// The process as `process_list` reports it at `now_ns`.
    pub fn info(&self, now_ns: u64) -> ProcessInfo {
        let state = match self.state {
            State::Ready => ProcessState::Ready,
            State::Running => ProcessState::Running,
            State::Blocked(_) => ProcessState::Blocked,
            State::Ending => ProcessState::Ending,
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
            memory_bytes: self.memory.as_ref().map_or(0, |memory| memory.charged_bytes()),
            cpu_time_ns: match self.state {
                State::Running => self.cpu_time_ns.saturating_add(now_ns.saturating_sub(self.running_since_ns)),
                _ => self.cpu_time_ns,
            },
            cpu: self.cpu,
            reserved: 0,
        }
    }

    /// How it ends with `status`: the status and the fault that killed it, if any.
    pub fn exit_info(&self, status: i32) -> ExitInfo {
        match self.fault {
            Some(fault) => ExitInfo {
                status,
                fault_vector: fault.vector as u32,
                fault_address: fault.address.unwrap_or(0),
                fault_ip: fault.instruction,
                fault_error: fault.error_code,
            },
            None => ExitInfo::exited(status),
        }
    }
}

/// The part of a process that handles and other processes can hold on to: its identity, its
/// handle table, its IPC state and, once it has ended, how. It outlives the process's run
/// while handles to it exist (a parent's handle, a caller awaiting a reply); its handles are
/// closed when the process ends, and the process leaves the process table then (there are
/// no zombies: whoever holds a handle can still learn how it ended).
#[derive(Debug)]
pub struct ProcessObject {
    /// The process's id.
    pub pid: Pid,
    /// Its slot in the process table while it runs.
    pub slot: usize,
    /// How it ended, once it has.
    pub exit: spin::Mutex<Option<ExitInfo>>,
    /// Its handles.
    pub handles: spin::Mutex<crate::object::handles::HandleTable>,
    /// What it is doing in IPC.
    pub ipc: spin::Mutex<crate::ipc::state::IpcState>,
    /// Set when a partner has put a result in `ipc` for it; the scheduler checks it (without
    /// taking `ipc`'s lock) to decide whether the process may stay blocked.
    pub ipc_ready: core::sync::atomic::AtomicBool,
    _live: crate::object::LiveObject,
}

impl ProcessObject {
    /// The object of process `pid` in table slot `slot`, with `handles`.
    pub fn new(pid: Pid, slot: usize, handles: crate::object::handles::HandleTable) -> Self {
        Self {
            pid,
            slot,
            exit: spin::Mutex::new(None),
            handles: spin::Mutex::new(handles),
            ipc: spin::Mutex::new(crate::ipc::state::IpcState::default()),
            ipc_ready: core::sync::atomic::AtomicBool::new(false),
            _live: crate::object::LiveObject::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_count_up_from_one_and_never_wrap() {
        let mut pids = PidAllocator::new();
        assert_eq!(pids.allocate(), Some(1));
        assert_eq!(pids.allocate(), Some(2));
        let mut near_the_end = PidAllocator { next: Some(u32::MAX - 1) };
        assert_eq!(near_the_end.allocate(), Some(u32::MAX - 1));
        assert_eq!(near_the_end.allocate(), Some(u32::MAX));
        assert_eq!(near_the_end.allocate(), None);
        assert_eq!(near_the_end.allocate(), None);
    }
}

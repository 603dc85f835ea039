//! The process: what the kernel keeps for each running program, shared by its threads
//! (`thread`).

use alloc::string::String;
use alloc::sync::Arc;

use abi::{ExitInfo, NAME_MAX, ProcessInfo, ProcessState};

use crate::arch::trap::CpuFault;
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

/// A process control block: what its threads share.
#[derive(Debug)]
pub struct Process {
    /// Its id (also its first thread's).
    pub pid: Pid,
    /// Its parent's id (0 for the first process); kept as it was if the parent ends first.
    pub parent: Pid,
    /// The program's name.
    pub name: String,
    /// Its user memory; `None` once its last thread has started tearing it down.
    pub memory: Option<Arc<ProcessMemory>>,
    /// Its handles, and how it ended, shared with whoever holds a handle to it.
    pub object: Arc<ProcessObject>,
    /// The job it runs in, for life.
    pub job: Arc<crate::object::job::Job>,
    /// The CPU fault in ring 3 that is ending it, for `wait`.
    pub fault: Option<CpuFault>,
    /// Its threads that have not left yet (the last one to leave tears the process down).
    pub threads: usize,
    /// Set by `exit` or `kill` of the whole process: the status it ends with, whatever its
    /// threads do meanwhile. No thread starts in it once this is set.
    pub ending_with: Option<i32>,
    /// CPU time of its threads that have left.
    pub departed_cpu_time_ns: u64,
    /// The CPU one of its threads ran on last.
    pub cpu: u32,
    /// Whether its system calls are messages to its exception endpoint (decision 72): fixed
    /// when it is spawned, from its job.
    pub syscalls_as_messages: bool,
    /// The I/O ports it enabled (`ioports_enable`), open in the TSS while one of its threads
    /// runs.
    pub io_ports: crate::arch::gdt::PortRanges,
}

impl super::table::Keyed for Process {
    fn key(&self) -> u32 {
        self.pid
    }
}

impl Process {
    /// The process as `process_list` reports it before its threads are counted in: no
    /// thread (so state Ending), the CPU time of departed threads.
    pub fn info(&self) -> ProcessInfo {
        let mut name = [0u8; NAME_MAX];
        let length = self.name.len().min(NAME_MAX);
        name[..length].copy_from_slice(&self.name.as_bytes()[..length]);
        ProcessInfo {
            pid: self.pid,
            parent: self.parent,
            state: ProcessState::Ending as u32,
            name_len: length as u32,
            name,
            memory_bytes: self.memory.as_ref().map_or(0, |memory| memory.charged_bytes()),
            cpu_time_ns: self.departed_cpu_time_ns,
            cpu: self.cpu,
            threads: 0,
        }
    }

    /// How it ends with `status`: the status and the fault that killed it, if any.
    pub fn exit_info(&self, status: i32) -> ExitInfo {
        exit_info(status, self.fault)
    }
}

/// How a process or thread ends with `status`, after `fault` if a fault ended it.
pub fn exit_info(status: i32, fault: Option<CpuFault>) -> ExitInfo {
    match fault {
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

/// The part of a process that handles and threads can hold on to: its identity, its handle
/// table and, once it has ended, how. It outlives the process's run
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
    /// Where its faults in ring 3 go as messages (`exception_endpoint_set`; a thread's own
    /// comes before its process's); taken when its end is recorded.
    pub exception_endpoint: spin::Mutex<Option<Arc<crate::ipc::endpoint::EndpointRef>>>,
    _live: crate::object::LiveObject,
}

impl ProcessObject {
    /// The object of process `pid` in table slot `slot`, with `handles`.
    pub fn new(pid: Pid, slot: usize, handles: crate::object::handles::HandleTable) -> Self {
        Self {
            pid,
            slot,
            exit: spin::Mutex::new(None),
            exception_endpoint: spin::Mutex::new(None),
            handles: spin::Mutex::new(handles),
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

//! A process's life: `spawn`, `kill`, and its end (its memory freed in steps, its handles
//! closed, and its leaving the table once its CPU has switched away for the last time).

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use crate::arch::x86_64::cpu::{self, MAX_CPUS};
use crate::arch::x86_64::smp;
use crate::arch::x86_64::trap::{CpuFault, TrapFrame};
use crate::mm::address_space::PAGES_PER_STEP;
use crate::mm::kernel_stack::KernelStack;
use crate::mm::user_memory::ProcessMemory;
use crate::object::handles::HandleTable;
use crate::task::loader::{self, Image, LoadError};
use crate::task::process::{BlockReason, Pid, Process, ProcessObject, State};

use super::{DEPARTED, MAX_PROCESSES, current_pid, pause, reschedule, with_scheduler};

/// Why `spawn` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// The process table (or the kernel-stack pool) is full, or every pid has been used.
    TooManyProcesses,
    /// The image could not be loaded.
    Load(LoadError),
}

impl SpawnError {
    /// The errno `spawn` returns.
    pub fn errno(self) -> i64 {
        use abi::errno::*;
        match self {
            Self::TooManyProcesses => EAGAIN,
            Self::Load(LoadError::Memory(error)) => error.errno(),
            Self::Load(LoadError::ArgumentsTooLong) => E2BIG,
            Self::Load(LoadError::Invalid(_)) => EINVAL,
        }
    }
}

/// Why `kill` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillError {
    /// No live process has that pid.
    NoSuchProcess,
    /// Pid 1 cannot be killed.
    NotPermitted,
}

/// A process that has ended (state [`State::Ending`]) but still ran on its kernel stack when
/// it did. Right after its CPU switched away, it leaves the table, its stack is freed, its end
/// is recorded and waiters are woken, all in one hold of the big kernel lock: whoever learns
/// that it ended, or sees it gone from the table (on any CPU), finds every frame and object it
/// had back (see decision 50).
#[derive(Debug)]
pub(super) struct Departed {
    pub(super) slot: usize,
    pub(super) pid: Pid,
    pub(super) status: i32,
}

impl Departed {
    /// Takes the process out of the table, frees its stack, records its end and wakes every
    /// process waiting for an end. Takes the scheduler lock itself, and drops the process's
    /// parts outside it.
    pub(super) fn finish(self) {
        let process = with_scheduler(|scheduler| {
            let process = scheduler.processes.remove_at(self.slot).expect("an ending process is in the table");
            assert_eq!((process.pid, process.state), (self.pid, State::Ending), "the slot of an ending process was reused");
            process
        });
        let ending = process.exit_info(self.status);
        let object = process.object.clone();
        drop(process);
        *object.exit.lock() = Some(ending);
        with_scheduler(|scheduler| scheduler.wake_all(|reason| matches!(reason, BlockReason::WaitProcess { .. })));
    }
}

/// Starts the program in `image`, called `name`, with `args` (argv\[0\] first) as a child
/// of `parent`, with `handles` as its handle table; returns its object.
pub fn spawn(
    name: &str,
    image: &(impl Image + ?Sized),
    args: &[&str],
    parent: Pid,
    handles: HandleTable,
) -> Result<Arc<ProcessObject>, SpawnError> {
    if with_scheduler(|scheduler| scheduler.processes.len()) >= MAX_PROCESSES {
        return Err(SpawnError::TooManyProcesses);
    }
    let loaded = loader::load(image, args, &mut pause).map_err(SpawnError::Load)?;
    let frame = TrapFrame::new_user(loaded.entry, loaded.stack_pointer);
    let stack = KernelStack::new_for_user(frame).ok_or(SpawnError::TooManyProcesses)?;
    let memory = Arc::new(ProcessMemory::new(loaded.memory));
    let mut handles = Some(handles);
    let spawned = with_scheduler(|scheduler| {
        // The table may have filled up while the program was loading.
        let slot = scheduler.processes.free_slot().ok_or(SpawnError::TooManyProcesses)?;
        let pid = scheduler.pids.allocate().ok_or(SpawnError::TooManyProcesses)?;
        scheduler.first_pid.get_or_insert(pid);
        let object = Arc::new(ProcessObject::new(pid, slot, handles.take().unwrap_or_default()));
        let process = Process {
            pid,
            parent,
            name: String::from(name),
            state: State::Ready,
            memory: Some(memory),
            kernel_stack: Some(stack),
            killed: false,
            object: object.clone(),
            fault: None,
            cpu: 0,
            cpu_time_ns: 0,
            running_since_ns: 0,
            io_ports: Default::default(),
        };
        scheduler.processes.insert_at(slot, process);
        scheduler.push_ready(slot);
        Ok(object)
    });
    // Handles of a child that could not start are closed outside the lock (closing one may
    // wake another process).
    drop(handles);
    spawned
}

/// Marks `pid` killed; it ends before it next returns to ring 3. If it runs on another CPU,
/// that CPU is interrupted, so it ends at once.
pub fn kill(pid: Pid) -> Result<(), KillError> {
    with_scheduler(|scheduler| {
        let is_first = scheduler.first_pid == Some(pid);
        let slot = scheduler.processes.slot_of(pid).ok_or(KillError::NoSuchProcess)?;
        let process = scheduler.processes.at_mut(slot).ok_or(KillError::NoSuchProcess)?;
        if is_first {
            return Err(KillError::NotPermitted);
        }
        process.killed = true;
        scheduler.make_ready_at(slot);
        if let Some(running_on) = (0..MAX_CPUS).find(|&cpu| scheduler.cpus[cpu].current == Some(slot)) {
            cpu::request_attention(running_on);
            if running_on != cpu::index() {
                smp::send_reschedule(running_on);
            }
        }
        Ok(())
    })
}

/// Frees a process's memory in steps, with preemption points between them. The process is
/// still current and runnable meanwhile (with the kernel's own table active).
fn release_memory(memory: Arc<ProcessMemory>) {
    {
        let mut locked = memory.lock();
        while !locked.release_step(PAGES_PER_STEP) {
            pause();
        }
    }
    drop(memory);
}

/// Ends the running process with `status`: frees its memory, closes its handles, and
/// switches away for the last time; then (see [`Departed`]) it leaves the process table, its
/// end is recorded in its object (for whoever holds a handle to it), and every process
/// waiting for an end is woken.
pub fn exit_current(status: i32) -> ! {
    let pid = current_pid();
    let (memory, object) =
        with_scheduler(|scheduler| (scheduler.current_process().memory.take(), scheduler.current_process().object.clone()));
    if let Some(memory) = memory {
        release_memory(memory);
    }
    // Dropped outside every lock: closing a handle may wake other processes.
    let handles = object.handles.lock().take_all();
    drop(handles);
    crate::object::device::forget_process(&object);
    let shut_down = with_scheduler(|scheduler| {
        let this_cpu = cpu::index();
        let slot = scheduler.current_slot().expect("an exiting process is current");
        scheduler.current_process().state = State::Ending;
        let earlier = scheduler.cpus[this_cpu].departed.replace(Departed { slot, pid, status });
        assert!(earlier.is_none(), "a departed process was not finished after its switch");
        DEPARTED[this_cpu].store(true, Ordering::Release);
        scheduler.first_pid == Some(pid)
    });
    drop(object);
    if shut_down {
        log::info!("first process (pid {pid}) exited with status {status}; shutting down");
        crate::arch::x86_64::qemu::exit(status);
    }
    reschedule();
    unreachable!("an exited process was resumed");
}

/// Ends the running process after a CPU fault in ring 3, saying why on the console.
pub fn kill_current_for_fault(fault: &CpuFault) -> ! {
    let pid = current_pid();
    // In a block of its own: `exit_current` never returns, so the copy of the name must be
    // dropped before it (each fault used to leak it).
    {
        let name = with_scheduler(|scheduler| {
            let process = scheduler.current_process();
            process.fault = Some(*fault);
            process.name.clone()
        });
        crate::println!("pid {pid} ({name}) killed: {fault}");
    }
    crate::backtrace::print_user_backtrace(fault, &mut pause);
    exit_current(abi::status::FAULT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_errors_map_to_documented_errnos() {
        assert_eq!(SpawnError::TooManyProcesses.errno(), abi::errno::EAGAIN);
        let memory = LoadError::Memory(crate::mm::address_space::MemoryError::OutOfMemory);
        assert_eq!(SpawnError::Load(memory).errno(), abi::errno::ENOMEM);
        assert_eq!(SpawnError::Load(LoadError::Invalid("x")).errno(), abi::errno::EINVAL);
    }
}

//! The thread: what the scheduler runs. A process is an address space and a handle table;
//! each of its threads has its own kernel stack (and with it its registers, floating-point
//! state and TLS base, see `mm::kernel_stack`), its own blocking state and its own IPC
//! state, so one thread blocked in `call` leaves its siblings running, on other CPUs too.

use alloc::sync::Arc;
use core::sync::atomic::AtomicBool;

use abi::ExitInfo;

use super::process::{Pid, ProcessObject};
use crate::mm::kernel_stack::KernelStack;

/// A thread id. Threads and processes draw their ids from one counter, so a process's first
/// thread has the process's id, and no id is ever given twice while the kernel runs.
pub type Tid = Pid;

/// Why a thread is off the run queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockReason {
    /// In `wait`, until a process or thread it holds a handle to ends, or until the clock
    /// reaches `until_ns` (`u64::MAX`: no timeout).
    WaitProcess {
        /// Nanoseconds since boot to give up at.
        until_ns: u64,
    },
    /// In `sleep`, until the clock reaches this time.
    Sleep {
        /// Nanoseconds since boot to wake at.
        until_ns: u64,
    },
    /// In IPC (a call, a receive, a notification wait, a pipe, a futex) until a partner
    /// delivers, or until the clock reaches `until_ns` (`u64::MAX`: no timeout).
    Ipc {
        /// Nanoseconds since boot to give up at.
        until_ns: u64,
    },
}

impl BlockReason {
    /// When the wait gives up by itself (`u64::MAX`: never).
    pub fn until_ns(self) -> u64 {
        let (Self::Sleep { until_ns } | Self::Ipc { until_ns } | Self::WaitProcess { until_ns }) = self;
        until_ns
    }
}

/// The life cycle of a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// In the run queue.
    Ready,
    /// On a CPU.
    Running,
    /// Off the run queue until an event.
    Blocked(BlockReason),
    /// Ended: its CPU is switching away for the last time (see `scheduler::Departed`).
    Ending,
}

/// What the scheduler keeps for each thread.
#[derive(Debug)]
pub struct Thread {
    /// Its id.
    pub tid: Tid,
    /// The slot of its process in the process table.
    pub process_slot: usize,
    /// Where it is in its life cycle.
    pub state: State,
    /// Its kernel stack; `None` never while it is in the table (taken when it leaves).
    pub kernel_stack: Option<KernelStack>,
    /// Set by `kill` (of the thread, or of its process): the thread ends the next time it
    /// would return to ring 3, and its blocking calls return `EINTR`.
    pub killed: bool,
    /// Its IPC state and how it ended, shared with whoever holds a handle to it.
    pub object: Arc<ThreadObject>,
    /// The CPU it runs on, or last ran on.
    pub cpu: u32,
    /// Time spent running, up to `running_since_ns` if it runs now.
    pub cpu_time_ns: u64,
    /// When it last started running (clock nanoseconds).
    pub running_since_ns: u64,
}

impl super::table::Keyed for Thread {
    fn key(&self) -> u32 {
        self.tid
    }
}

impl Thread {
    /// A new ready thread of the process in `process_slot`, running on `kernel_stack`.
    pub fn new(object: Arc<ThreadObject>, process_slot: usize, kernel_stack: KernelStack) -> Self {
        Self {
            tid: object.tid,
            process_slot,
            state: State::Ready,
            kernel_stack: Some(kernel_stack),
            killed: false,
            object,
            cpu: 0,
            cpu_time_ns: 0,
            running_since_ns: 0,
        }
    }

    /// Adds the time since it started running, up to `now_ns`, to its CPU time (it stops
    /// running, or is charged anew).
    pub fn charge_cpu_time(&mut self, now_ns: u64) {
        self.cpu_time_ns = self.cpu_time_ns.saturating_add(now_ns.saturating_sub(self.running_since_ns));
        self.running_since_ns = now_ns;
    }

    /// Its CPU time up to `now_ns`.
    pub fn cpu_time_at(&self, now_ns: u64) -> u64 {
        match self.state {
            State::Running => self.cpu_time_ns.saturating_add(now_ns.saturating_sub(self.running_since_ns)),
            _ => self.cpu_time_ns,
        }
    }
}

/// The part of a thread that handles and IPC partners hold on to: its identity, its
/// process, its IPC state and, once it has ended, how. A caller blocked in `call` is a
/// thread: queues of endpoints, notifications, pipes and futexes hold these, and a reply
/// handle names one.
#[derive(Debug)]
pub struct ThreadObject {
    /// The thread's id.
    pub tid: Tid,
    /// Its slot in the thread table while it runs.
    pub slot: usize,
    /// Its process (whose handle table and memory its IPC uses).
    pub process: Arc<ProcessObject>,
    /// How it ended, once it has (status, and the fault for a fault).
    pub exit: spin::Mutex<Option<ExitInfo>>,
    /// What it is doing in IPC.
    pub ipc: spin::Mutex<crate::ipc::state::IpcState>,
    /// Set when a partner has put a result in `ipc` for it (or woken it from a pipe or a
    /// futex); the scheduler checks it (without taking `ipc`'s lock) to decide whether the
    /// thread may stay blocked.
    pub ipc_ready: AtomicBool,
    /// Where its faults in ring 3 go as messages (`exception_endpoint_set`; a thread's own
    /// comes before its process's); taken when its end is recorded.
    pub exception_endpoint: spin::Mutex<Option<Arc<crate::ipc::endpoint::EndpointRef>>>,
    /// Its registers while it is stopped (waiting for the answer to its fault or syscall
    /// message, `task::exception`), which `thread_state_read` reads and `thread_state_write`
    /// replaces (sanitised); `None` otherwise.
    pub stopped: spin::Mutex<Option<Stopped>>,
    _live: crate::object::LiveObject,
}

/// A stopped thread's registers (see [`ThreadObject::stopped`]).
#[derive(Clone, Copy, Debug)]
pub struct Stopped {
    /// As it stopped, or as `thread_state_write` left them.
    pub registers: abi::exception::Registers,
    /// Whether `thread_state_write` replaced them (the thread resumes with them then, unless
    /// the answer carries registers of its own).
    pub written: bool,
}

impl ThreadObject {
    /// The object of thread `tid` of `process`, in thread-table slot `slot`.
    pub fn new(tid: Tid, slot: usize, process: Arc<ProcessObject>) -> Self {
        Self {
            tid,
            slot,
            process,
            exit: spin::Mutex::new(None),
            exception_endpoint: spin::Mutex::new(None),
            stopped: spin::Mutex::new(None),
            ipc: spin::Mutex::new(crate::ipc::state::IpcState::default()),
            ipc_ready: AtomicBool::new(false),
            _live: crate::object::LiveObject::new(),
        }
    }
}

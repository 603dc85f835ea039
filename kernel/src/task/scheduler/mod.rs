//! The process table and the scheduler: preemptive round-robin over ready processes, on
//! every CPU.
//!
//! This module holds the scheduler's state (the table, the run queue, each CPU's part) and
//! the choice of what runs next; [`run_queue`] the queue itself, [`blocking`] blocking,
//! waking and hand-offs, [`preemption`] time slices, preemption points and the idle loop,
//! and [`lifecycle`] spawn, kill and exit.
//!
//! - **Run queue**: one queue of ready processes in FIFO order, shared by every CPU (the
//!   big kernel lock serialises the scheduler anyway, so per-CPU queues would only add
//!   stealing; see decision 47). A process runs on one CPU at a time: only a ready process
//!   is chosen, and choosing it makes it running. A process runs for up to
//!   [`TIME_SLICE_NS`] (10 ms by the clock, which cannot lose time); its CPU's timer
//!   interrupt checks the slice, and a process whose slice is used up goes to the back of
//!   the queue on its way back to ring 3 (or at a preemption point of a long syscall).
//! - **Per CPU**: the running process, when its slice began, a process that exited there
//!   (finished after the switch away), whether the CPU is halted in its idle loop, and a flag
//!   asking the running process to look at its state. A CPU with nothing to run halts; a
//!   process made ready while a CPU halts sends that CPU a reschedule interrupt, so it runs at
//!   once rather than at the next tick; a sleeper the timer wakes while no CPU idles ends the
//!   slice of the process the tick interrupted.
//! - **Blocking**: IPC, `wait` and `sleep` mark the process blocked and switch away; a
//!   partner, a child's exit or the timer makes it ready again.
//!   When nothing is ready the CPU goes back to the idle loop, which runs the async executor
//!   and halts until the next interrupt.
//! - **Kill**: `kill` only marks the process; a blocked one is woken, its blocking call
//!   returns `EINTR`, and the process exits on its way back to ring 3, after every kernel
//!   frame it had unwound normally, so nothing it held leaks. One running on another CPU is
//!   sent a reschedule interrupt, which brings it into the kernel at once.
//! - **CPU time**: each process accumulates the time it spent running, and remembers the
//!   last CPU it ran on; `ps` shows both.
//! - **Exit**: memory is freed in steps with preemption points between them (a process of
//!   64 MiB takes tens of millions of instructions to free), then the handles are closed and
//!   it is marked ending; right after its CPU switches away from it for the last time, it
//!   leaves the table, the kernel stack it ran on is freed, and how it ended is recorded in
//!   its object (which whoever holds a handle can `wait` for) and waiters are woken, all in
//!   one hold of the big kernel lock, so that no CPU sees it gone or ended while its frames or
//!   objects are still in use. There are no zombies and no reparenting. When the first
//!   process exits, the machine shuts down with its status.
//!
//! The kernel runs with interrupts masked (except in the idle loop's halt and at preemption
//! points) and under the big kernel lock, so the scheduler lock is taken by one CPU at a
//! time in practice; it stays, inside the big lock, as the last in the lock order. No lock is
//! ever held across a switch (the switch releases the big lock, see `kernel_stack`). Nothing
//! here allocates in the timer interrupt.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::ProcessInfo;
use spin::Mutex;

use crate::arch::x86_64::cpu::{self, MAX_CPUS};
use crate::arch::x86_64::{gdt, smp};
use crate::mm::kernel_stack::{self, Context};
use crate::mm::user_memory::{ProcessMemory, UserMemory};

use super::process::{BlockReason, Pid, PidAllocator, Process, ProcessObject, State};
use super::table::SlotTable;

mod blocking;
mod lifecycle;
mod preemption;
mod run_queue;

pub use super::table::MAX_PROCESSES;
pub use blocking::{BlockOutcome, Handoff, block_for_ipc, sleep_ns, wait_for_an_exit, wake, yield_now};
pub use lifecycle::{KillError, SpawnError, exit_current, kill, kill_current_for_fault, spawn};
pub use preemption::{
    Killed, before_user_return, on_timer_tick, pause, preemption_point, run_idle_loop, timer_tick_without_lock,
};

use lifecycle::Departed;
use run_queue::RunQueue;

/// How long a process may run before another ready process gets the CPU.
pub const TIME_SLICE_NS: u64 = 10_000_000;

/// What the scheduler keeps for each CPU.
#[derive(Debug)]
struct CpuState {
    /// The slot of the process this CPU runs.
    current: Option<usize>,
    /// A process that exited on this CPU, finished right after the switch away.
    departed: Option<Departed>,
}

struct Scheduler {
    processes: SlotTable<Process>,
    run_queue: RunQueue,
    cpus: [CpuState; MAX_CPUS],
    /// CPUs about to halt, or halted, in their idle loops that nobody has woken yet (bit n:
    /// CPU n).
    idle_cpus: u32,
    pids: PidAllocator,
    first_pid: Option<Pid>,
}

static SCHEDULER: Mutex<Scheduler> = Mutex::new(Scheduler {
    processes: SlotTable::new(),
    run_queue: RunQueue::new(),
    cpus: [const { CpuState { current: None, departed: None } }; MAX_CPUS],
    idle_cpus: 0,
    pids: PidAllocator::new(),
    first_pid: None,
});

/// The earliest time a sleeper wants to wake at (`u64::MAX`: none). Written under the
/// scheduler lock, read without it by the timer interrupt.
static NEXT_WAKE_NS: AtomicU64 = AtomicU64::new(u64::MAX);

/// When the time slice of the process each CPU runs began (clock nanoseconds). Written by
/// that CPU, read by its timer interrupt without a lock.
static SLICE_START_NS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Set when this CPU's timer woke a sleeper that no idle CPU took: the slice of the process
/// this CPU runs ends now, so that a sleep is not stretched by another process's whole slice
/// (a flood of console output once made 10 ms sleeps take 36 ms). Cleared when the CPU next
/// takes a process from the run queue.
static SLEEPER_WAITING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Set when a CPU's `departed` holds a process for [`after_switch`] to finish, so a switch
/// with none does not take the lock again.
static DEPARTED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Runs `f` on the scheduler, under its lock. Kernel code runs with interrupts masked (see
/// the module comment), so no interrupt handler on this CPU can want the lock meanwhile.
fn with_scheduler<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    debug_assert!(!cpu::interrupts_enabled(), "the scheduler lock taken with interrupts enabled");
    f(&mut SCHEDULER.lock())
}

impl Scheduler {
    /// The slot of the process this CPU runs.
    fn current_slot(&self) -> Option<usize> {
        self.cpus[cpu::index()].current
    }

    fn current_process(&mut self) -> &mut Process {
        let slot = self.current_slot().expect("no current process");
        self.processes.at_mut(slot).expect("current process missing from the table")
    }

    /// Queues the ready process in `slot`, and wakes a halted CPU (another one: this CPU
    /// looks at the queue by itself) to run it; returns whether it woke one.
    fn push_ready(&mut self, slot: usize) -> bool {
        self.run_queue.push(slot);
        let others_idle = self.idle_cpus & !(1 << cpu::index());
        if others_idle == 0 {
            return false;
        }
        let idle = others_idle.trailing_zeros() as usize;
        self.idle_cpus &= !(1 << idle);
        smp::send_reschedule(idle);
        true
    }

    /// Makes the process in `slot` ready if it is blocked.
    fn make_ready_at(&mut self, slot: usize) {
        if let Some(process) = self.processes.at_mut(slot)
            && matches!(process.state, State::Blocked(_))
        {
            process.state = State::Ready;
            self.push_ready(slot);
        }
    }

    /// Makes every process blocked for a reason `matches` accepts ready.
    fn wake_all(&mut self, matches: impl Fn(BlockReason) -> bool) {
        for slot in 0..MAX_PROCESSES {
            if let Some(process) = self.processes.at_mut(slot)
                && let State::Blocked(reason) = process.state
                && matches(reason)
            {
                process.state = State::Ready;
                self.push_ready(slot);
            }
        }
    }

    /// Makes every sleeper (and IPC or process wait with a timeout) whose time has come ready,
    /// and notes when the next one is due; returns whether one of them waits for a CPU (none
    /// was idle to take it).
    fn wake_sleepers(&mut self, now_ns: u64) -> bool {
        if now_ns < NEXT_WAKE_NS.load(Ordering::Relaxed) {
            return false;
        }
        let mut next = u64::MAX;
        let mut sleeper_waits = false;
        for slot in 0..MAX_PROCESSES {
            let Some(process) = self.processes.at_mut(slot) else { continue };
            if let State::Blocked(
                BlockReason::Sleep { until_ns } | BlockReason::Ipc { until_ns } | BlockReason::WaitProcess { until_ns },
            ) = process.state
            {
                if until_ns <= now_ns {
                    process.state = State::Ready;
                    sleeper_waits |= !self.push_ready(slot);
                } else {
                    next = next.min(until_ns);
                }
            }
        }
        NEXT_WAKE_NS.store(next, Ordering::Relaxed);
        sleeper_waits
    }

    /// Picks what runs next and prepares the switch to it; `None` when the running context
    /// simply continues.
    fn choose_next(&mut self) -> Option<Context> {
        self.choose_next_preferring(None)
    }

    /// [`choose_next`](Self::choose_next), but the process in slot `partner` runs next if it
    /// is blocked (it was just handed a message, and becomes ready without a trip through the
    /// run queue) or ready (taken out of the queue). The process this CPU ran until now is
    /// charged the time since it started running.
    fn choose_next_preferring(&mut self, partner: Option<usize>) -> Option<Context> {
        let this_cpu = cpu::index();
        let now = crate::time::uptime_ns();
        let outgoing = self.cpus[this_cpu].current;
        if let Some(process) = outgoing.and_then(|slot| self.processes.at_mut(slot)) {
            process.charge_cpu_time(now);
        }
        let partner = partner.filter(|&slot| {
            self.processes.at(slot).is_some_and(|process| matches!(process.state, State::Blocked(_) | State::Ready))
        });
        let next = match partner {
            Some(slot) => {
                if self.processes.at(slot).is_some_and(|process| process.state == State::Ready) {
                    self.run_queue.remove(slot);
                }
                // The partner runs on the rest of the caller's slice: a pair handing the CPU
                // back and forth is charged as one, so its slice runs out and the queue is
                // served (a fresh slice at each hand-off starved every other process).
                Some(slot)
            }
            None => {
                // The sleepers ahead in the queue get their turn from here; a message handed
                // to a partner (above) leaves them waiting for the next return to ring 3.
                SLEEPER_WAITING[this_cpu].store(false, Ordering::Relaxed);
                let processes = &self.processes;
                let popped =
                    self.run_queue.pop_ready(|slot| processes.at(slot).is_some_and(|process| process.state == State::Ready));
                if popped.is_some() {
                    SLICE_START_NS[this_cpu].store(now, Ordering::Relaxed);
                }
                popped
            }
        };
        let to = match next {
            Some(slot) => {
                let process = self.processes.at_mut(slot).expect("queued slot holds a process");
                process.state = State::Running;
                process.cpu = this_cpu as u32;
                process.running_since_ns = now;
                if process.killed {
                    cpu::request_attention(this_cpu);
                }
                if outgoing == Some(slot) {
                    return None;
                }
                let stack = process.kernel_stack.as_ref().expect("a ready process has a kernel stack");
                match &process.memory {
                    Some(memory) => memory.activate(),
                    // An exiting process frees its memory with the kernel's own table active.
                    None => crate::mm::paging::activate_kernel_root(),
                }
                stack.load_for_entries();
                gdt::set_io_permissions(&process.io_ports);
                cpu::set_current_pid(process.pid);
                self.cpus[this_cpu].current = Some(slot);
                stack.context()
            }
            None if outgoing.is_none() => return None,
            None => {
                self.cpus[this_cpu].current = None;
                gdt::set_io_permissions(&Default::default());
                cpu::set_current_pid(0);
                // An idle CPU holds no process's address space, so only the CPU that runs a
                // process can cache its translations (see `arch::x86_64::tlb`).
                crate::mm::paging::activate_kernel_root();
                Context::idle()
            }
        };
        // Another process's stack, or the idle context when a process ran: never the
        // context running now (`switch_to` checks that too).
        Some(to)
    }
}

/// Switches to whatever should run next, if that is not the running context. The caller
/// has already put the running process in its new state.
fn reschedule() {
    switch_to_chosen(with_scheduler(Scheduler::choose_next));
}

/// Switches to `to`, what [`Scheduler::choose_next`] chose, if anything.
fn switch_to_chosen(to: Option<Context>) {
    if let Some(to) = to {
        kernel_stack::switch_to(to);
        after_switch();
    }
}

/// Bookkeeping right after a switch, on the new stack: finishes a process that exited on
/// this CPU (see [`Departed`]). Also the first thing a new process runs.
#[inline]
pub fn after_switch() {
    let this_cpu = cpu::index();
    if DEPARTED[this_cpu].swap(false, Ordering::Acquire)
        && let Some(departed) = with_scheduler(|scheduler| scheduler.cpus[this_cpu].departed.take())
    {
        departed.finish();
    }
}

/// The first Rust code a new process runs on its kernel stack, before its first entry to
/// ring 3: it finishes the switch to it (taking the big kernel lock), and may have been
/// killed before it ever ran.
pub fn start_user() {
    kernel_stack::finish_switch();
    after_switch();
    before_user_return();
}

/// The pid of the process this CPU runs (0 while idle).
#[inline]
pub fn current_pid() -> Pid {
    cpu::current_pid()
}

/// The parent of the running process.
pub fn parent_pid() -> Pid {
    with_scheduler(|scheduler| scheduler.current_process().parent)
}

/// Runs `f` on the running process's memory. The scheduler lock is not held meanwhile, so
/// `f` may pass preemption points (see [`pause`]).
pub fn with_current_memory<R>(f: impl FnOnce(&mut UserMemory) -> R) -> R {
    let memory = with_scheduler(|scheduler| scheduler.current_process().memory.clone())
        .expect("a running process has memory");
    let mut locked = memory.lock();
    f(&mut locked)
}

/// Lets the running process use the ports of `range` from now on; `ENOSPC` when it has
/// [`abi::IO_RANGES_MAX`] ranges already.
pub fn enable_io_ports(range: gdt::PortRange) -> Result<(), i64> {
    with_scheduler(|scheduler| {
        let ports = &mut scheduler.current_process().io_ports;
        if !ports.contains(&range) {
            let free = ports.iter_mut().find(|entry| entry.count == 0).ok_or(abi::errno::ENOSPC)?;
            *free = range;
        }
        gdt::set_io_permissions(ports);
        Ok(())
    })
}

/// The memory of process `pid`, unless it has ended.
pub fn memory_of(pid: Pid) -> Option<Arc<ProcessMemory>> {
    with_scheduler(|scheduler| scheduler.processes.get(pid).and_then(|process| process.memory.clone()))
}

/// The running process's object (handles, IPC state).
pub fn current_object() -> Arc<ProcessObject> {
    with_scheduler(|scheduler| scheduler.current_process().object.clone())
}

/// A row for every process, in pid order.
pub fn process_list() -> Vec<ProcessInfo> {
    let now = crate::time::uptime_ns();
    with_scheduler(|scheduler| {
        let mut rows: Vec<ProcessInfo> = scheduler.processes.iter().map(|process| process.info(now)).collect();
        rows.sort_unstable_by_key(|row| row.pid);
        rows
    })
}

/// How many processes are in the table.
pub fn process_count() -> usize {
    with_scheduler(|scheduler| scheduler.processes.len())
}

//! The process and thread tables and the scheduler: preemptive round-robin over ready
//! threads, on every CPU. A process is its memory, handles and job; what runs is a thread
//! (`thread`), and a process has one or more. The slice, blocking and kill rules below
//! speak of threads; "the process" of a thread is the one it belongs to.
//!
//! - **Run queue**: one queue of ready threads in FIFO order, shared by every CPU (the
//!   big kernel lock serialises the scheduler anyway, so per-CPU queues would only add
//!   stealing; see decision 47). A thread runs on one CPU at a time: only a ready thread
//!   is chosen, and choosing it makes it running. A thread runs for up to
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
//! - **Exit**: a thread leaves (`thread_exit`, or killed); `exit` and a kill of the process
//!   mark the process ending with a status and kill every thread of it. The last thread to
//!   leave tears the process down: its memory is freed in steps with preemption points
//!   between them (a process of 64 MiB takes tens of millions of instructions to free), then
//!   the handles are closed. A leaving thread is marked ending; right after its CPU switches
//!   away from it for the last time, it leaves the table, the kernel stack it ran on is
//!   freed, and how it ended is recorded in its object; when it was the last of its process
//!   in the table and the process was torn down, the process leaves its table too and its
//!   end is recorded in its object (which whoever holds a handle can `wait` for). Waiters
//!   are woken, all in one hold of the big kernel lock, so that no CPU sees a thread or
//!   process gone or ended while its frames or objects are still in use. There are no
//!   zombies and no reparenting. When the first process exits, the machine shuts down with
//!   its status.
//!
//! The kernel runs with interrupts masked (except in the idle loop's halt and at preemption
//! points) and under the big kernel lock, so the scheduler lock is taken by one CPU at a
//! time in practice; it stays, inside the big lock, as the last in the lock order. No lock is
//! ever held across a switch (the switch releases the big lock, see `kernel_stack`). Nothing
//! here allocates in the timer interrupt.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::ProcessInfo;
use spin::Mutex;

use super::executor;
use super::loader::{self, Image, LoadError};
use super::process::{Pid, PidAllocator, Process, ProcessObject, exit_info};
use super::table::SlotTable;
use super::thread::{BlockReason, State, Thread, ThreadObject, Tid};
use crate::arch::cpu::{self, MAX_CPUS};
use crate::arch::kernel_lock::{self, Pause};
use crate::arch::{gdt, smp};
use crate::arch::trap::{CpuFault, TrapFrame};
use crate::arch::user_state::Base;
use crate::mm::address_space::{MemoryError, PAGES_PER_STEP};
use crate::mm::kernel_stack::{self, Context, KernelStack};
use crate::mm::user_memory::{ProcessMemory, UserMemory};
use crate::object::handles::HandleTable;
use crate::object::job::{Job, JobException};

pub use super::table::{MAX_PROCESSES, MAX_THREADS};
/// How long a thread may run before another ready thread gets the CPU.
pub const TIME_SLICE_NS: u64 = 10_000_000;

/// Ready threads in round-robin order, by slot in the thread table.
#[derive(Debug, Default)]
pub struct RunQueue {
    queue: VecDeque<usize>,
    /// Which slots are in `queue` (bit n % 64 of word n / 64: slot n), so a push needs no
    /// search.
    queued: [u64; QUEUED_WORDS],
}

/// Words of [`RunQueue::queued`]: one bit per thread slot.
const QUEUED_WORDS: usize = MAX_THREADS.div_ceil(64);

/// The word of [`RunQueue::queued`] that holds `slot`'s bit, and the bit.
#[inline]
fn queued_bit(slot: usize) -> (usize, u64) {
    ((slot / 64) % QUEUED_WORDS, 1 << (slot % 64))
}

impl RunQueue {
    /// Appends `slot` unless it is already queued. The queue's room for every thread is
    /// taken once, on the first push, so it never allocates again (nor from the timer
    /// interrupt, which wakes sleepers), and the kernel heap's use comes back exactly after
    /// a busy moment.
    #[inline]
    pub fn push(&mut self, slot: usize) {
        let (word, bit) = queued_bit(slot);
        if self.queued[word] & bit != 0 {
            return;
        }
        if self.queue.capacity() < MAX_THREADS {
            self.queue.reserve_exact(MAX_THREADS);
        }
        self.queued[word] |= bit;
        self.queue.push_back(slot);
    }

    /// Takes the first queued slot that `is_ready` still accepts, dropping stale entries.
    pub fn pop_ready(&mut self, mut is_ready: impl FnMut(usize) -> bool) -> Option<usize> {
        while let Some(slot) = self.queue.pop_front() {
            let (word, bit) = queued_bit(slot);
            self.queued[word] &= !bit;
            if is_ready(slot) {
                return Some(slot);
            }
        }
        None
    }

    /// Takes `slot` out of the queue (it runs next, handed the CPU directly).
    pub fn remove(&mut self, slot: usize) {
        let (word, bit) = queued_bit(slot);
        if self.queued[word] & bit != 0 {
            self.queued[word] &= !bit;
            self.queue.retain(|&queued| queued != slot);
        }
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Why `spawn` or `thread_create` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// The process or thread table (or the kernel-stack pool) is full, the process has
    /// [`abi::THREADS_PER_PROCESS_MAX`] threads, or every id has been used.
    TooManyProcesses,
    /// The image could not be loaded.
    Load(LoadError),
    /// The job it was to start in has been killed, or the process the thread was to start
    /// in is ending.
    JobKilled,
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
            Self::JobKilled => ESRCH,
        }
    }
}

/// Why `kill` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillError {
    /// The process or thread has ended.
    NoSuchProcess,
    /// Pid 1 cannot be killed.
    NotPermitted,
}

/// What the scheduler keeps for each CPU.
#[derive(Debug)]
struct CpuState {
    /// The slot of the thread this CPU runs.
    current: Option<usize>,
    /// A thread that left on this CPU, finished right after the switch away.
    departed: Option<Departed>,
}

/// A thread that has left (state [`State::Ending`]) but still ran on its kernel stack when
/// it did. Right after its CPU switched away, it leaves the table, its stack is freed, its end
/// is recorded, its process leaves too if this was its last thread and the process was torn
/// down, and waiters are woken, all in one hold of the big kernel lock: whoever learns that
/// it ended, or sees it gone from the table (on any CPU), finds every frame and object it had
/// back (see decision 50).
#[derive(Debug)]
struct Departed {
    slot: usize,
    tid: Tid,
    /// How the thread ended.
    ending: abi::ExitInfo,
}

impl Departed {
    /// Takes the thread out of the table, frees its stack, records its end (and its
    /// process's, once the process is torn down and this was the last of its threads in the
    /// table) and wakes every thread waiting for an end. Takes the scheduler lock itself, and
    /// drops the parts outside it.
    fn finish(self) {
        let (thread, process) = with_scheduler(|scheduler| {
            let thread = scheduler.threads.remove_at(self.slot).expect("an ending thread is in the table");
            assert_eq!((thread.tid, thread.state), (self.tid, State::Ending), "the slot of an ending thread was reused");
            let process_slot = thread.process_slot;
            let process = scheduler.processes.at_mut(process_slot).expect("a thread's process is in the table");
            process.departed_cpu_time_ns = process.departed_cpu_time_ns.saturating_add(thread.cpu_time_ns);
            // Every thread has left, and none is in the table: the last to leave has torn the
            // process down (it stays in the table until then).
            let gone = process.threads == 0 && !scheduler.threads.iter().any(|other| other.process_slot == process_slot);
            let process = gone.then(|| {
                scheduler.processes.remove_at(process_slot).expect("the process was just found in the table")
            });
            (thread, process)
        });
        let object = thread.object.clone();
        drop(thread);
        *object.exit.lock() = Some(self.ending);
        // No exception endpoint is set on an ended thread or process (the syscall refuses),
        // so none outlives it in a handle to it.
        let endpoint = object.exception_endpoint.lock().take();
        drop(endpoint);
        drop(object);
        if let Some(process) = process {
            let ending = process.exit_info(process.ending_with.unwrap_or(abi::status::KILLED));
            let object = process.object.clone();
            drop(process);
            *object.exit.lock() = Some(ending);
            let endpoint = object.exception_endpoint.lock().take();
            drop(endpoint);
        }
        with_scheduler(|scheduler| scheduler.wake_all(|reason| matches!(reason, BlockReason::WaitProcess { .. })));
    }
}

struct Scheduler {
    processes: SlotTable<Process, MAX_PROCESSES>,
    threads: SlotTable<Thread, MAX_THREADS>,
    run_queue: RunQueue,
    cpus: [CpuState; MAX_CPUS],
    /// CPUs about to halt, or halted, in their idle loops that nobody has woken yet (bit n:
    /// CPU n).
    idle_cpus: u32,
    /// Ids for processes and threads, from one counter.
    ids: PidAllocator,
    first_pid: Option<Pid>,
}

static SCHEDULER: Mutex<Scheduler> = Mutex::new(Scheduler {
    processes: SlotTable::new(),
    threads: SlotTable::new(),
    run_queue: RunQueue { queue: VecDeque::new(), queued: [0; QUEUED_WORDS] },
    cpus: [const { CpuState { current: None, departed: None } }; MAX_CPUS],
    idle_cpus: 0,
    ids: PidAllocator::new(),
    first_pid: None,
});

/// The earliest time a sleeper wants to wake at (`u64::MAX`: none). Written under the
/// scheduler lock, read without it by the timer interrupt.
static NEXT_WAKE_NS: AtomicU64 = AtomicU64::new(u64::MAX);

/// When the time slice of the thread each CPU runs began (clock nanoseconds). Written by
/// that CPU, read by its timer interrupt without a lock.
static SLICE_START_NS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Set when this CPU's timer woke a sleeper that no idle CPU took: the slice of the thread
/// this CPU runs ends now, so that a sleep is not stretched by another thread's whole slice
/// (a flood of console output once made 10 ms sleeps take 36 ms). Cleared when the CPU next
/// takes a thread from the run queue.
static SLEEPER_WAITING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Set when a CPU's `departed` holds a thread for [`after_switch`] to finish, so a switch
/// with none does not take the lock again.
static DEPARTED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Runs `f` on the scheduler, under its lock. Kernel code runs with interrupts masked (see
/// the module comment), so no interrupt handler on this CPU can want the lock meanwhile.
fn with_scheduler<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    debug_assert!(!cpu::interrupts_enabled(), "the scheduler lock taken with interrupts enabled");
    f(&mut SCHEDULER.lock())
}

impl Scheduler {
    /// The slot of the thread this CPU runs.
    fn current_slot(&self) -> Option<usize> {
        self.cpus[cpu::index()].current
    }

    fn current_thread(&mut self) -> &mut Thread {
        let slot = self.current_slot().expect("no current thread");
        self.threads.at_mut(slot).expect("current thread missing from the table")
    }

    fn current_process(&mut self) -> &mut Process {
        let slot = self.current_thread().process_slot;
        self.processes.at_mut(slot).expect("current process missing from the table")
    }

    /// Queues the ready thread in `slot`, and wakes a halted CPU (another one: this CPU
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

    /// Marks the thread in `slot` killed and makes it run to its end: woken if blocked, its
    /// CPU told if it runs.
    fn kill_thread_at(&mut self, slot: usize) {
        let Some(thread) = self.threads.at_mut(slot) else { return };
        thread.killed = true;
        self.make_ready_at(slot);
        if let Some(running_on) = (0..MAX_CPUS).find(|&cpu| self.cpus[cpu].current == Some(slot)) {
            cpu::request_attention(running_on);
            if running_on != cpu::index() {
                smp::send_reschedule(running_on);
            }
        }
    }

    /// Marks the process in `process_slot` ending with `status` (unless it already is) and
    /// kills every thread of it.
    fn kill_process_at(&mut self, process_slot: usize, status: i32) {
        let Some(process) = self.processes.at_mut(process_slot) else { return };
        process.ending_with.get_or_insert(status);
        for slot in 0..MAX_THREADS {
            if self.threads.at(slot).is_some_and(|thread| thread.process_slot == process_slot) {
                self.kill_thread_at(slot);
            }
        }
    }

    /// Makes the thread in `slot` ready if it is blocked.
    fn make_ready_at(&mut self, slot: usize) {
        if let Some(thread) = self.threads.at_mut(slot)
            && matches!(thread.state, State::Blocked(_))
        {
            thread.state = State::Ready;
            self.push_ready(slot);
        }
    }

    /// Makes every thread blocked for a reason `matches` accepts ready.
    fn wake_all(&mut self, matches: impl Fn(BlockReason) -> bool) {
        for slot in 0..MAX_THREADS {
            if let Some(thread) = self.threads.at_mut(slot)
                && let State::Blocked(reason) = thread.state
                && matches(reason)
            {
                thread.state = State::Ready;
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
        for slot in 0..MAX_THREADS {
            let Some(thread) = self.threads.at_mut(slot) else { continue };
            if let State::Blocked(reason) = thread.state {
                let until_ns = reason.until_ns();
                if until_ns <= now_ns {
                    thread.state = State::Ready;
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

    /// [`choose_next`](Self::choose_next), but the thread in slot `partner` runs next if it
    /// is blocked (it was just handed a message, and becomes ready without a trip through the
    /// run queue) or ready (taken out of the queue). The thread this CPU ran until now is
    /// charged the time since it started running.
    fn choose_next_preferring(&mut self, partner: Option<usize>) -> Option<Context> {
        let this_cpu = cpu::index();
        let now = crate::time::uptime_ns();
        let outgoing = self.cpus[this_cpu].current;
        let outgoing_process = outgoing.and_then(|slot| self.threads.at_mut(slot)).map(|thread| {
            thread.charge_cpu_time(now);
            thread.process_slot
        });
        let partner = partner.filter(|&slot| {
            self.threads.at(slot).is_some_and(|thread| matches!(thread.state, State::Blocked(_) | State::Ready))
        });
        let next = match partner {
            Some(slot) => {
                if self.threads.at(slot).is_some_and(|thread| thread.state == State::Ready) {
                    self.run_queue.remove(slot);
                }
                // The partner runs on the rest of the caller's slice: a pair handing the CPU
                // back and forth is charged as one, so its slice runs out and the queue is
                // served (a fresh slice at each hand-off starved every other thread).
                Some(slot)
            }
            None => {
                // The sleepers ahead in the queue get their turn from here; a message handed
                // to a partner (above) leaves them waiting for the next return to ring 3.
                SLEEPER_WAITING[this_cpu].store(false, Ordering::Relaxed);
                let threads = &self.threads;
                let popped =
                    self.run_queue.pop_ready(|slot| threads.at(slot).is_some_and(|thread| thread.state == State::Ready));
                if popped.is_some() {
                    SLICE_START_NS[this_cpu].store(now, Ordering::Relaxed);
                }
                popped
            }
        };
        let to = match next {
            Some(slot) => {
                let thread = self.threads.at_mut(slot).expect("queued slot holds a thread");
                thread.state = State::Running;
                thread.cpu = this_cpu as u32;
                thread.running_since_ns = now;
                if thread.killed {
                    cpu::request_attention(this_cpu);
                }
                if outgoing == Some(slot) {
                    return None;
                }
                let stack = thread.kernel_stack.as_ref().expect("a thread in the table has a kernel stack");
                let process_slot = thread.process_slot;
                stack.load_for_entries();
                let context = stack.context();
                let process = self.processes.at_mut(process_slot).expect("a thread's process is in the table");
                process.cpu = this_cpu as u32;
                // A sibling thread shares the address space and ports: no table switch.
                if outgoing_process != Some(process_slot) {
                    match &process.memory {
                        Some(memory) => memory.activate(),
                        // A process being torn down frees its memory with the kernel's own table
                        // active.
                        None => crate::mm::paging::activate_kernel_root(),
                    }
                    gdt::set_io_permissions(&process.io_ports);
                    cpu::set_current_pid(process.pid);
                    cpu::set_syscalls_as_messages(process.syscalls_as_messages);
                }
                self.cpus[this_cpu].current = Some(slot);
                context
            }
            None if outgoing.is_none() => return None,
            None => {
                self.cpus[this_cpu].current = None;
                kernel_stack::load_none_for_entries();
                gdt::set_io_permissions(&Default::default());
                cpu::set_current_pid(0);
                cpu::set_syscalls_as_messages(false);
                // An idle CPU holds no process's address space, so only the CPU that runs a
                // process can cache its translations (see `arch::tlb`).
                crate::mm::paging::activate_kernel_root();
                Context::idle()
            }
        };
        // Another thread's stack, or the idle context when a thread ran: never the context
        // running now (`switch_to` checks that too).
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

/// Whether the running process makes its system calls as messages (decision 72): set in the
/// per-CPU block at the switch that enters a process (its mode never changes), one load.
#[inline]
pub fn syscalls_as_messages() -> bool {
    cpu::syscalls_as_messages()
}

/// The parent of the running process.
pub fn parent_pid() -> Pid {
    with_scheduler(|scheduler| scheduler.current_process().parent)
}

/// The id of the thread this CPU runs.
pub fn current_tid() -> Tid {
    with_scheduler(|scheduler| scheduler.current_thread().tid)
}

/// Starts the program in `image`, called `name`, with `args` (argv\[0\] first) as a child
/// of `parent` in `job`, with `handles` as its handle table; returns its object.
pub fn spawn(
    name: &str,
    image: &(impl Image + ?Sized),
    args: &[&str],
    parent: Pid,
    job: Arc<Job>,
    handles: HandleTable,
) -> Result<Arc<ProcessObject>, SpawnError> {
    let full = with_scheduler(|scheduler| {
        scheduler.processes.len() >= MAX_PROCESSES || scheduler.threads.len() >= MAX_THREADS
    });
    if full {
        return Err(SpawnError::TooManyProcesses);
    }
    let loaded = loader::load(image, args, &mut pause).map_err(SpawnError::Load)?;
    let frame = TrapFrame::new_user(loaded.entry, loaded.stack_pointer);
    let stack = KernelStack::new_for_user(frame).ok_or(SpawnError::TooManyProcesses)?;
    let memory = Arc::new(ProcessMemory::new(loaded.memory));
    // Taken before the scheduler's lock (the last in the lock order); no preemption point
    // lies between here and the entry into the table.
    let exception = job.exception_for_new_process();
    enter_process(name, memory, stack, parent, job, handles, exception)
}

/// Why `process_copy` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyError {
    /// The process or thread table (or the kernel-stack pool) is full.
    TooManyProcesses,
    /// The source has ended or is ending, or the job was killed.
    Ended,
    /// No memory (frames, or the copy's limit).
    Memory(MemoryError),
}

impl CopyError {
    /// The errno `process_copy` returns.
    pub fn errno(self) -> i64 {
        match self {
            Self::TooManyProcesses => abi::errno::EAGAIN,
            Self::Ended => abi::errno::ESRCH,
            Self::Memory(error) => error.errno(),
        }
    }
}

/// Starts a copy of the process `source` names, as a child of the running process in `job`:
/// its memory a copy-on-write copy of the source's (see `UserMemory::copy_on_write`), an empty
/// handle table, the source's exception endpoint and syscall mode, and one thread that enters
/// ring 3 with `frame` and the FS and GS bases `fs_base` and `gs_base` (sanitised by the
/// caller). Returns its object.
pub fn copy_process(
    source: &ProcessObject,
    frame: TrapFrame,
    fs_base: u64,
    gs_base: u64,
    job: Arc<Job>,
) -> Result<Arc<ProcessObject>, CopyError> {
    let source_now = || {
        with_scheduler(|scheduler| {
            let process = scheduler.processes.at(source.slot).filter(|process| process.pid == source.pid)?;
            let memory = process.memory.clone().filter(|_| process.ending_with.is_none())?;
            Some((memory, process.name.clone(), process.syscalls_as_messages))
        })
    };
    let full = with_scheduler(|scheduler| {
        scheduler.processes.len() >= MAX_PROCESSES || scheduler.threads.len() >= MAX_THREADS
    });
    if full {
        return Err(CopyError::TooManyProcesses);
    }
    let (memory, name, syscalls) = source_now().ok_or(CopyError::Ended)?;
    let stack = new_user_stack(frame, fs_base, gs_base).ok_or(CopyError::TooManyProcesses)?;
    let copied = {
        let mut locked = lock_memory(&memory);
        // Its last thread may have begun tearing it down while this one waited for the lock.
        if !source_now().is_some_and(|(now, _, _)| Arc::ptr_eq(&now, &memory)) {
            return Err(CopyError::Ended);
        }
        locked.copy_on_write(&mut pause).map_err(CopyError::Memory)?
    };
    drop(memory);
    let copy = Arc::new(ProcessMemory::new(copied));
    let handles = HandleTable::new().map_err(|_| CopyError::Memory(MemoryError::OutOfMemory))?;
    let exception = source.exception_endpoint.lock().clone().map(|endpoint| JobException { endpoint, syscalls });
    enter_process(&name, copy, stack, current_pid(), job, handles, exception).map_err(|error| match error {
        SpawnError::JobKilled => CopyError::Ended,
        _ => CopyError::TooManyProcesses,
    })
}

/// Puts a new process with `memory` and one thread on `stack` into the tables, ready to run,
/// with `exception`'s endpoint and syscall mode from its first instruction; returns its
/// object. On failure its handles, stack, memory and endpoint are dropped outside the lock.
fn enter_process(
    name: &str,
    memory: Arc<ProcessMemory>,
    stack: KernelStack,
    parent: Pid,
    job: Arc<Job>,
    handles: HandleTable,
    exception: Option<JobException>,
) -> Result<Arc<ProcessObject>, SpawnError> {
    let syscalls_as_messages = exception.as_ref().is_some_and(|exception| exception.syscalls);
    let mut exception_endpoint = exception.map(|exception| exception.endpoint);
    let mut handles = Some(handles);
    let mut stack = Some(stack);
    let mut memory = Some(memory);
    let spawned = with_scheduler(|scheduler| {
        // Checked in the same hold of the lock as the entry into the table: a kill of the
        // job marks it, then ends what the table holds of it, in one hold too.
        if job.is_killed() {
            return Err(SpawnError::JobKilled);
        }
        // The tables may have filled up while the program was loading.
        let slot = scheduler.processes.free_slot().ok_or(SpawnError::TooManyProcesses)?;
        let thread_slot = scheduler.threads.free_slot().ok_or(SpawnError::TooManyProcesses)?;
        let pid = scheduler.ids.allocate().ok_or(SpawnError::TooManyProcesses)?;
        scheduler.first_pid.get_or_insert(pid);
        let object = Arc::new(ProcessObject::new(pid, slot, handles.take().unwrap_or_default()));
        *object.exception_endpoint.lock() = exception_endpoint.take();
        let process = Process {
            pid,
            parent,
            name: String::from(name),
            memory: memory.take(),
            object: object.clone(),
            job,
            fault: None,
            threads: 1,
            ending_with: None,
            departed_cpu_time_ns: 0,
            cpu: 0,
            syscalls_as_messages,
            io_ports: Default::default(),
        };
        scheduler.processes.insert_at(slot, process);
        let thread_object = Arc::new(ThreadObject::new(pid, thread_slot, object.clone()));
        let stack = stack.take().expect("the stack is used once");
        scheduler.threads.insert_at(thread_slot, Thread::new(thread_object, slot, stack));
        scheduler.push_ready(thread_slot);
        Ok(object)
    });
    // Handles, the stack, the memory and the endpoint of a child that could not start are
    // dropped outside the lock (closing a handle may wake another thread; memory is freed in
    // steps).
    drop(handles);
    drop(stack);
    drop(exception_endpoint);
    if let Some(memory) = memory {
        release_memory(memory);
    }
    spawned
}

/// A kernel stack for a new thread that enters ring 3 with `frame` and the FS and GS bases
/// `fs_base` and `gs_base` (lower-half addresses: callers sanitise them); `None` when every
/// stack is in use.
fn new_user_stack(frame: TrapFrame, fs_base: u64, gs_base: u64) -> Option<KernelStack> {
    let stack = KernelStack::new_for_user(frame)?;
    // Nothing runs on the new stack yet, so its bases are set before its first switch in.
    let bases = stack.set_user_base(Base::Fs, fs_base).and(stack.set_user_base(Base::Gs, gs_base));
    assert!(bases.is_ok(), "a thread started with a base that was not sanitised");
    Some(stack)
}

/// Starts a thread in `process` (the caller's or another) that enters ring 3 with `frame`
/// and the FS and GS bases `fs_base` and `gs_base` (lower-half addresses: callers sanitise
/// them, see `exception::start_thread`); returns its object. `JobKilled` once the process is
/// ending (or has ended).
pub fn start_thread(process: &ProcessObject, frame: TrapFrame, fs_base: u64, gs_base: u64) -> Result<Arc<ThreadObject>, SpawnError> {
    let stack = new_user_stack(frame, fs_base, gs_base).ok_or(SpawnError::TooManyProcesses)?;
    let mut stack = Some(stack);
    let created = with_scheduler(|scheduler| {
        let process_slot = process.slot;
        let entry = scheduler.processes.at_mut(process_slot).filter(|entry| entry.pid == process.pid).ok_or(SpawnError::JobKilled)?;
        if entry.ending_with.is_some() {
            return Err(SpawnError::JobKilled);
        }
        if entry.threads >= abi::THREADS_PER_PROCESS_MAX {
            return Err(SpawnError::TooManyProcesses);
        }
        let object = entry.object.clone();
        let slot = scheduler.threads.free_slot().ok_or(SpawnError::TooManyProcesses)?;
        let tid = scheduler.ids.allocate().ok_or(SpawnError::TooManyProcesses)?;
        let thread_object = Arc::new(ThreadObject::new(tid, slot, object));
        let stack = stack.take().expect("the stack is used once");
        scheduler.threads.insert_at(slot, Thread::new(thread_object.clone(), process_slot, stack));
        if let Some(entry) = scheduler.processes.at_mut(process_slot) {
            entry.threads += 1;
        }
        scheduler.push_ready(slot);
        Ok(thread_object)
    });
    drop(stack);
    created
}

/// The first thread of `process` (its id is the process's), while it is in the table.
pub fn first_thread_of(process: &ProcessObject) -> Option<Arc<ThreadObject>> {
    with_scheduler(|scheduler| {
        scheduler.threads.iter().find(|thread| thread.tid == process.pid && thread.process_slot == process.slot).map(|thread| thread.object.clone())
    })
}

/// Runs `f` on the kernel stack of the thread `thread` names, under the scheduler's lock
/// (with the big kernel lock held, as every syscall does: see
/// `KernelStack::read_saved_area`); `None` once the thread has left the table.
pub fn with_thread_stack<R>(thread: &ThreadObject, f: impl FnOnce(&KernelStack) -> R) -> Option<R> {
    with_scheduler(|scheduler| {
        let entry = scheduler.threads.at(thread.slot).filter(|entry| entry.tid == thread.tid && entry.state != State::Ending)?;
        entry.kernel_stack.as_ref().map(f)
    })
}

/// Runs `f` on the running process's memory. The scheduler lock is not held meanwhile, so
/// `f` may pass preemption points (see [`pause`]). The caller must hold no other lock: while
/// a sibling thread holds the memory (paused in a long `mmap`, say), this gives the CPU and
/// the big kernel lock away until the sibling is done with it (the sibling may wait in the
/// run queue, or for the big kernel lock on another CPU).
pub fn with_current_memory<R>(f: impl FnOnce(&mut UserMemory) -> R) -> R {
    let memory = with_scheduler(|scheduler| scheduler.current_process().memory.clone())
        .expect("a running thread's process has memory");
    f(&mut lock_memory(&memory))
}

/// Locks a process's memory, giving the CPU and the big kernel lock away while another
/// holds it (a thread paused in a long `mmap`, or a `process_copy` of it).
fn lock_memory(memory: &ProcessMemory) -> spin::MutexGuard<'_, UserMemory> {
    loop {
        if let Some(locked) = memory.try_lock() {
            break locked;
        }
        yield_now();
        kernel_lock::release_for(Pause::TakePendingInterrupts);
    }
}

/// What long memory operations call between steps: a preemption point whose "killed"
/// answer is left for the way back to ring 3 (the operation finishes first).
pub fn pause() {
    let _ = preemption_point();
}

/// How long a CPU may keep the big kernel lock across preemption points while other CPUs
/// wait for it. Handing it over at every point (every 64 pages of a long `mmap`) made each
/// step of one CPU's work wait for a step of every other CPU's; with four CPUs in the kernel
/// at once (63 processes mapping memory) that ran fourteen times slower than on one CPU.
const LOCK_TURN_NS: u64 = 100_000;

/// Lets pending interrupts in, and other CPUs into the kernel: releases the big kernel lock,
/// enables interrupts for an instruction, and takes the lock again. While others wait and
/// this CPU's turn ([`LOCK_TURN_NS`]) lasts, it keeps the lock instead, and interrupts stay
/// masked (their handlers need the lock) until the turn ends.
fn let_others_in() {
    if kernel_lock::contended_for().is_some_and(|cycles| crate::time::cycles_to_ns(cycles) < LOCK_TURN_NS) {
        return;
    }
    kernel_lock::release_for(Pause::TakePendingInterrupts);
}

/// A CPU's idle loop, on its idle stack (the boot stack for the boot processor): runs ready
/// kernel tasks, hands the CPU to ready processes, and halts when there is nothing to do.
/// Every CPU ends here once it is set up, holding the big kernel lock, which it keeps except
/// while halted (a CPU must not halt holding it).
pub fn run_idle_loop() -> ! {
    let this_cpu = cpu::index();
    loop {
        executor::run_ready();
        reschedule();
        // Interrupts are masked here, so nothing can become ready between this check and
        // the `sti; hlt` pair, which enables interrupts and halts as one step; a process
        // made ready by another CPU in between finds this CPU marked idle and sends it a
        // reschedule interrupt, which that pair takes.
        let idle = !executor::has_ready()
            && with_scheduler(|scheduler| {
                let idle = scheduler.run_queue.is_empty();
                if idle {
                    scheduler.idle_cpus |= 1 << this_cpu;
                }
                idle
            });
        if idle {
            kernel_lock::release_for(Pause::IdleHalt);
            with_scheduler(|scheduler| scheduler.idle_cpus &= !(1 << this_cpu));
        } else {
            // A task that stays ready (one that wakes itself each round)
            // must not keep interrupts masked from one round to the next.
            let_others_in();
        }
    }
}

/// The part of a timer interrupt on this CPU that needs no lock: marks the running process's
/// time slice as used up when the clock says so (whether the tick found the process in ring 3
/// or at a preemption point in a long syscall). Returns whether the kernel has more to do
/// under its lock: a sleeper is due ([`on_timer_tick`]), or this CPU was asked for attention
/// (the running process must look at its state, or a kernel task it woke is ready). Most ticks
/// have nothing to do, and so never queue for the big kernel lock.
pub fn timer_tick_without_lock() -> bool {
    let now = crate::time::uptime_ns();
    let this_cpu = cpu::index();
    if cpu::current_pid() != 0 && slice_used(this_cpu, now) {
        cpu::request_attention(this_cpu);
    }
    now >= NEXT_WAKE_NS.load(Ordering::Relaxed) || cpu::attention_requested()
}

/// The part of a timer interrupt that runs under the big kernel lock: wakes due sleepers. A
/// sleeper that no idle CPU was woken for ends the slice of the process this tick interrupted
/// (see [`SLEEPER_WAITING`]).
pub fn on_timer_tick() {
    let now = crate::time::uptime_ns();
    let sleeper_waits = with_scheduler(|scheduler| scheduler.wake_sleepers(now));
    if sleeper_waits && cpu::current_pid() != 0 {
        let this_cpu = cpu::index();
        SLEEPER_WAITING[this_cpu].store(true, Ordering::Relaxed);
        cpu::request_attention(this_cpu);
    }
}

fn slice_used(cpu: usize, now_ns: u64) -> bool {
    SLEEPER_WAITING[cpu].load(Ordering::Relaxed)
        || now_ns.saturating_sub(SLICE_START_NS[cpu].load(Ordering::Relaxed)) >= TIME_SLICE_NS
}

/// Runs on every way back to ring 3: decodes pending input, ends a killed thread, and
/// gives up the CPU when the time slice is used up.
pub fn before_user_return() {
    if let Err(Killed) = reschedule_if_needed() {
        leave_current_thread(abi::ExitInfo::exited(abi::status::KILLED));
    }
}

/// The running thread was killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Killed;

/// A point inside a long syscall where the process may be preempted: interrupts that are
/// pending are taken (so the clock and input keep up), other CPUs get the big kernel lock for
/// a moment, input is decoded, and the CPU goes to another process if the time slice is used
/// up. Holds no lock but the big one. Returns `Err(Killed)` if the process was killed; the
/// syscall should then return at once.
pub fn preemption_point() -> Result<(), Killed> {
    let_others_in();
    reschedule_if_needed()
}

fn reschedule_if_needed() -> Result<(), Killed> {
    if !cpu::take_attention_request() {
        return Ok(());
    }
    // A kernel task's waker asks for attention (see `executor`).
    executor::run_ready();
    attend()
}

/// The rare part of [`reschedule_if_needed`]: the thread was killed or its slice is used up.
#[cold]
#[inline(never)]
fn attend() -> Result<(), Killed> {
    let now = crate::time::uptime_ns();
    // A killed thread too gives the CPU up when its slice is over: the last thread of a
    // process frees its memory at preemption points, however it came to end.
    if slice_used(cpu::index(), now) {
        yield_now();
    }
    if with_scheduler(|scheduler| scheduler.current_thread().killed) {
        // Keep the request for the return to ring 3, which ends the thread.
        cpu::request_attention(cpu::index());
        return Err(Killed);
    }
    Ok(())
}

/// Puts the running thread at the back of the run queue and runs the next one.
pub fn yield_now() {
    switch_to_chosen(with_scheduler(|scheduler| {
        let slot = scheduler.current_slot().expect("yield with no current thread");
        scheduler.current_thread().state = State::Ready;
        scheduler.push_ready(slot);
        scheduler.choose_next()
    }));
}

/// Blocks the running process for `reason` unless `done` (checked under the lock, so no
/// wake-up is lost between the check and blocking) says the wait is over. Returns
/// `Err(Killed)` if the process was killed.
fn block_unless(reason: BlockReason, done: impl FnMut() -> bool) -> Result<(), Killed> {
    block_unless_handing_to(reason, None, done)
}

/// [`block_unless`], handing the CPU to `partner` (a process just handed a message) if this
/// process does block; if it does not, the partner is simply made ready. Blocking and
/// choosing what runs next happen in one critical section.
fn block_unless_handing_to(
    reason: BlockReason,
    mut partner: Option<Handoff>,
    mut done: impl FnMut() -> bool,
) -> Result<(), Killed> {
    loop {
        let outcome = with_scheduler(|scheduler| {
            let partner = partner.take().and_then(|handoff| handoff.claim(scheduler));
            let finished = if done() {
                Some(Ok(None))
            } else if scheduler.current_thread().killed {
                Some(Err(Killed))
            } else {
                None
            };
            if let Some(result) = finished {
                if let Some(slot) = partner {
                    scheduler.make_ready_at(slot);
                }
                return result;
            }
            scheduler.current_thread().state = State::Blocked(reason);
            NEXT_WAKE_NS.fetch_min(reason.until_ns(), Ordering::Relaxed);
            Ok(Some(scheduler.choose_next_preferring(partner)))
        });
        match outcome? {
            None => return Ok(()),
            Some(Some(to)) => {
                kernel_stack::switch_to(to);
                after_switch();
                // Woken: most often the wait is over, which needs no lock to see.
                if done() {
                    return Ok(());
                }
            }
            Some(None) => {}
        }
    }
}

/// Lets the running process use the ports of `range` from now on; `ENOSPC` when it has
/// [`abi::IO_RANGES_MAX`] ranges already. Its threads on other CPUs get them at their next
/// switch.
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

/// How a blocking IPC operation's wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// A partner delivered (the flag is set).
    Ready,
    /// The process was killed.
    Killed,
    /// The deadline passed.
    TimedOut,
}

/// Blocks the running process until `ready` is set, it is killed, or the clock reaches
/// `deadline` (nanoseconds since boot; `None`: never). If `partner` (a process just handed a
/// message) is ready, it runs next, without a trip through the run queue.
pub fn block_for_ipc(ready: &AtomicBool, deadline: Option<u64>, partner: Option<Handoff>) -> BlockOutcome {
    let until_ns = deadline.unwrap_or(u64::MAX);
    let mut outcome = BlockOutcome::Ready;
    let result = block_unless_handing_to(BlockReason::Ipc { until_ns }, partner, || {
        if ready.load(Ordering::Acquire) {
            return true;
        }
        if deadline.is_some() && crate::time::uptime_ns() >= until_ns {
            outcome = BlockOutcome::TimedOut;
            return true;
        }
        false
    });
    match result {
        Ok(()) => outcome,
        Err(Killed) => BlockOutcome::Killed,
    }
}

/// Makes a blocked thread ready (a partner delivered to it).
pub fn wake(thread: &ThreadObject) {
    drop(Handoff::new(thread));
}

/// A blocked thread that was just handed what it waited for. Given to [`block_for_ipc`], it
/// runs next, without a trip through the run queue; dropped, it is made ready like any other
/// woken thread.
#[must_use = "dropping a handoff just wakes the thread"]
#[derive(Debug)]
pub struct Handoff {
    slot: usize,
    tid: Tid,
    claimed: bool,
}

impl Handoff {
    /// A handoff to `thread`.
    pub fn new(thread: &ThreadObject) -> Self {
        Self { slot: thread.slot, tid: thread.tid, claimed: false }
    }

    /// The thread's slot, if it is still in the table; the handoff is used up either way.
    fn claim(mut self, scheduler: &Scheduler) -> Option<usize> {
        self.claimed = true;
        scheduler.threads.at(self.slot).is_some_and(|thread| thread.tid == self.tid).then_some(self.slot)
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if !self.claimed {
            with_scheduler(|scheduler| {
                if scheduler.threads.at(self.slot).is_some_and(|thread| thread.tid == self.tid) {
                    scheduler.make_ready_at(self.slot);
                }
            });
        }
    }
}

/// The memory of process `pid`, unless it has ended.
pub fn memory_of(pid: Pid) -> Option<Arc<ProcessMemory>> {
    with_scheduler(|scheduler| scheduler.processes.get(pid).and_then(|process| process.memory.clone()))
}

/// The running process's object (its handles).
pub fn current_object() -> Arc<ProcessObject> {
    with_scheduler(|scheduler| scheduler.current_process().object.clone())
}

/// Whether the running thread has been killed (it ends on its way back to ring 3).
pub fn current_thread_killed() -> bool {
    with_scheduler(|scheduler| scheduler.current_thread().killed)
}

/// The running thread's object (its IPC state, and its process's).
pub fn current_thread() -> Arc<ThreadObject> {
    with_scheduler(|scheduler| scheduler.current_thread().object.clone())
}

/// Sleeps for at least `ns` nanoseconds (woken by the first timer interrupt after that).
pub fn sleep_ns(ns: u64) -> Result<(), Killed> {
    let until_ns = crate::time::uptime_ns().saturating_add(ns);
    block_unless(BlockReason::Sleep { until_ns }, || crate::time::uptime_ns() >= until_ns)
}

/// Blocks the running thread until some thread or process ends (every waiter is woken by
/// every end and looks again), the clock reaches `deadline` (`None`: never), or it is killed.
pub fn wait_for_an_exit(deadline: Option<u64>) -> Result<(), Killed> {
    let until_ns = deadline.unwrap_or(u64::MAX);
    let mut blocked_once = false;
    block_unless(BlockReason::WaitProcess { until_ns }, || {
        let done = blocked_once || crate::time::uptime_ns() >= until_ns;
        blocked_once = true;
        done
    })
}

/// Kills the process `process` names: every thread of it ends before it next returns to
/// ring 3 (one running on another CPU is interrupted, so it ends at once), and the process
/// ends with `status::KILLED` unless an `exit` came first.
pub fn kill(process: &ProcessObject) -> Result<(), KillError> {
    with_scheduler(|scheduler| {
        let alive = scheduler.processes.at(process.slot).is_some_and(|entry| entry.pid == process.pid);
        if !alive {
            return Err(KillError::NoSuchProcess);
        }
        if scheduler.first_pid == Some(process.pid) {
            return Err(KillError::NotPermitted);
        }
        scheduler.kill_process_at(process.slot, abi::status::KILLED);
        Ok(())
    })
}

/// Kills the thread `thread` names (only it: its process goes on while it has others).
pub fn kill_thread(thread: &ThreadObject) -> Result<(), KillError> {
    with_scheduler(|scheduler| {
        let alive = scheduler.threads.at(thread.slot).is_some_and(|entry| entry.tid == thread.tid && entry.state != State::Ending);
        if !alive {
            return Err(KillError::NoSuchProcess);
        }
        scheduler.kill_thread_at(thread.slot);
        Ok(())
    })
}

/// Kills `job`: marks it killed (so nothing starts in it or below it again) and ends every
/// process in it or below it but the first, in one hold of the scheduler's lock.
/// `NoSuchProcess` if it was killed already.
pub fn kill_job(job: &Job) -> Result<(), KillError> {
    let killed = with_scheduler(|scheduler| {
        if !job.mark_killed() {
            return Err(KillError::NoSuchProcess);
        }
        let first = scheduler.first_pid;
        for slot in 0..MAX_PROCESSES {
            let member = scheduler.processes.at(slot).is_some_and(|process| Some(process.pid) != first && process.job.is_within(job));
            if member {
                scheduler.kill_process_at(slot, abi::status::KILLED);
            }
        }
        Ok(())
    });
    // Outside the lock: dropping an endpoint's last reference may report its close.
    drop(job.take_exception());
    killed
}

/// The job the running process is in.
pub fn current_job() -> Arc<Job> {
    with_scheduler(|scheduler| scheduler.current_process().job.clone())
}

/// Frees a process's memory in steps, with preemption points between them. Its last thread
/// is still current and runnable meanwhile (with the kernel's own table active).
fn release_memory(memory: Arc<ProcessMemory>) {
    {
        // A `process_copy` of this process may hold the lock, paused between its steps.
        let mut locked = lock_memory(&memory);
        while !locked.release_step(PAGES_PER_STEP) {
            pause();
        }
    }
    drop(memory);
}

/// Ends the running process with `status` (`exit`): it is marked ending with that status,
/// every other thread of it is killed, and this one leaves (see [`leave_current_thread`]).
pub fn exit_current(status: i32) -> ! {
    with_scheduler(|scheduler| {
        let process_slot = scheduler.current_thread().process_slot;
        scheduler.kill_process_at(process_slot, status);
    });
    leave_current_thread(abi::ExitInfo::exited(status));
}

/// Ends the running thread, which ends with `ending` (`thread_exit`, or killed). The last
/// thread of a process to leave tears it down: frees its memory, closes its handles and ends
/// the process with the status it was marked ending with (by `exit` or a kill), else with
/// this thread's. Then it switches away for the last time; right after (see [`Departed`]) it
/// leaves the thread table, its end is recorded in its object, its process leaves its table
/// if it was the last thread there, and every thread waiting for an end is woken.
pub fn leave_current_thread(ending: abi::ExitInfo) -> ! {
    let tid = current_tid();
    let last = with_scheduler(|scheduler| {
        let process = scheduler.current_process();
        process.threads -= 1;
        (process.threads == 0).then(|| (process.memory.take(), process.object.clone(), process.pid))
    });
    let mut shut_down = None;
    if let Some((memory, object, pid)) = last {
        if let Some(memory) = memory {
            release_memory(memory);
        }
        // Dropped outside every lock: closing a handle may wake other threads.
        let handles = object.handles.lock().take_all();
        drop(handles);
        crate::object::device::forget_process(&object);
        let (status, first) = with_scheduler(|scheduler| {
            (*scheduler.current_process().ending_with.get_or_insert(ending.status), scheduler.first_pid == Some(pid))
        });
        if first {
            shut_down = Some((pid, status));
        }
    }
    with_scheduler(|scheduler| {
        let this_cpu = cpu::index();
        let slot = scheduler.current_slot().expect("a leaving thread is current");
        scheduler.current_thread().state = State::Ending;
        let earlier = scheduler.cpus[this_cpu].departed.replace(Departed { slot, tid, ending });
        assert!(earlier.is_none(), "a departed thread was not finished after its switch");
        DEPARTED[this_cpu].store(true, Ordering::Release);
    });
    if let Some((pid, status)) = shut_down {
        log::info!("first process (pid {pid}) exited with status {status}; shutting down");
        crate::arch::qemu::exit(status);
    }
    reschedule();
    unreachable!("a thread that left was resumed");
}

/// Ends the running process after a CPU fault in ring 3 in one of its threads, saying why on
/// the console.
pub fn kill_current_for_fault(fault: &CpuFault) -> ! {
    let pid = current_pid();
    // In a block of its own: `exit_current` never returns, so the copy of the name must be
    // dropped before it (each fault used to leak it).
    {
        let (name, tid) = with_scheduler(|scheduler| {
            let tid = scheduler.current_thread().tid;
            let process = scheduler.current_process();
            process.fault = Some(*fault);
            (process.name.clone(), tid)
        });
        if tid == pid {
            crate::println!("pid {pid} ({name}) killed: {fault}");
        } else {
            crate::println!("pid {pid} ({name}) killed by thread {tid}: {fault}");
        }
    }
    crate::backtrace::print_user_backtrace(fault, &mut pause);
    with_scheduler(|scheduler| {
        let process_slot = scheduler.current_thread().process_slot;
        scheduler.kill_process_at(process_slot, abi::status::FAULT);
    });
    leave_current_thread(exit_info(abi::status::FAULT, Some(*fault)));
}

/// A row for every process, in pid order, with its threads counted in: how many have not
/// ended, their CPU time, and its state (running if one runs, else ready if one is, else
/// blocked; ending once all have left).
pub fn process_list() -> Vec<ProcessInfo> {
    use abi::ProcessState;
    let now = crate::time::uptime_ns();
    with_scheduler(|scheduler| {
        let mut rows: Vec<(usize, ProcessInfo)> = (0..MAX_PROCESSES)
            .filter_map(|slot| scheduler.processes.at(slot).map(|process| (slot, process.info())))
            .collect();
        // The busiest thread's state, as (rank, state): running over ready over blocked.
        let mut busiest = [(0u8, ProcessState::Ending); MAX_PROCESSES];
        for thread in scheduler.threads.iter() {
            let Some((_, row)) = rows.iter_mut().find(|(slot, _)| *slot == thread.process_slot) else { continue };
            row.cpu_time_ns = row.cpu_time_ns.saturating_add(thread.cpu_time_at(now));
            let listed = match thread.state {
                State::Running => (3, ProcessState::Running),
                State::Ready => (2, ProcessState::Ready),
                State::Blocked(_) => (1, ProcessState::Blocked),
                State::Ending => continue,
            };
            row.threads += 1;
            let best = &mut busiest[thread.process_slot];
            if listed.0 > best.0 {
                *best = listed;
            }
        }
        let mut rows: Vec<ProcessInfo> = rows
            .into_iter()
            .map(|(slot, row)| ProcessInfo { state: busiest[slot].1 as u32, ..row })
            .collect();
        rows.sort_unstable_by_key(|row| row.pid);
        rows
    })
}

/// How many processes are in the table.
pub fn process_count() -> usize {
    with_scheduler(|scheduler| scheduler.processes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_queue_is_fifo_without_duplicates() {
        let mut queue = RunQueue::default();
        for pid in [3, 1, 3, 2] {
            queue.push(pid);
        }
        let order: Vec<usize> = core::iter::from_fn(|| queue.pop_ready(|_| true)).collect();
        assert_eq!(order, [3, 1, 2]);
        assert!(queue.is_empty());
    }

    #[test]
    fn run_queue_skips_entries_that_are_no_longer_ready() {
        let mut queue = RunQueue::default();
        for pid in 1..=4 {
            queue.push(pid);
        }
        assert_eq!(queue.pop_ready(|pid| pid % 2 == 0), Some(2));
        assert_eq!(queue.pop_ready(|pid| pid == 4), Some(4));
        assert_eq!(queue.pop_ready(|_| true), None);
    }

    #[test]
    fn requeued_pid_goes_to_the_back() {
        let mut queue = RunQueue::default();
        queue.push(1);
        queue.push(2);
        let first = queue.pop_ready(|_| true).unwrap();
        queue.push(first);
        assert_eq!(queue.pop_ready(|_| true), Some(2));
        assert_eq!(queue.pop_ready(|_| true), Some(1));
    }

    #[test]
    fn spawn_errors_map_to_documented_errnos() {
        assert_eq!(SpawnError::TooManyProcesses.errno(), abi::errno::EAGAIN);
        let memory = LoadError::Memory(crate::mm::address_space::MemoryError::OutOfMemory);
        assert_eq!(SpawnError::Load(memory).errno(), abi::errno::ENOMEM);
        assert_eq!(SpawnError::Load(LoadError::Invalid("x")).errno(), abi::errno::EINVAL);
    }
}

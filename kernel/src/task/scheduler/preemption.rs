//! When the CPU changes hands: time slices and the timer tick, preemption points inside long
//! syscalls, the way back to ring 3, and each CPU's idle loop.

use core::sync::atomic::Ordering;

use crate::arch::x86_64::cpu;
use crate::arch::x86_64::kernel_lock::{self, Pause};
use crate::task::executor;

use super::{NEXT_WAKE_NS, SLEEPER_WAITING, SLICE_START_NS, TIME_SLICE_NS, exit_current, reschedule, with_scheduler, yield_now};

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

/// Runs on every way back to ring 3: decodes pending input, ends a killed process, and
/// gives up the CPU when the time slice is used up.
pub fn before_user_return() {
    if let Err(Killed) = reschedule_if_needed() {
        exit_current(abi::status::KILLED);
    }
}

/// The running process was killed.
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

/// The rare part of [`reschedule_if_needed`]: the process was killed or its slice is used up.
#[cold]
#[inline(never)]
fn attend() -> Result<(), Killed> {
    let now = crate::time::uptime_ns();
    let killed = with_scheduler(|scheduler| scheduler.current_process().killed);
    let slice_used = slice_used(cpu::index(), now);
    if killed {
        // Keep the request for the return to ring 3, which ends the process.
        cpu::request_attention(cpu::index());
        return Err(Killed);
    }
    if slice_used {
        yield_now();
    }
    Ok(())
}

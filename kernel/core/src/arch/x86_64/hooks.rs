//! The kernel's answers to what the CPU reports: the one place where `arch` reaches the
//! layers above it.
//!
//! `arch` is the bottom layer and names no scheduler, syscall table or boot code. Instead the
//! boot code installs a [`KernelHooks`] table once, and the trap paths call through it: a
//! syscall, a fault in ring 3, a device interrupt, the way back to ring 3, the first run of
//! a new process, and the faults the kernel cannot survive. Until the table is installed,
//! every hook reports the early trap and halts.

use core::sync::atomic::{AtomicPtr, Ordering};

use super::trap::{CpuFault, TrapFrame};

/// What the layers above `arch` do when the CPU enters the kernel.
#[derive(Debug)]
pub struct KernelHooks {
    /// Runs the system call in the frame (number in `rax`, arguments in the argument
    /// registers) and stores its results back in the frame.
    pub syscall: fn(&mut TrapFrame),
    /// Ends the running process after a CPU fault in ring 3.
    pub user_fault: fn(&CpuFault) -> !,
    /// A CPU exception in ring 3, with the faulting thread's frame: the kernel delivers it (to
    /// an exception endpoint) or ends the process. Returns when the thread may go on, with the
    /// frame as the thread resumes (a handler may have changed its registers).
    pub user_exception: fn(&CpuFault, &mut TrapFrame),
    /// Runs on every way back to ring 3, after the syscall or interrupt was handled.
    pub before_user_return: fn(),
    /// An interrupt on this ISA line fired (line 0: this CPU's timer, when `timer_tick`
    /// asked for it). Called before the controller is acknowledged (the timer: after), with
    /// interrupts masked and the big kernel lock held; must not switch processes. A line a
    /// driver serves is masked here (`irq::mask_line`) until the driver unmasks it.
    pub device_interrupt: fn(u8),
    /// A timer interrupt on this CPU, without the big kernel lock: does what needs no lock
    /// and returns whether the kernel must run under the lock before the CPU goes back
    /// (`device_interrupt(0)`, and the way back to ring 3 if the tick came from there).
    pub timer_tick: fn() -> bool,
    /// A fault the kernel cannot survive: a CPU exception in ring 0, a double fault or a
    /// machine check. Reports it and never returns.
    pub fatal_fault: fn(&CpuFault, &TrapFrame) -> !,
    /// The first code a new process runs on its kernel stack, before it enters ring 3. It
    /// must take the big kernel lock first (a switch leaves it released); `arch` releases it
    /// on the way to ring 3.
    pub process_start: fn(),
}

fn early_syscall(_: &mut TrapFrame) {
    early_halt()
}

fn early_user_fault(_: &CpuFault) -> ! {
    early_halt()
}

fn early_user_exception(_: &CpuFault, _: &mut TrapFrame) {
    early_halt()
}

fn early_interrupt(_: u8) {}

fn early_timer_tick() -> bool {
    false
}

fn early_fatal(_: &CpuFault, _: &TrapFrame) -> ! {
    early_halt()
}

fn early_noop() {}

fn early_halt() -> ! {
    super::serial::write_bytes_for_panic(b"trap before the kernel installed its hooks; halting\n");
    super::cpu::halt_forever()
}

static EARLY_HOOKS: KernelHooks = KernelHooks {
    syscall: early_syscall,
    user_fault: early_user_fault,
    user_exception: early_user_exception,
    before_user_return: early_noop,
    device_interrupt: early_interrupt,
    timer_tick: early_timer_tick,
    fatal_fault: early_fatal,
    process_start: early_noop,
};

/// Always points at a `'static` [`KernelHooks`].
static HOOKS: AtomicPtr<KernelHooks> = AtomicPtr::new((&raw const EARLY_HOOKS).cast_mut());

/// Installs the kernel's hooks. Called once during boot, before interrupts are enabled.
pub fn install(hooks: &'static KernelHooks) {
    HOOKS.store((hooks as *const KernelHooks).cast_mut(), Ordering::Release);
}

/// The installed hooks.
pub(super) fn hooks() -> &'static KernelHooks {
    // SAFETY: `HOOKS` only ever holds pointers made from `&'static KernelHooks` (the early
    // table or what `install` was given), which are valid for reads forever and never
    // written through.
    unsafe { &*HOOKS.load(Ordering::Acquire) }
}

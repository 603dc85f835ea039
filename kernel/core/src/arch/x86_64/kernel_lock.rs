//! The big kernel lock: one lock that a CPU holds whenever it runs kernel code on behalf of a
//! process, the scheduler, or a device.
//!
//! It is taken on every entry from ring 3 (system calls, exceptions, interrupts) and by an
//! interrupt that arrives while the CPU does not hold it (in the idle loop's halt); it is
//! released on the way back to ring 3, before the idle loop halts, at preemption points, and
//! around every switch between kernel stacks (the context that resumes takes it again). So
//! kernel code runs on one CPU at a time, as seL4 does, while user code runs on all of them;
//! the small locks inside the kernel stay as they were, ordered after this one.
//!
//! Outside it run: the TLB shootdown interrupt (its initiator holds the lock and waits for the
//! answer), the paranoid paths (NMI, machine check, debug exception in ring 0, double fault),
//! a CPU's start-up until its idle loop, and the panic path.
//!
//! Whether a CPU holds it follows from where it is, so nothing records it: user code and the
//! idle loop's halt never hold it, and kernel code runs with interrupts masked exactly when it
//! holds it (every place that enables them, the halt and a preemption point, releases the
//! lock first). So a trap takes it when it comes from ring 3 or from code that ran with
//! interrupts enabled, and not when it is an exception in kernel code.
//!
//! It is a ticket lock, so CPUs get it in the order they asked. A CPU waiting for it (with
//! interrupts masked) keeps answering TLB shootdown requests: the holder may be waiting for
//! exactly that. It polls for a short while, then halts until its turn comes: the releaser
//! sends the next ticket's holder a wake-up interrupt if it sleeps. Under QEMU's TCG a
//! polling CPU costs a host thread as much as a working one, and with more CPUs than host
//! cores the pollers took the holder's host time (four CPUs on two cores ran the kernel-heap
//! case of `usertests` ten times slower than two CPUs did). The sleeper raises its task
//! priority so that only the kernel's urgent interrupts (the wake-up and TLB shootdowns) are
//! taken while it halts; the others wait for it to hold the lock and enable interrupts.
//!
//! A holder that works through a long operation learns at each preemption point how long it
//! has kept others waiting ([`contended_for`]), so the scheduler can hand the lock over in
//! turns rather than at every step.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::cpu::{self, MAX_CPUS};
use super::trap::LOCK_WAKE_VECTOR;
use super::{apic, smp, tlb};

/// The ticket lock's words, side by side (one address for all of them on the hot path).
#[repr(C)]
struct Tickets {
    /// The ticket the next CPU to ask gets.
    next: AtomicU32,
    /// The ticket whose holder may run.
    now_serving: AtomicU32,
    /// CPUs halted until their turn (bit n: CPU n); see [`wait_for_turn`].
    sleepers: AtomicU32,
}

static LOCK: Tickets = Tickets { next: AtomicU32::new(0), now_serving: AtomicU32::new(0), sleepers: AtomicU32::new(0) };

/// Whether this CPU holds the lock (what code that reads structures only the lock guards
/// checks first).
#[inline]
pub fn is_held_here() -> bool {
    cpu::holds_kernel_lock()
}

/// Takes the lock. This CPU must not hold it already; interrupts must be masked.
#[inline]
pub fn acquire() {
    let ticket = LOCK.next.fetch_add(1, Ordering::Relaxed);
    if LOCK.now_serving.load(Ordering::Acquire) != ticket {
        wait_for_turn(ticket);
    }
    cpu::note_kernel_lock(true);
}

/// How many times a waiter polls the lock before it halts.
const POLLS_BEFORE_SLEEP: u32 = 64;

/// The ticket each CPU in `Tickets::sleepers` holds.
static SLEEPER_TICKET: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

#[cold]
#[inline(never)]
fn wait_for_turn(ticket: u32) {
    for _ in 0..POLLS_BEFORE_SLEEP {
        if LOCK.now_serving.load(Ordering::Acquire) == ticket {
            return;
        }
        tlb::answer_request();
        core::hint::spin_loop();
    }
    let this_cpu = cpu::index();
    SLEEPER_TICKET[this_cpu].store(ticket, Ordering::Relaxed);
    // The releaser advances the ticket and then looks for sleepers; this CPU says it sleeps
    // and then looks at the ticket. Both in one total order: one of the two sees the other.
    LOCK.sleepers.fetch_or(1 << this_cpu, Ordering::SeqCst);
    while LOCK.now_serving.load(Ordering::SeqCst) != ticket {
        tlb::answer_request();
        apic::halt_for_urgent_interrupt();
    }
    LOCK.sleepers.fetch_and(!(1 << this_cpu), Ordering::Relaxed);
}

/// Releases the lock, which this CPU holds. Only the core's own entry, exit and switch paths
/// call it; the layers above go through [`release_for`], which checks.
#[inline]
pub(crate) fn release() {
    cpu::note_kernel_lock(false);
    LOCK.now_serving.fetch_add(1, Ordering::SeqCst);
    if LOCK.sleepers.load(Ordering::SeqCst) != 0 {
        wake_sleeper();
    }
}

/// What a CPU does while [`release_for`] has let the lock go: nothing that touches kernel
/// state, so the other CPUs may have the kernel meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// Lets pending interrupts in for an instruction (`cpu::take_pending_interrupts`).
    TakePendingInterrupts,
    /// Halts until an interrupt (`cpu::wait_for_interrupt`).
    Halt,
    /// The idle loop's halt (`smp::idle_halt`).
    IdleHalt,
}

/// Lets the lock go for `pause` and takes it again: the one way for code above `arch` to let
/// other CPUs and pending interrupts into the kernel. A release by a CPU that does not hold
/// the lock would let a second CPU in, so this checks that this CPU holds it, and panics
/// otherwise.
pub fn release_for(pause: Pause) {
    assert!(cpu::holds_kernel_lock(), "releasing the big kernel lock on a CPU that does not hold it");
    release();
    match pause {
        Pause::TakePendingInterrupts => cpu::take_pending_interrupts(),
        Pause::Halt => cpu::wait_for_interrupt(),
        Pause::IdleHalt => smp::idle_halt(),
    }
    acquire();
}

/// Wakes the CPU whose turn it is if it sleeps. The lock may have changed hands again since
/// the release that calls this; then the ticket served now is the one that needs waking (the
/// earlier one has run).
#[cold]
#[inline(never)]
fn wake_sleeper() {
    let ticket = LOCK.now_serving.load(Ordering::SeqCst);
    let sleepers = LOCK.sleepers.load(Ordering::SeqCst);
    if let Some(cpu) = (0..MAX_CPUS)
        .find(|&cpu| sleepers & (1 << cpu) != 0 && SLEEPER_TICKET[cpu].load(Ordering::Relaxed) == ticket)
    {
        apic::send_ipi(smp::apic_id(cpu), LOCK_WAKE_VECTOR);
    }
}

/// The ticket each CPU held when it first found others waiting during its current hold, and
/// when that was (TSC), for [`contended_for`].
static CONTENDED_TICKET: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(u32::MAX) }; MAX_CPUS];
static CONTENDED_SINCE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// For the holder: `None` if no other CPU waits for the lock; otherwise how long (TSC cycles)
/// others have waited during this hold, counted from the first call that found them waiting.
/// A hold is told from the next by its ticket, so nothing needs resetting on release.
pub fn contended_for() -> Option<u64> {
    let serving = LOCK.now_serving.load(Ordering::Relaxed);
    if LOCK.next.load(Ordering::Relaxed).wrapping_sub(serving) <= 1 {
        return None;
    }
    let this_cpu = cpu::index();
    let now = cpu::read_timestamp();
    if CONTENDED_TICKET[this_cpu].swap(serving, Ordering::Relaxed) != serving {
        CONTENDED_SINCE[this_cpu].store(now, Ordering::Relaxed);
    }
    Some(now.wrapping_sub(CONTENDED_SINCE[this_cpu].load(Ordering::Relaxed)))
}

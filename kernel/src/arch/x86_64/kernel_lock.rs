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
//! It is a ticket lock, so CPUs get it in the order they asked. A CPU waiting for it (with
//! interrupts masked) keeps answering TLB shootdown requests: the holder may be waiting for
//! exactly that.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::{cpu, tlb};

static NEXT_TICKET: AtomicU32 = AtomicU32::new(0);
/// When the holder took the lock (TSC).
static TAKEN_AT: AtomicU64 = AtomicU64::new(0);
static NOW_SERVING: AtomicU32 = AtomicU32::new(0);
/// The holder's CPU number plus one (0: free), to tell whether this CPU holds it.
static HOLDER: AtomicU32 = AtomicU32::new(0);

/// Takes the lock. This CPU must not hold it already; interrupts must be masked.
#[inline]
pub fn acquire() {
    let ticket = NEXT_TICKET.fetch_add(1, Ordering::Relaxed);
    if NOW_SERVING.load(Ordering::Acquire) != ticket {
        wait_for_turn(ticket);
    }
    HOLDER.store(cpu::index() as u32 + 1, Ordering::Relaxed);
    TAKEN_AT.store(cpu::read_timestamp(), Ordering::Relaxed);
}

#[cold]
#[inline(never)]
fn wait_for_turn(ticket: u32) {
    while NOW_SERVING.load(Ordering::Acquire) != ticket {
        tlb::answer_request();
        core::hint::spin_loop();
    }
}

/// Releases the lock, which this CPU holds.
#[inline]
pub fn release() {
    debug_assert!(held_here(), "releasing the kernel lock that this CPU does not hold");
    HOLDER.store(0, Ordering::Relaxed);
    NOW_SERVING.store(NOW_SERVING.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
}

/// How long the holder has held the lock, in TSC cycles.
pub fn held_cycles() -> u64 {
    cpu::read_timestamp().wrapping_sub(TAKEN_AT.load(Ordering::Relaxed))
}

/// Whether another CPU waits for the lock.
pub fn contended() -> bool {
    NEXT_TICKET.load(Ordering::Relaxed).wrapping_sub(NOW_SERVING.load(Ordering::Relaxed)) > 1
}

/// Whether this CPU holds the lock.
#[inline]
pub fn held_here() -> bool {
    HOLDER.load(Ordering::Relaxed) == cpu::index() as u32 + 1
}

/// Takes the lock unless this CPU holds it already; returns whether it took it (and so must
/// release it).
#[inline]
pub fn acquire_unless_held() -> bool {
    if held_here() {
        return false;
    }
    acquire();
    true
}

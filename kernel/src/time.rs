//! Time since boot, from a clock that cannot lose time.
//!
//! The timer interrupt (every CPU's local APIC timer at [`TIMER_HZ`]) only says *when to
//! look*: it wakes sleepers and ends time slices. What time it *is* comes from a free-running counter, so interrupts
//! that are masked or lost (the kernel runs with them masked) cannot slow the clock:
//!
//! 1. the TSC, when the CPU says it is invariant (constant rate), calibrated against the
//!    HPET at boot;
//! 2. otherwise the HPET's main counter (QEMU under TCG reports no invariant TSC);
//! 3. otherwise, on a machine with neither, counted timer ticks of the boot processor, which
//!    do lose time while interrupts are masked (the boot log warns).
//!
//! Counts become nanoseconds through a 32.32 fixed-point factor, so reading the clock is a
//! counter read, a subtraction and a multiplication.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use futures_util::task::AtomicWaker;

use crate::arch::{apic, cpu, hpet, pit, smp};
use crate::task::executor::WaitUntil;

/// Timer interrupts per second on each CPU (nominal).
pub const TIMER_HZ: u64 = 1000;
/// How long the TSC is calibrated against the HPET, and the local APIC timer against the
/// PIT, at boot.
const CALIBRATION_NS: u64 = 10_000_000;

/// Where the time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockSource {
    /// Counted timer interrupts (the fallback; loses time while interrupts are masked).
    Ticks = 0,
    /// The HPET's main counter.
    Hpet = 1,
    /// The invariant TSC, calibrated against the HPET.
    Tsc = 2,
}

static SOURCE: AtomicU8 = AtomicU8::new(ClockSource::Ticks as u8);
/// The clock's count at boot.
static BASE: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per count of the clock, in 32.32 fixed point.
static NS_PER_COUNT: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC cycle, in 32.32 fixed point (0 if the TSC could not be calibrated).
static NS_PER_CYCLE: AtomicU64 = AtomicU64::new(0);

static TICKS: AtomicU64 = AtomicU64::new(0);

/// The kernel task waiting in [`time_reached`], if any.
static TICK_WAKER: AtomicWaker = AtomicWaker::new();

/// Applies a 32.32 fixed-point factor.
fn scale(count: u64, factor: u64) -> u64 {
    ((u128::from(count) * u128::from(factor)) >> 32).min(u128::from(u64::MAX)) as u64
}

/// The 32.32 factor that turns `counts` into `nanoseconds`.
fn factor(nanoseconds: u64, counts: u64) -> u64 {
    ((u128::from(nanoseconds) << 32) / u128::from(counts.max(1))).min(u128::from(u64::MAX)) as u64
}

/// Chooses the clock (see the module comment), calibrates the local APIC timer and starts the
/// boot processor's. `hpet` is the HPET if the machine has a usable one. Returns the clock
/// and the APIC timer's count per period.
pub fn start(hpet: Option<hpet::Hpet>) -> (ClockSource, u32) {
    let source = match hpet {
        Some(hpet) => {
            let hpet_factor = factor(hpet.period_fs, 1_000_000);
            let (start_count, start_cycles) = (hpet::counter(), cpu::read_timestamp());
            while scale(hpet::counter().wrapping_sub(start_count), hpet_factor) < CALIBRATION_NS {
                core::hint::spin_loop();
            }
            let (end_count, end_cycles) = (hpet::counter(), cpu::read_timestamp());
            let elapsed = scale(end_count.wrapping_sub(start_count), hpet_factor);
            NS_PER_CYCLE.store(factor(elapsed, end_cycles.wrapping_sub(start_cycles)), Ordering::Relaxed);
            if cpu::has_invariant_timestamp() {
                NS_PER_COUNT.store(NS_PER_CYCLE.load(Ordering::Relaxed), Ordering::Relaxed);
                BASE.store(cpu::read_timestamp(), Ordering::Relaxed);
                ClockSource::Tsc
            } else {
                NS_PER_COUNT.store(hpet_factor, Ordering::Relaxed);
                BASE.store(hpet::counter(), Ordering::Relaxed);
                ClockSource::Hpet
            }
        }
        None => ClockSource::Ticks,
    };
    SOURCE.store(source as u8, Ordering::Relaxed);
    let counts = apic::calibrate_timer(TIMER_HZ as u32, || pit::busy_wait_us(CALIBRATION_NS / 1000));
    smp::start_timer();
    (source, counts)
}

/// Counts one timer interrupt. Called by the timer interrupt handler only; only the boot
/// processor's ticks count (every CPU has a timer, and the fallback clock is one CPU's ticks).
pub fn tick() {
    if cpu::index() == 0 {
        TICKS.fetch_add(1, Ordering::Relaxed);
        TICK_WAKER.wake();
    }
}

/// Timer interrupts since boot.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Nanoseconds in `ticks` timer ticks.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(1_000_000_000 / TIMER_HZ)
}

/// Nanoseconds since the clock started (0 before [`start`]).
pub fn uptime_ns() -> u64 {
    let count = match SOURCE.load(Ordering::Relaxed) {
        source if source == ClockSource::Tsc as u8 => cpu::read_timestamp(),
        source if source == ClockSource::Hpet as u8 => hpet::counter(),
        _ => return ticks_to_ns(ticks()),
    };
    scale(count.wrapping_sub(BASE.load(Ordering::Relaxed)), NS_PER_COUNT.load(Ordering::Relaxed))
}

/// TSC cycles in nanoseconds (0 if the TSC could not be calibrated). Under QEMU's `-icount
/// shift=0` a cycle is an instruction and a nanosecond of guest time.
pub fn cycles_to_ns(cycles: u64) -> u64 {
    scale(cycles, NS_PER_CYCLE.load(Ordering::Relaxed))
}

/// Completes once the clock reaches `deadline_ns`; checked on every timer interrupt. For
/// one kernel task at a time (processes sleep through the scheduler instead).
pub async fn time_reached(deadline_ns: u64) {
    WaitUntil::new(|| uptime_ns() >= deadline_ns, |waker| TICK_WAKER.register(waker)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_factors_convert_counts_to_nanoseconds() {
        // The HPET under QEMU: 10,000,000 fs per count is 10 ns.
        let hpet = factor(10_000_000, 1_000_000);
        assert_eq!(scale(1, hpet), 10);
        assert_eq!(scale(100_000_000, hpet), 1_000_000_000);
        // A 3 GHz TSC: 3,000,000,000 cycles are one second, within a nanosecond.
        let tsc = factor(1_000_000_000, 3_000_000_000);
        let second = scale(3_000_000_000, tsc);
        assert!((999_999_999..=1_000_000_000).contains(&second), "{second}");
        // Huge counts saturate instead of wrapping.
        assert_eq!(scale(u64::MAX, hpet), u64::MAX);
        assert_eq!(factor(5, 0), 5 << 32);
    }

    #[test]
    fn ticks_are_the_timer_period() {
        assert_eq!(ticks_to_ns(1), 1_000_000);
        assert_eq!(ticks_to_ns(u64::MAX), u64::MAX);
    }
}

//! Time since boot, counted in timer ticks.
//!
//! The PIT interrupts [`TIMER_HZ`] times a second (its 1.193182 MHz clock divided by
//! [`PIT_DIVISOR`]); each interrupt is one tick. Uptime is ticks times the exact tick
//! length, so it is monotonic with a resolution of one tick (about 1 ms).

use core::sync::atomic::{AtomicU64, Ordering};

use futures_util::task::AtomicWaker;

use crate::arch::x86_64::pit;
use crate::task::executor::WaitUntil;

/// Timer interrupts per second (nominal).
pub const TIMER_HZ: u64 = 1000;
/// The PIT divisor that gives [`TIMER_HZ`].
pub const PIT_DIVISOR: u16 = (pit::INPUT_HZ / TIMER_HZ) as u16;

static TICKS: AtomicU64 = AtomicU64::new(0);

/// The kernel task waiting in [`tick_reached`], if any.
static TICK_WAKER: AtomicWaker = AtomicWaker::new();

/// Starts the periodic timer.
pub fn start() {
    pit::start_periodic(PIT_DIVISOR);
}

/// Counts one timer interrupt. Called by the timer interrupt handler only.
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    TICK_WAKER.wake();
}

/// Completes once the tick count reaches `target`, woken by the timer interrupt. For one
/// kernel task at a time (processes sleep through the scheduler instead).
pub async fn tick_reached(target: u64) {
    WaitUntil::new(|| ticks() >= target, |waker| TICK_WAKER.register(waker)).await;
}

/// Timer interrupts since boot.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Nanoseconds in `ticks` ticks.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * u128::from(PIT_DIVISOR) * 1_000_000_000 / u128::from(pit::INPUT_HZ)) as u64
}

/// The number of whole ticks that covers at least `ns` nanoseconds.
pub fn ns_to_ticks_ceil(ns: u64) -> u64 {
    let per_tick = u128::from(PIT_DIVISOR) * 1_000_000_000;
    (u128::from(ns) * u128::from(pit::INPUT_HZ)).div_ceil(per_tick).min(u128::from(u64::MAX)) as u64
}

/// Nanoseconds since the timer started.
pub fn uptime_ns() -> u64 {
    ticks_to_ns(ticks())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_conversions_round_trip_and_round_up() {
        assert_eq!(PIT_DIVISOR, 1193);
        let one_tick = ticks_to_ns(1);
        assert!((999_000..1_001_000).contains(&one_tick), "{one_tick}");
        assert_eq!(ns_to_ticks_ceil(0), 0);
        assert_eq!(ns_to_ticks_ceil(1), 1);
        assert_eq!(ns_to_ticks_ceil(one_tick), 1);
        assert_eq!(ns_to_ticks_ceil(one_tick + 1), 2);
        assert_eq!(ns_to_ticks_ceil(1_000_000_000), 1001);
        assert!(ns_to_ticks_ceil(u64::MAX) > 0);
    }
}

//! The High Precision Event Timer's main counter: a clock that keeps counting whatever the
//! CPU does, read through its memory-mapped registers.
//!
//! Only the main counter is used (no comparators, no interrupts): the kernel reads it as a
//! clock. Counters narrower than 64 bits would wrap within minutes and are refused.
//!
//! The registers are reached through the physical-memory map, which covers the first 4 GiB.
//! That map is write-back in the page tables, but firmware marks the MMIO hole below 4 GiB
//! uncacheable in the MTRRs, and the stricter type wins, so the accesses are uncached.

use core::sync::atomic::{AtomicU64, Ordering};

use super::acpi::HpetDescription;

/// General capabilities and ID register (offset 0): counter period in femtoseconds in the
/// upper half, bit 13 set for a 64-bit counter.
const CAPABILITIES: u64 = 0x000;
/// General configuration register: bit 0 starts the main counter.
const CONFIGURATION: u64 = 0x010;
/// The main counter.
const MAIN_COUNTER: u64 = 0x0f0;

const COUNTER_64_BIT: u64 = 1 << 13;
const ENABLE: u64 = 1;
/// The longest period the specification allows (100 ns).
const MAX_PERIOD_FS: u64 = 100_000_000;

/// The register block's virtual address (0 until [`start`]).
static REGISTERS: AtomicU64 = AtomicU64::new(0);

/// A running HPET.
#[derive(Clone, Copy, Debug)]
pub struct Hpet {
    /// Femtoseconds per count.
    pub period_fs: u64,
}

fn read(offset: u64) -> u64 {
    let address = REGISTERS.load(Ordering::Relaxed) + offset;
    // SAFETY: `start` stored the physical-map address of the HPET register block the
    // firmware's tables name; the offsets used are 8-byte aligned registers inside it.
    unsafe { core::ptr::read_volatile(address as *const u64) }
}

fn write(offset: u64, value: u64) {
    let address = REGISTERS.load(Ordering::Relaxed) + offset;
    // SAFETY: as in `read`; the configuration register accepts this write.
    unsafe { core::ptr::write_volatile(address as *mut u64, value) };
}

/// Starts the main counter of the HPET the ACPI tables describe, or returns `None` if it is
/// unusable (a 32-bit counter, or a period outside the specification).
pub fn start(description: &HpetDescription) -> Option<Hpet> {
    REGISTERS.store(abi::memory::PHYSICAL_MAP_OFFSET + description.base(), Ordering::Relaxed);
    let capabilities = read(CAPABILITIES);
    let period_fs = capabilities >> 32;
    if capabilities & COUNTER_64_BIT == 0 || period_fs == 0 || period_fs > MAX_PERIOD_FS {
        REGISTERS.store(0, Ordering::Relaxed);
        return None;
    }
    write(CONFIGURATION, read(CONFIGURATION) | ENABLE);
    Some(Hpet { period_fs })
}

/// The main counter (0 if no HPET was started).
pub fn counter() -> u64 {
    if REGISTERS.load(Ordering::Relaxed) == 0 { 0 } else { read(MAIN_COUNTER) }
}

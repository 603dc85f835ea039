//! The IOAPIC: routes device interrupt lines to a CPU's local APIC.
//!
//! It is reached through two memory-mapped registers (select, then read or write the window),
//! so every access takes a lock: two CPUs may mask and unmask lines at once. Every input
//! starts masked; [`route`] programs one to a vector on one CPU.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

/// The register window's virtual address (0: none).
static BASE: AtomicU64 = AtomicU64::new(0);
/// The global system interrupt of input 0.
static GSI_BASE: AtomicU64 = AtomicU64::new(0);
/// Serialises select-then-access pairs.
static ACCESS: Mutex<()> = Mutex::new(());

const SELECT: u64 = 0x00;
const WINDOW: u64 = 0x10;
const VERSION: u32 = 0x01;
const REDIRECTION_TABLE: u32 = 0x10;

const MASKED: u32 = 1 << 16;
const LEVEL_TRIGGERED: u32 = 1 << 15;
const ACTIVE_LOW: u32 = 1 << 13;

fn read(register: u32) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: `init` stored the physical-map address of the IOAPIC the MADT names; the select
    // and window registers are 32-bit registers inside its page. Callers hold `ACCESS`.
    unsafe {
        core::ptr::write_volatile((base + SELECT) as *mut u32, register);
        core::ptr::read_volatile((base + WINDOW) as *const u32)
    }
}

fn write(register: u32, value: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as in `read`.
    unsafe {
        core::ptr::write_volatile((base + SELECT) as *mut u32, register);
        core::ptr::write_volatile((base + WINDOW) as *mut u32, value);
    }
}

/// Takes over the IOAPIC at `physical_base`, whose inputs serve global system interrupts
/// from `gsi_base`, and masks every input.
pub fn init(physical_base: u64, gsi_base: u32) {
    BASE.store(abi::memory::PHYSICAL_MAP_OFFSET + physical_base, Ordering::Relaxed);
    GSI_BASE.store(u64::from(gsi_base), Ordering::Relaxed);
    let _access = ACCESS.lock();
    let inputs = ((read(VERSION) >> 16) & 0xff) + 1;
    for input in 0..inputs {
        write(REDIRECTION_TABLE + 2 * input, MASKED);
        write(REDIRECTION_TABLE + 2 * input + 1, 0);
    }
}

/// The redirection entry's low register for global system interrupt `gsi`.
fn entry(gsi: u32) -> u32 {
    let input = gsi.saturating_sub(GSI_BASE.load(Ordering::Relaxed) as u32);
    REDIRECTION_TABLE + 2 * input
}

/// Routes global system interrupt `gsi` to `vector` on the CPU with APIC id `destination`,
/// left masked until [`set_masked`] unmasks it.
pub fn route(gsi: u32, vector: u8, destination: u32, active_low: bool, level_triggered: bool) {
    let mut low = MASKED | u32::from(vector);
    if active_low {
        low |= ACTIVE_LOW;
    }
    if level_triggered {
        low |= LEVEL_TRIGGERED;
    }
    let _access = ACCESS.lock();
    write(entry(gsi) + 1, destination << 24);
    write(entry(gsi), low);
}

/// Masks or unmasks global system interrupt `gsi`.
pub fn set_masked(gsi: u32, masked: bool) {
    let _access = ACCESS.lock();
    let low = read(entry(gsi));
    write(entry(gsi), if masked { low | MASKED } else { low & !MASKED });
}

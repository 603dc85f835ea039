//! The local APIC: every CPU's own interrupt controller, its timer, and inter-processor
//! interrupts.
//!
//! Registers are reached as MSRs in x2APIC mode, which is used whenever CPUID offers it, and
//! otherwise through the xAPIC's memory-mapped page (through the physical-memory map; the
//! firmware's MTRRs make that range uncached). QEMU's TCG offers no x2APIC, so there the
//! memory-mapped path runs.
//!
//! **The timer.** Each CPU's APIC timer runs periodically at `time::TIMER_HZ` and is how the
//! scheduler learns that time has passed on that CPU (the clock itself is the HPET or the
//! TSC, see `time`). Its rate is not architectural, so the boot processor measures it once:
//! it lets the timer count down from its maximum, divided by 16, for 10 ms timed by the PIT
//! (polled, no interrupt), and every CPU uses the count per period derived from that
//! ([`calibrate_timer`]). Under QEMU the timer counts at 1 GHz before the divider.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use ::x86_64::registers::model_specific::Msr;

use super::trap::{FIRST_URGENT_VECTOR, LOCAL_TIMER_VECTOR, SPURIOUS_VECTOR};

/// `IA32_APIC_BASE`: the APIC's physical base and its enable bits.
const APIC_BASE_MSR: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
/// The first of the x2APIC's MSRs; register `offset` is MSR `X2APIC_MSR_BASE + offset / 16`.
const X2APIC_MSR_BASE: u32 = 0x800;

/// Register offsets (xAPIC page layout).
const ID: u32 = 0x020;
const TASK_PRIORITY: u32 = 0x080;
const END_OF_INTERRUPT: u32 = 0x0b0;
const SPURIOUS: u32 = 0x0f0;
const INTERRUPT_COMMAND_LOW: u32 = 0x300;
const INTERRUPT_COMMAND_HIGH: u32 = 0x310;
const TIMER_ENTRY: u32 = 0x320;
const LINT0_ENTRY: u32 = 0x350;
const TIMER_INITIAL_COUNT: u32 = 0x380;
const TIMER_CURRENT_COUNT: u32 = 0x390;
const TIMER_DIVIDE: u32 = 0x3e0;

/// SVR bit 8: the APIC accepts interrupts.
const SOFTWARE_ENABLE: u32 = 1 << 8;
/// LVT mask bit.
const MASKED: u32 = 1 << 16;
/// LVT timer mode: periodic.
const PERIODIC: u32 = 1 << 17;
/// Divide configuration for "divide by 16".
const DIVIDE_BY_16: u32 = 0b0011;
/// ICR delivery modes and flags.
const DELIVERY_NMI: u32 = 0b100 << 8;
const DELIVERY_INIT: u32 = 0b101 << 8;
const DELIVERY_STARTUP: u32 = 0b110 << 8;
const DELIVERY_PENDING: u32 = 1 << 12;
const LEVEL_ASSERT: u32 = 1 << 14;

/// Whether the registers are MSRs (x2APIC) rather than memory-mapped.
static X2APIC: AtomicBool = AtomicBool::new(false);
/// The xAPIC register page's virtual address (0: not set up).
static MMIO_BASE: AtomicU64 = AtomicU64::new(0);
/// Timer counts (divided by 16) in one period of `TIMER_HZ`, as calibrated.
static COUNTS_PER_PERIOD: AtomicU32 = AtomicU32::new(0);

/// Whether the CPU offers x2APIC mode (CPUID leaf 1, ECX bit 21).
fn x2apic_available() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0
}

fn read(register: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: in x2APIC mode every APIC register used here is readable as its MSR.
        unsafe { Msr::new(X2APIC_MSR_BASE + register / 16).read() as u32 }
    } else {
        let address = MMIO_BASE.load(Ordering::Relaxed) + u64::from(register);
        // SAFETY: `init` stored the physical-map address of the APIC page the MADT names;
        // the register offsets are 16-byte aligned and inside it.
        unsafe { core::ptr::read_volatile(address as *const u32) }
    }
}

fn write(register: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: in x2APIC mode every APIC register written here is writable as its MSR.
        unsafe { Msr::new(X2APIC_MSR_BASE + register / 16).write(u64::from(value)) };
    } else {
        let address = MMIO_BASE.load(Ordering::Relaxed) + u64::from(register);
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(address as *mut u32, value) };
    }
}

/// Chooses the access mode (x2APIC if offered) and notes where the xAPIC page is
/// (`physical_base`, from the MADT). Called once, on the boot processor.
pub fn init(physical_base: u64) {
    MMIO_BASE.store(abi::memory::PHYSICAL_MAP_OFFSET + physical_base, Ordering::Relaxed);
    X2APIC.store(x2apic_available(), Ordering::Relaxed);
}

/// Whether the registers are reached as MSRs (x2APIC mode).
pub fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// Enables this CPU's APIC (in x2APIC mode if chosen), accepts every priority, and routes
/// spurious interrupts to their vector. With `mask_legacy` the LINT0 pin (the 8259s' way in)
/// is masked, for when the IOAPIC delivers device interrupts.
pub fn enable_on_this_cpu(mask_legacy: bool) {
    let msr = Msr::new(APIC_BASE_MSR);
    // SAFETY: reading IA32_APIC_BASE has no side effects.
    let mut base = unsafe { msr.read() } | APIC_BASE_ENABLE;
    if X2APIC.load(Ordering::Relaxed) {
        base |= APIC_BASE_X2APIC;
    }
    // SAFETY: enabling the APIC (and x2APIC mode, which CPUID offers) at the base the
    // firmware chose changes nothing else; interrupts are masked.
    unsafe { Msr::new(APIC_BASE_MSR).write(base) };
    write(TASK_PRIORITY, 0);
    write(SPURIOUS, SOFTWARE_ENABLE | u32::from(SPURIOUS_VECTOR));
    if mask_legacy {
        write(LINT0_ENTRY, read(LINT0_ENTRY) | MASKED);
    }
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    let id = read(ID);
    if X2APIC.load(Ordering::Relaxed) { id } else { id >> 24 }
}

/// Acknowledges the interrupt being handled on this CPU.
pub fn end_of_interrupt() {
    write(END_OF_INTERRUPT, 0);
}

/// Halts this CPU until one of the kernel's urgent inter-processor interrupts arrives
/// (vectors from [`FIRST_URGENT_VECTOR`], the highest priority class), whose handler runs
/// before this returns; every other interrupt is held pending meanwhile by raising the task
/// priority, so no handler that needs the big kernel lock runs. Interrupts must be masked;
/// they are masked again on return.
pub fn halt_for_urgent_interrupt() {
    write(TASK_PRIORITY, u32::from(FIRST_URGENT_VECTOR) - 0x10);
    // SAFETY: `sti; hlt` enables interrupts and halts as one step, so an urgent interrupt
    // already pending wakes the halt; only urgent vectors can be delivered (their handlers
    // take no lock), and `cli` masks interrupts again before the priority drops.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    write(TASK_PRIORITY, 0);
}

/// Measures the timer against `wait_10_ms` (which must take 10 ms) and keeps the count per
/// period of `hz`. Called once, on the boot processor, with interrupts masked.
pub fn calibrate_timer(hz: u32, wait_10_ms: impl FnOnce()) -> u32 {
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(TIMER_ENTRY, MASKED | u32::from(LOCAL_TIMER_VECTOR));
    write(TIMER_INITIAL_COUNT, u32::MAX);
    wait_10_ms();
    let counted = u32::MAX - read(TIMER_CURRENT_COUNT);
    write(TIMER_INITIAL_COUNT, 0);
    let per_period = (u64::from(counted) * 100 / u64::from(hz.max(1))).clamp(1, u64::from(u32::MAX)) as u32;
    COUNTS_PER_PERIOD.store(per_period, Ordering::Relaxed);
    per_period
}

/// Starts this CPU's timer: periodic, at the calibrated rate, on the local timer vector.
pub fn start_timer() {
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(TIMER_ENTRY, PERIODIC | u32::from(LOCAL_TIMER_VECTOR));
    set_timer_slowdown(1);
}

/// Makes this CPU's timer fire once every `periods` calibrated periods (1: the normal rate),
/// starting a new period now.
pub fn set_timer_slowdown(periods: u32) {
    let count = COUNTS_PER_PERIOD.load(Ordering::Relaxed).saturating_mul(periods.max(1));
    write(TIMER_INITIAL_COUNT, count);
}

/// Sends an interrupt command: `command` (vector, delivery mode, flags) to the CPU whose APIC
/// id is `destination`. In xAPIC mode the high half must be written first, and the command
/// waits until the APIC has taken it.
fn send_command(destination: u32, command: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // An x2APIC's ICR write is not serializing: earlier stores (what the interrupt tells
        // its target to look at) must be visible before it.
        core::sync::atomic::fence(Ordering::SeqCst);
        let value = (u64::from(destination) << 32) | u64::from(command);
        // SAFETY: the x2APIC's ICR is one 64-bit MSR; writing it sends the interrupt.
        unsafe { Msr::new(X2APIC_MSR_BASE + INTERRUPT_COMMAND_LOW / 16).write(value) };
    } else {
        write(INTERRUPT_COMMAND_HIGH, destination << 24);
        write(INTERRUPT_COMMAND_LOW, command);
        while read(INTERRUPT_COMMAND_LOW) & DELIVERY_PENDING != 0 {
            core::hint::spin_loop();
        }
    }
}

/// Sends interrupt `vector` to the CPU with APIC id `destination`.
pub fn send_ipi(destination: u32, vector: u8) {
    send_command(destination, u32::from(vector));
}

/// Sends a non-maskable interrupt to the CPU with APIC id `destination`.
pub fn send_nmi(destination: u32) {
    send_command(destination, DELIVERY_NMI);
}

/// Sends INIT (asserted) to the CPU with APIC id `destination`: it resets and waits for a
/// start-up IPI.
pub fn send_init(destination: u32) {
    send_command(destination, DELIVERY_INIT | LEVEL_ASSERT);
}

/// Sends a start-up IPI: the CPU with APIC id `destination` starts in real mode at
/// `page * 4096`.
pub fn send_startup(destination: u32, page: u8) {
    send_command(destination, DELIVERY_STARTUP | u32::from(page));
}

//! Device interrupt lines, whichever controller delivers them: the IOAPIC when the MADT
//! describes one (the 8259s are then masked for good), the 8259 pair otherwise. This is the
//! interface the rest of the kernel sees, the same for both:
//!
//! - a line is an ISA IRQ number, and line `n` arrives on vector `IRQ_BASE + n`, at the boot
//!   processor;
//! - when a line fires, the kernel's `KernelHooks::device_interrupt(n)` runs (under the big
//!   kernel lock, before the controller is acknowledged): that is where a line bound to a
//!   driver is masked and the driver told;
//! - [`mask_line`] and [`unmask_line`] stop and restart one line: every line starts masked, a
//!   driver's binding unmasks it, and it stays masked from each interrupt until the driver
//!   has served the device.
//!
//! Line 0 is the timer: each CPU's local APIC timer (see [`super::apic`]), not a device line,
//! so it cannot be masked here; line 2 is the 8259s' cascade, never a device.
//!
//! A masked line's interrupt must wait, not vanish: the 8259s keep it requested, but the
//! IOAPIC ignores an edge that arrives while its input is masked (as the 82093AA's manual
//! says, and QEMU does), so a device whose request came between the kernel's mask and the
//! driver's unmask would never be heard of again (its line stays high, with no new edge).
//! So an edge-triggered line is never masked at the IOAPIC; masking it (which every line is
//! at first) only holds its interrupts here: one that arrives is noted, acknowledged and
//! kept, and unmasking sends it to the line's CPU again as an inter-processor interrupt on
//! the line's vector. Level-triggered lines (the MADT may say so) are masked at the IOAPIC,
//! which keeps a level request.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use spin::Mutex;

use super::acpi::{ApicDescription, IsaRoute};
use super::trap::IRQ_BASE;
use super::{apic, ioapic, pic};

/// The timer's line, as the device hook sees it (each CPU's local APIC timer).
pub const TIMER_LINE: u8 = 0;
/// The PS/2 keyboard's line.
pub const KEYBOARD_LINE: u8 = 1;
/// COM2's line.
pub const COM2_LINE: u8 = 3;
/// COM1's line.
pub const COM1_LINE: u8 = 4;
/// The ISA lines.
const LINES: u8 = 16;
const PRIMARY_SPURIOUS_LINE: u8 = 7;
const SECONDARY_SPURIOUS_LINE: u8 = 15;

/// Whether `line` is a device line (neither the timer nor the 8259s' cascade).
fn is_device_line(line: u8) -> bool {
    line < LINES && line != TIMER_LINE && line != pic::CASCADE_IRQ
}

/// Whether the IOAPIC delivers device interrupts.
static USING_IOAPIC: AtomicBool = AtomicBool::new(false);
/// How each ISA line reaches the IOAPIC.
static ROUTES: Mutex<[Option<IsaRoute>; LINES as usize]> = Mutex::new([None; LINES as usize]);
/// Edge-triggered IOAPIC lines whose interrupts are held back (bit n: line n), and those of
/// them that fired meanwhile (see the module comment).
static HELD: AtomicU32 = AtomicU32::new(0);
static HELD_AND_FIRED: AtomicU32 = AtomicU32::new(0);
/// The APIC id of the CPU the IOAPIC delivers to.
static DESTINATION: AtomicU32 = AtomicU32::new(0);

/// Takes over device interrupts: the 8259s are remapped in any case; with an IOAPIC in
/// `apic` they are masked and every device line is routed through the IOAPIC to the CPU with
/// APIC id `boot_apic_id`. Every line starts masked. Returns whether the IOAPIC serves.
pub fn init(apic: Option<&ApicDescription>, boot_apic_id: u32) -> bool {
    pic::init();
    if let Some((description, io_apic)) = apic.and_then(|apic| Some((apic, apic.io_apic?))) {
        pic::mask_all();
        DESTINATION.store(boot_apic_id, Ordering::Relaxed);
        ioapic::init(io_apic.base, io_apic.gsi_base);
        let mut routes = ROUTES.lock();
        for line in (0..LINES).filter(|&line| is_device_line(line)) {
            let route = description.isa_route(line);
            ioapic::route(route.gsi, IRQ_BASE + line, boot_apic_id, route.active_low, route.level_triggered);
            if !route.level_triggered {
                // Held rather than masked, from the start (see the module comment).
                HELD.fetch_or(1 << line, Ordering::AcqRel);
                ioapic::set_masked(route.gsi, false);
            }
            routes[usize::from(line)] = Some(route);
        }
        USING_IOAPIC.store(true, Ordering::Release);
    }
    USING_IOAPIC.load(Ordering::Acquire)
}

fn set_masked(line: u8, masked: bool) {
    if !is_device_line(line) {
        return;
    }
    if !USING_IOAPIC.load(Ordering::Acquire) {
        pic::set_masked(line, masked);
        return;
    }
    let Some(route) = ROUTES.lock()[usize::from(line)] else { return };
    let bit = 1 << line;
    if route.level_triggered {
        ioapic::set_masked(route.gsi, masked);
    } else if masked {
        HELD.fetch_or(bit, Ordering::AcqRel);
    } else {
        HELD.fetch_and(!bit, Ordering::AcqRel);
        if HELD_AND_FIRED.fetch_and(!bit, Ordering::AcqRel) & bit != 0 {
            apic::send_ipi(DESTINATION.load(Ordering::Relaxed), IRQ_BASE + line);
        }
    }
}

/// Stops device line `line` from interrupting until [`unmask_line`]. The timer line, the
/// cascade and numbers past the ISA lines are left alone.
pub fn mask_line(line: u8) {
    set_masked(line, true);
}

/// Lets device line `line` interrupt again.
pub fn unmask_line(line: u8) {
    set_masked(line, false);
}

/// Acknowledges the interrupt of device line `line` on this CPU.
fn end_of_interrupt(line: u8) {
    if USING_IOAPIC.load(Ordering::Acquire) {
        apic::end_of_interrupt();
    } else {
        pic::end_of_interrupt(line);
    }
}

/// Handles an interrupt on the vector of line `line`: the kernel's device hook, then the
/// acknowledgement. The hook never switches processes (that waits for the way back to
/// ring 3), so a switch never leaves the controller waiting.
pub(super) fn handle_line(line: u8) {
    let through_8259 = !USING_IOAPIC.load(Ordering::Acquire);
    match line {
        // A spurious interrupt from the primary 8259 must not be acknowledged; one from the
        // secondary is acknowledged on the primary only (the cascade line did fire). Without
        // an IOAPIC, lines 7 and 15 are taken for spurious ones, so no driver can use them.
        PRIMARY_SPURIOUS_LINE if through_8259 => {}
        SECONDARY_SPURIOUS_LINE if through_8259 => pic::end_of_interrupt(pic::CASCADE_IRQ),
        line if is_device_line(line) => {
            let bit = 1 << line;
            if !through_8259 && HELD.load(Ordering::Acquire) & bit != 0 {
                HELD_AND_FIRED.fetch_or(bit, Ordering::AcqRel);
            } else {
                (super::hooks::hooks().device_interrupt)(line);
            }
            end_of_interrupt(line);
        }
        other => {
            log::warn!("unexpected IRQ {other}");
            end_of_interrupt(other);
        }
    }
}

//! Device interrupt lines, whichever controller delivers them: the IOAPIC when the MADT
//! describes one (the 8259s are then masked for good), the 8259 pair otherwise.
//!
//! Lines are ISA IRQ numbers; line `n` arrives on vector `IRQ_BASE + n` either way, to the boot
//! processor, and reaches the kernel through `KernelHooks::device_interrupt(n)`. The kernel
//! masks and unmasks lines with [`mask_line`] and [`unmask_line`] (a user-space driver's line
//! stays masked from its interrupt until the driver has served it), and the handling path
//! acknowledges each interrupt with [`end_of_interrupt`]. Line 0 is the timer: the local
//! APIC's timer on every CPU (see [`super::apic`]), not a device line, so it cannot be
//! masked here.

use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use super::acpi::{ApicDescription, IsaRoute};
use super::trap::IRQ_BASE;
use super::{apic, ioapic, pic};

/// The timer's line, as the device hook sees it (each CPU's local APIC timer).
pub const TIMER_LINE: u8 = 0;
/// The PS/2 keyboard's line.
pub const KEYBOARD_LINE: u8 = 1;
/// COM1's line.
pub const COM1_LINE: u8 = 4;
/// The device lines Enigma routes.
const DEVICE_LINES: [u8; 2] = [KEYBOARD_LINE, COM1_LINE];
const PRIMARY_SPURIOUS_LINE: u8 = 7;
const SECONDARY_SPURIOUS_LINE: u8 = 15;

/// Whether the IOAPIC delivers device interrupts.
static USING_IOAPIC: AtomicBool = AtomicBool::new(false);
/// How each routed ISA line reaches the IOAPIC.
static ROUTES: Mutex<[Option<IsaRoute>; 16]> = Mutex::new([None; 16]);

/// Takes over device interrupts: the 8259s are remapped in any case; with an IOAPIC in
/// `apic` they are masked and the device lines are routed through the IOAPIC to the CPU with
/// APIC id `boot_apic_id`. Every device line starts unmasked. Returns whether the IOAPIC
/// serves.
pub fn init(apic: Option<&ApicDescription>, boot_apic_id: u32) -> bool {
    pic::init();
    let Some((description, io_apic)) = apic.and_then(|apic| Some((apic, apic.io_apic?))) else {
        for line in DEVICE_LINES {
            pic::set_masked(line, false);
        }
        return false;
    };
    pic::mask_all();
    ioapic::init(io_apic.base, io_apic.gsi_base);
    let mut routes = ROUTES.lock();
    for line in DEVICE_LINES {
        let route = description.isa_route(line);
        ioapic::route(route.gsi, IRQ_BASE + line, boot_apic_id, route.active_low, route.level_triggered);
        ioapic::set_masked(route.gsi, false);
        routes[usize::from(line)] = Some(route);
    }
    USING_IOAPIC.store(true, Ordering::Release);
    true
}

fn set_masked(line: u8, masked: bool) {
    if line == TIMER_LINE || line >= 16 {
        return;
    }
    if USING_IOAPIC.load(Ordering::Acquire) {
        if let Some(route) = ROUTES.lock()[usize::from(line)] {
            ioapic::set_masked(route.gsi, masked);
        }
    } else {
        pic::set_masked(line, masked);
    }
}

/// Stops device line `line` from interrupting until [`unmask_line`]. Lines Enigma does not
/// route, and the timer line, are left alone.
pub fn mask_line(line: u8) {
    set_masked(line, true);
}

/// Lets device line `line` interrupt again.
pub fn unmask_line(line: u8) {
    set_masked(line, false);
}

/// Acknowledges the interrupt of device line `line` on this CPU.
pub fn end_of_interrupt(line: u8) {
    if USING_IOAPIC.load(Ordering::Acquire) {
        apic::end_of_interrupt();
    } else {
        pic::end_of_interrupt(line);
    }
}

/// Handles an interrupt on the vector of device line `line`: the kernel's device hook, then
/// the acknowledgement. The hook never switches processes (that waits for the way back to
/// ring 3), so a switch never leaves the controller waiting.
pub(super) fn handle_line(line: u8) {
    let spurious_from_8259 = !USING_IOAPIC.load(Ordering::Acquire) || !DEVICE_LINES.contains(&line);
    match line {
        // A spurious interrupt from the primary 8259 must not be acknowledged; one from the
        // secondary is acknowledged on the primary only (the cascade line did fire). A
        // masked 8259 can still raise them.
        PRIMARY_SPURIOUS_LINE if spurious_from_8259 => {}
        SECONDARY_SPURIOUS_LINE if spurious_from_8259 => pic::end_of_interrupt(pic::CASCADE_IRQ),
        line if DEVICE_LINES.contains(&line) => {
            (super::hooks::hooks().device_interrupt)(line);
            end_of_interrupt(line);
        }
        other => {
            log::warn!("unexpected IRQ {other}");
            end_of_interrupt(other);
        }
    }
}

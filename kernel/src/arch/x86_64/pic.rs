//! The two 8259 programmable interrupt controllers, remapped to vectors 32..48, and the
//! routing of each hardware interrupt to its driver.
//!
//! The kernel itself uses IRQ 0 (PIT timer) and IRQ 2 (the cascade); device lines (IRQ 1 the
//! PS/2 keyboard, 3 COM2, 4 COM1) stay masked until a ring-3 driver binds them, and are
//! masked again each time they fire until the driver acknowledges ([`mask_line`],
//! [`unmask_line`]). Every handled interrupt goes to the kernel's device hook and is then
//! acknowledged at the controller; the
//! hook never switches processes (that waits for the way back to ring 3), so a switch never
//! leaves the controller waiting.

use pic8259::ChainedPics;
use spin::Mutex;

use super::trap::IRQ_BASE;

/// The PIT's line.
pub const TIMER_IRQ: u8 = 0;
/// The PS/2 keyboard's line.
pub const KEYBOARD_IRQ: u8 = 1;
const CASCADE_IRQ: u8 = 2;
/// COM2's line.
pub const COM2_IRQ: u8 = 3;
/// COM1's line.
pub const COM1_IRQ: u8 = 4;
const PRIMARY_SPURIOUS_IRQ: u8 = 7;
const SECONDARY_SPURIOUS_IRQ: u8 = 15;

// SAFETY: 32..48 are free vectors (the exceptions end at 31), and the offsets are 8 apart.
static PICS: Mutex<ChainedPics> = Mutex::new(unsafe { ChainedPics::new(IRQ_BASE, IRQ_BASE + 8) });

/// Remaps both controllers and unmasks the timer and the cascade; a device's line is
/// unmasked when its driver binds it.
pub fn init() {
    let mut pics = PICS.lock();
    let unmasked = (1u8 << TIMER_IRQ) | (1 << CASCADE_IRQ);
    // SAFETY: the IDT has handlers for all sixteen vectors before interrupts are enabled.
    unsafe {
        pics.initialize();
        pics.write_masks(!unmasked, 0xff);
    }
}

/// Masks `line` at the interrupt controller: it raises nothing until [`unmask_line`].
pub fn mask_line(line: u8) {
    set_line_masked(line, true);
}

/// Unmasks `line` at the interrupt controller.
pub fn unmask_line(line: u8) {
    set_line_masked(line, false);
}

fn set_line_masked(line: u8, masked: bool) {
    if line >= 16 || line == CASCADE_IRQ {
        return;
    }
    let mut pics = PICS.lock();
    // SAFETY: reading and writing the mask registers changes only which lines interrupt;
    // every vector has a handler.
    unsafe {
        let [mut primary, mut secondary] = pics.read_masks();
        let (mask, bit) = if line < 8 { (&mut primary, line) } else { (&mut secondary, line - 8) };
        if masked {
            *mask |= 1 << bit;
        } else {
            *mask &= !(1 << bit);
        }
        pics.write_masks(primary, secondary);
    }
}

fn end_of_interrupt(irq: u8) {
    // SAFETY: `irq` is the line being handled, so acknowledging it is correct.
    unsafe { PICS.lock().notify_end_of_interrupt(IRQ_BASE + irq) };
}

/// Handles hardware interrupt line `irq`: the kernel's device hook, then the acknowledgement.
pub(super) fn handle_interrupt(irq: u8) {
    match irq {
        // A spurious interrupt from the primary controller must not be acknowledged; one from
        // the secondary is acknowledged on the primary only (the cascade line did fire).
        PRIMARY_SPURIOUS_IRQ => {}
        SECONDARY_SPURIOUS_IRQ => end_of_interrupt(CASCADE_IRQ),
        line => {
            (super::hooks::hooks().device_interrupt)(line);
            end_of_interrupt(line);
        }
    }
}

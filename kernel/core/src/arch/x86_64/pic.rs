//! The two 8259 programmable interrupt controllers, remapped to vectors 32..48.
//!
//! They deliver device interrupts only on a machine without an IOAPIC; otherwise they are
//! remapped (so a spurious interrupt lands on a known vector) and every line is masked.
//! [`super::irq`] decides which controller serves and is what the rest of the kernel uses.

use pic8259::ChainedPics;
use spin::Mutex;

use super::trap::IRQ_BASE;

/// The line the secondary controller is chained to.
pub(super) const CASCADE_IRQ: u8 = 2;

// SAFETY: 32..48 are free vectors (the exceptions end at 31), and the offsets are 8 apart.
static PICS: Mutex<ChainedPics> = Mutex::new(unsafe { ChainedPics::new(IRQ_BASE, IRQ_BASE + 8) });

/// Remaps both controllers and masks every line but the cascade (so that unmasking a line of
/// the secondary controller is enough to let it through).
pub(super) fn init() {
    let mut pics = PICS.lock();
    // SAFETY: the IDT has handlers for all sixteen vectors before interrupts are enabled.
    unsafe {
        pics.initialize();
        pics.write_masks(!(1u8 << CASCADE_IRQ), 0xff);
    }
}

/// Masks every line, the cascade too: the IOAPIC has taken over.
pub(super) fn mask_all() {
    // SAFETY: masking lines only stops interrupts from arriving.
    unsafe { PICS.lock().write_masks(0xff, 0xff) };
}

/// Masks (`masked`) or unmasks line `irq` (0..16).
pub(super) fn set_masked(irq: u8, masked: bool) {
    let mut pics = PICS.lock();
    // SAFETY: reading and writing the mask registers has no other effect; every vector a
    // line may raise has a handler.
    unsafe {
        let mut masks = pics.read_masks();
        let (chip, bit) = (usize::from(irq / 8), irq % 8);
        if masked {
            masks[chip] |= 1 << bit;
        } else {
            masks[chip] &= !(1 << bit);
        }
        pics.write_masks(masks[0], masks[1]);
    }
}

/// Acknowledges line `irq`.
pub(super) fn end_of_interrupt(irq: u8) {
    // SAFETY: `irq` is the line being handled, so acknowledging it is correct.
    unsafe { PICS.lock().notify_end_of_interrupt(IRQ_BASE + irq) };
}

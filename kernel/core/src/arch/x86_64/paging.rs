//! The page-table root register (CR3).

use ::x86_64::registers::control::{Cr3, Cr3Flags};
use ::x86_64::structures::paging::PhysFrame;

/// The physical frame of the active top-level page table.
pub fn active_root() -> PhysFrame {
    Cr3::read().0
}

/// Whether `root` is the active top-level page table: [`active_root`] without building a
/// frame, for the user-copy checks.
#[inline]
pub fn is_active_root(root: PhysFrame) -> bool {
    let cr3: u64;
    // SAFETY: reading CR3 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags)) };
    cr3 & ROOT_ADDRESS_BITS == root.start_address().as_u64()
}

/// The bits of CR3 that hold the root's physical address (the rest are flags and the PCID).
const ROOT_ADDRESS_BITS: u64 = 0x000f_ffff_ffff_f000;

/// Makes `root` the active top-level page table (a CR3 write, which also flushes every
/// non-global TLB entry), and records it for TLB shootdowns.
///
/// # Safety
/// `root` must hold a valid top-level page table that maps the kernel (the upper half) the
/// same way the current one does, so the code and stack in use stay mapped.
pub unsafe fn switch_root(root: PhysFrame) {
    if active_root() != root {
        super::tlb::note_root(root);
        // SAFETY: guaranteed by the caller.
        unsafe { Cr3::write(root, Cr3Flags::empty()) };
    }
}

/// Reloads CR3 with the active root, flushing every non-global translation.
///
/// # Safety
/// The active root must still map the running code and stack.
pub unsafe fn reload_root() {
    let (root, flags) = Cr3::read();
    super::tlb::note_root(root);
    // SAFETY: the same root, which the caller guarantees is still valid.
    unsafe { Cr3::write(root, flags) };
}

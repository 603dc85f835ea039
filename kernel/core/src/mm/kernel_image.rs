//! The kernel's own ELF file, as the bootloader left it in memory: backtraces read the
//! kernel's symbol table from it.
//!
//! The bootloader reports the file's physical range in the boot information and marks that
//! memory as its own, not usable, so the frame allocator (which hands out only usable
//! memory) never reuses it and nothing writes to it; it stays readable through the
//! physical-memory map for as long as the kernel runs.

use ::x86_64::PhysAddr;
use bootloader_api::BootInfo;
use bootloader_api::info::MemoryRegionKind;

use super::physical_map::phys_to_virt;

/// The kernel's ELF file, or `None` if the boot information does not describe one that
/// stays reserved.
pub fn file(boot_info: &BootInfo) -> Option<&'static [u8]> {
    let start = boot_info.kernel_addr;
    let length = boot_info.kernel_len;
    let end = start.checked_add(length)?;
    let reserved = boot_info
        .memory_regions
        .iter()
        .all(|region| region.kind != MemoryRegionKind::Usable || region.end <= start || end <= region.start);
    if length == 0 || !reserved {
        return None;
    }
    let bytes = phys_to_virt(PhysAddr::try_new(start).ok()?).as_ptr::<u8>();
    // SAFETY: the range is memory the bootloader reserved for the kernel file (checked above:
    // no usable region overlaps it, so the frame allocator never hands it out and nothing
    // writes to it), mapped through the physical-memory offset for the kernel's lifetime.
    Some(unsafe { core::slice::from_raw_parts(bytes, usize::try_from(length).ok()?) })
}

//! The firmware's ACPI tables: what the machine has, read once at boot with the `acpi` crate.
//!
//! Today the kernel takes the HPET from them (the clock that cannot lose time). The tables
//! sit in ordinary RAM below 4 GiB, which the bootloader's physical-memory map covers, so
//! "mapping" a table is computing its address in that map.

use core::ptr::NonNull;

use ::acpi::{AcpiHandler, AcpiTables, HpetInfo, PhysicalMapping};

/// Reads ACPI tables through the physical-memory map.
#[derive(Clone, Copy, Debug)]
struct PhysicalMapHandler;

impl AcpiHandler for PhysicalMapHandler {
    unsafe fn map_physical_region<T>(&self, physical_address: usize, size: usize) -> PhysicalMapping<Self, T> {
        let address = abi::memory::PHYSICAL_MAP_OFFSET as usize + physical_address;
        let pointer = NonNull::new(address as *mut T).expect("the physical-memory map is in the upper half");
        // SAFETY: the bootloader maps all physical memory (at least the first 4 GiB, where the
        // firmware keeps the tables) at `PHYSICAL_MAP_OFFSET`, so `pointer` reaches the
        // `size` bytes the caller asked for; nothing is mapped, so nothing needs unmapping.
        unsafe { PhysicalMapping::new(physical_address, pointer, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// The HPET, as the tables describe it. Only [`discover`] makes one, so its address is the
/// firmware's word, which [`super::hpet::start`] relies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HpetDescription {
    base: u64,
}

impl HpetDescription {
    /// Physical address of its register block.
    pub fn base(&self) -> u64 {
        self.base
    }
}

/// What the kernel wants to know about the machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct Platform {
    /// The HPET, if the machine has one.
    pub hpet: Option<HpetDescription>,
}

/// Reads the tables the RSDP at physical address `rsdp` leads to. Missing or malformed
/// tables give an empty description, never a panic.
pub fn discover(rsdp: u64) -> Platform {
    // SAFETY: `rsdp` is the RSDP address the bootloader found (BIOS area scan or UEFI
    // configuration table); the handler reaches it through the physical-memory map.
    let Ok(tables) = (unsafe { AcpiTables::from_rsdp(PhysicalMapHandler, rsdp as usize) }) else {
        return Platform::default();
    };
    let hpet = HpetInfo::new(&tables).ok().map(|info| HpetDescription { base: info.base_address as u64 });
    Platform { hpet }
}

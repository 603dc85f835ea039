//! The firmware's ACPI tables: what the machine has, read once at boot with the `acpi` crate.
//!
//! The kernel takes the HPET from them (the clock that cannot lose time) and, from the MADT,
//! the processors (their local APIC ids), the local APIC's and IOAPIC's addresses and how ISA
//! interrupt lines reach the IOAPIC. The tables sit in ordinary RAM below 4 GiB, which the
//! bootloader's physical-memory map covers, so "mapping" a table is computing its address in
//! that map.

use alloc::vec::Vec;
use core::ptr::NonNull;

use ::acpi::platform::interrupt::{InterruptModel, Polarity, TriggerMode};
use ::acpi::platform::ProcessorState;
use ::acpi::{AcpiHandler, AcpiTables, HpetInfo, PhysicalMapping, PlatformInfo};

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

/// How an ISA interrupt line reaches the IOAPIC: its input (global system interrupt) and
/// whether it is active-low or level-triggered, when the MADT overrides the ISA defaults
/// (edge-triggered, active-high, input = line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaRoute {
    /// The ISA line.
    pub line: u8,
    /// The global system interrupt it arrives on.
    pub gsi: u32,
    /// Active-low instead of active-high.
    pub active_low: bool,
    /// Level-triggered instead of edge-triggered.
    pub level_triggered: bool,
}

/// The first IOAPIC the MADT lists (the one QEMU and ordinary PCs route ISA lines to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApicDescription {
    /// Physical address of its register window.
    pub base: u64,
    /// The first global system interrupt its inputs serve.
    pub gsi_base: u32,
}

/// The interrupt hardware and processors the MADT describes.
#[derive(Clone, Debug, Default)]
pub struct ApicDescription {
    /// Physical address of every CPU's local APIC registers (in xAPIC mode).
    pub local_apic_base: u64,
    /// The boot processor's local APIC id, then every other usable processor's, in the
    /// order the MADT lists them (the order to start them in).
    pub processors: Vec<u32>,
    /// The IOAPIC, if there is one.
    pub io_apic: Option<IoApicDescription>,
    /// ISA lines whose routing differs from the defaults.
    pub isa_overrides: Vec<IsaRoute>,
}

impl ApicDescription {
    /// How ISA `line` reaches the IOAPIC.
    pub fn isa_route(&self, line: u8) -> IsaRoute {
        self.isa_overrides.iter().copied().find(|route| route.line == line).unwrap_or(IsaRoute {
            line,
            gsi: u32::from(line),
            active_low: false,
            level_triggered: false,
        })
    }
}

/// What the kernel wants to know about the machine.
#[derive(Clone, Debug, Default)]
pub struct Platform {
    /// The HPET, if the machine has one.
    pub hpet: Option<HpetDescription>,
    /// The APIC model and the processors, if the MADT describes them.
    pub apic: Option<ApicDescription>,
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
    Platform { hpet, apic: describe_apic(&tables) }
}

/// The MADT's processors and interrupt controllers, if it has an APIC model.
fn describe_apic(tables: &AcpiTables<PhysicalMapHandler>) -> Option<ApicDescription> {
    let platform = PlatformInfo::new(tables).ok()?;
    let InterruptModel::Apic(apic) = platform.interrupt_model else { return None };
    let processors = platform.processor_info.map_or_else(Vec::new, |info| {
        let others = info.application_processors.iter().filter(|processor| processor.state != ProcessorState::Disabled);
        core::iter::once(info.boot_processor.local_apic_id)
            .chain(others.map(|processor| processor.local_apic_id))
            .collect()
    });
    let io_apic = apic.io_apics.first().map(|io_apic| IoApicDescription {
        base: u64::from(io_apic.address),
        gsi_base: io_apic.global_system_interrupt_base,
    });
    let isa_overrides = apic
        .interrupt_source_overrides
        .iter()
        .map(|source| IsaRoute {
            line: source.isa_source,
            gsi: source.global_system_interrupt,
            active_low: source.polarity == Polarity::ActiveLow,
            level_triggered: source.trigger_mode == TriggerMode::Level,
        })
        .collect();
    Some(ApicDescription { local_apic_base: apic.local_apic_address, processors, io_apic, isa_overrides })
}

//! x86_64 support: the CPU's tables and entry paths, and the legacy PC devices reached by
//! port I/O.
//!
//! - [`cpu`]: protection features (NX, WP, SMEP, SMAP, UMIP), per-CPU data behind `GS`,
//!   interrupt masking and halting, user-memory access windows (`stac`/`clac`).
//! - [`gdt`]: segments in the order `sysret` needs, each CPU's TSS with `RSP0`, the
//!   interrupt stacks and the I/O permission bitmap.
//! - [`kernel_lock`]: the big kernel lock, taken on every entry.
//! - [`smp`]: starting the other CPUs (INIT-SIPI-SIPI and the real-mode trampoline), CPU
//!   numbers and APIC ids, reschedule IPIs, stopping the others on a panic.
//! - [`apic`] (each CPU's local APIC: timer, IPIs), [`ioapic`] (device lines to CPUs),
//!   [`irq`] (masking and acknowledging device lines, IOAPIC or 8259s).
//! - [`tlb`]: which CPU has which address space loaded, and TLB shootdowns.
//! - [`trap`]: the trap frame, one entry stub per vector, the IDT and the dispatcher.
//! - [`syscall_entry`]: the `syscall` instruction's MSRs and its entry stub.
//! - [`hooks`]: what the layers above install to answer syscalls, faults and interrupts.
//! - [`context`]: kernel-stack switching between processes, with [`user_state`] (the x87,
//!   SSE and AVX registers and the FS and GS bases each context keeps).
//! - [`paging`]: CR3, TLB and the boot page table.
//! - [`backtrace`]: walking the frame-pointer chain of the current kernel stack.
//! - Devices: [`serial`] (COM1), [`pic`] (8259 pair), [`pit`] (a polled delay), [`hpet`] (the clock),
//!   [`ps2`] (keyboard data port), [`fw_cfg`] (QEMU's configuration files), [`qemu`]
//!   (`isa-debug-exit`); [`acpi`] reads the firmware's description of the machine.
pub mod acpi;
pub mod apic;
pub mod backtrace;
pub mod context;
pub mod cpu;
pub mod fw_cfg;
pub mod gdt;
pub mod hpet;
pub mod hooks;
pub mod ioapic;
pub mod irq;
pub mod kernel_lock;
pub mod paging;
pub mod pic;
pub mod pit;
pub mod ps2;
pub mod qemu;
pub mod serial;
pub mod smp;
pub mod syscall_entry;
pub mod tlb;
pub mod trap;
pub mod user_state;

/// The interrupt controller's per-line masking, which device drivers' `Irq` objects use (see
/// [`irq`]).
pub use irq::{mask_line, unmask_line};

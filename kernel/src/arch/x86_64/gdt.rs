//! The global descriptor table and the task-state segment.
//!
//! Order of the GDT, fixed by `syscall`/`sysret` (see `STAR` in [`super::syscall_entry`]):
//! null, kernel code `0x08`, kernel data `0x10`, user data `0x1b`, user code `0x23`, TSS
//! `0x28`. The TSS carries `RSP0`, the stack the CPU loads on every entry from ring 3
//! (rewritten on each process switch), and the interrupt stack used for double faults, so a
//! kernel stack overflow still reaches a working handler.

use core::cell::UnsafeCell;

use ::x86_64::VirtAddr;
use ::x86_64::instructions::segmentation::{CS, DS, ES, FS, GS, SS, Segment};
use ::x86_64::instructions::tables::load_tss;
use ::x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use ::x86_64::structures::tss::TaskStateSegment;
use spin::Once;

/// Interrupt-stack-table slot of the double-fault stack.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;
const DOUBLE_FAULT_STACK_SIZE: usize = 5 * 4096;

/// The selectors of every segment Enigma uses.
#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    /// Ring-0 code.
    pub kernel_code: SegmentSelector,
    /// Ring-0 data (and stack).
    pub kernel_data: SegmentSelector,
    /// Ring-3 data (and stack), RPL 3.
    pub user_data: SegmentSelector,
    /// Ring-3 64-bit code, RPL 3.
    pub user_code: SegmentSelector,
    /// The TSS.
    pub tss: SegmentSelector,
}

#[repr(C, align(16))]
struct InterruptStack(UnsafeCell<[u8; DOUBLE_FAULT_STACK_SIZE]>);

// SAFETY: only the CPU touches the stack's contents, when it delivers a double fault.
unsafe impl Sync for InterruptStack {}

static DOUBLE_FAULT_STACK: InterruptStack = InterruptStack(UnsafeCell::new([0; DOUBLE_FAULT_STACK_SIZE]));

struct TssCell(UnsafeCell<TaskStateSegment>);

// SAFETY: Enigma runs on one CPU, and the kernel writes the TSS only with interrupts masked
// (process switches and boot); the CPU reads it on privilege changes.
unsafe impl Sync for TssCell {}

static TSS: TssCell = TssCell(UnsafeCell::new(TaskStateSegment::new()));

static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// Builds and loads the GDT and TSS, and reloads every segment register.
pub fn init() {
    let stack_end = VirtAddr::from_ptr(DOUBLE_FAULT_STACK.0.get()) + DOUBLE_FAULT_STACK_SIZE as u64;
    // SAFETY: the TSS is not loaded yet, so nothing else reads it while it is written.
    unsafe { (*TSS.0.get()).interrupt_stack_table[usize::from(DOUBLE_FAULT_IST_INDEX)] = stack_end };

    let (gdt, selectors) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        // SAFETY: the TSS is a static, so it outlives the GDT, and it is only modified
        // through `set_privilege_stack` with interrupts masked.
        let tss = gdt.append(unsafe { Descriptor::tss_segment_unchecked(TSS.0.get()) });
        (gdt, Selectors { kernel_code, kernel_data, user_data, user_code, tss })
    });
    gdt.load();
    // SAFETY: the selectors come from the GDT just loaded and describe flat 64-bit segments;
    // FS and GS are loaded with the null selector before their bases are programmed
    // (see `cpu::init_per_cpu`), which ring 0 allows in 64-bit mode.
    unsafe {
        CS::set_reg(selectors.kernel_code);
        SS::set_reg(selectors.kernel_data);
        DS::set_reg(selectors.kernel_data);
        ES::set_reg(selectors.kernel_data);
        FS::set_reg(SegmentSelector(0));
        GS::set_reg(SegmentSelector(0));
        load_tss(selectors.tss);
    }
}

/// The selectors. Panics if called before [`init`], which is a boot-order bug.
pub fn selectors() -> &'static Selectors {
    &GDT.get().expect("GDT used before gdt::init").1
}

/// Sets TSS.RSP0, the stack the CPU switches to when ring 3 is interrupted.
pub(super) fn set_privilege_stack(top: VirtAddr) {
    // SAFETY: one CPU, interrupts masked by every caller (process switches), so no entry
    // from ring 3 reads RSP0 while it changes.
    unsafe { (*TSS.0.get()).privilege_stack_table[0] = top };
}

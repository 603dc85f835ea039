//! The global descriptor table and the task-state segment.
//!
//! Order of the GDT, fixed by `syscall`/`sysret` (see `STAR` in [`super::syscall_entry`]):
//! null, kernel code `0x08`, kernel data `0x10`, user data `0x1b`, user code `0x23`, TSS
//! `0x28`. The TSS carries `RSP0`, the stack the CPU loads on every entry from ring 3
//! (rewritten on each process switch), and the interrupt stack table: one stack each for the
//! debug exception, NMI, double fault and machine check, the traps that can arrive where the
//! current stack cannot be trusted (see [`super::trap`]).
//!
//! The TSS is followed by an I/O permission bitmap covering ports `0..0x400` (the ISA range;
//! higher ports lie past its end and are always refused in ring 3). It holds the ranges the
//! running process enabled (`ioports_enable`), and only those: [`set_io_permissions`] closes
//! the previous process's ranges and opens the next one's on a switch, so processes without
//! ports cost nothing but a comparison.
//!
//! Every CPU has its own TSS (its own `RSP0`, interrupt stacks and I/O bitmap, which holds the
//! ranges of the process that CPU runs), and so its own GDT, whose TSS descriptor names it;
//! the selectors are the same on every CPU. At boot the boot processor's interrupt stacks are
//! small static arrays; once memory management is up, the boot code replaces them with
//! guarded stacks ([`set_interrupt_stack`]), so an overflow of one of them faults instead of
//! overwriting what lies below. Other CPUs get guarded stacks before they start.

use core::cell::UnsafeCell;

use ::x86_64::VirtAddr;
use ::x86_64::instructions::segmentation::{CS, DS, ES, FS, GS, SS, Segment};
use ::x86_64::instructions::tables::load_tss;
use ::x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use ::x86_64::structures::tss::TaskStateSegment;
use spin::Once;

use super::cpu::MAX_CPUS;

/// The traps that run on an interrupt stack of their own, and their IST slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptStack {
    /// Double fault.
    DoubleFault,
    /// Non-maskable interrupt.
    Nmi,
    /// Machine check.
    MachineCheck,
    /// Debug exception.
    Debug,
}

impl InterruptStack {
    /// Every interrupt stack.
    pub const ALL: [Self; 4] = [Self::DoubleFault, Self::Nmi, Self::MachineCheck, Self::Debug];

    /// The IST slot (0-based, as the `x86_64` crate counts them).
    pub const fn index(self) -> u16 {
        match self {
            Self::DoubleFault => 0,
            Self::Nmi => 1,
            Self::MachineCheck => 2,
            Self::Debug => 3,
        }
    }
}

/// Size of each boot-time interrupt stack.
const BOOT_STACK_SIZE: usize = 4 * 4096;

#[repr(C, align(16))]
struct BootStacks(UnsafeCell<[[u8; BOOT_STACK_SIZE]; InterruptStack::ALL.len()]>);

// SAFETY: only the CPU touches the stacks' contents, when it delivers one of the traps above.
unsafe impl Sync for BootStacks {}

static BOOT_STACKS: BootStacks = BootStacks(UnsafeCell::new([[0; BOOT_STACK_SIZE]; InterruptStack::ALL.len()]));

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

/// Ports the I/O permission bitmap covers: `0..IO_PORTS_COVERED`.
pub const IO_PORTS_COVERED: u16 = 0x400;
/// Bitmap bytes, plus the terminating `0xff` the CPU may read past the last one.
const IO_BITMAP_BYTES: usize = IO_PORTS_COVERED as usize / 8 + 1;

/// A range of I/O ports a process may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// How many ports (0: an unused entry).
    pub count: u16,
}

/// The ranges one process has enabled.
pub type PortRanges = [PortRange; abi::IO_RANGES_MAX];

/// The TSS and its I/O bitmap, which must follow it in memory.
#[repr(C)]
struct TssWithBitmap {
    tss: TaskStateSegment,
    /// A set bit refuses its port.
    io_bitmap: [u8; IO_BITMAP_BYTES],
    /// What the bitmap opens now (kept beside it, not part of what the CPU reads).
    open: PortRanges,
}

struct TssCell(UnsafeCell<TssWithBitmap>);

// SAFETY: a CPU's TSS is written by that CPU only, with interrupts masked (process switches,
// `ioports_enable` and its own start-up), or by the boot processor before that CPU starts;
// the CPU reads it on privilege changes, IST deliveries and ring-3 port accesses.
unsafe impl Sync for TssCell {}

static TSS: [TssCell; MAX_CPUS] = [const {
    TssCell(UnsafeCell::new(TssWithBitmap {
        tss: {
            let mut tss = TaskStateSegment::new();
            tss.iomap_base = core::mem::size_of::<TaskStateSegment>() as u16;
            tss
        },
        io_bitmap: [0xff; IO_BITMAP_BYTES],
        open: [PortRange { first: 0, count: 0 }; abi::IO_RANGES_MAX],
    }))
}; MAX_CPUS];

const _: () = assert!(core::mem::size_of::<PortRanges>() == 16, "port ranges compare as two words");

/// `ranges` as two words: every switch compares two sets of ranges, and two word compares
/// cost a quarter of what eight field compares do.
fn as_words(ranges: &PortRanges) -> [u64; 2] {
    // SAFETY: `PortRanges` is four `PortRange`s of two `u16`s each, 16 bytes (checked above)
    // without padding, so every byte is initialised, and any 16 bytes are two valid `u64`s.
    unsafe { core::mem::transmute::<PortRanges, [u64; 2]>(*ranges) }
}

/// CPU `cpu`'s TSS.
fn tss(cpu: usize) -> *mut TaskStateSegment {
    // SAFETY: a pointer to a field of the static, no reference is made.
    unsafe { &raw mut (*TSS[cpu % MAX_CPUS].0.get()).tss }
}

/// Makes this CPU's I/O bitmap allow exactly the ports in `ranges` (those of the process it
/// runs next), closing the ranges it allowed before. Interrupts must be masked (a switch or
/// a syscall).
#[inline]
pub fn set_io_permissions(ranges: &PortRanges) {
    let cell = TSS[super::cpu::index()].0.get();
    // SAFETY: only this CPU touches `open`, with interrupts masked, so nothing writes it
    // meanwhile.
    let open = unsafe { &(*cell).open };
    if as_words(open) != as_words(ranges) {
        change_io_permissions(ranges);
    }
}

/// The rare part of [`set_io_permissions`]: rewriting the bitmap.
#[cold]
#[inline(never)]
fn change_io_permissions(ranges: &PortRanges) {
    let cell = TSS[super::cpu::index()].0.get();
    // SAFETY: only this CPU touches its bitmap and `open`, with interrupts masked, so nothing
    // else reads or writes them meanwhile (the CPU reads the bitmap only for ring-3 port
    // accesses).
    let (bitmap, open) = unsafe { (&mut (*cell).io_bitmap, &mut (*cell).open) };
    for (range, allow) in open.iter().map(|range| (range, false)).chain(ranges.iter().map(|range| (range, true))) {
        for port in range.first..range.first.saturating_add(range.count).min(IO_PORTS_COVERED) {
            let (byte, bit) = (usize::from(port / 8), port % 8);
            if allow {
                bitmap[byte] &= !(1 << bit);
            } else {
                bitmap[byte] |= 1 << bit;
            }
        }
    }
    *open = *ranges;
}

static GDT: [Once<(GlobalDescriptorTable, Selectors)>; MAX_CPUS] = [const { Once::new() }; MAX_CPUS];

/// Builds and loads CPU `cpu`'s GDT and TSS, and reloads every segment register. The boot
/// processor (`cpu` 0) starts with the static interrupt stacks; every other CPU's were set
/// with [`set_interrupt_stack`] before it started.
pub fn init(cpu: usize) {
    if cpu == 0 {
        let stacks = BOOT_STACKS.0.get().cast::<[u8; BOOT_STACK_SIZE]>();
        for (slot, stack) in InterruptStack::ALL.into_iter().enumerate() {
            // SAFETY: `slot` is within the array of `ALL.len()` stacks, so the pointer
            // arithmetic stays inside `BOOT_STACKS`.
            let bottom = VirtAddr::from_ptr(unsafe { stacks.add(slot) });
            // SAFETY: the TSS is not loaded yet, so nothing else reads it while it is written.
            unsafe { (*tss(0)).interrupt_stack_table[usize::from(stack.index())] = bottom + BOOT_STACK_SIZE as u64 };
        }
    }

    let (gdt, selectors) = GDT[cpu].call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        // The static outlives the GDT and is modified only with interrupts masked.
        // SAFETY: the references live only for this call, which reads `iomap_base` and the
        // bitmap's place while nothing writes them (this CPU's start, interrupts masked).
        let (tss, bitmap) = unsafe { (&*tss(cpu), &(*TSS[cpu].0.get()).io_bitmap) };
        let descriptor = Descriptor::tss_segment_with_iomap(tss, bitmap).expect("the I/O bitmap follows the TSS");
        let tss = gdt.append(descriptor);
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

/// The selectors (the same on every CPU). Panics if called before [`init`], which is a
/// boot-order bug.
pub fn selectors() -> &'static Selectors {
    &GDT[0].get().expect("GDT used before gdt::init").1
}

/// Sets CPU `cpu`'s TSS.RSP0, the stack it switches to when ring 3 is interrupted.
pub(super) fn set_privilege_stack(cpu: usize, top: VirtAddr) {
    // SAFETY: only CPU `cpu` calls this for its own TSS (process switches), with interrupts
    // masked, so no entry from ring 3 on that CPU reads RSP0 while it changes.
    unsafe { (*tss(cpu)).privilege_stack_table[0] = top };
}

/// The top of CPU `cpu`'s interrupt stack for `which`.
pub fn interrupt_stack_top(cpu: usize, which: InterruptStack) -> VirtAddr {
    // SAFETY: a plain read of a slot the kernel writes only before that CPU starts, or on it
    // with interrupts masked.
    unsafe { (*tss(cpu)).interrupt_stack_table[usize::from(which.index())] }
}

/// Makes the stack whose top is `top` CPU `cpu`'s interrupt stack for `which`.
///
/// # Safety
/// The stack below `top` must be mapped, writable, 16-byte aligned at the top, used for
/// nothing else, and stay so forever; CPU `cpu` must be the caller (with interrupts masked)
/// or not started yet.
pub unsafe fn set_interrupt_stack(cpu: usize, which: InterruptStack, top: VirtAddr) {
    // SAFETY: the caller is CPU `cpu` with interrupts masked, or that CPU does not run, so no
    // IST delivery reads the slot while it changes (an NMI could, which is why the old stack
    // stays valid too: it is static).
    unsafe { (*tss(cpu)).interrupt_stack_table[usize::from(which.index())] = top };
}

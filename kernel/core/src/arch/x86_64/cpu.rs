//! CPU features, per-CPU data, interrupt masking and the user-memory access window.
//!
//! Every CPU has a per-CPU block ([`MAX_CPUS`] of them, one static array). A CPU's block sits
//! behind `GS` while the kernel runs (the `syscall` stub finds the kernel stack there, and
//! [`index`] the CPU's number), and behind `KERNEL_GS_BASE` while user code runs; every entry
//! from and exit to ring 3 swaps the two with `swapgs`. CPUs are numbered from 0 (the boot
//! processor) in the order the MADT lists them; only arch code knows their APIC ids.
//!
//! The per-CPU block also measures how long the CPU runs with interrupts masked: every place
//! that masks them (an entry from code that ran with them on, a `cli`) starts a stretch, and
//! every place that enables them (the return to ring 3, a preemption point's `sti`, the idle
//! halt) ends one; the longest is kept.

use core::arch::asm;
use core::arch::x86_64::{__cpuid, __cpuid_count};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use ::x86_64::VirtAddr;
use ::x86_64::instructions::interrupts;
use ::x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use ::x86_64::registers::model_specific::{Efer, EferFlags, GsBase, KernelGsBase};

/// Whether SMAP is on. The entry stubs read it to decide whether to run `clac`, and the
/// user-access window whether to run `stac`/`clac` (both fault on CPUs without SMAP).
pub(super) static SMAP_ACTIVE: AtomicBool = AtomicBool::new(false);

/// The hardware protections that are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Protections {
    /// No-execute pages (EFER.NXE).
    pub nx: bool,
    /// Ring 0 honours read-only pages (CR0.WP).
    pub write_protect: bool,
    /// Ring 0 cannot execute user pages (CR4.SMEP).
    pub smep: bool,
    /// Ring 0 cannot touch user pages outside a `stac` window (CR4.SMAP).
    pub smap: bool,
    /// Ring 3 cannot run `sgdt`, `sidt`, `sldt`, `smsw`, `str` (CR4.UMIP).
    pub umip: bool,
}

impl Protections {
    /// The protections as `abi::PROTECTION_*` bits.
    pub fn bits(self) -> u32 {
        let mut bits = 0;
        for (on, bit) in [
            (self.nx, abi::PROTECTION_NX),
            (self.write_protect, abi::PROTECTION_WP),
            (self.smep, abi::PROTECTION_SMEP),
            (self.smap, abi::PROTECTION_SMAP),
            (self.umip, abi::PROTECTION_UMIP),
        ] {
            if on {
                bits |= bit;
            }
        }
        bits
    }
}

static PROTECTIONS: AtomicU64 = AtomicU64::new(0);

/// Turns on every protection the CPU offers, and the x87, SSE and AVX registers for ring 3
/// (see [`super::user_state`]), and returns what is on. The bootloader hands over with only PAE (and NX for its own mappings) set, so
/// nothing else can be assumed.
pub fn enable_protections() -> Protections {
    let max_leaf = __cpuid(0).eax;
    let leaf7 = (max_leaf >= 7).then(|| __cpuid_count(7, 0));
    // The extended leaf 0x8000_0001 exists on every x86_64 CPU.
    let nx_supported = __cpuid(0x8000_0001).edx & (1 << 20) != 0;
    let smep = leaf7.is_some_and(|leaf| leaf.ebx & (1 << 7) != 0);
    let smap = leaf7.is_some_and(|leaf| leaf.ebx & (1 << 20) != 0);
    let umip = leaf7.is_some_and(|leaf| leaf.ecx & (1 << 2) != 0);

    if nx_supported {
        // SAFETY: enabling NXE only makes the NO_EXECUTE bit meaningful; the kernel's own
        // mappings already carry correct NX bits from the bootloader.
        unsafe { Efer::update(|flags| flags.insert(EferFlags::NO_EXECUTE_ENABLE)) };
    }
    // SAFETY: write protection makes ring 0 honour read-only pages; the kernel never writes
    // through a read-only mapping on purpose.
    unsafe { Cr0::update(|flags| flags.insert(Cr0Flags::WRITE_PROTECT)) };
    // Ring 3's x87, SSE and AVX registers, which every switch saves and restores.
    super::user_state::enable();
    let mut cr4 = Cr4Flags::empty();
    if smep {
        cr4 |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION;
    }
    if smap {
        cr4 |= Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION;
    }
    if umip {
        cr4 |= Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION;
    }
    // SAFETY: the kernel never executes user pages, touches user memory only inside
    // `with_user_access`, and never runs the instructions UMIP restricts from ring 3.
    unsafe { Cr4::update(|flags| flags.insert(cr4)) };
    SMAP_ACTIVE.store(smap, Ordering::Relaxed);

    let protections = Protections { nx: nx_supported, write_protect: true, smep, smap, umip };
    PROTECTIONS.store(u64::from(protections.bits()), Ordering::Relaxed);
    protections
}

/// The protections as `abi::PROTECTION_*` bits, as `enable_protections` left them.
pub fn protection_bits() -> u32 {
    PROTECTIONS.load(Ordering::Relaxed) as u32
}

/// The most CPUs Enigma runs on; CPUs past this many in the MADT stay halted.
pub const MAX_CPUS: usize = 8;

/// The per-CPU block. The entry stubs and the hot paths read it through `GS` at the byte
/// offsets below, so the layout is fixed.
#[repr(C, align(64))]
pub(super) struct PerCpu {
    /// Top of the current process's kernel stack (also in TSS.RSP0).
    kernel_stack_top: AtomicU64,
    /// The user stack pointer, parked here by the `syscall` stub while it switches stacks.
    user_stack_scratch: AtomicU64,
    /// A register parked by the debug-exception stub while it moves a frame off its
    /// interrupt stack.
    entry_scratch: AtomicU64,
    /// When interrupts were last masked (the TSC's low 32 bits), see
    /// [`masked_stretch_begins`].
    masked_since: AtomicU32,
    /// The longest stretch with interrupts masked so far, in TSC cycles.
    longest_masked: AtomicU32,
    /// This CPU's number.
    index: AtomicU32,
    /// The pid of the process this CPU runs (0 while idle), see [`current_pid`].
    current_pid: AtomicU32,
    /// Timer interrupts this CPU has taken.
    timer_interrupts: AtomicU64,
    /// Set when the process this CPU runs must look at its state, see [`request_attention`].
    attention: AtomicBool,
    /// Whether this CPU holds the big kernel lock (see [`super::kernel_lock`]).
    holds_kernel_lock: AtomicBool,
    /// Whether the process this CPU runs makes its system calls as messages, see
    /// [`syscalls_as_messages`].
    syscall_mode: AtomicBool,
}

/// Byte offset of `PerCpu::kernel_stack_top`.
pub(super) const PER_CPU_KERNEL_STACK: usize = 0;
/// Byte offset of `PerCpu::user_stack_scratch`.
pub(super) const PER_CPU_USER_STACK: usize = 8;
/// Byte offset of `PerCpu::entry_scratch`.
pub(super) const PER_CPU_ENTRY_SCRATCH: usize = 16;
/// Byte offset of `PerCpu::masked_since`.
const PER_CPU_MASKED_SINCE: usize = 24;
/// Byte offset of `PerCpu::longest_masked`.
const PER_CPU_LONGEST_MASKED: usize = 28;
/// Byte offset of `PerCpu::index`.
const PER_CPU_INDEX: usize = 32;
/// Byte offset of `PerCpu::current_pid`.
const PER_CPU_CURRENT_PID: usize = 36;
/// Byte offset of `PerCpu::attention`.
const PER_CPU_ATTENTION: usize = 48;
/// Byte offset of `PerCpu::holds_kernel_lock`.
const PER_CPU_HOLDS_KERNEL_LOCK: usize = 49;
/// Byte offset of `PerCpu::syscall_mode`.
const PER_CPU_SYSCALL_MODE: usize = 50;

static PER_CPU: [PerCpu; MAX_CPUS] = [const {
    PerCpu {
        kernel_stack_top: AtomicU64::new(0),
        user_stack_scratch: AtomicU64::new(0),
        entry_scratch: AtomicU64::new(0),
        masked_since: AtomicU32::new(0),
        longest_masked: AtomicU32::new(0),
        index: AtomicU32::new(0),
        current_pid: AtomicU32::new(0),
        timer_interrupts: AtomicU64::new(0),
        attention: AtomicBool::new(false),
        holds_kernel_lock: AtomicBool::new(false),
        syscall_mode: AtomicBool::new(false),
    }
}; MAX_CPUS];

const _: () = assert!(
    core::mem::offset_of!(PerCpu, kernel_stack_top) == PER_CPU_KERNEL_STACK
        && core::mem::offset_of!(PerCpu, user_stack_scratch) == PER_CPU_USER_STACK
        && core::mem::offset_of!(PerCpu, entry_scratch) == PER_CPU_ENTRY_SCRATCH
        && core::mem::offset_of!(PerCpu, masked_since) == PER_CPU_MASKED_SINCE
        && core::mem::offset_of!(PerCpu, longest_masked) == PER_CPU_LONGEST_MASKED
        && core::mem::offset_of!(PerCpu, index) == PER_CPU_INDEX
        && core::mem::offset_of!(PerCpu, current_pid) == PER_CPU_CURRENT_PID
        && core::mem::offset_of!(PerCpu, attention) == PER_CPU_ATTENTION
        && core::mem::offset_of!(PerCpu, holds_kernel_lock) == PER_CPU_HOLDS_KERNEL_LOCK
        && core::mem::offset_of!(PerCpu, syscall_mode) == PER_CPU_SYSCALL_MODE
);

/// Points `GS` at CPU `index`'s block. The kernel runs with this `GS` base from now on; user
/// code starts with base 0, swapped in by the first return to ring 3. Each CPU calls it once,
/// for itself. A second call for the same CPU (or a CPU number past [`MAX_CPUS`]) panics:
/// another CPU's `GS` would then point at a live block.
pub fn init_per_cpu(index: usize) {
    static STARTED: [core::sync::atomic::AtomicBool; MAX_CPUS] = [const { core::sync::atomic::AtomicBool::new(false) }; MAX_CPUS];
    assert!(
        index < MAX_CPUS && !STARTED[index].swap(true, Ordering::Relaxed),
        "cpu::init_per_cpu({index}) called twice or past MAX_CPUS"
    );
    let block = &PER_CPU[index];
    block.index.store(index as u32, Ordering::Relaxed);
    GsBase::write(VirtAddr::from_ptr(block));
    KernelGsBase::write(VirtAddr::zero());
}

/// The number of the CPU running this code (0 for the boot processor).
///
/// A process may move to another CPU whenever it switches away, so the answer holds only
/// until the next switch.
#[inline]
pub fn index() -> usize {
    let index: u32;
    // SAFETY: inside the kernel `GS` always points at this CPU's block (`init_per_cpu`, and
    // `swapgs` on every entry from ring 3), whose `index` field is at this offset.
    unsafe { asm!("mov {:e}, gs:[{offset}]", out(reg) index, offset = const PER_CPU_INDEX, options(nostack, preserves_flags, readonly)) };
    index as usize % MAX_CPUS
}

/// This CPU's block.
fn this() -> &'static PerCpu {
    &PER_CPU[index()]
}

/// Makes `top` the stack the CPU switches to on the next entry from ring 3, through both
/// the TSS (interrupts, exceptions, `int 0x80`) and the per-CPU block (`syscall`). The safe
/// way in is `KernelStack::load_for_entries`, which can only name a mapped kernel stack.
///
/// # Safety
/// `top` must be the top of a mapped kernel stack that nothing else runs on, and stay so
/// until another call replaces it; or the top of a page that is never mapped (an entry then
/// double-faults instead of writing anywhere).
#[inline]
pub(crate) unsafe fn set_kernel_stack(top: VirtAddr) {
    let index = index();
    PER_CPU[index].kernel_stack_top.store(top.as_u64(), Ordering::Release);
    super::gdt::set_privilege_stack(index, top);
}

/// The first CPU whose entries from ring 3 land on the stack whose top is `top`, if any.
pub(crate) fn entering_on(top: VirtAddr) -> Option<usize> {
    PER_CPU.iter().position(|block| block.kernel_stack_top.load(Ordering::Acquire) == top.as_u64())
}

/// The pid of the process this CPU runs (0 while idle). The scheduler keeps it in the per-CPU
/// block ([`set_current_pid`]) so that `getpid` and the logs read it with one load.
#[inline]
pub fn current_pid() -> u32 {
    let pid: u32;
    // SAFETY: inside the kernel `GS` always points at this CPU's block, whose `current_pid`
    // field is at this offset.
    unsafe {
        asm!(
            "mov {:e}, gs:[{offset}]",
            out(reg) pid,
            offset = const PER_CPU_CURRENT_PID,
            options(nostack, preserves_flags, readonly)
        )
    };
    pid
}

/// Records whether this CPU holds the big kernel lock (only `kernel_lock` calls this, right
/// after taking it and right before letting it go).
#[inline]
pub(super) fn note_kernel_lock(held: bool) {
    // SAFETY: inside the kernel `GS` always points at this CPU's block, whose
    // `holds_kernel_lock` field is this byte; only this CPU writes it.
    unsafe {
        if held {
            asm!("mov byte ptr gs:[{offset}], 1", offset = const PER_CPU_HOLDS_KERNEL_LOCK, options(nostack, preserves_flags));
        } else {
            asm!("mov byte ptr gs:[{offset}], 0", offset = const PER_CPU_HOLDS_KERNEL_LOCK, options(nostack, preserves_flags));
        }
    }
}

/// Whether this CPU holds the big kernel lock.
#[inline]
pub(super) fn holds_kernel_lock() -> bool {
    let held: u8;
    // SAFETY: as in `note_kernel_lock`; a read.
    unsafe {
        asm!(
            "mov {held}, byte ptr gs:[{offset}]",
            held = out(reg_byte) held,
            offset = const PER_CPU_HOLDS_KERNEL_LOCK,
            options(nostack, preserves_flags, readonly)
        )
    };
    held != 0
}

/// Records the pid of the process this CPU now runs (0: none).
#[inline]
pub fn set_current_pid(pid: u32) {
    // SAFETY: inside the kernel `GS` always points at this CPU's block, whose `current_pid`
    // field is at this offset; only this CPU writes it.
    unsafe {
        asm!(
            "mov dword ptr gs:[{offset}], {pid:e}",
            pid = in(reg) pid,
            offset = const PER_CPU_CURRENT_PID,
            options(nostack, preserves_flags)
        )
    };
}

/// Records whether the process this CPU now runs makes its system calls as messages (the
/// scheduler sets it with [`set_current_pid`]; false: none runs).
#[inline]
pub fn set_syscalls_as_messages(on: bool) {
    // SAFETY: inside the kernel `GS` always points at this CPU's block, whose `syscall_mode`
    // field is at this offset; only this CPU writes it.
    unsafe {
        asm!(
            "mov byte ptr gs:[{offset}], {on}",
            on = in(reg_byte) u8::from(on),
            offset = const PER_CPU_SYSCALL_MODE,
            options(nostack, preserves_flags)
        )
    };
}

/// Whether the process this CPU runs makes its system calls as messages: one load, on every
/// system call.
#[inline]
pub fn syscalls_as_messages() -> bool {
    let on: u8;
    // SAFETY: inside the kernel `GS` always points at this CPU's block, whose `syscall_mode`
    // field is at this offset.
    unsafe {
        asm!(
            "mov {on}, byte ptr gs:[{offset}]",
            on = out(reg_byte) on,
            offset = const PER_CPU_SYSCALL_MODE,
            options(nostack, preserves_flags, readonly)
        )
    };
    on != 0
}

/// Asks the process CPU `cpu` runs to look at its state (its time slice is used up, or it
/// was killed) before it next returns to ring 3 or passes a preemption point.
pub fn request_attention(cpu: usize) {
    if let Some(block) = PER_CPU.get(cpu) {
        block.attention.store(true, Ordering::Release);
    }
}

/// Whether the process this CPU runs was asked to look at its state (see
/// [`request_attention`]).
pub fn attention_requested() -> bool {
    this().attention.load(Ordering::Acquire)
}

/// Takes this CPU's attention request: whether there was one, leaving none. One locked
/// exchange through `GS`, since every return to ring 3 asks.
#[inline]
pub fn take_attention_request() -> bool {
    let mut flag: u8 = 0;
    // SAFETY: inside the kernel `GS` always points at this CPU's block, whose `attention`
    // field (an `AtomicBool`) is at this offset; `xchg` with memory is atomic, so a request
    // that another CPU makes meanwhile is either taken here or stays set.
    unsafe {
        asm!("xchg byte ptr gs:[{offset}], {flag}", flag = inout(reg_byte) flag, offset = const PER_CPU_ATTENTION, options(nostack, preserves_flags))
    };
    flag != 0
}

/// Counts a timer interrupt on this CPU.
pub(super) fn count_timer_interrupt() {
    this().timer_interrupts.fetch_add(1, Ordering::Relaxed);
}

/// Timer interrupts CPU `index` has taken.
pub fn timer_interrupts(index: usize) -> u64 {
    PER_CPU.get(index).map_or(0, |block| block.timer_interrupts.load(Ordering::Relaxed))
}

/// Notes that interrupts were just masked: an entry from code that ran with them enabled
/// (ring 3, the idle halt, a preemption point), or a `cli` after a preemption point. Only
/// the TSC's low 32 bits are kept: they are cheaper on every kernel entry, and a stretch of
/// over 2^32 cycles (a second or more) would be a hang, not a latency.
#[inline]
pub(super) fn masked_stretch_begins() {
    let now = read_timestamp() as u32;
    // SAFETY: inside the kernel `GS` points at this CPU's block, whose `masked_since` field
    // (an `AtomicU32`: an aligned 32-bit store is atomic) is at this offset. One store
    // through `GS`: this is on every kernel entry.
    unsafe {
        asm!("mov dword ptr gs:[{offset}], {now:e}", offset = const PER_CPU_MASKED_SINCE, now = in(reg) now, options(nostack, preserves_flags))
    };
}

/// Notes that interrupts are about to be enabled again, and keeps the longest stretch. Only
/// this CPU writes its stretch fields after boot, so a plain compare and store will do.
#[inline]
pub(super) fn masked_stretch_ends() {
    let now = read_timestamp() as u32;
    // Through `GS` because this is on every return to ring 3; only this CPU writes these
    // fields once boot is over (see [`reset_longest_masked`]).
    // SAFETY: in the kernel `GS` points at this CPU's block, whose aligned `AtomicU32`
    // fields `masked_since` and `longest_masked` are at these offsets.
    unsafe {
        asm!(
            "sub {now:e}, dword ptr gs:[{since}]",
            "cmp {now:e}, dword ptr gs:[{longest}]",
            "jbe 2f",
            "mov dword ptr gs:[{longest}], {now:e}",
            "2:",
            now = inout(reg) now => _,
            since = const PER_CPU_MASKED_SINCE,
            longest = const PER_CPU_LONGEST_MASKED,
            options(nostack),
        )
    };
}

/// The longest stretch any CPU ran with interrupts masked since [`reset_longest_masked`],
/// in TSC cycles.
pub fn longest_masked_cycles() -> u64 {
    PER_CPU.iter().map(|block| u64::from(block.longest_masked.load(Ordering::Relaxed))).max().unwrap_or(0)
}

/// Forgets every CPU's longest masked stretch, and starts every open one now (boot runs
/// masked for long, and the other CPUs wait for the boot processor's lock all through it;
/// measuring starts after it).
pub fn reset_longest_masked() {
    let now = read_timestamp() as u32;
    for block in &PER_CPU {
        block.masked_since.store(now, Ordering::Relaxed);
        block.longest_masked.store(0, Ordering::Relaxed);
    }
}

/// The current stack pointer.
pub fn stack_pointer() -> VirtAddr {
    let rsp: u64;
    // SAFETY: copying RSP into a register has no side effects.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    VirtAddr::new(rsp)
}

/// Runs `f` with interrupts masked, restoring the previous state afterwards.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    interrupts::without_interrupts(f)
}

/// Masks interrupts.
pub fn disable_interrupts() {
    interrupts::disable();
}

/// Whether interrupts are currently unmasked.
pub fn interrupts_enabled() -> bool {
    interrupts::are_enabled()
}

/// Unmasks interrupts and halts in one step (`sti; hlt`), so an interrupt that arrives
/// between the two cannot be missed; masks them again after the wake-up.
pub fn wait_for_interrupt() {
    masked_stretch_ends();
    interrupts::enable_and_hlt();
    interrupts::disable();
    masked_stretch_begins();
}

/// Lets interrupts that are pending be taken, then masks them again: `sti; nop; cli` (the
/// `nop` matters, since `sti` delays interrupts by one instruction).
pub fn take_pending_interrupts() {
    masked_stretch_ends();
    // SAFETY: the caller holds no lock an interrupt handler takes (the kernel's preemption
    // points), so the handlers may run here; the flags end up as they started, masked.
    unsafe { asm!("sti", "nop", "cli", options(nomem, nostack)) };
    masked_stretch_begins();
}

/// Halts forever with interrupts masked: the end of a panic.
pub fn halt_forever() -> ! {
    loop {
        interrupts::disable();
        ::x86_64::instructions::hlt();
    }
}

/// Runs `f` inside a user-memory access window: with SMAP on, ring 0 may touch user pages
/// only between `stac` and `clac`, so the window is opened around the copy alone. The two
/// instructions are written without `nomem`, so the compiler treats them as touching memory
/// and cannot move `f`'s accesses out of the window (with `nomem` it once did, and the copy
/// ran after `clac` and faulted).
pub fn with_user_access<R>(f: impl FnOnce() -> R) -> R {
    let smap = SMAP_ACTIVE.load(Ordering::Relaxed);
    if smap {
        // SAFETY: `stac` only sets RFLAGS.AC; it exists because SMAP is on.
        unsafe { asm!("stac", options(nostack)) };
    }
    let result = f();
    if smap {
        // SAFETY: `clac` only clears RFLAGS.AC, closing the window opened above.
        unsafe { asm!("clac", options(nostack)) };
    }
    result
}

/// Whether the time-stamp counter ticks at a constant rate in every power state (CPUID
/// 0x8000_0007, EDX bit 8), so it can serve as a clock.
pub fn has_invariant_timestamp() -> bool {
    __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// Reads the time-stamp counter. Under QEMU's `-icount shift=0` it counts guest
/// instructions.
pub fn read_timestamp() -> u64 {
    // SAFETY: `rdtsc` has no side effects; CR4.TSD is clear, so it is allowed everywhere.
    unsafe { core::arch::x86_64::_rdtsc() }
}

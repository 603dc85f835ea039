//! The other CPUs: starting them, naming them, and interrupting them.
//!
//! **Start-up.** An application processor starts in real mode at a page below 1 MiB when it
//! receives INIT and then a start-up IPI (INIT-SIPI-SIPI). The boot processor copies the
//! trampoline below into such a page and fills in its parameters: the GDT pointer and far
//! jump target (linear addresses, which depend on the page), a top-level page table that maps
//! the kernel half and identity-maps the first 2 MiB (so the trampoline's own page stays
//! reachable when paging comes on), the stack, the CPU's number and the Rust entry. The
//! trampoline goes straight from real mode to long mode (PAE, `EFER.LME`/`NXE`, then `PE` and
//! `PG` together, then a far jump into a 64-bit code segment) and jumps to [`ap_entry`], which
//! loads the kernel's own table, its GDT and TSS (interrupt stacks with guard pages, made
//! beforehand by the boot processor), its per-CPU block, the IDT, the protections, the
//! `syscall` MSRs, its local APIC and timer, says it is online, and runs the kernel's entry
//! for it (the idle loop). CPUs start one at a time, each with its own parameters.
//!
//! **Naming.** CPUs are numbered in the order the MADT lists them (0 is the boot processor);
//! [`apic_id`] maps a number to what IPIs address.
//!
//! **Stopping.** A panic sends every other CPU an NMI after setting [`stopping`]; their NMI
//! path then halts for good, so nothing runs while the panic is reported.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use ::x86_64::VirtAddr;
use ::x86_64::structures::paging::PhysFrame;

use super::cpu::{self, MAX_CPUS};
use super::trap::RESCHEDULE_VECTOR;
use super::{apic, gdt, syscall_entry, tlb, trap};

/// Each CPU's APIC id.
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Which CPUs run (bit n: CPU n).
static ONLINE: AtomicU32 = AtomicU32::new(0);
/// How many CPUs the firmware lists (at most [`MAX_CPUS`]): the ones that should run.
static LISTED: AtomicU32 = AtomicU32::new(1);
/// Set by a panic before it stops the other CPUs.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether CPU `cpu` runs.
pub fn is_online(cpu: usize) -> bool {
    cpu < MAX_CPUS && ONLINE.load(Ordering::Acquire) & (1 << cpu) != 0
}

/// How many CPUs run.
pub fn online_count() -> usize {
    ONLINE.load(Ordering::Acquire).count_ones() as usize
}

/// How many CPUs the firmware's MADT lists (counting at most [`MAX_CPUS`]), whether or not
/// they started.
pub fn listed_count() -> usize {
    LISTED.load(Ordering::Relaxed) as usize
}

/// CPU `cpu`'s APIC id.
pub fn apic_id(cpu: usize) -> u32 {
    APIC_IDS[cpu % MAX_CPUS].load(Ordering::Relaxed)
}

fn mark_online(cpu: usize) {
    APIC_IDS[cpu].store(apic::id(), Ordering::Relaxed);
    ONLINE.fetch_or(1 << cpu, Ordering::AcqRel);
}

/// Brings up the boot processor's local APIC (x2APIC mode if the CPU has it) at
/// `local_apic_base` and records it as CPU 0, online, of the `listed` CPUs the MADT names.
/// `mask_legacy` masks the APIC's 8259 input (the IOAPIC delivers device interrupts). Its
/// timer starts with [`start_timer`].
pub fn init_boot_processor(local_apic_base: u64, mask_legacy: bool, listed: usize) {
    LISTED.store(listed.clamp(1, MAX_CPUS) as u32, Ordering::Relaxed);
    apic::init(local_apic_base);
    apic::enable_on_this_cpu(mask_legacy);
    mark_online(0);
}

/// Starts this CPU's periodic timer (calibrated on the boot processor first).
pub fn start_timer() {
    apic::start_timer();
}

/// How much slower a halted CPU's timer runs (other than the boot processor's).
const IDLE_TIMER_SLOWDOWN: u32 = 100;

/// Halts this CPU until an interrupt arrives (interrupts masked again on return). Every CPU
/// but the boot processor slows its timer a hundredfold meanwhile: a halted CPU has no time
/// slice to end, the boot processor's ticks wake sleepers, and under QEMU's TCG each tick of a
/// halted CPU costs the emulator enough that three idle CPUs at full rate made one busy CPU
/// run fourteen times slower. The timer keeps running, so every CPU still takes timer
/// interrupts.
///
/// Meanwhile TLB shootdowns leave this CPU a note rather than an interrupt (see
/// [`super::tlb`]), so the caller must be on its idle stack with the kernel's table loaded.
pub fn idle_halt() {
    let slowed = cpu::index() != 0;
    if slowed {
        apic::set_timer_slowdown(IDLE_TIMER_SLOWDOWN);
    }
    tlb::halting();
    cpu::wait_for_interrupt();
    tlb::woken();
    if slowed {
        apic::set_timer_slowdown(1);
    }
}

/// Sends CPU `cpu` a reschedule interrupt: it wakes from its halt, or leaves ring 3, and
/// looks at the run queue.
pub fn send_reschedule(cpu: usize) {
    if is_online(cpu) {
        apic::send_ipi(apic_id(cpu), RESCHEDULE_VECTOR);
    }
}

/// Whether a panic is stopping the machine.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

/// Stops every other CPU (they halt in their NMI path). Takes no lock; for the panic path.
pub fn stop_other_processors() {
    if STOPPING.swap(true, Ordering::AcqRel) {
        return;
    }
    let me = cpu::index();
    for other in (0..MAX_CPUS).filter(|&other| other != me && is_online(other)) {
        apic::send_nmi(apic_id(other));
    }
}

global_asm!(
    ".section .text.enigma_ap_trampoline, \"ax\"",
    ".code16",
    ".global enigma_ap_trampoline_start",
    "enigma_ap_trampoline_start:",
    "cli",
    "cld",
    // Data is addressed from the start of the page, which is where CS points.
    "mov ax, cs",
    "mov ds, ax",
    // lgdtl [offset]: with the operand-size prefix the whole 32-bit base is loaded.
    ".byte 0x66, 0x0f, 0x01, 0x16",
    ".word enigma_ap_gdt_pointer - enigma_ap_trampoline_start",
    "mov eax, cr4",
    "or eax, 1 << 5",
    "mov cr4, eax",
    // mov eax, [offset] (the table's low 32 bits; it lies below 4 GiB).
    ".byte 0x66, 0xa1",
    ".word enigma_ap_page_table - enigma_ap_trampoline_start",
    "mov cr3, eax",
    "mov ecx, 0xc0000080",
    "rdmsr",
    "or eax, (1 << 8) | (1 << 11)",
    "wrmsr",
    "mov eax, cr0",
    "or eax, 0x80000001",
    "mov cr0, eax",
    // ljmpl *[offset]: a far jump through a 32-bit offset and a selector, into 64-bit code.
    ".byte 0x66, 0xff, 0x2e",
    ".word enigma_ap_far_jump - enigma_ap_trampoline_start",
    ".code64",
    ".global enigma_ap_long_mode",
    "enigma_ap_long_mode:",
    "mov ax, 0x10",
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "mov rsp, [rip + enigma_ap_stack]",
    "mov rdi, [rip + enigma_ap_cpu]",
    "xor ebp, ebp",
    // A zero return address, so the entry finds the stack as a call would leave it.
    "push 0",
    "jmp qword ptr [rip + enigma_ap_entry]",
    ".balign 8",
    ".global enigma_ap_gdt",
    "enigma_ap_gdt:",
    ".quad 0",
    // 64-bit ring-0 code, then ring-0 data.
    ".quad 0x00209a0000000000",
    ".quad 0x0000920000000000",
    ".global enigma_ap_gdt_pointer",
    "enigma_ap_gdt_pointer:",
    ".word 23",
    ".long 0",
    ".balign 8",
    ".global enigma_ap_far_jump",
    "enigma_ap_far_jump:",
    ".long 0",
    ".word 0x08",
    ".balign 8",
    ".global enigma_ap_page_table",
    "enigma_ap_page_table:",
    ".quad 0",
    ".global enigma_ap_stack",
    "enigma_ap_stack:",
    ".quad 0",
    ".global enigma_ap_cpu",
    "enigma_ap_cpu:",
    ".quad 0",
    ".global enigma_ap_entry",
    "enigma_ap_entry:",
    ".quad 0",
    ".global enigma_ap_trampoline_end",
    "enigma_ap_trampoline_end:",
    ".text",
);

unsafe extern "C" {
    static enigma_ap_trampoline_start: u8;
    static enigma_ap_trampoline_end: u8;
    static enigma_ap_long_mode: u8;
    static enigma_ap_gdt: u8;
    static enigma_ap_gdt_pointer: u8;
    static enigma_ap_far_jump: u8;
    static enigma_ap_page_table: u8;
    static enigma_ap_stack: u8;
    static enigma_ap_cpu: u8;
    static enigma_ap_entry: u8;
}

/// The offset of a trampoline label from its start.
fn trampoline_offset(label: *const u8) -> u64 {
    label as u64 - (&raw const enigma_ap_trampoline_start) as u64
}

/// Set by a starting CPU once it is online.
static STARTED: AtomicBool = AtomicBool::new(false);
/// The kernel's top-level table, which a starting CPU loads first.
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);
/// What a started CPU runs once it is set up (the kernel's idle loop).
static KERNEL_ENTRY: AtomicU64 = AtomicU64::new(0);

/// What the boot processor prepares to start another CPU.
#[derive(Clone, Copy, Debug)]
pub struct StartupParameters {
    /// A page below 1 MiB (physical) that nothing else uses while CPUs start.
    pub trampoline_page: u64,
    /// A top-level table (physical, below 4 GiB) with the kernel half and the first 2 MiB
    /// identity-mapped.
    pub startup_table: PhysFrame,
    /// The kernel's own top-level table.
    pub kernel_root: PhysFrame,
    /// What the CPU runs once it is set up, on `stack_top`; never returns.
    pub entry: fn() -> !,
}

/// Why a CPU did not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The trampoline page is not below 1 MiB, or the table is above 4 GiB.
    BadParameters,
    /// It did not say it was online within the time allowed.
    NoAnswer,
}

/// Starts the CPU with APIC id `apic_id` as CPU number `cpu`, on the idle stack whose top is
/// `stack_top` (its interrupt stacks must already be in its TSS). Returns once the CPU is
/// online, or gives up after about 1.1 s.
pub fn start_processor(
    cpu: usize,
    apic_id: u32,
    stack_top: VirtAddr,
    parameters: &StartupParameters,
) -> Result<(), StartError> {
    let delay_us = super::pit::busy_wait_us;
    let page = parameters.trampoline_page;
    let table = parameters.startup_table.start_address().as_u64();
    if page % 4096 != 0 || page >= 0x10_0000 || page == 0 || table >= 1 << 32 || cpu >= MAX_CPUS {
        return Err(StartError::BadParameters);
    }
    let length = trampoline_offset(&raw const enigma_ap_trampoline_end) as usize;
    let base = abi::memory::PHYSICAL_MAP_OFFSET + page;
    let at = |label: *const u8| (base + trampoline_offset(label)) as *mut u8;
    // No CPU runs the page while it is written: the previous one is online, so past it.
    // SAFETY: `length` bytes of kernel text (under a page) go to the free page below 1 MiB
    // the caller gave (range checked above); the labels lie inside the copied bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(&raw const enigma_ap_trampoline_start, base as *mut u8, length);
        let gdt = page + trampoline_offset(&raw const enigma_ap_gdt);
        core::ptr::write_unaligned(at(&raw const enigma_ap_gdt_pointer).add(2).cast::<u32>(), gdt as u32);
        let long_mode = page + trampoline_offset(&raw const enigma_ap_long_mode);
        core::ptr::write_unaligned(at(&raw const enigma_ap_far_jump).cast::<u32>(), long_mode as u32);
        at(&raw const enigma_ap_page_table).cast::<u64>().write(table);
        at(&raw const enigma_ap_stack).cast::<u64>().write(stack_top.as_u64());
        at(&raw const enigma_ap_cpu).cast::<u64>().write(cpu as u64);
        at(&raw const enigma_ap_entry).cast::<u64>().write(ap_entry as *const () as u64);
    }
    KERNEL_ROOT.store(parameters.kernel_root.start_address().as_u64(), Ordering::Relaxed);
    KERNEL_ENTRY.store(parameters.entry as *const () as u64, Ordering::Relaxed);
    STARTED.store(false, Ordering::Release);

    let sipi_page = (page / 4096) as u8;
    apic::send_init(apic_id);
    delay_us(10_000);
    for _ in 0..2 {
        apic::send_startup(apic_id, sipi_page);
        for _ in 0..500 {
            if STARTED.load(Ordering::Acquire) {
                return Ok(());
            }
            delay_us(100);
        }
    }
    // A CPU answers within microseconds, but under QEMU it is a host thread, which a busy
    // host may not run for a while.
    for _ in 0..10_000 {
        if STARTED.load(Ordering::Acquire) {
            return Ok(());
        }
        delay_us(100);
    }
    Err(StartError::NoAnswer)
}

/// A started CPU's first Rust code, in long mode on its idle stack, with the startup table.
extern "C" fn ap_entry(cpu: u64) -> ! {
    let cpu = cpu as usize;
    gdt::init(cpu);
    cpu::init_per_cpu(cpu);
    let root = PhysFrame::containing_address(::x86_64::PhysAddr::new(KERNEL_ROOT.load(Ordering::Relaxed)));
    // SAFETY: the kernel's root maps the kernel half exactly as the startup table does, and
    // this code and stack are in the kernel half.
    unsafe { super::paging::switch_root(root) };
    trap::init();
    cpu::enable_protections();
    syscall_entry::init();
    apic::enable_on_this_cpu(true);
    apic::start_timer();
    mark_online(cpu);
    STARTED.store(true, Ordering::Release);
    let entry = KERNEL_ENTRY.load(Ordering::Relaxed);
    // SAFETY: `start_processor` stored a `fn() -> !` here before starting this CPU.
    let entry: fn() -> ! = unsafe { core::mem::transmute::<u64, fn() -> !>(entry) };
    entry()
}

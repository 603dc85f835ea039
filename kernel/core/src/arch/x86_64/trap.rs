//! Traps: the trap frame, one entry stub per vector, the IDT, and the dispatcher.
//!
//! Every way into the kernel (exceptions, hardware interrupts, `int 0x80`, and the `syscall`
//! instruction in [`super::syscall_entry`]) builds the same [`TrapFrame`] on the kernel stack:
//! the CPU's interrupt frame, an error code (0 when the CPU pushes none), the vector, and all
//! fifteen general registers. The frame is what a process switch leaves behind on a
//! process's kernel stack, and what [`trap_return`] restores.
//!
//! Entries from ring 3 run `swapgs` (so `GS` always points at the per-CPU block inside the
//! kernel) and `clac` when SMAP is on (ring 3 can set RFLAGS.AC, and an interrupt gate does
//! not clear it). Only vectors 0x80 (syscalls) and 3 (`int3`, a breakpoint) may be raised from
//! ring 3 with `int`; every other gate has DPL 0, so `int n` from user code is a general
//! protection fault.
//!
//! Four vectors can arrive where neither the stack nor `GS` can be trusted, and so run on
//! interrupt stacks of their own (the TSS's IST, see [`super::gdt`]): NMI, double fault and
//! machine check can interrupt any instruction; a debug exception can be raised on the first
//! instruction of the `syscall` stub, still on the user's stack, when ring 3 arms it with
//! `mov ss` or `pop ss` just before `syscall` (CVE-2018-8897). These take the *paranoid*
//! path: it reads the `GS` base MSR to learn whether `swapgs` is needed instead of trusting
//! the saved CS, never takes a lock, and never switches processes (an interrupt stack is
//! reused by the next trap of its vector, so nothing may stay suspended on it). A debug
//! exception from ring 3 first moves its frame to the process's kernel stack and then takes
//! the ordinary path, which may end the process.
//!
//! Every ordinary trap runs under the big kernel lock ([`super::kernel_lock`]). It is taken
//! here when the trap interrupted ring 3 or kernel code that ran with interrupts enabled
//! (which never holds it); an exception in kernel code with interrupts masked comes from code
//! that holds it already. Two vectors run without it: the TLB shootdown interrupt, whose
//! sender holds the lock and waits for the answer, and the timer interrupt, which takes it
//! only when the kernel's `timer_tick` hook says there is work for it. The paranoid path never
//! takes it. `int 0x80` goes straight to the path the `syscall` instruction takes.
//!
//! What the kernel does about each trap is not decided here: the layers above install
//! [`super::hooks::KernelHooks`].

use core::arch::{global_asm, naked_asm};
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use ::x86_64::PrivilegeLevel;
use ::x86_64::VirtAddr;
use ::x86_64::registers::control::Cr2;
use ::x86_64::structures::idt::{InterruptDescriptorTable, PageFaultErrorCode};
use spin::Once;

use super::cpu::{PER_CPU_ENTRY_SCRATCH, PER_CPU_KERNEL_STACK, SMAP_ACTIVE};
use super::gdt::InterruptStack;
use super::hooks::hooks;

/// The vector of the `int 0x80` syscall gate.
pub const SYSCALL_VECTOR: u64 = 0x80;
/// The vector recorded in frames built by the `syscall` instruction's stub.
pub const SYSCALL_INSTRUCTION_VECTOR: u64 = 0x100;
/// The first vector of the device interrupt lines (8259 or IOAPIC, line n on `IRQ_BASE + n`).
pub const IRQ_BASE: u8 = 32;
/// Each CPU's local APIC timer.
pub const LOCAL_TIMER_VECTOR: u8 = 0x30;
/// An inter-processor interrupt that only wakes its CPU and makes it look at the scheduler
/// on its way back to ring 3 or in its idle loop.
pub const RESCHEDULE_VECTOR: u8 = 0xe0;
/// The kernel's urgent inter-processor interrupts are the only vectors from here up (the
/// local APIC's highest priority class), so a CPU waiting for the big kernel lock can take
/// them and hold every other interrupt pending (see [`super::apic::halt_for_urgent_interrupt`]).
pub const FIRST_URGENT_VECTOR: u8 = 0xf0;
/// An inter-processor interrupt asking its CPU to flush translations (see [`super::tlb`]).
pub const TLB_SHOOTDOWN_VECTOR: u8 = 0xf1;
/// An inter-processor interrupt that wakes a CPU halted waiting for the big kernel lock: its
/// turn has come.
pub const LOCK_WAKE_VECTOR: u8 = 0xf2;
/// The local APIC's spurious-interrupt vector (never acknowledged).
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Registers saved on every entry into the kernel, in stack order (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Which vector brought the CPU here.
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Pushes the fifteen general registers so that they end up in [`TrapFrame`] order (the
/// last pushed, r15, at the lowest address). Every entry stub saves registers with this.
macro_rules! push_general_registers {
    () => {
        "push rax\npush rbx\npush rcx\npush rdx\npush rsi\npush rdi\npush rbp\npush r8\n\
         push r9\npush r10\npush r11\npush r12\npush r13\npush r14\npush r15"
    };
}
pub(super) use push_general_registers;

/// Pops what [`push_general_registers`] pushed. Leaves the flags alone.
macro_rules! pop_general_registers {
    () => {
        "pop r15\npop r14\npop r13\npop r12\npop r11\npop r10\npop r9\npop r8\n\
         pop rbp\npop rdi\npop rsi\npop rdx\npop rcx\npop rbx\npop rax"
    };
}
pub(super) use pop_general_registers;

/// Byte offset of `TrapFrame::cs`, used by the stubs to tell ring 3 from ring 0.
const FRAME_CS_OFFSET: usize = 18 * 8;

/// RFLAGS.IF.
const RFLAGS_INTERRUPT_ENABLE: u64 = 1 << 9;
/// RFLAGS.TF.
const RFLAGS_TRAP: u64 = 1 << 8;
/// RFLAGS bit 1, which always reads as one.
const RFLAGS_RESERVED_ONE: u64 = 1 << 1;

impl TrapFrame {
    /// A frame that enters ring 3 at `entry` with stack pointer `stack` and interrupts on.
    pub fn new_user(entry: u64, stack: u64) -> Self {
        let selectors = super::gdt::selectors();
        Self {
            rip: entry,
            cs: u64::from(selectors.user_code.0),
            rflags: RFLAGS_INTERRUPT_ENABLE | RFLAGS_RESERVED_ONE,
            rsp: stack,
            ss: u64::from(selectors.user_data.0),
            ..Self::default()
        }
    }

    /// Whether the trap interrupted ring 3.
    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// Whether the interrupted code ran with interrupts enabled.
    pub fn interrupts_were_enabled(&self) -> bool {
        self.rflags & RFLAGS_INTERRUPT_ENABLE != 0
    }

    /// The syscall number and its six arguments, per the register convention in `abi`.
    pub fn syscall_request(&self) -> (u64, [u64; 6]) {
        (self.rax, [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9])
    }

    /// Stores a syscall's result where the caller finds it.
    pub fn set_syscall_result(&mut self, result: i64) {
        self.rax = result as u64;
    }
}

/// A CPU exception, described for a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuFault {
    /// The exception vector.
    pub vector: u64,
    /// The CPU's error code (0 when the exception has none).
    pub error_code: u64,
    /// Where the faulting instruction is.
    pub instruction: u64,
    /// For page faults, the address that was accessed (CR2).
    pub address: Option<u64>,
    /// The interrupted code's frame pointer (`rbp`), where its backtrace starts.
    pub frame_pointer: u64,
}

impl CpuFault {
    fn from_frame(frame: &TrapFrame) -> Self {
        let address = (frame.vector == PAGE_FAULT_VECTOR).then(Cr2::read_raw);
        Self { vector: frame.vector, error_code: frame.error_code, instruction: frame.rip, address, frame_pointer: frame.rbp }
    }

    /// The exception's name.
    pub fn name(&self) -> &'static str {
        exception_name(self.vector)
    }

    /// The address a one-line report leads with: the accessed address for page faults,
    /// otherwise the instruction.
    pub fn address_or_instruction(&self) -> u64 {
        self.address.unwrap_or(self.instruction)
    }
}

impl fmt::Display for CpuFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {:#x}", self.name(), self.address_or_instruction())?;
        match self.address {
            Some(_) => {
                let bits = PageFaultErrorCode::from_bits_truncate(self.error_code);
                let access = if bits.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
                    "execute"
                } else if bits.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
                    "write"
                } else {
                    "read"
                };
                let cause = if bits.contains(PageFaultErrorCode::PROTECTION_VIOLATION) {
                    "protection violation"
                } else {
                    "page not present"
                };
                let mode = if bits.contains(PageFaultErrorCode::USER_MODE) { "user" } else { "kernel" };
                write!(f, " (ip {:#x}, {access}, {cause}, {mode} mode, error {:#x})", self.instruction, self.error_code)
            }
            None => write!(f, " (error code {:#x})", self.error_code),
        }
    }
}

/// The architectural name of an exception vector (the list is `abi`'s, which user programs
/// share).
pub fn exception_name(vector: u64) -> &'static str {
    u32::try_from(vector).map_or("reserved exception", abi::fault::name)
}

/// Exception vectors with a fixed meaning in this file.
const DEBUG_VECTOR: u64 = 1;
const NMI_VECTOR: u64 = 2;
const BREAKPOINT_VECTOR: u64 = 3;
const DOUBLE_FAULT_VECTOR: u64 = 8;
const GENERAL_PROTECTION_VECTOR: u64 = 13;
const PAGE_FAULT_VECTOR: u64 = 14;
const MACHINE_CHECK_VECTOR: u64 = 18;

/// The `IA32_GS_BASE` MSR, which the paranoid path reads.
const GS_BASE_MSR: u32 = 0xc000_0101;

/// Byte offset of the CS word from the stack pointer right after a stub pushed the error code
/// and the vector (before any general register).
const STUB_CS_OFFSET: usize = 3 * 8;

macro_rules! trap_stubs {
    ($($name:ident = $vector:literal $(, $error_code:ident)?;)*) => {
        $(
            /// An IDT entry point: pushes the error code the CPU did not (if any) and the
            /// vector, then continues in [`trap_common`].
            ///
            /// # Safety
            /// Only the CPU may enter it, through the IDT, with an interrupt frame on the
            /// stack.
            #[unsafe(naked)]
            unsafe extern "C" fn $name() {
                naked_asm!(
                    trap_stubs!(@push_error_code $($error_code)?),
                    concat!("push ", stringify!($vector)),
                    "jmp {common}",
                    common = sym trap_common,
                );
            }
        )*
        /// Every vector with an ordinary stub, and the stub's address.
        fn ordinary_stubs() -> [(u8, u64); [$($vector),*].len()] {
            [$(($vector, $name as *const () as u64)),*]
        }
    };
    (@push_error_code error_code) => { "" };
    (@push_error_code) => { "push 0" };
}

trap_stubs! {
    trap_0 = 0; trap_3 = 3; trap_4 = 4; trap_5 = 5; trap_6 = 6;
    trap_7 = 7; trap_9 = 9; trap_10 = 10, error_code;
    trap_11 = 11, error_code; trap_12 = 12, error_code; trap_13 = 13, error_code;
    trap_14 = 14, error_code; trap_16 = 16; trap_17 = 17, error_code;
    trap_19 = 19; trap_20 = 20; trap_21 = 21, error_code; trap_28 = 28;
    trap_29 = 29, error_code; trap_30 = 30, error_code;
    trap_32 = 32; trap_33 = 33; trap_34 = 34; trap_35 = 35; trap_36 = 36; trap_37 = 37;
    trap_38 = 38; trap_39 = 39; trap_40 = 40; trap_41 = 41; trap_42 = 42; trap_43 = 43;
    trap_44 = 44; trap_45 = 45; trap_46 = 46; trap_47 = 47;
    trap_48 = 48; trap_128 = 128; trap_224 = 224; trap_241 = 241; trap_242 = 242; trap_255 = 255;
}

/// The debug exception's entry, on its own interrupt stack. From ring 0 it takes the
/// paranoid path. From ring 3 it copies the frame (interrupt frame, error code, vector) to
/// the top of the process's kernel stack, which is empty while ring 3 runs, exactly where
/// an ordinary interrupt from ring 3 would have put it, and continues on the ordinary path.
///
/// # Safety
/// Only the CPU may enter it, through the IDT, with an interrupt frame on the debug
/// interrupt stack.
#[unsafe(naked)]
unsafe extern "C" fn debug_entry() {
    naked_asm!(
        "push 0",
        "push {vector}",
        "test qword ptr [rsp + {cs}], 3",
        "jz {paranoid}",
        "swapgs",
        "mov gs:[{scratch}], rax",
        "mov rax, rsp",
        "mov rsp, gs:[{kernel_stack}]",
        "push qword ptr [rax + 48]",
        "push qword ptr [rax + 40]",
        "push qword ptr [rax + 32]",
        "push qword ptr [rax + 24]",
        "push qword ptr [rax + 16]",
        "push qword ptr [rax + 8]",
        "push qword ptr [rax]",
        "mov rax, gs:[{scratch}]",
        // `trap_common` sees a frame from ring 3 and runs `swapgs` itself.
        "swapgs",
        "jmp {common}",
        vector = const DEBUG_VECTOR,
        cs = const STUB_CS_OFFSET,
        paranoid = sym paranoid_common,
        scratch = const PER_CPU_ENTRY_SCRATCH,
        kernel_stack = const PER_CPU_KERNEL_STACK,
        common = sym trap_common,
    );
}

/// The NMI's entry, on its own interrupt stack.
///
/// # Safety
/// Only the CPU may enter it, through the IDT.
#[unsafe(naked)]
unsafe extern "C" fn nmi_entry() {
    naked_asm!("push 0", "push {vector}", "jmp {paranoid}", vector = const NMI_VECTOR, paranoid = sym paranoid_common);
}

/// The double fault's entry, on its own interrupt stack (the CPU pushes an error code).
///
/// # Safety
/// Only the CPU may enter it, through the IDT.
#[unsafe(naked)]
unsafe extern "C" fn double_fault_entry() {
    naked_asm!("push {vector}", "jmp {paranoid}", vector = const DOUBLE_FAULT_VECTOR, paranoid = sym paranoid_common);
}

/// The machine check's entry, on its own interrupt stack.
///
/// # Safety
/// Only the CPU may enter it, through the IDT.
#[unsafe(naked)]
unsafe extern "C" fn machine_check_entry() {
    naked_asm!(
        "push 0",
        "push {vector}",
        "jmp {paranoid}",
        vector = const MACHINE_CHECK_VECTOR,
        paranoid = sym paranoid_common
    );
}

/// The common half of every ordinary stub: saves the general registers, enters the kernel's
/// `GS` and SMAP state, calls [`trap_dispatch`], and returns through [`trap_return`].
///
/// # Safety
/// Reached only from the stubs above, with the error code and vector pushed on top of an
/// interrupt frame, on a kernel stack.
#[unsafe(naked)]
unsafe extern "C" fn trap_common() {
    naked_asm!(
        push_general_registers!(),
        "test qword ptr [rsp + {cs}], 3",
        "jz 2f",
        "swapgs",
        "2:",
        "cmp byte ptr [rip + {smap}], 0",
        "je 3f",
        "clac",
        "3:",
        "cld",
        "mov rdi, rsp",
        "call {dispatch}",
        // Backtraces recognise this return address: the trap frame lies just above it.
        ".global enigma_trap_dispatch_return",
        "enigma_trap_dispatch_return:",
        "jmp {ret}",
        cs = const FRAME_CS_OFFSET,
        smap = sym SMAP_ACTIVE,
        dispatch = sym trap_dispatch,
        ret = sym trap_return,
    );
}

/// The common half of the interrupt-stack vectors. It trusts neither the saved CS nor the
/// interrupted code's state: kernel `GS` bases live in the upper half and a user one never
/// does (ring 3 cannot set it), so the sign of the `GS` base MSR says whether to `swapgs`
/// (kept in `rbx` across the call, and undone before `iretq`). Returns to wherever the trap
/// came from, never through the scheduler.
///
/// # Safety
/// Reached only from the interrupt-stack stubs, with the error code and vector pushed on top
/// of an interrupt frame.
#[unsafe(naked)]
unsafe extern "C" fn paranoid_common() {
    naked_asm!(
        push_general_registers!(),
        "mov ecx, {gs_base}",
        "rdmsr",
        "xor ebx, ebx",
        "test edx, edx",
        "js 2f",
        "swapgs",
        "mov ebx, 1",
        "2:",
        "cmp byte ptr [rip + {smap}], 0",
        "je 3f",
        "clac",
        "3:",
        "cld",
        "mov rdi, rsp",
        "call {dispatch}",
        "test ebx, ebx",
        "jz 4f",
        "swapgs",
        "4:",
        pop_general_registers!(),
        "add rsp, 16",
        "iretq",
        gs_base = const GS_BASE_MSR,
        smap = sym SMAP_ACTIVE,
        dispatch = sym paranoid_dispatch,
    );
}

/// Restores a [`TrapFrame`] at the stack pointer and leaves the kernel through `iretq`. New
/// processes start here too (see [`super::context`]).
///
/// # Safety
/// The stack pointer must be at a complete [`TrapFrame`] on a kernel stack, with `GS` at the
/// kernel's base.
#[unsafe(naked)]
pub(super) unsafe extern "C" fn trap_return() {
    naked_asm!(
        // `test` sets ZF for "returning to ring 0"; `pop` and `lea` leave the flags alone.
        "test qword ptr [rsp + {cs}], 3",
        pop_general_registers!(),
        "lea rsp, [rsp + 16]",
        "jnz {to_user}",
        "iretq",
        cs = const FRAME_CS_OFFSET,
        to_user = sym return_to_user,
    );
}

global_asm!(
    // The last step of every return to ring 3, with the stack at an interrupt frame.
    // `enigma_iretq_to_user` is the `iretq` itself: if it faults (a non-canonical return
    // address), the fault arrives in ring 0 with the user's GS base already swapped in, and
    // `kernel_exception` recognises the address.
    ".global enigma_return_to_user",
    "enigma_return_to_user:",
    "swapgs",
    ".global enigma_iretq_to_user",
    "enigma_iretq_to_user:",
    "iretq",
    // A byte read that survives a page fault: returns the byte, or u64::MAX after a fault.
    ".global enigma_probe_read_byte",
    "enigma_probe_read_byte:",
    ".global enigma_probe_load",
    "enigma_probe_load:",
    "movzx eax, byte ptr [rdi]",
    "ret",
    ".global enigma_probe_recover",
    "enigma_probe_recover:",
    "mov rax, -1",
    "ret",
);

unsafe extern "C" {
    #[link_name = "enigma_return_to_user"]
    pub(super) fn return_to_user();
    static enigma_iretq_to_user: u8;
    fn enigma_probe_read_byte(address: u64) -> u64;
    static enigma_probe_load: u8;
    static enigma_probe_recover: u8;
    static enigma_trap_dispatch_return: u8;
}

/// The return address of `trap_common`'s call to the dispatcher. A frame record with this
/// return address is `trap_dispatch`'s, and the [`TrapFrame`] starts right above it.
pub(super) fn trap_dispatch_return_address() -> u64 {
    (&raw const enigma_trap_dispatch_return) as u64
}

fn iretq_to_user_address() -> u64 {
    (&raw const enigma_iretq_to_user) as u64
}

static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Builds and loads the IDT: every exception, the sixteen device lines, the local timer, the
/// inter-processor interrupts, the APIC's spurious vector and the DPL-3 syscall gate at 0x80.
/// #DB, NMI, double fault and machine check run on their own interrupt stacks. Every CPU
/// loads the same table.
pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        for (vector, stub) in ordinary_stubs() {
            let address = VirtAddr::new(stub);
            // SAFETY: every stub is a valid entry point that saves a full frame, handles the
            // vector and returns with `iretq`.
            let options = unsafe {
                match vector {
                    10 => idt.invalid_tss.set_handler_addr(address),
                    11 => idt.segment_not_present.set_handler_addr(address),
                    12 => idt.stack_segment_fault.set_handler_addr(address),
                    13 => idt.general_protection_fault.set_handler_addr(address),
                    14 => idt.page_fault.set_handler_addr(address),
                    17 => idt.alignment_check.set_handler_addr(address),
                    21 => idt.cp_protection_exception.set_handler_addr(address),
                    29 => idt.vmm_communication_exception.set_handler_addr(address),
                    30 => idt.security_exception.set_handler_addr(address),
                    other => idt[other].set_handler_addr(address),
                }
            };
            // `int3` (and `int 3`) from ring 3 is a breakpoint, which an exception handler
            // may catch and resume, not a gate fault.
            if u64::from(vector) == SYSCALL_VECTOR || u64::from(vector) == BREAKPOINT_VECTOR {
                options.set_privilege_level(PrivilegeLevel::Ring3);
            }
        }
        let address = |stub: unsafe extern "C" fn()| VirtAddr::new(stub as *const () as u64);
        // SAFETY: each entry is a valid stub for its vector, and each IST slot holds a stack
        // of its own, installed by `gdt::init` (and replaced by guarded ones later).
        unsafe {
            idt.debug.set_handler_addr(address(debug_entry)).set_stack_index(InterruptStack::Debug.index());
            idt.non_maskable_interrupt
                .set_handler_addr(address(nmi_entry))
                .set_stack_index(InterruptStack::Nmi.index());
            idt.double_fault
                .set_handler_addr(address(double_fault_entry))
                .set_stack_index(InterruptStack::DoubleFault.index());
            idt.machine_check
                .set_handler_addr(address(machine_check_entry))
                .set_stack_index(InterruptStack::MachineCheck.index());
        }
        idt
    });
    idt.load();
}

/// Where every ordinary trap lands, with the saved frame.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    if frame.vector == SYSCALL_VECTOR {
        // Only ring 3 raises `int 0x80` (the kernel never does), and ring 3 always runs with
        // interrupts enabled: the `syscall` instruction's path serves it unchanged.
        super::syscall_entry::run_syscall(frame);
        return;
    }
    if frame.vector >= u64::from(FIRST_URGENT_VECTOR) {
        // Outside the big kernel lock: these reach CPUs that wait for it.
        match frame.vector {
            // The CPU that sent it holds the lock and waits for the answer.
            vector if vector == u64::from(TLB_SHOOTDOWN_VECTOR) => super::tlb::answer_request(),
            // Waking the waiter was the point.
            vector if vector == u64::from(LOCK_WAKE_VECTOR) => {}
            // Spurious interrupts are never acknowledged.
            _ => return,
        }
        super::apic::end_of_interrupt();
        return;
    }
    if frame.interrupts_were_enabled() {
        super::cpu::masked_stretch_begins();
        if !frame.from_user() {
            // Perhaps woken from the idle halt: first the flush a shootdown may have left.
            super::tlb::woken();
        }
    }
    if frame.vector == u64::from(LOCAL_TIMER_VECTOR) {
        super::cpu::count_timer_interrupt();
        let needs_kernel = (hooks().timer_tick)();
        super::apic::end_of_interrupt();
        if !needs_kernel {
            // Most ticks: nothing to do, and no reason to queue for the lock.
            if frame.interrupts_were_enabled() {
                super::cpu::masked_stretch_ends();
            }
            return;
        }
    }
    // Ring 3 and the places that enable interrupts in the kernel hold no lock; an exception
    // in kernel code (interrupts masked) comes from code that holds it.
    let took_lock = frame.from_user() || frame.interrupts_were_enabled();
    if took_lock {
        super::kernel_lock::acquire();
    }
    let hooks = hooks();
    let from_user = frame.from_user();
    match frame.vector {
        // Every exception from ring 3 is the process's doing (double faults and machine checks
        // never come here).
        0..=31 if from_user => (hooks.user_exception)(&CpuFault::from_frame(frame), frame),
        0..=31 => kernel_exception(frame),
        vector @ 32..=47 => super::irq::handle_line((vector - u64::from(IRQ_BASE)) as u8),
        // Counted and acknowledged above, without the lock.
        vector if vector == u64::from(LOCAL_TIMER_VECTOR) => (hooks.device_interrupt)(super::irq::TIMER_LINE),
        // Waking the CPU was the point; the scheduler looks on the way out or in the idle loop.
        vector if vector == u64::from(RESCHEDULE_VECTOR) => super::apic::end_of_interrupt(),
        vector => log::warn!("unexpected trap vector {vector:#x}"),
    }
    if from_user {
        (hooks.before_user_return)();
    }
    if took_lock {
        super::kernel_lock::release();
    }
    if frame.interrupts_were_enabled() {
        super::cpu::masked_stretch_ends();
    }
}

/// Kernel-mode debug exceptions since boot (the kernel sets no breakpoints and never
/// single-steps itself, so these come from ring 3 arming one across `syscall`).
static KERNEL_DEBUG_TRAPS: AtomicU64 = AtomicU64::new(0);
/// Non-maskable interrupts since boot.
static NMI_COUNT: AtomicU64 = AtomicU64::new(0);

/// Where the interrupt-stack vectors land. Takes no lock: it may have interrupted a holder.
extern "C" fn paranoid_dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        DEBUG_VECTOR => {
            // A single-step or breakpoint armed by ring 3 and delivered on a kernel
            // instruction. There is nothing to report to anyone; clear TF in case it was
            // set in the interrupted kernel context and carry on.
            KERNEL_DEBUG_TRAPS.fetch_add(1, Ordering::Relaxed);
            frame.rflags &= !RFLAGS_TRAP;
        }
        NMI_VECTOR if super::smp::stopping() => super::cpu::halt_forever(),
        NMI_VECTOR => {
            NMI_COUNT.fetch_add(1, Ordering::Relaxed);
        }
        _ => (hooks().fatal_fault)(&CpuFault::from_frame(frame), frame),
    }
}

/// Non-maskable interrupts taken since boot.
pub fn nmi_count() -> u64 {
    NMI_COUNT.load(Ordering::Relaxed)
}

/// Debug exceptions taken in ring 0 since boot.
pub fn kernel_debug_traps() -> u64 {
    KERNEL_DEBUG_TRAPS.load(Ordering::Relaxed)
}

fn kernel_exception(frame: &mut TrapFrame) {
    let fault = CpuFault::from_frame(frame);
    match frame.vector {
        BREAKPOINT_VECTOR => log::info!("breakpoint at {:#x}, continuing", frame.rip),
        PAGE_FAULT_VECTOR if frame.rip == (&raw const enigma_probe_load) as u64 => {
            *PROBE_FAULT.lock() = Some(fault);
            frame.rip = (&raw const enigma_probe_recover) as u64;
        }
        GENERAL_PROTECTION_VECTOR if frame.rip == iretq_to_user_address() => {
            // The return to ring 3 faulted on the `iretq` itself (a non-canonical return
            // address): GS already holds the user's base, so swap back first.
            // SAFETY: restores the kernel's GS base, swapped out just before the `iretq`.
            unsafe { core::arch::asm!("swapgs", options(nomem, nostack)) };
            // SAFETY: the fault left the user's interrupt frame right where the stack
            // pointer was; read only its first word, the return address.
            let return_address = unsafe { *(frame.rsp as *const u64) };
            let fault = CpuFault { instruction: return_address, ..fault };
            // The way out had released the big kernel lock, and interrupts were masked, so the
            // dispatcher did not take it again: ending the process needs it.
            super::kernel_lock::acquire();
            (hooks().user_fault)(&fault);
        }
        _ => (hooks().fatal_fault)(&fault, frame),
    }
}

/// Raises the NMI vector with `int 2` (the same gate and interrupt stack as a real NMI), for
/// the in-kernel tests.
pub fn raise_nmi_vector_for_test() {
    // SAFETY: the NMI gate's paranoid path counts the NMI and returns; nothing else happens.
    unsafe { core::arch::asm!("int 2", options(nomem, nostack)) };
}

/// Raises the machine-check vector with `int 18`, for the in-kernel tests. Never returns if
/// the kernel handles machine checks as fatal.
pub fn raise_machine_check_for_test() {
    // SAFETY: the machine-check gate reports the fault and ends the kernel.
    unsafe { core::arch::asm!("int 18", options(nomem, nostack)) };
}

/// Sets TF for one instruction in ring 0, so the CPU raises one debug exception there, for
/// the in-kernel tests.
pub fn single_step_one_instruction_for_test() {
    // SAFETY: the single-step trap after the `nop` lands in the debug exception's paranoid
    // path, which clears TF in the saved flags and returns; the flags end as they started.
    unsafe { core::arch::asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "nop", "nop") };
}

/// The page fault the last [`probe_read_byte`] caught, for the in-kernel tests.
static PROBE_FAULT: spin::Mutex<Option<CpuFault>> = spin::Mutex::new(None);

/// Reads one byte at `address`; if that page-faults, returns the fault instead of
/// panicking. Only the in-kernel tests use it, to check the page-fault report.
pub fn probe_read_byte(address: u64) -> Result<u8, CpuFault> {
    // SAFETY: the probe routine reads one byte; a page fault on that read is turned into a
    // return by `kernel_exception`, so no fault escapes.
    let value = unsafe { enigma_probe_read_byte(address) };
    match PROBE_FAULT.lock().take() {
        Some(fault) => Err(fault),
        None => Ok(value as u8),
    }
}

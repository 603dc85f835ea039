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
//! not clear it). Only vector 0x80 may be raised from ring 3 with `int`; every other gate has
//! DPL 0, so `int n` from user code is a general protection fault.

use core::arch::{global_asm, naked_asm};
use core::fmt;

use ::x86_64::PrivilegeLevel;
use ::x86_64::VirtAddr;
use ::x86_64::registers::control::Cr2;
use ::x86_64::structures::idt::{InterruptDescriptorTable, PageFaultErrorCode};
use spin::Once;

use super::cpu::SMAP_ACTIVE;
use super::gdt::DOUBLE_FAULT_IST_INDEX;

/// The vector of the `int 0x80` syscall gate.
pub const SYSCALL_VECTOR: u64 = 0x80;
/// The vector recorded in frames built by the `syscall` instruction's stub.
pub const SYSCALL_INSTRUCTION_VECTOR: u64 = 0x100;
/// The first vector of the remapped 8259 interrupts.
pub const IRQ_BASE: u8 = 32;

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
        let address = (frame.vector == 14).then(Cr2::read_raw);
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

/// The architectural name of an exception vector.
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug exception",
        2 => "non-maskable interrupt",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        9 => "coprocessor segment overrun",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point error",
        20 => "virtualization exception",
        21 => "control protection exception",
        28 => "hypervisor injection exception",
        29 => "VMM communication exception",
        30 => "security exception",
        _ => "reserved exception",
    }
}

macro_rules! trap_stubs {
    ($($name:ident = $vector:literal $(, $error_code:ident)?;)*) => {
        $(
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
        /// Every installed vector and the address of its stub.
        fn stubs() -> [(u8, u64); [$($vector),*].len()] {
            [$(($vector, $name as *const () as u64)),*]
        }
    };
    (@push_error_code error_code) => { "" };
    (@push_error_code) => { "push 0" };
}

trap_stubs! {
    trap_0 = 0; trap_1 = 1; trap_2 = 2; trap_3 = 3; trap_4 = 4; trap_5 = 5; trap_6 = 6;
    trap_7 = 7; trap_8 = 8, error_code; trap_9 = 9; trap_10 = 10, error_code;
    trap_11 = 11, error_code; trap_12 = 12, error_code; trap_13 = 13, error_code;
    trap_14 = 14, error_code; trap_16 = 16; trap_17 = 17, error_code; trap_18 = 18;
    trap_19 = 19; trap_20 = 20; trap_21 = 21, error_code; trap_28 = 28;
    trap_29 = 29, error_code; trap_30 = 30, error_code;
    trap_32 = 32; trap_33 = 33; trap_34 = 34; trap_35 = 35; trap_36 = 36; trap_37 = 37;
    trap_38 = 38; trap_39 = 39; trap_40 = 40; trap_41 = 41; trap_42 = 42; trap_43 = 43;
    trap_44 = 44; trap_45 = 45; trap_46 = 46; trap_47 = 47;
    trap_128 = 128;
}

/// The common half of every stub: saves the general registers, enters the kernel's `GS`
/// and SMAP state, calls [`trap_dispatch`], and returns through [`trap_return`].
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

/// Restores a [`TrapFrame`] at the stack pointer and leaves the kernel through `iretq`. New
/// processes start here too (see [`super::context`]).
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

/// Builds and loads the IDT: every exception, the sixteen 8259 interrupts, and the DPL-3
/// syscall gate at 0x80. The double fault runs on its own interrupt stack.
pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        for (vector, stub) in stubs() {
            let address = VirtAddr::new(stub);
            // SAFETY: every stub is a valid entry point that saves a full frame, handles the
            // vector and returns with `iretq` (the double-fault one never returns).
            let options = unsafe {
                match vector {
                    8 => idt.double_fault.set_handler_addr(address),
                    10 => idt.invalid_tss.set_handler_addr(address),
                    11 => idt.segment_not_present.set_handler_addr(address),
                    12 => idt.stack_segment_fault.set_handler_addr(address),
                    13 => idt.general_protection_fault.set_handler_addr(address),
                    14 => idt.page_fault.set_handler_addr(address),
                    17 => idt.alignment_check.set_handler_addr(address),
                    18 => idt.machine_check.set_handler_addr(address),
                    21 => idt.cp_protection_exception.set_handler_addr(address),
                    29 => idt.vmm_communication_exception.set_handler_addr(address),
                    30 => idt.security_exception.set_handler_addr(address),
                    other => idt[other].set_handler_addr(address),
                }
            };
            if u64::from(vector) == SYSCALL_VECTOR {
                options.set_privilege_level(PrivilegeLevel::Ring3);
            }
            if vector == 8 {
                // SAFETY: the IST slot holds a dedicated stack set up by `gdt::init`.
                unsafe { options.set_stack_index(DOUBLE_FAULT_IST_INDEX) };
            }
        }
        idt
    });
    idt.load();
}

/// Where every trap lands, with the saved frame.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let from_user = frame.from_user();
    match frame.vector {
        SYSCALL_VECTOR => dispatch_syscall(frame),
        // A non-maskable interrupt is not the interrupted code's doing.
        2 => log::warn!("non-maskable interrupt at {:#x}", frame.rip),
        // Double faults and machine checks are the kernel's or the machine's problem, even
        // when ring 3 was running.
        0..=31 if from_user && frame.vector != 8 && frame.vector != 18 => {
            crate::task::kill_current_for_fault(&CpuFault::from_frame(frame));
        }
        0..=31 => kernel_exception(frame),
        vector @ 32..=47 => super::pic::handle_interrupt((vector - u64::from(IRQ_BASE)) as u8),
        vector => log::warn!("unexpected trap vector {vector:#x}"),
    }
    if from_user {
        crate::task::before_user_return();
    }
}

/// Runs the syscall in `frame` (from either entry path) and stores its result.
pub(super) fn dispatch_syscall(frame: &mut TrapFrame) {
    let (number, args) = frame.syscall_request();
    let result = crate::syscall::dispatch(number, args);
    frame.set_syscall_result(result);
}

fn kernel_exception(frame: &mut TrapFrame) {
    let fault = CpuFault::from_frame(frame);
    match frame.vector {
        3 => log::info!("breakpoint at {:#x}, continuing", frame.rip),
        14 if frame.rip == (&raw const enigma_probe_load) as u64 => {
            log::info!("probed {fault}");
            *PROBE_FAULT.lock() = Some(fault);
            frame.rip = (&raw const enigma_probe_recover) as u64;
        }
        13 if frame.rip == iretq_to_user_address() => {
            // The return to ring 3 faulted on the `iretq` itself (a non-canonical return
            // address): GS already holds the user's base, so swap back first.
            // SAFETY: restores the kernel's GS base, swapped out just before the `iretq`.
            unsafe { core::arch::asm!("swapgs", options(nomem, nostack)) };
            // SAFETY: the fault left the user's interrupt frame right where the stack
            // pointer was; read only its first word, the return address.
            let return_address = unsafe { *(frame.rsp as *const u64) };
            let fault = CpuFault { instruction: return_address, ..fault };
            crate::task::kill_current_for_fault(&fault);
        }
        8 => crate::boot::double_fault(&fault, frame),
        _ => panic!("kernel {fault}\n{frame:#x?}"),
    }
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

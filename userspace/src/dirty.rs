//! Syscalls with every general register chosen by the caller, the stack pointer included,
//! shared by `usertests` and `fuzz` (each includes this file as a module).
//!
//! [`Call::run`] saves the caller's registers, loads all sixteen from [`Call`] (the number in
//! `rax`, the arguments in `rdi, rsi, rdx, r10, r8, r9`, anything at all in the rest) and the
//! RFLAGS bits ring 3 may set (DF, AC and NT included, TF never), enters the kernel through
//! `syscall` or `int 0x80`, records all sixteen registers as the kernel left them, and
//! restores the caller's registers and clean flags. The kernel may neither rely on the
//! caller's stack pointer or flags nor hand back anything but the result:
//! [`Call::clobbered`] names a register it changed.

use core::arch::naked_asm;

use userlib::sys::EntryPath;

/// Register names in hardware order, the order of [`Call`]'s arrays.
const NAMES: [&str; 16] =
    ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];
const RAX: usize = 0;
const RCX: usize = 1;
const R11: usize = 11;
/// Where each of the six syscall arguments goes: `rdi, rsi, rdx, r10, r8, r9`.
const ARGUMENT_REGISTERS: [usize; 6] = [7, 6, 2, 10, 8, 9];

/// One syscall with a full register set, and what the kernel left in the registers.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Call {
    /// Loaded into the registers right before entering the kernel.
    before: [u64; 16],
    /// The registers right after the kernel returned.
    after: [u64; 16],
    /// Non-zero to enter through `int 0x80` instead of `syscall`.
    int80: u64,
    /// RFLAGS for the call.
    flags: u64,
}

/// Byte offsets of `Call`'s fields, used by the assembly.
const AFTER: usize = 16 * 8;
const INT80: usize = 32 * 8;
const FLAGS: usize = 33 * 8;
/// RFLAGS bits a call may ask for: CF, PF, AF, ZF, SF, DF, OF, NT, AC and ID (IF and bit 1
/// are always set; TF would kill the caller on the first instruction after the call).
const CHOOSABLE_FLAGS: u64 = 0x0024_4cd5;
/// IF and the always-one bit 1: the flags of a plain call, and what `enter` leaves behind.
const CLEAN_FLAGS: u64 = 0x202;

/// The `Call` being run, for the assembly after the kernel returns (no register survives
/// that the assembly could keep it in, and the stack pointer may be anything).
static mut CURRENT: u64 = 0;
/// The `rdi` the kernel returned, parked while `rdi` points at `CURRENT`.
static mut RETURNED_RDI: u64 = 0;
/// The caller's callee-saved registers and stack pointer: rbx, rsp, rbp, r12..r15.
static mut SAVED: [u64; 7] = [0; 7];
/// Where `enter` jumps to enter the kernel: chosen before the flags are loaded, since
/// choosing changes them.
static mut ENTRY: u64 = 0;

impl Call {
    /// Syscall `number` with `args` through `path`; every other register, `rsp` included,
    /// starts with the value `noise` has for it.
    pub fn new(path: EntryPath, number: u64, args: [u64; 6], noise: [u64; 16]) -> Self {
        let mut before = noise;
        before[RAX] = number;
        for (register, value) in ARGUMENT_REGISTERS.into_iter().zip(args) {
            before[register] = value;
        }
        Self { before, after: [0; 16], int80: u64::from(path == EntryPath::Int80), flags: CLEAN_FLAGS }
    }

    /// The same call made with the RFLAGS bits of `flags` that a call may choose (see
    /// [`CHOOSABLE_FLAGS`]); the others stay as in a plain call.
    pub fn with_flags(self, flags: u64) -> Self {
        Self { flags: CLEAN_FLAGS | (flags & CHOOSABLE_FLAGS), ..self }
    }

    /// Makes the call.
    ///
    /// # Safety
    /// As for `userlib::sys::raw`: the kernel reads and writes memory the arguments point to,
    /// so the caller must make sure that is harmless, and the syscall must neither end the
    /// process nor unmap memory the program uses.
    pub unsafe fn run(&mut self) {
        // SAFETY: `enter` saves and restores every callee-saved register and the stack
        // pointer, and touches no memory but `self` and its own statics; what the kernel does
        // with the arguments is the caller's part.
        unsafe { enter(self) };
    }

    /// The value the kernel returned in `rax`.
    pub fn result(&self) -> i64 {
        self.after[RAX] as i64
    }

    /// The first register other than `rax` whose value the kernel changed (`rcx` and `r11`
    /// are exempt on the `syscall` path, where the instruction itself overwrites them).
    pub fn clobbered(&self) -> Option<&'static str> {
        self.clobbered_except(&[])
    }

    /// The same, with the registers named in `results` (the IPC calls' returned message)
    /// exempt too.
    pub fn clobbered_except(&self, results: &[&str]) -> Option<&'static str> {
        let exempt = |register: usize| {
            register == RAX
                || (self.int80 == 0 && (register == RCX || register == R11))
                || results.contains(&NAMES[register])
        };
        (0..16)
            .find(|&register| !exempt(register) && self.before[register] != self.after[register])
            .map(|register| NAMES[register])
    }

    /// The value the kernel left in the register called `name` (`"rdi"`, `"r12"`, ...).
    pub fn returned(&self, name: &str) -> Option<u64> {
        NAMES.iter().position(|&known| known == name).map(|register| self.after[register])
    }
}

/// Loads `call.before` and `call.flags`, enters the kernel, stores `call.after`. Only
/// `call`, the caller's registers and the statics above are touched; the caller's
/// callee-saved registers and stack pointer come back unchanged, and the flags clean.
#[unsafe(naked)]
unsafe extern "sysv64" fn enter(call: *mut Call) {
    naked_asm!(
        "mov [rip + {current}], rdi",
        "mov [rip + {saved}], rbx",
        "mov [rip + {saved} + 8], rsp",
        "mov [rip + {saved} + 16], rbp",
        "mov [rip + {saved} + 24], r12",
        "mov [rip + {saved} + 32], r13",
        "mov [rip + {saved} + 40], r14",
        "mov [rip + {saved} + 48], r15",
        "cmp qword ptr [rdi + {int80}], 0",
        "lea rax, [rip + 2f]",
        "lea rcx, [rip + 3f]",
        "cmovne rax, rcx",
        "mov [rip + {entry}], rax",
        "push qword ptr [rdi + {flags}]",
        "popfq",
        // From here to the kernel, only `mov` and an indirect `jmp`: the flags stay.
        "mov rax, [rdi]",
        "mov rcx, [rdi + 8]",
        "mov rdx, [rdi + 16]",
        "mov rbx, [rdi + 24]",
        "mov rsp, [rdi + 32]",
        "mov rbp, [rdi + 40]",
        "mov rsi, [rdi + 48]",
        "mov r8, [rdi + 64]",
        "mov r9, [rdi + 72]",
        "mov r10, [rdi + 80]",
        "mov r11, [rdi + 88]",
        "mov r12, [rdi + 96]",
        "mov r13, [rdi + 104]",
        "mov r14, [rdi + 112]",
        "mov r15, [rdi + 120]",
        "mov rdi, [rdi + 56]",
        "jmp qword ptr [rip + {entry}]",
        "2:",
        "syscall",
        "jmp 4f",
        "3:",
        "int 0x80",
        "4:",
        "mov [rip + {returned_rdi}], rdi",
        "mov rdi, [rip + {current}]",
        "mov [rdi + {after}], rax",
        "mov [rdi + {after} + 8], rcx",
        "mov [rdi + {after} + 16], rdx",
        "mov [rdi + {after} + 24], rbx",
        "mov [rdi + {after} + 32], rsp",
        "mov [rdi + {after} + 40], rbp",
        "mov [rdi + {after} + 48], rsi",
        "mov rax, [rip + {returned_rdi}]",
        "mov [rdi + {after} + 56], rax",
        "mov [rdi + {after} + 64], r8",
        "mov [rdi + {after} + 72], r9",
        "mov [rdi + {after} + 80], r10",
        "mov [rdi + {after} + 88], r11",
        "mov [rdi + {after} + 96], r12",
        "mov [rdi + {after} + 104], r13",
        "mov [rdi + {after} + 112], r14",
        "mov [rdi + {after} + 120], r15",
        "mov rbx, [rip + {saved}]",
        "mov rsp, [rip + {saved} + 8]",
        "mov rbp, [rip + {saved} + 16]",
        "mov r12, [rip + {saved} + 24]",
        "mov r13, [rip + {saved} + 32]",
        "mov r14, [rip + {saved} + 40]",
        "mov r15, [rip + {saved} + 48]",
        "push {clean}",
        "popfq",
        "ret",
        current = sym CURRENT,
        returned_rdi = sym RETURNED_RDI,
        saved = sym SAVED,
        entry = sym ENTRY,
        int80 = const INT80,
        flags = const FLAGS,
        after = const AFTER,
        clean = const CLEAN_FLAGS,
    );
}

//! CPU exceptions as a process sees them: the vectors that end a process in ring 3 and the
//! page-fault error-code bits, as [`crate::ExitInfo`] reports them.
//!
//! The numbers are the architecture's (Intel SDM vol. 3, chapter 6); they are listed here so
//! programs (a test that expects a fault, a shell that says how a program died) and the
//! kernel name them the same way.

/// `#DE`: division by zero or a quotient too large.
pub const DIVIDE_ERROR: u32 = 0;
/// `#DB`: a debug exception (single-step with RFLAGS.TF, `icebp` on hardware).
pub const DEBUG: u32 = 1;
/// `#BP`: `int3`.
pub const BREAKPOINT: u32 = 3;
/// `#UD`: an instruction the CPU does not run here (`ud2`, AVX where XCR0 does not enable it).
pub const INVALID_OPCODE: u32 = 6;
/// `#NM`: x87/MMX/SSE state unavailable (never raised now that every process has its own).
pub const DEVICE_NOT_AVAILABLE: u32 = 7;
/// `#MF`: an unmasked x87 floating-point exception (reported at the next x87 instruction
/// that waits).
pub const X87_FLOATING_POINT: u32 = 16;
/// `#XM`: an unmasked SIMD floating-point exception (MXCSR).
pub const SIMD_FLOATING_POINT: u32 = 19;
/// `#SS`: a stack-segment fault.
pub const STACK_SEGMENT: u32 = 12;
/// `#GP`: a general protection fault (privileged instructions, non-canonical addresses,
/// gates ring 3 may not use).
pub const GENERAL_PROTECTION: u32 = 13;
/// `#PF`: a page fault; [`crate::ExitInfo::fault_address`] holds the address accessed.
pub const PAGE_FAULT: u32 = 14;

/// Page-fault error code: the page was present, so a right was missing (clear: not present).
pub const PF_PROTECTION: u64 = 1 << 0;
/// Page-fault error code: the access was a write.
pub const PF_WRITE: u64 = 1 << 1;
/// Page-fault error code: the access came from ring 3.
pub const PF_USER: u64 = 1 << 2;
/// Page-fault error code: the access was an instruction fetch.
pub const PF_INSTRUCTION: u64 = 1 << 4;

/// The architectural name of exception `vector`.
pub fn name(vector: u32) -> &'static str {
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

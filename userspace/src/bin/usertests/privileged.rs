//! Privileged instructions and gates ring 3 may not use: each must kill only the child that
//! runs it, with the exception the architecture (or, where it differs, QEMU 7.2 under
//! `-cpu max`) raises, at that very instruction.
//!
//! Every case's instruction sits in an assembly routine `usertests_NAME` after whatever
//! setup it needs, at the label `usertests_NAME_site`, so the expectation names the exact
//! instruction and a fault anywhere else (in the setup, say) fails the case.

use core::arch::{asm, global_asm};

use abi::fault::{BREAKPOINT, DIVIDE_ERROR, GENERAL_PROTECTION, PF_PROTECTION};
use abi::memory::USER_STACK_TOP;
use userlib::testing::{Case, Expected, Outcome};

use crate::common::*;

/// The address of case `name`'s faulting instruction.
macro_rules! site {
    ($name:ident) => {
        symbol_address!(concat!("usertests_", stringify!($name), "_site"))
    };
}

/// A general protection fault with error code 0 at case `name`'s instruction.
macro_rules! protection_fault_at {
    ($name:ident) => {
        || Expected::general_protection().at(site!($name))
    };
}

/// A general protection fault for `int N` through a gate ring 3 may not use. Its error code
/// names the gate: QEMU reports `N * 16 + 2` (the gate's byte offset in the 64-bit IDT, plus
/// the IDT bit); hardware reports `N * 8 + 2`.
macro_rules! gate_fault_at {
    ($name:ident, $vector:literal) => {
        || Expected::fault(GENERAL_PROTECTION).error($vector * 16 + 2).at(site!($name))
    };
}

/// A `#PF` on the stack at the instruction of case `name`: under QEMU with SMAP, an `iretq`
/// or `retfq` from ring 3 to a ring-0 selector reads the return frame as a supervisor access
/// to a user page, which faults (present page, read, supervisor: error `PF_PROTECTION`)
/// before the privilege check that raises `#GP` on hardware.
macro_rules! return_frame_fault_at {
    ($name:ident) => {
        || Expected::page_fault_within(STACK_BOTTOM, USER_STACK_TOP).error(PF_PROTECTION).at(site!($name))
    };
}

pub const CASES: &[Case] = userlib::cases![
    fault cli => protection_fault_at!(cli),
    fault sti => protection_fault_at!(sti),
    fault hlt => protection_fault_at!(hlt),
    fault in_port => protection_fault_at!(in_port),
    fault out_port => protection_fault_at!(out_port),
    fault mov_to_cr3 => protection_fault_at!(mov_to_cr3),
    fault mov_from_cr0 => protection_fault_at!(mov_from_cr0),
    fault lgdt => protection_fault_at!(lgdt),
    fault lidt => protection_fault_at!(lidt),
    fault ltr => protection_fault_at!(ltr),
    fault wrmsr => protection_fault_at!(wrmsr),
    fault rdmsr => protection_fault_at!(rdmsr),
    fault invlpg => protection_fault_at!(invlpg),
    fault wbinvd => protection_fault_at!(wbinvd),
    fault swapgs => protection_fault_at!(swapgs),
    fault sysretq => protection_fault_at!(sysretq),
    // QEMU under -cpu max raises #UD for `sysenter` in 64-bit mode, as AMD CPUs do; Intel
    // CPUs would enter the kernel through the SYSENTER MSRs, which Enigma leaves at 0, and
    // raise #GP.
    fault sysenter => || Expected::invalid_opcode().at(site!(sysenter)),
    fault mov_to_dr7 => protection_fault_at!(mov_to_dr7),
    fault clts => protection_fault_at!(clts),
    fault iretq_to_ring0 => return_frame_fault_at!(iretq_to_ring0),
    fault far_return_to_ring0 => return_frame_fault_at!(far_return_to_ring0),
    // Loading SS with the kernel's data selector: #GP with the selector as the error code.
    fault load_kernel_ss => || Expected::fault(GENERAL_PROTECTION).error(0x10).at(site!(load_kernel_ss)),
    // Gate 3 is open to ring 3: `int3` and `int 3` are breakpoints, reported (a trap) just
    // past the instruction.
    fault int3 => || Expected::fault(BREAKPOINT).at(site!(int3) + 1),
    fault int_3 => || Expected::fault(BREAKPOINT).at(site!(int_3) + 2),
    fault int_0x08 => gate_fault_at!(int_0x08, 0x08),
    fault int_0x0e => gate_fault_at!(int_0x0e, 0x0e),
    fault int_0x20 => gate_fault_at!(int_0x20, 0x20),
    fault int_0x81 => gate_fault_at!(int_0x81, 0x81),
    fault int_0xff => gate_fault_at!(int_0xff, 0xff),
    // `icebp` (0xf1) raises #DB on hardware; QEMU under -cpu max raises #UD.
    fault icebp => || Expected::invalid_opcode().at(site!(icebp)),
    fault ud2 => || Expected::invalid_opcode().at(site!(ud2)),
    fault divide_by_zero => || Expected::fault(DIVIDE_ERROR).error(0).at(site!(divide_by_zero)),
    // UMIP makes the descriptor-table and machine-status stores privileged.
    fault sgdt => protection_fault_at!(sgdt),
    fault sidt => protection_fault_at!(sidt),
    fault sldt => protection_fault_at!(sldt),
    fault smsw => protection_fault_at!(smsw),
    fault str => protection_fault_at!(str),
];

/// Defines, for each case, the routine `usertests_NAME` (the setup instructions, then the
/// instruction under test at `usertests_NAME_site`, then `ret`) and the case body, which
/// calls it. The routines use only caller-saved registers, and leave the stack as they found
/// it when the instruction does not fault.
macro_rules! privileged_instructions {
    ($($name:ident: [$($setup:literal),*] $instruction:literal;)*) => {
        global_asm!(
            ".pushsection .text.usertests_privileged, \"ax\"",
            $(
                concat!(".global usertests_", stringify!($name)),
                concat!("usertests_", stringify!($name), ":"),
                $($setup,)*
                concat!(".global usertests_", stringify!($name), "_site"),
                concat!("usertests_", stringify!($name), "_site:"),
                $instruction,
                "ret",
            )*
            ".popsection",
            // Read by `lgdt`/`lidt`, written by `sgdt`/`sidt` if ring 3 could run them.
            ".pushsection .data.usertests_privileged, \"aw\"",
            "usertests_table_pointer:",
            ".zero 16",
            ".popsection",
        );
        $(
            fn $name() -> Outcome {
                // SAFETY: this runs in a child that exists to fault: ring 3 may not execute
                // the instruction, so the CPU raises an exception and the kernel ends the
                // child. The routine touches only caller-saved registers and its own data.
                unsafe { asm!(concat!("call usertests_", stringify!($name)), clobber_abi("C")) };
                Ok(())
            }
        )*
    };
}

privileged_instructions! {
    cli: [] "cli";
    sti: [] "sti";
    hlt: [] "hlt";
    in_port: ["mov edx, 0x64"] "in al, dx";
    out_port: ["mov edx, 0x80", "xor eax, eax"] "out dx, al";
    mov_to_cr3: ["xor eax, eax"] "mov cr3, rax";
    mov_from_cr0: [] "mov rax, cr0";
    lgdt: ["lea rax, [rip + usertests_table_pointer]"] "lgdt [rax]";
    lidt: ["lea rax, [rip + usertests_table_pointer]"] "lidt [rax]";
    ltr: ["mov eax, 0x28"] "ltr ax";
    wrmsr: ["mov ecx, 0xc0000082", "xor eax, eax", "xor edx, edx"] "wrmsr";
    rdmsr: ["mov ecx, 0xc0000082"] "rdmsr";
    invlpg: ["mov eax, 0x400000"] "invlpg [rax]";
    wbinvd: [] "wbinvd";
    swapgs: [] "swapgs";
    sysretq: [] "sysretq";
    sysenter: [] "sysenter";
    mov_to_dr7: ["mov eax, 0x3ff"] "mov dr7, rax";
    clts: [] "clts";
    // A return frame for ring 0 (kernel code 0x08, kernel data 0x10) that would come back
    // to the label after the `iretq` (and `ret` from there).
    iretq_to_ring0: ["mov rax, rsp", "push 0x10", "push rax", "pushfq", "push 0x08", "lea rax, [rip + 2f]", "push rax"]
        "iretq\n2:";
    far_return_to_ring0: ["push 0x08", "lea rax, [rip + 2f]", "push rax"] "retfq\n2:";
    load_kernel_ss: ["mov eax, 0x10"] "mov ss, ax";
    int3: [] "int3";
    int_3: [] ".byte 0xcd, 0x03";
    int_0x08: [] "int 0x08";
    int_0x0e: [] "int 0x0e";
    int_0x20: [] "int 0x20";
    int_0x81: [] "int 0x81";
    int_0xff: [] "int 0xff";
    icebp: [] ".byte 0xf1";
    ud2: [] "ud2";
    divide_by_zero: ["xor ecx, ecx", "mov eax, 1", "xor edx, edx"] "div rcx";
    sgdt: ["lea rax, [rip + usertests_table_pointer]"] "sgdt [rax]";
    sidt: ["lea rax, [rip + usertests_table_pointer]"] "sidt [rax]";
    sldt: [] "sldt ax";
    smsw: [] "smsw ax";
    str: [] "str ax";
}

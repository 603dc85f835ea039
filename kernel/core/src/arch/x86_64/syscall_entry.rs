//! The `syscall` instruction: its MSRs and its entry stub.
//!
//! `syscall` loads CS/SS from `STAR`, jumps to `LSTAR`, saves the user RIP in `rcx` and
//! RFLAGS in `r11`, and masks RFLAGS with `SFMASK` (IF, TF, DF, AC and NT are cleared, so the
//! stub runs with interrupts off, no single-stepping, forward string ops and SMAP armed).
//! NT matters because ring 3 may set it with `popfq` and the kernel does not save RFLAGS
//! across a process switch: left set, it would follow the kernel into the next process's
//! return path, whose `iretq` faults on NT in 64-bit mode and would kill that process.
//! It does not switch stacks: the stub swaps in the kernel `GS`, parks the user RSP in the
//! per-CPU block and loads the process's kernel stack from it, then builds the same
//! [`TrapFrame`] an `int 0x80` would, so both paths share one dispatcher and one table.
//!
//! The way out is `sysretq` only when it restores exactly the frame: RCX must equal RIP and
//! R11 RFLAGS (what `sysretq` loads them from), and the return address must be canonical.
//! Ordinary syscalls leave both pairs as `syscall` made them; a handler of a syscall
//! delivered as a message (decision 72) may set any of them, and such a return goes through
//! `iretq`, which restores every register. `sysretq` with a non-canonical RCX faults in ring 0
//! on the user's stack on Intel CPUs, so that return goes through `iretq` too, whose fault is
//! taken on the kernel stack and ends the process.

use core::arch::naked_asm;

use ::x86_64::VirtAddr;
use ::x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use ::x86_64::registers::rflags::RFlags;

use super::cpu::{PER_CPU_KERNEL_STACK, PER_CPU_USER_STACK};
use super::hooks::hooks;
use super::trap::{
    SYSCALL_INSTRUCTION_VECTOR, TrapFrame, pop_general_registers, push_general_registers, return_to_user,
};

/// Programs EFER.SCE, STAR, LSTAR and SFMASK.
pub fn init() {
    let selectors = super::gdt::selectors();
    assert_eq!(u64::from(selectors.user_data.0), USER_DATA_SELECTOR, "syscall stub's user SS");
    assert_eq!(u64::from(selectors.user_code.0), USER_CODE_SELECTOR, "syscall stub's user CS");
    Star::write(selectors.user_code, selectors.user_data, selectors.kernel_code, selectors.kernel_data)
        .expect("GDT order does not match what sysret needs");
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::ALIGNMENT_CHECK
            | RFlags::NESTED_TASK,
    );
    // SAFETY: STAR, LSTAR and SFMASK are programmed above, so `syscall` lands in the stub
    // with a masked RFLAGS.
    unsafe { Efer::update(|flags| flags.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}

/// The `syscall` entry stub.
///
/// # Safety
/// Only the CPU may enter it, through `LSTAR`, from ring 3 with the user's registers.
#[unsafe(naked)]
unsafe extern "C" fn syscall_entry() {
    naked_asm!(
        "swapgs",
        "mov gs:[{user_stack}], rsp",
        "mov rsp, gs:[{kernel_stack}]",
        // The interrupt frame `iretq` would expect, then error code and vector.
        "push {user_ss}",
        "push qword ptr gs:[{user_stack}]",
        "push r11",
        "push {user_cs}",
        "push rcx",
        "push 0",
        "push {vector}",
        push_general_registers!(),
        "mov rdi, rsp",
        "call {dispatch}",
        pop_general_registers!(),
        "add rsp, 16",
        // Now at the interrupt frame: RIP, CS, RFLAGS, RSP, SS.
        "cmp rcx, [rsp]",
        "jne {via_iretq}",
        "cmp r11, [rsp + 16]",
        "jne {via_iretq}",
        "shl rcx, 16",
        "sar rcx, 16",
        "cmp rcx, [rsp]",
        "jne {via_iretq}",
        "mov rsp, [rsp + 24]",
        "swapgs",
        "sysretq",
        user_stack = const PER_CPU_USER_STACK,
        kernel_stack = const PER_CPU_KERNEL_STACK,
        user_ss = const USER_DATA_SELECTOR,
        user_cs = const USER_CODE_SELECTOR,
        vector = const SYSCALL_INSTRUCTION_VECTOR,
        dispatch = sym syscall_dispatch,
        via_iretq = sym return_to_user,
    );
}

/// User data selector (GDT index 3, RPL 3); `gdt` creates the segments in this order.
const USER_DATA_SELECTOR: u64 = 0x1b;
/// User code selector (GDT index 4, RPL 3).
const USER_CODE_SELECTOR: u64 = 0x23;

extern "C" fn syscall_dispatch(frame: &mut TrapFrame) {
    run_syscall(frame);
}

/// Runs the syscall in `frame`, made from ring 3 (by `syscall` or `int 0x80`), and what
/// precedes the return to ring 3, under the big kernel lock: taken here, released on the way
/// out.
#[inline(always)]
pub(super) fn run_syscall(frame: &mut TrapFrame) {
    super::cpu::masked_stretch_begins();
    super::kernel_lock::acquire();
    let hooks = hooks();
    (hooks.syscall)(frame);
    (hooks.before_user_return)();
    super::kernel_lock::release();
    super::cpu::masked_stretch_ends();
}

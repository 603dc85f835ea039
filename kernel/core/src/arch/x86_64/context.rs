//! Switching between kernel stacks.
//!
//! Every process has its own kernel stack. A process that stops running (preempted by the
//! timer, blocked in a syscall, or exiting) calls [`switch_context`] somewhere inside the
//! kernel; the callee-saved registers and the return address stay on its stack, its
//! x87/SSE/AVX registers go to its [`UserState`], and its stack pointer is saved. Switching back resumes it inside that same call. A new process's
//! stack is prepared by [`prepare_kernel_stack`] so that its first switch "returns" into
//! [`super::trap::trap_return`] and from there to ring 3.

use core::arch::naked_asm;

use super::trap::{TrapFrame, trap_return};
use super::user_state::{
    FS_BASE_MSR, FS_BASE_OFFSET, GS_BASE_OFFSET, KERNEL_GS_BASE_MSR, SAVE_METHOD, SAVE_XSAVE, SAVE_XSAVEOPT, UserState,
};

/// Saves the callee-saved registers on the current stack and the leaving context's
/// x87/SSE/AVX registers at `leaving`, loads the entering context's from `entering`, stores
/// the stack pointer at `save_stack_pointer` (the last touch of the leaving context's stack
/// and state), loads `next_stack_pointer`, loads the entering context's FS and user GS bases
/// into `IA32_FS_BASE` and `IA32_KERNEL_GS_BASE`, and restores the registers saved on the
/// new stack.
///
/// The save is `xsaveopt` where the CPU has it: it may skip what did not change since the
/// last `xrstor` on this CPU, if that `xrstor` was from the same area, which is right
/// because the leaving context was entered through this function, with an `xrstor` from its
/// own area, and nothing restores from another area while it runs. The requested-feature
/// mask is EDX:EAX with EAX all ones: `user_state::enable` sets no XCR0 bit past 31, so
/// whatever EDX holds, every component XCR0 enables is saved and loaded.
///
/// # Safety
/// `save_stack_pointer` must be valid for a write, and `next_stack_pointer` must be a value
/// an earlier `switch_context` saved (or [`prepare_kernel_stack`] returned) for a stack that
/// is still mapped and not in use. `leaving` must be the state of the context this CPU runs
/// and `entering` that of the context `next_stack_pointer` belongs to, which no other CPU
/// uses, and which was reset or saved into since it last ran. Interrupts must be masked.
#[unsafe(naked)]
pub unsafe extern "C" fn switch_context(
    entering: *const UserState,
    leaving: *const UserState,
    save_stack_pointer: *mut u64,
    next_stack_pointer: u64,
) {
    naked_asm!(
        "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
        "mov eax, -1",
        "cmp byte ptr [rip + {method}], {xsaveopt}",
        "jne 3f",
        "xsaveopt64 [rsi]",
        "xrstor64 [rdi]",
        "2:",
        "mov [rdx], rsp",
        "mov rsp, rcx",
        "mov ecx, {fs_base_msr}",
        "mov eax, [rdi + {fs_base}]",
        "mov edx, [rdi + {fs_base} + 4]",
        "wrmsr",
        "mov ecx, {gs_base_msr}",
        "mov eax, [rdi + {gs_base}]",
        "mov edx, [rdi + {gs_base} + 4]",
        "wrmsr",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
        "ret",
        "3:",
        "cmp byte ptr [rip + {method}], {xsave}",
        "jne 4f",
        "xsave64 [rsi]",
        "xrstor64 [rdi]",
        "jmp 2b",
        "4:",
        "fxsave64 [rsi]",
        "fxrstor64 [rdi]",
        "jmp 2b",
        method = sym SAVE_METHOD,
        xsaveopt = const SAVE_XSAVEOPT,
        xsave = const SAVE_XSAVE,
        fs_base_msr = const FS_BASE_MSR,
        gs_base_msr = const KERNEL_GS_BASE_MSR,
        fs_base = const FS_BASE_OFFSET,
        gs_base = const GS_BASE_OFFSET,
    );
}

/// The first code a new process runs, on its own kernel stack: the kernel's start-up hook,
/// then the return to ring 3 through the prepared frame.
///
/// # Safety
/// Reached only by the first [`switch_context`] to a stack laid out by
/// [`prepare_kernel_stack`], with a [`TrapFrame`] right above the switch frame.
#[unsafe(naked)]
unsafe extern "C" fn start_new_process() {
    naked_asm!(
        "call {start}",
        "jmp {trap_return}",
        start = sym process_start,
        trap_return = sym trap_return,
    );
}

/// Runs the kernel's start-up hook, which takes the big kernel lock (a switch leaves it
/// released), and releases the lock again on the way to ring 3.
extern "C" fn process_start() {
    (super::hooks::hooks().process_start)();
    super::kernel_lock::release();
}

/// Words `switch_context` pops before returning: six registers and the return address.
const SWITCH_FRAME_WORDS: usize = 7;

/// Lays out a fresh kernel stack so that switching to it calls `entry`, and returns the stack
/// pointer to hand to [`switch_context`]. `entry` starts as if called, with a zero return
/// address above it (it never returns).
///
/// `stack` is the whole stack, lowest address first; its end must be 16-byte aligned.
pub fn prepare_kernel_entry(stack: &mut [u64], entry: extern "C" fn() -> !) -> u64 {
    // The switch frame, then the fake return address `entry` finds on its stack.
    let total = SWITCH_FRAME_WORDS + 1;
    assert!(stack.len() >= total, "kernel stack too small for the initial frame");
    let start = stack.len() - total;
    let frame = &mut stack[start..];
    frame.fill(0);
    frame[SWITCH_FRAME_WORDS - 1] = entry as *const () as u64;
    frame.as_ptr() as u64
}

/// Lays out a fresh kernel stack so that switching to it enters ring 3 with `frame`, and
/// returns the stack pointer to hand to [`switch_context`].
///
/// `stack` is the whole stack, lowest address first; its end must be 16-byte aligned.
pub fn prepare_kernel_stack(stack: &mut [u64], frame: TrapFrame) -> u64 {
    let frame_words = size_of::<TrapFrame>() / 8;
    let total = frame_words + SWITCH_FRAME_WORDS;
    assert!(stack.len() >= total, "kernel stack too small for the initial frames");
    let start = stack.len() - total;
    let (switch_frame, trap_frame) = stack[start..].split_at_mut(SWITCH_FRAME_WORDS);
    switch_frame[..SWITCH_FRAME_WORDS - 1].fill(0);
    switch_frame[SWITCH_FRAME_WORDS - 1] = start_new_process as *const () as u64;
    let words = [
        frame.r15, frame.r14, frame.r13, frame.r12, frame.r11, frame.r10, frame.r9, frame.r8, frame.rbp,
        frame.rdi, frame.rsi, frame.rdx, frame.rcx, frame.rbx, frame.rax, frame.vector, frame.error_code,
        frame.rip, frame.cs, frame.rflags, frame.rsp, frame.ss,
    ];
    trap_frame.copy_from_slice(&words);
    switch_frame.as_ptr() as u64
}

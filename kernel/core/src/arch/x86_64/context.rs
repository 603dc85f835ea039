//! Switching between kernel stacks.
//!
//! Every process has its own kernel stack. A process that stops running (preempted by the
//! timer, blocked in a syscall, or exiting) calls [`switch_context`] somewhere inside the
//! kernel; the callee-saved registers and the return address stay on its stack, and its
//! stack pointer is saved. Switching back resumes it inside that same call. A new process's
//! stack is prepared by [`prepare_kernel_stack`] so that its first switch "returns" into
//! [`super::trap::trap_return`] and from there to ring 3.

use core::arch::naked_asm;

use super::trap::{TrapFrame, trap_return};

/// Saves the callee-saved registers on the current stack, stores the stack pointer at
/// `save_stack_pointer`, loads `next_stack_pointer` and restores the registers saved there.
///
/// # Safety
/// `save_stack_pointer` must be valid for a write, and `next_stack_pointer` must be a value
/// an earlier `switch_context` saved (or [`prepare_kernel_stack`] returned) for a stack that
/// is still mapped and not in use. Interrupts must be masked.
#[unsafe(naked)]
pub unsafe extern "C" fn switch_context(save_stack_pointer: *mut u64, next_stack_pointer: u64) {
    naked_asm!(
        "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
        "ret",
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

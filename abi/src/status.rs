//! Exit statuses with a fixed meaning.
//!
//! A process's status is what it passed to `exit`, or one of these when the kernel or
//! `userlib` ended it. When the first process exits, the kernel hands its status to QEMU's
//! `isa-debug-exit` device, which can carry 0..=127; statuses outside that range reach the
//! launcher as [`OUT_OF_RANGE`].

/// A clean exit.
pub const SUCCESS: i32 = 0;
/// The program panicked (`userlib`'s panic handler), or the kernel panicked (launcher status).
pub const PANIC: i32 = 101;
/// The process was killed by `kill` or by Ctrl-C on the console.
pub const KILLED: i32 = 110;
/// The process was killed by a CPU fault in ring 3 (page fault, general protection fault,
/// invalid opcode, divide error, a privileged instruction, a non-canonical return address...).
pub const FAULT: i32 = 111;
/// What the launcher reports for an exit status outside 0..=127.
pub const OUT_OF_RANGE: i32 = 127;

/// A short description of a status, for the shell and the test suite.
pub fn describe(status: i32) -> &'static str {
    match status {
        SUCCESS => "ok",
        PANIC => "panicked",
        KILLED => "killed",
        FAULT => "killed by a fault",
        _ => "exited",
    }
}

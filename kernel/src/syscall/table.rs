//! The 256-entry dispatch table. Every slot starts as `ENOSYS`; the assigned numbers from
//! `abi::syscall` are filled in one place below, read top to bottom.

use abi::errno::ENOSYS;
use abi::syscall::*;

use super::{Args, SyscallResult, io, memory, process, system, time};

type Handler = fn(&Args) -> SyscallResult;

fn unassigned(_: &Args) -> SyscallResult {
    Err(ENOSYS)
}

static TABLE: [Handler; TABLE_SIZE] = {
    let mut table: [Handler; TABLE_SIZE] = [unassigned; TABLE_SIZE];
    table[EXIT as usize] = process::exit;
    table[WRITE as usize] = io::write;
    table[READ as usize] = io::read;
    table[GETPID as usize] = process::getpid;
    table[YIELD as usize] = process::yield_cpu;
    table[UPTIME as usize] = time::uptime;
    table[BRK as usize] = memory::brk;
    table[MMAP as usize] = memory::mmap;
    table[MUNMAP as usize] = memory::munmap;
    table[MPROTECT as usize] = memory::mprotect;
    table[SPAWN as usize] = process::spawn;
    table[WAIT as usize] = process::wait;
    table[KILL as usize] = process::kill;
    table[SLEEP as usize] = time::sleep;
    table[PROCESS_LIST as usize] = process::process_list;
    table[SHUTDOWN as usize] = system::shutdown;
    table[SYSINFO as usize] = system::sysinfo;
    table[PROGRAMS as usize] = system::programs;
    table[SET_FOREGROUND as usize] = io::set_foreground;
    table[CONSOLE_MODE as usize] = io::console_mode;
    table[GETPPID as usize] = process::getppid;
    table
};

/// Runs the syscall a trap frame holds and stores the result in it: the kernel's syscall
/// hook.
pub fn dispatch_frame(frame: &mut crate::arch::x86_64::trap::TrapFrame) {
    let (number, args) = frame.syscall_request();
    frame.set_syscall_result(dispatch(number, args));
}

/// Runs syscall `number` with `args` and returns what goes back in `rax`.
pub fn dispatch(number: u64, args: Args) -> i64 {
    let handler = usize::try_from(number).ok().and_then(|index| TABLE.get(index)).copied().unwrap_or(unassigned);
    match handler(&args) {
        Ok(value) => value as i64,
        Err(errno) => -errno,
    }
}

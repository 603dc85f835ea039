//! Syscall numbers and the two entry paths: every unassigned number and every number beyond
//! the table returns `ENOSYS`, and `syscall` and `int 0x80` reach the same table.

use alloc::format;

use abi::SysInfo;
use abi::errno::ENOSYS;
use abi::syscall::{GETPID, GETPPID, SYSCALLS, SYSINFO, TABLE_SIZE, WRITE};
use userlib::check;
use userlib::sys::EntryPath;
use userlib::testing::{Case, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here unassigned_numbers,
    here numbers_beyond_table,
    here entry_paths_agree,
];

fn unassigned_numbers() -> Outcome {
    let mut tried = 0;
    for number in 0..TABLE_SIZE as u64 {
        if abi::syscall::by_number(number).is_some() {
            continue;
        }
        let junk = [number, 1, READ_ONLY.as_ptr() as u64, 8, u64::MAX, number << 40];
        expect_errno_both(&format!("syscall {number}"), number, junk, ENOSYS)?;
        tried += 1;
    }
    check!(tried == TABLE_SIZE - SYSCALLS.len(), "tried {tried} unassigned numbers");
    Ok(())
}

fn numbers_beyond_table() -> Outcome {
    let text = b"must not appear\n";
    let write_args = [1, text.as_ptr() as u64, text.len() as u64, 0, 0, 0];
    for number in
        [256, 257, 511, 4096, 1 << 32, 1 << 32 | GETPID, 1 << 32 | WRITE, 1 << 63 | WRITE, u64::MAX - 1, u64::MAX]
    {
        expect_errno_both(&format!("syscall {number:#x}"), number, write_args, ENOSYS)?;
    }
    Ok(())
}

fn entry_paths_agree() -> Outcome {
    for number in [GETPID, GETPPID] {
        let by_syscall = call_via(EntryPath::Syscall, number, [0; 6]);
        let by_int80 = call_via(EntryPath::Int80, number, [0; 6]);
        check!(
            by_syscall == by_int80,
            "syscall {number}: {} by syscall, {} by int 0x80",
            show(by_syscall),
            show(by_int80)
        );
    }
    let mut first = SysInfo::default();
    let mut second = SysInfo::default();
    expect_value(
        "sysinfo (syscall)",
        call_via(EntryPath::Syscall, SYSINFO, [&raw mut first as u64, 0, 0, 0, 0, 0]),
        0,
    )?;
    expect_value(
        "sysinfo (int 0x80)",
        call_via(EntryPath::Int80, SYSINFO, [&raw mut second as u64, 0, 0, 0, 0, 0]),
        0,
    )?;
    check!(
        first.total_frames == second.total_frames && first.max_processes == second.max_processes,
        "sysinfo differs by path"
    );
    check!(second.uptime_ns >= first.uptime_ns, "uptime went backwards between the paths");
    Ok(())
}


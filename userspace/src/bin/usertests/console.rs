//! Console output and input, and the simple syscalls: `write`, `read`, `getpid`, `getppid`,
//! `yield`, `uptime`, `sysinfo`, `process_list`, the list of programs in `/bin`, `set_foreground`,
//! `console_mode`.

use alloc::format;

use abi::errno::{EBADF, EINVAL, EPERM, ESRCH};
use abi::handle::{HANDLE_MAX, NO_HANDLE, rights};
use abi::status::KILLED;
use abi::syscall::{CONSOLE_MODE, GETPID, GETPPID, PROCESS_LIST, READ, SET_FOREGROUND, UPTIME, WRITE, YIELD};
use abi::{ProcessInfo, ProcessState};
use userlib::check;
use userlib::ipc::{self, Endpoint, OwnedHandle};
use userlib::sys::{self, EntryPath};
use userlib::testing::{Case, Context, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here write_console,
    here write_bad_fd,
    child read_bad_fd,
    child read_zero_length,
    child zero_length_buffers_unchecked,
    here write_from_read_only_memory,
    here getpid_and_getppid,
    here yield_returns_zero,
    here uptime_is_monotonic,
    here uptime_advances_across_sleep,
    here sysinfo_values,
    here process_list_self,
    here process_list_truncates,
    here programs_list,
    here set_foreground,
    here foreground_kept_from_others,
    here console_mode,
    here raw_mode_released_on_exit,
    here long_write_preemptible,
];

/// Read-only text the kernel may read for a `write`.
static READ_ONLY_TEXT: &[u8] = b"usertests: written from read-only memory\n";

fn write_console() -> Outcome {
    for (path, fd, text) in [
        (EntryPath::Syscall, 1, &b"usertests: write to fd 1\n"[..]),
        (EntryPath::Syscall, 2, b"usertests: write to fd 2\n"),
        (EntryPath::Int80, 1, b"usertests: write to fd 1 through int 0x80\n"),
    ] {
        let result = call_via(path, WRITE, [fd, text.as_ptr() as u64, text.len() as u64, 0, 0, 0]);
        expect_value(&format!("write to fd {fd} ({path:?})"), result, text.len() as i64)?;
    }
    expect_value("empty write", call(WRITE, [1, READ_ONLY.as_ptr() as u64, 0, 0, 0, 0]), 0)
}

fn write_bad_fd() -> Outcome {
    let text = b"must not appear\n";
    // Standard input is a console handle without the WRITE right; the others name nothing
    // (200 is free: the suite holds a handful of handles).
    for (fd, errno) in [(0, EPERM), (200, EBADF), (255, EBADF), (256, EBADF), (1 << 32 | 1, EBADF), (u64::MAX, EBADF)] {
        expect_errno_both(
            &format!("write to fd {fd:#x}"),
            WRITE,
            [fd, text.as_ptr() as u64, text.len() as u64, 0, 0, 0],
            errno,
        )?;
    }
    Ok(())
}

fn read_bad_fd() -> Outcome {
    let mut buffer = [0u8; 16];
    // Standard output and error are console handles without the READ right.
    for (fd, errno) in [(1, EPERM), (2, EPERM), (200, EBADF), (1 << 32, EBADF), (u64::MAX, EBADF)] {
        let args = [fd, buffer.as_mut_ptr() as u64, buffer.len() as u64, 0, 0, 0];
        expect_errno_both(&format!("read from fd {fd:#x}"), READ, args, errno)?;
    }
    Ok(())
}

fn read_zero_length() -> Outcome {
    let mut buffer = [0u8; 16];
    expect_value("read(0, buf, 0)", call(READ, [0, buffer.as_mut_ptr() as u64, 0, 0, 0, 0]), 0)
}

fn zero_length_buffers_unchecked() -> Outcome {
    for &(pointer, what) in BAD_POINTERS {
        expect_value(&format!("write of 0 bytes at {what}"), call(WRITE, [1, pointer, 0, 0, 0, 0]), 0)?;
        expect_value(&format!("read of 0 bytes at {what}"), call(READ, [0, pointer, 0, 0, 0, 0]), 0)?;
        let total = call(PROCESS_LIST, [pointer, 0, 0, 0, 0, 0]);
        check!(total >= 1, "process_list of 0 rows at {what} returned {}", show(total));
    }
    let empty: &str = "";
    expect_child_status("exit_with", &["7", empty], 7)
}

fn write_from_read_only_memory() -> Outcome {
    let result = call(WRITE, [1, READ_ONLY_TEXT.as_ptr() as u64, READ_ONLY_TEXT.len() as u64, 0, 0, 0]);
    expect_value("write from .rodata", result, READ_ONLY_TEXT.len() as i64)
}

fn getpid_and_getppid() -> Outcome {
    let me = sys::getpid();
    check!(me > 0, "getpid returned 0");
    expect_value("getpid through int 0x80", call_via(EntryPath::Int80, GETPID, [0; 6]), i64::from(me))?;
    let table = Table::read()?;
    let row = table.find(me).ok_or("own pid missing from process_list")?;
    expect_value("getppid", call(GETPPID, [0; 6]), i64::from(row.parent))?;
    let child = spawn_child("report_pid", &[])?;
    let info = finish_within(child, "report_pid")?;
    expect_exit("report_pid (exits with its getpid)", info, child.pid as i32)?;
    expect_child_status("report_ppid", &[], me as i32)
}

fn yield_returns_zero() -> Outcome {
    expect_value("yield", call(YIELD, [0; 6]), 0)?;
    expect_value("yield through int 0x80", call_via(EntryPath::Int80, YIELD, [0; 6]), 0)
}

fn uptime_is_monotonic() -> Outcome {
    let mut last = 0;
    for round in 0..2000 {
        let path = if round % 2 == 0 { EntryPath::Syscall } else { EntryPath::Int80 };
        let value = call_via(path, UPTIME, [0; 6]);
        check!(value >= last, "uptime went from {last} to {} (call {round})", show(value));
        last = value;
    }
    check!(last > 0, "uptime is 0");
    Ok(())
}

fn uptime_advances_across_sleep() -> Outcome {
    let start = now();
    sleep_ms(5)?;
    let elapsed = now() - start;
    check!(elapsed >= 4 * MS, "uptime advanced {elapsed} ns across a 5 ms sleep");
    Ok(())
}

fn sysinfo_values() -> Outcome {
    let info = info()?;
    check!(
        info.free_frames > 0 && info.free_frames <= info.total_frames,
        "free {} of {} frames",
        info.free_frames,
        info.total_frames
    );
    check!(
        info.heap_used <= info.heap_size && info.heap_size > 0,
        "heap {} of {} bytes used",
        info.heap_used,
        info.heap_size
    );
    check!(info.uptime_ns > 0, "uptime 0");
    check!(info.max_processes as usize == MAX_ROWS, "max_processes {}", info.max_processes);
    check!(info.max_process_memory == 64 * MIB, "max_process_memory {}", info.max_process_memory);
    check!(info.timer_hz == 1000, "timer_hz {}", info.timer_hz);
    let all =
        abi::PROTECTION_SMEP | abi::PROTECTION_SMAP | abi::PROTECTION_UMIP | abi::PROTECTION_NX | abi::PROTECTION_WP;
    check!(info.protections == all, "protections {:#x}, expected {all:#x} under -cpu max", info.protections);
    let table = Table::read()?;
    check!(
        info.processes as usize == table.len(),
        "sysinfo counts {} processes, process_list {}",
        info.processes,
        table.len()
    );
    Ok(())
}

fn process_list_self() -> Outcome {
    let me = sys::getpid();
    let table = Table::read()?;
    let row = table.find(me).ok_or("own pid missing")?;
    check!(row.name() == "usertests", "own name {:?}", row.name());
    check!(ProcessState::from_u32(row.state) == Some(ProcessState::Running), "own state {}", row.state);
    check!(row.parent == sys::getppid(), "own parent {} but getppid {}", row.parent, sys::getppid());
    check!(row.memory_bytes > 0 && row.memory_bytes <= 64 * MIB, "own memory {} bytes", row.memory_bytes);
    let mut last = 0;
    for row in table.rows() {
        check!(row.pid > last, "rows not in pid order: {} after {last}", row.pid);
        last = row.pid;
    }
    Ok(())
}

fn process_list_truncates() -> Outcome {
    let sleeper = spawn_child("sleeper", &["forever"])?;
    let mut rows = [ProcessInfo::EMPTY; 3];
    rows[1].pid = 0xdead;
    let total = call(PROCESS_LIST, [rows.as_mut_ptr() as u64, 1, 0, 0, 0, 0]);
    let outcome: Outcome = (|| {
        check!(total >= 2, "process_list with one row returned {}", show(total));
        check!(rows[0].pid != 0, "the first row was not written");
        check!(rows[1].pid == 0xdead, "a second row was written although count was 1");
        let before = rows;
        expect_value(
            "process_list with count 0",
            call(PROCESS_LIST, [rows.as_mut_ptr() as u64, 0, 0, 0, 0, 0]),
            total,
        )?;
        check!(rows == before, "count 0 still wrote rows");
        Ok(())
    })();
    kill_and_reap(&[sleeper])?;
    outcome
}

/// The programs in `/bin`: every one a user expects is there.
fn programs_list() -> Outcome {
    let programs = userlib::process::programs().context("list /bin")?;
    for name in ["usertests", "fuzz", "hello", "init", "fs", "sh", "true", "cat", "ls"] {
        check!(programs.iter().any(|program| program == name), "{name} missing from /bin: {programs:?}");
    }
    check!(programs.windows(2).all(|pair| pair[0] < pair[1]), "/bin is not listed in name order: {programs:?}");
    Ok(())
}

/// `set_foreground` with a raw handle argument.
fn raw_set_foreground(handle: u64) -> i64 {
    call(SET_FOREGROUND, [handle, 0, 0, 0, 0, 0])
}

fn set_foreground() -> Outcome {
    expect_value("set_foreground(NO_HANDLE)", raw_set_foreground(NO_HANDLE), 0)?;
    let child = spawn_child("sleeper", &["forever"])?;
    let outcome: Outcome = (|| {
        expect_value("set_foreground(child)", raw_set_foreground(child.handle), 0)?;
        let endpoint = Endpoint::create().context("endpoint_create")?;
        let no_kill = OwnedHandle::from_raw(ipc::duplicate(child.handle, rights::ALL & !rights::KILL).context("handle_duplicate")?);
        for (handle, what, errno) in [
            (0, "the console", EBADF),
            (endpoint.handle().raw(), "an endpoint", EBADF),
            (999_999, "no such handle", EBADF),
            (HANDLE_MAX as u64, "HANDLE_MAX", EBADF),
            (1 << 32 | child.handle, "the child's handle + 2^32", EBADF),
            (no_kill.raw(), "a process handle without KILL", EPERM),
        ] {
            expect_errno(&format!("set_foreground({what})"), raw_set_foreground(handle), errno)?;
        }
        Ok(())
    })();
    kill_and_reap(&[child])?;
    outcome?;
    expect_errno("set_foreground(the waited-for child's closed handle)", raw_set_foreground(child.handle), EBADF)?;
    let ended = spawn_child("exit_with", &["0"])?;
    wait_until_gone(ended.pid, "the exited child")?;
    let refused = raw_set_foreground(ended.handle);
    expect_exit("the exited child", wait_for(ended)?, 0)?;
    expect_errno("set_foreground(a child that has ended)", refused, ESRCH)?;
    expect_value("set_foreground(NO_HANDLE) again", raw_set_foreground(NO_HANDLE), 0)
}

fn console_mode() -> Outcome {
    for mode in [2, 3, 1 << 32, u64::MAX] {
        expect_errno(&format!("console_mode({mode:#x})"), call(CONSOLE_MODE, [mode, 0, 0, 0, 0, 0]), EINVAL)?;
    }
    let cooked = abi::CONSOLE_COOKED as i64;
    let raw = abi::CONSOLE_RAW as i64;
    expect_value("console_mode(COOKED) from cooked", call(CONSOLE_MODE, [abi::CONSOLE_COOKED, 0, 0, 0, 0, 0]), cooked)?;
    expect_value("console_mode(RAW) returns the old mode", call(CONSOLE_MODE, [abi::CONSOLE_RAW, 0, 0, 0, 0, 0]), cooked)?;
    expect_value("console_mode(COOKED) returns the old mode", call(CONSOLE_MODE, [abi::CONSOLE_COOKED, 0, 0, 0, 0, 0]), raw)
}

fn raw_mode_released_on_exit() -> Outcome {
    let child = spawn_child("raw_mode_then_exit", &[])?;
    expect_exit("raw_mode_then_exit", wait_for(child)?, 0)?;
    // The kernel must have put the console back in cooked mode when the child exited.
    expect_value(
        "console_mode(COOKED) after the raw-mode owner exited",
        call(CONSOLE_MODE, [abi::CONSOLE_COOKED, 0, 0, 0, 0, 0]),
        abi::CONSOLE_COOKED as i64,
    )
}

fn foreground_kept_from_others() -> Outcome {
    let sleeper = spawn_child("sleeper", &["forever"])?;
    let outcome: Outcome = (|| {
        expect_value("set_foreground(sleeper)", raw_set_foreground(sleeper.handle), 0)?;
        // A sibling is neither the foreground process nor holds a handle to it.
        let sibling = spawn_child("clear_foreground", &[])?;
        // It exits 0 when its set_foreground(NO_HANDLE) is refused with EPERM.
        expect_exit("a sibling's set_foreground(NO_HANDLE)", wait_for(sibling)?, 0)?;
        expect_value("set_foreground(NO_HANDLE) by the parent", raw_set_foreground(NO_HANDLE), 0)
    })();
    kill_and_reap(&[sleeper])?;
    outcome
}

fn long_write_preemptible() -> Outcome {
    let writer = spawn_child("long_writer", &[])?;
    let start = sys::uptime_ns();
    sys::sleep_ms(20).context("sleep")?;
    let slept_ms = (sys::uptime_ns() - start) / 1_000_000;
    sys::kill(writer).context("kill of the writer")?;
    let ended = wait_for(writer)?;
    // A write that could not be preempted would hold the CPU for seconds.
    check!(slept_ms < 100, "a 20 ms sleep took {slept_ms} ms while another process was in a long write");
    expect_exit("the writer, killed mid-write,", ended, KILLED)?;
    Ok(())
}


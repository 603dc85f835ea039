//! Console output and input, and the simple syscalls: `write`, `read`, `getpid`, `getppid`,
//! `yield`, `uptime`, `sysinfo`, `process_list`, the list of programs in `/bin`; and the
//! console server's session calls (`stream::MODE`, `stream::FOREGROUND`) on standard input.

use alloc::format;

use abi::errno::{EBADF, EINVAL, EPERM};
use abi::handle::{HANDLE_MAX, rights};
use abi::status::KILLED;
use abi::ipc::COPY_HANDLE;
use abi::stream;
use abi::syscall::{GETPID, GETPPID, PROCESS_LIST, READ, UPTIME, WRITE, YIELD};
use abi::{ProcessInfo, ProcessState};
use userlib::check;
use userlib::ipc::{self, Endpoint, Message, OwnedHandle, Transfer};
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
    here console_mode,
    here raw_mode_released_on_exit,
    here console_survives_bad_calls,
    here long_write_preemptible,
    here sleeps_never_end_early_during_a_newline_flood,
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
    // A copy of the session without SEND may not write; the others name nothing (200 is
    // free: the suite holds a handful of handles).
    let mute = OwnedHandle::from_raw(ipc::duplicate(1, rights::DUPLICATE).context("handle_duplicate")?);
    for (fd, errno) in [(mute.raw(), EPERM), (200, EBADF), (255, EBADF), (256, EBADF), (1 << 32 | 1, EBADF), (u64::MAX, EBADF)] {
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
    // A copy of the session without SEND may not read.
    let deaf = OwnedHandle::from_raw(ipc::duplicate(0, rights::DUPLICATE).context("handle_duplicate")?);
    for (fd, errno) in [(deaf.raw(), EPERM), (200, EBADF), (1 << 32, EBADF), (u64::MAX, EBADF)] {
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

/// A session call on standard input with `label`, `word` and `handles` (numbers here, with
/// `COPY_HANDLE` to keep them): the reply's result.
fn session_call(label: u64, word: u64, handles: &[u32]) -> i64 {
    let session = Endpoint::from_raw(0);
    let mut transfer = Transfer { send_handles: handles, ..Transfer::default() };
    let result = session.call_with(&Message::new(label, [word, 0, 0, 0]), &mut transfer, abi::ipc::FOREVER);
    session.into_raw();
    match result {
        Ok((reply, _)) => match stream::reply_result(reply.label, i64::MAX as u64) {
            Ok(value) => value as i64,
            Err(errno) => -errno,
        },
        Err(errno) => -errno.0,
    }
}

fn set_foreground() -> Outcome {
    expect_value("FOREGROUND with no process", session_call(stream::FOREGROUND, 0, &[]), 0)?;
    let child = spawn_child("sleeper", &["forever"])?;
    let outcome: Outcome = (|| {
        sys::set_foreground(Some(child)).context("FOREGROUND with the child")?;
        let endpoint = Endpoint::create().context("endpoint_create")?;
        let no_kill = OwnedHandle::from_raw(ipc::duplicate(child.handle, rights::ALL & !rights::KILL).context("handle_duplicate")?);
        let no_wait = OwnedHandle::from_raw(ipc::duplicate(child.handle, rights::ALL & !rights::WAIT).context("handle_duplicate")?);
        for (handles, what, errno) in [
            (&[endpoint.handle().raw() as u32 | COPY_HANDLE][..], "an endpoint", EINVAL),
            (&[no_kill.raw() as u32 | COPY_HANDLE], "a process handle without KILL", EINVAL),
            (&[no_wait.raw() as u32 | COPY_HANDLE], "a process handle without WAIT", EINVAL),
            (&[child.handle as u32 | COPY_HANDLE, child.handle as u32 | COPY_HANDLE], "two process handles", EINVAL),
            (&[999_999], "no such handle", EBADF),
            (&[HANDLE_MAX as u32], "HANDLE_MAX", EBADF),
        ] {
            expect_errno(&format!("FOREGROUND with {what}"), session_call(stream::FOREGROUND, 0, handles), errno)?;
        }
        Ok(())
    })();
    kill_and_reap(&[child])?;
    outcome?;
    let copy_of_closed = sys::set_foreground(Some(child));
    check!(copy_of_closed == Err(sys::Errno(EBADF)), "FOREGROUND with the reaped child's closed handle: {copy_of_closed:?}");
    expect_value("FOREGROUND with no process again", session_call(stream::FOREGROUND, 0, &[]), 0)
}

fn console_mode() -> Outcome {
    for mode in [2, 3, 1 << 32, u64::MAX] {
        expect_errno(&format!("MODE {mode:#x}"), session_call(stream::MODE, mode, &[]), EINVAL)?;
    }
    let cooked = abi::CONSOLE_COOKED as i64;
    let raw = abi::CONSOLE_RAW as i64;
    expect_value("MODE cooked from cooked", session_call(stream::MODE, abi::CONSOLE_COOKED, &[]), cooked)?;
    expect_value("MODE raw returns the old mode", session_call(stream::MODE, abi::CONSOLE_RAW, &[]), cooked)?;
    expect_value("MODE cooked returns the old mode", session_call(stream::MODE, abi::CONSOLE_COOKED, &[]), raw)
}

fn raw_mode_released_on_exit() -> Outcome {
    let child = spawn_child("raw_mode_then_exit", &[])?;
    // The child waits a moment before it chooses raw mode, so that it is the foreground
    // process by then, and the raw mode is its own.
    sys::set_foreground(Some(child)).context("FOREGROUND with the child")?;
    expect_exit("raw_mode_then_exit", wait_for(child)?, 0)?;
    // The console must be cooked again, the foreground process having ended.
    let mode = session_call(stream::MODE, abi::CONSOLE_COOKED, &[]);
    expect_value("FOREGROUND with no process", session_call(stream::FOREGROUND, 0, &[]), 0)?;
    expect_value("MODE cooked after the raw-mode owner exited", mode, abi::CONSOLE_COOKED as i64)
}

fn console_survives_bad_calls() -> Outcome {
    let endpoint = Endpoint::create().context("endpoint_create")?;
    let with_handle = [endpoint.handle().raw() as u32 | COPY_HANDLE];
    for (label, handles, what) in [
        (0, &[][..], "label 0"),
        (12345, &[], "an unknown label"),
        (abi::ipc::LABEL_MAX, &[], "LABEL_MAX"),
        (stream::WRITE, &with_handle, "a write carrying a handle"),
        (stream::READ, &with_handle, "a read carrying a handle"),
        (stream::MODE, &with_handle, "a mode carrying a handle"),
    ] {
        expect_errno(&format!("a session call with {what}"), session_call(label, abi::CONSOLE_COOKED, handles), EINVAL)?;
    }
    let text = b"usertests: the console still writes\n";
    expect_value("a write after the bad calls", call(WRITE, [1, text.as_ptr() as u64, text.len() as u64, 0, 0, 0]), text.len() as i64)
}

fn long_write_preemptible() -> Outcome {
    let writer = spawn_child("long_writer", &[])?;
    let start = sys::uptime_ns();
    sys::sleep_ms(20).context("sleep")?;
    let slept_ms = (sys::uptime_ns() - start) / 1_000_000;
    sys::kill(writer).context("kill of the writer")?;
    let ended = wait_for(writer)?;
    // The sleep ended while the writer was still in its write (it was killed there, not
    // after it): the write was preempted. A write that could not be preempted would hold
    // the CPU until it is done, and the writer would exit 0.
    check!(slept_ms * MS < 20 * MS + HANG_NS, "a 20 ms sleep took {slept_ms} ms while another process was in a long write");
    expect_exit("the writer, killed mid-write,", ended, KILLED)?;
    Ok(())
}


/// The kernel's log, which init gives this suite as handle 6 (see `devices`): a report
/// written there reaches the serial line at once, not behind the console's queue.
const LOG: u64 = 6;

/// While a child writes 1 MiB of newlines to the console, 10 ms sleeps here keep ending:
/// none early, none hung. How late they end is reported (`flood: N sleeps of 10 ms, the
/// longest ...` in the kernel's log) and not judged: under TCG the guest's clock is the
/// host's, so a moment a loaded host does not run QEMU shows as a late sleep. What makes
/// sleeps late inside the kernel, interrupts masked for long, is bounded by `bench`'s
/// `longest_masked_ns` under `--icount`.
fn sleeps_never_end_early_during_a_newline_flood() -> Outcome {
    let flooder = spawn_child("newline_flood", &[])?;
    let start = sys::uptime_ns();
    let (mut sleeps, mut shortest_ns, mut longest_ns) = (0u64, u64::MAX, 0u64);
    let ended = loop {
        if let Ok((_, info)) = sys::wait_handle(flooder.handle, 0) {
            break info;
        }
        let before = sys::uptime_ns();
        sys::sleep_ms(10).context("sleep")?;
        let slept = sys::uptime_ns() - before;
        shortest_ns = shortest_ns.min(slept);
        longest_ns = longest_ns.max(slept);
        sleeps += 1;
    };
    let end = sys::uptime_ns();
    let masked = sys::sysinfo().map_or(0, |info| info.longest_masked_ns);
    let report = format!(
        "flood: {sleeps} sleeps of 10 ms in {} ms, the shortest {} us, the longest {} us (longest masked {} us)\n",
        (end - start) / MS,
        shortest_ns / 1000,
        longest_ns / 1000,
        masked / 1000
    );
    let _ = sys::write(LOG, report.as_bytes());
    expect_exit("newline_flood", ended, 0)?;
    check!(sleeps >= 5, "the flood lasted {} ms, too short to measure ({sleeps} sleeps)", (end - start) / MS);
    // The clock is read between ticks, so a sleep may end up to a tick before the time asked.
    let tick = 1_000_000_000 / u64::from(info()?.timer_hz);
    check!(shortest_ns + tick >= 10 * MS, "a 10 ms sleep ended after {shortest_ns} ns, early, while the console was flooded");
    check!(longest_ns < 10 * MS + HANG_NS, "a 10 ms sleep took {longest_ns} ns, hung, while the console was flooded");
    Ok(())
}

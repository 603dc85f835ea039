//! Another process's memory through a handle with DEBUG: `process_read` and
//! `process_write`. The children run this same program, so a static of it is at the same
//! address in both processes, holding each process's own value.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::errno::{E2BIG, EFAULT, EPERM, ESRCH};
use abi::handle::rights;
use userlib::check;
use userlib::sys;
use userlib::testing::{Case, Context, Helper, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here debugging_process_read_sees_the_childs_own_memory,
    here debugging_process_write_changes_the_childs_memory,
    here debugging_memory_access_needs_debug,
    here debugging_bad_ranges_and_ended_processes_are_refused,
];

pub const HELPERS: &[(&str, Helper)] = &[("debuggee", helper_debuggee)];

/// Each process's marker: the debuggee sets its own, a debugger reads or writes it.
static MARKER: AtomicU64 = AtomicU64::new(0);
/// What the debuggee puts in its marker.
const DEBUGGEE_VALUE: u64 = 0x5eed_f00d_1234_5678;
/// What a debugger writes to release the debuggee.
const RELEASE_VALUE: u64 = 42;

fn marker_address() -> u64 {
    core::ptr::from_ref(&MARKER) as u64
}

/// `debuggee`: sets its marker, then waits (sleeping 1 ms at a time, for at most 10 s) until
/// a debugger writes `RELEASE_VALUE` there: exit 0; 1 if none does.
fn helper_debuggee(_: &[&str]) -> i32 {
    MARKER.store(DEBUGGEE_VALUE, Ordering::SeqCst);
    let deadline = sys::uptime_ns() + 10_000_000_000;
    while sys::uptime_ns() < deadline {
        if MARKER.load(Ordering::SeqCst) == RELEASE_VALUE {
            return 0;
        }
        let _ = sys::sleep_ms(1);
    }
    1
}

/// Reads the child's marker until it holds the debuggee's value (it sets it first thing).
fn read_marker(child: u64) -> Result<u64, alloc::string::String> {
    let mut bytes = [0u8; 8];
    let mut value = 0;
    let seen = wait_until(core::time::Duration::from_secs(10), || {
        sys::process_read(child, marker_address(), &mut bytes).context("process_read")?;
        value = u64::from_le_bytes(bytes);
        Ok(value == DEBUGGEE_VALUE)
    })?;
    check!(seen, "process_read never saw the child's marker (last read {value:#x})");
    Ok(value)
}

fn debugging_process_read_sees_the_childs_own_memory() -> Outcome {
    let child = spawn_child("debuggee", &[])?;
    let seen = read_marker(child.handle);
    let _ = sys::process_write(child.handle, marker_address(), &RELEASE_VALUE.to_le_bytes());
    let ended = finish_within(child, "debuggee")?;
    check!(seen? == DEBUGGEE_VALUE, "process_read saw another value than the child's marker");
    check!(MARKER.load(Ordering::SeqCst) != DEBUGGEE_VALUE, "this process's own marker changed");
    expect_exit("the debuggee", ended, 0)
}

fn debugging_process_write_changes_the_childs_memory() -> Outcome {
    let child = spawn_child("debuggee", &[])?;
    let ready = read_marker(child.handle);
    let written = sys::process_write(child.handle, marker_address(), &RELEASE_VALUE.to_le_bytes());
    let ended = finish_within(child, "debuggee")?;
    ready?;
    written.context("process_write")?;
    // The debuggee exits 0 only once it has seen the value written into its memory.
    expect_exit("the debuggee released by the write", ended, 0)?;
    check!(MARKER.load(Ordering::SeqCst) != RELEASE_VALUE, "the write reached this process's own marker");
    Ok(())
}

fn debugging_memory_access_needs_debug() -> Outcome {
    let child = spawn_child("debuggee", &[])?;
    let outcome = (|| {
        // Once it has set its marker, the release below cannot come too early.
        read_marker(child.handle)?;
        let without = userlib::ipc::duplicate(child.handle, rights::ALL & !rights::DEBUG).context("handle_duplicate")?;
        let mut bytes = [0u8; 8];
        let read = sys::process_read(without, marker_address(), &mut bytes);
        let write = sys::process_write(without, marker_address(), &RELEASE_VALUE.to_le_bytes());
        let _ = userlib::ipc::close(without);
        expect_errno_of("process_read without DEBUG", read, EPERM)?;
        expect_errno_of("process_write without DEBUG", write, EPERM)
    })();
    let _ = sys::process_write(child.handle, marker_address(), &RELEASE_VALUE.to_le_bytes());
    let ended = finish_within(child, "debuggee")?;
    outcome?;
    expect_exit("the debuggee", ended, 0)
}

fn debugging_bad_ranges_and_ended_processes_are_refused() -> Outcome {
    let child = spawn_child("debuggee", &[])?;
    let outcome = (|| {
        read_marker(child.handle)?;
        let mut bytes = [0u8; 8];
        let mut big = alloc::vec![0u8; abi::ipc::BUFFER_MAX as usize + 1];
        expect_errno_of("a kernel address", sys::process_read(child.handle, 0xffff_8000_0000_0000, &mut bytes), EFAULT)?;
        expect_errno_of("an unmapped address", sys::process_read(child.handle, 0x10, &mut bytes), EFAULT)?;
        expect_errno_of("more than BUFFER_MAX bytes", sys::process_read(child.handle, marker_address(), &mut big), E2BIG)?;
        // The program's text is read-only in the child: a debugger cannot write it there.
        expect_errno_of("a write to read-only text", sys::process_write(child.handle, text_address(), &[0xcc]), EFAULT)?;
        // A destination this process cannot write.
        let refused = call(abi::syscall::PROCESS_READ, [child.handle, marker_address(), text_address(), 8, 0, 0]);
        expect_value("a read into this process's read-only text", refused, -EFAULT)
    })();
    let _ = sys::process_write(child.handle, marker_address(), &RELEASE_VALUE.to_le_bytes());
    let handle = child.handle;
    // Kept open past the end: `wait` would close it.
    let kept = userlib::ipc::duplicate(handle, rights::ALL).context("handle_duplicate")?;
    let ended = finish_within(child, "debuggee")?;
    let mut bytes = [0u8; 8];
    let after = sys::process_read(kept, marker_address(), &mut bytes);
    let _ = userlib::ipc::close(kept);
    outcome?;
    expect_exit("the debuggee", ended, 0)?;
    expect_errno_of("process_read of an ended process", after, ESRCH)
}

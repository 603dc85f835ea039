//! Bad pointers and lengths: every syscall that takes a buffer refuses null, unmapped,
//! kernel and non-canonical addresses, ranges that run off a mapping or wrap, and read-only
//! destinations, with `EFAULT` (or the documented errno) and without touching memory.

use alloc::format;
use alloc::vec;

use abi::errno::{E2BIG, EBADF, EFAULT, EINVAL, EPERM};
use abi::handle::NO_HANDLE;
use abi::ipc::FOREVER;
use abi::memory::USER_END;
use abi::syscall::{PROCESS_LIST, READ, SPAWN, SYSINFO, WAIT, WRITE};
use abi::{ARGV_BYTES_MAX, ARGV_MAX, ExitInfo, ProcessInfo, SysInfo, UserStr};
use userlib::check;
use userlib::sys;
use userlib::testing::{Case, Context, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here write_bad_pointers,
    here write_crossing_edge,
    here write_length_overflow,
    child read_bad_pointers,
    child read_crossing_edge,
    here sysinfo_bad_pointers,
    here sysinfo_crossing_edge,
    here process_list_bad_pointers,
    here process_list_crossing_edge,
    here process_list_huge_count,
    here read_only_destinations_refused,
    here spawn_bad_image,
    here spawn_bad_argv,
    here spawn_first_argument_crossing_edge,
    here spawn_argv_crossing_edge,
    here wait_bad_status_pointer,
];

fn write_bad_pointers() -> Outcome {
    for &(pointer, what) in BAD_POINTERS {
        expect_errno_both(&format!("write from {what}"), WRITE, [1, pointer, 16, 0, 0, 0], EFAULT)?;
    }
    Ok(())
}

fn write_crossing_edge() -> Outcome {
    let edge = Edge::new()?;
    expect_errno("write across the edge", call(WRITE, [1, edge.before_end(8), 16, 0, 0, 0]), EFAULT)?;
    expect_errno(
        "write of a whole page and one byte",
        call(WRITE, [1, edge.before_end(PAGE), PAGE + 1, 0, 0, 0]),
        EFAULT,
    )
}

fn write_length_overflow() -> Outcome {
    let pointer = READ_ONLY.as_ptr() as u64;
    for (length, what) in [
        (u64::MAX, "u64::MAX"),
        (u64::MAX - pointer + 2, "wrapping to 1"),
        (u64::MAX - pointer + 1, "wrapping to 0"),
        (USER_END - pointer + 1, "one past the user half"),
        (1 << 62, "2^62"),
    ] {
        expect_errno_both(&format!("write with length {what}"), WRITE, [1, pointer, length, 0, 0, 0], EFAULT)?;
    }
    Ok(())
}

fn read_bad_pointers() -> Outcome {
    for &(pointer, what) in BAD_POINTERS {
        expect_errno_both(&format!("read into {what}"), READ, [0, pointer, 16, 0, 0, 0], EFAULT)?;
    }
    expect_errno("read into .rodata", call(READ, [0, READ_ONLY.as_ptr() as u64, 16, 0, 0, 0]), EFAULT)?;
    let mut buffer = [0u8; 16];
    let pointer = buffer.as_mut_ptr() as u64;
    expect_errno("read with length u64::MAX", call(READ, [0, pointer, u64::MAX, 0, 0, 0]), EFAULT)?;
    expect_errno("read with a wrapping length", call(READ, [0, pointer, u64::MAX - pointer + 2, 0, 0, 0]), EFAULT)?;
    expect_errno("read past the user half", call(READ, [0, pointer, USER_END - pointer + 1, 0, 0, 0]), EFAULT)
}

fn read_crossing_edge() -> Outcome {
    let edge = Edge::new()?;
    expect_errno("read across the edge", call(READ, [0, edge.before_end(8), 16, 0, 0, 0]), EFAULT)?;
    edge.check_untouched("read across the edge")
}

fn sysinfo_bad_pointers() -> Outcome {
    for &(pointer, what) in BAD_POINTERS {
        expect_errno_both(&format!("sysinfo into {what}"), SYSINFO, [pointer, 0, 0, 0, 0, 0], EFAULT)?;
    }
    Ok(())
}

fn sysinfo_crossing_edge() -> Outcome {
    let edge = Edge::new()?;
    let size = size_of::<SysInfo>() as u64;
    expect_errno("sysinfo across the edge", call(SYSINFO, [edge.before_end(size / 2), 0, 0, 0, 0, 0]), EFAULT)?;
    edge.check_untouched("sysinfo across the edge")?;
    expect_value("sysinfo right below the edge", call(SYSINFO, [edge.before_end(size), 0, 0, 0, 0, 0]), 0)
}

fn process_list_bad_pointers() -> Outcome {
    for &(pointer, what) in BAD_POINTERS {
        expect_errno_both(&format!("process_list into {what}"), PROCESS_LIST, [pointer, 4, 0, 0, 0, 0], EFAULT)?;
    }
    Ok(())
}

fn process_list_crossing_edge() -> Outcome {
    let sleeper = spawn_child("sleeper", &["forever"])?;
    let outcome: Outcome = (|| {
        let edge = Edge::new()?;
        let row = size_of::<ProcessInfo>() as u64;
        expect_errno("two rows across the edge", call(PROCESS_LIST, [edge.before_end(row), 2, 0, 0, 0, 0]), EFAULT)?;
        edge.check_untouched("process_list across the edge")?;
        let total = call(PROCESS_LIST, [edge.before_end(row), 1, 0, 0, 0, 0]);
        check!(total >= 2, "one row right below the edge returned {}", show(total));
        Ok(())
    })();
    kill_and_reap(&[sleeper])?;
    outcome
}

fn process_list_huge_count() -> Outcome {
    let mut rows = vec![ProcessInfo::EMPTY; MAX_ROWS];
    let pointer = rows.as_mut_ptr() as u64;
    let heap_before = info()?.heap_used;
    for count in [u64::MAX, 1 << 60, 1 << 40, (USER_END - pointer) / size_of::<ProcessInfo>() as u64 + 1] {
        expect_errno_both(
            &format!("process_list with count {count:#x}"),
            PROCESS_LIST,
            [pointer, count, 0, 0, 0, 0],
            EFAULT,
        )?;
    }
    let heap_after = info()?.heap_used;
    check!(heap_after == heap_before, "the kernel heap went from {heap_before} to {heap_after} bytes in use");
    Ok(())
}

fn read_only_destinations_refused() -> Outcome {
    let target = READ_ONLY.as_ptr() as u64;
    expect_errno("sysinfo into .rodata", call(SYSINFO, [target, 0, 0, 0, 0, 0]), EFAULT)?;
    expect_errno("process_list into .rodata", call(PROCESS_LIST, [target, 1, 0, 0, 0, 0]), EFAULT)?;
    expect_errno("sysinfo into text", call(SYSINFO, [text_address(), 0, 0, 0, 0, 0]), EFAULT)?;
    let child = spawn_child("exit_with", &["4"])?;
    expect_errno("wait with the status in .rodata", call(WAIT, [child.handle, target, FOREVER, 0, 0, 0]), EFAULT)?;
    expect_exit("the child, after the refused wait,", wait_for(child)?, 4)?;
    check!(READ_ONLY.iter().all(|&byte| byte == 0x5a), ".rodata changed");
    Ok(())
}

/// `spawn` refuses what is not a readable memory object holding a program, a job that is
/// not one, no arguments at all, and a first argument that is not UTF-8.
fn spawn_bad_image() -> Outcome {
    let processes = info()?.processes;
    let name = b"usertests";
    let argv = [user_str(name)];
    let with = |image: u64, argc: u64, job: u64| call(SPAWN, [image, argv.as_ptr() as u64, argc, 0, 0, job]);
    expect_errno("the console as the image", with(0, 1, NO_HANDLE), EBADF)?;
    expect_errno("a free handle number as the image", with(HANDLE_FREE, 1, NO_HANDLE), EBADF)?;
    let unreadable = userlib::ipc::OwnedHandle::from_raw(
        userlib::ipc::duplicate(own_image(), abi::handle::rights::DUPLICATE).context("handle_duplicate")?,
    );
    expect_errno("an image handle without READ", with(unreadable.raw(), 1, NO_HANDLE), EPERM)?;
    let junk = userlib::ipc::SharedMemory::with_bytes(b"#!/bin/sh\nnot an ELF file\n").context("memory")?;
    expect_errno("memory that holds no program", with(junk.handle().raw(), 1, NO_HANDLE), EINVAL)?;
    // The console (an endpoint), a free number, and numbers no table has.
    for job in [0, HANDLE_FREE, 1 << 32, 1 << 63] {
        expect_errno(&format!("job {job:#x}"), with(own_image(), 1, job), EBADF)?;
    }
    expect_errno("no arguments at all", with(own_image(), 0, NO_HANDLE), EINVAL)?;
    let bad_utf8 = b"user\xfftests";
    let argv = [user_str(bad_utf8)];
    expect_errno("a first argument that is not UTF-8", raw_spawn(argv.as_ptr() as u64, 1), EINVAL)?;
    for &(pointer, what) in BAD_POINTERS {
        expect_errno_both(&format!("argv at {what}"), SPAWN, [own_image(), pointer, 1, 0, 0, NO_HANDLE], EFAULT)?;
    }
    let after = info()?.processes;
    check!(after == processes, "failed spawns changed the process count from {processes} to {after}");
    Ok(())
}

/// A handle number nothing uses in this suite.
const HANDLE_FREE: u64 = 200;

fn spawn_bad_argv() -> Outcome {
    let processes = info()?.processes;
    let name = b"usertests";
    let name_ptr = name.as_ptr() as u64;
    let good = user_str(name);
    for &(pointer, what) in BAD_POINTERS {
        expect_errno(&format!("argv at {what}"), raw_spawn(pointer, 1), EFAULT)?;
        let argv = [good, UserStr { ptr: pointer, len: 4 }];
        expect_errno(
            &format!("an argument at {what}"),
            raw_spawn(argv.as_ptr() as u64, 2),
            EFAULT,
        )?;
    }
    let argv = [good; ARGV_MAX + 1];
    let argv_ptr = argv.as_ptr() as u64;
    expect_errno("argc ARGV_MAX + 1", raw_spawn(argv_ptr, ARGV_MAX as u64 + 1), E2BIG)?;
    let heap_before = info()?.heap_used;
    for argc in [u64::MAX, 1 << 61, 1 << 32] {
        expect_errno(&format!("argc {argc:#x}"), raw_spawn(argv_ptr, argc), E2BIG)?;
    }
    let heap_after = info()?.heap_used;
    check!(heap_after == heap_before, "the kernel heap went from {heap_before} to {heap_after} bytes in use");
    let argv = [good, UserStr { ptr: name_ptr, len: u64::MAX }];
    expect_errno("an argument of length u64::MAX", raw_spawn(argv.as_ptr() as u64, 2), E2BIG)?;
    let argv = [UserStr { ptr: name_ptr, len: 1 << 63 }, UserStr { ptr: name_ptr, len: 1 << 63 }];
    expect_errno("argument lengths summing past u64", raw_spawn(argv.as_ptr() as u64, 2), E2BIG)?;
    let big = vec![b'x'; ARGV_BYTES_MAX];
    let argv = [good, UserStr { ptr: big.as_ptr() as u64, len: (ARGV_BYTES_MAX - name.len() + 1) as u64 }];
    expect_errno("ARGV_BYTES_MAX + 1 argument bytes", raw_spawn(argv.as_ptr() as u64, 2), E2BIG)?;
    let bad_utf8 = b"\xc3\x28";
    let argv = [good, user_str(bad_utf8)];
    expect_errno("an argument that is not UTF-8", raw_spawn(argv.as_ptr() as u64, 2), EINVAL)?;
    let after = info()?.processes;
    check!(after == processes, "failed spawns changed the process count from {processes} to {after}");
    Ok(())
}

fn spawn_first_argument_crossing_edge() -> Outcome {
    let edge = Edge::new()?;
    let start = edge.before_end(4);
    // SAFETY: the four bytes before the edge are mapped read-write and belong to `edge`.
    unsafe { core::ptr::copy_nonoverlapping(b"user".as_ptr(), start as *mut u8, 4) };
    let argv = [UserStr { ptr: start, len: 9 }];
    expect_errno("a first argument running into the unmapped page", raw_spawn(argv.as_ptr() as u64, 1), EFAULT)
}

fn spawn_argv_crossing_edge() -> Outcome {
    let edge = Edge::new()?;
    let name = b"usertests";
    let entry = size_of::<UserStr>() as u64;
    let slot = edge.before_end(entry);
    // SAFETY: one `UserStr` fits right below the edge, in the page `edge` owns.
    unsafe { core::ptr::write_unaligned(slot as *mut UserStr, user_str(name)) };
    let result = raw_spawn(slot, 2);
    expect_errno("argv running into the unmapped page", result, EFAULT)?;
    let start = edge.before_end(entry + 4);
    // SAFETY: as above, one `UserStr` plus four bytes fit below the edge.
    unsafe { core::ptr::write_unaligned(start as *mut UserStr, UserStr { ptr: edge.before_end(4), len: 9 }) };
    let result = raw_spawn(start, 1);
    expect_errno("an argument running into the unmapped page", result, EFAULT)
}

fn wait_bad_status_pointer() -> Outcome {
    let child = spawn_child("exit_with", &["5"])?;
    let handle = child.handle;
    let outcome: Outcome = (|| {
        for &(pointer, what) in BAD_POINTERS.iter().filter(|(pointer, _)| *pointer != 0) {
            expect_errno(&format!("wait with the status at {what}"), call(WAIT, [handle, pointer, FOREVER, 0, 0, 0]), EFAULT)?;
        }
        let edge = Edge::new()?;
        expect_errno(
            "wait with the status across the edge",
            call(WAIT, [handle, edge.before_end(size_of::<ExitInfo>() as u64 / 2), FOREVER, 0, 0, 0]),
            EFAULT,
        )?;
        edge.check_untouched("wait across the edge")?;
        let mut info = ExitInfo::exited(-1);
        let waited = call(WAIT, [handle, &raw mut info as u64, FOREVER, 0, 0, 0]);
        expect_value("wait after the refusals", waited, handle as i64)?;
        expect_exit("the child, after the refused waits,", info, 5)?;
        Ok(())
    })();
    if outcome.is_err() {
        let _ = sys::wait(Some(child));
    }
    outcome
}


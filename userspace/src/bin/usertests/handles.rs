//! Handles: what `handle_info` reports; forged, closed and out-of-range numbers, wrong kinds
//! and missing rights refused by every syscall that takes a handle; `handle_duplicate`
//! narrowing and never widening; objects living exactly as long as their last handle; a full
//! handle table; every kind of handle closed when its holder ends; the handles `spawn` gives
//! a child (copies, in order, nothing else); the power handle only the first process has.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::{E2BIG, EBADF, EFAULT, EINVAL, EMFILE, EPERM};
use abi::handle::{HANDLE_MAX, Kind, NO_HANDLE, rights};
use abi::syscall::{
    CALL, ENDPOINT_BIND, ENDPOINT_MINT, HANDLE_CLOSE, HANDLE_DUPLICATE, HANDLE_INFO, HANDLE_LIST, KILL, MEMORY_MAP, PROCESS_PID, READ,
    RECV, REPLY, REPLY_RECV, SIGNAL, SPAWN, WAIT, WAIT_NOTIFICATION, WRITE,
};
use abi::{PROT_READ, PROT_WRITE, SPAWN_HANDLES_MAX};
use userlib::check;
use userlib::ipc::{self, Endpoint, Message, Notification, OwnedHandle, SharedMemory};
use userlib::sys::{self, EntryPath, Errno};
use userlib::testing::{Case, Context, Helper, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here handle_info_reports_kind_and_rights,
    here forged_handle_numbers_refused,
    here closed_handle_refused,
    here a_closed_handles_number_is_not_given_again,
    here handle_list_names_every_handle_held,
    here wrong_kind_refused,
    here missing_rights_refused,
    here duplicate_narrows_never_widens,
    here objects_live_as_long_as_their_handles,
    child handle_table_fills_with_emfile,
    here handles_closed_at_exit,
    here spawn_passes_copies_of_handles,
    here spawn_handle_errors,
    here spawn_without_handles_has_no_console,
    here power_handle_only_for_the_first_process,
];

pub const HELPERS: &[(&str, Helper)] = &[
    ("hold_every_kind", helper_hold_every_kind),
    ("report_handles", helper_report_handles),
    ("no_console", helper_no_console),
    ("no_power", helper_no_power),
];

/// Rights of the handles the kernel and the create calls give out.
const SHARED: u32 = rights::DUPLICATE | rights::TRANSFER;
/// A console session, as init hands them out: standard input, output and error.
const SESSION_RIGHTS: u32 = SHARED | rights::SEND;
const ENDPOINT_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::SEND | rights::RECEIVE | rights::MINT;
const NOTIFICATION_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::SIGNAL | rights::WAIT;
const MEMORY_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::READ | rights::WRITE | rights::EXECUTE;
const PROCESS_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::WAIT | rights::KILL | rights::DEBUG;
const POWER_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::POWER;

fn notification() -> Result<Notification, String> {
    Notification::create().context("notification_create")
}

fn shared_memory() -> Result<SharedMemory, String> {
    SharedMemory::create(1).context("memory_create")
}

fn handle_info_reports_kind_and_rights() -> Outcome {
    expect_handle("standard input", 0, Kind::Endpoint, SESSION_RIGHTS)?;
    expect_handle("standard output", 1, Kind::Endpoint, SESSION_RIGHTS)?;
    expect_handle("standard error", 2, Kind::Endpoint, SESSION_RIGHTS)?;
    let endpoint = endpoint()?;
    expect_handle("a new endpoint", endpoint.handle().raw(), Kind::Endpoint, ENDPOINT_RIGHTS)?;
    let signal = notification()?;
    expect_handle("a new notification", signal.handle().raw(), Kind::Notification, NOTIFICATION_RIGHTS)?;
    let memory = shared_memory()?;
    expect_handle("new shared memory", memory.handle().raw(), Kind::Memory, MEMORY_RIGHTS)?;
    let child = spawn_child("sleeper", &["forever"])?;
    let process = expect_handle("a spawned child", child.handle, Kind::Process, PROCESS_RIGHTS);
    kill_and_reap(&[child])?;
    process?;
    for number in [HANDLE_MAX as u64, 1 << 32, NO_HANDLE] {
        expect_errno(&format!("handle_info({number:#x})"), call(HANDLE_INFO, [number, 0, 0, 0, 0, 0]), EBADF)?;
    }
    Ok(())
}

/// Every syscall that takes a handle, called with `handle` where it takes one (both places
/// for `endpoint_bind`, the endpoint for `reply_recv`) and harmless other arguments: a name
/// and the result of each.
fn use_handle(handle: u64) -> Vec<(&'static str, i64)> {
    let mut byte = [0u8; 1];
    let out = byte.as_mut_ptr() as u64;
    let ipc_result = |number: u64, first: u64, endpoint: u64| ipc(number, first, &Message::default(), 0, 0, endpoint).result;
    alloc::vec![
        ("write", call(WRITE, [handle, out, 1, 0, 0, 0])),
        ("read", call(READ, [handle, out, 1, 0, 0, 0])),
        ("wait", call(WAIT, [handle, 0, 0, 0, 0, 0])),
        ("kill", call(KILL, [handle, 0, 0, 0, 0, 0])),
        ("shutdown", refused_shutdown(EntryPath::Syscall, handle)),
        ("handle_close", call(HANDLE_CLOSE, [handle, 0, 0, 0, 0, 0])),
        ("handle_duplicate", call(HANDLE_DUPLICATE, [handle, u64::from(rights::ALL), 0, 0, 0, 0])),
        ("handle_info", call(HANDLE_INFO, [handle, 0, 0, 0, 0, 0])),
        ("endpoint_mint", call(ENDPOINT_MINT, [handle, 1, u64::from(rights::ALL), 0, 0, 0])),
        ("endpoint_bind (endpoint)", call(ENDPOINT_BIND, [handle, handle, 0, 0, 0, 0])),
        ("call", ipc_result(CALL, handle, 0)),
        ("recv", ipc_result(RECV, handle, 0)),
        ("reply", ipc_result(REPLY, handle, 0)),
        ("reply_recv (endpoint)", ipc_result(REPLY_RECV, NO_HANDLE, handle)),
        ("signal", call(SIGNAL, [handle, 1, 0, 0, 0, 0])),
        ("wait_notification", call(WAIT_NOTIFICATION, [handle, 0, 0, 0, 0, 0])),
        ("memory_map", call(MEMORY_MAP, [handle, 0, PROT_READ, 0, 0, 0])),
        ("process_pid", call(PROCESS_PID, [handle, 0, 0, 0, 0, 0])),
    ]
}

/// Fails unless every syscall refused `handle` (called `what`) with EBADF.
fn expect_refused_everywhere(what: &str, handle: u64) -> Outcome {
    for (syscall, result) in use_handle(handle) {
        expect_errno(&format!("{syscall} on {what}"), result, EBADF)?;
    }
    Ok(())
}

fn forged_handle_numbers_refused() -> Outcome {
    let objects = live_objects()?;
    let free = crate::processes::free_handle_number().ok_or("no free handle number")?;
    for (number, what) in [
        (free, "a free number"),
        (HANDLE_MAX as u64 - 1, "the last number, free"),
        (HANDLE_MAX as u64, "HANDLE_MAX"),
        (HANDLE_MAX as u64 + 1, "HANDLE_MAX + 1"),
        (1 << 32, "2^32 (0 if truncated)"),
        (1 << 32 | 1, "2^32 + 1 (1 if truncated)"),
        (u64::from(u32::MAX), "u32::MAX"),
        (i64::MAX as u64, "i64::MAX"),
        (NO_HANDLE - 1, "NO_HANDLE - 1"),
    ] {
        expect_refused_everywhere(what, number)?;
        for (syscall, number_arg) in [(HANDLE_INFO, number), (HANDLE_CLOSE, number)] {
            expect_errno_both(&format!("syscall {syscall} on {what}"), syscall, [number_arg, 0, 0, 0, 0, 0], EBADF)?;
        }
    }
    expect_handle("standard output, after every forged number", 1, Kind::Endpoint, SESSION_RIGHTS)?;
    expect_objects_back(objects, "after the forged numbers")
}

fn closed_handle_refused() -> Outcome {
    let closed = endpoint()?.into_raw();
    expect_value("handle_close", call(HANDLE_CLOSE, [closed, 0, 0, 0, 0, 0]), 0)?;
    expect_refused_everywhere("a closed endpoint handle", closed)?;
    let closed = notification()?.handle().duplicate(rights::ALL).context("handle_duplicate")?.into_raw();
    ipc::close(closed).context("handle_close")?;
    expect_refused_everywhere("a closed notification handle", closed)
}

/// A closed handle's number names nothing afterwards, even when its slot is the next one
/// used: 300 handles made and closed one after another get 300 different numbers, each below
/// bit 31, and the old ones are `EBADF`.
fn a_closed_handles_number_is_not_given_again() -> Outcome {
    let mut seen: Vec<u64> = Vec::new();
    for _ in 0..300 {
        let made = notification()?;
        let number = made.handle().raw();
        check!(number < 1 << 31, "handle number {number:#x} reaches bit 31 (COPY_HANDLE's)");
        check!(!seen.contains(&number), "number {number:#x} was given again after {} others", seen.len());
        // Dropping it closes it.
        drop(made);
        seen.push(number);
    }
    let current = notification()?;
    for &old in &seen {
        expect_refused_everywhere(&format!("closed handle {old:#x}"), old)?;
    }
    check!(!seen.contains(&current.handle().raw()), "a live handle got a closed one's number");
    Ok(())
}

/// `handle_list` names exactly the handles held, in slot order, whatever their numbers.
fn handle_list_names_every_handle_held() -> Outcome {
    let before = ipc::held_handles().context("handle_list")?;
    check!(before.iter().all(|&number| ipc::handle_info(number).is_ok()), "listed numbers name nothing: {before:?}");
    // A number of a later generation: made, closed, made again in the same slot.
    let first = notification()?;
    let slot = first.handle().raw();
    drop(first);
    let again = notification()?;
    let made = [again.handle().raw(), endpoint()?.into_raw()];
    let after = ipc::held_handles().context("handle_list")?;
    for number in made {
        check!(after.contains(&number), "handle {number:#x} is not listed: {after:?}");
    }
    check!(!after.contains(&slot), "the closed number {slot:#x} is still listed: {after:?}");
    check!(after.len() == before.len() + 2, "{} handles listed, {} before and 2 made", after.len(), before.len());
    let mut short = [0u32; 1];
    let total = call(HANDLE_LIST, [short.as_mut_ptr() as u64, 1, 0, 0, 0, 0]);
    check!(total == after.len() as i64, "handle_list into one slot returned {total}, not the total {}", after.len());
    check!(u64::from(short[0]) == after[0], "the one slot got {:#x}, not the first handle {:#x}", short[0], after[0]);
    expect_errno("handle_list into unmapped memory", call(HANDLE_LIST, [0x1000, 4, 0, 0, 0, 0]), EFAULT)?;
    ipc::close(made[1]).context("handle_close")?;
    Ok(())
}

fn wrong_kind_refused() -> Outcome {
    let endpoint = endpoint()?;
    let signal = notification()?;
    let memory = shared_memory()?;
    let child = spawn_child("sleeper", &["forever"])?;
    let outcome: Outcome = (|| {
        let (ep, n, m, p) = (endpoint.handle().raw(), signal.handle().raw(), memory.handle().raw(), child.handle);
        let mut byte = [0u8; 1];
        let out = byte.as_mut_ptr() as u64;
        let ipc_result = |number: u64, first: u64, endpoint: u64| ipc(number, first, &Message::default(), 0, 0, endpoint).result;
        for (what, result) in [
            ("write to a notification", call(WRITE, [n, out, 1, 0, 0, 0])),
            ("read from a process", call(READ, [p, out, 1, 0, 0, 0])),
            ("wait on a notification", call(WAIT, [n, 0, 0, 0, 0, 0])),
            ("kill of an endpoint", call(KILL, [ep, 0, 0, 0, 0, 0])),
            ("shutdown through the console", refused_shutdown(EntryPath::Int80, 1)),
            ("shutdown through a process", refused_shutdown(EntryPath::Syscall, p)),
            ("endpoint_mint of a notification", call(ENDPOINT_MINT, [n, 1, u64::from(rights::ALL), 0, 0, 0])),
            ("endpoint_bind of a notification to a notification", call(ENDPOINT_BIND, [n, n, 0, 0, 0, 0])),
            ("call on a notification", ipc_result(CALL, n, 0)),
            ("call on a process", ipc_result(CALL, p, 0)),
            ("recv on shared memory", ipc_result(RECV, m, 0)),
            ("reply through an endpoint", ipc_result(REPLY, ep, 0)),
            ("reply through the console", ipc_result(REPLY, 1, 0)),
            ("reply_recv on a notification", ipc_result(REPLY_RECV, NO_HANDLE, n)),
            ("signal of an endpoint", call(SIGNAL, [ep, 1, 0, 0, 0, 0])),
            ("signal of a process", call(SIGNAL, [p, 1, 0, 0, 0, 0])),
            ("wait_notification on an endpoint", call(WAIT_NOTIFICATION, [ep, 0, 0, 0, 0, 0])),
            ("memory_map of an endpoint", call(MEMORY_MAP, [ep, 0, PROT_READ, 0, 0, 0])),
            ("memory_map of a process", call(MEMORY_MAP, [p, 0, PROT_READ, 0, 0, 0])),
            ("process_pid of a notification", call(PROCESS_PID, [n, 0, 0, 0, 0, 0])),
        ] {
            expect_errno(what, result, EBADF)?;
        }
        Ok(())
    })();
    kill_and_reap(&[child])?;
    outcome
}

fn missing_rights_refused() -> Outcome {
    let endpoint = endpoint()?;
    let signal = notification()?;
    let without = |handle: &OwnedHandle, kind_rights: u32, right: u32| duplicate(handle, kind_rights & !right);
    let no_send = without(endpoint.handle(), ENDPOINT_RIGHTS, rights::SEND)?;
    let no_receive = without(endpoint.handle(), ENDPOINT_RIGHTS, rights::RECEIVE)?;
    let no_signal = without(signal.handle(), NOTIFICATION_RIGHTS, rights::SIGNAL)?;
    let no_wait = without(signal.handle(), NOTIFICATION_RIGHTS, rights::WAIT)?;
    let no_duplicate = without(signal.handle(), NOTIFICATION_RIGHTS, rights::DUPLICATE)?;
    // Reading and writing a console session need SEND (they are calls to the console).
    let deaf = OwnedHandle::from_raw(ipc::duplicate(0, rights::ALL & !rights::SEND).context("handle_duplicate of standard input")?);
    let mute = OwnedHandle::from_raw(ipc::duplicate(1, rights::ALL & !rights::SEND).context("handle_duplicate of standard output")?);
    let text = b"must not appear\n";
    let mut byte = [0u8; 1];
    for (what, result) in [
        ("call without SEND", ipc(CALL, no_send.raw(), &Message::default(), 0, 0, 0).result),
        ("recv without RECEIVE", ipc(RECV, no_receive.raw(), &Message::default(), 0, 0, 0).result),
        ("reply_recv on an endpoint without RECEIVE", ipc(REPLY_RECV, NO_HANDLE, &Message::default(), 0, 0, no_receive.raw()).result),
        ("signal without SIGNAL", call(SIGNAL, [no_signal.raw(), 1, 0, 0, 0, 0])),
        ("wait_notification without WAIT", call(WAIT_NOTIFICATION, [no_wait.raw(), 0, 0, 0, 0, 0])),
        ("handle_duplicate without DUPLICATE", call(HANDLE_DUPLICATE, [no_duplicate.raw(), u64::from(rights::ALL), 0, 0, 0, 0])),
        ("write through a copy of standard output without SEND", call(WRITE, [mute.raw(), text.as_ptr() as u64, text.len() as u64, 0, 0, 0])),
        ("read through a copy of standard input without SEND", call(READ, [deaf.raw(), byte.as_mut_ptr() as u64, 1, 0, 0, 0])),
    ] {
        expect_errno(what, result, EPERM)?;
    }
    // The refused signal set no bits; the call without SEND queued nothing.
    check!(signal.wait(0) == Err(Errno(abi::errno::EAGAIN)), "a refused signal set bits");
    let polled = ipc(RECV, endpoint.handle().raw(), &Message::default(), 0, 0, 0);
    expect_errno("recv after the refused call", polled.result, abi::errno::EAGAIN)
}

fn duplicate_narrows_never_widens() -> Outcome {
    let original = notification()?;
    let n = original.handle();
    let signal_only = duplicate(n, rights::SIGNAL | rights::DUPLICATE)?;
    expect_handle("a duplicate asking for SIGNAL and DUPLICATE", signal_only.raw(), Kind::Notification, rights::SIGNAL | rights::DUPLICATE)?;
    let widened = duplicate(&signal_only, rights::ALL)?;
    expect_handle("a duplicate of it asking for every right", widened.raw(), Kind::Notification, rights::SIGNAL | rights::DUPLICATE)?;
    let beyond = duplicate(n, 0xffff_f000 | rights::WAIT)?;
    expect_handle("a duplicate asking for WAIT and undefined bits", beyond.raw(), Kind::Notification, rights::WAIT)?;
    let none = duplicate(n, 0)?;
    expect_handle("a duplicate with no rights", none.raw(), Kind::Notification, 0)?;
    expect_errno("signal through a handle with no rights", call(SIGNAL, [none.raw(), 1, 0, 0, 0, 0]), EPERM)?;
    let again = ipc::duplicate(none.raw(), rights::ALL);
    check!(again == Err(Errno(EPERM)), "duplicate of a handle without DUPLICATE returned {again:?}");
    for rights_arg in [1 << 32, u64::MAX] {
        let result = call(HANDLE_DUPLICATE, [n.raw(), rights_arg, 0, 0, 0, 0]);
        expect_errno(&format!("handle_duplicate with rights {rights_arg:#x}"), result, EINVAL)?;
    }
    let console = OwnedHandle::from_raw(ipc::duplicate(1, rights::SEND | rights::RECEIVE).context("handle_duplicate")?);
    expect_handle("standard output duplicated asking for RECEIVE too", console.raw(), Kind::Endpoint, rights::SEND)?;
    // The narrowed handles name the same object.
    expect_value("signal through the narrowed copy", call(SIGNAL, [signal_only.raw(), 6, 0, 0, 0, 0]), 0)?;
    expect_value("wait through the WAIT-only copy", call(WAIT_NOTIFICATION, [beyond.raw(), 0, 0, 0, 0, 0]), 6)
}

fn objects_live_as_long_as_their_handles() -> Outcome {
    let base = live_objects()?;
    let signal = notification()?;
    check!(live_objects()? == base + 1, "a notification made {} objects", live_objects()? - base);
    let copy = duplicate(signal.handle(), rights::ALL)?;
    check!(live_objects()? == base + 1, "a duplicate handle made an object");
    drop(signal);
    check!(live_objects()? == base + 1, "the notification died with a handle to it left");
    drop(copy);
    check!(live_objects()? == base, "the notification outlived its last handle");
    // An endpoint and the handle's reference to it (with its badge) are two objects; a
    // minted handle is a third, which keeps the endpoint alive on its own.
    let endpoint = endpoint()?;
    check!(live_objects()? == base + 2, "an endpoint made {} objects", live_objects()? - base);
    let minted = endpoint.mint(1, false).context("endpoint_mint")?;
    check!(live_objects()? == base + 3, "a minted handle made {} objects", live_objects()? - base - 2);
    drop(endpoint);
    check!(live_objects()? == base + 2, "closing the endpoint's own handle left {} objects", live_objects()? - base);
    drop(minted);
    check!(live_objects()? == base, "{} objects outlived the endpoint's last handle", live_objects()? - base);
    Ok(())
}

fn handle_table_fills_with_emfile() -> Outcome {
    // The image the refused spawn below would start, read now: read with a full table, the
    // file server's answer (a memory object) would be refused too, and the server, perhaps on
    // another CPU, drops that object whenever it gets to it.
    userlib::testing::own_image().context("own_image")?;
    let used = ipc::held_handles().context("handle_list")?.len();
    let endpoint = endpoint()?;
    let mut copies = Vec::new();
    let refusal = loop {
        match ipc::duplicate(1, rights::WRITE) {
            Ok(copy) => copies.push(OwnedHandle::from_raw(copy)),
            Err(errno) => break errno,
        }
        check!(copies.len() <= HANDLE_MAX, "more than HANDLE_MAX handles");
    };
    check!(refusal == Errno(EMFILE), "duplicate into a full table failed with {refusal}");
    check!(copies.len() == HANDLE_MAX - used - 1, "{} handles fitted beside {} in use", copies.len(), used + 1);
    let before = info()?;
    let frames = system_frames()?;
    let ep = endpoint.handle().raw();
    for (what, result) in [
        ("endpoint_create", Endpoint::create().map(Endpoint::into_raw)),
        ("notification_create", Notification::create().map(|n| n.handle().raw())),
        ("memory_create", SharedMemory::create(16).map(|m| m.handle().raw())),
        ("endpoint_mint", endpoint.mint(1, false).map(Endpoint::into_raw)),
        ("handle_duplicate", ipc::duplicate(ep, rights::ALL)),
        ("spawn", userlib::testing::spawn_self(&["usertests", "--child", "exit_with", "0"], &[0, 1, 2]).map(|child| child.handle)),
    ] {
        check!(result == Err(Errno(EMFILE)), "{what} with a full handle table returned {result:?}");
    }
    let after = info()?;
    check!(after.processes == before.processes, "a refused spawn left {} processes, {} before", after.processes, before.processes);
    check!(after.kernel_objects == before.kernel_objects, "the refusals left {} objects, {} before", after.kernel_objects, before.kernel_objects);
    let frames_after = system_frames()?;
    check!(frames_after == frames, "the refusals left {frames_after} frames, {frames} before");
    copies.pop();
    let signal = notification()?;
    expect_handle("a notification made once a slot was free", signal.handle().raw(), Kind::Notification, NOTIFICATION_RIGHTS)
}

/// `hold_every_kind`: makes one handle of every kind it can (an endpoint, a minted handle
/// with a close notice, a bound notification, mapped shared memory, a child it never waits
/// for), copies of each, and exits without closing any; 0, or [`errno_status`] of a failure.
fn helper_hold_every_kind(_: &[&str]) -> i32 {
    let made = (|| -> sys::Result<()> {
        let endpoint = Endpoint::create()?;
        let minted = endpoint.mint(5, true)?;
        let signal = Notification::create()?;
        endpoint.bind(&signal)?;
        signal.signal(1)?;
        let memory = SharedMemory::create(2)?;
        memory.map(0, PROT_READ | PROT_WRITE)?;
        let child = userlib::testing::spawn_self(&["usertests", "--child", "exit_with", "0"], &[0, 1, 2])?;
        for handle in [endpoint.handle(), minted.handle(), signal.handle(), memory.handle()] {
            handle.duplicate(rights::ALL)?.into_raw();
        }
        ipc::duplicate(child.handle, rights::ALL)?;
        // Ends here, with every handle above still open.
        sys::exit(0)
    })();
    match made {
        Ok(()) => 0,
        Err(errno) => errno_status(errno.0),
    }
}

fn handles_closed_at_exit() -> Outcome {
    let objects = live_objects()?;
    let frames = system_frames()?;
    expect_child_status("hold_every_kind", &[], 0)?;
    expect_objects_back(objects, "after a process holding every kind of handle ended")?;
    let after = system_frames()?;
    check!(after == frames, "{after} frames after the holder ended, {frames} before");
    Ok(())
}

/// `report_handles KIND:RIGHTS...`: exits with bit `i` set for each handle `i` whose kind
/// and rights are the `i`-th argument's (kind as `abi::handle::Kind`'s number, rights in
/// hex), and bit 8 set if the handle after them is free. Then signals its handle 0 (a
/// notification, for the suite to see) with 0x5.
fn helper_report_handles(args: &[&str]) -> i32 {
    let mut matched = 0;
    for (index, expected) in args.iter().enumerate() {
        let (kind, rights) = expected.split_once(':').unwrap_or((expected, "0"));
        let want = (kind.parse::<u32>().ok().and_then(Kind::from_u32), u32::from_str_radix(rights, 16).unwrap_or(u32::MAX));
        if ipc::handle_info(index as u64) == Ok(want) {
            matched |= 1 << index;
        }
    }
    if ipc::handle_info(args.len() as u64) == Err(Errno(EBADF)) {
        matched |= 1 << 8;
    }
    let _ = call(SIGNAL, [0, 0x5, 0, 0, 0, 0]);
    matched
}

fn spawn_passes_copies_of_handles() -> Outcome {
    let signal = notification()?;
    let endpoint = endpoint()?;
    let memory = shared_memory()?;
    let narrowed = duplicate(signal.handle(), rights::DUPLICATE | rights::SIGNAL)?;
    let expected = [
        (Kind::Notification, rights::DUPLICATE | rights::SIGNAL),
        (Kind::Endpoint, ENDPOINT_RIGHTS),
        (Kind::Endpoint, SESSION_RIGHTS),
        (Kind::Memory, MEMORY_RIGHTS),
    ];
    let handles = [narrowed.raw() as u32, endpoint.handle().raw() as u32, 2, memory.handle().raw() as u32];
    let described: Vec<String> = expected.iter().map(|(kind, rights)| format!("{}:{rights:x}", *kind as u32)).collect();
    let described: Vec<&str> = described.iter().map(|text| text.as_str()).collect();
    let child = spawn_with_handles("report_handles", &described, &handles)?;
    let ended = finish_within(child, "report_handles")?;
    expect_exit("report_handles (bit i: handle i as expected; bit 8: nothing after them)", ended, 0x10f)?;
    expect_handle("the notification given to the child", narrowed.raw(), Kind::Notification, rights::DUPLICATE | rights::SIGNAL)?;
    expect_handle("the endpoint given to the child", endpoint.handle().raw(), Kind::Endpoint, ENDPOINT_RIGHTS)?;
    let bits = signal.wait(0);
    check!(bits == Ok(5), "the child's signal through its copy arrived as {bits:?}");
    Ok(())
}

fn spawn_handle_errors() -> Outcome {
    let before = info()?;
    let signal = notification()?;
    let no_duplicate = duplicate(signal.handle(), NOTIFICATION_RIGHTS & !rights::DUPLICATE)?;
    let free = crate::processes::free_handle_number().ok_or("no free handle number")? as u32;
    let argv = [user_str(b"usertests"), user_str(b"--child"), user_str(b"exit_with"), user_str(b"0")];
    let image = own_image();
    let spawn_with = |handles: u64, count: u64| call(SPAWN, [image, argv.as_ptr() as u64, argv.len() as u64, handles, count, NO_HANDLE]);
    let too_many = [1u32; SPAWN_HANDLES_MAX + 1];
    for (handles, what, errno) in [
        (&[free][..], "a free handle number", EBADF),
        (&[1, HANDLE_MAX as u32][..], "handle HANDLE_MAX", EBADF),
        (&[no_duplicate.raw() as u32][..], "a handle without DUPLICATE", EPERM),
        (&too_many[..], "SPAWN_HANDLES_MAX + 1 handles", E2BIG),
    ] {
        expect_errno(&format!("spawn with {what}"), spawn_with(handles.as_ptr() as u64, handles.len() as u64), errno)?;
    }
    expect_errno("spawn with u64::MAX handles", spawn_with(too_many.as_ptr() as u64, u64::MAX), E2BIG)?;
    for &(pointer, what) in BAD_POINTERS.iter().filter(|(pointer, _)| *pointer != 0) {
        expect_errno(&format!("spawn with its handle list at {what}"), spawn_with(pointer, 1), EFAULT)?;
    }
    let edge = Edge::new()?;
    expect_errno("spawn with its handle list running into the unmapped page", spawn_with(edge.before_end(4), 2), EFAULT)?;
    drop((signal, no_duplicate));
    let after = info()?;
    check!(after.processes == before.processes, "refused spawns left {} processes, {} before", after.processes, before.processes);
    check!(after.kernel_objects == before.kernel_objects, "refused spawns left {} objects, {} before", after.kernel_objects, before.kernel_objects);
    // The most handles a child may get, all of them the same one.
    let most = [1u32; SPAWN_HANDLES_MAX];
    let child = spawn_with(most.as_ptr() as u64, most.len() as u64);
    check!(child >= 0, "spawn with SPAWN_HANDLES_MAX handles: {}", show(child));
    let child = sys::Child { handle: child as u64, pid: sys::process_pid(child as u64).context("process_pid")? };
    expect_exit("a child given SPAWN_HANDLES_MAX handles", finish_within(child, "the child")?, 0)
}

/// `no_console`: started with no handles; exits 0 if it has none (writing, reading and
/// asking about handles 0 to 2 all fail with EBADF), else 1.
fn helper_no_console(_: &[&str]) -> i32 {
    let mut byte = [0u8; 1];
    let text = b"must not appear\n";
    let refused = (0..3).all(|number| {
        call(WRITE, [number, text.as_ptr() as u64, text.len() as u64, 0, 0, 0]) == -EBADF
            && call(READ, [number, byte.as_mut_ptr() as u64, 1, 0, 0, 0]) == -EBADF
            && ipc::handle_info(number) == Err(Errno(EBADF))
    });
    if refused { 0 } else { 1 }
}

fn spawn_without_handles_has_no_console() -> Outcome {
    let child = spawn_with_handles("no_console", &[], &[])?;
    expect_exit("a child started without handles (1: it had a console)", finish_within(child, "no_console")?, 0)
}

/// `no_power`: calls `shutdown` on every handle number; exits 0 when each is refused with
/// EBADF (it holds no power handle), else 1 (if it had one, the machine is off).
fn helper_no_power(_: &[&str]) -> i32 {
    let held = ipc::held_handles().unwrap_or_default();
    let refused = held.into_iter().chain(0..HANDLE_MAX as u64).all(|number| refused_shutdown(EntryPath::Syscall, number) == -EBADF);
    if refused { 0 } else { 1 }
}

fn power_handle_only_for_the_first_process() -> Outcome {
    let power: Vec<u64> = ipc::held_handles()
        .context("handle_list")?
        .into_iter()
        .filter(|&number| matches!(ipc::handle_info(number), Ok((Some(Kind::Power), _))))
        .collect();
    // init gives the power handle to the program it runs (this suite, or the shell) as 5.
    if !power.is_empty() {
        check!(power == [5], "this suite holds power handles {power:?}, expected [5]");
        expect_handle("the power handle", 5, Kind::Power, POWER_RIGHTS)?;
        let powerless = duplicate(&OwnedHandle::from_raw(ipc::duplicate(5, rights::ALL).context("handle_duplicate")?), SHARED)?;
        expect_errno("shutdown through a power handle without POWER", refused_shutdown(EntryPath::Syscall, powerless.raw()), EPERM)?;
    } else {
        check!(sys::getppid() != 1, "the suite, started by init, holds no power handle");
    }
    for path in [EntryPath::Syscall, EntryPath::Int80] {
        expect_errno(&format!("shutdown through the console ({path:?})"), refused_shutdown(path, 1), EBADF)?;
    }
    expect_child_status("no_power", &[], 0)
}

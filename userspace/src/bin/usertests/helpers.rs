//! The helper roles of multi-process cases, each run as `usertests --child ROLE ARGS...`:
//! processes that exit with a given status, sleep, spin, read the console, report what they
//! see, start children of their own, or leave state behind for another process to look at.

use alloc::format;
use alloc::vec::Vec;
use core::arch::asm;
use core::hint::black_box;

use abi::ExitInfo;
use abi::errno::{EAGAIN, EBADF, ENOMEM};
use abi::handle::rights;
use abi::ipc::FOREVER;
use abi::status::KILLED;
use abi::syscall::{CALL, SLEEP, YIELD};
use userlib::ipc::{self, Endpoint, Message, OwnedHandle};
use userlib::println;
use userlib::process;
use userlib::sys::{self, Child, EntryPath, Errno};
use userlib::testing::Helper;

use crate::common::*;
use crate::processes::ECHO_ARGS;
use crate::registers::FpuState;

pub const HELPERS: &[(&str, Helper)] = &[
    ("exit_with", helper_exit_with),
    ("exit_after", helper_exit_after),
    ("sleeper", helper_sleeper),
    ("sleep_ns", helper_sleep_ns),
    ("spinner", helper_spinner),
    ("spin_window", helper_spin_window),
    ("interrupts_off_spinner", helper_interrupts_off_spinner),
    ("console_reader", helper_console_reader),
    ("newline_flood", helper_newline_flood),
    ("report_pid", helper_report_pid),
    ("report_ppid", helper_report_ppid),
    ("echo_args", helper_echo_args),
    ("arg_stats", helper_arg_stats),
    ("caller", helper_caller),
    ("parent_of_caller", helper_parent_of_caller),
    ("report_grandchild", helper_report_grandchild),
    ("orphan_parent", helper_orphan_parent),
    ("orphan_grandchild", helper_orphan_grandchild),
    ("kill_self", helper_kill_self),
    ("kill_every_number", helper_kill_every_number),
    ("bomb", helper_bomb),
    ("memory_hog", helper_memory_hog),
    ("region_hog", helper_region_hog),
    ("nt_yielder", helper_nt_yielder),
    ("int80_sleeper", helper_int80_sleeper),
    ("fpu_writer", helper_fpu_writer),
    ("fpu_reader", helper_fpu_reader),
    ("raw_mode_then_exit", helper_raw_mode_then_exit),
    ("long_writer", helper_long_writer),
];

/// Parses argument `index` of a helper.
pub fn arg<T: core::str::FromStr>(args: &[&str], index: usize) -> T {
    match args.get(index).map(|text| text.parse()) {
        Some(Ok(value)) => value,
        _ => panic!("helper argument {index} missing or malformed in {args:?}"),
    }
}

/// `exit_with STATUS`.
fn helper_exit_with(args: &[&str]) -> i32 {
    arg(args, 0)
}

/// `exit_after MS STATUS`.
fn helper_exit_after(args: &[&str]) -> i32 {
    let _ = sys::sleep_ms(arg(args, 0));
    arg(args, 1)
}

/// `sleeper MS` or `sleeper forever`.
fn helper_sleeper(args: &[&str]) -> i32 {
    let ms = if args.first() == Some(&"forever") { u64::MAX } else { arg(args, 0) };
    match sys::sleep_ms(ms) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// `sleep_ns NS`.
fn helper_sleep_ns(args: &[&str]) -> i32 {
    match sys::sleep_ns(arg(args, 0)) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// `spinner`: spins until killed.
fn helper_spinner(_: &[&str]) -> i32 {
    loop {
        core::hint::spin_loop();
    }
}

/// `spin_window START END` (uptime in ns): sleeps until START, then counts loop iterations
/// until END. Exits 0 if it counted any, 1 if it never ran inside the window.
fn helper_spin_window(args: &[&str]) -> i32 {
    let (start, end): (u64, u64) = (arg(args, 0), arg(args, 1));
    let _ = sys::sleep_ns(start.saturating_sub(now()));
    let mut count = 0u64;
    while now() < end {
        for _ in 0..1000 {
            count = black_box(count + 1);
        }
    }
    if count > 0 { 0 } else { 1 }
}

/// `interrupts_off_spinner`: asks for IF clear with `popfq`, then spins. Exits 2 at once if
/// IF really went clear.
fn helper_interrupts_off_spinner(_: &[&str]) -> i32 {
    // SAFETY: `popfq` at CPL 3 with IOPL 0 leaves IF alone, which is what is being tested;
    // the rest of RFLAGS is unchanged.
    unsafe { asm!("pushfq", "and qword ptr [rsp], ~0x200", "popfq") };
    if rflags() & 0x200 == 0 {
        return 2;
    }
    loop {
        core::hint::spin_loop();
    }
}

/// `console_reader`: reads the console, which nobody types on; exits [`REACHED_END`] if the
/// read returns.
fn helper_console_reader(_: &[&str]) -> i32 {
    let mut buffer = [0u8; 16];
    let _ = sys::read(0, &mut buffer);
    REACHED_END
}

/// `raw_mode_then_exit`: after 200 ms (its parent makes it the foreground process
/// meanwhile), puts the console in raw mode and exits without restoring it.
fn helper_raw_mode_then_exit(_: &[&str]) -> i32 {
    let _ = sys::sleep_ms(200);
    match sys::console_mode(abi::CONSOLE_RAW) {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

/// `newline_flood`: one 1 MiB write of newlines to the console, then exit 0.
fn helper_newline_flood(_: &[&str]) -> i32 {
    let text = alloc::vec![b'\n'; 1024 * 1024];
    match sys::write(userlib::io::STDOUT, &text) {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

/// `long_writer`: one 1 MiB write of NUL bytes, which no console shows but each costs a
/// serial port write (seconds under emulation), then exit 0.
fn helper_long_writer(_: &[&str]) -> i32 {
    let text = alloc::vec![0u8; 1024 * 1024];
    match sys::write(userlib::io::STDOUT, &text) {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

/// `report_pid`: exits with its pid.
fn helper_report_pid(_: &[&str]) -> i32 {
    sys::getpid() as i32
}

/// `report_ppid`: exits with its parent's pid.
fn helper_report_ppid(_: &[&str]) -> i32 {
    sys::getppid() as i32
}

/// `echo_args ARGS...`: exits 0 if ARGS are [`ECHO_ARGS`].
fn helper_echo_args(args: &[&str]) -> i32 {
    if args == ECHO_ARGS {
        0
    } else {
        println!("  echo_args: got {args:?}");
        1
    }
}

/// `arg_stats ...`: exits with `(argc << 16) | total argument bytes`, argv\[0\] included.
fn helper_arg_stats(_: &[&str]) -> i32 {
    let all = userlib::args();
    let bytes: usize = all.iter().map(|arg| arg.len()).sum();
    ((all.len() as i32) << 16) | bytes as i32
}

/// `caller [LABEL [TIMEOUT_MS|forever [move]]]`: calls its handle 3 (an endpoint) with
/// LABEL (default 0), moving its handle 4 along with `move`, and waits at most TIMEOUT_MS
/// (default: for ever). Exits with the reply's label, or [`errno_status`] of the failure.
fn helper_caller(args: &[&str]) -> i32 {
    let label = args.first().map_or(0, |_| arg(args, 0));
    let timeout = match args.get(1) {
        None | Some(&"forever") => FOREVER,
        Some(_) => arg::<u64>(args, 1) * MS,
    };
    let handles: &[u32] = if args.get(2) == Some(&"move") { &[4] } else { &[] };
    let mut message = buffers(&[], handles, &mut []);
    let called = ipc(CALL, 3, &Message::new(label, [0; 4]), &raw mut message as u64, timeout, 0);
    if called.result < 0 { errno_status(-called.result) } else { called.message.label as i32 }
}

/// Starts a `caller` of a new endpoint of its own; a process that ends takes its endpoint
/// with it, so the caller then ends too.
fn start_caller() -> sys::Result<Child> {
    let endpoint = Endpoint::create()?;
    let send = endpoint.handle().duplicate(rights::DUPLICATE | rights::SEND)?;
    let caller = userlib::testing::spawn_self(&["usertests", "--child", "caller"], &[0, 1, 2, send.raw() as u32])?;
    // The endpoint's receiving handle stays open until this process ends.
    endpoint.into_raw();
    Ok(caller)
}

/// `parent_of_caller`: starts a `caller` and waits for it; exits 0 when the wait returns.
fn helper_parent_of_caller(_: &[&str]) -> i32 {
    match start_caller() {
        Ok(caller) => match sys::wait(Some(caller)) {
            Ok(_) => 0,
            Err(_) => 1,
        },
        Err(_) => 2,
    }
}

/// `report_grandchild`: starts a `caller` (after 16 other handles, so that the caller's
/// handle number here is one its parent does not use), calls its handle 3 with that number
/// as the label and the caller's pid as word 0, and after the reply kills the caller through
/// that handle; exits 0 if the caller then ended `KILLED`.
fn helper_report_grandchild(_: &[&str]) -> i32 {
    // Started without the file system: its parent gave it the image as handle 4.
    userlib::testing::set_own_image(4);
    let padding: Vec<OwnedHandle> = (0..16).filter_map(|_| ipc::duplicate(1, rights::WRITE).ok().map(OwnedHandle::from_raw)).collect();
    let Ok(caller) = start_caller() else { return 2 };
    drop(padding);
    let parent = Endpoint::from_raw(3);
    let reported = parent.call(&Message::new(caller.handle, [u64::from(caller.pid), 0, 0, 0]));
    parent.into_raw();
    if reported.is_err() || sys::kill(caller).is_err() {
        return 3;
    }
    match sys::wait(Some(caller)) {
        Ok((_, ended)) if ended == ExitInfo::exited(KILLED) => 0,
        _ => 4,
    }
}

/// `orphan_parent ROLE ARGS...`: starts `usertests --child ROLE ARGS...` with its own
/// standard handles and exits at once with the new process's pid.
fn helper_orphan_parent(args: &[&str]) -> i32 {
    // Its parent gives it the image as handle 4 when it gives it no file system.
    if matches!(ipc::handle_info(4), Ok((Some(abi::handle::Kind::Memory), _))) {
        userlib::testing::set_own_image(4);
    }
    let mut argv = alloc::vec!["usertests", "--child"];
    argv.extend_from_slice(args);
    match userlib::testing::spawn_self(&argv, &process::standard_handles()) {
        Ok(child) => child.pid as i32,
        Err(_) => -1,
    }
}

/// `orphan_grandchild`: waits until its parent has left the process table, then calls its
/// handle 3 with its `getppid` as the label and the parent it started with as word 0, and
/// waits for the reply (or its failure); exits 0.
fn helper_orphan_grandchild(_: &[&str]) -> i32 {
    let first = sys::getppid();
    let deadline = now() + CHILD_LIMIT.as_nanos() as u64;
    while Table::read().is_ok_and(|table| table.find(first).is_some()) && now() < deadline {
        let _ = sys::sleep_ms(1);
    }
    let report = Endpoint::from_raw(3);
    let _ = report.call(&Message::new(u64::from(sys::getppid()), [u64::from(first), 0, 0, 0]));
    report.into_raw();
    0
}

/// `kill_self`: receives on its handle 3 a message carrying a handle to itself, and kills
/// itself with it; exits [`REACHED_END`] if that returned.
fn helper_kill_self(_: &[&str]) -> i32 {
    let endpoint = Endpoint::from_raw(3);
    let request = endpoint.recv(&mut [], FOREVER);
    endpoint.into_raw();
    match request {
        Ok(request) => match request.arrived.handles() {
            [itself] => {
                let _ = sys::kill_handle(u64::from(*itself));
                REACHED_END
            }
            _ => 1,
        },
        Err(_) => 2,
    }
}

/// `kill_every_number`: a process started with the console alone tries `kill`, `wait` and
/// `process_pid` on every handle number and a few beyond; exits 0 if each was refused with
/// EBADF (the console is no process; every other number names nothing).
fn helper_kill_every_number(_: &[&str]) -> i32 {
    let numbers = (0..abi::handle::HANDLE_MAX as u64 + 4).chain([u64::from(u32::MAX), 1 << 32, u64::MAX - 1]);
    for number in numbers {
        let killed = sys::kill_handle(number);
        let waited = sys::wait_handle(number, 0);
        let pid = sys::process_pid(number);
        if killed != Err(Errno(EBADF)) || waited != Err(Errno(EBADF)) || pid != Err(Errno(EBADF)) {
            println!("  kill_every_number: handle {number}: kill {killed:?}, wait {waited:?}, process_pid {pid:?}");
            return 1;
        }
    }
    0
}

/// `bomb DEPTH`: starts two `bomb DEPTH-1` (if DEPTH > 0), holds its slot a while (100 ms:
/// with 20 ms, on a loaded host, leaves could end before the table filled, and no spawn was
/// refused), reaps them, and exits with the number of spawns refused (EAGAIN or ENOMEM) in its
/// subtree, or with a negative status for any other failure (-1000 - errno for a spawn).
fn helper_bomb(args: &[&str]) -> i32 {
    let depth: u32 = arg(args, 0);
    let mut refused = 0;
    let mut children = Vec::new();
    if depth > 0 {
        let below = format!("{}", depth - 1);
        for _ in 0..2 {
            match userlib::testing::spawn_self(&["usertests", "--child", "bomb", &below], &process::standard_handles()) {
                Ok(child) => children.push(child),
                // A full table, or (with more CPUs running more of the bomb at once) memory
                // running out first: both are a refusal, not a failure.
                Err(Errno(EAGAIN | ENOMEM)) => refused += 1,
                Err(Errno(errno)) => return -1000 - errno as i32,
            }
        }
    }
    let _ = sys::sleep_ms(100);
    for child in children {
        match wait_for(child) {
            Ok(ended) if ended.status >= 0 && ended.fault().is_none() => refused += ended.status,
            Ok(ended) if ended.fault().is_none() => return ended.status,
            Ok(_) => return -3000,
            Err(_) => return -2000,
        }
    }
    refused
}

/// `region_hog`: maps single pages two pages apart (so no two regions merge) until `mmap`
/// refuses; exits 1 if it refuses with anything but ENOMEM, else sleeps until killed.
fn helper_region_hog(_: &[&str]) -> i32 {
    let mut address = HOLE;
    loop {
        match sys::mmap(address, PAGE, RW) {
            Ok(_) => address += 2 * PAGE,
            Err(Errno(abi::errno::ENOMEM)) => break,
            Err(_) => return 1,
        }
    }
    let _ = sys::sleep_ms(u64::MAX);
    0
}

/// `memory_hog`: maps memory, a MiB at a time and then a page at a time, until refused with
/// ENOMEM (its own limit or the machine's memory, whichever comes first), then sleeps until
/// killed. Exits 4 at once if a refusal is any other error.
fn helper_memory_hog(_: &[&str]) -> i32 {
    for step in [MIB, PAGE] {
        loop {
            match sys::mmap(0, step, RW) {
                Ok(_) => {}
                Err(Errno(abi::errno::ENOMEM)) => break,
                Err(_) => return 4,
            }
        }
    }
    let _ = sys::sleep_ms(u64::MAX);
    0
}

/// `nt_yielder`: sets RFLAGS.NT, yields and sleeps through `syscall` many times, checks NT
/// is still set, clears it and exits 0.
fn helper_nt_yielder(_: &[&str]) -> i32 {
    // SAFETY: NT only matters to `iret`, which this program never executes; it is cleared
    // again below.
    unsafe { asm!("pushfq", "or qword ptr [rsp], 0x4000", "popfq") };
    for round in 0..300 {
        sys::yield_now();
        if round % 50 == 0 {
            let _ = sys::sleep_ms(1);
        }
    }
    let kept = rflags() & 0x4000 != 0;
    // SAFETY: clears NT again; nothing else changes.
    unsafe { asm!("pushfq", "and qword ptr [rsp], ~0x4000", "popfq") };
    if kept { 0 } else { 4 }
}

/// `int80_sleeper`: sleeps and yields through `int 0x80`, whose return is an `iretq`.
fn helper_int80_sleeper(_: &[&str]) -> i32 {
    for _ in 0..30 {
        if call_via(EntryPath::Int80, SLEEP, [MS, 0, 0, 0, 0, 0]) != 0 || call_via(EntryPath::Int80, YIELD, [0; 6]) != 0
        {
            return 5;
        }
    }
    0
}

/// `fpu_writer KIND` (`mmx`, `x87` or `sse`, see [`FpuState`]): leaves the marker in its
/// register, sleeps a while (so another process can run on the CPU), and exits 0 if the
/// marker is still there, 2 if not.
fn helper_fpu_writer(args: &[&str]) -> i32 {
    let state = fpu_state_arg(args);
    state.write(state.marker());
    for _ in 0..20 {
        let _ = sys::sleep_ms(1);
    }
    if state.read() == state.marker() { 0 } else { 2 }
}

/// `fpu_reader KIND`: exits 1 if its register holds `fpu_writer`'s marker, 0 otherwise.
fn helper_fpu_reader(args: &[&str]) -> i32 {
    let state = fpu_state_arg(args);
    if state.read() == state.marker() { 1 } else { 0 }
}

/// The [`FpuState`] named by argument 0 of a helper.
fn fpu_state_arg(args: &[&str]) -> FpuState {
    match args.first().and_then(|name| FpuState::from_name(name)) {
        Some(state) => state,
        None => panic!("no register state named in {args:?}"),
    }
}

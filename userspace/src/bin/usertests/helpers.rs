//! The helper roles of multi-process cases, each run as `usertests --child ROLE ARGS...`:
//! processes that exit with a given status, sleep, spin, read the console, report what they
//! see, start children of their own, or leave state behind for another process to look at.

use alloc::format;
use alloc::vec::Vec;
use core::arch::asm;
use core::hint::black_box;

use abi::errno::{EAGAIN, EPERM};
use abi::syscall::{SET_FOREGROUND, SLEEP, YIELD};
use userlib::println;
use userlib::sys::{self, EntryPath, Errno, Pid};
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
    ("report_pid", helper_report_pid),
    ("report_ppid", helper_report_ppid),
    ("echo_args", helper_echo_args),
    ("arg_stats", helper_arg_stats),
    ("parent_of_sleeper", helper_parent_of_sleeper),
    ("orphan_parent", helper_orphan_parent),
    ("orphan_grandchild", helper_orphan_grandchild),
    ("kill_self", helper_kill_self),
    ("bomb", helper_bomb),
    ("memory_hog", helper_memory_hog),
    ("region_hog", helper_region_hog),
    ("nt_yielder", helper_nt_yielder),
    ("int80_sleeper", helper_int80_sleeper),
    ("fpu_writer", helper_fpu_writer),
    ("fpu_reader", helper_fpu_reader),
    ("raw_mode_then_exit", helper_raw_mode_then_exit),
    ("clear_foreground", helper_clear_foreground),
    ("long_writer", helper_long_writer),
];

/// Parses argument `index` of a helper.
fn arg<T: core::str::FromStr>(args: &[&str], index: usize) -> T {
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

/// `raw_mode_then_exit`: puts the console in raw mode and exits without restoring it.
fn helper_raw_mode_then_exit(_: &[&str]) -> i32 {
    match sys::console_mode(abi::CONSOLE_RAW) {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

/// `clear_foreground`: tries to clear a foreground process that is not its own; exits 0 when
/// the kernel refuses with EPERM.
fn helper_clear_foreground(_: &[&str]) -> i32 {
    if call(SET_FOREGROUND, [0; 6]) == -EPERM { 0 } else { 1 }
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

/// `parent_of_sleeper`: starts `sleeper forever` and waits for it; exits 0 when the wait
/// returns.
fn helper_parent_of_sleeper(_: &[&str]) -> i32 {
    match spawn_child("sleeper", &["forever"]) {
        Ok(pid) => match sys::wait(Some(pid)) {
            Ok(_) => 0,
            Err(_) => 1,
        },
        Err(_) => 2,
    }
}

/// `orphan_parent`: starts `orphan_grandchild` and exits at once with its pid.
fn helper_orphan_parent(_: &[&str]) -> i32 {
    let me = format!("{}", sys::getpid());
    match spawn_child("orphan_grandchild", &[&me]) {
        Ok(pid) => pid as i32,
        Err(_) => -1,
    }
}

/// `orphan_grandchild PARENT`: waits until PARENT is gone, stays 200 ms so its row can be
/// checked, then exits 0 if its parent is now pid 1 (otherwise with the parent's pid).
fn helper_orphan_grandchild(args: &[&str]) -> i32 {
    let parent: Pid = arg(args, 0);
    let deadline = now() + CHILD_LIMIT.as_nanos() as u64;
    while sys::getppid() == parent && now() < deadline {
        let _ = sys::sleep_ms(1);
    }
    let _ = sys::sleep_ms(200);
    match sys::getppid() {
        1 => 0,
        other => other as i32,
    }
}

/// `kill_self`: kills itself; exits [`REACHED_END`] if that returned.
fn helper_kill_self(_: &[&str]) -> i32 {
    let _ = sys::kill(sys::getpid());
    REACHED_END
}

/// `bomb DEPTH`: starts two `bomb DEPTH-1` (if DEPTH > 0), holds its slot a while, reaps
/// them, and exits with the number of spawns refused with EAGAIN in its subtree, or with a
/// negative status for any other failure.
fn helper_bomb(args: &[&str]) -> i32 {
    let depth: u32 = arg(args, 0);
    let mut refused = 0;
    let mut children = Vec::new();
    if depth > 0 {
        let below = format!("{}", depth - 1);
        for _ in 0..2 {
            match sys::spawn("usertests", &["usertests", "--child", "bomb", &below]) {
                Ok(pid) => children.push(pid),
                Err(Errno(EAGAIN)) => refused += 1,
                Err(_) => return -1000,
            }
        }
    }
    let _ = sys::sleep_ms(20);
    for pid in children {
        match wait_for(pid) {
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

/// `memory_hog`: maps memory until refused, then sleeps until killed.
fn helper_memory_hog(_: &[&str]) -> i32 {
    for step in [MIB, PAGE] {
        while sys::mmap(0, step, RW).is_ok() {}
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

//! `usertests [NAME...]`: Enigma's ring-3 test suite, in the spirit of xv6's `usertests`.
//!
//! Each case checks one property of the kernel from user mode: every syscall with good and
//! hostile arguments, bad pointers and lengths, syscall numbers, raw register state on both
//! entry paths, privileged instructions, memory protection, resource exhaustion, and the
//! process life cycle. A case prints `PASS name` or `FAIL name: why`; the suite ends with
//! `N passed, M failed` and exits 0 only when nothing failed. Names on the command line run
//! just those cases.
//!
//! A case that could kill its process runs in a child: the suite spawns itself as
//! `usertests --child NAME` and judges the child's exit status, and kills a child that runs
//! past its time limit, so no case can hang the suite. Cases with several processes use the
//! helper roles in [`HELPERS`], reached the same way. After every case the suite checks that
//! it left no child behind.
//!
//! The `leak` case compares the free-frame count after everything else with a baseline taken
//! before the first case. Before the baseline the suite grows its own heap, so its later
//! allocations need no new frames.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../dirty.rs"]
mod dirty;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::arch::asm;
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::errno::{E2BIG, EAGAIN, EBADF, ECHILD, EFAULT, EINVAL, ENAMETOOLONG, ENOENT, ENOMEM, ENOSYS, EPERM, ESRCH};
use abi::memory::{
    PAGE_SIZE, PHYSICAL_MAP_OFFSET, USER_END, USER_MMAP_BASE, USER_STACK_GUARD, USER_STACK_SIZE, USER_STACK_TOP,
    USER_START,
};
use abi::status::{FAULT, KILLED, PANIC};
use abi::syscall::{
    CONSOLE_MODE, EXIT, GETPID, GETPPID, KILL, MMAP, PROCESS_LIST, PROGRAMS, READ, SET_FOREGROUND, SHUTDOWN, SLEEP,
    SPAWN, SYSCALLS, SYSINFO, TABLE_SIZE, UPTIME, WAIT, WRITE, YIELD,
};
use abi::{
    ARGV_BYTES_MAX, ARGV_MAX, NAME_MAX, PROT_EXEC, PROT_READ, PROT_WRITE, ProcessInfo, ProcessState, SysInfo, UserStr,
};
use userlib::println;
use userlib::sys::{self, EntryPath, Errno, Pid};

use dirty::Call;

userlib::main!(main);

/// What a case found wrong, if anything.
type Outcome = Result<(), String>;

const PAGE: u64 = PAGE_SIZE;
const MIB: u64 = 1024 * 1024;
const RW: u64 = PROT_READ | PROT_WRITE;
const RX: u64 = PROT_READ | PROT_EXEC;
const MS: u64 = 1_000_000;
/// Rows `process_list` can return: the kernel's process limit.
const MAX_ROWS: usize = 64;
/// How long a child may run before the suite kills it and fails the case.
const CHILD_LIMIT_MS: u64 = 15_000;
/// The scheduler's time slice (10 timer ticks), the unit of scheduling delay.
const SLICE_NS: u64 = 10 * MS;
/// Status of a fault child whose body came back: nothing faulted.
const NO_FAULT: i32 = 3;
/// Status of a child whose body failed; it printed why.
const CHILD_FAILED: i32 = 1;

/// Where the edge pages live: far from everything else, so no other mapping ever lands in the
/// unmapped page after them.
const EDGE_BASE: u64 = 0x5000_0000_0000;
/// A fixed address for `mmap` tests; `mmap(0, ...)` fills from `USER_MMAP_BASE` upward and
/// never reaches it.
const FIXED_BASE: u64 = 0x3000_0000_0000;
/// An address range nothing is ever mapped into.
const HOLE: u64 = 0x2000_0000_0000;
/// The last page of the user half.
const LAST_USER_PAGE: u64 = USER_END - PAGE;
/// Where the program image starts.
const IMAGE_START: u64 = USER_START;

/// Addresses no syscall may accept as a user buffer, and what each one is.
const BAD_POINTERS: &[(u64, &str)] = &[
    (0, "null"),
    (0x10, "near null"),
    (USER_START - PAGE, "just below USER_START"),
    (HOLE, "an unmapped hole"),
    (USER_STACK_TOP - USER_STACK_SIZE - PAGE, "the stack guard"),
    (USER_STACK_TOP, "just above the stack"),
    (0x0000_8000_0000_0000, "the first non-canonical address"),
    (0xdead_beef_0000_0000, "a non-canonical address"),
    (PHYSICAL_MAP_OFFSET, "PHYSICAL_MAP_OFFSET"),
    (PHYSICAL_MAP_OFFSET + 0x10_0000, "kernel memory at 1 MiB physical"),
    (0xffff_8800_0000_0000, "the kernel image area"),
    (0xffff_9000_0000_0000, "the kernel heap"),
    (0xffff_9800_0000_1000, "the kernel stacks"),
    (0xffff_ffff_ffff_f000, "the last page"),
    (u64::MAX, "u64::MAX"),
];

/// Read-only data (it lands in `.rodata`): a destination the kernel must refuse to write.
static READ_ONLY: [u8; 256] = [0x5a; 256];
/// Read-only text the kernel may read for a `write`.
static READ_ONLY_TEXT: &[u8] = b"usertests: written from read-only memory\n";
/// A `ret` instruction in read-only, non-executable data.
static RODATA_CODE: [u8; 16] = [0xc3; 16];
/// A `ret` instruction in writable, non-executable data.
static mut DATA_CODE: [u8; 16] = [0xc3; 16];
/// An all-zero descriptor-table pointer for `lgdt`/`lidt`.
static NULL_TABLE_POINTER: [u8; 10] = [0; 10];
/// Where `sgdt`/`sidt` would store, if ring 3 were allowed to run them.
static mut TABLE_POINTER_OUT: [u8; 16] = [0; 16];

/// Free frames plus the suite's own pages, before the first case (0: not taken).
static BASELINE: AtomicU64 = AtomicU64::new(0);

/// How a case runs.
enum Kind {
    /// In the suite's own process.
    Here(fn() -> Outcome),
    /// In a child, which must exit 0.
    Child(fn() -> Outcome),
    /// In a child, which must be killed by a CPU fault (status `FAULT`). The body sets up
    /// and then does something that must fault; `Err` means the setup failed.
    Fault(fn() -> Outcome),
}

/// A named test case.
struct Case {
    name: &'static str,
    kind: Kind,
}

macro_rules! cases {
    ($($kind:ident $name:ident),* $(,)?) => {
        &[$(Case { name: stringify!($name), kind: Kind::$kind($name) }),*]
    };
}

/// Every case, in the order the suite runs them. `leak` is last.
const CASES: &[Case] = cases![
    // Console and simple syscalls.
    Here write_console,
    Here write_bad_fd,
    Child read_bad_fd,
    Child read_zero_length,
    Child zero_length_buffers_unchecked,
    Here write_from_read_only_memory,
    Here getpid_and_getppid,
    Here yield_returns_zero,
    Here uptime_is_monotonic,
    Here uptime_advances_across_sleep,
    Here sysinfo_values,
    Here process_list_self,
    Here process_list_truncates,
    Here programs_list,
    Here programs_truncates,
    Here set_foreground,
    Here foreground_kept_from_others,
    Here console_mode,
    Here raw_mode_released_on_exit,
    Here long_write_preemptible,
    // Syscall numbers and entry paths.
    Here unassigned_numbers,
    Here numbers_beyond_table,
    Here entry_paths_agree,
    // Bad pointers and lengths.
    Here write_bad_pointers,
    Here write_crossing_edge,
    Here write_length_overflow,
    Child read_bad_pointers,
    Child read_crossing_edge,
    Here sysinfo_bad_pointers,
    Here sysinfo_crossing_edge,
    Here process_list_bad_pointers,
    Here process_list_crossing_edge,
    Here process_list_huge_count,
    Here programs_bad_pointers,
    Here programs_crossing_edge,
    Here programs_huge_length,
    Here read_only_destinations_refused,
    Here spawn_bad_name,
    Here spawn_bad_argv,
    Here spawn_name_crossing_edge,
    Here spawn_argv_crossing_edge,
    Here wait_bad_status_pointer,
    // Raw register state.
    Child garbage_registers_syscall,
    Child garbage_registers_int80,
    Child int80_misaligned_stack,
    Child stack_pointer_in_kernel_half,
    Here nt_flag_contained,
    Child direction_flag_contained,
    Fault trap_flag_syscall,
    Fault trap_flag_int80,
    Child popf_cannot_raise_iopl,
    Here fpu_state_not_shared,
    Fault sysret_noncanonical_rip,
    Fault int80_noncanonical_return,
    Fault run_off_user_half,
    // Privileged instructions.
    Fault cli,
    Fault sti,
    Fault hlt,
    Fault in_port,
    Fault out_port,
    Fault mov_to_cr3,
    Fault mov_from_cr0,
    Fault lgdt,
    Fault lidt,
    Fault ltr,
    Fault wrmsr,
    Fault rdmsr,
    Fault invlpg,
    Fault wbinvd,
    Fault swapgs,
    Fault sysretq,
    Fault sysenter,
    Fault mov_to_dr7,
    Fault clts,
    Fault iretq_to_ring0,
    Fault far_return_to_ring0,
    Fault load_kernel_ss,
    Fault int3,
    Fault int_3,
    Fault int_0x08,
    Fault int_0x0e,
    Fault int_0x20,
    Fault int_0x81,
    Fault int_0xff,
    Fault icebp,
    Fault ud2,
    Fault divide_by_zero,
    Fault sgdt,
    Fault sidt,
    Fault sldt,
    Fault smsw,
    Fault str,
    // Memory protection.
    Fault write_to_text,
    Fault write_to_rodata,
    Fault exec_stack,
    Fault exec_heap,
    Fault exec_data,
    Fault exec_rodata,
    Fault exec_mmap_rw,
    Fault write_after_mprotect_read,
    Fault write_to_exec_page,
    Fault access_after_munmap,
    Fault access_after_brk_shrink,
    Fault read_kernel_memory,
    Fault write_kernel_memory,
    Fault jump_into_kernel,
    Fault read_noncanonical,
    Fault jump_noncanonical,
    Fault null_read,
    Fault null_write,
    Fault null_call,
    Fault read_stack_guard,
    Fault stack_overflow,
    Fault stack_overflow_large_frame,
    // brk, mmap, munmap, mprotect.
    Child brk_query_grow_shrink,
    Child brk_below_heap_refused,
    Child brk_wrapping_refused,
    Here mmap_anywhere,
    Here mmap_fixed,
    Here mmap_reuse_is_zeroed,
    Here mmap_invalid,
    Here mmap_wrapping_refused,
    Child mmap_reserved_areas_refused,
    Here munmap_invalid,
    Here munmap_partial,
    Child munmap_spares_image_heap_stack,
    Here mprotect_changes_rights,
    Child mprotect_outside_mmap_refused,
    Child mmap_code_runs_after_mprotect,
    Child page_tables_freed,
    Child failed_mmap_leaves_memory_as_it_was,
    Child brk_exhaustion,
    Child mmap_exhaustion,
    Here global_memory_exhaustion,
    Here kernel_heap_stays_bounded,
    // Processes.
    Here exit_status,
    Here wait_any_collects_all,
    Here wait_for_specific_child,
    Here wait_no_children,
    Here wait_non_child,
    Here wait_grandchild,
    Here wait_null_status,
    Here kill_spinning_child,
    Here kill_sleeping_child,
    Here kill_reading_child,
    Here kill_waiting_child,
    Here kill_unstarted_child,
    Here kill_zombie,
    Here kill_invalid_pid,
    Here kill_init_refused,
    Here kill_self,
    Here zombie_in_process_list,
    Here pids_increase,
    Here spawn_missing_program,
    Here spawn_passes_arguments,
    Here spawn_argument_limits,
    Here spawn_limit,
    Here spawn_bomb,
    Here orphan_reparented,
    Here orphan_reaped_by_init,
    Here preemption,
    Here preemption_with_interrupts_cleared,
    Here sleep_accuracy,
    Here sleep_zero,
    Here sleep_huge_is_killable,
    Here leak,
];

/// A helper role's body: its arguments (after the role name) in, its exit status out.
type Helper = fn(&[&str]) -> i32;

/// Helper roles for multi-process cases: `usertests --child ROLE ARGS...`.
const HELPERS: &[(&str, Helper)] = &[
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
    ("mmx_writer", helper_mmx_writer),
    ("mmx_reader", helper_mmx_reader),
    ("raw_mode_then_exit", helper_raw_mode_then_exit),
    ("clear_foreground", helper_clear_foreground),
    ("long_writer", helper_long_writer),
];

fn main() -> i32 {
    let args = userlib::args();
    if args.get(1).copied() == Some("--child") {
        return child_main(&args[2..]);
    }
    let mut passed = 0;
    let mut failed = 0;
    let mut selected: Vec<&Case> = Vec::new();
    for &name in &args[1..] {
        match CASES.iter().find(|case| case.name == name) {
            Some(case) => selected.push(case),
            None => {
                println!("FAIL {name}: no such case");
                failed += 1;
            }
        }
    }
    if args.len() <= 1 {
        selected = CASES.iter().collect();
    }
    if selected.iter().any(|case| case.name == "leak")
        && let Err(why) = take_baseline()
    {
        println!("usertests: cannot take the free-frame baseline: {why}");
    }
    for case in selected {
        let outcome = run_case(case);
        let cleanup = reap_leftovers();
        match outcome.and(cleanup) {
            Ok(()) => {
                println!("PASS {}", case.name);
                passed += 1;
            }
            Err(why) => {
                println!("FAIL {}: {why}", case.name);
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 { 0 } else { 1 }
}

/// Runs one case the way its kind says.
fn run_case(case: &Case) -> Outcome {
    match case.kind {
        Kind::Here(body) => body(),
        Kind::Child(_) => match run_child(case.name, &[])? {
            0 => Ok(()),
            status => Err(format!("the child {}", describe_status(status))),
        },
        Kind::Fault(_) => match run_child(case.name, &[])? {
            FAULT => Ok(()),
            status => Err(format!("the child {} instead of being killed by a fault", describe_status(status))),
        },
    }
}

/// `usertests --child ROLE ARGS...`: a helper role, or the body of a child case.
fn child_main(args: &[&str]) -> i32 {
    let Some((&role, rest)) = args.split_first() else {
        println!("usertests: --child needs a role");
        return 2;
    };
    if let Some((_, helper)) = HELPERS.iter().find(|(name, _)| *name == role) {
        return helper(rest);
    }
    let body = match CASES.iter().find(|case| case.name == role).map(|case| &case.kind) {
        Some(Kind::Child(body)) => body,
        Some(Kind::Fault(body)) => {
            return match body() {
                Ok(()) => NO_FAULT,
                Err(why) => {
                    println!("  {role}: setup failed: {why}");
                    CHILD_FAILED
                }
            };
        }
        _ => {
            println!("usertests: no child role {role}");
            return 2;
        }
    };
    match body() {
        Ok(()) => 0,
        Err(why) => {
            println!("  {role}: {why}");
            CHILD_FAILED
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers shared by the cases.
// ---------------------------------------------------------------------------------------

/// Adds what was being done to a syscall error.
trait Context<T> {
    fn context(self, what: &str) -> Result<T, String>;
}

impl<T> Context<T> for sys::Result<T> {
    fn context(self, what: &str) -> Result<T, String> {
        self.map_err(|errno| format!("{what}: {errno}"))
    }
}

/// Fails with `message` unless `condition` holds.
macro_rules! check {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

/// A syscall through `syscall` with raw arguments.
fn call(number: u64, args: [u64; 6]) -> i64 {
    call_via(EntryPath::Syscall, number, args)
}

/// A syscall through `path` with raw arguments. Only for syscalls that cannot change the
/// memory map or end the process; `read` only with arguments the kernel refuses at once.
fn call_via(path: EntryPath, number: u64, args: [u64; 6]) -> i64 {
    assert!(![EXIT, abi::syscall::BRK, abi::syscall::MUNMAP, abi::syscall::MPROTECT, SHUTDOWN].contains(&number));
    // The kernel writes only through pointer arguments, which the cases point at buffers they
    // own (with their true sizes) or at memory the kernel must refuse, which they check.
    // SAFETY: as above, and none of the syscalls allowed here unmaps memory or ends the process.
    unsafe { sys::raw(path, number, args) }
}

/// A syscall result for messages: the value, or the errno's name.
fn show(result: i64) -> String {
    if result < 0 { String::from(abi::errno::name(-result)) } else { format!("{result}") }
}

/// Fails unless `result` is `-errno`.
fn expect_errno(what: &str, result: i64, errno: i64) -> Outcome {
    check!(result == -errno, "{what}: returned {}, expected {}", show(result), abi::errno::name(errno));
    Ok(())
}

/// Fails unless `result` is `value`.
fn expect_value(what: &str, result: i64, value: i64) -> Outcome {
    check!(result == value, "{what}: returned {}, expected {value}", show(result));
    Ok(())
}

/// The same check on both entry paths.
fn expect_errno_both(what: &str, number: u64, args: [u64; 6], errno: i64) -> Outcome {
    expect_errno(&format!("{what} (syscall)"), call_via(EntryPath::Syscall, number, args), errno)?;
    expect_errno(&format!("{what} (int 0x80)"), call_via(EntryPath::Int80, number, args), errno)
}

/// A status for messages.
fn describe_status(status: i32) -> String {
    match status {
        0 => String::from("exited 0"),
        FAULT => String::from("was killed by a fault"),
        KILLED => String::from("was killed"),
        PANIC => String::from("panicked"),
        NO_FAULT => String::from("did not fault"),
        CHILD_FAILED => String::from("failed (reason above)"),
        other => format!("exited with status {other}"),
    }
}

/// `sysinfo`, as a case error on failure.
fn info() -> Result<SysInfo, String> {
    sys::sysinfo().context("sysinfo")
}

/// Nanoseconds since boot.
fn now() -> u64 {
    sys::uptime_ns()
}

/// Sleeps `ms` milliseconds.
fn sleep_ms(ms: u64) -> Outcome {
    sys::sleep_ms(ms).context("sleep")
}

/// The process table as `process_list` reports it.
struct Table {
    rows: [ProcessInfo; MAX_ROWS],
    len: usize,
}

impl Table {
    fn read() -> Result<Self, String> {
        let mut rows = [ProcessInfo::EMPTY; MAX_ROWS];
        let total = sys::process_list(&mut rows).context("process_list")?;
        check!(total <= MAX_ROWS, "process_list reports {total} processes, more than the limit");
        Ok(Self { rows, len: total })
    }

    fn rows(&self) -> &[ProcessInfo] {
        &self.rows[..self.len]
    }

    fn find(&self, pid: Pid) -> Option<&ProcessInfo> {
        self.rows().iter().find(|row| row.pid == pid)
    }
}

/// The state of `pid`, `None` if it is not in the table.
fn state_of(pid: Pid) -> Result<Option<ProcessState>, String> {
    Ok(Table::read()?.find(pid).and_then(|row| ProcessState::from_u32(row.state)))
}

/// Bytes of user memory this process has mapped.
fn my_memory() -> Result<u64, String> {
    let me = sys::getpid();
    Table::read()?.find(me).map(|row| row.memory_bytes).ok_or_else(|| String::from("own row missing from process_list"))
}

/// Frames free in the system plus the frames of this process's own memory: stable across
/// anything this process does to its own memory, so a drop means frames went missing.
fn system_frames() -> Result<u64, String> {
    Ok(info()?.free_frames + my_memory()? / PAGE)
}

/// Polls `done` every millisecond until it holds or `limit_ms` pass.
fn wait_until(limit_ms: u64, mut done: impl FnMut() -> Result<bool, String>) -> Result<bool, String> {
    let deadline = now() + limit_ms * MS;
    loop {
        if done()? {
            return Ok(true);
        }
        if now() > deadline {
            return Ok(false);
        }
        sleep_ms(1)?;
    }
}

/// Starts `usertests --child ROLE EXTRA...`.
fn spawn_child(role: &str, extra: &[&str]) -> Result<Pid, String> {
    let mut argv = vec!["usertests", "--child", role];
    argv.extend_from_slice(extra);
    sys::spawn("usertests", &argv).context(&format!("spawn of child {role}"))
}

/// Reaps child `pid` and returns its status.
fn wait_for(pid: Pid) -> Result<i32, String> {
    let (reaped, status) = sys::wait(Some(pid)).context(&format!("wait for pid {pid}"))?;
    check!(reaped == pid, "wait for pid {pid} reaped pid {reaped}");
    Ok(status)
}

/// Waits for child `pid` to end within `limit_ms` (killing it if it does not) and returns
/// its status.
fn finish_within(pid: Pid, what: &str, limit_ms: u64) -> Result<i32, String> {
    let ended = wait_until(limit_ms, || Ok(matches!(state_of(pid)?, Some(ProcessState::Zombie) | None)))?;
    if !ended {
        let _ = sys::kill(pid);
        let _ = wait_for(pid);
        return Err(format!("{what} still ran after {limit_ms} ms and was killed"));
    }
    wait_for(pid)
}

/// Runs `usertests --child ROLE EXTRA...` to the end and returns its status.
fn run_child(role: &str, extra: &[&str]) -> Result<i32, String> {
    let pid = spawn_child(role, extra)?;
    finish_within(pid, &format!("child {role}"), CHILD_LIMIT_MS)
}

/// Runs a helper and fails unless it ends with `expected`.
fn expect_child_status(role: &str, extra: &[&str], expected: i32) -> Outcome {
    let status = run_child(role, extra)?;
    check!(status == expected, "child {role} {}, expected status {expected}", describe_status(status));
    Ok(())
}

/// Kills and reaps every child still around after a case; an error if there was one.
fn reap_leftovers() -> Outcome {
    let me = sys::getpid();
    let table = Table::read()?;
    let leftovers: Vec<Pid> = table.rows().iter().filter(|row| row.parent == me).map(|row| row.pid).collect();
    if leftovers.is_empty() {
        return Ok(());
    }
    for &pid in &leftovers {
        let _ = sys::kill(pid);
    }
    while sys::wait(None).is_ok() {}
    Err(format!("left {} child process(es) behind", leftovers.len()))
}

/// Kills `pids` and reaps them, checking that each ends with status `KILLED`.
fn kill_and_reap(pids: &[Pid]) -> Outcome {
    for &pid in pids {
        sys::kill(pid).context(&format!("kill of pid {pid}"))?;
    }
    for &pid in pids {
        let status = wait_for(pid)?;
        check!(status == KILLED, "pid {pid} {} after kill", describe_status(status));
    }
    Ok(())
}

/// Spawns sleepers until `spawn` fails; returns their pids and the failure.
fn fill_process_table() -> Result<(Vec<Pid>, Errno), String> {
    let mut pids = Vec::with_capacity(MAX_ROWS);
    loop {
        match sys::spawn("usertests", &["usertests", "--child", "sleeper", "forever"]) {
            Ok(pid) => pids.push(pid),
            Err(errno) => return Ok((pids, errno)),
        }
        check!(pids.len() <= MAX_ROWS, "spawned {} processes, past the limit", pids.len());
    }
}

/// Grows this process's heap (so later allocations need no frames) and records the frame
/// baseline for `leak`.
fn take_baseline() -> Outcome {
    drop(black_box(vec![0u8; 512 * 1024]));
    BASELINE.store(system_frames()?, Ordering::Relaxed);
    Ok(())
}

/// A mapped page followed by an unmapped one, set up as two mapped pages with the second
/// unmapped again. The mapped page is filled with [`Edge::FILL`], so a partial write shows.
struct Edge {
    base: u64,
}

impl Edge {
    const FILL: u8 = 0xa5;

    fn new() -> Result<Self, String> {
        let base = sys::mmap(EDGE_BASE, 2 * PAGE, RW).context("mmap of the edge pages")?;
        check!(base == EDGE_BASE, "mmap at {EDGE_BASE:#x} returned {base:#x}");
        // SAFETY: nothing uses the second page; it was mapped just above.
        unsafe { sys::munmap(base + PAGE, PAGE) }.context("munmap of the second edge page")?;
        let edge = Self { base };
        // SAFETY: the first page is mapped read-write and only this `Edge` uses it.
        unsafe { core::ptr::write_bytes(base as *mut u8, Self::FILL, PAGE as usize) };
        Ok(edge)
    }

    /// The address `offset` bytes before the end of the mapped page.
    fn before_end(&self, offset: u64) -> u64 {
        self.base + PAGE - offset
    }

    /// Fails if a byte of the mapped page changed.
    fn check_untouched(&self, what: &str) -> Outcome {
        // SAFETY: the page is mapped readable while `self` lives.
        let bytes = unsafe { core::slice::from_raw_parts(self.base as *const u8, PAGE as usize) };
        match bytes.iter().position(|&byte| byte != Self::FILL) {
            None => Ok(()),
            Some(offset) => {
                Err(format!("{what}: refused, but the byte {} before the edge was written", PAGE as usize - offset))
            }
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        // SAFETY: the page belongs to this `Edge`, which is going away.
        let _ = unsafe { sys::munmap(self.base, PAGE) };
    }
}

/// Calls `address` as a function, for children that exist to fault on it.
fn call_address(address: u64) {
    // SAFETY: only fault children call this, with an address that must not be executable;
    // if the kernel lets it run anyway, the code there is a lone `ret`, or the child dies.
    unsafe { asm!("call {}", in(reg) address, clobber_abi("C")) };
}

/// A `UserStr` for `text`.
fn user_str(text: &[u8]) -> UserStr {
    UserStr { ptr: text.as_ptr() as u64, len: text.len() as u64 }
}

/// `spawn` with raw arguments.
fn raw_spawn(name: u64, name_len: u64, argv: u64, argc: u64) -> i64 {
    call(SPAWN, [name, name_len, argv, argc, 0, 0])
}

/// RFLAGS as ring 3 sees them.
fn rflags() -> u64 {
    let flags: u64;
    // SAFETY: pushes and pops one word on the stack; no other effect.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags) };
    flags
}

/// Maps one page read-write (the kernel chooses where).
fn map_page() -> Result<u64, String> {
    sys::mmap(0, PAGE, RW).context("mmap of a page")
}

/// Unmaps `pages` pages at `address`, which no Rust reference points into.
fn unmap(address: u64, pages: u64) -> Outcome {
    // SAFETY: callers pass mappings they made and no longer reference.
    unsafe { sys::munmap(address, pages * PAGE) }.context("munmap")
}

/// Maps the last page of the user half with `code` at its very end, executable.
fn code_at_top_of_user_half(code: &[u8]) -> Result<u64, String> {
    let page = sys::mmap(LAST_USER_PAGE, PAGE, RW).context("mmap of the last user page")?;
    check!(page == LAST_USER_PAGE, "mmap of the last user page returned {page:#x}");
    let start = USER_END - code.len() as u64;
    // SAFETY: the page was just mapped read-write for this child.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), start as *mut u8, code.len()) };
    // SAFETY: nothing in this program references the page.
    unsafe { sys::mprotect(page, PAGE, RX) }.context("mprotect of the last user page")?;
    Ok(start)
}

// ---------------------------------------------------------------------------------------
// Console and simple syscalls.
// ---------------------------------------------------------------------------------------

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
    for fd in [0, 3, 4, 255, 1 << 32 | 1, 1 << 32 | 2, u64::MAX] {
        expect_errno_both(
            &format!("write to fd {fd:#x}"),
            WRITE,
            [fd, text.as_ptr() as u64, text.len() as u64, 0, 0, 0],
            EBADF,
        )?;
    }
    Ok(())
}

fn read_bad_fd() -> Outcome {
    let mut buffer = [0u8; 16];
    for fd in [1, 2, 3, 1 << 32, u64::MAX] {
        let args = [fd, buffer.as_mut_ptr() as u64, buffer.len() as u64, 0, 0, 0];
        expect_errno_both(&format!("read from fd {fd:#x}"), READ, args, EBADF)?;
    }
    Ok(())
}

fn read_zero_length() -> Outcome {
    let mut buffer = [0u8; 16];
    expect_value("read(0, buf, 0)", call(READ, [0, buffer.as_mut_ptr() as u64, 0, 0, 0, 0]), 0)
}

fn zero_length_buffers_unchecked() -> Outcome {
    let listing = program_listing()?;
    for &(pointer, what) in BAD_POINTERS {
        expect_value(&format!("write of 0 bytes at {what}"), call(WRITE, [1, pointer, 0, 0, 0, 0]), 0)?;
        expect_value(&format!("read of 0 bytes at {what}"), call(READ, [0, pointer, 0, 0, 0, 0]), 0)?;
        let programs = call(PROGRAMS, [pointer, 0, 0, 0, 0, 0]);
        expect_value(&format!("programs into 0 bytes at {what}"), programs, listing.len() as i64)?;
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
    let status = finish_within(child, "report_pid", CHILD_LIMIT_MS)?;
    check!(status == child as i32, "a child's getpid was {status}, spawn returned {child}");
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
        info.processes as usize == table.len,
        "sysinfo counts {} processes, process_list {}",
        info.processes,
        table.len
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

/// The program list, as text.
fn program_listing() -> Result<String, String> {
    let mut buffer = vec![0u8; 4096];
    let total = sys::programs(&mut buffer).context("programs")?;
    check!(total <= buffer.len(), "program list of {total} bytes");
    String::from_utf8(buffer[..total].to_vec()).map_err(|_| String::from("program list is not UTF-8"))
}

fn programs_list() -> Outcome {
    let listing = program_listing()?;
    for name in ["usertests", "fuzz", "hello", "init"] {
        check!(listing.lines().any(|line| line == name), "{name} missing from {listing:?}");
    }
    check!(listing.ends_with('\n') && listing.lines().all(|line| !line.is_empty()), "malformed list {listing:?}");
    Ok(())
}

fn programs_truncates() -> Outcome {
    let listing = program_listing()?;
    let mut buffer = [0xeeu8; 16];
    let total = call(PROGRAMS, [buffer.as_mut_ptr() as u64, 5, 0, 0, 0, 0]);
    expect_value("programs into 5 bytes", total, listing.len() as i64)?;
    check!(buffer[..5] == listing.as_bytes()[..5], "the 5 bytes are {:?}", &buffer[..5]);
    check!(buffer[5..].iter().all(|&byte| byte == 0xee), "bytes past the length were written");
    let mut buffer = [0xeeu8; 16];
    expect_value(
        "programs into 0 bytes",
        call(PROGRAMS, [buffer.as_mut_ptr() as u64, 0, 0, 0, 0, 0]),
        listing.len() as i64,
    )?;
    check!(buffer.iter().all(|&byte| byte == 0xee), "length 0 still wrote bytes");
    Ok(())
}

fn set_foreground() -> Outcome {
    let me = u64::from(sys::getpid());
    expect_value("set_foreground(0)", call(SET_FOREGROUND, [0; 6]), 0)?;
    let child = spawn_child("sleeper", &["forever"])?;
    let outcome: Outcome = (|| {
        expect_value("set_foreground(child)", call(SET_FOREGROUND, [u64::from(child), 0, 0, 0, 0, 0]), 0)?;
        for (pid, what) in [
            (me, "self"),
            (999_999, "no such pid"),
            (u64::MAX, "u64::MAX"),
            (1 << 32 | u64::from(child), "child pid + 2^32"),
        ] {
            expect_errno(&format!("set_foreground({what})"), call(SET_FOREGROUND, [pid, 0, 0, 0, 0, 0]), ESRCH)?;
        }
        if me != 1 {
            expect_errno("set_foreground(1)", call(SET_FOREGROUND, [1, 0, 0, 0, 0, 0]), ESRCH)?;
        }
        Ok(())
    })();
    kill_and_reap(&[child])?;
    outcome?;
    expect_errno("set_foreground(reaped child)", call(SET_FOREGROUND, [u64::from(child), 0, 0, 0, 0, 0]), ESRCH)?;
    expect_value("set_foreground(0) again", call(SET_FOREGROUND, [0; 6]), 0)
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
    let status = wait_for(child)?;
    check!(status == 0, "raw_mode_then_exit {}", describe_status(status));
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
        expect_value("set_foreground(sleeper)", call(SET_FOREGROUND, [u64::from(sleeper), 0, 0, 0, 0, 0]), 0)?;
        // A sibling is neither the foreground process nor its parent.
        let sibling = spawn_child("clear_foreground", &[])?;
        let status = wait_for(sibling)?;
        check!(status == 0, "a sibling's set_foreground(0) was not refused with EPERM ({})", describe_status(status));
        expect_value("set_foreground(0) by the parent", call(SET_FOREGROUND, [0; 6]), 0)
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
    let status = wait_for(writer)?;
    // A write that could not be preempted would hold the CPU for seconds.
    check!(slept_ms < 100, "a 20 ms sleep took {slept_ms} ms while another process was in a long write");
    check!(status == KILLED, "the writer {} instead of being killed mid-write", describe_status(status));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Syscall numbers and entry paths.
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Bad pointers and lengths.
// ---------------------------------------------------------------------------------------

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
    check!(heap_after <= heap_before + 4096, "the kernel heap grew from {heap_before} to {heap_after} bytes");
    Ok(())
}

fn programs_bad_pointers() -> Outcome {
    for &(pointer, what) in BAD_POINTERS {
        expect_errno_both(&format!("programs into {what}"), PROGRAMS, [pointer, 64, 0, 0, 0, 0], EFAULT)?;
    }
    Ok(())
}

fn programs_crossing_edge() -> Outcome {
    let edge = Edge::new()?;
    expect_errno("programs across the edge", call(PROGRAMS, [edge.before_end(4), 64, 0, 0, 0, 0]), EFAULT)?;
    edge.check_untouched("programs across the edge")
}

fn programs_huge_length() -> Outcome {
    let mut buffer = vec![0xeeu8; 4096];
    let pointer = buffer.as_mut_ptr() as u64;
    for (length, what) in [
        (u64::MAX, "u64::MAX"),
        (u64::MAX - pointer + 2, "wrapping to 1"),
        (USER_END - pointer + 1, "one past the user half"),
    ] {
        expect_errno_both(&format!("programs with length {what}"), PROGRAMS, [pointer, length, 0, 0, 0, 0], EFAULT)?;
    }
    check!(buffer.iter().all(|&byte| byte == 0xee), "a refused call wrote the buffer");
    Ok(())
}

fn read_only_destinations_refused() -> Outcome {
    let target = READ_ONLY.as_ptr() as u64;
    expect_errno("sysinfo into .rodata", call(SYSINFO, [target, 0, 0, 0, 0, 0]), EFAULT)?;
    expect_errno("process_list into .rodata", call(PROCESS_LIST, [target, 1, 0, 0, 0, 0]), EFAULT)?;
    expect_errno("programs into .rodata", call(PROGRAMS, [target, 64, 0, 0, 0, 0]), EFAULT)?;
    let text = rflags as fn() -> u64 as *const () as u64;
    expect_errno("sysinfo into text", call(SYSINFO, [text, 0, 0, 0, 0, 0]), EFAULT)?;
    let child = spawn_child("exit_with", &["4"])?;
    expect_errno("wait with the status in .rodata", call(WAIT, [u64::from(child), target, 0, 0, 0, 0]), EFAULT)?;
    let status = wait_for(child)?;
    check!(status == 4, "the child's status after the refused wait was {status}");
    check!(READ_ONLY.iter().all(|&byte| byte == 0x5a), ".rodata changed");
    Ok(())
}

fn spawn_bad_name() -> Outcome {
    let long = [b'a'; NAME_MAX + 1];
    expect_errno("name of NAME_MAX + 1 bytes", raw_spawn(long.as_ptr() as u64, long.len() as u64, 0, 0), ENAMETOOLONG)?;
    expect_errno("name length u64::MAX", raw_spawn(long.as_ptr() as u64, u64::MAX, 0, 0), ENAMETOOLONG)?;
    let bad_utf8 = b"user\xfftests";
    let argv = [user_str(bad_utf8)];
    let result = raw_spawn(bad_utf8.as_ptr() as u64, bad_utf8.len() as u64, argv.as_ptr() as u64, 1);
    expect_errno("name that is not UTF-8", result, EINVAL)?;
    for &(pointer, what) in BAD_POINTERS {
        expect_errno_both(&format!("name at {what}"), SPAWN, [pointer, 5, 0, 0, 0, 0], EFAULT)?;
    }
    Ok(())
}

fn spawn_bad_argv() -> Outcome {
    let processes = info()?.processes;
    let name = b"usertests";
    let (name_ptr, name_len) = (name.as_ptr() as u64, name.len() as u64);
    let good = user_str(name);
    for &(pointer, what) in BAD_POINTERS {
        expect_errno(&format!("argv at {what}"), raw_spawn(name_ptr, name_len, pointer, 1), EFAULT)?;
        let argv = [good, UserStr { ptr: pointer, len: 4 }];
        expect_errno(
            &format!("an argument at {what}"),
            raw_spawn(name_ptr, name_len, argv.as_ptr() as u64, 2),
            EFAULT,
        )?;
    }
    let argv = [good; ARGV_MAX + 1];
    let argv_ptr = argv.as_ptr() as u64;
    expect_errno("argc ARGV_MAX + 1", raw_spawn(name_ptr, name_len, argv_ptr, ARGV_MAX as u64 + 1), E2BIG)?;
    let heap_before = info()?.heap_used;
    for argc in [u64::MAX, 1 << 61, 1 << 32] {
        expect_errno(&format!("argc {argc:#x}"), raw_spawn(name_ptr, name_len, argv_ptr, argc), E2BIG)?;
    }
    let heap_after = info()?.heap_used;
    check!(heap_after <= heap_before + 4096, "the kernel heap grew from {heap_before} to {heap_after} bytes");
    let argv = [good, UserStr { ptr: name_ptr, len: u64::MAX }];
    expect_errno("an argument of length u64::MAX", raw_spawn(name_ptr, name_len, argv.as_ptr() as u64, 2), E2BIG)?;
    let argv = [UserStr { ptr: name_ptr, len: 1 << 63 }, UserStr { ptr: name_ptr, len: 1 << 63 }];
    expect_errno("argument lengths summing past u64", raw_spawn(name_ptr, name_len, argv.as_ptr() as u64, 2), E2BIG)?;
    let big = vec![b'x'; ARGV_BYTES_MAX];
    let argv = [good, UserStr { ptr: big.as_ptr() as u64, len: (ARGV_BYTES_MAX - name.len() + 1) as u64 }];
    expect_errno("ARGV_BYTES_MAX + 1 argument bytes", raw_spawn(name_ptr, name_len, argv.as_ptr() as u64, 2), E2BIG)?;
    let bad_utf8 = b"\xc3\x28";
    let argv = [good, user_str(bad_utf8)];
    expect_errno("an argument that is not UTF-8", raw_spawn(name_ptr, name_len, argv.as_ptr() as u64, 2), EINVAL)?;
    let after = info()?.processes;
    check!(after == processes, "failed spawns changed the process count from {processes} to {after}");
    Ok(())
}

fn spawn_name_crossing_edge() -> Outcome {
    let edge = Edge::new()?;
    let start = edge.before_end(4);
    // SAFETY: the four bytes before the edge are mapped read-write and belong to `edge`.
    unsafe { core::ptr::copy_nonoverlapping(b"user".as_ptr(), start as *mut u8, 4) };
    expect_errno("a name running into the unmapped page", raw_spawn(start, 9, 0, 0), EFAULT)
}

fn spawn_argv_crossing_edge() -> Outcome {
    let edge = Edge::new()?;
    let name = b"usertests";
    let entry = size_of::<UserStr>() as u64;
    let slot = edge.before_end(entry);
    // SAFETY: one `UserStr` fits right below the edge, in the page `edge` owns.
    unsafe { core::ptr::write_unaligned(slot as *mut UserStr, user_str(name)) };
    let result = raw_spawn(name.as_ptr() as u64, name.len() as u64, slot, 2);
    expect_errno("argv running into the unmapped page", result, EFAULT)?;
    let start = edge.before_end(entry + 4);
    // SAFETY: as above, one `UserStr` plus four bytes fit below the edge.
    unsafe { core::ptr::write_unaligned(start as *mut UserStr, UserStr { ptr: edge.before_end(4), len: 9 }) };
    let result = raw_spawn(name.as_ptr() as u64, name.len() as u64, start, 1);
    expect_errno("an argument running into the unmapped page", result, EFAULT)
}

fn wait_bad_status_pointer() -> Outcome {
    let child = spawn_child("exit_with", &["5"])?;
    let pid = u64::from(child);
    let outcome: Outcome = (|| {
        for &(pointer, what) in BAD_POINTERS.iter().filter(|(pointer, _)| *pointer != 0) {
            expect_errno(&format!("wait with the status at {what}"), call(WAIT, [pid, pointer, 0, 0, 0, 0]), EFAULT)?;
        }
        let edge = Edge::new()?;
        expect_errno(
            "wait with the status across the edge",
            call(WAIT, [pid, edge.before_end(2), 0, 0, 0, 0]),
            EFAULT,
        )?;
        edge.check_untouched("wait across the edge")?;
        let mut status = 0i32;
        expect_value("wait after the refusals", call(WAIT, [pid, &raw mut status as u64, 0, 0, 0, 0]), pid as i64)?;
        check!(status == 5, "the status after the refused waits is {status}, expected 5");
        Ok(())
    })();
    if outcome.is_err() {
        let _ = sys::wait(Some(child));
    }
    outcome
}

// ---------------------------------------------------------------------------------------
// Raw register state.
// ---------------------------------------------------------------------------------------

/// Distinct junk for every register, with `rsp` as given.
fn noise(seed: u64, rsp: u64) -> [u64; 16] {
    let mut values = [0u64; 16];
    for (index, value) in values.iter_mut().enumerate() {
        *value = seed.rotate_left(index as u32 * 5) ^ (index as u64 * 0x0101_0101_0101_0101);
    }
    values[4] = rsp;
    values
}

/// Runs a few syscalls through `path` with junk in every register and every flag ring 3 may
/// set (DF, AC and NT among them), and checks each result and that no register but the
/// result came back changed.
fn garbage_registers(path: EntryPath) -> Outcome {
    let me = i64::from(sys::getpid());
    let calls: [(u64, [u64; 6], Option<i64>, i64); 5] = [
        (GETPID, [0xdead; 6], Some(me), 0),
        (WRITE, [1, 0xdead_0000_0000_beef, 64, 0x1111, 0x2222, 0x3333], None, EFAULT),
        (1 << 32 | GETPID, [7; 6], None, ENOSYS),
        (SYSINFO, [PHYSICAL_MAP_OFFSET, 1, 2, 3, 4, 5], None, EFAULT),
        (KILL, [u64::MAX, 0, 0, 0, 0, 0], None, ESRCH),
    ];
    for (round, rsp) in [0xdead_beef_dead_beef, 0, PHYSICAL_MAP_OFFSET, u64::MAX].into_iter().enumerate() {
        for (number, args, value, errno) in calls {
            let junk = noise(0x0123_4567_89ab_cdef ^ round as u64, rsp);
            let mut entry = Call::new(path, number, args, junk).with_flags(u64::MAX);
            // SAFETY: none of these calls writes memory (their pointers are refused) or ends
            // the process.
            unsafe { entry.run() };
            let what = format!("syscall {number:#x} with rsp {rsp:#x}");
            match value {
                Some(value) => expect_value(&what, entry.result(), value)?,
                None => expect_errno(&what, entry.result(), errno)?,
            }
            if let Some(register) = entry.clobbered() {
                return Err(format!("{what}: the kernel changed {register}"));
            }
        }
    }
    Ok(())
}

fn garbage_registers_syscall() -> Outcome {
    garbage_registers(EntryPath::Syscall)
}

fn garbage_registers_int80() -> Outcome {
    garbage_registers(EntryPath::Int80)
}

fn int80_misaligned_stack() -> Outcome {
    let me = i64::from(sys::getpid());
    let mut area = [0x7777_7777_7777_7777u64; 64];
    let top = area.as_mut_ptr() as u64 + 256;
    for misalignment in [1, 3, 8, 13] {
        let mut entry = Call::new(EntryPath::Int80, GETPID, [0; 6], noise(misalignment, top - misalignment));
        // SAFETY: `getpid` touches no memory; the stack pointer points into `area`.
        unsafe { entry.run() };
        expect_value(&format!("getpid with rsp misaligned by {misalignment}"), entry.result(), me)?;
        if let Some(register) = entry.clobbered() {
            return Err(format!("the kernel changed {register}"));
        }
        check!(
            black_box(&area).iter().all(|&word| word == 0x7777_7777_7777_7777),
            "the kernel wrote to the user stack"
        );
    }
    Ok(())
}

fn stack_pointer_in_kernel_half() -> Outcome {
    let me = i64::from(sys::getpid());
    for path in [EntryPath::Syscall, EntryPath::Int80] {
        for rsp in [PHYSICAL_MAP_OFFSET + 0x10_0000, 0xffff_9800_0000_8000, 0x8000_0000_0000, u64::MAX - 7] {
            let mut entry = Call::new(path, GETPID, [0; 6], noise(rsp, rsp));
            // SAFETY: `getpid` touches no memory.
            unsafe { entry.run() };
            expect_value(&format!("getpid with rsp {rsp:#x} ({path:?})"), entry.result(), me)?;
        }
    }
    Ok(())
}

fn nt_flag_contained() -> Outcome {
    let start = now() + 10 * MS;
    let end = start + 150 * MS;
    let (start, end) = (format!("{start}"), format!("{end}"));
    let spinner = spawn_child("spin_window", &[&start, &end])?;
    let sleeper = spawn_child("int80_sleeper", &[])?;
    let yielder = spawn_child("nt_yielder", &[])?;
    let mut failures = Vec::new();
    for (pid, role) in [(yielder, "nt_yielder"), (sleeper, "int80_sleeper"), (spinner, "spin_window")] {
        let status = finish_within(pid, role, CHILD_LIMIT_MS)?;
        if status != 0 {
            failures.push(format!("{role} {}", describe_status(status)));
        }
    }
    check!(failures.is_empty(), "with NT set in another process: {}", failures.join(", "));
    Ok(())
}

fn direction_flag_contained() -> Outcome {
    for path in [EntryPath::Syscall, EntryPath::Int80] {
        let mut info = SysInfo::default();
        let result: i64;
        match path {
            // SAFETY: `sysinfo` writes only `info`; the direction flag is set just for the
            // syscall and cleared right after, as Rust code expects.
            EntryPath::Syscall => unsafe {
                asm!("std", "syscall", "cld", inlateout("rax") SYSINFO as i64 => result, in("rdi") &raw mut info,
                    lateout("rcx") _, lateout("r11") _, options(nostack));
            },
            // SAFETY: as above, through `int 0x80`.
            EntryPath::Int80 => unsafe {
                asm!("std", "int 0x80", "cld", inlateout("rax") SYSINFO as i64 => result, in("rdi") &raw mut info,
                    options(nostack));
            },
        }
        expect_value(&format!("sysinfo with DF set ({path:?})"), result, 0)?;
        check!(
            info.max_processes as usize == MAX_ROWS && info.timer_hz == 1000 && info.total_frames > 0,
            "sysinfo with DF set ({path:?}) wrote {info:?}"
        );
    }
    Ok(())
}

fn trap_flag_syscall() -> Outcome {
    // SAFETY: the child exists to fault: with TF set, the instruction after the `syscall`
    // raises a debug exception in ring 3.
    unsafe {
        asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "syscall", "nop", "nop",
            inlateout("rax") GETPID => _, lateout("rcx") _, lateout("r11") _);
    }
    Ok(())
}

fn trap_flag_int80() -> Outcome {
    // SAFETY: as in `trap_flag_syscall`, through `int 0x80`.
    unsafe {
        asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "int 0x80", "nop", "nop", inlateout("rax") GETPID => _)
    };
    Ok(())
}

fn popf_cannot_raise_iopl() -> Outcome {
    // SAFETY: `popfq` at CPL 3 may change only the flags ring 3 owns; the kernel-controlled
    // bits the code asks for (IOPL 3, IF clear) must be left alone, which is checked below.
    unsafe { asm!("pushfq", "or qword ptr [rsp], 0x3000", "and qword ptr [rsp], ~0x200", "popfq") };
    let flags = rflags();
    check!(flags & 0x3000 == 0, "ring 3 raised IOPL: rflags {flags:#x}");
    check!(flags & 0x200 != 0, "ring 3 cleared IF: rflags {flags:#x}");
    Ok(())
}

fn fpu_state_not_shared() -> Outcome {
    let writer = run_child("mmx_writer", &[])?;
    check!(writer == 0 || writer == FAULT, "mmx_writer {}", describe_status(writer));
    let reader = run_child("mmx_reader", &[])?;
    check!(reader != 1, "a second process found the first one's MMX/x87 registers");
    check!(reader == 0 || reader == FAULT, "mmx_reader {}", describe_status(reader));
    Ok(())
}

fn sysret_noncanonical_rip() -> Outcome {
    let start = code_at_top_of_user_half(&[0x0f, 0x05])?;
    // SAFETY: the child exists to fault: the `syscall` at the top of the user half returns to
    // 0x8000_0000_0000, which is not canonical, so the kernel must end the child.
    unsafe { asm!("jmp {}", in(reg) start, in("rax") GETPID, options(noreturn)) }
}

fn int80_noncanonical_return() -> Outcome {
    let start = code_at_top_of_user_half(&[0xcd, 0x80])?;
    // SAFETY: as in `sysret_noncanonical_rip`, through `int 0x80`.
    unsafe { asm!("jmp {}", in(reg) start, in("rax") GETPID, options(noreturn)) }
}

fn run_off_user_half() -> Outcome {
    let start = code_at_top_of_user_half(&[0x90, 0x90])?;
    // SAFETY: the child exists to fault: after two `nop`s, execution reaches the first
    // non-canonical address.
    unsafe { asm!("jmp {}", in(reg) start, options(noreturn)) }
}

// ---------------------------------------------------------------------------------------
// Privileged instructions: each must kill only the child running it.
// ---------------------------------------------------------------------------------------

macro_rules! fault_instruction {
    ($($name:ident => [$($asm:tt)*];)*) => {
        $(
            fn $name() -> Outcome {
                // SAFETY: this runs in a child that exists to fault: ring 3 may not execute
                // the instruction, so the CPU raises an exception and the kernel ends the
                // child.
                unsafe { asm!($($asm)*) };
                Ok(())
            }
        )*
    };
}

fault_instruction! {
    cli => ["cli"];
    sti => ["sti"];
    hlt => ["hlt"];
    in_port => ["in al, dx", in("dx") 0x64u16, out("al") _];
    out_port => ["out dx, al", in("dx") 0x80u16, in("al") 0u8];
    mov_to_cr3 => ["mov cr3, {}", in(reg) 0u64];
    mov_from_cr0 => ["mov {}, cr0", out(reg) _];
    lgdt => ["lgdt [{}]", in(reg) NULL_TABLE_POINTER.as_ptr()];
    lidt => ["lidt [{}]", in(reg) NULL_TABLE_POINTER.as_ptr()];
    ltr => ["ltr {0:x}", in(reg) 0x28u16];
    wrmsr => ["wrmsr", in("ecx") 0xc000_0082u32, in("eax") 0u32, in("edx") 0u32];
    rdmsr => ["rdmsr", in("ecx") 0xc000_0082u32, out("eax") _, out("edx") _];
    invlpg => ["invlpg [{}]", in(reg) IMAGE_START];
    wbinvd => ["wbinvd"];
    swapgs => ["swapgs"];
    sysretq => ["sysretq", out("rcx") _, out("r11") _];
    sysenter => ["sysenter"];
    mov_to_dr7 => ["mov dr7, {}", in(reg) 0x3ffu64];
    clts => ["clts"];
    iretq_to_ring0 => ["mov {0}, rsp", "push 0x10", "push {0}", "pushfq", "push 0x08", "lea {0}, [rip + 2f]", "push {0}", "iretq", "2:", out(reg) _];
    far_return_to_ring0 => ["push 0x08", "lea {0}, [rip + 2f]", "push {0}", "retfq", "2:", out(reg) _];
    load_kernel_ss => ["mov ss, {0:x}", in(reg) 0x10u16];
    int3 => ["int3"];
    int_3 => [".byte 0xcd, 0x03"];
    int_0x08 => ["int 0x08"];
    int_0x0e => ["int 0x0e"];
    int_0x20 => ["int 0x20"];
    int_0x81 => ["int 0x81"];
    int_0xff => ["int 0xff"];
    icebp => [".byte 0xf1"];
    ud2 => ["ud2"];
    divide_by_zero => ["div {}", in(reg) 0u64, inout("rax") 1u64 => _, inout("rdx") 0u64 => _];
    sgdt => ["sgdt [{}]", in(reg) &raw mut TABLE_POINTER_OUT];
    sidt => ["sidt [{}]", in(reg) &raw mut TABLE_POINTER_OUT];
    sldt => ["sldt {0:x}", out(reg) _];
    smsw => ["smsw {0:x}", out(reg) _];
    str => ["str {0:x}", out(reg) _];
}

// ---------------------------------------------------------------------------------------
// Memory protection.
// ---------------------------------------------------------------------------------------

/// Writes a byte at `address`, for children that exist to fault on it.
fn poke(address: u64) {
    // SAFETY: only fault children call this, with an address the process may not write;
    // the write must fault before it lands.
    unsafe { core::ptr::write_volatile(address as *mut u8, 0xc3) };
}

/// Reads a byte at `address`, for children that exist to fault on it.
fn peek(address: u64) -> u8 {
    // SAFETY: only fault children call this, with an address the process may not read.
    unsafe { core::ptr::read_volatile(address as *const u8) }
}

fn write_to_text() -> Outcome {
    poke(write_to_text as fn() -> Outcome as *const () as u64);
    Ok(())
}

fn write_to_rodata() -> Outcome {
    poke(RODATA_CODE.as_ptr() as u64);
    Ok(())
}

fn exec_stack() -> Outcome {
    let code = black_box([0xc3u8; 16]);
    call_address(code.as_ptr() as u64);
    Ok(())
}

fn exec_heap() -> Outcome {
    let code = black_box(vec![0xc3u8; 16]);
    call_address(code.as_ptr() as u64);
    Ok(())
}

fn exec_data() -> Outcome {
    call_address(&raw const DATA_CODE as u64);
    Ok(())
}

fn exec_rodata() -> Outcome {
    call_address(RODATA_CODE.as_ptr() as u64);
    Ok(())
}

fn exec_mmap_rw() -> Outcome {
    let page = map_page()?;
    // SAFETY: the page was just mapped read-write.
    unsafe { core::ptr::write_volatile(page as *mut u8, 0xc3) };
    call_address(page);
    Ok(())
}

fn write_after_mprotect_read() -> Outcome {
    let page = map_page()?;
    // SAFETY: nothing references the page.
    unsafe { sys::mprotect(page, PAGE, PROT_READ) }.context("mprotect")?;
    check!(peek(page) == 0, "the read-only page does not read as zero");
    poke(page);
    Ok(())
}

fn write_to_exec_page() -> Outcome {
    let page = map_page()?;
    // SAFETY: the page was just mapped read-write.
    unsafe { core::ptr::write_volatile(page as *mut u8, 0xc3) };
    // SAFETY: nothing references the page.
    unsafe { sys::mprotect(page, PAGE, RX) }.context("mprotect")?;
    call_address(page);
    poke(page);
    Ok(())
}

fn access_after_munmap() -> Outcome {
    let page = map_page()?;
    // SAFETY: the page was just mapped read-write.
    unsafe { core::ptr::write_volatile(page as *mut u8, 1) };
    unmap(page, 1)?;
    black_box(peek(page));
    Ok(())
}

fn access_after_brk_shrink() -> Outcome {
    let end = sys::heap_end() as u64;
    // SAFETY: the heap grows past the allocator's top, and shrinks back to it below.
    let grown = unsafe { sys::brk(end + PAGE) }.context("brk grow")?;
    check!(grown == end + PAGE, "brk grew to {grown:#x}");
    // SAFETY: the page above the allocator's top was just mapped and nothing else uses it.
    unsafe { core::ptr::write_volatile(end as *mut u8, 1) };
    // SAFETY: back to where the allocator left it; nothing references the freed page.
    unsafe { sys::brk(end) }.context("brk shrink")?;
    black_box(peek(end));
    Ok(())
}

fn read_kernel_memory() -> Outcome {
    black_box(peek(PHYSICAL_MAP_OFFSET + 0x10_0000));
    Ok(())
}

fn write_kernel_memory() -> Outcome {
    poke(PHYSICAL_MAP_OFFSET + 0x10_0000);
    Ok(())
}

fn jump_into_kernel() -> Outcome {
    call_address(PHYSICAL_MAP_OFFSET + 0x10_0000);
    Ok(())
}

fn read_noncanonical() -> Outcome {
    black_box(peek(0xdead_beef_0000_0000));
    Ok(())
}

fn jump_noncanonical() -> Outcome {
    call_address(0x0000_8000_0000_0000);
    Ok(())
}

fn null_read() -> Outcome {
    black_box(peek(black_box(0)));
    Ok(())
}

fn null_write() -> Outcome {
    poke(black_box(0));
    Ok(())
}

fn null_call() -> Outcome {
    call_address(black_box(0));
    Ok(())
}

fn read_stack_guard() -> Outcome {
    black_box(peek(USER_STACK_TOP - USER_STACK_SIZE - USER_STACK_GUARD / 2));
    Ok(())
}

/// Recurses until the stack runs out.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if black_box(depth) == u64::MAX {
        return frame[0];
    }
    recurse(depth + 1).wrapping_add(frame[31])
}

fn stack_overflow() -> Outcome {
    black_box(recurse(0));
    Ok(())
}

fn stack_overflow_large_frame() -> Outcome {
    let frame = black_box([0u8; 256 * 1024]);
    black_box(frame[black_box(7)]);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// brk, mmap, munmap, mprotect.
// ---------------------------------------------------------------------------------------

/// `brk` for children that own the heap above the allocator's top.
fn brk(end: u64) -> sys::Result<u64> {
    // SAFETY: the callers never move the heap end below the allocator's top, and they do not
    // allocate while the heap is above it.
    unsafe { sys::brk(end) }
}

fn brk_query_grow_shrink() -> Outcome {
    let start = sys::heap_end() as u64;
    let memory = my_memory()?;
    check!(start.is_multiple_of(PAGE) && start > IMAGE_START, "brk(0) returned {start:#x}");
    let grown = brk(start + 3 * PAGE + 5).context("brk grow")?;
    check!(grown == start + 4 * PAGE, "brk(start + 3 pages + 5) returned {grown:#x}, not the next page boundary");
    check!(my_memory()? == memory + 4 * PAGE, "memory did not grow by 4 pages");
    for page in 0..4 {
        let address = (start + page * PAGE) as *mut u64;
        // SAFETY: the four pages were just added to the heap, above the allocator's top.
        unsafe {
            check!(address.read_volatile() == 0, "new heap page {page} is not zeroed");
            address.write_volatile(0x1234_5678);
        }
    }
    check!(brk(start + PAGE).context("brk shrink")? == start + PAGE, "brk shrink");
    check!(my_memory()? == memory + PAGE, "memory did not shrink by 3 pages");
    check!(brk(start + 2 * PAGE).context("brk regrow")? == start + 2 * PAGE, "brk regrow");
    // SAFETY: the page was just mapped again.
    let regrown = unsafe { ((start + PAGE) as *const u64).read_volatile() };
    check!(regrown == 0, "a regrown heap page kept its old contents");
    check!(brk(start).context("brk back")? == start, "brk back to the start");
    check!(brk(0).context("brk(0)")? == start, "brk(0) after shrinking");
    Ok(())
}

fn brk_below_heap_refused() -> Outcome {
    let end = sys::heap_end() as u64;
    for address in [1, IMAGE_START, IMAGE_START + PAGE] {
        check!(brk(address) == Err(Errno(EINVAL)), "brk({address:#x}) below the heap was not refused with EINVAL");
    }
    check!(sys::heap_end() as u64 == end, "refused brk calls moved the heap end");
    Ok(())
}

fn brk_wrapping_refused() -> Outcome {
    let end = sys::heap_end() as u64;
    let memory = my_memory()?;
    for address in
        [u64::MAX, u64::MAX - PAGE + 2, USER_END, PHYSICAL_MAP_OFFSET, end + (1 << 40), USER_STACK_TOP - PAGE]
    {
        check!(brk(address) == Err(Errno(ENOMEM)), "brk({address:#x}) was not refused with ENOMEM");
    }
    check!(sys::heap_end() as u64 == end, "refused brk calls moved the heap end");
    check!(my_memory()? == memory, "refused brk calls changed the memory size");
    Ok(())
}

fn mmap_anywhere() -> Outcome {
    let memory = my_memory()?;
    let address = sys::mmap(0, 3 * PAGE, RW).context("mmap")?;
    check!(
        address % PAGE == 0 && address >= USER_MMAP_BASE && address + 3 * PAGE <= USER_END,
        "mmap returned {address:#x}"
    );
    let grown = my_memory()? - memory;
    // Three pages, and the page tables they needed (none if earlier mappings made them).
    check!((3 * PAGE..=6 * PAGE).contains(&grown), "memory grew by {grown} bytes for 3 pages");
    // SAFETY: the three pages were just mapped read-write.
    let bytes = unsafe { core::slice::from_raw_parts_mut(address as *mut u8, 3 * PAGE as usize) };
    check!(bytes.iter().all(|&byte| byte == 0), "new pages are not zeroed");
    bytes.fill(0x42);
    check!(black_box(&bytes[..]).iter().all(|&byte| byte == 0x42), "pages do not keep what was written");
    unmap(address, 3)?;
    check!(my_memory()? == memory, "munmap did not give the pages back");
    Ok(())
}

fn mmap_fixed() -> Outcome {
    let address = sys::mmap(FIXED_BASE, 2 * PAGE, RW).context("mmap at a fixed address")?;
    check!(address == FIXED_BASE, "mmap at {FIXED_BASE:#x} returned {address:#x}");
    let overlap = sys::mmap(FIXED_BASE + PAGE, 2 * PAGE, RW);
    let outcome: Outcome = (|| {
        check!(overlap == Err(Errno(EINVAL)), "mmap over a mapped page returned {overlap:?}");
        let again = sys::mmap(FIXED_BASE, PAGE, PROT_READ);
        check!(again == Err(Errno(EINVAL)), "a second mmap at the same address returned {again:?}");
        Ok(())
    })();
    unmap(FIXED_BASE, 2)?;
    outcome
}

fn mmap_reuse_is_zeroed() -> Outcome {
    for round in 0..2 {
        let address = sys::mmap(FIXED_BASE, PAGE, RW).context("mmap")?;
        // SAFETY: the page was just mapped read-write.
        let word = unsafe { &mut *(address as *mut u64) };
        check!(*word == 0, "round {round}: a reused page still holds {:#x}", *word);
        *word = 0xdead_beef;
        unmap(address, 1)?;
    }
    Ok(())
}

fn mmap_invalid() -> Outcome {
    let memory = my_memory()?;
    for (address, length, prot, what) in [
        (0, 0, RW, "length 0"),
        (FIXED_BASE, 0, RW, "length 0 at a fixed address"),
        (FIXED_BASE + 1, PAGE, RW, "an unaligned address"),
        (0, PAGE, RW | PROT_EXEC, "write and execute"),
        (0, PAGE, 1 << 3, "an unknown prot bit"),
        (0, PAGE, u64::MAX, "prot u64::MAX"),
        (PAGE, PAGE, RW, "below USER_START"),
        (PHYSICAL_MAP_OFFSET, PAGE, RW, "PHYSICAL_MAP_OFFSET"),
        (0xffff_ffff_ffff_f000, PAGE, RW, "the last page"),
        (0x0000_8000_0000_0000, PAGE, RW, "the first non-canonical page"),
        (0xdead_beef_0000_0000, PAGE, RW, "a non-canonical address"),
        (LAST_USER_PAGE, 2 * PAGE, RW, "across the end of the user half"),
    ] {
        let result = call(MMAP, [address, length, prot, 0, 0, 0]);
        expect_errno(&format!("mmap with {what}"), result, EINVAL)?;
    }
    check!(my_memory()? == memory, "refused mmap calls changed the memory size");
    Ok(())
}

fn mmap_wrapping_refused() -> Outcome {
    let memory = my_memory()?;
    for (address, length) in [
        (0, u64::MAX),
        (0, u64::MAX - PAGE + 2),
        (0, 1 << 62),
        (FIXED_BASE, u64::MAX - FIXED_BASE + 1),
        (FIXED_BASE, u64::MAX),
        (FIXED_BASE, 1 << 47),
    ] {
        let result = call(MMAP, [address, length, RW, 0, 0, 0]);
        check!(result == -EINVAL || result == -ENOMEM, "mmap({address:#x}, {length:#x}) returned {}", show(result));
    }
    check!(my_memory()? == memory, "refused mmap calls changed the memory size");
    Ok(())
}

fn mmap_reserved_areas_refused() -> Outcome {
    let heap = sys::heap_end() as u64;
    for (address, what) in [
        (USER_STACK_TOP - USER_STACK_SIZE - PAGE, "the stack guard"),
        (USER_STACK_TOP - PAGE, "the stack"),
        (heap + 16 * PAGE, "the heap's reserved range"),
        (heap - PAGE, "the heap"),
        (IMAGE_START, "the program image"),
        (rflags as fn() -> u64 as *const () as u64 & !(PAGE - 1), "the program's text"),
    ] {
        let result = call(MMAP, [address, PAGE, RW, 0, 0, 0]);
        expect_errno(&format!("mmap over {what}"), result, EINVAL)?;
    }
    Ok(())
}

fn munmap_invalid() -> Outcome {
    for (address, length, what) in [
        (FIXED_BASE + 8, PAGE, "an unaligned address"),
        (FIXED_BASE, 0, "length 0"),
        (FIXED_BASE, u64::MAX, "length u64::MAX"),
        (FIXED_BASE, u64::MAX - FIXED_BASE + 1, "a wrapping length"),
        (0, PAGE, "null"),
        (PHYSICAL_MAP_OFFSET, PAGE, "PHYSICAL_MAP_OFFSET"),
        (0xdead_beef_0000_0000, PAGE, "a non-canonical address"),
    ] {
        // SAFETY: every one of these ranges is invalid and must be refused, leaving every
        // mapping in place.
        let result = unsafe { sys::munmap(address, length) };
        check!(result == Err(Errno(EINVAL)), "munmap of {what} returned {result:?}");
    }
    Ok(())
}

fn munmap_partial() -> Outcome {
    let memory = my_memory()?;
    let address = sys::mmap(0, 4 * PAGE, RW).context("mmap")?;
    unmap(address + PAGE, 2)?;
    let outcome: Outcome = (|| {
        // Two pages, and the page tables the mapping needed (none if earlier mappings made
        // them).
        check!(
            (2 * PAGE..=5 * PAGE).contains(&(my_memory()? - memory)),
            "unmapping the middle two of four pages left {} bytes",
            my_memory()? - memory
        );
        for page in [address, address + 3 * PAGE] {
            // SAFETY: the outer pages are still mapped read-write.
            unsafe { core::ptr::write_volatile(page as *mut u8, 1) };
        }
        // SAFETY: the range is not fully mapped and must be refused.
        let result = unsafe { sys::mprotect(address, 4 * PAGE, PROT_READ) };
        check!(result == Err(Errno(EINVAL)), "mprotect over the hole returned {result:?}");
        Ok(())
    })();
    unmap(address, 4)?;
    check!(my_memory()? == memory, "unmapping the rest did not give all pages back");
    outcome
}

fn munmap_spares_image_heap_stack() -> Outcome {
    let memory = my_memory()?;
    let heap = sys::heap_end() as u64;
    let (stack_start, stack_end) = (USER_STACK_TOP - USER_STACK_SIZE, USER_STACK_TOP);
    for (address, length, what) in
        [(IMAGE_START, heap - IMAGE_START, "the image and heap"), (stack_start, stack_end - stack_start, "the stack")]
    {
        // SAFETY: `munmap` affects only `mmap`ed pages, so this must leave the image, heap
        // and stack alone, which the rest of the child then relies on.
        let result = unsafe { sys::munmap(address, length) };
        check!(result == Ok(()), "munmap of {what} returned {result:?}");
    }
    check!(my_memory()? == memory, "munmap of non-mmap memory changed the memory size");
    let text = black_box(format!("{}", black_box(41) + 1));
    check!(text == "42", "the heap or text no longer works");
    Ok(())
}

fn mprotect_changes_rights() -> Outcome {
    let page = map_page()?;
    let outcome: Outcome = (|| {
        // SAFETY: the page was just mapped read-write.
        unsafe { core::ptr::write_volatile(page as *mut u64, 0x1234) };
        // SAFETY: nothing writes the page while it is read-only.
        unsafe { sys::mprotect(page, PAGE, PROT_READ) }.context("mprotect to read-only")?;
        // SAFETY: the page is still readable.
        check!(unsafe { core::ptr::read_volatile(page as *const u64) } == 0x1234, "the contents changed");
        // SAFETY: back to read-write.
        unsafe { sys::mprotect(page, PAGE, RW) }.context("mprotect back to read-write")?;
        // SAFETY: the page is writable again.
        unsafe { core::ptr::write_volatile(page as *mut u64, 0x5678) };
        for (address, length, prot, what) in [
            (page, PAGE, RW | PROT_EXEC, "write and execute"),
            (page, PAGE, 1 << 5, "an unknown bit"),
            (page + 8, PAGE, PROT_READ, "an unaligned address"),
            (page, 0, PROT_READ, "length 0"),
            (page, 2 * PAGE, PROT_READ, "a range running past the mapping"),
            (HOLE, PAGE, PROT_READ, "an unmapped page"),
            (page, u64::MAX, PROT_READ, "length u64::MAX"),
        ] {
            // SAFETY: each of these must be refused, leaving the page read-write.
            let result = unsafe { sys::mprotect(address, length, prot) };
            check!(result == Err(Errno(EINVAL)), "mprotect with {what} returned {result:?}");
        }
        // SAFETY: still read-write after the refusals.
        unsafe { core::ptr::write_volatile(page as *mut u64, 0x9abc) };
        Ok(())
    })();
    unmap(page, 1)?;
    outcome
}

fn mprotect_outside_mmap_refused() -> Outcome {
    let heap = sys::heap_end() as u64;
    for (address, prot, what) in [
        (rflags as fn() -> u64 as *const () as u64 & !(PAGE - 1), RW, "the text"),
        (USER_STACK_TOP - PAGE, RX, "the stack"),
        (heap - PAGE, RX, "the heap"),
        (READ_ONLY.as_ptr() as u64 & !(PAGE - 1), RW, ".rodata"),
    ] {
        // SAFETY: `mprotect` covers only `mmap`ed pages, so each must be refused and leave
        // the rights alone, which the child then relies on.
        let result = unsafe { sys::mprotect(address, PAGE, prot) };
        check!(result == Err(Errno(EINVAL)), "mprotect of {what} returned {result:?}");
    }
    check!(black_box(format!("{}", black_box(6) * 7)) == "42", "the heap or text no longer works");
    Ok(())
}

fn mmap_code_runs_after_mprotect() -> Outcome {
    let page = map_page()?;
    let code = [0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3];
    // SAFETY: the page was just mapped read-write.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), page as *mut u8, code.len()) };
    // SAFETY: nothing writes the page once it is executable.
    unsafe { sys::mprotect(page, PAGE, RX) }.context("mprotect to read-execute")?;
    let result: u64;
    // SAFETY: the page holds `mov eax, 42; ret` and is mapped read-execute.
    unsafe { asm!("call {}", in(reg) page, out("rax") result, clobber_abi("C")) };
    check!(result == 42, "the code returned {result}");
    Ok(())
}

fn page_tables_freed() -> Outcome {
    let before = info()?.free_frames;
    for index in 0..32u64 {
        let address = HOLE + (index << 30);
        let mapped = sys::mmap(address, PAGE, RW).context("mmap")?;
        check!(mapped == address, "mmap at {address:#x} returned {mapped:#x}");
        // SAFETY: the page was just mapped read-write.
        unsafe { core::ptr::write_volatile(address as *mut u8, 1) };
        unmap(address, 1)?;
    }
    let after = info()?.free_frames;
    check!(
        after == before,
        "mapping and unmapping 32 pages, 1 GiB apart, kept {} frames",
        before.saturating_sub(after)
    );
    Ok(())
}

fn failed_mmap_leaves_memory_as_it_was() -> Outcome {
    let limit = info()?.max_process_memory;
    let memory = my_memory()?;
    let frames = info()?.free_frames;
    // Exactly the pages the limit has left, somewhere nothing is mapped: the page tables they
    // need push the process over the limit part-way, so the mapping must fail after building
    // tables, and take them all back.
    let result = sys::mmap(HOLE, limit - memory, RW);
    check!(result == Err(Errno(ENOMEM)), "mmap of the whole remaining limit returned {result:?}, not ENOMEM");
    check!(my_memory()? == memory, "the failed mmap left {} bytes charged", my_memory()? - memory);
    check!(info()?.free_frames == frames, "the failed mmap kept {} frames", frames - info()?.free_frames);
    Ok(())
}

fn brk_exhaustion() -> Outcome {
    let limit = info()?.max_process_memory;
    let start = sys::heap_end() as u64;
    let memory = my_memory()?;
    let grow_until_refused = || -> Result<u64, String> {
        let mut end = start;
        for step in [MIB, PAGE] {
            loop {
                match brk(end + step) {
                    Ok(new_end) => end = new_end,
                    Err(Errno(ENOMEM)) => break,
                    Err(errno) => return Err(format!("brk grow failed with {errno}, not ENOMEM")),
                }
            }
        }
        Ok(end)
    };
    let first = grow_until_refused()?;
    // The limit counts page tables too; the last page may have needed up to three of them.
    check!(
        (limit - 3 * PAGE..=limit).contains(&my_memory()?),
        "the heap stopped growing at {} bytes of memory, not at the limit {limit}",
        my_memory()?
    );
    // SAFETY: the last heap page is mapped; nothing else uses it.
    unsafe { core::ptr::write_volatile((first - 8) as *mut u64, 7) };
    check!(brk(start).context("brk shrink")? == start, "brk shrink");
    check!(my_memory()? == memory, "shrinking did not free the heap");
    let second = grow_until_refused()?;
    check!(second == first, "the heap regrew to {second:#x}, first time {first:#x}");
    check!(brk(start).context("brk shrink")? == start, "brk shrink");
    Ok(())
}

fn mmap_exhaustion() -> Outcome {
    let limit = info()?.max_process_memory;
    let memory = my_memory()?;
    let mut mappings: Vec<(u64, u64)> = Vec::with_capacity(2048);
    for step in [MIB, PAGE] {
        loop {
            check!(mappings.len() < mappings.capacity(), "more than {} mappings", mappings.capacity());
            match sys::mmap(0, step, RW) {
                Ok(address) => mappings.push((address, step)),
                Err(Errno(ENOMEM)) => break,
                Err(errno) => return Err(format!("mmap failed with {errno}, not ENOMEM")),
            }
        }
    }
    let total: u64 = mappings.iter().map(|(_, length)| length).sum();
    // The limit counts page tables too; the last page may have needed up to three of them.
    check!(
        (limit - 3 * PAGE..=limit).contains(&my_memory()?),
        "mmap stopped at {} bytes of memory, not at the limit {limit}",
        my_memory()?
    );
    for &(address, length) in &mappings {
        unmap(address, length / PAGE)?;
    }
    check!(my_memory()? == memory, "unmapping everything left {} bytes", my_memory()? - memory);
    let again = sys::mmap(0, total, RW).context("mmap of everything in one piece")?;
    unmap(again, total / PAGE)
}

fn global_memory_exhaustion() -> Outcome {
    let before = system_frames()?;
    let info = info()?;
    let hogs = (info.free_frames * PAGE / info.max_process_memory + 1).min(16);
    let mut pids = Vec::new();
    for _ in 0..hogs {
        pids.push(spawn_child("memory_hog", &[])?);
    }
    let outcome: Outcome = (|| {
        let all_done = wait_until(CHILD_LIMIT_MS * 2, || {
            let table = Table::read()?;
            Ok(pids.iter().all(|pid| table.find(*pid).is_some_and(|row| row.state == ProcessState::Blocked as u32)))
        })?;
        check!(all_done, "the memory hogs did not finish mapping");
        let free = sys::sysinfo().context("sysinfo while memory is exhausted")?.free_frames;
        check!(free < 64, "{hogs} hogs left {free} frames free: physical memory was not exhausted");
        match sys::spawn("usertests", &["usertests", "--child", "exit_with", "0"]) {
            Ok(pid) => {
                wait_for(pid)?;
            }
            Err(errno) => {
                check!(errno == Errno(ENOMEM) || errno == Errno(EAGAIN), "spawn without memory failed with {errno}")
            }
        }
        let result = sys::mmap(0, 16 * PAGE, RW);
        if let Ok(address) = result {
            unmap(address, 16)?;
        }
        check!(result.is_ok() || result == Err(Errno(ENOMEM)), "mmap without memory returned {result:?}");
        Ok(())
    })();
    kill_and_reap(&pids)?;
    outcome?;
    let after = system_frames()?;
    check!(after == before, "{} frames missing after the hogs were reaped", before.saturating_sub(after));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Processes.
// ---------------------------------------------------------------------------------------

/// As many processes as the table holds, each with as many separate `mmap` regions as it may
/// have: the kernel's bookkeeping must stay within its heap (with `-m 4G` the frames do not
/// run out first), every refusal must be ENOMEM, and killing them all must give every heap
/// byte back.
fn kernel_heap_stays_bounded() -> Outcome {
    let before = info()?;
    let mut pids = Vec::new();
    while let Ok(pid) = sys::spawn("usertests", &["usertests", "--child", "region_hog"]) {
        pids.push(pid);
    }
    let settled = wait_until(CHILD_LIMIT_MS, || {
        let rows = userlib::process::list().context("process_list")?;
        Ok(pids.iter().all(|pid| {
            rows.iter().any(|row| row.pid == *pid && ProcessState::from_u32(row.state) != Some(ProcessState::Ready))
        }))
    })?;
    let during = info()?;
    let mut statuses = Vec::new();
    for &pid in &pids {
        let _ = sys::kill(pid);
        statuses.push(wait_for(pid)?);
    }
    let after = info()?;
    check!(settled, "the region hogs did not all finish mapping within {CHILD_LIMIT_MS} ms");
    check!(pids.len() >= 32, "only {} processes could be started", pids.len());
    check!(statuses.iter().all(|&status| status == KILLED), "a region hog failed: statuses {statuses:?}");
    check!(
        during.heap_used < during.heap_size,
        "heap use {} of {} with every process full of regions",
        during.heap_used,
        during.heap_size
    );
    check!(after.heap_used == before.heap_used, "heap use {} after the hogs, {} before", after.heap_used, before.heap_used);
    check!(after.free_frames == before.free_frames, "{} frames missing after the hogs", before.free_frames - after.free_frames);
    Ok(())
}

fn exit_status() -> Outcome {
    for status in [0, 1, 42, 255, 256, 1000, -1, i32::MAX, i32::MIN] {
        expect_child_status("exit_with", &[&format!("{status}")], status)?;
    }
    Ok(())
}

fn wait_any_collects_all() -> Outcome {
    let mut expected = Vec::new();
    for index in 0..6 {
        let status = 10 + index;
        expected.push((spawn_child("exit_with", &[&format!("{status}")])?, status));
    }
    for _ in 0..expected.len() {
        let (pid, status) = sys::wait(None).context("wait for any child")?;
        let position =
            expected.iter().position(|&(child, _)| child == pid).ok_or(format!("wait returned unknown pid {pid}"))?;
        let (_, wanted) = expected.swap_remove(position);
        check!(status == wanted, "pid {pid} exited with {status}, expected {wanted}");
    }
    check!(sys::wait(None) == Err(Errno(ECHILD)), "wait after reaping every child did not return ECHILD");
    Ok(())
}

fn wait_for_specific_child() -> Outcome {
    let slow = spawn_child("exit_after", &["30", "7"])?;
    let fast = spawn_child("exit_with", &["8"])?;
    let slow_status = wait_for(slow)?;
    check!(slow_status == 7, "the slow child exited with {slow_status}");
    let fast_status = wait_for(fast)?;
    check!(fast_status == 8, "the fast child exited with {fast_status}");
    Ok(())
}

fn wait_no_children() -> Outcome {
    check!(sys::wait(None) == Err(Errno(ECHILD)), "wait for any child without children");
    check!(sys::wait(Some(12345)) == Err(Errno(ECHILD)), "wait for pid 12345 without children");
    Ok(())
}

fn wait_non_child() -> Outcome {
    let me = u64::from(sys::getpid());
    let parent = u64::from(sys::getppid());
    let mut status = 0i32;
    let out = &raw mut status as u64;
    let mut pids = vec![(me, "self"), (u64::from(u32::MAX), "u32::MAX"), (1 << 32 | me, "own pid + 2^32")];
    if parent != 0 {
        pids.push((parent, "the parent"));
    }
    for (pid, what) in pids {
        expect_errno(&format!("wait for {what}"), call(WAIT, [pid, out, 0, 0, 0, 0]), ECHILD)?;
    }
    for pid in [0, -2i64 as u64, i64::MIN as u64] {
        expect_errno(&format!("wait for pid {}", pid as i64), call(WAIT, [pid, out, 0, 0, 0, 0]), EINVAL)?;
    }
    Ok(())
}

/// Starts `parent_of_sleeper` and finds the sleeper it started: (child, grandchild).
fn start_parent_of_sleeper() -> Result<(Pid, Pid), String> {
    let child = spawn_child("parent_of_sleeper", &[])?;
    let mut grandchild = None;
    let found = wait_until(CHILD_LIMIT_MS, || {
        grandchild = Table::read()?.rows().iter().find(|row| row.parent == child).map(|row| row.pid);
        Ok(grandchild.is_some())
    })?;
    match grandchild {
        Some(grandchild) if found => Ok((child, grandchild)),
        _ => Err(String::from("parent_of_sleeper did not start its sleeper")),
    }
}

/// Kills an orphaned grandchild (now pid 1's) and reaps it if this process is pid 1.
fn dispose_of_orphan(pid: Pid) -> Outcome {
    sys::kill(pid).context("kill of the orphan")?;
    if sys::getpid() == 1 {
        let status = wait_for(pid)?;
        check!(status == KILLED, "the orphan {}", describe_status(status));
    }
    Ok(())
}

fn wait_grandchild() -> Outcome {
    let (child, grandchild) = start_parent_of_sleeper()?;
    let refused = sys::wait(Some(grandchild));
    sys::kill(grandchild).context("kill of the grandchild")?;
    let status = wait_for(child)?;
    check!(refused == Err(Errno(ECHILD)), "wait for a grandchild returned {refused:?}");
    check!(status == 0, "parent_of_sleeper {}", describe_status(status));
    Ok(())
}

fn wait_null_status() -> Outcome {
    let child = spawn_child("exit_with", &["9"])?;
    let reaped = call(WAIT, [u64::from(child), 0, 0, 0, 0, 0]);
    expect_value("wait with a null status pointer", reaped, i64::from(child))?;
    check!(state_of(child)?.is_none(), "the child is still in the table after wait");
    Ok(())
}

fn kill_spinning_child() -> Outcome {
    let child = spawn_child("spinner", &[])?;
    sleep_ms(5)?;
    check!(state_of(child)? == Some(ProcessState::Ready), "the spinner is not runnable");
    kill_and_reap(&[child])
}

fn kill_sleeping_child() -> Outcome {
    let child = spawn_child("sleeper", &["forever"])?;
    let started = wait_until(CHILD_LIMIT_MS, || Ok(state_of(child)? == Some(ProcessState::Blocked)))?;
    let start = now();
    kill_and_reap(&[child])?;
    let elapsed = now() - start;
    check!(started, "the sleeper never blocked");
    check!(elapsed < 100 * MS, "killing a sleeper took {} ms", elapsed / MS);
    Ok(())
}

fn kill_reading_child() -> Outcome {
    let child = spawn_child("console_reader", &[])?;
    let blocked = wait_until(CHILD_LIMIT_MS, || Ok(state_of(child)? == Some(ProcessState::Blocked)))?;
    kill_and_reap(&[child])?;
    check!(blocked, "the reader never blocked in read");
    Ok(())
}

fn kill_waiting_child() -> Outcome {
    let (child, grandchild) = start_parent_of_sleeper()?;
    sleep_ms(5)?;
    let killed = kill_and_reap(&[child]);
    let orphan = dispose_of_orphan(grandchild);
    killed.and(orphan)
}

fn kill_unstarted_child() -> Outcome {
    let child = spawn_child("spinner", &[])?;
    kill_and_reap(&[child])
}

fn kill_zombie() -> Outcome {
    let child = spawn_child("exit_with", &["3"])?;
    let zombie = wait_until(CHILD_LIMIT_MS, || Ok(state_of(child)? == Some(ProcessState::Zombie)))?;
    let killed = sys::kill(child);
    let status = wait_for(child)?;
    check!(zombie, "the child never became a zombie");
    check!(killed == Err(Errno(ESRCH)), "kill of a zombie returned {killed:?}");
    check!(status == 3, "the zombie's status became {status}");
    Ok(())
}

fn kill_invalid_pid() -> Outcome {
    let me = u64::from(sys::getpid());
    for (pid, what) in [
        (0, "0"),
        (999_999, "999999"),
        (u64::from(u32::MAX), "u32::MAX"),
        (1 << 32 | me, "own pid + 2^32"),
        (u64::MAX, "-1"),
    ] {
        expect_errno(&format!("kill({what})"), call(KILL, [pid, 0, 0, 0, 0, 0]), ESRCH)?;
    }
    Ok(())
}

fn kill_init_refused() -> Outcome {
    expect_errno("kill(1)", call(KILL, [1, 0, 0, 0, 0, 0]), EPERM)
}

fn kill_self() -> Outcome {
    expect_child_status("kill_self", &[], KILLED)
}

fn zombie_in_process_list() -> Outcome {
    let me = sys::getpid();
    let child = spawn_child("exit_with", &["0"])?;
    let zombie = wait_until(CHILD_LIMIT_MS, || Ok(state_of(child)? == Some(ProcessState::Zombie)))?;
    let table = Table::read()?;
    let row = table.find(child).copied();
    wait_for(child)?;
    check!(zombie, "the exited child never showed as a zombie");
    let row = row.ok_or("the zombie has no row")?;
    check!(row.parent == me, "the zombie's parent is {}", row.parent);
    check!(row.memory_bytes == 0, "the zombie still holds {} bytes of memory", row.memory_bytes);
    check!(state_of(child)?.is_none(), "the reaped child is still listed");
    Ok(())
}

fn pids_increase() -> Outcome {
    let first = spawn_child("exit_with", &["0"])?;
    wait_for(first)?;
    let second = spawn_child("exit_with", &["0"])?;
    wait_for(second)?;
    check!(second > first, "pid {second} came after pid {first}");
    Ok(())
}

fn spawn_missing_program() -> Outcome {
    for name in ["no_such_program", "", "usertest", "usertests\0", "USERTESTS", "usertests "] {
        let argv = [user_str(name.as_bytes())];
        let result = raw_spawn(name.as_ptr() as u64, name.len() as u64, argv.as_ptr() as u64, 1);
        expect_errno(&format!("spawn({name:?})"), result, ENOENT)?;
    }
    Ok(())
}

/// Arguments `spawn_passes_arguments` sends and `echo_args` expects.
const ECHO_ARGS: [&str; 5] = ["a", "bb", "", "ünïcødé", "with space"];

fn spawn_passes_arguments() -> Outcome {
    expect_child_status("echo_args", &ECHO_ARGS, 0)
}

fn spawn_argument_limits() -> Outcome {
    let fixed = ["usertests", "--child", "arg_stats"];
    let fixed_bytes: usize = fixed.iter().map(|arg| arg.len()).sum();
    let filler_count = ARGV_MAX - fixed.len();
    let per_arg = (ARGV_BYTES_MAX - fixed_bytes) / filler_count;
    let last = ARGV_BYTES_MAX - fixed_bytes - per_arg * (filler_count - 1);
    let text = "x".repeat(last);
    let mut extra: Vec<&str> = (0..filler_count - 1).map(|_| &text[..per_arg]).collect();
    extra.push(&text);
    let expected = ((ARGV_MAX as i32) << 16) | ARGV_BYTES_MAX as i32;
    expect_child_status("arg_stats", &extra, expected)?;
    let longer = "x".repeat(last + 1);
    *extra.last_mut().ok_or("no arguments")? = &longer;
    let mut argv = fixed.to_vec();
    argv.extend_from_slice(&extra);
    let result = sys::spawn("usertests", &argv);
    check!(result == Err(Errno(E2BIG)), "spawn with ARGV_BYTES_MAX + 1 argument bytes returned {result:?}");
    Ok(())
}

fn spawn_limit() -> Outcome {
    let before = info()?;
    let frames = system_frames()?;
    let (pids, errno) = fill_process_table()?;
    let again = sys::spawn("usertests", &["usertests", "--child", "exit_with", "0"]);
    let full = info()?.processes;
    kill_and_reap(&pids)?;
    let expected = before.max_processes as usize - before.processes as usize;
    check!(errno == Errno(EAGAIN), "spawn at the limit failed with {errno}, not EAGAIN");
    check!(pids.len() == expected, "{} spawns succeeded before EAGAIN, expected {expected}", pids.len());
    check!(again == Err(Errno(EAGAIN)), "a second spawn at the limit returned {again:?}");
    check!(full == before.max_processes, "sysinfo counted {full} processes at the limit");
    let after = info()?;
    check!(
        after.processes == before.processes,
        "{} processes after reaping, {} before",
        after.processes,
        before.processes
    );
    let frames_after = system_frames()?;
    check!(frames_after == frames, "{} frames missing after reaping", frames.saturating_sub(frames_after));
    Ok(())
}

fn spawn_bomb() -> Outcome {
    let processes = info()?.processes;
    let frames = system_frames()?;
    let status = run_child("bomb", &["6"])?;
    check!(status > 0, "the bomb {} (positive: EAGAINs seen; negative: another error)", describe_status(status));
    let after = info()?.processes;
    check!(after == processes, "{after} processes after the bomb, {processes} before");
    let frames_after = system_frames()?;
    check!(frames_after == frames, "{} frames missing after the bomb", frames.saturating_sub(frames_after));
    Ok(())
}

fn orphan_reparented() -> Outcome {
    let me = sys::getpid();
    let parent = spawn_child("orphan_parent", &[])?;
    let grandchild = finish_within(parent, "orphan_parent", CHILD_LIMIT_MS)?;
    check!(grandchild > 0, "orphan_parent {}", describe_status(grandchild));
    let grandchild = grandchild as Pid;
    let table = Table::read()?;
    let row = table.find(grandchild).ok_or("the orphan is gone before it could be checked")?;
    check!(row.parent == 1, "the orphan's parent is {}, not 1", row.parent);
    if me == 1 {
        let status = wait_for(grandchild)?;
        check!(status == 0, "the orphan saw getppid() = {status}, not 1");
    } else {
        check!(sys::wait(Some(grandchild)) == Err(Errno(ECHILD)), "the orphan is still this process's child");
        let done = wait_until(CHILD_LIMIT_MS, || {
            Ok(Table::read()?.find(grandchild).is_none_or(|row| row.state == ProcessState::Zombie as u32))
        })?;
        check!(done, "the orphan never finished");
    }
    Ok(())
}

/// Runs `usertests orphan_reparented` as a child suite, where the orphan's grandparent is not
/// pid 1; when this suite is pid 1, the orphan comes to it and must be reaped here, with the
/// status that says it saw pid 1 as its parent.
fn orphan_reaped_by_init() -> Outcome {
    let suite = sys::spawn("usertests", &["usertests", "orphan_reparented"]).context("spawn of a nested suite")?;
    let status = finish_within(suite, "the nested suite", CHILD_LIMIT_MS)?;
    check!(status == 0, "the nested suite {}", describe_status(status));
    if sys::getpid() != 1 {
        return Ok(());
    }
    let (orphan, orphan_status) = sys::wait(None).context("reaping the nested suite's orphan")?;
    check!(orphan_status == 0, "the nested suite's orphan {orphan} {}", describe_status(orphan_status));
    check!(sys::wait(None) == Err(Errno(ECHILD)), "more than one orphan was left");
    Ok(())
}

fn preemption() -> Outcome {
    let start = now() + 20 * MS;
    let end = start + 100 * MS;
    let (start_text, end_text) = (format!("{start}"), format!("{end}"));
    let first = spawn_child("spin_window", &[&start_text, &end_text])?;
    let second = spawn_child("spin_window", &[&start_text, &end_text])?;
    let asked = end + 20 * MS - now();
    let before = now();
    let slept = sys::sleep_ns(asked).context("sleep");
    let elapsed = now() - before;
    let statuses = (wait_for(first)?, wait_for(second)?);
    slept?;
    check!(
        elapsed <= asked + 3 * SLICE_NS,
        "the parent asked for {} ms of sleep and got the CPU back after {} ms",
        asked / MS,
        elapsed / MS
    );
    check!(statuses == (0, 0), "spinner statuses {statuses:?}: 0 means it made progress in the shared window");
    Ok(())
}

fn preemption_with_interrupts_cleared() -> Outcome {
    let child = spawn_child("interrupts_off_spinner", &[])?;
    sleep_ms(5)?;
    let before = now();
    let slept = sleep_ms(30);
    let elapsed = now() - before;
    let state = state_of(child)?;
    sys::kill(child).context("kill of the spinner")?;
    let status = wait_for(child)?;
    slept?;
    check!(status == KILLED, "the spinner {} (2: it saw IF cleared)", describe_status(status));
    check!(state == Some(ProcessState::Ready), "the spinner was not runnable: {state:?}");
    check!(elapsed <= 30 * MS + 3 * SLICE_NS, "a 30 ms sleep took {} ms next to the spinner", elapsed / MS);
    Ok(())
}

fn sleep_accuracy() -> Outcome {
    let tick = 1_000_000_000 / u64::from(info()?.timer_hz);
    for duration in [MS, 2 * MS, 5 * MS, 10 * MS, 25 * MS] {
        let mut last = 0;
        let mut within = false;
        for _ in 0..3 {
            let start = now();
            sys::sleep_ns(duration).context("sleep")?;
            last = now() - start;
            check!(last + tick >= duration, "sleep({} ms) returned after {last} ns", duration / MS);
            if last <= duration + 2 * tick {
                within = true;
                break;
            }
        }
        check!(within, "sleep({} ms) took {last} ns in three tries, more than a tick late", duration / MS);
    }
    Ok(())
}

fn sleep_zero() -> Outcome {
    let start = now();
    expect_value("sleep(0)", call(SLEEP, [0; 6]), 0)?;
    expect_value("sleep(1 ns)", call(SLEEP, [1, 0, 0, 0, 0, 0]), 0)?;
    let elapsed = now() - start;
    check!(elapsed < 10 * MS, "sleep(0) and sleep(1 ns) took {elapsed} ns");
    Ok(())
}

fn sleep_huge_is_killable() -> Outcome {
    let child = spawn_child("sleep_ns", &[&format!("{}", u64::MAX)])?;
    let blocked = wait_until(CHILD_LIMIT_MS, || Ok(state_of(child)? == Some(ProcessState::Blocked)))?;
    kill_and_reap(&[child])?;
    check!(blocked, "a sleep of u64::MAX ns never blocked");
    Ok(())
}

fn leak() -> Outcome {
    let baseline = BASELINE.load(Ordering::Relaxed);
    check!(baseline != 0, "no baseline was taken");
    let now = system_frames()?;
    check!(now >= baseline, "lost {} frames", baseline - now);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Helper roles.
// ---------------------------------------------------------------------------------------

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

/// `console_reader`: reads the console, which nobody types on; exits 3 if the read returns.
fn helper_console_reader(_: &[&str]) -> i32 {
    let mut buffer = [0u8; 16];
    let _ = sys::read(0, &mut buffer);
    NO_FAULT
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
    let deadline = now() + CHILD_LIMIT_MS * MS;
    while sys::getppid() == parent && now() < deadline {
        let _ = sys::sleep_ms(1);
    }
    let _ = sys::sleep_ms(200);
    match sys::getppid() {
        1 => 0,
        other => other as i32,
    }
}

/// `kill_self`: kills itself; exits 3 if that returned.
fn helper_kill_self(_: &[&str]) -> i32 {
    let _ = sys::kill(sys::getpid());
    NO_FAULT
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
            Ok(status) if status >= 0 => refused += status,
            Ok(status) => return status.min(-1),
            Err(_) => return -2000,
        }
    }
    refused
}

/// `memory_hog`: maps memory until refused, then sleeps until killed.
/// `region_hog`: maps single pages two pages apart (so no two regions merge) until `mmap`
/// refuses; exits 1 if it refuses with anything but ENOMEM, else sleeps forever.
fn helper_region_hog(_: &[&str]) -> i32 {
    let mut address = HOLE;
    loop {
        match sys::mmap(address, PAGE, RW) {
            Ok(_) => address += 2 * PAGE,
            Err(Errno(ENOMEM)) => break,
            Err(_) => return 1,
        }
    }
    let _ = sys::sleep_ms(u64::MAX);
    0
}

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

/// The value `mmx_writer` leaves in `mm1`.
const MMX_MARKER: u64 = 0x5eed_f00d_cafe_d00d;
/// The x87 control word `mmx_writer` leaves (a rounding mode nobody uses by default).
const X87_CONTROL_MARKER: u16 = 0x0c7f;

/// `mmx_writer`: leaves a marker in `mm1` and in the x87 control word, and exits.
fn helper_mmx_writer(_: &[&str]) -> i32 {
    // SAFETY: writes only MMX/x87 state, which no Rust code here uses.
    unsafe { asm!("movq mm1, {}", "fldcw [{}]", in(reg) MMX_MARKER, in(reg) &X87_CONTROL_MARKER, out("mm1") _) };
    0
}

/// `mmx_reader`: exits 1 if `mm1` or the x87 control word holds `mmx_writer`'s marker.
fn helper_mmx_reader(_: &[&str]) -> i32 {
    let value: u64;
    let mut control = 0u16;
    // SAFETY: reads MMX/x87 state only, into `value` and `control`.
    unsafe { asm!("movq {}, mm1", "fnstcw [{}]", out(reg) value, in(reg) &mut control) };
    if value == MMX_MARKER || control == X87_CONTROL_MARKER { 1 } else { 0 }
}

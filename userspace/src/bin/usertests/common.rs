//! What the cases share: constants of the address space they probe, raw syscalls and the
//! checks of their results, the process table, child processes, raw IPC calls and checks of
//! handles, the edge pages, and the assembly routines whose instruction addresses fault
//! expectations name.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::arch::{asm, global_asm};

use abi::errno::EBADF;
use abi::handle::Kind;
use abi::ipc::{HANDLES_MAX, IpcBuffers};
use abi::memory::{PAGE_SIZE, PHYSICAL_MAP_OFFSET, USER_END, USER_STACK_SIZE, USER_STACK_TOP, USER_START};
use abi::status::KILLED;
use abi::syscall::{BRK, CALL, EXIT, MPROTECT, MUNMAP, RECV, REPLY, REPLY_RECV, SHUTDOWN, SPAWN};
use abi::{ExitInfo, PROT_EXEC, PROT_READ, PROT_WRITE, ProcessInfo, ProcessState, SysInfo, UserStr};
use userlib::check;
use userlib::ipc::{self, Endpoint, IpcRegisters, Message, OwnedHandle};
use userlib::process::{self, Ending};
use userlib::sys::{self, Child, EntryPath, Errno, Pid};
use userlib::testing::{self, Context, Outcome};
use userlib::time::Duration;

pub const PAGE: u64 = PAGE_SIZE;
pub const MIB: u64 = 1024 * 1024;
pub const RW: u64 = PROT_READ | PROT_WRITE;
pub const RX: u64 = PROT_READ | PROT_EXEC;
pub const MS: u64 = 1_000_000;
/// Rows `process_list` can return: the kernel's process limit.
pub const MAX_ROWS: usize = 64;
/// How long a child may run before the suite kills it and fails the case.
pub const CHILD_LIMIT: Duration = Duration::from_secs(15);
/// How long something that must happen at once or on time (a call with timeout 0, a timeout
/// expiring, a kill, a sleep ending) may take before a case calls it hung. Generous on
/// purpose: under TCG the guest's clock is the host's, and a CPU (a host thread) of a loaded
/// host can wait long for a core. Timing bounds in the suite are one-sided (nothing ends
/// early) plus this; how fast is `bench`'s business, under `--icount` (docs/ARCHITECTURE.md).
pub const HANG_LIMIT: Duration = Duration::from_secs(5);
/// [`HANG_LIMIT`] in nanoseconds.
pub const HANG_NS: u64 = HANG_LIMIT.as_nanos() as u64;
/// The status of a helper that reached its end although something should have stopped it
/// first (a fault, a kill, a blocking read).
pub const REACHED_END: i32 = 3;

/// Where the edge pages live: far from everything else, so no other mapping ever lands in the
/// unmapped page after them.
pub const EDGE_BASE: u64 = 0x5000_0000_0000;
/// A fixed address for `mmap` tests; `mmap(0, ...)` fills from `USER_MMAP_BASE` upward and
/// never reaches it.
pub const FIXED_BASE: u64 = 0x3000_0000_0000;
/// An address range nothing is ever mapped into.
pub const HOLE: u64 = 0x2000_0000_0000;
/// The last page of the user half.
pub const LAST_USER_PAGE: u64 = USER_END - PAGE;
/// Where the program image starts.
pub const IMAGE_START: u64 = USER_START;
/// The lowest address of the stack (the guard gap is below it).
pub const STACK_BOTTOM: u64 = USER_STACK_TOP - USER_STACK_SIZE;
/// Known kernel memory: physical address 1 MiB in the kernel's physical map.
pub const KERNEL_ADDRESS: u64 = PHYSICAL_MAP_OFFSET + 0x10_0000;

/// Addresses no syscall may accept as a user buffer, and what each one is.
pub const BAD_POINTERS: &[(u64, &str)] = &[
    (0, "null"),
    (0x10, "near null"),
    (USER_START - PAGE, "just below USER_START"),
    (HOLE, "an unmapped hole"),
    (STACK_BOTTOM - PAGE, "the stack guard"),
    (USER_STACK_TOP, "just above the stack"),
    (0x0000_8000_0000_0000, "the first non-canonical address"),
    (0xdead_beef_0000_0000, "a non-canonical address"),
    (PHYSICAL_MAP_OFFSET, "PHYSICAL_MAP_OFFSET"),
    (KERNEL_ADDRESS, "kernel memory at 1 MiB physical"),
    (0xffff_8800_0000_0000, "the kernel image area"),
    (0xffff_9000_0000_0000, "the kernel heap"),
    (0xffff_9800_0000_1000, "the kernel stacks"),
    (0xffff_ffff_ffff_f000, "the last page"),
    (u64::MAX, "u64::MAX"),
];

/// Read-only data (it lands in `.rodata`): a destination the kernel must refuse to write.
pub static READ_ONLY: [u8; 256] = [0x5a; 256];

/// A syscall through `syscall` with raw arguments.
pub fn call(number: u64, args: [u64; 6]) -> i64 {
    call_via(EntryPath::Syscall, number, args)
}

/// A syscall through `path` with raw arguments. Only for syscalls that cannot change the
/// memory map or end the process; `read` only with arguments the kernel refuses at once.
pub fn call_via(path: EntryPath, number: u64, args: [u64; 6]) -> i64 {
    assert!(![EXIT, BRK, MUNMAP, MPROTECT, SHUTDOWN].contains(&number));
    // The kernel writes only through pointer arguments, which the cases point at buffers they
    // own (with their true sizes) or at memory the kernel must refuse, which they check.
    // SAFETY: as above, and none of the syscalls allowed here unmaps memory or ends the process.
    unsafe { sys::raw(path, number, args) }
}

/// `shutdown` through `handle` via `path`, for cases where the kernel must refuse it (had it
/// not, the machine is off with status 99 and the run has failed for all to see).
pub fn refused_shutdown(path: EntryPath, handle: u64) -> i64 {
    // SAFETY: `shutdown` reads no memory; it fails, or ends everything.
    unsafe { sys::raw(path, SHUTDOWN, [handle, 99, 0, 0, 0, 0]) }
}

/// A syscall result for messages: the value, or the errno's name.
pub fn show(result: i64) -> String {
    if result < 0 { String::from(abi::errno::name(-result)) } else { format!("{result}") }
}

/// Fails unless `result` is `-errno`.
pub fn expect_errno(what: &str, result: i64, errno: i64) -> Outcome {
    check!(result == -errno, "{what}: returned {}, expected {}", show(result), abi::errno::name(errno));
    Ok(())
}

/// Fails unless `result` is `value`.
pub fn expect_value(what: &str, result: i64, value: i64) -> Outcome {
    check!(result == value, "{what}: returned {}, expected {value}", show(result));
    Ok(())
}

/// The same check on both entry paths.
pub fn expect_errno_both(what: &str, number: u64, args: [u64; 6], errno: i64) -> Outcome {
    expect_errno(&format!("{what} (syscall)"), call_via(EntryPath::Syscall, number, args), errno)?;
    expect_errno(&format!("{what} (int 0x80)"), call_via(EntryPath::Int80, number, args), errno)
}

/// `sysinfo`, as a case error on failure.
pub fn info() -> Result<SysInfo, String> {
    sys::sysinfo().context("sysinfo")
}

/// Nanoseconds since boot.
pub fn now() -> u64 {
    sys::uptime_ns()
}

/// Sleeps `ms` milliseconds.
pub fn sleep_ms(ms: u64) -> Outcome {
    sys::sleep_ms(ms).context("sleep")
}

/// The process table as `process_list` reports it, in a buffer sized for the kernel's limit.
pub struct Table {
    rows: [ProcessInfo; MAX_ROWS],
    len: usize,
}

impl Table {
    pub fn read() -> Result<Self, String> {
        let mut rows = [ProcessInfo::EMPTY; MAX_ROWS];
        let total = sys::process_list(&mut rows).context("process_list")?;
        check!(total <= MAX_ROWS, "process_list reports {total} processes, more than the limit");
        Ok(Self { rows, len: total })
    }

    pub fn rows(&self) -> &[ProcessInfo] {
        &self.rows[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn find(&self, pid: Pid) -> Option<&ProcessInfo> {
        self.rows().iter().find(|row| row.pid == pid)
    }
}

/// The state of `pid`, `None` if it is not in the table.
pub fn state_of(pid: Pid) -> Result<Option<ProcessState>, String> {
    Ok(Table::read()?.find(pid).and_then(|row| ProcessState::from_u32(row.state)))
}

/// Bytes of user memory this process has mapped.
pub fn my_memory() -> Result<u64, String> {
    let me = sys::getpid();
    Table::read()?.find(me).map(|row| row.memory_bytes).ok_or_else(|| String::from("own row missing from process_list"))
}

/// Frames free in the system plus the frames of this process's own memory: stable across
/// anything this process does to its own memory, so a change means frames went missing or
/// appeared.
pub fn system_frames() -> Result<u64, String> {
    Ok(info()?.free_frames + my_memory()? / PAGE)
}

/// Polls `done` every millisecond until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> Result<bool, String>) -> Result<bool, String> {
    let deadline = now() + limit.as_nanos() as u64;
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

/// Starts `usertests --child ROLE EXTRA...` with the standard handles.
pub fn spawn_child(role: &str, extra: &[&str]) -> Result<Child, String> {
    testing::spawn_role(role, extra)
}

/// Starts `usertests --child ROLE EXTRA...` with exactly `handles` (numbers in this process's
/// table), which the child holds as 0, 1, 2, ... in that order.
pub fn spawn_with_handles(role: &str, extra: &[&str], handles: &[u32]) -> Result<Child, String> {
    let mut argv = vec!["usertests", "--child", role];
    argv.extend_from_slice(extra);
    testing::spawn_self(&argv, handles).context(&format!("spawn of usertests --child {role}"))
}

/// Waits for `child` to end, which closes its handle, and returns how it ended.
pub fn wait_for(child: Child) -> Result<ExitInfo, String> {
    let (closed, info) = sys::wait(Some(child)).context(&format!("wait for pid {}", child.pid))?;
    check!(closed == child.handle, "wait for handle {} returned handle {closed}", child.handle);
    Ok(info)
}

/// Waits for `child` (called `what` in messages) to end within [`CHILD_LIMIT`], killing it
/// if it does not, and returns how it ended.
pub fn finish_within(child: Child, what: &str) -> Result<ExitInfo, String> {
    testing::finish_within(child, what, CHILD_LIMIT)
}

/// Runs `usertests --child ROLE EXTRA...` to the end and returns how it ended.
pub fn run_child(role: &str, extra: &[&str]) -> Result<ExitInfo, String> {
    let child = spawn_child(role, extra)?;
    finish_within(child, &format!("child {role}"))
}

/// Runs a helper and fails unless it exits with `expected`, without a fault.
pub fn expect_child_status(role: &str, extra: &[&str], expected: i32) -> Outcome {
    let info = run_child(role, extra)?;
    check!(info == ExitInfo::exited(expected), "child {role} {}, expected status {expected}", Ending(info));
    Ok(())
}

/// Fails unless a child ended with `expected`, without a fault; `what` names it.
pub fn expect_exit(what: &str, info: ExitInfo, expected: i32) -> Outcome {
    check!(info == ExitInfo::exited(expected), "{what} {}, expected status {expected}", Ending(info));
    Ok(())
}

/// Kills `children` and waits for them, checking that each ends with status `KILLED` and no
/// fault.
pub fn kill_and_reap(children: &[Child]) -> Outcome {
    for &child in children {
        sys::kill(child).context(&format!("kill of pid {}", child.pid))?;
    }
    for &child in children {
        expect_exit(&format!("pid {}", child.pid), wait_for(child)?, KILLED)?;
    }
    Ok(())
}

/// Spawns sleepers until `spawn` fails; returns them and the failure.
pub fn fill_process_table() -> Result<(Vec<Child>, Errno), String> {
    let mut children = Vec::with_capacity(MAX_ROWS);
    loop {
        match userlib::testing::spawn_self(&["usertests", "--child", "sleeper", "forever"], &process::standard_handles()) {
            Ok(child) => children.push(child),
            Err(errno) => return Ok((children, errno)),
        }
        check!(children.len() <= MAX_ROWS, "spawned {} processes, past the limit", children.len());
    }
}

/// Waits until process `pid` has left the process table (it ended), for at most
/// [`CHILD_LIMIT`]; `what` names it.
pub fn wait_until_gone(pid: Pid, what: &str) -> Outcome {
    let gone = wait_until(CHILD_LIMIT, || Ok(state_of(pid)?.is_none()))?;
    check!(gone, "{what} (pid {pid}) is still in the process table after {CHILD_LIMIT:?}");
    Ok(())
}

/// Kernel objects alive now (`sysinfo`).
pub fn live_objects() -> Result<u64, String> {
    Ok(info()?.kernel_objects)
}

/// Waits until the kernel's live objects are back at `baseline` (objects held by processes
/// that are still ending go with them), for at most [`CHILD_LIMIT`].
pub fn expect_objects_back(baseline: u64, what: &str) -> Outcome {
    let mut now = 0;
    let back = wait_until(CHILD_LIMIT, || {
        now = live_objects()?;
        Ok(now == baseline)
    })?;
    check!(back, "{what}: {now} kernel objects alive, {baseline} before");
    Ok(())
}

/// The exit status of a helper whose syscall failed is this plus the errno.
pub const ERRNO_STATUS: i32 = 1000;

/// The exit status of a helper whose syscall failed with `errno`.
pub const fn errno_status(errno: i64) -> i32 {
    ERRNO_STATUS + errno as i32
}

/// How long a case waits for a message or a partner at most, in nanoseconds.
pub const LIMIT_NS: u64 = CHILD_LIMIT.as_nanos() as u64;

/// An IPC syscall (`call`, `recv`, `reply`, `reply_recv`) with every register of a message
/// (see `abi::ipc`); `buffers` is the address of an `IpcBuffers`, or 0.
pub fn ipc(number: u64, first: u64, message: &Message, buffers: u64, timeout: u64, endpoint: u64) -> IpcRegisters {
    assert!([CALL, RECV, REPLY, REPLY_RECV].contains(&number));
    // SAFETY: the cases point `buffers` at an `IpcBuffers` they own, whose send bytes and
    // receive room are their own buffers with their true sizes, or at memory the kernel must
    // refuse (which they check).
    unsafe { userlib::ipc::raw_ipc(number, first, message, buffers, timeout, endpoint) }
}

/// `IpcBuffers` that send `send` and `handles` and receive into `room`.
pub fn buffers(send: &[u8], handles: &[u32], room: &mut [u8]) -> IpcBuffers {
    let mut send_handles = [0; HANDLES_MAX];
    send_handles[..handles.len()].copy_from_slice(handles);
    IpcBuffers {
        send_ptr: send.as_ptr() as u64,
        send_len: send.len() as u64,
        recv_ptr: room.as_mut_ptr() as u64,
        recv_capacity: room.len() as u64,
        send_handles,
        send_handle_count: handles.len() as u32,
        ..IpcBuffers::default()
    }
}

/// The handles that arrived with a message, as numbers in this process's table.
pub fn arrived_handles(buffers: &IpcBuffers) -> &[u32] {
    &buffers.received_handles[..(buffers.received_handle_count as usize).min(HANDLES_MAX)]
}

/// Fails unless an IPC syscall failed with `errno`.
pub fn expect_ipc_errno(what: &str, registers: &IpcRegisters, errno: i64) -> Outcome {
    expect_errno(what, registers.result, errno)
}

/// The registers of an IPC syscall that succeeded, or why it did not.
pub fn ipc_ok(what: &str, registers: IpcRegisters) -> Result<IpcRegisters, String> {
    check!(registers.result == 0, "{what}: returned {}", show(registers.result));
    Ok(registers)
}

/// The kind and rights of handle `handle`, or an error naming it `what`.
pub fn kind_and_rights(handle: u64, what: &str) -> Result<(Kind, u32), String> {
    match ipc::handle_info(handle) {
        Ok((Some(kind), rights)) => Ok((kind, rights)),
        Ok((None, _)) => Err(format!("handle_info of {what} (handle {handle}) names an unknown kind")),
        Err(errno) => Err(format!("handle_info of {what} (handle {handle}): {errno}")),
    }
}

/// Fails unless handle `handle` names a `kind` object with exactly `rights`.
pub fn expect_handle(what: &str, handle: u64, kind: Kind, rights: u32) -> Outcome {
    let found = kind_and_rights(handle, what)?;
    check!(found == (kind, rights), "{what} (handle {handle}) is {found:?}, expected {kind:?} with rights {rights:#x}");
    Ok(())
}

/// Fails unless `result` is the error `errno`; `what` names the call.
pub fn expect_errno_of<T: core::fmt::Debug>(what: &str, result: sys::Result<T>, errno: i64) -> Outcome {
    match result {
        Err(Errno(found)) if found == errno => Ok(()),
        other => Err(format!("{what}: returned {other:?}, expected {}", abi::errno::name(errno))),
    }
}

/// Fails unless handle number `handle` names nothing.
pub fn expect_no_handle(what: &str, handle: u64) -> Outcome {
    let found = ipc::handle_info(handle);
    check!(found == Err(Errno(EBADF)), "{what} (handle {handle}) should be closed, but handle_info returned {found:?}");
    Ok(())
}

/// A new endpoint (with every right an endpoint handle can have).
pub fn endpoint() -> Result<Endpoint, String> {
    Endpoint::create().context("endpoint_create")
}

/// Another handle to `handle`'s object with `rights`.
pub fn duplicate(handle: &OwnedHandle, rights: u32) -> Result<OwnedHandle, String> {
    handle.duplicate(rights).context("handle_duplicate")
}

/// Waits until process `pid` blocks (in a call, a receive, a wait...), for at most
/// [`CHILD_LIMIT`]; `what` names it.
pub fn wait_until_blocked(pid: Pid, what: &str) -> Outcome {
    let blocked = wait_until(CHILD_LIMIT, || Ok(state_of(pid)? == Some(ProcessState::Blocked)))?;
    check!(blocked, "{what} (pid {pid}) never blocked");
    Ok(())
}

/// A mapped page followed by an unmapped one, set up as two mapped pages with the second
/// unmapped again. The mapped page is filled with [`Edge::FILL`], so a partial write shows.
pub struct Edge {
    base: u64,
}

impl Edge {
    const FILL: u8 = 0xa5;

    pub fn new() -> Result<Self, String> {
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
    pub fn before_end(&self, offset: u64) -> u64 {
        self.base + PAGE - offset
    }

    /// Fails if a byte of the mapped page changed.
    pub fn check_untouched(&self, what: &str) -> Outcome {
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

/// A `UserStr` for `text`.
pub fn user_str(text: &[u8]) -> UserStr {
    UserStr { ptr: text.as_ptr() as u64, len: text.len() as u64 }
}

/// `spawn` with raw arguments.
pub fn raw_spawn(argv: u64, argc: u64) -> i64 {
    call(SPAWN, [own_image(), argv, argc, 0, 0, abi::handle::NO_HANDLE])
}

/// This program's image, as the harness keeps it (`NO_HANDLE` if it could not read it, which
/// makes every spawn fail visibly).
pub fn own_image() -> u64 {
    testing::own_image().unwrap_or(abi::handle::NO_HANDLE)
}

/// RFLAGS as ring 3 sees them.
pub fn rflags() -> u64 {
    let flags: u64;
    // SAFETY: pushes and pops one word on the stack; no other effect.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags) };
    flags
}

/// The address of an instruction in this program's text: any function's, for cases that need
/// one (`mmap` over it, `mprotect` of it, a `write` from it).
pub fn text_address() -> u64 {
    rflags as fn() -> u64 as *const () as u64
}

/// Maps one page read-write at `address` (0: the kernel chooses) and checks it got it.
pub fn map_page_at(address: u64) -> Result<u64, String> {
    let page = sys::mmap(address, PAGE, RW).context("mmap of a page")?;
    check!(address == 0 || page == address, "mmap at {address:#x} returned {page:#x}");
    Ok(page)
}

/// Unmaps `pages` pages at `address`, which no Rust reference points into.
pub fn unmap(address: u64, pages: u64) -> Outcome {
    // SAFETY: callers pass mappings they made and no longer reference.
    unsafe { sys::munmap(address, pages * PAGE) }.context("munmap")
}

/// Maps the last page of the user half with `code` at its very end, executable.
pub fn code_at_top_of_user_half(code: &[u8]) -> Result<u64, String> {
    let page = map_page_at(LAST_USER_PAGE)?;
    let start = USER_END - code.len() as u64;
    // SAFETY: the page was just mapped read-write for this child.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), start as *mut u8, code.len()) };
    // SAFETY: nothing in this program references the page.
    unsafe { sys::mprotect(page, PAGE, RX) }.context("mprotect of the last user page")?;
    Ok(start)
}

/// The heap: from the first page after the program image (where the kernel puts the initial
/// `brk`) up by the most a heap may grow, 256 MiB. The same in every process of this program.
pub fn heap_span() -> (u64, u64) {
    let image_end: u64;
    // SAFETY: only computes the address of the linker's `_end` symbol (the end of the image).
    unsafe { asm!("lea {}, [rip + _end]", out(reg) image_end, options(nomem, nostack, preserves_flags)) };
    let start = image_end.next_multiple_of(PAGE);
    (start, start + 256 * MIB)
}

/// The address of `symbol` (a label in this program's assembly): the same in every process
/// of this program, so a suite can name the instruction its child must fault at.
macro_rules! symbol_address {
    ($($symbol:tt)+) => {{
        let address: u64;
        // SAFETY: computes an address; reads and writes nothing.
        unsafe {
            core::arch::asm!(
                concat!("lea {}, [rip + ", $($symbol)+, "]"),
                out(reg) address,
                options(nomem, nostack, preserves_flags)
            )
        };
        address
    }};
}
pub(crate) use symbol_address;

// The memory accesses of the protection cases, in assembly so that the faulting instruction
// has a known address: the first instruction of each routine.
global_asm!(
    ".pushsection .text.usertests_access, \"ax\"",
    ".global usertests_peek",
    "usertests_peek:",
    "movzx eax, byte ptr [rdi]",
    "ret",
    ".global usertests_poke",
    "usertests_poke:",
    "mov byte ptr [rdi], 0xc3",
    "ret",
    ".popsection",
);

unsafe extern "C" {
    /// Reads the byte at `address`.
    fn usertests_peek(address: u64) -> u8;
    /// Writes `0xc3` (`ret`) at `address`.
    fn usertests_poke(address: u64);
}

/// Where [`peek`] reads: the instruction a fault on its access reports.
pub fn peek_site() -> u64 {
    symbol_address!("usertests_peek")
}

/// Where [`poke`] writes: the instruction a fault on its access reports.
pub fn poke_site() -> u64 {
    symbol_address!("usertests_poke")
}

/// Reads a byte at `address`, for children that exist to fault on it.
pub fn peek(address: u64) -> u8 {
    // SAFETY: only fault children call this, with an address the process may not read; the
    // read faults, or it returns a byte and the child reports that it did not fault.
    unsafe { usertests_peek(address) }
}

/// Writes a byte at `address`, for children that exist to fault on it.
pub fn poke(address: u64) {
    // SAFETY: only fault children call this, with an address the process may not write; the
    // write must fault before it lands, and if it lands the child reports it and exits.
    unsafe { usertests_poke(address) }
}

/// Calls `address` as a function, for children that exist to fault on it.
pub fn call_address(address: u64) {
    // SAFETY: only fault children call this, with an address that must not be executable;
    // if the kernel lets it run anyway, the code there is a lone `ret`, or the child dies.
    unsafe { asm!("call {}", in(reg) address, clobber_abi("C")) };
}

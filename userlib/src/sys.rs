//! Syscalls: the raw stubs for both entry paths, and a wrapper for every syscall.
//!
//! The wrappers use the `syscall` instruction. [`raw`] takes an [`EntryPath`] so a program
//! (the test suite, the benchmark) can reach the same table through `int 0x80` instead.
//! Wrappers that take Rust references are safe; the few that can invalidate memory the
//! program still uses (`brk`, `munmap`, `mprotect`) are `unsafe`.

use abi::syscall::*;
use abi::{ExitInfo, ProcessInfo, SysInfo, UserStr};
use core::arch::asm;
use core::fmt;

/// A failed syscall's error number (positive; see `abi::errno`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i64);

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(abi::errno::name(self.0))
    }
}

/// The result of a wrapper.
pub type Result<T> = core::result::Result<T, Errno>;

/// A process id.
pub type Pid = u32;

/// Which instruction enters the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryPath {
    /// The `syscall` instruction (the default).
    Syscall,
    /// The `int 0x80` software interrupt.
    Int80,
}

/// Makes syscall `number` with `args` through `path`; returns `rax` as the kernel left it.
///
/// # Safety
/// The kernel reads and writes memory the arguments point to, and some syscalls change the
/// address space (`brk`, `munmap`, `mprotect`) or end the process; the caller must make sure
/// that whatever the call does leaves the program's own memory in a state it expects.
#[inline(always)]
pub unsafe fn raw(path: EntryPath, number: u64, args: [u64; 6]) -> i64 {
    let result: i64;
    match path {
        // SAFETY: the kernel's `syscall` path preserves every register except rax (the
        // result), rcx and r11 (clobbered by the instruction itself); memory effects are the
        // caller's responsibility.
        EntryPath::Syscall => unsafe {
            asm!(
                "syscall",
                inlateout("rax") number as i64 => result,
                in("rdi") args[0], in("rsi") args[1], in("rdx") args[2],
                in("r10") args[3], in("r8") args[4], in("r9") args[5],
                lateout("rcx") _, lateout("r11") _,
                options(nostack),
            );
        },
        // SAFETY: `int 0x80` returns through `iretq` with every register but rax restored.
        EntryPath::Int80 => unsafe {
            asm!(
                "int 0x80",
                inlateout("rax") number as i64 => result,
                in("rdi") args[0], in("rsi") args[1], in("rdx") args[2],
                in("r10") args[3], in("r8") args[4], in("r9") args[5],
                options(nostack),
            );
        },
    }
    result
}


fn check(result: i64) -> Result<u64> {
    if result < 0 { Err(Errno(-result)) } else { Ok(result as u64) }
}

/// A syscall through `syscall` whose arguments are plain values or references the kernel
/// only reads or writes within their bounds.
pub(crate) fn call(number: u64, args: [u64; 6]) -> Result<u64> {
    // SAFETY: every caller passes pointers to live buffers with their true lengths (or no
    // pointers), and none of these syscalls unmaps memory.
    check(unsafe { raw(EntryPath::Syscall, number, args) })
}

/// `exit`: ends the process with `status`.
pub fn exit(status: i32) -> ! {
    let _ = call(EXIT, [status as u64, 0, 0, 0, 0, 0]);
    unreachable!("exit returned")
}

/// `write`: writes `bytes` to the stream handle `fd` (1 is standard output, 2 standard error):
/// the console, a pipe's write end or an open file.
pub fn write(fd: u64, bytes: &[u8]) -> Result<usize> {
    call(WRITE, [fd, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0]).map(|count| count as usize)
}

/// `read`: reads from the stream handle `fd` (0 is standard input) into `buffer`; blocks
/// until there is something; 0 at the end of the stream.
pub fn read(fd: u64, buffer: &mut [u8]) -> Result<usize> {
    call(READ, [fd, buffer.as_mut_ptr() as u64, buffer.len() as u64, 0, 0, 0]).map(|count| count as usize)
}

/// `getpid`.
pub fn getpid() -> Pid {
    call(GETPID, [0; 6]).map_or(0, |pid| pid as Pid)
}

/// `getppid`.
pub fn getppid() -> Pid {
    call(GETPPID, [0; 6]).map_or(0, |pid| pid as Pid)
}

/// `yield`: lets other ready processes run.
pub fn yield_now() {
    let _ = call(YIELD, [0; 6]);
}

/// `uptime`: nanoseconds since boot.
pub fn uptime_ns() -> u64 {
    call(UPTIME, [0; 6]).unwrap_or(0)
}

/// `brk(0)`: the current end of the heap.
pub fn heap_end() -> usize {
    call(BRK, [0; 6]).unwrap_or(0) as usize
}

/// `brk`: moves the end of the heap; returns the new end.
///
/// Only the global allocator may call this: shrinking the heap under it unmaps live blocks.
/// (Host unit-test builds have no such allocator, hence no such function.)
#[cfg(not(test))]
pub(crate) fn set_heap_end(end: usize) -> Result<usize> {
    call(BRK, [end as u64, 0, 0, 0, 0, 0]).map(|end| end as usize)
}

/// `brk` with any address, for tests of the syscall itself.
///
/// # Safety
/// Moving the heap end below memory the global allocator handed out unmaps live blocks; the
/// caller must only move it above the allocator's top, or back to where it was.
pub unsafe fn brk(end: u64) -> Result<u64> {
    // SAFETY: forwarded to the caller.
    check(unsafe { raw(EntryPath::Syscall, BRK, [end, 0, 0, 0, 0, 0]) })
}

/// `mmap`: maps `length` bytes of zeroed memory with `prot` (`abi::PROT_*`) at `address`
/// (0: the kernel chooses); returns the address.
pub fn mmap(address: u64, length: u64, prot: u64) -> Result<u64> {
    call(MMAP, [address, length, prot, 0, 0, 0])
}

/// `munmap`: unmaps `mmap`ed pages.
///
/// # Safety
/// Nothing may still use the memory.
pub unsafe fn munmap(address: u64, length: u64) -> Result<()> {
    // SAFETY: forwarded to the caller.
    check(unsafe { raw(EntryPath::Syscall, MUNMAP, [address, length, 0, 0, 0, 0]) }).map(|_| ())
}

/// `mprotect`: changes the rights of `mmap`ed pages.
///
/// # Safety
/// Nothing may still use the memory in a way the new rights forbid.
pub unsafe fn mprotect(address: u64, length: u64, prot: u64) -> Result<()> {
    // SAFETY: forwarded to the caller.
    check(unsafe { raw(EntryPath::Syscall, MPROTECT, [address, length, prot, 0, 0, 0]) }).map(|_| ())
}

/// A process this program started: the handle `spawn` gave it (which `wait` closes) and
/// its id (for `process_list` and messages). A plain value: copying it does not copy the
/// handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Child {
    /// The process handle (with WAIT and KILL).
    pub handle: u64,
    /// The process id.
    pub pid: Pid,
}

/// `spawn`: starts the program whose ELF image is the memory object `image` with `args`
/// (argv\[0\] first, at least that), in `job` (a job handle with MANAGE; `None`: this
/// program's own job). The child's handles are copies of this program's `handles`, numbered
/// from 0 (by convention standard input, output, error, then the name service and the
/// current directory; `process::spawn` passes those and finds the image in the file system).
pub fn spawn(image: u64, args: &[&str], handles: &[u32], job: Option<u64>) -> Result<Child> {
    let mut argv = [UserStr::default(); abi::ARGV_MAX];
    if args.len() > argv.len() {
        return Err(Errno(abi::errno::E2BIG));
    }
    for (slot, arg) in argv.iter_mut().zip(args) {
        *slot = UserStr { ptr: arg.as_ptr() as u64, len: arg.len() as u64 };
    }
    let handle = call(SPAWN, [
        image,
        argv.as_ptr() as u64,
        args.len() as u64,
        handles.as_ptr() as u64,
        handles.len() as u64,
        job.unwrap_or(abi::handle::NO_HANDLE),
    ])?;
    let pid = process_pid(handle)?;
    Ok(Child { handle, pid })
}

/// `pipe_create`: a new pipe, as (read end, write end).
pub fn pipe_create() -> Result<(u64, u64)> {
    let mut ends = [0u32; 2];
    call(PIPE_CREATE, [ends.as_mut_ptr() as u64, 0, 0, 0, 0, 0])?;
    Ok((u64::from(ends[0]), u64::from(ends[1])))
}

/// `process_pid`: the id of the process handle `handle` names.
pub fn process_pid(handle: u64) -> Result<Pid> {
    call(PROCESS_PID, [handle, 0, 0, 0, 0, 0]).map(|pid| pid as Pid)
}

/// `wait`: waits until `child` (or, with `None`, any process this program holds a handle
/// to) has ended; closes its handle and returns that handle's number and how the process
/// ended (`info.status` is the exit status).
pub fn wait(child: Option<Child>) -> Result<(u64, ExitInfo)> {
    wait_handle(child.map_or(abi::WAIT_ANY as u64, |child| child.handle), abi::ipc::FOREVER)
}

/// `wait` on process or thread handle `handle` (or `WAIT_ANY`: any process) for at most
/// `timeout` nanoseconds (0: only look; `EAGAIN` if nothing has ended).
pub fn wait_handle(handle: u64, timeout: u64) -> Result<(u64, ExitInfo)> {
    let mut info = ExitInfo::exited(0);
    let reaped = call(WAIT, [handle, &raw mut info as u64, timeout, 0, 0, 0])?;
    Ok((reaped, info))
}

/// `kill`: ends `child` with status `abi::status::KILLED`.
pub fn kill(child: Child) -> Result<()> {
    kill_handle(child.handle)
}

/// `kill` through handle `handle`: a process, a thread (only it), or a job (everything in it
/// and below it).
pub fn kill_handle(handle: u64) -> Result<()> {
    call(KILL, [handle, 0, 0, 0, 0, 0]).map(|_| ())
}

/// `job_create`: a new job below `parent` (a job handle with MANAGE; `None`: this program's
/// own job), as a handle with DUPLICATE, TRANSFER, KILL and MANAGE.
pub fn job_create(parent: Option<u64>) -> Result<u64> {
    call(JOB_CREATE, [parent.unwrap_or(abi::handle::NO_HANDLE), 0, 0, 0, 0, 0])
}

/// `thread_create`: a new thread of this process that starts in ring 3 at `entry` with
/// `rsp = stack` and `rdi = arg`; returns its handle (DUPLICATE, TRANSFER, WAIT and KILL:
/// [`wait_handle`] waits for it to end, [`kill_handle`] ends it). `entry` must never
/// return: it ends with [`thread_exit`]. [`crate::thread::spawn`] is the safe way to start one.
///
/// # Safety
/// `stack` must be the top of memory the new thread alone uses as its stack (16-byte
/// aligned as at a call, so `stack - 8` holds the return address slot), for as long as it
/// runs, and `entry` a function that may run with `arg` on such a stack.
pub unsafe fn thread_create(entry: extern "C" fn(u64) -> !, stack: u64, arg: u64) -> Result<u64> {
    call(THREAD_CREATE, [entry as usize as u64, stack, arg, 0, 0, 0])
}

/// `thread_exit`: ends the calling thread (the process too, with `status`, if it was the
/// last).
pub fn thread_exit(status: i32) -> ! {
    let _ = call(THREAD_EXIT, [status as u64, 0, 0, 0, 0, 0]);
    unreachable!("thread_exit returned")
}

/// `exception_endpoint_set`: faults of the process or thread `target` (a handle with DEBUG)
/// go to the endpoint `endpoint` (a handle with SEND) as messages; `None` clears it. On a job
/// (MANAGE): what processes spawned into it start with, and with `flags` =
/// `abi::exception::SYSCALLS` their system calls are messages too (see [`crate::exception`]).
pub fn exception_endpoint_set(target: u64, endpoint: Option<u64>, flags: u64) -> Result<()> {
    call(EXCEPTION_ENDPOINT_SET, [target, endpoint.unwrap_or(abi::handle::NO_HANDLE), flags, 0, 0, 0]).map(|_| ())
}

/// `thread_state_read`: copies the state `which` (`abi::exception::STATE_REGISTERS` or
/// `STATE_FPU`) of the stopped thread `thread` (a handle with DEBUG) into `buffer`; returns
/// its size (an empty `buffer` asks for the size only).
pub fn thread_state_read(thread: u64, which: u64, buffer: &mut [u8]) -> Result<usize> {
    call(THREAD_STATE_READ, [thread, which, buffer.as_mut_ptr() as u64, buffer.len() as u64, 0, 0]).map(|size| size as usize)
}

/// `thread_state_write`: replaces the state `which` of the stopped thread `thread` with
/// `bytes` (exactly its size).
pub fn thread_state_write(thread: u64, which: u64, bytes: &[u8]) -> Result<()> {
    call(THREAD_STATE_WRITE, [thread, which, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0]).map(|_| ())
}

/// `thread_start`: a new thread in the process `process` names (a handle with DEBUG) that
/// starts with `registers`; returns the thread handle's number.
pub fn thread_start(process: u64, registers: &abi::exception::Registers) -> Result<u64> {
    let bytes = registers.to_bytes();
    call(THREAD_START, [process, bytes.as_ptr() as u64, 0, 0, 0, 0])
}

/// `gettid`: the calling thread's id (the first thread's is the process id).
pub fn gettid() -> Pid {
    call(GETTID, [0; 6]).map_or(0, |tid| tid as Pid)
}

/// `futex_wait`: sleeps while the word `word` holds `expected`, until a [`futex_wake`] on it
/// (`Ok`), the timeout in nanoseconds (`ETIMEDOUT`; `abi::ipc::FOREVER` for none), or a kill
/// (`EINTR`); `EAGAIN` at once if the word differs.
pub fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32, timeout: u64) -> Result<()> {
    call(FUTEX_WAIT, [word.as_ptr() as u64, u64::from(expected), timeout, 0, 0, 0]).map(|_| ())
}

/// `futex_wake`: wakes up to `count` threads waiting on `word`; returns how many it woke.
pub fn futex_wake(word: &core::sync::atomic::AtomicU32, count: u64) -> Result<u64> {
    call(FUTEX_WAKE, [word.as_ptr() as u64, count, 0, 0, 0, 0])
}

/// `process_read`: fills `buffer` from `address` in the memory of the process `process`
/// names (a handle with DEBUG).
pub fn process_read(process: u64, address: u64, buffer: &mut [u8]) -> Result<()> {
    call(PROCESS_READ, [process, address, buffer.as_mut_ptr() as u64, buffer.len() as u64, 0, 0]).map(|_| ())
}

/// `process_write`: copies `bytes` to `address` in the memory of the process `process` names
/// (a handle with DEBUG), where that process may write.
pub fn process_write(process: u64, address: u64, bytes: &[u8]) -> Result<()> {
    call(PROCESS_WRITE, [process, address, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0]).map(|_| ())
}

/// `process_copy`: a new process whose memory is a copy-on-write copy of the memory of the
/// process `source` names (a handle with DEBUG), with an empty handle table and one thread
/// that starts with `registers`, in `job` (a job handle with MANAGE; `None`: this program's
/// own job). A fork: the registers are usually the source thread's, with `rax = 0`.
pub fn process_copy(source: u64, registers: &abi::exception::Registers, job: Option<u64>) -> Result<Child> {
    let handle = call(PROCESS_COPY, [
        source,
        core::ptr::from_ref(registers) as u64,
        job.unwrap_or(abi::handle::NO_HANDLE),
        0,
        0,
        0,
    ])?;
    let pid = process_pid(handle)?;
    Ok(Child { handle, pid })
}

/// `sleep`: blocks for at least `ns` nanoseconds.
pub fn sleep_ns(ns: u64) -> Result<()> {
    call(SLEEP, [ns, 0, 0, 0, 0, 0]).map(|_| ())
}

/// `sleep` in milliseconds.
pub fn sleep_ms(ms: u64) -> Result<()> {
    sleep_ns(ms.saturating_mul(1_000_000))
}

/// `process_list`: fills `rows` and returns how many processes exist (may exceed the rows).
pub fn process_list(rows: &mut [ProcessInfo]) -> Result<usize> {
    call(PROCESS_LIST, [rows.as_mut_ptr() as u64, rows.len() as u64, 0, 0, 0, 0]).map(|count| count as usize)
}

/// `shutdown`: powers off through the power handle `power` (the first process gets it as
/// handle 3); QEMU exits with `status`. Returns only with an error.
pub fn shutdown(power: u64, status: i32) -> Result<()> {
    call(SHUTDOWN, [power, status as u64, 0, 0, 0, 0]).map(|_| ())
}

/// `sysinfo`: system-wide figures.
pub fn sysinfo() -> Result<SysInfo> {
    let mut info = SysInfo::default();
    call(SYSINFO, [&raw mut info as u64, 0, 0, 0, 0, 0])?;
    Ok(info)
}

/// Makes `child` (`None`: nobody) the process Ctrl-C kills, through the console session on
/// standard input (a `stream::FOREGROUND` call, which carries a copy of the child's handle).
/// Not a syscall: the console is a server.
pub fn set_foreground(child: Option<Child>) -> Result<()> {
    set_foreground_on(crate::io::STDIN, child)
}

/// [`set_foreground`] through the console session `session`.
pub fn set_foreground_on(session: u64, child: Option<Child>) -> Result<()> {
    use abi::handle::rights;
    // A copy that may only kill, wait and move (here, into the message).
    let copy = match child {
        Some(child) => Some(crate::ipc::duplicate(child.handle, rights::TRANSFER | rights::KILL | rights::WAIT)?),
        None => None,
    };
    let handles = copy.map(|handle| [handle as u32]);
    session_call(session, abi::stream::FOREGROUND, 0, handles.as_ref().map_or(&[], |handles| handles.as_slice())).map(|_| ())
}

/// Sets the console session's mode on standard input, `abi::CONSOLE_COOKED` or
/// `abi::CONSOLE_RAW` (a `stream::MODE` call); returns the previous mode.
pub fn console_mode(mode: u64) -> Result<u64> {
    session_call(crate::io::STDIN, abi::stream::MODE, mode, &[])
}

/// A call to the console session `session`: its result (`EBADF` when the handle is no
/// endpoint: a pipe, the kernel's log; an error label from a server that is no console).
fn session_call(session: u64, label: u64, word: u64, handles: &[u32]) -> Result<u64> {
    let session = crate::ipc::Endpoint::from_raw(session);
    let mut transfer = crate::ipc::Transfer { send_handles: handles, ..crate::ipc::Transfer::default() };
    let result = session.call_with(&crate::ipc::Message::new(label, [word, 0, 0, 0]), &mut transfer, abi::ipc::FOREVER);
    // The handle belongs to the program, not to this call.
    session.into_raw();
    let (reply, _) = result?;
    abi::stream::reply_result(reply.label, i64::MAX as u64).map_err(Errno)
}

/// `irq_bind`: when the interrupt line `irq` fires, the kernel masks it and signals `bits`
/// on `notification`.
pub fn irq_bind(irq: u64, notification: u64, bits: u64) -> Result<()> {
    call(IRQ_BIND, [irq, notification, bits, 0, 0, 0]).map(|_| ())
}

/// `irq_ack`: unmasks the line `irq` after its device was served.
pub fn irq_ack(irq: u64) -> Result<()> {
    call(IRQ_ACK, [irq, 0, 0, 0, 0, 0]).map(|_| ())
}

/// `ioports_enable`: lets this process use `in`/`out` on the port range `ports` names.
pub fn ioports_enable(ports: u64) -> Result<()> {
    call(IOPORTS_ENABLE, [ports, 0, 0, 0, 0, 0]).map(|_| ())
}

/// `framebuffer_info`: the layout of the framebuffer the device memory `memory` names.
pub fn framebuffer_info(memory: u64) -> Result<abi::FramebufferInfo> {
    let mut info = abi::FramebufferInfo::default();
    call(FRAMEBUFFER_INFO, [memory, &raw mut info as u64, 0, 0, 0, 0])?;
    Ok(info)
}

/// `log_read`: the newest bytes of the kernel's log (at most `buffer.len()`), oldest first;
/// returns how many were copied.
pub fn log_read(log: u64, buffer: &mut [u8]) -> Result<usize> {
    call(LOG_READ, [log, buffer.as_mut_ptr() as u64, buffer.len() as u64, 0, 0, 0]).map(|count| count as usize)
}

/// `tls_set`: makes `address` this program's FS base (`which` = `abi::tls::FS`) or GS base
/// (`abi::tls::GS`), kept across switches; `EINVAL` for a kernel-half or non-canonical one.
pub fn tls_set(which: u64, address: u64) -> Result<()> {
    call(TLS_SET, [which, address, 0, 0, 0, 0]).map(|_| ())
}

/// `tls_get`: the base `tls_set` last gave `which` (0 at first).
pub fn tls_get(which: u64) -> Result<u64> {
    call(TLS_GET, [which, 0, 0, 0, 0, 0])
}

//! Syscall numbers and a description of every syscall's arguments.
//!
//! [`SYSCALLS`] is read top to bottom as the list of what the kernel offers. Each entry names
//! the number, the name, and the kind of every argument, so a fuzzer can draw arguments that
//! are plausible for each syscall. The kernel's table has 256 slots; numbers not listed here
//! (and numbers ≥ 256) return `-ENOSYS`.

/// What an argument means, for generating arguments and for documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A plain integer (exit status, flags).
    Int,
    /// A stream handle (`read`/`write`): 0 is standard input, 1 and 2 standard output and
    /// error; a console session or another endpoint that speaks the stream protocol, a pipe
    /// end, or the kernel's log.
    Fd,
    /// A process id, or `-1` where "any" is allowed.
    Pid,
    /// A user pointer the kernel reads from; the next `Len` argument is its length.
    InPtr,
    /// A user pointer the kernel writes to; its length is the next `Len`/`Count` argument or
    /// the size of the struct the syscall documents.
    OutPtr,
    /// A byte length.
    Len,
    /// An element count.
    Count,
    /// A user virtual address (page-aligned where the syscall says so).
    Addr,
    /// `PROT_*` bits.
    Prot,
    /// A duration in nanoseconds.
    Nanos,
    /// A handle number in the caller's table.
    Handle,
    /// A set of `handle::rights` bits.
    Rights,
    /// A timeout: nanoseconds, 0 for "do not block", `ipc::FOREVER` for "never give up".
    Timeout,
    /// A user pointer to an `ipc::IpcBuffers`, or 0 for a register-only message.
    IpcBuffers,
}

/// One syscall: its number, name and arguments.
#[derive(Clone, Copy, Debug)]
pub struct Syscall {
    /// The value in `rax`.
    pub number: u64,
    /// Its name, as `userlib` calls it.
    pub name: &'static str,
    /// Its arguments, in register order (`rdi, rsi, rdx, r10, r8, r9`).
    pub args: &'static [Arg],
    /// Arguments in further registers, in the order `r12, r13, r14` (IPC only; see `ipc`).
    pub extra: &'static [Arg],
}

macro_rules! syscalls {
    ($($(#[$doc:meta])* $constant:ident = $number:literal, $name:literal, [$($arg:ident),*] $(+ [$($extra:ident),*])?;)*) => {
        $($(#[$doc])* pub const $constant: u64 = $number;)*
        /// Every assigned syscall, in number order.
        pub const SYSCALLS: &[Syscall] = &[
            $(Syscall { number: $number, name: $name, args: &[$(Arg::$arg),*], extra: &[$($(Arg::$extra),*)?] },)*
        ];
    };
}

syscalls! {
    /// `exit(status) -> !`: ends the caller with `status`.
    EXIT = 0, "exit", [Int];
    /// `write(h, buf, len) -> bytes`: writes to a stream handle with WRITE (the kernel's log,
    /// a pipe's write end) or SEND (an endpoint, to which the kernel forwards it as calls of
    /// the stream protocol, see [`crate::stream`]). A pipe writer blocks while the pipe is
    /// full and gets `EPIPE` once no reader is left.
    WRITE = 1, "write", [Fd, InPtr, Len];
    /// `read(h, buf, len) -> bytes`: reads at most `len` bytes from a stream handle with
    /// READ (a pipe's read end: blocks while it is empty) or SEND (an endpoint, see [`crate::stream`]). 0 is the
    /// end of the stream (a pipe whose last writer is gone, the end of a file).
    READ = 2, "read", [Fd, OutPtr, Len];
    /// `getpid() -> pid`.
    GETPID = 3, "getpid", [];
    /// `yield() -> 0`: gives up the rest of the time slice.
    YIELD = 4, "yield", [];
    /// `uptime() -> ns`: nanoseconds since boot, monotonic.
    UPTIME = 5, "uptime", [];
    /// `brk(addr) -> brk`: moves the end of the heap to `addr` (0 only queries) and returns
    /// the new end. The heap starts at the first page after the program image.
    BRK = 6, "brk", [Addr];
    /// `mmap(addr, len, prot) -> addr`: maps zeroed anonymous memory. `addr` 0 lets the
    /// kernel choose; otherwise it must be page-aligned and free. W+X is refused.
    MMAP = 7, "mmap", [Addr, Len, Prot];
    /// `munmap(addr, len) -> 0`: unmaps whole pages of earlier `mmap`s.
    MUNMAP = 8, "munmap", [Addr, Len];
    /// `mprotect(addr, len, prot) -> 0`: changes the rights of `mmap`ed pages. W+X is refused.
    MPROTECT = 9, "mprotect", [Addr, Len, Prot];
    /// `spawn(image, argv, argc, handles, handle_count, flags) -> process handle`: starts
    /// the ELF program in the memory object `image` (READ right; the image is its first
    /// bytes, validated exactly as the loader always did) with `argc` [`crate::UserStr`]
    /// arguments read from `argv` (at least argv\[0\], whose last path component names the
    /// process). The child's handles are copies of the caller's `handles` (an array of `u32`
    /// numbers, each needing DUPLICATE, at most [`crate::SPAWN_HANDLES_MAX`]), numbered from
    /// 0; by convention 0, 1 and 2 are its standard input, output and error. `job` is the
    /// job the child starts in: a job handle with MANAGE, or [`crate::handle::NO_HANDLE`] for
    /// the caller's own job; `ESRCH` if that job was killed. The caller gets a handle to the
    /// child with DUPLICATE, TRANSFER, WAIT, KILL and DEBUG.
    SPAWN = 10, "spawn", [Handle, InPtr, Count, InPtr, Count, Handle];
    /// `wait(h, info_out, timeout) -> h`: waits until the process `h` names has ended (or
    /// any process the caller holds a handle with WAIT to, for `WAIT_ANY`), stores how it
    /// ended at `info_out` (a [`crate::ExitInfo`]) unless that is 0, closes the handle and
    /// returns its number. `ECHILD` if the caller holds no such handle; `EAGAIN` or
    /// `ETIMEDOUT` as the timeout says.
    WAIT = 11, "wait", [Handle, OutPtr, Timeout];
    /// `kill(h) -> 0`: ends the process `h` names (KILL right); its status becomes
    /// `status::KILLED`. `ESRCH` if it has already ended. On a job (KILL right): ends every
    /// process in it and in the jobs below it, and no process or job starts in any of them
    /// again; `ESRCH` if it was killed already. The first process is never ended.
    KILL = 12, "kill", [Handle];
    /// `sleep(ns) -> 0`: blocks for at least `ns` nanoseconds (rounded up to timer ticks).
    SLEEP = 13, "sleep", [Nanos];
    /// `process_list(buf, count) -> n`: fills up to `count` [`crate::ProcessInfo`] rows and
    /// returns how many processes there are. All `count` rows of `buf` must be writable.
    PROCESS_LIST = 14, "process_list", [OutPtr, Count];
    /// `shutdown(h, status) -> !`: powers the machine off (QEMU exits with `status`), through
    /// a power handle (POWER right), which only the first process gets, as its handle 3.
    SHUTDOWN = 15, "shutdown", [Handle, Int];
    /// `sysinfo(out) -> 0`: fills a [`crate::SysInfo`].
    SYSINFO = 16, "sysinfo", [OutPtr];
    /// `getppid() -> pid`: the parent's pid (0 for the first process).
    GETPPID = 20, "getppid", [];
    /// `handle_close(h) -> 0`: closes a handle; the object dies with its last handle.
    HANDLE_CLOSE = 21, "handle_close", [Handle];
    /// `handle_duplicate(h, rights) -> handle`: another handle to the same object, with the
    /// rights of `h` that `rights` keeps. Needs DUPLICATE.
    HANDLE_DUPLICATE = 22, "handle_duplicate", [Handle, Rights];
    /// `handle_info(h) -> kind << 32 | rights` (see `handle::split_info`).
    HANDLE_INFO = 23, "handle_info", [Handle];
    /// `endpoint_create() -> handle` with DUPLICATE, TRANSFER, SEND, RECEIVE and MINT.
    ENDPOINT_CREATE = 24, "endpoint_create", [];
    /// `endpoint_mint(h, badge, rights, flags) -> handle`: a handle whose calls carry
    /// `badge`, with at most DUPLICATE, TRANSFER and SEND; `flags` may ask for a close
    /// notice (`ipc::MINT_NOTIFY_CLOSE`). Needs MINT.
    ENDPOINT_MINT = 25, "endpoint_mint", [Handle, Int, Rights, Int];
    /// `endpoint_bind(endpoint, notification) -> 0`: `recv` on the endpoint also returns the
    /// notification's bits. Needs RECEIVE and WAIT.
    ENDPOINT_BIND = 26, "endpoint_bind", [Handle, Handle];
    /// `call(endpoint, label, w0, w1, w2, w3; buffers, timeout)`: sends and waits for the
    /// reply (see `ipc` for the registers). Needs SEND.
    CALL = 27, "call", [Handle, Int, Int, Int, Int, Int] + [IpcBuffers, Timeout];
    /// `recv(endpoint; buffers, timeout)`: waits for a message. Needs RECEIVE.
    RECV = 28, "recv", [Handle] + [IpcBuffers, Timeout];
    /// `reply(reply, label, w0, w1, w2, w3; buffers)`: answers a call (any label); the reply
    /// handle is used up whatever happens (a malformed reply fails the call with `EPIPE`).
    REPLY = 29, "reply", [Handle, Int, Int, Int, Int, Int] + [IpcBuffers];
    /// `reply_recv(reply, label, w0, w1, w2, w3; buffers, timeout, endpoint)`: `reply`, then
    /// `recv` on `endpoint`; a reply that fails is dropped and the receive goes ahead.
    REPLY_RECV = 30, "reply_recv", [Handle, Int, Int, Int, Int, Int] + [IpcBuffers, Timeout, Handle];
    /// `notification_create() -> handle` with DUPLICATE, TRANSFER, SIGNAL and WAIT.
    NOTIFICATION_CREATE = 31, "notification_create", [];
    /// `signal(notification, bits) -> 0`: ORs `bits` in. Needs SIGNAL. Bit 63 is refused
    /// (`EINVAL`): `wait_notification` returns the bits, where it would read as an error.
    SIGNAL = 32, "signal", [Handle, Int];
    /// `wait_notification(notification, timeout) -> bits`: waits until a bit is set and takes
    /// them all. Needs WAIT.
    WAIT_NOTIFICATION = 33, "wait_notification", [Handle, Timeout];
    /// `memory_create(pages) -> handle`: zeroed shared memory (at most 4096 pages), charged
    /// to the caller; with DUPLICATE, TRANSFER, READ, WRITE and EXECUTE.
    MEMORY_CREATE = 34, "memory_create", [Count];
    /// `memory_map(h, addr, prot) -> addr`: maps the whole object at `addr` (0: the kernel
    /// chooses). Readable needs READ, writable WRITE, executable EXECUTE; never W+X.
    /// `munmap` unmaps it; the pages count toward the mapper's limit.
    MEMORY_MAP = 35, "memory_map", [Handle, Addr, Prot];
    /// `process_pid(h) -> pid`: the id of the process `h` names.
    PROCESS_PID = 36, "process_pid", [Handle];
    /// `pipe_create(ends_out) -> 0`: a kernel pipe (a buffer of `stream::PIPE_CAPACITY`
    /// bytes); stores two `u32` handle numbers at `ends_out`: the read end (READ) and the
    /// write end (WRITE), both with DUPLICATE and TRANSFER.
    PIPE_CREATE = 37, "pipe_create", [OutPtr];
    /// `memory_size(h) -> bytes`: the size of the memory object `h` names (whole pages).
    MEMORY_SIZE = 38, "memory_size", [Handle];
    /// `irq_bind(irq, notification, bits) -> 0`: when the interrupt line `irq` names fires,
    /// the kernel masks it and signals `bits` on `notification` (WAIT right on both; `bits`
    /// non-zero, bit 63 refused: `EINVAL`). `EBUSY` if the line is bound already. Binding
    /// unmasks the line; the binding lasts until the binding process ends (or the line's
    /// object dies), and the line is masked again then.
    IRQ_BIND = 39, "irq_bind", [Handle, Handle, Int];
    /// `irq_ack(irq) -> 0`: unmasks the line after the driver has served the device (WAIT
    /// right). `EINVAL` if the line is not bound, `EPERM` if another process bound it.
    IRQ_ACK = 40, "irq_ack", [Handle];
    /// `ioports_enable(h) -> 0`: the caller may use `in`/`out` on the port range `h` names
    /// (READ and WRITE rights) from now on; every other port still kills it with #GP.
    /// `ENOSPC` past [`crate::IO_RANGES_MAX`] ranges.
    IOPORTS_ENABLE = 41, "ioports_enable", [Handle];
    /// `framebuffer_info(h, out) -> 0`: fills a [`crate::FramebufferInfo`] for the device
    /// memory `h` names (no right needed); `EINVAL` if it is not a framebuffer.
    FRAMEBUFFER_INFO = 42, "framebuffer_info", [Handle, OutPtr];
    /// `log_read(h, buf, len) -> bytes`: copies the newest `len` bytes (at most) of the
    /// kernel's log ring into `buf`, oldest first (READ right on a log handle).
    LOG_READ = 43, "log_read", [Handle, OutPtr, Len];
    /// `job_create(parent) -> job handle`: a new job below `parent` (a job handle with
    /// MANAGE, or [`crate::handle::NO_HANDLE`] for the caller's own job), with DUPLICATE,
    /// TRANSFER, KILL and MANAGE. `ESRCH` if `parent` was killed; `ENOSPC` past
    /// [`crate::JOB_DEPTH_MAX`] jobs from the root.
    JOB_CREATE = 44, "job_create", [Handle];
    /// `handle_list(buf, count) -> total`: writes the numbers of the caller's handles (`u32`,
    /// in slot order) to `buf`, at most `count`, and returns how many it holds. All `count`
    /// numbers of `buf` must be writable. (Numbers carry a generation, see `handle`: listing
    /// is the way to find every handle, not trying `0..HANDLE_MAX`.)
    HANDLE_LIST = 45, "handle_list", [OutPtr, Count];
    /// `thread_create(entry, stack, arg) -> thread handle`: a new thread in the caller's
    /// process that starts in ring 3 at `entry` with `rsp = stack` and `rdi = arg` (every
    /// other register zero, clean floating-point state). The handle has DUPLICATE, TRANSFER,
    /// WAIT, KILL and DEBUG. `EAGAIN` past [`crate::THREADS_PER_PROCESS_MAX`] threads in the process
    /// or [`crate::THREADS_MAX`] in all; `EINVAL` for a non-canonical or kernel-half `entry`
    /// or `stack` (the stack is not checked further: a bad one faults in the new thread).
    THREAD_CREATE = 46, "thread_create", [Addr, Addr, Int];
    /// `thread_exit(status) -> !`: ends the calling thread. The process ends with `status`
    /// when its last thread ends this way.
    THREAD_EXIT = 47, "thread_exit", [Int];
    /// `futex_wait(address, expected, timeout) -> 0`: if the `u32` at `address` (4-byte
    /// aligned, mapped readable) still holds `expected`, blocks until a `futex_wake` on the
    /// same word wakes it, the timeout passes (`ETIMEDOUT`) or the thread is killed
    /// (`EINTR`); else `EAGAIN` at once. The compare and the sleep are one step for
    /// `futex_wake`: no wake-up is lost between them. Words in shared memory are the same
    /// word in every process that maps it; other words are private to the process.
    FUTEX_WAIT = 48, "futex_wait", [Addr, Int, Timeout];
    /// `futex_wake(address, count) -> woken`: wakes up to `count` threads waiting on the word
    /// at `address` (the same checks as `futex_wait`), oldest first.
    FUTEX_WAKE = 49, "futex_wake", [Addr, Count];
    /// `gettid() -> tid`: the calling thread's id (a process's first thread has the
    /// process's id; ids are never reused).
    GETTID = 50, "gettid", [];
    /// `tls_set(which, address) -> 0`: makes `address` the caller's FS base (`which` =
    /// [`crate::tls::FS`]) or GS base ([`crate::tls::GS`]), from now on and after every
    /// switch (the kernel keeps it per kernel context and loads it whenever the caller runs).
    /// `EINVAL` for another `which`, or an address at or past [`crate::tls::BASE_END`] (a
    /// kernel-half or non-canonical one). A segment load in ring 3 (`mov fs, ax`) sets that
    /// base to 0 until the next switch loads this value again.
    TLS_SET = 51, "tls_set", [Int, Addr];
    /// `tls_get(which) -> address`: the base `tls_set` last set (0 at first); `EINVAL` for a
    /// `which` other than [`crate::tls::FS`] and [`crate::tls::GS`].
    TLS_GET = 52, "tls_get", [Int];
    /// `exception_endpoint_set(target, endpoint, flags) -> 0`: faults of `target` (a process
    /// or thread handle with DEBUG) in ring 3 go to `endpoint` (a handle with SEND) as
    /// messages from then on, instead of ending the process; [`crate::handle::NO_HANDLE`]
    /// clears it. A faulting thread `call`s its own endpoint if it has one, else its
    /// process's; it waits for the handler's answer and resumes or ends as that says (see
    /// [`crate::exception`]). `target` may also be a job handle with MANAGE: every process
    /// spawned into that job (or a job below it without one of its own) from then on starts
    /// with that endpoint as its process endpoint, and with `flags` =
    /// [`crate::exception::SYSCALLS`], in syscall mode: each of its `syscall` and `int 0x80`
    /// instructions is a [`crate::exception::SYSCALL`] message to the endpoint, from its first
    /// instruction on (the mode is fixed at birth; nothing runs outside it). `EINVAL` for
    /// SYSCALLS on a process or thread target, for SYSCALLS without an endpoint, or for an
    /// unknown flag; `EBADF` for a bad handle, `EPERM` without DEBUG (MANAGE for a job) or
    /// SEND; `ESRCH` for an ended process or thread, or a killed job.
    EXCEPTION_ENDPOINT_SET = 53, "exception_endpoint_set", [Handle, Handle, Int];
    /// `process_read(h, address, buf, len) -> 0`: copies `len` bytes at `address` in the
    /// memory of the process `h` names (DEBUG right) into `buf`. `EFAULT` unless the whole
    /// source is mapped there and the whole of `buf` is writable here; `E2BIG` past
    /// [`crate::ipc::BUFFER_MAX`] bytes; `ESRCH` once the process has ended.
    PROCESS_READ = 54, "process_read", [Handle, Addr, OutPtr, Len];
    /// `process_write(h, address, buf, len) -> 0`: copies `len` bytes from `buf` to `address`
    /// in the memory of the process `h` names (DEBUG right), which must be mapped writable
    /// for that process (`EFAULT` otherwise: read-only text stays read-only); the other
    /// errors as for `process_read`.
    PROCESS_WRITE = 55, "process_write", [Handle, Addr, InPtr, Len];
    /// `process_copy(source, registers, job) -> process handle`: a new process whose memory
    /// is a copy-on-write copy of the memory of the process `source` names (DEBUG right):
    /// every page it has, shared until either side writes it (then the writer gets its own);
    /// shared and device memory stay shared. Its one thread starts in ring 3 with the
    /// [`crate::exception::Registers`] at `registers` (sanitised as a fault handler's answer
    /// is; clean floating-point state, the FS and GS bases they carry). Its handle table is
    /// empty; it has the source's exception endpoint, if any, and its syscall mode. `job` as
    /// for `spawn`. The handle has DUPLICATE, TRANSFER, WAIT, KILL and DEBUG.
    /// `EBADF`/`EPERM` for the handles, `ESRCH`
    /// if the source has ended, `EFAULT` for a bad `registers`, `EINVAL` for a RIP or RSP
    /// that is not a user address, `ENOMEM` without memory for the copy, `EAGAIN` at the
    /// process or thread limit.
    PROCESS_COPY = 56, "process_copy", [Handle, InPtr, Handle];
    /// `thread_state_read(thread, which, buf, len) -> bytes`: copies the state `which` names
    /// ([`crate::exception::STATE_REGISTERS`]: a [`crate::exception::Registers`];
    /// [`crate::exception::STATE_FPU`]: the x87/SSE/AVX save area) of a *stopped* thread
    /// (waiting for the answer to its fault or syscall message) into `buf`, through a thread
    /// handle with DEBUG (or a process handle with DEBUG: its first thread, whose id is the
    /// process's), and returns its size. `len` 0 copies nothing and returns the size;
    /// a `len` below it is `E2BIG`. `EBUSY` unless the thread is stopped: from its message
    /// until it runs again after the answer (the FPU area also while a CPU is switching to
    /// it); a thread running, or blocked in anything else, is not. `ESRCH` once it has ended,
    /// `EINVAL` for another `which`, `EPERM` without DEBUG.
    THREAD_STATE_READ = 57, "thread_state_read", [Handle, Int, OutPtr, Len];
    /// `thread_state_write(thread, which, buf, len) -> 0`: replaces that state of a stopped
    /// thread; `len` must be its size exactly (`EINVAL`). Registers are checked as a RESUME's
    /// are (user RIP/RSP, bases below `tls::BASE_END`: `EINVAL`; RFLAGS masked) and take
    /// effect when the thread resumes (a RESUME without registers keeps them; one with
    /// registers replaces them). The FPU area is refused (`EINVAL`) if MXCSR sets a bit the
    /// CPU does not support or the XSAVE header names a component not enabled, uses the
    /// compacted format or has a reserved byte set, so `xrstor` cannot fault. Other errors as
    /// `thread_state_read`.
    THREAD_STATE_WRITE = 58, "thread_state_write", [Handle, Int, InPtr, Len];
    /// `thread_start(process, registers) -> thread handle`: a new thread in the process
    /// `process` names (DEBUG right; may be another process) that enters ring 3 with every
    /// register from the [`crate::exception::Registers`] at `registers` (checked as a
    /// RESUME's are: `EINVAL`), FS and GS bases included, and clean floating-point state. The
    /// handle has the rights `thread_create` gives. `ESRCH` once the process is ending; the
    /// limits and `EAGAIN` as `thread_create`.
    THREAD_START = 59, "thread_start", [Handle, InPtr];
}

/// Size of the kernel's dispatch table. Numbers at or above it return `-ENOSYS`.
pub const TABLE_SIZE: usize = 256;

/// Looks up a syscall by number.
pub fn by_number(number: u64) -> Option<&'static Syscall> {
    SYSCALLS.iter().find(|syscall| syscall.number == number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_sorted_and_fit_the_table() {
        for pair in SYSCALLS.windows(2) {
            assert!(pair[0].number < pair[1].number, "{} and {}", pair[0].name, pair[1].name);
        }
        assert!(SYSCALLS.iter().all(|syscall| (syscall.number as usize) < TABLE_SIZE));
        assert!(SYSCALLS.iter().all(|syscall| syscall.args.len() <= 6 && syscall.extra.len() <= 3));
        assert_eq!(by_number(SPAWN).map(|syscall| syscall.name), Some("spawn"));
        assert!(by_number(255).is_none());
    }
}

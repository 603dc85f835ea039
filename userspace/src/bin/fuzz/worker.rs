//! The worker (`fuzz --worker SEED FIRST COUNT`): draws each call, makes it, and checks what
//! it can of the result.
//!
//! Most calls are assigned syscalls from `abi::syscall::SYSCALLS` with arguments drawn per
//! `Arg` kind: pointers into the worker's own buffers, across the end of a mapped page, into
//! read-only memory, the kernel half, unmapped holes, non-canonical addresses; lengths and
//! counts at the edges (0, 1, a page, huge, `u64::MAX`, wrapping); `PROT_*` bits and
//! addresses; handles: the worker's own live ones (of the kind the syscall wants, mostly),
//! ones it has closed or given away, small, out-of-range and random numbers; rights; short
//! timeouts (never a millisecond or more, so nothing blocks for long); and for the IPC calls
//! an `IpcBuffers` it builds with plausible parts (its buffers, its handles, copied or moved,
//! limits just past the edge), bad pointers, or random bytes. Some numbers are unassigned or
//! beyond the table, some calls enter through `int 0x80`, and some load junk into every
//! other register, the stack pointer included (the IPC calls always do).
//!
//! `process_copy` copies one of the worker's children (a partner or a one-shot child, both
//! `fuzz`) copy-on-write, starting the copy's thread at [`copy_exits`], which exits at once
//! without touching memory; or it carries registers the kernel must refuse (a kernel RIP:
//! `EINVAL`) or a kernel pointer (`EFAULT`). The copies are kept, killed and waited for
//! like the worker's other children.
//!
//! Spawns that succeed start `fuzz --exit N` (exits N a millisecond later) or, mostly, an
//! IPC [`partner`](crate::partner), given the worker's meeting places (two endpoints, a
//! notification, shared memory) and sometimes another of its handles, so the partners serve
//! and call each other and the worker, and the worker's `kill`s end them at random.
//!
//! One call in [`FS_ONE_IN`] is instead a request to the `fs` server, or a short session
//! with a file it opens there ([`files`]): fs must answer each with a count or an errno,
//! hand over handles only where the protocol says, and still describe `/` at the end. One in
//! [`STOP_ONE_IN`] of the rest is a round with a tiny child of the worker's own whose faults
//! or system calls come to the worker as messages ([`stops`]).
//!
//! The worker keeps itself able to report: its console sessions 0-2, the image (3), the
//! root directory (4), the problem board (shared memory at handle 5, where partners count
//! their problems) and its own pipe (6 and 7) are never closed or moved away (a message that
//! would move one copies it instead, and the board and the pipe ends are never sent,
//! duplicated or mapped); a `read` or `write` of a console session, or of a pipe or endpoint
//! another process may hold, that could block gets length 0; sleeps are clamped to 1 ms; the worker never
//! uses its heap after it starts, so `brk` may move freely, and `munmap`/`mprotect` aim at
//! its scratch mappings, never at the buffers it reads.
//!
//! Its own pipe is the one it reads and writes with real lengths: it knows how many bytes
//! the pipe holds, so it never asks for more than fit (a write would block) or reads an
//! empty one, and it checks that each `write` moved all it was given and each `read`
//! returned what the pipe held, up to its length.
//!
//! It checks: errors are known errno values; unassigned numbers give `ENOSYS`;
//! `getpid`/`getppid` are right; uptime never goes back; a refused buffer gives `EFAULT`;
//! `shutdown` is refused (`EBADF`: no worker holds a power handle); no register but the
//! result changes, except the message registers of an IPC call that succeeded; what `recv`
//! returns is a message with a reply handle that works, or a notification or close notice
//! without one, and its handles are live; `wait` reports the status a child was told to exit
//! with, or `KILLED`, never a fault; one-shot children end as they must. At the end it waits
//! for (or kills) every child it still holds, and adds the partners' problems from the board.

use abi::errno::{EAGAIN, EBADF, EFAULT, EMFILE, ENOMEM, ENOSYS};
use abi::handle::{Kind, NO_HANDLE, rights};
use abi::ipc::{BUFFER_MAX, COPY_HANDLE, HANDLES_MAX, IpcBuffers, LABEL_CLOSED, LABEL_MAX, LABEL_NOTIFICATION};
use abi::stream::PIPE_CAPACITY;
use abi::memory::{PAGE_SIZE, PHYSICAL_MAP_OFFSET, USER_END, USER_STACK_SIZE, USER_STACK_TOP, USER_START};
use abi::syscall::{
    Arg, BRK, CALL, ENDPOINT_CREATE, ENDPOINT_MINT, EXIT, GETPID, GETPPID, HANDLE_CLOSE, HANDLE_DUPLICATE, HANDLE_INFO,
    MEMORY_CREATE, MEMORY_MAP, MMAP, MPROTECT, MUNMAP, NOTIFICATION_CREATE, PROCESS_LIST, READ,
    RECV, REPLY, REPLY_RECV, SHUTDOWN, IRQ_BIND, IRQ_ACK, IOPORTS_ENABLE, FRAMEBUFFER_INFO, JOB_CREATE, LOG_READ, SLEEP, SPAWN, SYSCALLS, SYSINFO, TABLE_SIZE, UPTIME, WAIT, WRITE,
    THREAD_CREATE, THREAD_EXIT, FUTEX_WAIT, FUTEX_WAKE, PROCESS_COPY, THREAD_START, EXCEPTION_ENDPOINT_SET,
};
use abi::exception::Registers;
use core::sync::atomic::{AtomicU32, Ordering};
use abi::{ExitInfo, PROT_EXEC, PROT_READ, PROT_WRITE, ProcessInfo, SysInfo, UserStr};
use userlib::ipc::{self, Endpoint};
use userlib::println;
use userlib::process::Ending;
use userlib::sys::{self, EntryPath, Pid};

use crate::dirty::Call;
use crate::{Decimal, MAX_REPORTED, MS, RISKY_ONE_IN, Risky, Rng};

mod files;
mod stops;

/// One call in this many (of those not risky) is a request to `fs` ([`files`]).
const FS_ONE_IN: u64 = 12;
/// One call in this many (of those not risky or for `fs`) is a round with a child of its own
/// whose faults or system calls the worker handles ([`stops`]).
const STOP_ONE_IN: u64 = 64;
/// Registers `thread_start` must refuse: a kernel-half rip.
static REFUSED_REGISTERS: abi::exception::Registers =
    abi::exception::Registers { rip: 0xffff_8000_0000_0000, ..abi::exception::Registers::ZERO };

const PAGE: u64 = PAGE_SIZE;
/// Spawned `fuzz --exit N` children get an N below this, and partners exit 0, so a status
/// at or above it (but `KILLED`) means something ended them that should not have.
pub const CHILD_STATUSES: u64 = 100;
/// Bytes of each worker buffer; pointers into one start in its first half, so whatever
/// the kernel writes there (at most a full process list, or a message of a partner's) stays
/// inside.
const BUFFER: usize = 8192;
/// The first page of a mapped page followed by an unmapped one.
const EDGE_BASE: u64 = 0x5000_0000_0000;
/// Where fixed `mmap`s and their `munmap`/`mprotect` go.
const SCRATCH_BASE: u64 = 0x3000_0000_0000;
/// An address range the worker never maps.
const HOLE: u64 = 0x2000_0000_0000;
/// Kernel addresses for pointer and address arguments.
const KERNEL_ADDRESSES: [u64; 6] = [
    PHYSICAL_MAP_OFFSET,
    PHYSICAL_MAP_OFFSET + 0x10_0000,
    0xffff_8800_0000_0000,
    0xffff_9000_0000_0000,
    0xffff_9800_0000_1000,
    0xffff_ffff_ffff_f000,
];
/// Every errno the kernel may return, or a server answer through the kernel's stream
/// calls (`fs` answers `read` and `write` on its handles).
pub const KNOWN_ERRNOS: [i64; 27] = {
    use abi::errno::*;
    [
        EPERM, ENOENT, ESRCH, EINTR, EIO, E2BIG, EBADF, ECHILD, EAGAIN, ENOMEM, EFAULT, EEXIST, EXDEV, ENOTDIR, EISDIR,
        EINVAL, EMFILE, EFBIG, ENOSPC, ESPIPE, EROFS, EPIPE, ENAMETOOLONG, ENOSYS, ENOTEMPTY, ETIMEDOUT, EBUSY,
    ]
};

/// Registers in hardware order that the IPC calls take arguments in beyond the six
/// (`r12, r13, r14`).
const EXTRA_REGISTERS: [usize; 3] = [12, 13, 14];
/// The registers a `call` that succeeded returns the reply in, and those `recv` and
/// `reply_recv` return the message in.
const CALL_RESULTS: [&str; 5] = ["rsi", "rdx", "r10", "r8", "r9"];
const RECV_RESULTS: [&str; 7] = ["rdi", "rsi", "rdx", "r10", "r8", "r9", "r12"];
/// The image of `fuzz` itself, which its coordinator gives it: what it spawns from.
pub const IMAGE: u64 = 3;
/// The file system's root directory, which its coordinator gives it: where it sends `fs`
/// random requests.
pub const FS_ROOT: u64 = 4;
/// The problem board's handle: the first the worker makes, after the console's 0, 1 and 2,
/// the image and the root directory.
pub const BOARD: u64 = 5;
/// The problem board's handle in a partner, which gets it after the console.
pub const PARTNER_BOARD: u64 = 3;
/// The ends of the worker's own pipe, made after the board. Only the worker holds them (they
/// are never copied, moved or given to a child), so it knows how many bytes the pipe holds:
/// `read` and `write` on them get real lengths, never one that would block, and must move
/// exactly what the pipe allows.
pub const PIPE_READ: u64 = 6;
pub const PIPE_WRITE: u64 = 7;
/// The handles the worker keeps for itself.
const PROTECTED: [u64; 8] = [0, 1, 2, IMAGE, FS_ROOT, BOARD, PIPE_READ, PIPE_WRITE];
/// Handles the worker keeps that never leave it, not even as copies.
const PRIVATE: [u64; 3] = [BOARD, PIPE_READ, PIPE_WRITE];
/// The first handle number the worker does not keep.
const FIRST_FREE: u64 = 8;
/// Handles the worker remembers; when it forgets one to remember another, it closes it.
const POOL: usize = 48;
/// How long the worker waits at the end for a child it still holds before killing it.
const SWEEP_WAIT_NS: u64 = 200 * MS;

/// Threads the worker may run at once besides its own, each on a stack of its own.
const THREAD_SLOTS: usize = 8;
/// Bytes of each thread's stack.
const THREAD_STACK: u64 = 4 * PAGE;
/// Where the threads' stacks are mapped (nothing else the worker maps goes there).
const THREAD_STACKS: u64 = 0x3800_0000_0000;
/// Futex words the worker and its threads wait on and wake.
static FUTEX_WORDS: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];
/// Whether a thread runs on each stack: set by the worker before it starts one there, cleared
/// by the thread in the same instructions as its `thread_exit` (so it is off the stack by
/// then). A thread killed (the worker's random `kill`s reach threads too) never clears it, and
/// its stack is not used again.
static SLOT_BUSY: [AtomicU32; THREAD_SLOTS] = [const { AtomicU32::new(0) }; THREAD_SLOTS];

/// What a fuzz thread runs: random futex waits and wakes on [`FUTEX_WORDS`], short sleeps and
/// yields (`arg`: its slot in the low 3 bits, a seed above), then it frees its slot and ends.
extern "C" fn fuzz_thread(arg: u64) -> ! {
    let slot = (arg % THREAD_SLOTS as u64) as usize;
    let mut rng = Rng::for_call(arg, 0x74_7265_6164);
    for _ in 0..1 + rng.below(16) {
        let word = &FUTEX_WORDS[rng.below(4) as usize];
        match rng.below(5) {
            0 => {
                let expected = if rng.below(4) == 0 { rng.next() as u32 } else { word.load(Ordering::Relaxed) };
                let _ = sys::futex_wait(word, expected, rng.below(2 * MS));
            }
            1 => {
                let _ = sys::futex_wake(word, rng.pick(&[0, 1, 2, u64::MAX]));
            }
            2 => {
                word.fetch_add(1, Ordering::Relaxed);
                let _ = sys::futex_wake(word, 1);
            }
            3 => {
                let _ = sys::sleep_ns(rng.below(MS / 4));
            }
            _ => sys::yield_now(),
        }
    }
    // SAFETY: clears the slot's flag and ends the thread, touching no stack in between.
    unsafe {
        core::arch::asm!(
            "mov dword ptr [{flag}], 0",
            "syscall",
            flag = in(reg) SLOT_BUSY[slot].as_ptr(),
            in("rax") THREAD_EXIT,
            in("rdi") 0u64,
            options(noreturn, nostack),
        )
    }
}

/// The status a copy made by `process_copy` exits with.
const COPY_STATUS: i32 = 57;

/// Where a copy's thread starts: exits with [`COPY_STATUS`], touching no memory (the stack
/// pointer it is given points nowhere in particular).
#[unsafe(naked)]
extern "C" fn copy_exits() -> ! {
    core::arch::naked_asm!(
        "mov edi, {status}",
        "mov eax, {exit}",
        "syscall",
        "ud2",
        status = const COPY_STATUS,
        exit = const EXIT,
    )
}

/// The registers the next `process_copy` passes (set in `make_safe`).
static mut COPY_REGISTERS: Registers = Registers::ZERO;

/// Where a good copy starts.
fn copy_entry() -> u64 {
    copy_exits as *const () as u64
}

/// Bytes the kernel reads: random, filled once by each worker.
static mut INPUT: [u8; BUFFER] = [0; BUFFER];
/// Bytes the kernel writes; nothing here reads them.
static mut OUTPUT: [u8; BUFFER] = [0; BUFFER];
/// Read-only bytes (`.rodata`).
static READ_ONLY: [u8; 256] = [0x5a; 256];
/// The `IpcBuffers` the worker builds for an IPC call.
static mut IPC_BUFFERS: IpcBuffers = IpcBuffers {
    send_ptr: 0,
    send_len: 0,
    recv_ptr: 0,
    recv_capacity: 0,
    received_len: 0,
    send_handles: [0; HANDLES_MAX],
    send_handle_count: 0,
    received_handle_count: 0,
    received_handles: [0; HANDLES_MAX],
};
/// The handles a spawned `fuzz` child gets.
static mut SPAWN_HANDLES: [u32; 8] = [0; 8];

/// The name of this program, for spawns that must succeed.
static FUZZ_NAME: &[u8] = b"fuzz";

/// What a worker knows about its own process while it fuzzes.
pub struct Worker {
    seed: u64,
    me: Pid,
    parent: Pid,
    /// The heap end when the worker started, and now.
    heap_start: u64,
    heap_end: u64,
    /// Recent successful `mmap`s (and `memory_map`s), for `munmap` and `mprotect` to aim at.
    scratch: [(u64, u64); 32],
    scratch_next: usize,
    /// Handles the worker made or received, and their kinds (some closed or given away since).
    pool: [(u64, Kind); POOL],
    pool_len: usize,
    pool_next: usize,
    /// Where partners meet: two endpoints, a notification and shared memory, which every
    /// `fuzz` child gets as its handles 4 to 7.
    meeting: [u64; 4],
    /// Recently spawned children and the status each will exit with, to check what `wait`
    /// reports.
    children: [(Pid, i32); 16],
    children_next: usize,
    last_uptime: u64,
    /// Bytes in the worker's own pipe.
    pipe_bytes: u64,
    problems: i32,
}

/// A `fuzz` child a spawn starts.
#[derive(Clone, Copy)]
enum ChildPlan {
    /// `fuzz --exit N`.
    Exit(i32),
    /// `fuzz --partner SEED INDEX`.
    Partner,
}

/// One call, drawn but not yet made.
struct Planned {
    number: u64,
    args: [u64; 6],
    path: EntryPath,
    /// Junk for every register, or `None` for a plain call.
    noise: Option<[u64; 16]>,
    /// RFLAGS bits for a call with junk registers.
    flags: u64,
    /// For a spawn of this program: what the child does.
    child: Option<ChildPlan>,
}

impl Worker {
    pub fn new(seed: u64) -> Self {
        // One-shot children start from the image the coordinator gave: the worker has no
        // name service to find the file system with.
        userlib::testing::set_own_image(IMAGE);
        let mut rng = Rng::for_call(seed, u64::MAX);
        let input = &raw mut INPUT;
        for index in 0..BUFFER {
            // SAFETY: `INPUT` is this process's own buffer and nothing else uses it yet.
            unsafe { (*input)[index] = rng.next() as u8 };
        }
        if let Ok(base) = sys::mmap(EDGE_BASE, 2 * PAGE, PROT_READ | PROT_WRITE) {
            // SAFETY: the second page was just mapped, and nothing uses it.
            let _ = unsafe { sys::munmap(base + PAGE, PAGE) };
        }
        if sys::mmap(THREAD_STACKS, THREAD_SLOTS as u64 * THREAD_STACK, PROT_READ | PROT_WRITE) != Ok(THREAD_STACKS) {
            // No stacks: no thread ever starts (every slot stays busy).
            SLOT_BUSY.iter().for_each(|busy| busy.store(1, Ordering::Relaxed));
        }
        let heap = sys::heap_end() as u64;
        let mut worker = Self {
            seed,
            me: sys::getpid(),
            parent: sys::getppid(),
            heap_start: heap,
            heap_end: heap,
            scratch: [(0, 0); 32],
            scratch_next: 0,
            pool: [(0, Kind::Endpoint); POOL],
            pool_len: 0,
            pool_next: 0,
            meeting: [u64::MAX; 4],
            children: [(0, 0); 16],
            children_next: 0,
            last_uptime: 0,
            pipe_bytes: 0,
            problems: 0,
        };
        let board = raw(EntryPath::Syscall, abi::syscall::MEMORY_CREATE, [1, 0, 0, 0, 0, 0]);
        if board != BOARD as i64 {
            worker.problem(0, format_args!("the problem board is handle {board}, not {BOARD}"));
        }
        if sys::pipe_create() != Ok((PIPE_READ, PIPE_WRITE)) {
            worker.problem(0, format_args!("the worker's pipe is not handles {PIPE_READ} and {PIPE_WRITE}"));
        }
        worker
    }

    /// Makes calls `first..first + count`; the exit status is the number of problems seen.
    pub fn run(mut self, first: u64, count: u64) -> i32 {
        for index in first..first + count {
            let mut rng = Rng::for_call(self.seed, index);
            if rng.below(RISKY_ONE_IN) == 0 {
                let risky = Risky::draw(&mut rng);
                self.risky(index, risky, &mut rng);
            } else if rng.below(FS_ONE_IN) == 0 {
                self.fs_request(index, &mut rng);
            } else if rng.below(STOP_ONE_IN) == 0 {
                self.stop_round(index, &mut rng);
            } else {
                let planned = self.plan(&mut rng);
                self.make(index, &planned);
            }
            if self.problems >= MAX_REPORTED {
                break;
            }
        }
        self.sweep(first + count);
        self.fs_alive(first + count);
        self.read_board(first + count);
        self.problems.min(MAX_REPORTED)
    }

    fn problem(&mut self, index: u64, what: core::fmt::Arguments) {
        println!("fuzz: call {index} (seed {}): {what}", self.seed);
        self.problems += 1;
    }

    /// Runs a risky call in `fuzz --one SEED INDEX` and checks how it ended; one that blocks
    /// in a call is killed after a random moment.
    fn risky(&mut self, index: u64, risky: Risky, rng: &mut Rng) {
        let (seed, at) = (Decimal::new(self.seed), Decimal::new(index));
        let argv = ["fuzz", "--one", seed.as_str(), at.as_str()];
        let (spawned, endpoint) = match risky {
            Risky::Exit(_) => (userlib::testing::spawn_self(&argv, &[0, 1, 2]), None),
            Risky::KilledInCall => {
                let Ok(endpoint) = Endpoint::create() else { return };
                let Ok(send) = endpoint.handle().duplicate(rights::SEND | rights::DUPLICATE) else { return };
                (userlib::testing::spawn_self(&argv, &[0, 1, 2, send.raw() as u32]), Some(endpoint))
            }
        };
        let child = match spawned {
            Ok(child) => child,
            // Out of processes, memory or handles: the run goes on without this one.
            Err(errno) if [EAGAIN, ENOMEM, EMFILE].contains(&errno.0) => return,
            Err(errno) => return self.problem(index, format_args!("spawn of a one-shot child failed: {errno}")),
        };
        if endpoint.is_some() {
            let _ = sys::sleep_ns(rng.below(2 * MS));
            if let Err(errno) = sys::kill(child) {
                self.problem(index, format_args!("kill of a one-shot child blocked in a call failed: {errno}"));
            }
        }
        match sys::wait(Some(child)) {
            Ok((_, info)) if info == ExitInfo::exited(risky.expected_status()) => {}
            Ok((_, info)) => {
                let expected = risky.expected_status();
                self.problem(index, format_args!("one-shot child {}, expected status {expected}", Ending(info)))
            }
            Err(errno) => self.problem(index, format_args!("wait for a one-shot child failed: {errno}")),
        }
        drop(endpoint);
    }

    /// Draws a syscall number and its arguments.
    fn plan(&mut self, rng: &mut Rng) -> Planned {
        let path = if rng.below(2) == 0 { EntryPath::Syscall } else { EntryPath::Int80 };
        let noise = (rng.below(10) == 0).then(|| core::array::from_fn(|_| rng.next()));
        let flags = rng.next();
        let mut args: [u64; 6] = core::array::from_fn(|_| rng.next());
        let number = if rng.below(10) == 0 {
            match rng.below(4) {
                0 => loop {
                    let number = rng.below(TABLE_SIZE as u64);
                    if abi::syscall::by_number(number).is_none() {
                        break number;
                    }
                },
                1 => TABLE_SIZE as u64 + rng.below(1000),
                2 => 1 << 32 | rng.below(32),
                _ => rng.next(),
            }
        } else {
            let syscall = loop {
                let syscall = rng.pick(SYSCALLS);
                if syscall.number != EXIT && syscall.number != THREAD_EXIT {
                    break syscall;
                }
            };
            for (slot, &kind) in syscall.args.iter().enumerate() {
                let previous = if slot > 0 { args[slot - 1] } else { 0 };
                args[slot] = self.argument(rng, syscall.number, kind, previous);
            }
            if !syscall.extra.is_empty() {
                // The extra registers must be chosen: left to chance, a timeout could block
                // the worker for good.
                let mut registers = noise.unwrap_or_else(|| core::array::from_fn(|_| rng.next()));
                for (&register, &kind) in EXTRA_REGISTERS.iter().zip(syscall.extra) {
                    registers[register] = self.argument(rng, syscall.number, kind, 0);
                }
                self.make_safe(rng, syscall.number, &mut args);
                self.keep_handles_home(syscall.number, registers[12]);
                return Planned { number: syscall.number, args, path, noise: Some(registers), flags, child: None };
            }
            syscall.number
        };
        self.make_safe(rng, number, &mut args);
        let child = if number == SPAWN { self.spawn_arguments(rng, &mut args) } else { None };
        Planned { number, args, path, noise, flags, child }
    }

    /// An argument of `kind` for syscall `number`; `previous` is the argument before it (the
    /// pointer a length belongs to).
    fn argument(&mut self, rng: &mut Rng, number: u64, kind: Arg, previous: u64) -> u64 {
        match kind {
            // A message's label (and words), mostly one a sender may use.
            Arg::Int if matches!(number, CALL | REPLY | REPLY_RECV) && rng.below(4) != 0 => rng.below(1000),
            Arg::Int => match rng.below(6) {
                0 => 0,
                1 => 1,
                2 => 2,
                3 => u64::MAX,
                4 => rng.next(),
                _ => rng.below(256),
            },
            Arg::Fd => match rng.below(10) {
                0 => 0,
                1 => 1,
                2 => 2,
                3 => 3,
                4 => rng.below(1024),
                5 => 1 << 32 | rng.below(3),
                6 => u64::MAX,
                7 | 8 => rng.pick(&[PIPE_READ, PIPE_WRITE]),
                _ => rng.next(),
            },
            Arg::Pid => rng.below(200),
            Arg::InPtr => self.pointer(rng, false),
            Arg::OutPtr => self.pointer(rng, true),
            Arg::Len if matches!(number, MMAP | MUNMAP | MPROTECT) => match rng.below(8) {
                0 => 0,
                1 => PAGE,
                2 => rng.below(16) * PAGE,
                3 => rng.below(4 * PAGE),
                4 => 1 << 20,
                5 => u64::MAX,
                6 => 1 << rng.below(64),
                _ => rng.next(),
            },
            Arg::Len => match rng.below(12) {
                0 => 0,
                1 => 1,
                2 => rng.below(64),
                3 => rng.below(BUFFER as u64 / 2),
                4 => PAGE - 1,
                5 => PAGE,
                6 => PAGE + 1,
                7 => 1 << rng.below(64),
                8 => u64::MAX,
                9 => (u64::MAX - previous).wrapping_add(1 + rng.below(3)),
                10 => USER_END.wrapping_sub(previous),
                _ => rng.next(),
            },
            Arg::Count => match rng.below(10) {
                0 => 0,
                1 => 1,
                2 => 2,
                3 => rng.below(70),
                4 => 64,
                5 => 65,
                6 => 1 << 32,
                7 => u64::MAX,
                8 => 1 << rng.below(64),
                _ => rng.next(),
            },
            Arg::Addr => self.address(rng, number),
            Arg::Handle => self.handle(rng, number),
            Arg::Rights => match rng.below(4) {
                0 => u64::from(rights::ALL),
                1 => rng.below(1 << 12),
                2 => 1 << rng.below(12),
                _ => rng.next(),
            },
            // Never long enough to matter: nothing else in this worker would wake it.
            Arg::Timeout => match rng.below(4) {
                0 => 0,
                _ => rng.below(2 * MS),
            },

            Arg::IpcBuffers => self.ipc_buffers(rng),
            Arg::Prot => match rng.below(8) {
                0 => PROT_READ,
                1 => PROT_READ | PROT_WRITE,
                2 => PROT_READ | PROT_EXEC,
                3 => PROT_READ | PROT_WRITE | PROT_EXEC,
                4 => 0,
                5 => rng.below(16),
                6 => 1 << rng.below(64),
                _ => rng.next(),
            },
            Arg::Nanos => match rng.below(4) {
                0 | 1 => 0,
                2 => rng.below(MS),
                _ => rng.next(),
            },
        }
    }

    /// The kind of handle syscall `number` wants first, if it wants one.
    fn wanted_kind(number: u64) -> Option<Kind> {
        use abi::syscall::*;
        Some(match number {
            WRITE | READ => Kind::Pipe,
            WAIT | KILL | PROCESS_PID | PROCESS_COPY => Kind::Process,
            HANDLE_INFO => Kind::Thread,
            ENDPOINT_MINT | ENDPOINT_BIND | CALL | RECV | REPLY_RECV => Kind::Endpoint,
            REPLY => Kind::Reply,
            SIGNAL | WAIT_NOTIFICATION => Kind::Notification,
            MEMORY_MAP => Kind::Memory,
            // Workers hold no device handles (only init's program does), so these calls see
            // handles of other kinds and free numbers: each must refuse them.
            IRQ_BIND | IRQ_ACK => Kind::Irq,
            IOPORTS_ENABLE => Kind::IoPorts,
            FRAMEBUFFER_INFO => Kind::DeviceMemory,
            LOG_READ => Kind::Log,
            JOB_CREATE => Kind::Job,
            _ => return None,
        })
    }

    /// A handle number for syscall `number`: mostly one the worker holds (a meeting place,
    /// where partners wait, or another of the kind the syscall wants, if it wants one), else
    /// closed, small, out-of-range or random numbers.
    fn handle(&mut self, rng: &mut Rng, number: u64) -> u64 {
        let wanted = Self::wanted_kind(number);
        let meeting = match wanted {
            Some(Kind::Endpoint) => Some(self.meeting[rng.below(2) as usize]),
            Some(Kind::Notification) => Some(self.meeting[2]),
            Some(Kind::Memory) => Some(self.meeting[3]),
            _ => None,
        };
        let known = &self.pool[..self.pool_len];
        match rng.below(13) {
            10..=12 if meeting.is_some() => meeting.unwrap_or(0),
            0..=3 if !known.is_empty() => {
                let matching = known.iter().filter(|(_, kind)| Some(*kind) == wanted).count();
                if matching == 0 {
                    rng.pick(known).0
                } else {
                    let chosen = rng.below(matching as u64) as usize;
                    known.iter().filter(|(_, kind)| Some(*kind) == wanted).nth(chosen).map_or(0, |entry| entry.0)
                }
            }
            4 if !known.is_empty() => rng.pick(known).0,
            5 => rng.below(8),
            6 => rng.below(256),
            7 => 256 + rng.below(16),
            8 => {
                let aliased = 1 << 32 | rng.below(4);
                rng.pick(&[u64::MAX, u64::MAX - 1, aliased, u64::from(u32::MAX)])
            }
            _ => rng.next(),
        }
    }

    /// Remembers handle `number` (just made or received), and closes the one it replaces.
    fn remember(&mut self, number: u64) {
        let Ok((Some(kind), _)) = ipc::handle_info(number) else { return };
        if PROTECTED.contains(&number) {
            return;
        }
        if self.pool_len < POOL {
            self.pool_len += 1;
        } else {
            let (forgotten, _) = self.pool[self.pool_next];
            if forgotten != number && !PROTECTED.contains(&forgotten) {
                let _ = ipc::close(forgotten);
            }
        }
        self.pool[self.pool_next] = (number, kind);
        self.pool_next = (self.pool_next + 1) % POOL;
    }

    fn pointer(&mut self, rng: &mut Rng, output: bool) -> u64 {
        let own = if output == (rng.below(4) != 0) { (&raw mut OUTPUT) as u64 } else { (&raw mut INPUT) as u64 };
        match rng.below(16) {
            0..=5 => own + rng.below(BUFFER as u64 / 2),
            6 => EDGE_BASE + PAGE - rng.below(128),
            7 => READ_ONLY.as_ptr() as u64 + rng.below(256),
            8 => crate::main as fn() -> i32 as *const () as u64,
            9 => rng.pick(&KERNEL_ADDRESSES) + rng.below(64),
            10 => rng.pick(&[0x0000_8000_0000_0000, 0xdead_beef_0000_0000, 0x8000_0000_0000_0000]) + rng.below(1 << 20),
            11 => rng.below(USER_START),
            12 => HOLE + rng.below(1 << 30),
            13 => self.scratch[rng.below(self.scratch.len() as u64) as usize].0 + rng.below(64),
            14 => rng.next(),
            _ => USER_END - rng.below(64),
        }
    }

    /// The `IpcBuffers` argument of an IPC call: none, one the worker builds (in
    /// `IPC_BUFFERS`), random bytes in its own buffers, or a bad pointer.
    fn ipc_buffers(&mut self, rng: &mut Rng) -> u64 {
        match rng.below(20) {
            0..=6 => 0,
            7..=14 => self.build_ipc_buffers(rng),
            15 | 16 => {
                let own = if rng.below(2) == 0 { (&raw mut INPUT) as u64 } else { (&raw mut OUTPUT) as u64 };
                own + rng.below(BUFFER as u64 / 2)
            }
            17 => READ_ONLY.as_ptr() as u64 + rng.below(128),
            18 => EDGE_BASE + PAGE - rng.below(size_of::<IpcBuffers>() as u64),
            _ => rng.pick(&KERNEL_ADDRESSES) + rng.below(64),
        }
    }

    /// Fills `IPC_BUFFERS` with plausible parts and returns its address.
    fn build_ipc_buffers(&mut self, rng: &mut Rng) -> u64 {
        let input = (&raw mut INPUT) as u64;
        let output = (&raw mut OUTPUT) as u64;
        let (send_ptr, send_len) = match rng.below(8) {
            0..=2 => (0, 0),
            3..=5 => (input + rng.below(BUFFER as u64 / 2), rng.below(BUFFER as u64 / 2)),
            6 => (input, BUFFER_MAX + 1),
            _ => (self.pointer(rng, false), rng.below(2 * PAGE)),
        };
        let (recv_ptr, recv_capacity) = match rng.below(8) {
            0..=2 => (0, 0),
            3..=5 => (output + rng.below(BUFFER as u64 / 2), rng.below(BUFFER as u64 / 2)),
            6 => (EDGE_BASE + PAGE - rng.below(64), 64 + rng.below(64)),
            _ => (self.pointer(rng, true), rng.below(2 * PAGE)),
        };
        let count = match rng.below(8) {
            0..=3 => 0,
            4 | 5 => 1,
            6 => 1 + rng.below(HANDLES_MAX as u64),
            _ => rng.pick(&[HANDLES_MAX as u64 + 1, u64::from(u32::MAX)]),
        } as u32;
        let mut send_handles = [0u32; HANDLES_MAX];
        for entry in &mut send_handles {
            let copy = if rng.below(2) == 0 { COPY_HANDLE } else { 0 };
            let number = match rng.below(6) {
                0..=3 if self.pool_len > 0 => self.pool[rng.below(self.pool_len as u64) as usize].0 as u32,
                4 => rng.below(8) as u32,
                _ => rng.next() as u32 & !COPY_HANDLE,
            };
            *entry = number | copy;
        }
        let buffers = IpcBuffers {
            send_ptr,
            send_len,
            recv_ptr,
            recv_capacity,
            received_len: rng.next(),
            send_handles,
            send_handle_count: count,
            received_handle_count: rng.next() as u32,
            received_handles: [rng.next() as u32; HANDLES_MAX],
        };
        let target = &raw mut IPC_BUFFERS;
        // SAFETY: `IPC_BUFFERS` is the worker's own, and no call is using it now.
        unsafe { target.write(buffers) };
        target as u64
    }

    /// Makes sure a message sent with the `IpcBuffers` at `address` (in the worker's own
    /// memory) moves none of the handles it keeps: the console's are copied instead, and the
    /// problem board is replaced by a number that names nothing.
    fn keep_handles_home(&mut self, number: u64, address: u64) {
        if ![CALL, REPLY, REPLY_RECV].contains(&number) {
            return;
        }
        let size = size_of::<IpcBuffers>() as u64;
        let own = [(&raw mut INPUT) as u64, (&raw mut OUTPUT) as u64];
        let inside = own.iter().any(|&start| address >= start && address + size <= start + BUFFER as u64)
            || address == (&raw mut IPC_BUFFERS) as u64;
        if !inside {
            return;
        }
        let buffers = address as *mut IpcBuffers;
        // SAFETY: the `IpcBuffers` lies wholly in one of the worker's own statics (checked
        // above), which no call is using now; any bytes are a valid `IpcBuffers`.
        let mut parts = unsafe { buffers.read_unaligned() };
        for entry in &mut parts.send_handles {
            match u64::from(*entry & !COPY_HANDLE) {
                private if PRIVATE.contains(&private) => *entry = !COPY_HANDLE,
                kept if PROTECTED.contains(&kept) => *entry |= COPY_HANDLE,
                _ => {}
            }
        }
        // SAFETY: as above.
        unsafe { buffers.write_unaligned(parts) };
    }

    fn address(&mut self, rng: &mut Rng, number: u64) -> u64 {
        match number {
            BRK => match rng.below(10) {
                0 => 0,
                1..=3 => self.heap_end + rng.below(64) * PAGE,
                4 => self.heap_start + rng.below(16) * PAGE,
                5 => 1,
                6 => u64::MAX,
                7 => USER_END,
                8 => rng.pick(&KERNEL_ADDRESSES),
                _ => rng.next(),
            },
            FUTEX_WAIT | FUTEX_WAKE => match rng.below(10) {
                0..=5 => FUTEX_WORDS[rng.below(4) as usize].as_ptr() as u64,
                6 => FUTEX_WORDS[rng.below(4) as usize].as_ptr() as u64 + 1 + rng.below(3),
                7 => self.scratch[rng.below(self.scratch.len() as u64) as usize].0 + 4 * rng.below(1024),
                8 => self.invalid_or_reserved_address(rng),
                _ => rng.next(),
            },
            MMAP | MEMORY_MAP => match rng.below(10) {
                0..=4 => 0,
                5 | 6 => SCRATCH_BASE + rng.below(4096) * PAGE,
                7 => SCRATCH_BASE + rng.below(1 << 20),
                8 => self.invalid_or_reserved_address(rng),
                _ => rng.next(),
            },
            _ => match rng.below(10) {
                0..=4 => self.scratch[rng.below(self.scratch.len() as u64) as usize].0 + rng.below(4) * PAGE,
                5 => SCRATCH_BASE + rng.below(4096) * PAGE,
                6 => USER_START + rng.below(32) * PAGE,
                7 => USER_STACK_TOP - rng.below(16) * PAGE,
                8 => self.invalid_or_reserved_address(rng),
                _ => rng.next(),
            },
        }
    }

    fn invalid_or_reserved_address(&mut self, rng: &mut Rng) -> u64 {
        match rng.below(6) {
            0 => rng.pick(&KERNEL_ADDRESSES),
            1 => 0x0000_8000_0000_0000,
            2 => USER_STACK_TOP - USER_STACK_SIZE - PAGE,
            3 => USER_START,
            4 => self.heap_start,
            _ => USER_END - PAGE,
        }
    }

    /// Keeps the call from ending or hanging the worker, printing junk, or taking away what
    /// it keeps: see the module documentation.
    fn make_safe(&mut self, rng: &mut Rng, number: u64, args: &mut [u64; 6]) {
        match number {
            // The worker's own pipe: never more than it holds, or than fits.
            READ if args[0] == PIPE_READ => {
                args[2] = if self.pipe_bytes == 0 { 0 } else { files::within_own_buffers(args[1], args[2]) }
            }
            WRITE if args[0] == PIPE_WRITE => args[2] %= PIPE_CAPACITY as u64 - self.pipe_bytes + 1,
            // A pipe or an endpoint served by another process (the console, whose sessions
            // are the worker's standard streams) may never answer; `fs` always does.
            READ | WRITE if args[0] != FS_ROOT && may_block(args[0]) => args[2] = 0,
            SLEEP if args[0] > MS => args[0] %= MS + 1,
            // The worker's console sessions and board stay, or it could not report; the board
            // is never copied or mapped, so nothing but the partners writes it.
            HANDLE_CLOSE if PROTECTED.contains(&args[0]) => args[0] = FIRST_FREE + rng.below(256 - FIRST_FREE),
            HANDLE_DUPLICATE | MEMORY_MAP if PRIVATE.contains(&args[0]) => args[0] = FIRST_FREE + rng.below(256 - FIRST_FREE),
            // A thread that starts at a random address or on a random stack would fault and
            // take the worker with it: a new thread runs `fuzz_thread` on a free stack, or the
            // call carries an address the kernel must refuse (`EINVAL`).
            THREAD_CREATE => match rng.below(4) {
                0 => args[0] = rng.pick(&KERNEL_ADDRESSES),
                1 => {
                    args[0] = fuzz_thread as extern "C" fn(u64) -> ! as usize as u64;
                    args[1] = rng.pick(&[0x0000_8000_0000_1000, 0xdead_beef_0000_0000, 0xffff_9000_0000_0000]);
                }
                _ => match SLOT_BUSY.iter().position(|busy| busy.load(Ordering::Acquire) == 0) {
                    Some(slot) => {
                        SLOT_BUSY[slot].store(1, Ordering::Release);
                        args[0] = fuzz_thread as extern "C" fn(u64) -> ! as usize as u64;
                        args[1] = THREAD_STACKS + (slot as u64 + 1) * THREAD_STACK - 8;
                        args[2] = (rng.next() & !7) | slot as u64;
                    }
                    None => args[0] = 0xdead_beef_0000_0000,
                },
            },
            // A copy that starts anywhere but `copy_exits` could fault or spin: its registers
            // start it there, or must be refused (a kernel RIP, a kernel pointer).
            PROCESS_COPY => {
                let rip = match rng.below(8) {
                    0 => {
                        args[1] = rng.pick(&KERNEL_ADDRESSES);
                        return;
                    }
                    1 => rng.pick(&KERNEL_ADDRESSES),
                    _ => copy_entry(),
                };
                // Any RFLAGS but TF, which would end the copy with a debug trap after its
                // first instruction (the kernel keeps TF: a debugger single-steps with it).
                let rflags = rng.next() & !abi::exception::RFLAGS_TF;
                let registers = Registers { rip, rsp: USER_STACK_TOP - 64, rflags, rax: rng.next(), ..Registers::default() };
                // SAFETY: only the worker's main thread uses `COPY_REGISTERS`, and only here
                // and in the call that reads it.
                unsafe { COPY_REGISTERS = registers };
                args[1] = (&raw const COPY_REGISTERS) as u64;
                if rng.below(4) != 0 {
                    args[2] = NO_HANDLE;
                }
            }
            // A thread started in a child at a random address would fault and end the child
            // with a fault, which no child may: the registers are refused ones (a kernel-half
            // rip: `EINVAL`) or unreadable (`EFAULT`).
            THREAD_START => {
                args[1] = match rng.below(2) {
                    0 => &raw const REFUSED_REGISTERS as u64,
                    _ => rng.pick(&KERNEL_ADDRESSES),
                }
            }
            // A child in syscall mode would send its every system call to an endpoint the
            // partners serve with answers that may resume it with garbage (and end it with a
            // fault): the mode is never asked for (other flags are, and are refused).
            EXCEPTION_ENDPOINT_SET => args[2] &= !abi::exception::SYSCALLS,
            // A wait for ever on a word nobody changes would block the worker for good.
            FUTEX_WAIT if args[2] > 2 * MS || args[2] == abi::ipc::FOREVER => args[2] = rng.below(2 * MS),
            // Neither `munmap` nor `mprotect` may touch the threads' stacks.
            MUNMAP | MPROTECT if args[0] < THREAD_STACKS + THREAD_SLOTS as u64 * THREAD_STACK
                && args[0].saturating_add(args[1]) > THREAD_STACKS =>
            {
                args[0] = SCRATCH_BASE + rng.below(4096) * PAGE;
                args[1] = args[1].min(THREAD_STACKS - args[0]);
            }
            _ => {}
        }
    }

    /// `spawn`'s arguments: sometimes this program's image, with arguments (set in `make`)
    /// that make it exit a millisecond later or serve and call as a partner, and a list of
    /// handles to give it; otherwise images, flags and argument counts that must be refused.
    fn spawn_arguments(&mut self, rng: &mut Rng, args: &mut [u64; 6]) -> Option<ChildPlan> {
        let child = match rng.below(8) {
            0 => ChildPlan::Exit(rng.below(CHILD_STATUSES) as i32),
            1..=3 => ChildPlan::Partner,
            4 => {
                // Not a memory object: the console, the root directory, or anything.
                args[0] = [0, FS_ROOT, rng.below(256)][rng.below(3) as usize];
                return None;
            }
            5 => {
                args[0] = IMAGE;
                args[5] = 1 + rng.below(u64::MAX - 1);
                return None;
            }
            6 => {
                // A memory object that holds no program.
                args[0] = self.meeting_places()[3] as u64;
                args[5] = NO_HANDLE;
                return None;
            }
            _ => return None,
        };
        args[0] = IMAGE;
        args[5] = NO_HANDLE;
        // Every `fuzz` child gets the console, the board and the meeting places (one of them
        // sometimes replaced by another of the worker's handles); an exiting child sometimes
        // gets the list drawn at random instead, which is mostly refused.
        if matches!(child, ChildPlan::Exit(_)) && rng.below(4) == 0 {
            return Some(child);
        }
        let mut handles = [0u32, 1, 2, BOARD as u32, 0, 0, 0, 0];
        handles[4..].copy_from_slice(&self.meeting_places());
        if self.pool_len > 0 && rng.below(2) == 0 {
            handles[4 + rng.below(4) as usize] = self.pool[rng.below(self.pool_len as u64) as usize].0 as u32;
        }
        let list = &raw mut SPAWN_HANDLES;
        // SAFETY: `SPAWN_HANDLES` is the worker's own, and no call is using it now.
        unsafe { list.write(handles) };
        args[3] = list as u64;
        args[4] = handles.len() as u64;
        Some(child)
    }

    /// The meeting places every partner gets (two endpoints, a notification and shared
    /// memory), made again where a random call closed one or gave it away.
    fn meeting_places(&mut self) -> [u32; 4] {
        for (slot, kind) in [Kind::Endpoint, Kind::Endpoint, Kind::Notification, Kind::Memory].into_iter().enumerate() {
            if matches!(ipc::handle_info(self.meeting[slot]), Ok((Some(found), _)) if found == kind) {
                continue;
            }
            let (number, args) = match kind {
                Kind::Endpoint => (ENDPOINT_CREATE, [0; 6]),
                Kind::Notification => (NOTIFICATION_CREATE, [0; 6]),
                _ => (MEMORY_CREATE, [1, 0, 0, 0, 0, 0]),
            };
            let made = raw(EntryPath::Syscall, number, args);
            if made >= 0 {
                self.meeting[slot] = made as u64;
                self.remember(made as u64);
            }
        }
        self.meeting.map(|number| number as u32)
    }

    /// Makes the call and checks the result.
    fn make(&mut self, index: u64, planned: &Planned) {
        let (seed, at) = (Decimal::new(self.seed), Decimal::new(index));
        let status = Decimal::new(match planned.child {
            Some(ChildPlan::Exit(status)) => status as u64,
            _ => 0,
        });
        let argv = match planned.child {
            Some(ChildPlan::Partner) => [user_str(FUZZ_NAME), user_str(b"--partner"), user_str(seed.as_str().as_bytes()), user_str(at.as_str().as_bytes())],
            _ => [user_str(FUZZ_NAME), user_str(b"--exit"), user_str(status.as_str().as_bytes()), user_str(b"")],
        };
        let mut args = planned.args;
        if planned.child.is_some() {
            args[1] = argv.as_ptr() as u64;
            args[2] = if matches!(planned.child, Some(ChildPlan::Partner)) { 4 } else { 3 };
        }
        let waited_pid = if planned.number == WAIT { sys::process_pid(args[0]).ok() } else { None };
        let result = match planned.noise {
            Some(noise) => {
                let mut call = Call::new(planned.path, planned.number, args, noise).with_flags(planned.flags);
                // SAFETY: `make_safe` rules out the calls that end the worker, block it for
                // good or unmap its buffers; what the kernel writes lands in `OUTPUT`,
                // `INPUT` or `IPC_BUFFERS` (sized for it), in scratch mappings, or nowhere.
                unsafe { call.run() };
                self.check_registers(index, planned.number, &call, noise[12]);
                call.result()
            }
            // SAFETY: as above.
            None => unsafe { sys::raw(planned.path, planned.number, args) },
        };
        self.check(index, planned, &args, result, waited_pid);
    }

    /// Checks the registers an IPC call (or any call with junk registers) left: only the
    /// message registers of one that succeeded may change, and what `recv` returns must be
    /// a message it can answer, or a notification or close notice it cannot.
    fn check_registers(&mut self, index: u64, number: u64, call: &Call, buffers: u64) {
        let succeeded = call.result() == 0;
        let changed = match number {
            CALL if succeeded => call.clobbered_except(&CALL_RESULTS),
            RECV | REPLY_RECV if succeeded => call.clobbered_except(&RECV_RESULTS),
            _ => call.clobbered(),
        };
        if let Some(register) = changed {
            self.problem(index, format_args!("syscall {number:#x} (result {}) changed {register}", call.result()));
        }
        if !succeeded || ![CALL, RECV, REPLY_RECV].contains(&number) {
            return;
        }
        let label = call.returned("rsi").unwrap_or(0);
        let reply = if number == CALL { None } else { call.returned("r12") };
        let notice = matches!(label, LABEL_NOTIFICATION | LABEL_CLOSED) && reply == Some(NO_HANDLE);
        // A reply (what `call` returns) may carry any label; a received message may not.
        if number != CALL && label > LABEL_MAX && !notice {
            self.problem(index, format_args!("syscall {number:#x} returned label {label:#x} with reply handle {reply:?}"));
        }
        // Everything that arrived is checked before any of it is remembered: remembering one
        // may close a handle the pool no longer tracks, whose number a new one now uses.
        let mut arrived = [NO_HANDLE; HANDLES_MAX + 1];
        match reply {
            Some(NO_HANDLE) if !notice => {
                self.problem(index, format_args!("recv returned a message with label {label:#x} and no reply handle"))
            }
            Some(reply) if reply != NO_HANDLE => match ipc::handle_info(reply) {
                Ok((Some(Kind::Reply), rights::REPLY_HANDLE)) => arrived[HANDLES_MAX] = reply,
                other => self.problem(index, format_args!("recv's reply handle {reply} is {other:?}")),
            },
            _ => {}
        }
        if buffers == (&raw const IPC_BUFFERS) as u64 {
            // SAFETY: the kernel wrote the worker's own `IPC_BUFFERS` during the call that
            // just returned; nothing else uses it.
            let parts = unsafe { (&raw const IPC_BUFFERS).read() };
            if parts.received_len > BUFFER_MAX || parts.received_handle_count as usize > HANDLES_MAX {
                let (len, count) = (parts.received_len, parts.received_handle_count);
                self.problem(index, format_args!("a message arrived with {len} bytes and {count} handles"));
            } else {
                for (slot, &handle) in parts.received_handles[..parts.received_handle_count as usize].iter().enumerate() {
                    if ipc::handle_info(u64::from(handle)).is_err() {
                        self.problem(index, format_args!("a handle that arrived, {handle}, names nothing"));
                    }
                    arrived[slot] = u64::from(handle);
                }
            }
        }
        for handle in arrived.into_iter().filter(|&handle| handle != NO_HANDLE) {
            self.remember(handle);
        }
    }

    /// Checks what can be checked about a result, and remembers what later calls aim at.
    fn check(&mut self, index: u64, planned: &Planned, args: &[u64; 6], result: i64, waited_pid: Option<Pid>) {
        let number = planned.number;
        if result < 0 && !KNOWN_ERRNOS.contains(&-result) {
            self.problem(index, format_args!("syscall {number:#x} returned {result}, not an errno"));
        }
        if abi::syscall::by_number(number).is_none() && result != -ENOSYS {
            self.problem(index, format_args!("unassigned syscall {number:#x} returned {result}"));
            return;
        }
        if let Some(errno) = required_error(number, args)
            && result != -errno
        {
            self.problem(index, format_args!("syscall {number} returned {result} for a buffer it must refuse"));
        }
        match number {
            READ if args[0] == PIPE_READ && result >= 0 => {
                let expected = args[2].min(self.pipe_bytes);
                if result as u64 != expected {
                    let held = self.pipe_bytes;
                    self.problem(index, format_args!("a read of {} bytes from a pipe holding {held} returned {result}", args[2]));
                }
                self.pipe_bytes -= (result as u64).min(self.pipe_bytes);
            }
            WRITE if args[0] == PIPE_WRITE && result >= 0 => {
                if result as u64 != args[2] {
                    let held = self.pipe_bytes;
                    self.problem(index, format_args!("a write of {} bytes to a pipe holding {held} returned {result}", args[2]));
                }
                self.pipe_bytes = (self.pipe_bytes + result as u64).min(PIPE_CAPACITY as u64);
            }
            GETPID if result != i64::from(self.me) => self.problem(index, format_args!("getpid returned {result}")),
            GETPPID if result != i64::from(self.parent) => {
                self.problem(index, format_args!("getppid returned {result}"))
            }
            UPTIME if (result as u64) < self.last_uptime => {
                let last = self.last_uptime;
                self.problem(index, format_args!("uptime went back from {last} to {result}"))
            }
            UPTIME => self.last_uptime = result as u64,
            IRQ_BIND | IRQ_ACK | IOPORTS_ENABLE | FRAMEBUFFER_INFO | LOG_READ if result >= 0 => {
                self.problem(index, format_args!("syscall {number} worked without a device handle: {result}"))
            }
            SHUTDOWN if result != -EBADF => {
                self.problem(index, format_args!("shutdown without a power handle returned {result}"))
            }
            BRK if result > 0 => self.heap_end = result as u64,
            MMAP | MEMORY_MAP if result > 0 => {
                self.scratch[self.scratch_next] = (result as u64, args[1].max(PAGE));
                self.scratch_next = (self.scratch_next + 1) % self.scratch.len();
            }
            SPAWN if result >= 0 => {
                if let (Some(plan), Ok(pid)) = (planned.child, sys::process_pid(result as u64)) {
                    let status = match plan {
                        ChildPlan::Exit(status) => status,
                        ChildPlan::Partner => 0,
                    };
                    self.children[self.children_next] = (pid, status);
                    self.children_next = (self.children_next + 1) % self.children.len();
                }
                self.remember(result as u64);
            }
            ENDPOINT_CREATE | ENDPOINT_MINT | HANDLE_DUPLICATE | NOTIFICATION_CREATE | MEMORY_CREATE | JOB_CREATE if result >= 0 => {
                self.remember(result as u64)
            }
            THREAD_CREATE if result >= 0 => match ipc::handle_info(result as u64) {
                Ok((Some(Kind::Thread), granted)) if granted == rights::THREAD_HANDLE => self.remember(result as u64),
                other => self.problem(index, format_args!("thread_create's handle {result} is {other:?}")),
            },
            THREAD_CREATE if args[0] != fuzz_thread as extern "C" fn(u64) -> ! as usize as u64 || args[1] > USER_END => {
                if result != -abi::errno::EINVAL {
                    self.problem(index, format_args!("thread_create at {:#x} with stack {:#x} returned {result}, not EINVAL", args[0], args[1]));
                }
            }
            // A thread that could not start leaves its stack free.
            THREAD_CREATE => SLOT_BUSY[(args[2] % THREAD_SLOTS as u64) as usize].store(0, Ordering::Release),
            FUTEX_WAKE if result > 0 && args[1] < result as u64 => {
                self.problem(index, format_args!("futex_wake({}) woke {result}", args[1]))
            }
            PROCESS_COPY if result >= 0 => {
                // SAFETY: as in `make_safe`; the call has returned.
                let rip = unsafe { COPY_REGISTERS.rip };
                if args[1] != (&raw const COPY_REGISTERS) as u64 || rip != copy_entry() {
                    self.problem(index, format_args!("process_copy with registers at {:#x} (rip {rip:#x}) worked", args[1]));
                }
                if let Ok(pid) = sys::process_pid(result as u64) {
                    self.children[self.children_next] = (pid, COPY_STATUS);
                    self.children_next = (self.children_next + 1) % self.children.len();
                }
                self.remember(result as u64);
            }
            WAIT if result >= 0 => self.check_waited(index, waited_pid, args[1]),
            _ => {}
        }
    }

    /// Checks the [`ExitInfo`] `wait` stored at `info_at`, when it is in one of the worker's
    /// buffers: the status the child `pid` was told to exit with (any a `fuzz` child may
    /// end with, if the worker does not know which child it was), or `KILLED`, and no fault.
    fn check_waited(&mut self, index: u64, pid: Option<Pid>, info_at: u64) {
        let size = size_of::<ExitInfo>() as u64;
        let in_buffer = |buffer: u64| info_at >= buffer && info_at + size <= buffer + BUFFER as u64;
        if !in_buffer((&raw const INPUT) as u64) && !in_buffer((&raw const OUTPUT) as u64) {
            return;
        }
        // SAFETY: the bytes lie in one of the worker's static buffers, which the kernel wrote
        // during the `wait` that just returned; nothing else writes them, and any bytes are a
        // valid `ExitInfo`.
        let info = unsafe { core::ptr::read_unaligned(info_at as *const ExitInfo) };
        self.check_ending(index, pid, info);
    }

    /// Checks how a child ended (see [`Self::check_waited`]).
    fn check_ending(&mut self, index: u64, pid: Option<Pid>, info: ExitInfo) {
        let expected = pid.and_then(|pid| self.children.iter().find(|&&(child, _)| child == pid)).map(|&(_, status)| status);
        let fine = info == ExitInfo::exited(abi::status::KILLED)
            || match expected {
                Some(status) => info == ExitInfo::exited(status),
                None => info.fault().is_none() && (0..CHILD_STATUSES as i32).contains(&info.status),
            };
        if !fine {
            let what = expected.unwrap_or(0);
            self.problem(index, format_args!("child {pid:?} {} (expected status {what} or killed)", Ending(info)));
        }
    }

    /// Waits for every child the worker still holds a handle to (killing those still
    /// running after [`SWEEP_WAIT_NS`]) and checks how each ended.
    fn sweep(&mut self, index: u64) {
        let held = match ipc::held_handles() {
            Ok(held) => held,
            Err(errno) => return self.problem(index, format_args!("handle_list at the end failed: {errno}")),
        };
        for number in held {
            if !matches!(ipc::handle_info(number), Ok((Some(Kind::Process), granted)) if granted & rights::WAIT != 0) {
                continue;
            }
            let pid = sys::process_pid(number).ok();
            let ended = match sys::wait_handle(number, SWEEP_WAIT_NS) {
                Err(errno) if errno.0 == abi::errno::ETIMEDOUT => {
                    let _ = sys::kill_handle(number);
                    sys::wait_handle(number, abi::ipc::FOREVER)
                }
                other => other,
            };
            match ended {
                Ok((_, info)) => self.check_ending(index, pid, info),
                Err(errno) => self.problem(index, format_args!("wait for child {pid:?} at the end failed: {errno}")),
            }
        }
    }

    /// Adds the problems the partners counted on the board.
    fn read_board(&mut self, index: u64) {
        let address = raw(EntryPath::Syscall, MEMORY_MAP, [BOARD, 0, PROT_READ, 0, 0, 0]);
        if address <= 0 {
            return self.problem(index, format_args!("cannot map the problem board: {address}"));
        }
        // SAFETY: the board's page was just mapped readable; it is read once and unmapped.
        let counted = unsafe { core::ptr::read_volatile(address as *const u64) };
        // SAFETY: nothing refers to the mapping any more.
        let _ = unsafe { sys::munmap(address as u64, PAGE) };
        if counted > 0 {
            println!("fuzz: calls ..{index} (seed {}): the partners found {counted} problem(s)", self.seed);
            self.problems += counted.min(MAX_REPORTED as u64) as i32;
        }
    }
}

/// A raw syscall that reads and writes no memory of the worker's.
fn raw(path: EntryPath, number: u64, args: [u64; 6]) -> i64 {
    // SAFETY: the callers pass only calls that touch no memory (`memory_create`, a
    // `memory_map` the kernel places, `handle_info`).
    unsafe { sys::raw(path, number, args) }
}

/// Whether handle `number` is a stream whose `read` or `write` may wait for another process
/// for good: a pipe end, or an endpoint.
fn may_block(number: u64) -> bool {
    let info = raw(EntryPath::Syscall, HANDLE_INFO, [number, 0, 0, 0, 0, 0]);
    info >= 0 && matches!(abi::handle::split_info(info as u64).0, Some(Kind::Pipe | Kind::Endpoint))
}

fn user_str(text: &[u8]) -> UserStr {
    UserStr { ptr: text.as_ptr() as u64, len: text.len() as u64 }
}

/// The error a call must fail with because its buffer is surely bad (see
/// [`surely_unreadable`]), where nothing is checked before the buffer but the handle;
/// `None` if unknown.
fn required_error(number: u64, args: &[u64; 6]) -> Option<i64> {
    let (pointer, len) = match number {
        PROCESS_LIST => (args[0], args[1].saturating_mul(size_of::<ProcessInfo>() as u64)),
        SYSINFO => (args[0], size_of::<SysInfo>() as u64),
        _ => return None,
    };
    let refused = if number == WRITE { surely_unreadable(pointer, len) } else { surely_unwritable(pointer, len) };
    (len > 0 && refused).then_some(EFAULT)
}

/// Whether the kernel must refuse to read `[pointer, pointer + len)`: it leaves the user
/// half, wraps, runs across the edge page's end, or lies in the hole.
fn surely_unreadable(pointer: u64, len: u64) -> bool {
    let Some(end) = pointer.checked_add(len) else { return true };
    let edge = EDGE_BASE + PAGE;
    pointer < USER_START
        || end > USER_END
        || (pointer < edge && end > edge)
        || (pointer >= HOLE && end <= HOLE + (1 << 30))
}

/// Whether the kernel must refuse to write `[pointer, pointer + len)`: as for reading, or
/// the range is in read-only data.
fn surely_unwritable(pointer: u64, len: u64) -> bool {
    let read_only = READ_ONLY.as_ptr() as u64;
    surely_unreadable(pointer, len) || (pointer >= read_only && pointer < read_only + READ_ONLY.len() as u64)
}

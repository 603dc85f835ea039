//! `fuzz [--seed N] [--calls N]`: makes random syscalls, which the kernel must survive.
//!
//! The first process (the coordinator) prints the seed and records the free frames and the
//! kernel heap's bytes in use. It then hands out the calls in batches to worker children
//! (`fuzz --worker SEED FIRST COUNT`), one at a time, reaping every child that ends
//! meanwhile; a worker that dies is reported and the next batch goes to a new one. At the end
//! it checks that every frame and every byte of kernel heap came back and prints
//! `fuzz: N calls, seed S, kernel intact`. A kernel panic shows as launcher status 101
//! instead; the seed printed at the start replays the run.
//!
//! Call `i` is drawn from its own generator seeded with `(seed, i)`, so any call can be
//! regenerated alone. Most calls are assigned syscalls from `abi::syscall::SYSCALLS` with
//! arguments drawn per `Arg` kind: pointers into the worker's own buffers, across the end
//! of a mapped page, into read-only memory, the kernel half, unmapped holes, non-canonical
//! addresses; lengths and counts at the edges (0, 1, a page, huge, `u64::MAX`, wrapping);
//! random pids, `PROT_*` bits and addresses. Some numbers are unassigned or beyond the table,
//! some calls enter through `int 0x80`, and some load junk into every other register,
//! the stack pointer included. `exit` and `kill` of the caller run in one-shot children
//! (`fuzz --one SEED INDEX`); `shutdown` is never called; a `read` of the console that could
//! block gets length 0; sleeps are clamped to 1 ms; the worker never uses its heap after it
//! starts, so `brk` may move freely, and `munmap`/`mprotect` aim at its scratch mappings,
//! never at the buffers it reads.
//!
//! The worker checks what it can: errors are known errno values, unassigned numbers give
//! `ENOSYS`, `getpid`/`getppid` are right, uptime never goes back, no register but the result
//! changes, and one-shot children end with the status they asked for. Each problem is
//! printed with its seed and call index, and the run exits 1.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../dirty.rs"]
mod dirty;

use abi::errno::{EAGAIN, EFAULT, ENOSYS};
use abi::memory::{PAGE_SIZE, PHYSICAL_MAP_OFFSET, USER_END, USER_STACK_SIZE, USER_STACK_TOP, USER_START};
use abi::syscall::{
    Arg, BRK, CALL, EXIT, GETPID, GETPPID, HANDLE_CLOSE, KILL, MMAP, MPROTECT, MUNMAP, PROCESS_LIST, PROGRAMS, READ,
    RECV, REPLY_RECV, SHUTDOWN, SLEEP, SPAWN, SYSCALLS, SYSINFO, TABLE_SIZE, UPTIME, WAIT, WRITE,
};
use abi::{ExitInfo, PROT_EXEC, PROT_READ, PROT_WRITE, ProcessInfo, SysInfo, UserStr};
use userlib::println;
use userlib::process::Ending;
use userlib::sys::{self, EntryPath, Pid};

use dirty::Call;

userlib::main!(main);

const PAGE: u64 = PAGE_SIZE;
const MS: u64 = 1_000_000;
/// Calls per worker.
const BATCH: u64 = 5_000;
/// Calls when `--calls` is not given.
const DEFAULT_CALLS: u64 = 10_000;
/// Spawned `fuzz --exit N` children get an N below this, so a status at or above it (but
/// `KILLED`) means something ended them that should not have.
const CHILD_STATUSES: u64 = 100;
/// One call in this many is a one-shot `exit` or `kill` of the caller.
const RISKY_ONE_IN: u64 = 400;
/// Most problems one worker reports in its exit status.
const MAX_REPORTED: i32 = 100;
/// Bytes of each worker buffer; pointers into one start in its first half, so whatever
/// the kernel writes there (at most a full process list) stays inside.
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
/// Every errno the kernel may return.
const KNOWN_ERRNOS: [i64; 16] = {
    use abi::errno::*;
    [
        EPERM, ENOENT, ESRCH, EINTR, E2BIG, EBADF, ECHILD, EAGAIN, ENOMEM, EFAULT, EINVAL, EMFILE, EPIPE, ENAMETOOLONG,
        ENOSYS, ETIMEDOUT,
    ]
};

/// Registers in hardware order that the IPC calls take arguments in beyond the six
/// (`r12, r13, r14`), and the registers they return results in (`rdi rsi rdx r8 r9 r10 r12`).
const EXTRA_REGISTERS: [usize; 3] = [12, 13, 14];
const IPC_RESULT_REGISTERS: [&str; 7] = ["rdi", "rsi", "rdx", "r8", "r9", "r10", "r12"];

/// Bytes the kernel reads: random, filled once by each worker.
static mut INPUT: [u8; BUFFER] = [0; BUFFER];
/// Bytes the kernel writes; nothing here reads them.
static mut OUTPUT: [u8; BUFFER] = [0; BUFFER];
/// Read-only bytes (`.rodata`).
static READ_ONLY: [u8; 256] = [0x5a; 256];

fn main() -> i32 {
    let args = userlib::args();
    let number = |index: usize| args.get(index).and_then(|text| text.parse::<u64>().ok());
    match args.get(1).copied() {
        Some("--worker") => match (number(2), number(3), number(4)) {
            (Some(seed), Some(first), Some(count)) => Worker::new(seed).run(first, count),
            _ => usage(),
        },
        Some("--one") => match (number(2), number(3)) {
            (Some(seed), Some(index)) => one_shot(seed, index),
            _ => usage(),
        },
        Some("--exit") => {
            // Alive a moment, so `kill` and `wait` find it running.
            let _ = sys::sleep_ns(MS);
            number(2).map_or_else(usage, |status| status as i32)
        }
        _ => coordinate(args),
    }
}

fn usage() -> i32 {
    userlib::eprintln!("usage: fuzz [--seed N] [--calls N]");
    2
}

/// A small, fast generator (SplitMix64).
struct Rng(u64);

impl Rng {
    /// The generator of call `index` of the run with `seed`.
    fn for_call(seed: u64, index: u64) -> Self {
        let mut rng = Self(seed ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------
// The coordinator.
// ---------------------------------------------------------------------------------------

fn coordinate(args: &[&str]) -> i32 {
    let mut seed = 1;
    let mut calls = DEFAULT_CALLS;
    let mut rest = args[1..].iter();
    while let Some(&flag) = rest.next() {
        let value = rest.next().and_then(|text| text.parse::<u64>().ok());
        match (flag, value) {
            ("--seed", Some(value)) => seed = value,
            ("--calls", Some(value)) => calls = value,
            _ => return usage(),
        }
    }
    println!("fuzz: seed {seed}, {calls} calls (replay with `fuzz --seed {seed} --calls {calls}`)");
    let start = sys::uptime_ns();
    let Some(baseline) = resources() else {
        println!("fuzz: cannot read the free-frame count and the kernel heap's use");
        return 1;
    };
    let mut problems = 0;
    let mut first = 0;
    while first < calls {
        let count = BATCH.min(calls - first);
        let (seed_text, first_text, count_text) = (Decimal::new(seed), Decimal::new(first), Decimal::new(count));
        let argv = ["fuzz", "--worker", seed_text.as_str(), first_text.as_str(), count_text.as_str()];
        let worker = match userlib::process::spawn("fuzz", &argv) {
            Ok(child) => child,
            Err(errno) => {
                println!("fuzz: cannot start a worker: {errno}");
                return 1;
            }
        };
        let ending = match sys::wait(Some(worker)) {
            Ok((_, info)) => info,
            Err(errno) => {
                println!("fuzz: wait for the worker failed: {errno}");
                return 1;
            }
        };
        match (ending.status, ending.fault()) {
            (0, None) => {}
            (reported @ 1..=MAX_REPORTED, None) => problems += reported,
            _ => {
                println!("fuzz: the worker for calls {first}..{} died: {}", first + count, Ending(ending));
                problems += 1;
            }
        }
        first += count;
    }
    let _ = sys::console_mode(abi::CONSOLE_COOKED);
    let _ = sys::set_foreground(None);
    match resources() {
        Some(now) if now == baseline => {}
        Some(now) => {
            println!(
                "fuzz: after the run {} free frames (before: {}), {} kernel heap bytes in use (before: {})",
                now.frames, baseline.frames, now.heap_bytes, baseline.heap_bytes
            );
            problems += 1;
        }
        None => problems += 1,
    }
    println!("fuzz: {} ms", (sys::uptime_ns() - start) / MS);
    if problems > 0 {
        println!("fuzz: {calls} calls, seed {seed}, {problems} problem(s)");
        return 1;
    }
    println!("fuzz: {calls} calls, seed {seed}, kernel intact");
    0
}

/// Checks how a worker's child that was orphaned to this process ended: a `fuzz --exit N`
/// child ends with N or is killed, and never by a fault. Returns 1 for a problem, else 0.
fn check_orphan(pid: Pid, info: ExitInfo) -> i32 {
    let status = info.status;
    if info.fault().is_none() && ((0..CHILD_STATUSES as i32).contains(&status) || status == abi::status::KILLED) {
        return 0;
    }
    println!("fuzz: orphan {pid} {}", Ending(info));
    1
}

/// What a run must give back: free frames plus this process's own pages, and the kernel
/// heap's bytes in use.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Resources {
    frames: u64,
    heap_bytes: u64,
}

fn resources() -> Option<Resources> {
    let info = sys::sysinfo().ok()?;
    let me = sys::getpid();
    let mut rows = [abi::ProcessInfo::EMPTY; 64];
    let count = sys::process_list(&mut rows).ok()?.min(rows.len());
    let mine = rows[..count].iter().find(|row| row.pid == me)?.memory_bytes;
    Some(Resources { frames: info.free_frames + mine / PAGE, heap_bytes: info.heap_used })
}

/// A number as decimal text, without the heap.
struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    fn new(mut value: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                return Self { digits, start };
            }
        }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.digits[self.start..]).unwrap_or("0")
    }
}

// ---------------------------------------------------------------------------------------
// One-shot children: the calls that end the caller.
// ---------------------------------------------------------------------------------------

/// What a risky call does, and the status its child must end with.
#[derive(Clone, Copy)]
enum Risky {
    Exit(i32),
    KillSelf,
}

impl Risky {
    fn draw(rng: &mut Rng) -> Self {
        if rng.below(2) == 0 { Self::Exit(rng.next() as i32) } else { Self::KillSelf }
    }

    fn expected_status(self) -> i32 {
        match self {
            Self::Exit(status) => status,
            Self::KillSelf => abi::status::KILLED,
        }
    }
}

/// `fuzz --one SEED INDEX`: makes risky call INDEX, with junk in every other register.
fn one_shot(seed: u64, index: u64) -> i32 {
    let mut rng = Rng::for_call(seed, index);
    rng.below(RISKY_ONE_IN);
    let (number, args) = match Risky::draw(&mut rng) {
        Risky::Exit(status) => (EXIT, [status as u64, rng.next(), rng.next(), rng.next(), rng.next(), rng.next()]),
        Risky::KillSelf => {
            (KILL, [u64::from(sys::getpid()), rng.next(), rng.next(), rng.next(), rng.next(), rng.next()])
        }
    };
    let path = if rng.below(2) == 0 { EntryPath::Syscall } else { EntryPath::Int80 };
    let noise = core::array::from_fn(|_| rng.next());
    let mut call = Call::new(path, number, args, noise);
    // SAFETY: `exit` and `kill` of the caller read no memory and end this process.
    unsafe { call.run() };
    println!("fuzz: call {index} (seed {seed}): the process survived its own exit/kill");
    1
}

// ---------------------------------------------------------------------------------------
// The worker.
// ---------------------------------------------------------------------------------------

/// What a worker knows about its own process while it fuzzes.
struct Worker {
    seed: u64,
    me: Pid,
    parent: Pid,
    /// The heap end when the worker started, and now.
    heap_start: u64,
    heap_end: u64,
    /// Recent successful `mmap`s, for `munmap` and `mprotect` to aim at.
    scratch: [(u64, u64); 32],
    scratch_next: usize,
    /// Recently spawned children and the status each will exit with, for `wait`, `kill` and
    /// `set_foreground`, and to check what `wait` reports.
    children: [(Pid, i32); 16],
    children_next: usize,
    last_uptime: u64,
    problems: i32,
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
}

impl Worker {
    fn new(seed: u64) -> Self {
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
        let heap = sys::heap_end() as u64;
        Self {
            seed,
            me: sys::getpid(),
            parent: sys::getppid(),
            heap_start: heap,
            heap_end: heap,
            scratch: [(0, 0); 32],
            scratch_next: 0,
            children: [(0, 0); 16],
            children_next: 0,
            last_uptime: 0,
            problems: 0,
        }
    }

    /// Makes calls `first..first + count`; the exit status is the number of problems seen.
    fn run(mut self, first: u64, count: u64) -> i32 {
        for index in first..first + count {
            let mut rng = Rng::for_call(self.seed, index);
            if rng.below(RISKY_ONE_IN) == 0 {
                self.risky(index, Risky::draw(&mut rng));
            } else {
                let planned = self.plan(&mut rng);
                self.make(index, &planned);
            }
            if self.problems >= MAX_REPORTED {
                break;
            }
        }
        self.problems
    }

    fn problem(&mut self, index: u64, what: core::fmt::Arguments) {
        println!("fuzz: call {index} (seed {}): {what}", self.seed);
        self.problems += 1;
    }

    /// Runs a risky call in `fuzz --one SEED INDEX` and checks how it ended.
    fn risky(&mut self, index: u64, risky: Risky) {
        let (seed, at) = (Decimal::new(self.seed), Decimal::new(index));
        let pid = match userlib::process::spawn("fuzz", &["fuzz", "--one", seed.as_str(), at.as_str()]) {
            Ok(child) => child,
            Err(errno) if errno.0 == EAGAIN => return,
            Err(errno) => return self.problem(index, format_args!("spawn of a one-shot child failed: {errno}")),
        };
        match sys::wait(Some(pid)) {
            Ok((_, info)) if info == ExitInfo::exited(risky.expected_status()) => {}
            Ok((_, info)) => {
                let expected = risky.expected_status();
                self.problem(index, format_args!("one-shot child {}, expected status {expected}", Ending(info)))
            }
            Err(errno) => self.problem(index, format_args!("wait for a one-shot child failed: {errno}")),
        }
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
                if ![EXIT, SHUTDOWN].contains(&syscall.number) && (syscall.number != SPAWN || rng.below(3) == 0) {
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
                return Planned { number: syscall.number, args, path, noise: Some(registers), flags };
            }
            syscall.number
        };
        self.make_safe(rng, number, &mut args);
        Planned { number, args, path, noise, flags }
    }

    /// An argument of `kind` for syscall `number`; `previous` is the argument before it (the
    /// pointer a length belongs to).
    fn argument(&mut self, rng: &mut Rng, number: u64, kind: Arg, previous: u64) -> u64 {
        match kind {
            Arg::Int => match rng.below(6) {
                0 => 0,
                1 => 1,
                2 => 2,
                3 => u64::MAX,
                4 => rng.next(),
                _ => rng.below(256),
            },
            Arg::Fd => match rng.below(8) {
                0 => 0,
                1 => 1,
                2 => 2,
                3 => 3,
                4 => rng.below(1024),
                5 => 1 << 32 | rng.below(3),
                6 => u64::MAX,
                _ => rng.next(),
            },
            Arg::Pid => self.pid(rng),
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
            Arg::Handle => match rng.below(6) {
                0 => rng.below(8),
                1 => rng.below(256),
                2 => 256 + rng.below(16),
                3 => u64::MAX,
                4 => 1 << 32 | rng.below(4),
                _ => rng.next(),
            },
            Arg::Rights => match rng.below(3) {
                0 => abi::handle::rights::ALL as u64,
                1 => rng.below(1 << 12),
                _ => rng.next(),
            },
            // Never long enough to matter: nothing else in this worker would wake it.
            Arg::Timeout => match rng.below(3) {
                0 => 0,
                _ => rng.below(MS),
            },
            Arg::IpcBuffers => match rng.below(3) {
                0 => 0,
                _ => self.pointer(rng, true),
            },
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

    fn pid(&mut self, rng: &mut Rng) -> u64 {
        match rng.below(10) {
            0 => 0,
            1 => u64::MAX,
            2 => 1,
            3 => u64::from(self.me),
            4 => u64::from(self.parent),
            5 | 6 => u64::from(self.children[rng.below(self.children.len() as u64) as usize].0),
            7 => rng.below(200),
            8 => 1 << 32 | u64::from(self.me),
            _ => rng.next(),
        }
    }

    fn pointer(&mut self, rng: &mut Rng, output: bool) -> u64 {
        let own = if output == (rng.below(4) != 0) { (&raw mut OUTPUT) as u64 } else { (&raw mut INPUT) as u64 };
        match rng.below(16) {
            0..=5 => own + rng.below(BUFFER as u64 / 2),
            6 => EDGE_BASE + PAGE - rng.below(128),
            7 => READ_ONLY.as_ptr() as u64 + rng.below(256),
            8 => main as fn() -> i32 as *const () as u64,
            9 => rng.pick(&KERNEL_ADDRESSES) + rng.below(64),
            10 => rng.pick(&[0x0000_8000_0000_0000, 0xdead_beef_0000_0000, 0x8000_0000_0000_0000]) + rng.below(1 << 20),
            11 => rng.below(USER_START),
            12 => HOLE + rng.below(1 << 30),
            13 => self.scratch[rng.below(self.scratch.len() as u64) as usize].0 + rng.below(64),
            14 => rng.next(),
            _ => USER_END - rng.below(64),
        }
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
            MMAP => match rng.below(10) {
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

    /// Keeps the call from ending or hanging the worker, or printing junk: see the module
    /// documentation.
    fn make_safe(&mut self, rng: &mut Rng, number: u64, args: &mut [u64; 6]) {
        match number {
            READ if args[0] == 0 && args[2] > 0 && !surely_unwritable(args[1], args[2]) => args[2] = 0,
            WRITE if (args[0] == 1 || args[0] == 2) && args[2] > 0 && !surely_unreadable(args[1], args[2]) => {
                args[2] = 0
            }
            SLEEP if args[0] > MS => args[0] %= MS + 1,
            KILL if args[0] == u64::from(self.me) || args[0] == u64::from(self.parent) => args[0] = 0,
            KILL if args[0] > 1
                && args[0] < 1 << 32
                && !self.children.iter().any(|&(pid, _)| u64::from(pid) == args[0]) =>
            {
                args[0] |= 1 << 31
            }
            SPAWN => self.spawn_arguments(rng, args),
            // The worker's console handles stay, or it could not report.
            HANDLE_CLOSE if args[0] < 3 => args[0] = 3 + rng.below(253),
            _ => {}
        }
    }

    /// `spawn`'s name: sometimes this program, with arguments (set in `make`) that make it
    /// exit a millisecond later; otherwise names that must be refused.
    fn spawn_arguments(&mut self, rng: &mut Rng, args: &mut [u64; 6]) {
        let input = (&raw const INPUT) as u64;
        match rng.below(8) {
            0 | 1 => args[0] = FUZZ_NAME.as_ptr() as u64,
            2 => {
                args[0] = MISSING_NAME.as_ptr() as u64;
                args[1] = MISSING_NAME.len() as u64;
            }
            3 => {
                args[0] = input + rng.below(BUFFER as u64 / 2);
                args[1] = rng.below(40);
            }
            4 => {
                args[0] = input + rng.below(BUFFER as u64 / 2);
                args[1] = 33 + rng.below(32);
            }
            _ => {}
        }
    }

    /// Makes the call and checks the result.
    fn make(&mut self, index: u64, planned: &Planned) {
        let exit_status = Decimal::new(planned.args[4] % CHILD_STATUSES);
        let argv = [user_str(FUZZ_NAME), user_str(b"--exit"), user_str(exit_status.as_str().as_bytes())];
        let mut args = planned.args;
        if planned.number == SPAWN && args[0] == FUZZ_NAME.as_ptr() as u64 {
            args[1] = FUZZ_NAME.len() as u64;
            args[2] = argv.as_ptr() as u64;
            args[3] = argv.len() as u64;
        }
        let result = match planned.noise {
            Some(noise) => {
                let mut call = Call::new(planned.path, planned.number, args, noise).with_flags(planned.flags);
                // SAFETY: `make_safe` rules out the calls that end the worker, block it for
                // good or unmap its buffers; what the kernel writes lands in `OUTPUT` or
                // `INPUT` (sized for it), in scratch mappings, or nowhere.
                unsafe { call.run() };
                let returns_registers = [CALL, RECV, REPLY_RECV].contains(&planned.number);
                if let Some(register) = call.clobbered()
                    && !(returns_registers && IPC_RESULT_REGISTERS.contains(&register))
                {
                    self.problem(index, format_args!("syscall {:#x} changed {register}", planned.number));
                }
                call.result()
            }
            // SAFETY: as above.
            None => unsafe { sys::raw(planned.path, planned.number, args) },
        };
        self.check(index, planned, &args, result);
    }

    /// Checks what can be checked about a result, and remembers what later calls aim at.
    fn check(&mut self, index: u64, planned: &Planned, args: &[u64; 6], result: i64) {
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
            GETPID if result != i64::from(self.me) => self.problem(index, format_args!("getpid returned {result}")),
            GETPPID if result != i64::from(self.parent) => {
                self.problem(index, format_args!("getppid returned {result}"))
            }
            UPTIME if (result as u64) < self.last_uptime => {
                let last = self.last_uptime;
                self.problem(index, format_args!("uptime went back from {last} to {result}"))
            }
            UPTIME => self.last_uptime = result as u64,
            BRK if result > 0 => self.heap_end = result as u64,
            MMAP if result > 0 => {
                self.scratch[self.scratch_next] = (result as u64, args[1]);
                self.scratch_next = (self.scratch_next + 1) % self.scratch.len();
            }
            SPAWN if result > 0 => {
                self.children[self.children_next] = (result as Pid, (planned.args[4] % CHILD_STATUSES) as i32);
                self.children_next = (self.children_next + 1) % self.children.len();
            }
            WAIT if result > 0 => self.check_reaped(index, result as Pid, args[1]),
            _ => {}
        }
    }
}

impl Worker {
    /// Checks the [`ExitInfo`] `wait` stored at `info_at` for child `pid`, when the worker
    /// knows what it should be and `info_at` is in one of its buffers: the status the child
    /// was told to exit with, or `KILLED`, and no fault.
    fn check_reaped(&mut self, index: u64, pid: Pid, info_at: u64) {
        let Some(&(_, expected)) = self.children.iter().find(|&&(child, _)| child == pid) else { return };
        let size = size_of::<ExitInfo>() as u64;
        let in_buffer = |buffer: u64| info_at >= buffer && info_at + size <= buffer + BUFFER as u64;
        if !in_buffer((&raw const INPUT) as u64) && !in_buffer((&raw const OUTPUT) as u64) {
            return;
        }
        // SAFETY: the bytes lie in one of the worker's static buffers, which the kernel wrote
        // during the `wait` that just returned; nothing else writes them, and any bytes are a
        // valid `ExitInfo`.
        let info = unsafe { core::ptr::read_unaligned(info_at as *const ExitInfo) };
        if info != ExitInfo::exited(expected) && info != ExitInfo::exited(abi::status::KILLED) {
            self.problem(index, format_args!("child {pid} {}, expected status {expected}", Ending(info)));
        }
    }
}

/// The name of this program, for spawns that must succeed.
static FUZZ_NAME: &[u8] = b"fuzz";
/// A program that does not exist.
static MISSING_NAME: &[u8] = b"no_such_program";

fn user_str(text: &[u8]) -> UserStr {
    UserStr { ptr: text.as_ptr() as u64, len: text.len() as u64 }
}

/// The error a call must fail with because its buffer is surely bad (see
/// [`surely_unreadable`]), where nothing is checked before the buffer; `None` if unknown.
fn required_error(number: u64, args: &[u64; 6]) -> Option<i64> {
    let (pointer, len) = match number {
        WRITE if args[0] == 1 || args[0] == 2 => (args[1], args[2]),
        READ if args[0] == 0 => (args[1], args[2]),
        PROGRAMS => (args[0], args[1]),
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

//! `fuzz [--seed N] [--calls N]`: makes random syscalls, which the kernel must survive.
//!
//! The first process (the coordinator) prints the seed and records the free frames, the
//! kernel heap's bytes in use, the live kernel objects and the number of processes. It then
//! hands out the calls in batches to worker children (`fuzz --worker SEED FIRST COUNT`,
//! given only the console), one at a time; a worker that dies is reported and the next batch
//! goes to a new one. At the end it waits for every process the workers started to be gone,
//! checks that every frame, every byte of kernel heap and every kernel object came back (none
//! is held that was not before; servers may have let go of state they held before the run),
//! and prints `fuzz: N calls, seed S, kernel intact`. A kernel panic shows as launcher status 101
//! instead; the seed printed at the start replays the run.
//!
//! Workers also send the `fs` server random requests (through the root directory, which the
//! coordinator passes them with a read-only copy of the `fuzz` image they start children
//! from), and check it survives them. After the syscall workers, services workers (`fuzz
//! --services SEED FIRST COUNT`, one call in [`SERVICES_ONE_IN`]) send random requests to the
//! name server, `init`'s supervisor and the console, and build a tree too deep for any path
//! in fs ([`services`]), and check that every service still answers correctly.
//!
//! Call `i` is drawn from its own generator seeded with `(seed, i)`, so any call can be
//! regenerated alone. [`worker`] draws and checks the calls; [`partner`] is the IPC partner
//! the workers start, which serves and calls whatever endpoints it is given. Calls that end
//! the caller run in one-shot children (`fuzz --one SEED INDEX`): an `exit` with junk in
//! every register, or a `call` that blocks for ever until the worker kills it at a random
//! moment. Each problem is printed with its seed and call index, and the run exits 1.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../../dirty.rs"]
mod dirty;
mod partner;
mod services;
mod worker;

use abi::ipc::{FOREVER, LABEL_MAX};
use abi::memory::PAGE_SIZE;
use abi::syscall::{CALL, EXIT};
use userlib::println;
use userlib::process::Ending;
use userlib::sys::{self, EntryPath};

use dirty::Call;

userlib::main!(main);

const MS: u64 = 1_000_000;
/// Calls per worker.
const BATCH: u64 = 5_000;
/// Calls when `--calls` is not given.
const DEFAULT_CALLS: u64 = 10_000;
/// One call in this many runs in a one-shot child.
const RISKY_ONE_IN: u64 = 400;
/// Most problems one worker reports in its exit status.
const MAX_REPORTED: i32 = 100;
/// The services workers make one request for this many syscalls.
const SERVICES_ONE_IN: u64 = 40;
/// How long the coordinator waits for what the workers started to end.
const SETTLE_NS: u64 = 10_000 * MS;

fn main() -> i32 {
    let args = userlib::args();
    let number = |index: usize| args.get(index).and_then(|text| text.parse::<u64>().ok());
    match args.get(1).copied() {
        Some("--worker") => match (number(2), number(3), number(4)) {
            (Some(seed), Some(first), Some(count)) => worker::Worker::new(seed).run(first, count),
            _ => usage(),
        },
        Some("--one") => match (number(2), number(3)) {
            (Some(seed), Some(index)) => one_shot(seed, index),
            _ => usage(),
        },
        Some("--services") => match (number(2), number(3), number(4)) {
            (Some(seed), Some(first), Some(count)) => services::run(seed, first, count),
            _ => usage(),
        },
        Some("--partner") => match (number(2), number(3)) {
            (Some(seed), Some(index)) => partner::run(seed, index),
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
    // The workers start from this image, read before the baseline; and they send `fs` random
    // requests through its root directory.
    // The workers get the image read-only: mapped writable, their random writes would
    // change what the next worker starts from.
    let read_only_image = userlib::testing::own_image()
        .and_then(|image| userlib::ipc::duplicate(image, abi::handle::rights::READ | abi::handle::rights::DUPLICATE));
    let (image, root) = match (read_only_image, userlib::fs::directory_handle()) {
        (Ok(image), Ok(root)) => (image as u32, root as u32),
        (Err(errno), _) | (_, Err(errno)) => {
            println!("fuzz: cannot read its own image or find the file system: {errno}");
            return 1;
        }
    };
    let Some(baseline) = Resources::measure() else {
        println!("fuzz: cannot read the free-frame count, the kernel heap's use and the live objects");
        return 1;
    };
    let mut problems = 0;
    let mut first = 0;
    while first < calls {
        let count = BATCH.min(calls - first);
        let (seed_text, first_text, count_text) = (Decimal::new(seed), Decimal::new(first), Decimal::new(count));
        let argv = ["fuzz", "--worker", seed_text.as_str(), first_text.as_str(), count_text.as_str()];
        let ending = match userlib::testing::spawn_self(&argv, &[0, 1, 2, image, root]).and_then(|worker| sys::wait(Some(worker))) {
            Ok((_, ending)) => ending,
            Err(errno) => {
                println!("fuzz: cannot run a worker: {errno}");
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
    let services_calls = calls.div_ceil(SERVICES_ONE_IN);
    let mut first = 0;
    while first < services_calls {
        let count = BATCH.min(services_calls - first);
        let (seed_text, first_text, count_text) = (Decimal::new(seed), Decimal::new(first), Decimal::new(count));
        let argv = ["fuzz", "--services", seed_text.as_str(), first_text.as_str(), count_text.as_str()];
        let names = userlib::names::NAMES_HANDLE as u32;
        match userlib::testing::spawn_self(&argv, &[0, 1, 2, names, root]).and_then(|worker| sys::wait(Some(worker))) {
            Ok((_, ending)) if ending == abi::ExitInfo::exited(0) => {}
            Ok((_, ending)) if ending.fault().is_none() && (1..=MAX_REPORTED).contains(&ending.status) => problems += ending.status,
            Ok((_, ending)) => {
                println!("fuzz: the services worker for calls {first}..{} died: {}", first + count, Ending(ending));
                problems += 1;
            }
            Err(errno) => {
                println!("fuzz: cannot run a services worker: {errno}");
                return 1;
            }
        }
        first += count;
    }
    let _ = sys::console_mode(abi::CONSOLE_COOKED);
    let _ = sys::set_foreground(None);
    problems += settle(&baseline);
    match Resources::settled(&baseline) {
        Some(now) if !now.holds_more_than(&baseline) => {}
        Some(now) => {
            println!(
                "fuzz: after the run {} free frames (before: {}), {} kernel heap bytes in use (before: {}), \
                 {} kernel objects (before: {})",
                now.frames, baseline.frames, now.heap_bytes, baseline.heap_bytes, now.objects, baseline.objects
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

/// Waits until only the processes that ran before the first worker are left (the workers'
/// children end on their own, within milliseconds, or were killed); 1 for a problem if some
/// are still running after [`SETTLE_NS`], else 0.
fn settle(baseline: &Resources) -> i32 {
    let deadline = sys::uptime_ns() + SETTLE_NS;
    loop {
        match Resources::measure() {
            Some(now) if now.processes == baseline.processes => return 0,
            Some(now) if sys::uptime_ns() > deadline => {
                println!("fuzz: {} processes still run after the last worker, {} before the first", now.processes, baseline.processes);
                return 1;
            }
            Some(_) => {
                let _ = sys::sleep_ns(5 * MS);
            }
            None => return 1,
        }
    }
}

/// What a run must give back: free frames plus the pages charged to every process (servers
/// such as `fs` may keep memory they grew into), the kernel heap's bytes in use, the live
/// kernel objects, and the processes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Resources {
    frames: u64,
    heap_bytes: u64,
    objects: u64,
    processes: u32,
}

impl Resources {
    /// The resources once they hold no more than `baseline` (servers handle the close
    /// notices of what the workers held a moment after they end), or as they are after
    /// [`SETTLE_NS`].
    fn settled(baseline: &Self) -> Option<Self> {
        let deadline = sys::uptime_ns() + SETTLE_NS;
        loop {
            let now = Self::measure()?;
            if !now.holds_more_than(baseline) || sys::uptime_ns() > deadline {
                return Some(now);
            }
            let _ = sys::sleep_ns(5 * MS);
        }
    }

    /// Whether anything is held now that was not at `baseline`: fewer frames free, more heap
    /// bytes, objects or processes. Less held than at the baseline is no leak: a server may
    /// let go, during the run, of something it held before it (a `--services` worker's
    /// requests can make the console or `fs` drop state they kept), and one run at four CPUs
    /// ended one object and 608 heap bytes under its baseline that way.
    fn holds_more_than(&self, baseline: &Self) -> bool {
        self.frames < baseline.frames
            || self.heap_bytes > baseline.heap_bytes
            || self.objects > baseline.objects
            || self.processes > baseline.processes
    }

    fn measure() -> Option<Self> {
        let info = sys::sysinfo().ok()?;
        let mut rows = [abi::ProcessInfo::EMPTY; 64];
        let count = sys::process_list(&mut rows).ok()?.min(rows.len());
        let charged: u64 = rows[..count].iter().map(|row| row.memory_bytes / PAGE_SIZE).sum();
        Some(Self {
            frames: info.free_frames + charged,
            heap_bytes: info.heap_used,
            objects: info.kernel_objects,
            processes: info.processes,
        })
    }
}

// ---------------------------------------------------------------------------------------
// One-shot children: the calls that end or block the caller.
// ---------------------------------------------------------------------------------------

/// What a one-shot child does, and the status it must end with.
#[derive(Clone, Copy)]
enum Risky {
    /// `exit` with this status.
    Exit(i32),
    /// A `call` on its handle 3, which nobody answers, until its parent kills it.
    KilledInCall,
}

impl Risky {
    fn draw(rng: &mut Rng) -> Self {
        if rng.below(2) == 0 { Self::Exit(rng.next() as i32) } else { Self::KilledInCall }
    }

    fn expected_status(self) -> i32 {
        match self {
            Self::Exit(status) => status,
            Self::KilledInCall => abi::status::KILLED,
        }
    }
}

/// `fuzz --one SEED INDEX`: makes risky call INDEX, with junk in every other register.
fn one_shot(seed: u64, index: u64) -> i32 {
    let mut rng = Rng::for_call(seed, index);
    rng.below(RISKY_ONE_IN);
    let risky = Risky::draw(&mut rng);
    let path = if rng.below(2) == 0 { EntryPath::Syscall } else { EntryPath::Int80 };
    let mut noise: [u64; 16] = core::array::from_fn(|_| rng.next());
    let junk: [u64; 4] = core::array::from_fn(|_| rng.next());
    let (number, args) = match risky {
        Risky::Exit(status) => (EXIT, [status as u64, junk[0], junk[1], junk[2], junk[3], rng.next()]),
        Risky::KilledInCall => {
            // A register-only message (r12 = 0) that waits for ever (r13).
            (noise[12], noise[13]) = (0, FOREVER);
            (CALL, [3, rng.below(LABEL_MAX), junk[0], junk[1], junk[2], junk[3]])
        }
    };
    let mut call = Call::new(path, number, args, noise);
    // SAFETY: `exit` ends this process and reads no memory; the `call` carries no buffers, so
    // the kernel writes no memory, and it blocks until the process is killed.
    unsafe { call.run() };
    println!("fuzz: call {index} (seed {seed}): a one-shot child's call returned {}", call.result());
    1
}

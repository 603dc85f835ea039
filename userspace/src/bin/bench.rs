//! `bench`: path lengths of the kernel's hot paths, in TSC cycles per operation.
//!
//! Under the launcher's `--icount` (QEMU `-icount shift=0`) the TSC counts guest
//! instructions, so the figures are instruction counts and repeat exactly from run to run.
//! Each figure subtracts the cost of the same loop without the operation.
//!
//! - `null_syscall`, `null_int80`: `getpid` through `syscall` and `int 0x80` (100k each);
//! - `yield_switch`: one `yield` that switches to another process (ping-pong with a child);
//! - `thread_switch`: one `yield` that switches to another thread of the same process (no
//!   address-space switch);
//! - `futex_pingpong`: a round trip between two threads of one process, each waking the
//!   other with `futex_wake` and sleeping in `futex_wait`;
//! - `yield_switch_fpu`: the same with both processes' x87, SSE and (where the CPU has it)
//!   AVX registers holding values and changed before every `yield`, so that every switch
//!   saves and loads them in full (less the instruction or two that change them);
//! - `spawn_wait`: starting a program that exits at once (`bench --exit`, from its image in
//!   memory), and reaping it;
//! - `spawn_file_wait`: the same for `/bin/true` read from the file system each time
//!   (`userlib::process::spawn_child`: a `fs` call that hands back the image, then `spawn`);
//! - `pipe_pingpong`: one byte each way between two processes over two pipes, a round trip;
//! - `file_read_1m`: reading a 1 MiB file of `/tmp` through `fs` in 4 KiB `read`s, in
//!   instructions per byte (two decimals);
//! - `map_touch_unmap`: `mmap` of one page, one write to it, `munmap`;
//! - `ipc_call`: a register-only `call` to a server in another process, which answers with
//!   `reply_recv`: a whole round trip;
//! - `ipc_call_4k`: the same with 4 KiB of bytes each way;
//! - `fault_roundtrip`: a child's `ud2` delivered to this process's exception endpoint as a
//!   message (with the child's registers), and the handler's answer (`reply_recv` with the
//!   registers, RIP past the `ud2`) resuming it: one fault → handler → resume round;
//! - `cow_copy_64`: a copy-on-write copy (`process_copy`) of a child with 64 pages it has
//!   written, whose thread writes a word to each of the 64 pages (each write breaks the
//!   sharing: a fault and a page copied) and exits, and the wait for it;
//! - `syscall_message`: a `syscall` of a child in syscall mode (decision 72; a tiny program
//!   that loops on `syscall` 1000) delivered to this process's endpoint as a message, and the
//!   answer (`reply_recv` with the registers, rax = the result) resuming it: one syscall →
//!   handler → resume round;
//! - `notify_wait`: one `signal` that wakes a process blocked in `wait_notification` (a
//!   ping-pong of two notifications, halved);
//! - `irq_to_driver`: from the `out` that makes a device interrupt to its driver running in
//!   ring 3. The device is COM2 (the spare device `init` gives the program it runs, as
//!   handles 7 and 8): the benchmark enables its transmitter-empty interrupt, which fires at
//!   once, and waits; the driver, a child blocked in `wait_notification` on the notification
//!   the line is bound to, reads the TSC as soon as it runs and sends it back as the bits of
//!   another notification. So the figure covers the interrupt's delivery, the kernel masking
//!   the line and signalling, the benchmark blocking, and the switch to the driver; the driver
//!   then clears the interrupt and unmasks the line (`irq_ack`), outside the figure;
//! - `console_write_4k`: one 4 KiB `write` of text lines to standard output, the console
//!   server (forwarded as a stream call; the server sends it to COM1 and draws it);
//! - `longest_masked_ns`: the longest stretch the kernel ran with interrupts masked (from
//!   `sysinfo`), after the operations above and a few long ones: a 32 MiB `mmap`/`munmap`, a
//!   spawn of the largest program, a copy-on-write copy of a process with 32 MiB written, a
//!   `write` of 256 newlines to the console, a fault storm
//!   (12 children of the largest program killed by a page fault, each fault reported with a
//!   named backtrace) and a spawn and exit storm (12 of them started, then all reaped).
#![no_std]
#![no_main]

extern crate alloc;

use core::hint::black_box;
use core::sync::atomic::{AtomicU32, Ordering};

use abi::exception::Registers;
use abi::handle::NO_HANDLE;
use abi::ipc::{FOREVER, IpcBuffers};
use userlib::ipc::{Endpoint, Message, Notification, OwnedHandle, Transfer, raw_ipc};
use userlib::sys::{self, EntryPath};
use userlib::testing::spawn_self;
use userlib::device::{read_port, write_port};
use userlib::{args, fs, println, process, thread, timestamp};

userlib::main!(main);

const SYSCALL_ROUNDS: u64 = 100_000;
const YIELD_ROUNDS: u64 = 10_000;
const SPAWN_ROUNDS: u64 = 50;
const MAP_ROUNDS: u64 = 2_000;
const IPC_ROUNDS: u64 = 10_000;
const FAULT_ROUNDS: u64 = 10_000;
const COPY_ROUNDS: u64 = 50;
/// Where the source of `cow_copy_64` keeps its written pages and the copies' stack.
const COW_DATA: u64 = 0x6000_0000_0000;
const COW_PAGES: u64 = 64;
/// The pages of the source of the long copy in [`long_operations`] (32 MiB).
const COW_BIG_PAGES: u64 = 8192;
const COW_STACK: u64 = 0x6100_0000_0000;
const COW_STACK_BYTES: u64 = 4 * 4096;
const PIPE_ROUNDS: u64 = 10_000;
const IRQ_ROUNDS: u64 = 1_000;
const CONSOLE_ROUNDS: u64 = 20;
/// COM2's line and ports, as init hands them to the program it runs.
const SPARE_IRQ: u64 = 7;
const SPARE_PORTS: u64 = 8;
/// COM2's registers.
const COM2_INTERRUPT_ENABLE: u16 = 0x2f9;
const COM2_INTERRUPT_ID: u16 = 0x2fa;
const COM2_MODEM_CONTROL: u16 = 0x2fc;
/// Interrupt enable: transmitter empty (fires at once, the transmitter being idle).
const TRANSMITTER_EMPTY: u8 = 0x02;
/// Modem control: OUT2, which lets the UART's interrupt out.
const OUT2: u8 = 0x08;
/// The file `file_read_1m` reads, and its size and read size.
const BIG_FILE: &str = "/tmp/bench-1m";
const BIG_FILE_BYTES: usize = 1024 * 1024;
const READ_BYTES: usize = 4096;

/// Gives the x87 stack, xmm0-1 and (with `avx`) ymm2-3 values other than their initial ones,
/// so that a save has them to store.
fn fill_vector_registers(avx: bool) {
    // SAFETY: writes the x87 stack and xmm0/xmm1, which this soft-float program keeps nothing
    // in; all exceptions stay masked.
    unsafe { core::arch::asm!("fld1", "fldpi", "pcmpeqd xmm1, xmm1", "movapd xmm0, xmm1", options(nomem, nostack)) };
    if avx {
        // SAFETY: as above, ymm2 and ymm3; the caller checked AVX is usable.
        unsafe { core::arch::asm!("vcmpeqpd ymm3, ymm3, ymm3", "vmovapd ymm2, ymm3", options(nomem, nostack)) };
    }
}

/// Changes the registers [`fill_vector_registers`] filled, so that `xsaveopt` finds them
/// modified.
fn change_vector_registers(avx: bool) {
    // SAFETY: as in `fill_vector_registers`.
    unsafe { core::arch::asm!("fadd st(0), st(1)", "paddq xmm0, xmm1", options(nomem, nostack)) };
    if avx {
        // SAFETY: as in `fill_vector_registers`.
        unsafe { core::arch::asm!("vpermilpd ymm2, ymm2, 5", options(nomem, nostack)) };
    }
}

/// Cycles per round of `operation`, minus an empty loop's cycles per round.
fn cycles_per_round(rounds: u64, mut operation: impl FnMut()) -> u64 {
    let start = timestamp();
    for round in 0..rounds {
        black_box(round);
    }
    let empty = timestamp() - start;
    let start = timestamp();
    for round in 0..rounds {
        black_box(round);
        operation();
    }
    let full = timestamp() - start;
    full.saturating_sub(empty) / rounds
}

fn null_call(path: EntryPath) -> u64 {
    cycles_per_round(SYSCALL_ROUNDS, || {
        // SAFETY: getpid takes no arguments and touches no memory.
        black_box(unsafe { sys::raw(path, abi::syscall::GETPID, [0; 6]) });
    })
}

/// Operations whose kernel side is long, and must let interrupts in along the way; returns
/// how many failed.
fn long_operations() -> u32 {
    let mut failures = 0;
    const BIG: u64 = 32 * 1024 * 1024;
    match sys::mmap(0, BIG, abi::PROT_READ | abi::PROT_WRITE) {
        // SAFETY: the mapping was just made and nothing refers to it.
        Ok(address) => failures += u32::from(unsafe { sys::munmap(address, BIG) }.is_err()),
        Err(_) => failures += 1,
    }
    match process::spawn_child("usertests", &["usertests", "--child", "exit_with", "0"], &[1, 2]) {
        Ok(child) => failures += u32::from(sys::wait(Some(child)).is_err()),
        Err(_) => failures += 1,
    }
    match start_cow_source(true) {
        Some(source) => {
            failures += u32::from(!copy_and_wait(source));
            let _ = sys::kill(source);
            let _ = sys::wait(Some(source));
        }
        None => failures += 1,
    }
    failures += u32::from(sys::write(1, &[b'\n'; 256]).is_err());
    // A fault storm: each child's report names its frames from the largest symbol table.
    failures += storm(&["usertests", "--child", "write_to_text"]);
    // A spawn and exit storm.
    failures += storm(&["usertests", "--child", "exit_with", "0"]);
    failures
}

/// Children [`storm`] starts before it waits for any.
const STORM_CHILDREN: usize = 12;

/// Starts [`STORM_CHILDREN`] copies of `usertests` with `argv`, then waits for them all;
/// returns how many could not be started or waited for.
fn storm(argv: &[&str]) -> u32 {
    let mut failures = 0;
    let mut children = alloc::vec::Vec::new();
    for _ in 0..STORM_CHILDREN {
        match process::spawn_child("usertests", argv, &[1, 2]) {
            Ok(child) => children.push(child),
            Err(_) => failures += 1,
        }
    }
    for child in children {
        failures += u32::from(sys::wait(Some(child)).is_err());
    }
    failures
}

/// The IPC server of `ipc_call`: answers every call on its handle 0 with the label plus one,
/// from registers alone, or (with `copy`) with the 4 KiB it received.
fn serve(copy: bool) -> ! {
    let mut buffer = [0u8; 4096];
    let mut buffers = IpcBuffers {
        send_ptr: buffer.as_ptr() as u64,
        recv_ptr: buffer.as_mut_ptr() as u64,
        recv_capacity: buffer.len() as u64,
        ..IpcBuffers::default()
    };
    let (mut reply, mut answer) = (NO_HANDLE, Message::default());
    loop {
        buffers.send_len = if copy && reply != NO_HANDLE { 4096 } else { 0 };
        let pointer = if copy { &raw mut buffers as u64 } else { 0 };
        // SAFETY: `buffers` describes `buffer`, which lives for the whole loop.
        let registers = unsafe { raw_ipc(abi::syscall::REPLY_RECV, reply, &answer, pointer, FOREVER, 0) };
        reply = registers.reply;
        answer = Message::new(registers.message.label + 1, registers.message.words);
    }
}

/// The partner of `notify_wait`: waits on its handle 0 and signals its handle 1, for ever.
fn notified() -> ! {
    let (ping, pong) = (Notification::from_raw(0), Notification::from_raw(1));
    loop {
        let _ = ping.wait(FOREVER);
        let _ = pong.signal(1);
    }
}

/// The partner of `pipe_pingpong`: copies each byte from its handle 0 to its handle 1 until
/// the end of its input.
fn pong() -> i32 {
    let mut byte = [0u8; 1];
    while sys::read(0, &mut byte) == Ok(1) {
        if sys::write(1, &byte).is_err() {
            return 1;
        }
    }
    0
}

/// `thread_switch`: instructions per `yield` from one thread to another of the same process.
fn thread_switch() -> Option<u64> {
    let partner = thread::spawn(|| {
        for _ in 0..YIELD_ROUNDS {
            sys::yield_now();
        }
    })
    .ok()?;
    // Both threads yield YIELD_ROUNDS times, so each round here is two switches.
    let per_round = cycles_per_round(YIELD_ROUNDS, sys::yield_now);
    partner.join().ok()?;
    Some(per_round / 2)
}

/// `futex_pingpong`: instructions per round trip between two threads of one process, each
/// publishing a round number in its word and waking the other.
fn futex_pingpong() -> Option<u64> {
    static PING: AtomicU32 = AtomicU32::new(0);
    static PONG: AtomicU32 = AtomicU32::new(0);
    /// Sleeps until `word` holds `round`.
    fn await_round(word: &AtomicU32, round: u32) {
        loop {
            let seen = word.load(Ordering::Acquire);
            if seen == round {
                return;
            }
            let _ = sys::futex_wait(word, seen, FOREVER);
        }
    }
    let partner = thread::spawn(|| {
        for round in 1..=IPC_ROUNDS as u32 {
            await_round(&PING, round);
            PONG.store(round, Ordering::Release);
            let _ = sys::futex_wake(&PONG, 1);
        }
    })
    .ok()?;
    let mut round = 0;
    let cycles = cycles_per_round(IPC_ROUNDS, || {
        round += 1;
        PING.store(round, Ordering::Release);
        let _ = sys::futex_wake(&PING, 1);
        await_round(&PONG, round);
    });
    partner.join().ok()?;
    Some(cycles)
}

/// `pipe_pingpong`: instructions per round trip of one byte over two pipes to a partner
/// that sends it back.
fn pipe_pingpong() -> Option<u64> {
    let (to_partner_read, to_partner_write) = sys::pipe_create().ok()?;
    let (from_partner_read, from_partner_write) = sys::pipe_create().ok()?;
    let partner = spawn_self(&["bench", "--pong"], &[to_partner_read as u32, from_partner_write as u32]).ok()?;
    drop((OwnedHandle::from_raw(to_partner_read), OwnedHandle::from_raw(from_partner_write)));
    let (to_partner, from_partner) = (OwnedHandle::from_raw(to_partner_write), OwnedHandle::from_raw(from_partner_read));
    let mut byte = [7u8; 1];
    let mut failures = 0;
    let cycles = cycles_per_round(PIPE_ROUNDS, || {
        let ok = sys::write(to_partner.raw(), &byte) == Ok(1) && sys::read(from_partner.raw(), &mut byte) == Ok(1);
        failures += u32::from(!ok);
    });
    drop(to_partner);
    let ended = sys::wait(Some(partner)).is_ok_and(|(_, info)| info.status == 0);
    (failures == 0 && ended).then_some(cycles)
}

/// `file_read_1m`: instructions per byte of reading a 1 MiB file through `fs` in 4 KiB
/// reads, times 100.
fn file_read_1m() -> Option<u64> {
    let contents = alloc::vec![0x5au8; BIG_FILE_BYTES];
    fs::write(BIG_FILE, &contents).ok()?;
    let mut buffer = alloc::vec![0u8; READ_BYTES];
    let mut failures = 0;
    let cycles = cycles_per_round(1, || match fs::File::open(BIG_FILE) {
        Ok(file) => {
            let mut total = 0;
            while let Ok(count @ 1..) = file.read(&mut buffer) {
                total += count;
            }
            failures += u32::from(total != BIG_FILE_BYTES);
        }
        Err(_) => failures += 1,
    });
    let removed = fs::unlink(BIG_FILE).is_ok();
    (failures == 0 && removed).then_some(cycles * 100 / BIG_FILE_BYTES as u64)
}

/// `ipc_call` or `ipc_call_4k`: instructions per round trip to a server in another process.
fn ipc_round_trip(copy: bool) -> Option<u64> {
    let endpoint = Endpoint::create().ok()?;
    let mode = if copy { "--serve-4k" } else { "--serve" };
    let server = spawn_self(&["bench", mode], &[endpoint.handle().raw() as u32]).ok()?;
    let buffer = [7u8; 4096];
    let mut room = [0u8; 4096];
    let mut failures = 0;
    let cycles = cycles_per_round(IPC_ROUNDS, || {
        let ok = if copy {
            let mut transfer = Transfer { send: &buffer, receive: Some(&mut room), ..Transfer::default() };
            endpoint.call_with(&Message::new(1, [0; 4]), &mut transfer, FOREVER).is_ok()
        } else {
            endpoint.call(&Message::new(1, [0; 4])).is_ok()
        };
        failures += u32::from(!ok);
    });
    let _ = sys::kill(server);
    let _ = sys::wait(Some(server));
    (failures == 0).then_some(cycles)
}

/// The child of `fault_roundtrip`: calls its handle 0 once (the go signal, once its exception
/// endpoint is set), then runs `ud2` for ever, each resumed past by the handler.
fn faulter() -> ! {
    let _ = Endpoint::from_raw(0).call(&Message::default());
    // SAFETY: each `ud2` goes to the exception handler, which resumes the loop past it (or
    // kills the process); no memory is touched.
    unsafe { core::arch::asm!("2:", "ud2", "jmp 2b", options(noreturn, nomem, nostack)) }
}

/// `fault_roundtrip`: instructions per fault → handler → resume round.
fn fault_roundtrip() -> Option<u64> {
    use userlib::exception::{self, Exception};
    let endpoint = Endpoint::create().ok()?;
    let child = spawn_self(&["bench", "--faulter"], &[endpoint.handle().raw() as u32]).ok()?;
    let mut room = [0u8; exception::ROOM];
    let started = (|| {
        exception::set(child.handle, Some(&endpoint)).ok()?;
        endpoint.recv(&mut [], FOREVER).ok()?.reply?.send(&Message::default()).ok()?;
        endpoint.recv(&mut room, FOREVER).ok()
    })();
    // Past the two-byte `ud2`.
    let cycles = resume_rounds(&endpoint, &mut room, started, |request, room| {
        Exception::decode(request, room).map(|fault| Registers { rip: fault.registers.rip + 2, ..fault.registers })
    });
    let _ = sys::kill(child);
    let _ = sys::wait(Some(child));
    cycles
}

/// Instructions per round of a handler answering a stopped child on `endpoint`: the request
/// pending (the first one received into `room` already) answered RESUME with the registers
/// `resumed` makes of it, and the next one received, [`FAULT_ROUNDS`] times. `None` if a
/// round had no request or `resumed` none.
fn resume_rounds(
    endpoint: &Endpoint,
    room: &mut [u8; userlib::exception::ROOM],
    first: Option<userlib::ipc::Request>,
    mut resumed: impl FnMut(&userlib::ipc::Request, &[u8]) -> Option<Registers>,
) -> Option<u64> {
    let mut pending = first;
    let mut failures = 0;
    let cycles = cycles_per_round(FAULT_ROUNDS, || {
        let Some(request) = pending.take() else {
            failures += 1;
            return;
        };
        let Some(registers) = resumed(&request, &room[..]) else {
            failures += 1;
            return;
        };
        let bytes = registers.to_bytes();
        let answer = Message::new(userlib::exception::RESUME, [0; 4]);
        let mut transfer = Transfer { send: &bytes, receive: Some(&mut room[..]), ..Transfer::default() };
        pending = endpoint.reply_recv(request.reply, &answer, &mut transfer, FOREVER).ok();
    });
    (failures == 0).then_some(cycles)
}

/// The source of `cow_copy_64` (and, with more `pages`, of the long copy): writes its pages,
/// maps a stack for its copies, calls its handle 0 once (ready), then sleeps until killed.
fn cow_source(pages: u64) -> ! {
    let mapped = sys::mmap(COW_DATA, pages * 4096, abi::PROT_READ | abi::PROT_WRITE) == Ok(COW_DATA)
        && sys::mmap(COW_STACK, COW_STACK_BYTES, abi::PROT_READ | abi::PROT_WRITE) == Ok(COW_STACK);
    if mapped {
        for page in 0..pages {
            // SAFETY: the pages were just mapped writable for this process alone.
            unsafe { core::ptr::write_volatile((COW_DATA + page * 4096) as *mut u64, page) };
        }
        let _ = Endpoint::from_raw(0).call(&Message::default());
    }
    loop {
        let _ = sys::sleep_ms(1000);
    }
}

/// Where a copy of `cow_source` starts: writes a word to each of the pages, then exits.
extern "C" fn cow_copy_writes() -> ! {
    for page in 0..COW_PAGES {
        // SAFETY: the copy has the source's pages, mapped writable for it.
        unsafe { core::ptr::write_volatile((COW_DATA + page * 4096 + 8) as *mut u64, page) };
    }
    sys::exit(0)
}

/// The registers a copy of `cow_source` starts with: at [`cow_copy_writes`].
fn cow_copy_registers() -> Registers {
    Registers {
        rip: cow_copy_writes as *const () as u64,
        // As a `call` would leave it: 8 below a 16-byte boundary.
        rsp: COW_STACK + COW_STACK_BYTES - 8,
        rflags: 0x202,
        ..Registers::default()
    }
}

/// Starts `bench --cow-source` (`big`: `--cow-source-big`) and returns it once its pages
/// are written.
fn start_cow_source(big: bool) -> Option<sys::Child> {
    let endpoint = Endpoint::create().ok()?;
    let role = if big { "--cow-source-big" } else { "--cow-source" };
    let source = spawn_self(&["bench", role], &[endpoint.handle().raw() as u32]).ok()?;
    // The call comes once its pages are written; its reply handle is dropped unanswered.
    if endpoint.recv(&mut [], FOREVER).is_ok() {
        return Some(source);
    }
    let _ = sys::kill(source);
    let _ = sys::wait(Some(source));
    None
}

/// Copies `source` once and waits for the copy; whether it exited 0.
fn copy_and_wait(source: sys::Child) -> bool {
    sys::process_copy(source.handle, &cow_copy_registers(), None)
        .is_ok_and(|copy| sys::wait(Some(copy)).is_ok_and(|(_, info)| info.status == 0))
}

/// `cow_copy_64`: instructions per copy of a 64-page process, the copy's first write to
/// each page, its exit and the wait for it.
fn cow_copy_64() -> Option<u64> {
    let source = start_cow_source(false)?;
    let mut failures = 0;
    let cycles = cycles_per_round(COPY_ROUNDS, || failures += u32::from(!copy_and_wait(source)));
    let _ = sys::kill(source);
    let _ = sys::wait(Some(source));
    (failures == 0).then_some(cycles)
}

/// The child of `syscall_message`: `mov eax, 1000; syscall; jmp` back, for ever.
const SYSCALL_LOOP: [u8; 9] = [0xb8, 0xe8, 0x03, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7];

/// `syscall_message`: instructions per syscall → handler → resume round of a process in
/// syscall mode.
fn syscall_message() -> Option<u64> {
    use userlib::exception::{self, Syscall};
    let endpoint = Endpoint::create().ok()?;
    let job = OwnedHandle::from_raw(sys::job_create(None).ok()?);
    exception::set_job(job.raw(), Some(&endpoint), exception::SYSCALLS).ok()?;
    let child = process::spawn_code(&SYSCALL_LOOP, "syscall-loop", Some(job.raw())).ok()?;
    let mut room = [0u8; exception::ROOM];
    let first = endpoint.recv(&mut room, FOREVER).ok();
    // The result: the number plus one.
    let cycles = resume_rounds(&endpoint, &mut room, first, |request, room| {
        Syscall::decode(request, room).map(|call| Registers { rax: call.number + 1, ..call.registers })
    });
    let _ = sys::kill(child);
    let _ = sys::wait(Some(child));
    cycles
}

/// `notify_wait`: instructions from a `signal` to the waiter running, halved from a
/// ping-pong.
fn notify_wait() -> Option<u64> {
    let (ping, pong) = (Notification::create().ok()?, Notification::create().ok()?);
    let handles = [ping.handle().raw() as u32, pong.handle().raw() as u32];
    let partner = spawn_self(&["bench", "--notified"], &handles).ok()?;
    let mut failures = 0;
    let cycles = cycles_per_round(IPC_ROUNDS, || {
        failures += u32::from(ping.signal(1).is_err() || pong.wait(FOREVER).is_err());
    });
    let _ = sys::kill(partner);
    let _ = sys::wait(Some(partner));
    (failures == 0).then_some(cycles / 2)
}

/// `bench --driver`: COM2's driver for `irq_to_driver`, with the line as handle 0, the ports
/// as 1 and the notification to answer on as 2. Each interrupt: the TSC at once, sent back
/// as bits; then the interrupt cleared and the line unmasked.
fn driver() -> i32 {
    let (Ok(interrupts), answer) = (Notification::create(), Notification::from_raw(2)) else { return 1 };
    if sys::irq_bind(0, interrupts.handle().raw(), 1).is_err() || sys::ioports_enable(1).is_err() {
        return 1;
    }
    loop {
        if interrupts.wait(FOREVER).is_err() {
            return 1;
        }
        let now = timestamp();
        // Reading the identification clears the transmitter interrupt; disabling it keeps the
        // line quiet until the next round enables it again.
        let _ = read_port(COM2_INTERRUPT_ID);
        write_port(COM2_INTERRUPT_ENABLE, 0);
        if sys::irq_ack(0).is_err() || answer.signal(now & !(1 << 63)).is_err() {
            return 1;
        }
    }
}

/// Cycles from COM2's interrupt being raised to its driver running; `None` without COM2's
/// handles or if a round failed.
fn irq_to_driver() -> Option<u64> {
    sys::ioports_enable(SPARE_PORTS).ok()?;
    let answer = Notification::create().ok()?;
    let driver = spawn_self(&["bench", "--driver"], &[SPARE_IRQ as u32, SPARE_PORTS as u32, answer.handle().raw() as u32]).ok()?;
    write_port(COM2_MODEM_CONTROL, OUT2);
    let mut total = 0;
    let mut failed = false;
    for _ in 0..IRQ_ROUNDS {
        let start = timestamp();
        write_port(COM2_INTERRUPT_ENABLE, TRANSMITTER_EMPTY);
        match answer.wait(FOREVER) {
            Ok(arrived) if arrived > start => total += arrived - start,
            _ => failed = true,
        }
    }
    let _ = sys::kill(driver);
    let _ = sys::wait(Some(driver));
    (!failed).then_some(total / IRQ_ROUNDS)
}

/// Cycles of one 4 KiB `write` of text to standard output (the console server).
fn console_write_4k() -> Option<u64> {
    let line = b"console_write_4k: 4 KiB of text lines through the console server, 64 bytes each
";
    let mut text = [0u8; 4096];
    for (index, byte) in text.iter_mut().enumerate() {
        *byte = if index % 64 == 63 { b'\n' } else { line[index % 64] };
    }
    let mut failed = false;
    let cycles = cycles_per_round(CONSOLE_ROUNDS, || failed |= sys::write(userlib::io::STDOUT, &text) != Ok(text.len()));
    (!failed).then_some(cycles)
}

fn main() -> i32 {
    match args().get(1).copied() {
        Some("--driver") => return driver(),
        Some("--exit") => return 0,
        Some("--yield") => {
            for _ in 0..YIELD_ROUNDS {
                sys::yield_now();
            }
            return 0;
        }
        Some("--yield-fpu") => {
            let avx = userlib::float::avx_usable();
            fill_vector_registers(avx);
            for _ in 0..YIELD_ROUNDS {
                change_vector_registers(avx);
                sys::yield_now();
            }
            return 0;
        }
        Some("--serve") => serve(false),
        Some("--serve-4k") => serve(true),
        Some("--notified") => notified(),
        Some("--pong") => return pong(),
        Some("--faulter") => faulter(),
        Some("--cow-source") => cow_source(COW_PAGES),
        Some("--cow-source-big") => cow_source(COW_BIG_PAGES),
        _ => {}
    }
    // Read before anything is measured: `spawn_wait` starts `bench` from it.
    if userlib::testing::own_image().is_err() {
        println!("bench: cannot read its own image");
        return 1;
    }
    println!("bench: null_syscall {}", null_call(EntryPath::Syscall));
    println!("bench: null_int80 {}", null_call(EntryPath::Int80));

    let Ok(partner) = spawn_self(&["bench", "--yield"], &[]) else {
        println!("bench: cannot spawn the yield partner");
        return 1;
    };
    // Both processes yield YIELD_ROUNDS times, so each round here is two switches.
    let per_round = cycles_per_round(YIELD_ROUNDS, sys::yield_now);
    let _ = sys::wait(Some(partner));
    println!("bench: yield_switch {}", per_round / 2);
    for (name, figure) in [("thread_switch", thread_switch()), ("futex_pingpong", futex_pingpong())] {
        match figure {
            Some(figure) => println!("bench: {name} {figure}"),
            None => {
                println!("bench: {name} failed");
                return 1;
            }
        }
    }

    let Ok(partner) = spawn_self(&["bench", "--yield-fpu"], &[]) else {
        println!("bench: cannot spawn the yield partner");
        return 1;
    };
    let avx = userlib::float::avx_usable();
    fill_vector_registers(avx);
    let per_round = cycles_per_round(YIELD_ROUNDS, || {
        change_vector_registers(avx);
        sys::yield_now();
    });
    let _ = sys::wait(Some(partner));
    println!("bench: yield_switch_fpu {}", per_round / 2);

    let mut failures = 0;
    let spawn_wait = cycles_per_round(SPAWN_ROUNDS, || match spawn_self(&["bench", "--exit"], &[]) {
        Ok(child) => {
            let _ = sys::wait(Some(child));
        }
        Err(_) => failures += 1,
    });
    println!("bench: spawn_wait {spawn_wait}");
    let spawn_file_wait = cycles_per_round(SPAWN_ROUNDS, || match process::spawn_child("/bin/true", &["true"], &[]) {
        Ok(child) => failures += u32::from(!sys::wait(Some(child)).is_ok_and(|(_, info)| info.status == 0)),
        Err(_) => failures += 1,
    });
    println!("bench: spawn_file_wait {spawn_file_wait}");

    let map_touch_unmap = cycles_per_round(MAP_ROUNDS, || match sys::mmap(0, 4096, abi::PROT_READ | abi::PROT_WRITE) {
        Ok(address) => {
            // SAFETY: the page was just mapped writable for this process and nothing else
            // refers to it; it is unmapped right after the write.
            unsafe {
                core::ptr::write_volatile(address as *mut u8, 1);
                let _ = sys::munmap(address, 4096);
            }
        }
        Err(_) => failures += 1,
    });
    println!("bench: map_touch_unmap {map_touch_unmap}");

    for (name, figure) in [
        ("ipc_call", ipc_round_trip(false)),
        ("ipc_call_4k", ipc_round_trip(true)),
        ("fault_roundtrip", fault_roundtrip()),
        ("cow_copy_64", cow_copy_64()),
        ("syscall_message", syscall_message()),
        ("notify_wait", notify_wait()),
        ("pipe_pingpong", pipe_pingpong()),
        ("irq_to_driver", irq_to_driver()),
        ("console_write_4k", console_write_4k()),
    ] {
        match figure {
            Some(figure) => println!("bench: {name} {figure}"),
            None => failures += 1,
        }
    }
    match file_read_1m() {
        Some(hundredths) => println!("bench: file_read_1m {}.{:02}", hundredths / 100, hundredths % 100),
        None => failures += 1,
    }

    failures += long_operations();
    match sys::sysinfo() {
        Ok(info) => println!("bench: longest_masked_ns {}", info.longest_masked_ns),
        Err(_) => failures += 1,
    }
    if failures > 0 {
        println!("bench: {failures} operations failed");
        return 1;
    }
    0
}

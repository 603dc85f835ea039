//! In-kernel tests: ring-0 checks that need the real machine (paging, interrupts, the
//! double-fault stack), run in QEMU instead of the first process.
//!
//! The launcher's `--ktest NAME` passes `NAME` through fw_cfg: `all` runs every test in
//! [`TESTS`], another name runs that test alone. Some tests end the boot, so each needs its
//! own: `stack_overflow` overflows the boot stack and `process_stack_overflow` a process-type
//! kernel stack (both must end in a double fault on its own stack, reported as such),
//! `free_running_stack` frees the kernel stack it runs on (which must panic),
//! `machine_check` raises vector 18 (which must end in a panic naming it), and `panic`
//! panics on purpose. Each test prints `ktest NAME ... ok` or `... FAILED: why`; the run ends with
//! `ktest: N passed, M failed` and exit status 0 only when nothing failed.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};

use ::x86_64::VirtAddr;
use ::x86_64::structures::paging::PageTableFlags;
use abi::errno::EFAULT;

use crate::arch::kernel_lock::{self, Pause};
use crate::arch::{cpu, qemu, smp, trap};
use crate::mm::address_space::{AddressSpace, UserRights};
use crate::mm::kernel_stack::{self, Context, KernelStack};
use crate::mm::paging::ScratchPage;
use crate::mm::user_memory::{ProcessMemory, UserMemory};
use crate::mm::{frame, paging};
use crate::syscall::usercopy::UserSlice;
use crate::task::executor;
use crate::{println, time};

type TestResult = Result<(), String>;

/// An in-kernel test: its name and its body.
type Test = (&'static str, fn() -> TestResult);

macro_rules! ensure {
    ($condition:expr, $($message:tt)*) => {
        if !$condition {
            return Err(format!($($message)*));
        }
    };
}

/// Halts until an interrupt, with the big kernel lock released meanwhile (as the idle loop
/// does: an interrupt from code that ran with interrupts enabled takes the lock).
fn wait_for_interrupt() {
    kernel_lock::release_for(Pause::Halt);
}

/// Every test `--ktest all` runs, in order.
pub const TESTS: &[Test] = &[
    ("heap_box", heap_box),
    ("heap_large_vec", heap_large_vec),
    ("heap_reuses_freed_memory", heap_reuses_freed_memory),
    ("map_page_and_read_back", map_page_and_read_back),
    ("breakpoint_returns", breakpoint_returns),
    ("page_fault_reports_address", page_fault_reports_address),
    ("timer_ticks_advance", timer_ticks_advance),
    ("executor_future_woken_by_interrupt", executor_future_woken_by_interrupt),
    ("address_space_frees_every_frame", address_space_frees_every_frame),
    ("checked_user_ranges_stop_holding_when_pages_go", checked_user_ranges_stop_holding_when_pages_go),
    ("kernel_stack_frees_every_frame", kernel_stack_frees_every_frame),
    ("kernel_stack_has_guard_page", kernel_stack_has_guard_page),
    ("user_pages_never_writable_and_executable", user_pages_never_writable_and_executable),
    ("kernel_debug_trap_continues", kernel_debug_trap_continues),
    ("nmi_vector_counts_and_returns", nmi_vector_counts_and_returns),
    ("interrupt_stacks_have_guard_pages", interrupt_stacks_have_guard_pages),
    ("kernel_stack_knows_when_it_runs", kernel_stack_knows_when_it_runs),
    ("clock_keeps_time_with_interrupts_masked", clock_keeps_time_with_interrupts_masked),
    ("every_listed_cpu_runs_and_takes_timer_interrupts", every_listed_cpu_runs_and_takes_timer_interrupts),
];

/// Which overflow a stack-overflow test is waiting for.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum ExpectedOverflow {
    None = 0,
    BootStack = 1,
    ProcessStack = 2,
}

static EXPECTED_OVERFLOW: AtomicU8 = AtomicU8::new(ExpectedOverflow::None as u8);

/// The stack `free_running_stack` runs on and frees.
static STACK_TO_FREE: spin::Mutex<Option<KernelStack>> = spin::Mutex::new(None);

/// Runs the selected tests and ends QEMU with the result.
pub fn run(selection: &str) -> ! {
    let selection = selection.trim();
    match selection {
        "stack_overflow" => stack_overflow(),
        "process_stack_overflow" => process_stack_overflow(),
        "free_running_stack" => free_running_stack(),
        "machine_check" => machine_check(),
        "panic" => deliberate_panic(),
        _ => {}
    }
    let chosen: Vec<_> = TESTS.iter().filter(|(name, _)| selection == "all" || *name == selection).collect();
    if chosen.is_empty() {
        println!("ktest: no test named {selection:?}");
        qemu::exit(2);
    }
    let mut failed = 0;
    for (name, test) in &chosen {
        match test() {
            Ok(()) => println!("ktest {name} ... ok"),
            Err(why) => {
                failed += 1;
                println!("ktest {name} ... FAILED: {why}");
            }
        }
    }
    println!("ktest: {} passed, {failed} failed", chosen.len() - failed);
    qemu::exit(if failed == 0 { 0 } else { 1 })
}

/// Whether a stack-overflow test is running (the double-fault handler asks).
pub fn expecting_double_fault() -> bool {
    EXPECTED_OVERFLOW.load(Ordering::Relaxed) != ExpectedOverflow::None as u8
}

/// Ends a stack-overflow test: it passes if the double fault was reported for the stack it
/// overflowed (`overflowed_slot`: the kernel stack whose guard page the stack pointer hit).
/// Runs in the double-fault handler, so it prints without taking the console's locks.
pub fn finish_double_fault_test(overflowed_slot: Option<usize>) -> ! {
    let (name, passed) = match EXPECTED_OVERFLOW.load(Ordering::Relaxed) {
        expected if expected == ExpectedOverflow::ProcessStack as u8 => (
            "process_stack_overflow",
            overflowed_slot.is_some_and(|slot| kernel_stack::running().stack_slot() == Some(slot)),
        ),
        _ => ("stack_overflow", overflowed_slot.is_none()),
    };
    if passed {
        crate::klog::print_panic(format_args!("ktest {name} ... ok\nktest: 1 passed, 0 failed\n"));
        qemu::exit(0)
    }
    crate::klog::print_panic(format_args!(
        "ktest {name} ... FAILED: the double fault named slot {overflowed_slot:?}\nktest: 0 passed, 1 failed\n"
    ));
    qemu::exit(1)
}

/// Recurses until the stack runs out.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 16];
    core::hint::black_box(&frame);
    recurse(depth + 1) + frame[3]
}

/// Panics on purpose; never inlined, so backtraces must show it by name.
#[inline(never)]
fn deliberate_panic() -> ! {
    panic!("deliberate panic requested by --ktest panic");
}

fn stack_overflow() -> ! {
    EXPECTED_OVERFLOW.store(ExpectedOverflow::BootStack as u8, Ordering::Relaxed);
    println!("ktest stack_overflow: recursing until the guard page");
    let depth = recurse(0);
    panic!("recursion returned {depth} instead of overflowing");
}

/// Overflows a kernel stack of the kind every process gets (same pool, same guard page):
/// deep recursion on it must end in a double fault that names that stack.
fn process_stack_overflow() -> ! {
    extern "C" fn overflow() -> ! {
        let depth = recurse(0);
        panic!("recursion returned {depth} instead of overflowing");
    }
    EXPECTED_OVERFLOW.store(ExpectedOverflow::ProcessStack as u8, Ordering::Relaxed);
    println!("ktest process_stack_overflow: recursing on a process kernel stack until its guard page");
    let stack = KernelStack::new_for_kernel(overflow).expect("no kernel stack for the test");
    let context = stack.context();
    core::mem::forget(stack);
    kernel_stack::switch_to(context);
    unreachable!("the overflowing context came back");
}

/// Frees the kernel stack the CPU runs on, which must panic instead of unmapping it.
fn free_running_stack() -> ! {
    extern "C" fn free_own_stack() -> ! {
        let stack = STACK_TO_FREE.lock().take();
        println!("ktest free_running_stack: freeing the stack this code runs on");
        drop(stack);
        println!("ktest free_running_stack ... FAILED: the running stack was freed");
        qemu::exit(1)
    }
    let stack = KernelStack::new_for_kernel(free_own_stack).expect("no kernel stack for the test");
    let context = stack.context();
    *STACK_TO_FREE.lock() = Some(stack);
    kernel_stack::switch_to(context);
    unreachable!("the freeing context came back");
}

/// Raises the machine-check vector, which runs on its own stack and must end the kernel with
/// a report that names it.
fn machine_check() -> ! {
    println!("ktest machine_check: raising vector 18");
    trap::raise_machine_check_for_test();
    println!("ktest machine_check ... FAILED: the kernel carried on after a machine check");
    qemu::exit(1)
}

fn heap_box() -> TestResult {
    let value = Box::new(41u64);
    ensure!(*value + 1 == 42, "boxed value is {}", *value);
    Ok(())
}

fn heap_large_vec() -> TestResult {
    let values: Vec<u64> = (0..10_000).collect();
    ensure!(values.iter().sum::<u64>() == 10_000 * 9_999 / 2, "sum of 0..10000 is wrong");
    Ok(())
}

fn heap_reuses_freed_memory() -> TestResult {
    let before = crate::mm::heap_stats().used_bytes;
    for round in 0..100_000u64 {
        let value = Box::new(round);
        ensure!(*value == round, "box holds {} instead of {round}", *value);
    }
    let after = crate::mm::heap_stats().used_bytes;
    ensure!(after <= before + 64, "heap use grew from {before} to {after} bytes over 100k freed boxes");
    Ok(())
}

/// An otherwise unused kernel-half address for mapping tests (PML4 entry 320).
const TEST_PAGE: u64 = 0xffff_a000_0000_0000;

fn map_page_and_read_back() -> TestResult {
    let address = VirtAddr::new(TEST_PAGE);
    let mut page = ScratchPage::new(address).map_err(|error| format!("mapping failed: {error:?}"))?;
    for (index, byte) in page.bytes_mut().iter_mut().enumerate() {
        *byte = (index % 251) as u8;
    }
    let same_frame = page.bytes_through_physical_map().iter().enumerate().all(|(index, &byte)| byte == (index % 251) as u8);
    let translated = paging::kernel_translate(address);
    let frame = page.frame();
    drop(page);
    ensure!(same_frame, "bytes written through the new page differ through the physical map");
    ensure!(translated == Some(frame.start_address()), "translation gave {translated:?}, expected {frame:?}");
    ensure!(paging::kernel_translate(address).is_none(), "page still mapped after unmap");
    Ok(())
}

/// `int3` in ring 0 is taken (the trap handler logs `breakpoint at RIP, continuing`, with a
/// RIP inside this function) and returns here.
fn breakpoint_returns() -> TestResult {
    const REPORT: &str = "breakpoint at ";
    let mut before = [0u8; 256];
    let before_len = crate::log_ring::read_newest(&mut before);
    ::x86_64::instructions::interrupts::int3();
    let mut after = [0u8; 256];
    let after_len = crate::log_ring::read_newest(&mut after);
    let newest = core::str::from_utf8(&after[..after_len]).unwrap_or_default();
    ensure!(before[..before_len] != after[..after_len], "the breakpoint logged nothing: the trap was not taken");
    let line = newest.lines().last().unwrap_or_default().trim_end();
    let rip = line
        .split_once(REPORT)
        .and_then(|(_, rest)| rest.strip_suffix(", continuing"))
        .and_then(|hex| u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| format!("the newest log line is {line:?}, not the breakpoint's report"))?;
    let here = breakpoint_returns as fn() -> TestResult as usize as u64;
    ensure!((here..here + 0x1000).contains(&rip), "the breakpoint was reported at {rip:#x}, outside this test ({here:#x})");
    Ok(())
}

fn page_fault_reports_address() -> TestResult {
    let address = TEST_PAGE + 0x1234;
    match trap::probe_read_byte(address) {
        Ok(value) => Err(format!("read {value:#x} from an unmapped page")),
        Err(fault) => {
            ensure!(fault.vector == 14, "vector {} instead of a page fault", fault.vector);
            ensure!(fault.address == Some(address), "reported address {:?}, expected {address:#x}", fault.address);
            ensure!(fault.error_code & 1 == 0, "error code {:#x} claims the page was present", fault.error_code);
            ensure!(format!("{fault}").contains("page not present"), "report lacks the decoded cause: {fault}");
            Ok(())
        }
    }
}

fn timer_ticks_advance() -> TestResult {
    let start = time::ticks();
    let start_ns = time::uptime_ns();
    for _ in 0..5 {
        wait_for_interrupt();
    }
    let mut spins = 0;
    while time::ticks() < start + 5 && spins < 100_000 {
        wait_for_interrupt();
        spins += 1;
    }
    ensure!(time::ticks() >= start + 5, "ticks went from {start} to {} only", time::ticks());
    ensure!(time::uptime_ns() > start_ns, "uptime did not advance");
    Ok(())
}

fn executor_future_woken_by_interrupt() -> TestResult {
    static DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    let target = time::uptime_ns() + 3_000_000;
    let tasks_before = executor::task_count();
    executor::spawn(async move {
        time::time_reached(target).await;
        DONE.store(true, Ordering::Relaxed);
    });
    let deadline = time::ticks() + 1000;
    while !DONE.load(Ordering::Relaxed) && time::ticks() < deadline {
        executor::run_ready();
        if !executor::has_ready() {
            wait_for_interrupt();
        }
    }
    ensure!(DONE.load(Ordering::Relaxed), "the future never completed");
    ensure!(executor::task_count() == tasks_before, "the finished task was not removed");
    Ok(())
}

fn address_space_frees_every_frame() -> TestResult {
    let before = frame::free_count();
    {
        let mut space = AddressSpace::new().map_err(|error| format!("{error:?}"))?;
        // Spread over several page tables: two far-apart ranges.
        for start in [0x40_0000u64, 0x7f00_0000_0000] {
            space.map_zeroed(VirtAddr::new(start), 40, UserRights::ReadWrite, &mut || {}).map_err(|error| format!("{error:?}"))?;
            space.write(VirtAddr::new(start + 100), b"enigma").map_err(|error| format!("{error:?}"))?;
        }
        ensure!(space.check_user_access(0x40_0000, 40 * 4096, true), "mapped range not accessible");
        ensure!(!space.check_user_access(0x40_0000, 41 * 4096, false), "unmapped page reported accessible");
        ensure!(frame::free_count() < before - 80, "mapping 80 pages used only {} frames", before - frame::free_count());
    }
    let after = frame::free_count();
    ensure!(after == before, "lost {} frames", before as i64 - after as i64);
    Ok(())
}

/// A range `usercopy` checked stays usable while its address space is the active one and
/// loses no page; after an unmap in it, or with another address space loaded, a copy through
/// it is `EFAULT` and writes nothing.
fn checked_user_ranges_stop_holding_when_pages_go() -> TestResult {
    let base = 0x40_0000u64;
    let memory_with_pages = || -> Result<ProcessMemory, String> {
        let mut space = AddressSpace::new().map_err(|error| format!("{error:?}"))?;
        space.map_zeroed(VirtAddr::new(base), 2, UserRights::ReadWrite, &mut || {}).map_err(|error| format!("{error:?}"))?;
        Ok(ProcessMemory::new(UserMemory::new(space, base + 2 * 4096)))
    };
    let (first, second) = (memory_with_pages()?, memory_with_pages()?);
    let outcome = (|| -> TestResult {
        first.activate();
        let range = UserSlice::new(base + 4096 - 4, 8).check_writable().map_err(|errno| format!("check: {errno}"))?;
        ensure!(range.copy_from(0, b"held").is_ok(), "a copy through a range just checked failed");
        second.activate();
        ensure!(range.copy_from(0, b"lost") == Err(EFAULT), "a copy went to another address space");
        first.activate();
        ensure!(range.copy_from(4, b"back").is_ok(), "the range failed back in its own address space");
        first.lock().space().unmap(VirtAddr::new(base + 4096), 1, &mut || {}).map_err(|error| format!("{error:?}"))?;
        ensure!(range.copy_from(0, b"gone") == Err(EFAULT), "a copy went through a range that lost a page");
        ensure!(UserSlice::new(base, 8).check_writable().is_ok(), "the page still mapped is refused");
        let mut read = [0u8; 4];
        UserSlice::new(base + 4096 - 4, 4).read_into(&mut read).map_err(|errno| format!("read: {errno}"))?;
        ensure!(&read == b"held", "the refused copies wrote: {read:?}");
        Ok(())
    })();
    // The kernel's own table again, before either address space goes.
    first.lock().space().deactivate();
    second.lock().space().deactivate();
    outcome
}

fn kernel_stack_frees_every_frame() -> TestResult {
    let new_stack = || KernelStack::new_for_user(trap::TrapFrame::new_user(0x40_0000, 0x7fff_0000_0000));
    let before = frame::free_count();
    let stacks: Vec<KernelStack> = (0..8)
        .map(|_| new_stack())
        .collect::<Option<_>>()
        .ok_or("kernel stack allocation failed")?;
    ensure!(frame::free_count() < before, "stacks used no frames");
    drop(stacks);
    let after = frame::free_count();
    ensure!(after == before, "lost {} frames", before as i64 - after as i64);
    Ok(())
}

fn kernel_stack_has_guard_page() -> TestResult {
    let stack = KernelStack::new_for_user(trap::TrapFrame::new_user(0x40_0000, 0x7fff_0000_0000))
        .ok_or("kernel stack allocation failed")?;
    let guard = stack.guard_page();
    ensure!(paging::kernel_translate(guard).is_none(), "guard page {guard:?} is mapped");
    ensure!(paging::kernel_translate(guard + 4096u64).is_some(), "lowest stack page is not mapped");
    ensure!(paging::kernel_translate(stack.top() - 8u64).is_some(), "top of stack is not mapped");
    Ok(())
}

fn user_pages_never_writable_and_executable() -> TestResult {
    let mut space = AddressSpace::new().map_err(|error| format!("{error:?}"))?;
    let base = 0x40_0000u64;
    for (index, rights) in [UserRights::ReadOnly, UserRights::ReadWrite, UserRights::ReadExecute].into_iter().enumerate() {
        let address = base + index as u64 * 4096;
        space.map_zeroed(VirtAddr::new(address), 1, rights, &mut || {}).map_err(|error| format!("{error:?}"))?;
        let flags = space.page_flags(VirtAddr::new(address)).ok_or("mapped page has no flags")?;
        let writable = flags.contains(PageTableFlags::WRITABLE);
        let executable = !flags.contains(PageTableFlags::NO_EXECUTE);
        ensure!(!(writable && executable), "{rights:?} page is W+X: {flags:?}");
        ensure!(writable == (rights == UserRights::ReadWrite), "{rights:?} page writable = {writable}");
        ensure!(executable == (rights == UserRights::ReadExecute), "{rights:?} page executable = {executable}");
        ensure!(flags.contains(PageTableFlags::USER_ACCESSIBLE), "{rights:?} page not user-accessible");
    }
    Ok(())
}

fn kernel_debug_trap_continues() -> TestResult {
    let before = trap::kernel_debug_traps();
    trap::single_step_one_instruction_for_test();
    let after = trap::kernel_debug_traps();
    ensure!(after == before + 1, "{} kernel debug traps counted for one single step", after - before);
    ensure!(!cpu::interrupts_enabled(), "interrupts came back enabled");
    Ok(())
}

fn nmi_vector_counts_and_returns() -> TestResult {
    let before = trap::nmi_count();
    trap::raise_nmi_vector_for_test();
    ensure!(trap::nmi_count() == before + 1, "the NMI handler did not count the NMI");
    Ok(())
}

fn interrupt_stacks_have_guard_pages() -> TestResult {
    let cpus = (0..cpu::MAX_CPUS).filter(|&cpu| smp::is_online(cpu));
    for (cpu, which) in cpus.flat_map(|cpu| crate::arch::gdt::InterruptStack::ALL.map(|which| (cpu, which))) {
        let top = crate::arch::gdt::interrupt_stack_top(cpu, which);
        ensure!(paging::kernel_translate(top - 8u64).is_some(), "{which:?} stack top {top:?} is not mapped");
        let guard = top - (kernel_stack::STACK_PAGES + 1) * 4096;
        ensure!(
            kernel_stack::guard_page_slot(guard).is_some(),
            "{which:?} stack (top {top:?}) is not a kernel stack with a guard page"
        );
        ensure!(paging::kernel_translate(guard).is_none(), "{which:?} stack's guard page {guard:?} is mapped");
    }
    Ok(())
}

/// What the context `kernel_stack_knows_when_it_runs` starts found on its own stack.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum SeenOnItsStack {
    NotYet = 0,
    RunningAndCurrent = 1,
    NotRunning = 2,
    NotCurrent = 3,
}

static SEEN_ON_ITS_STACK: AtomicU8 = AtomicU8::new(SeenOnItsStack::NotYet as u8);
/// The stack `kernel_stack_knows_when_it_runs` switches to.
static STACK_TO_RUN: spin::Mutex<Option<KernelStack>> = spin::Mutex::new(None);

/// Both sides: a stack nothing runs on says so, and a context running on its stack finds
/// that stack running and itself the CPU's current context.
fn kernel_stack_knows_when_it_runs() -> TestResult {
    extern "C" fn look_at_own_stack() -> ! {
        kernel_stack::finish_switch();
        let seen = match &*STACK_TO_RUN.lock() {
            Some(stack) if !stack.is_running() => SeenOnItsStack::NotRunning,
            Some(stack) if kernel_stack::running() != stack.context() => SeenOnItsStack::NotCurrent,
            Some(_) => SeenOnItsStack::RunningAndCurrent,
            None => SeenOnItsStack::NotRunning,
        };
        SEEN_ON_ITS_STACK.store(seen as u8, Ordering::Release);
        kernel_stack::switch_to(Context::idle());
        unreachable!("the test does not switch back to the stack it looked at");
    }
    let stack = KernelStack::new_for_user(trap::TrapFrame::new_user(0x40_0000, 0x7fff_0000_0000))
        .ok_or("kernel stack allocation failed")?;
    ensure!(!stack.is_running(), "a stack nothing runs on claims to be running");
    ensure!(cpu::index() == 0 && kernel_stack::running() == Context::idle(), "the tests do not run on the boot stack");
    let running = KernelStack::new_for_kernel(look_at_own_stack).ok_or("kernel stack allocation failed")?;
    let context = running.context();
    *STACK_TO_RUN.lock() = Some(running);
    SEEN_ON_ITS_STACK.store(SeenOnItsStack::NotYet as u8, Ordering::Release);
    kernel_stack::switch_to(context);
    drop(STACK_TO_RUN.lock().take());
    let seen = SEEN_ON_ITS_STACK.load(Ordering::Acquire);
    ensure!(seen != SeenOnItsStack::NotYet as u8, "the context on the new stack never ran");
    ensure!(seen != SeenOnItsStack::NotRunning as u8, "a stack the CPU runs on claims not to be running");
    ensure!(seen != SeenOnItsStack::NotCurrent as u8, "the context on the new stack is not the CPU's current one");
    Ok(())
}

fn clock_keeps_time_with_interrupts_masked() -> TestResult {
    // With interrupts masked no timer tick arrives, yet the clock must advance by the time
    // that really passed. Spin for 30 ms measured by the TSC (calibrated at boot) and compare.
    let ticks_before = time::ticks();
    let start = time::uptime_ns();
    let start_cycles = cpu::read_timestamp();
    while time::cycles_to_ns(cpu::read_timestamp() - start_cycles) < 30_000_000 {
        core::hint::spin_loop();
    }
    let elapsed = time::uptime_ns() - start;
    ensure!(time::ticks() == ticks_before, "timer ticks arrived with interrupts masked");
    ensure!((27_000_000..33_000_000).contains(&elapsed), "the clock says {elapsed} ns passed in a 30 ms spin");
    // Now let the pending tick in and check that uptime did not jump: it never depended on it.
    let before_ticks = time::uptime_ns();
    wait_for_interrupt();
    let after_ticks = time::uptime_ns();
    ensure!(after_ticks - before_ticks < 5_000_000, "uptime jumped by {} ns when a tick arrived", after_ticks - before_ticks);
    Ok(())
}

/// Every CPU the MADT lists came up, and each one takes timer interrupts: its count grows
/// while this CPU waits (other CPUs idle, and an idle CPU's timer runs a hundredfold slower,
/// so this waits up to two seconds).
fn every_listed_cpu_runs_and_takes_timer_interrupts() -> TestResult {
    let listed = smp::listed_count();
    ensure!(smp::online_count() == listed, "{} of the {listed} CPUs the MADT lists are running", smp::online_count());
    let cpus = 0..listed;
    ensure!(cpus.clone().all(smp::is_online), "CPUs 0 to {} are not all running", listed - 1);
    let before: Vec<u64> = cpus.clone().map(cpu::timer_interrupts).collect();
    let deadline = time::uptime_ns() + 2_000_000_000;
    let silent = || cpus.clone().filter(|&cpu| cpu::timer_interrupts(cpu) <= before[cpu]).collect::<Vec<_>>();
    while !silent().is_empty() && time::uptime_ns() < deadline {
        wait_for_interrupt();
    }
    let silent = silent();
    ensure!(silent.is_empty(), "no timer interrupt in two seconds on CPUs {silent:?}");
    Ok(())
}

//! In-kernel tests: ring-0 checks that need the real machine (paging, interrupts, the
//! double-fault stack), run in QEMU instead of the first process.
//!
//! The launcher's `--ktest NAME` passes `NAME` through fw_cfg: `all` runs every test in
//! [`TESTS`], another name runs that test alone, `stack_overflow` overflows the kernel stack
//! (it ends the boot, so it needs its own), and `panic` panics on purpose. Each test prints
//! `ktest NAME ... ok` or `... FAILED: why`; the run ends with `ktest: N passed, M failed`
//! and exit status 0 only when nothing failed.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use ::x86_64::VirtAddr;
use ::x86_64::structures::paging::PageTableFlags;

use crate::arch::x86_64::{cpu, qemu, trap};
use crate::console::input::{QUEUE_CAPACITY, SERIAL_QUEUE};
use crate::mm::address_space::{AddressSpace, UserRights};
use crate::mm::kernel_stack::KernelStack;
use crate::mm::paging::ScratchPage;
use crate::mm::{frame, paging};
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
    ("full_input_queue_drops_without_blocking", full_input_queue_drops_without_blocking),
    ("address_space_frees_every_frame", address_space_frees_every_frame),
    ("kernel_stack_frees_every_frame", kernel_stack_frees_every_frame),
    ("kernel_stack_has_guard_page", kernel_stack_has_guard_page),
    ("user_pages_never_writable_and_executable", user_pages_never_writable_and_executable),
];

static EXPECT_DOUBLE_FAULT: AtomicBool = AtomicBool::new(false);

/// Runs the selected tests and ends QEMU with the result.
pub fn run(selection: &str) -> ! {
    let selection = selection.trim();
    match selection {
        "stack_overflow" => stack_overflow(),
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

/// Whether the stack-overflow test is running (the double-fault handler asks).
pub fn expecting_double_fault() -> bool {
    EXPECT_DOUBLE_FAULT.load(Ordering::Relaxed)
}

/// Ends the stack-overflow test successfully.
pub fn finish_double_fault_test() -> ! {
    println!("ktest stack_overflow ... ok");
    println!("ktest: 1 passed, 0 failed");
    qemu::exit(0)
}

/// Panics on purpose; never inlined, so backtraces must show it by name.
#[inline(never)]
fn deliberate_panic() -> ! {
    panic!("deliberate panic requested by --ktest panic");
}

fn stack_overflow() -> ! {
    #[allow(unconditional_recursion)]
    fn recurse(depth: u64) -> u64 {
        let frame = [depth; 16];
        core::hint::black_box(&frame);
        recurse(depth + 1) + frame[3]
    }
    EXPECT_DOUBLE_FAULT.store(true, Ordering::Relaxed);
    println!("ktest stack_overflow: recursing until the guard page");
    let depth = recurse(0);
    panic!("recursion returned {depth} instead of overflowing");
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

fn breakpoint_returns() -> TestResult {
    ::x86_64::instructions::interrupts::int3();
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
        cpu::wait_for_interrupt();
    }
    let mut spins = 0;
    while time::ticks() < start + 5 && spins < 100_000 {
        cpu::wait_for_interrupt();
        spins += 1;
    }
    ensure!(time::ticks() >= start + 5, "ticks went from {start} to {} only", time::ticks());
    ensure!(time::uptime_ns() > start_ns, "uptime did not advance");
    Ok(())
}

fn executor_future_woken_by_interrupt() -> TestResult {
    static DONE: AtomicBool = AtomicBool::new(false);
    let target = time::ticks() + 3;
    let tasks_before = executor::task_count();
    executor::spawn(async move {
        time::tick_reached(target).await;
        DONE.store(true, Ordering::Relaxed);
    });
    let deadline = time::ticks() + 1000;
    while !DONE.load(Ordering::Relaxed) && time::ticks() < deadline {
        executor::run_ready();
        if !executor::has_ready() {
            cpu::wait_for_interrupt();
        }
    }
    ensure!(DONE.load(Ordering::Relaxed), "the future never completed");
    ensure!(executor::task_count() == tasks_before, "the finished task was not removed");
    Ok(())
}

fn full_input_queue_drops_without_blocking() -> TestResult {
    let dropped_before = SERIAL_QUEUE.dropped();
    let extra = 10;
    let accepted = (0..QUEUE_CAPACITY + extra).filter(|&index| SERIAL_QUEUE.push(index as u8)).count();
    let dropped = SERIAL_QUEUE.dropped() - dropped_before;
    let mut drained = 0;
    while SERIAL_QUEUE.try_pop().is_some() {
        drained += 1;
    }
    ensure!(accepted == QUEUE_CAPACITY, "{accepted} bytes accepted, capacity is {QUEUE_CAPACITY}");
    ensure!(dropped == extra as u64, "{dropped} bytes counted as dropped, expected {extra}");
    ensure!(drained == QUEUE_CAPACITY, "{drained} bytes drained");
    Ok(())
}

fn address_space_frees_every_frame() -> TestResult {
    let before = frame::free_count();
    {
        let mut space = AddressSpace::new().map_err(|error| format!("{error:?}"))?;
        // Spread over several page tables: two far-apart ranges.
        for start in [0x40_0000u64, 0x7f00_0000_0000] {
            space.map_zeroed(VirtAddr::new(start), 40, UserRights::ReadWrite).map_err(|error| format!("{error:?}"))?;
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
        space.map_zeroed(VirtAddr::new(address), 1, rights).map_err(|error| format!("{error:?}"))?;
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

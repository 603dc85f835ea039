//! Memory protection: writes to code and read-only data, execution of data, access to
//! unmapped, kernel and non-canonical memory, and stack overflow into the guard gap. Each
//! must kill only the child, with a page fault on exactly the address it touched, from the
//! instruction that touched it, with the error code that says how (or a `#GP` for a
//! non-canonical address, which has no page to fault on).

use alloc::string::String;
use alloc::vec;
use core::hint::black_box;

use abi::fault::{PF_INSTRUCTION, PF_PROTECTION, PF_USER, PF_WRITE};
use abi::memory::{USER_END, USER_STACK_GUARD, USER_STACK_TOP};
use abi::PROT_READ;
use userlib::check;
use userlib::sys;
use userlib::testing::{Case, Context, Expected, Outcome};

use crate::common::*;

/// Error codes of the page faults here: ring 3 read a page that is not there, wrote one,
/// fetched an instruction from one; and the same for a page that is there but lacks the
/// right (`PROTECTED`).
const READ_MISSING: u64 = PF_USER;
const WRITE_MISSING: u64 = PF_USER | PF_WRITE;
const FETCH_MISSING: u64 = PF_USER | PF_INSTRUCTION;
const READ_PROTECTED: u64 = PF_USER | PF_PROTECTION;
const WRITE_PROTECTED: u64 = PF_USER | PF_PROTECTION | PF_WRITE;
const FETCH_PROTECTED: u64 = PF_USER | PF_PROTECTION | PF_INSTRUCTION;

/// A read of `address` by [`peek`] that must fault with `error`.
fn read_fault(address: u64, error: u64) -> Expected {
    Expected::page_fault(address).at(peek_site()).error(error)
}

/// A write to `address` by [`poke`] that must fault with `error`.
fn write_fault(address: u64, error: u64) -> Expected {
    Expected::page_fault(address).at(poke_site()).error(error)
}

/// A call to `address` whose instruction fetch there must fault with `error`.
fn fetch_fault(address: u64, error: u64) -> Expected {
    Expected::page_fault(address).at(address).error(error)
}

/// A fetch that must fault with `FETCH_PROTECTED` somewhere in `start..end`.
fn fetch_fault_within((start, end): (u64, u64)) -> Expected {
    Expected::page_fault_within(start, end).at_within(start, end).error(FETCH_PROTECTED)
}

/// A write that must fault on the stack guard gap, below the stack.
fn overflow_fault() -> Expected {
    Expected::page_fault_within(STACK_BOTTOM - USER_STACK_GUARD, STACK_BOTTOM).error(WRITE_MISSING)
}

pub const CASES: &[Case] = userlib::cases![
    fault write_to_text => || write_fault(write_to_text as fn() -> Outcome as *const () as u64, WRITE_PROTECTED),
    fault write_to_rodata => || write_fault(RODATA_CODE.as_ptr() as u64, WRITE_PROTECTED),
    fault exec_stack => || fetch_fault_within((STACK_BOTTOM, USER_STACK_TOP)),
    fault exec_heap => || fetch_fault_within(heap_span()),
    fault exec_data => || fetch_fault(&raw const DATA_CODE as u64, FETCH_PROTECTED),
    fault exec_rodata => || fetch_fault(RODATA_CODE.as_ptr() as u64, FETCH_PROTECTED),
    fault exec_mmap_rw => || fetch_fault(FIXED_BASE, FETCH_PROTECTED),
    fault write_after_mprotect_read => || write_fault(FIXED_BASE, WRITE_PROTECTED),
    fault write_to_exec_page => || write_fault(FIXED_BASE, WRITE_PROTECTED),
    fault access_after_munmap => || read_fault(FIXED_BASE, READ_MISSING),
    fault access_after_brk_shrink => || {
        let (start, end) = heap_span();
        Expected::page_fault_within(start, end).at(peek_site()).error(READ_MISSING)
    },
    // Kernel pages are present but not user-accessible.
    fault read_kernel_memory => || read_fault(KERNEL_ADDRESS, READ_PROTECTED),
    fault write_kernel_memory => || write_fault(KERNEL_ADDRESS, WRITE_PROTECTED),
    fault jump_into_kernel => || fetch_fault(KERNEL_ADDRESS, FETCH_PROTECTED),
    fault read_noncanonical => || Expected::general_protection().at(peek_site()),
    // QEMU reports a call to a non-canonical address at the target, where the fetch fails;
    // hardware may report it at the `call`.
    fault jump_noncanonical => || Expected::general_protection().at(USER_END),
    fault null_read => || read_fault(0, READ_MISSING),
    fault null_write => || write_fault(0, WRITE_MISSING),
    fault null_call => || fetch_fault(0, FETCH_MISSING),
    fault read_stack_guard => || read_fault(STACK_GUARD_MIDDLE, READ_MISSING),
    fault stack_overflow => overflow_fault,
    fault stack_overflow_large_frame => overflow_fault,
];

/// A `ret` instruction in read-only, non-executable data.
static RODATA_CODE: [u8; 16] = [0xc3; 16];
/// A `ret` instruction in writable, non-executable data.
static mut DATA_CODE: [u8; 16] = [0xc3; 16];
/// An address in the middle of the stack's guard gap.
const STACK_GUARD_MIDDLE: u64 = STACK_BOTTOM - USER_STACK_GUARD / 2;

/// Maps the page at [`FIXED_BASE`] read-write with a `ret` in its first byte.
fn map_ret_page() -> Result<u64, String> {
    let page = map_page_at(FIXED_BASE)?;
    // SAFETY: the page was just mapped read-write.
    unsafe { core::ptr::write_volatile(page as *mut u8, 0xc3) };
    Ok(page)
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
    call_address(map_ret_page()?);
    Ok(())
}

fn write_after_mprotect_read() -> Outcome {
    let page = map_page_at(FIXED_BASE)?;
    // SAFETY: nothing references the page.
    unsafe { sys::mprotect(page, PAGE, PROT_READ) }.context("mprotect")?;
    check!(peek(page) == 0, "the read-only page does not read as zero");
    poke(page);
    Ok(())
}

fn write_to_exec_page() -> Outcome {
    let page = map_ret_page()?;
    // SAFETY: nothing references the page.
    unsafe { sys::mprotect(page, PAGE, RX) }.context("mprotect")?;
    // The page is executable now: its `ret` runs and comes back.
    call_address(page);
    poke(page);
    Ok(())
}

fn access_after_munmap() -> Outcome {
    let page = map_page_at(FIXED_BASE)?;
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
    black_box(peek(KERNEL_ADDRESS));
    Ok(())
}

fn write_kernel_memory() -> Outcome {
    poke(KERNEL_ADDRESS);
    Ok(())
}

fn jump_into_kernel() -> Outcome {
    call_address(KERNEL_ADDRESS);
    Ok(())
}

fn read_noncanonical() -> Outcome {
    black_box(peek(0xdead_beef_0000_0000));
    Ok(())
}

fn jump_noncanonical() -> Outcome {
    call_address(USER_END);
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
    black_box(peek(STACK_GUARD_MIDDLE));
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

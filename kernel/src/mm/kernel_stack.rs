//! Kernel stacks for processes, each with an unmapped guard page below it, and switching
//! between them.
//!
//! Stacks live in their own upper-half region, one fixed-size slot per stack: the slot's
//! lowest page is never mapped, so overflowing a kernel stack page-faults, and since that
//! fault cannot be pushed on the same stack, it becomes a double fault on the dedicated
//! interrupt stack, which reports it.
//!
//! Each slot has a saved stack pointer, and so does the boot stack (the idle loop's). A
//! [`Context`] names one of them. [`switch`] suspends the running context and resumes
//! another; it checks that the target is a live stack with a saved state, and a stack cannot
//! be freed while the CPU runs on it, so the scheduler can switch without `unsafe`.

use core::sync::atomic::{AtomicU64, Ordering};

use ::x86_64::VirtAddr;
use ::x86_64::structures::paging::{Page, PageTableFlags};
use spin::Mutex;

use crate::arch::x86_64::context::{prepare_kernel_stack, switch_context};
use crate::arch::x86_64::trap::TrapFrame;

use super::frame::FRAME_SIZE;
use super::paging::{map_kernel_page, unmap_kernel_page};

/// Start of the kernel-stack region (PML4 entry 304).
pub const KERNEL_STACKS_START: u64 = 0xffff_9800_0000_0000;
/// Mapped pages per stack (32 KiB).
pub const STACK_PAGES: u64 = 8;
/// Pages per slot: the guard page and the stack.
const SLOT_PAGES: u64 = STACK_PAGES + 1;
/// Most kernel stacks at once (processes plus those waiting to be freed).
pub const MAX_STACKS: usize = 128;

static SLOTS_IN_USE: Mutex<[bool; MAX_STACKS]> = Mutex::new([false; MAX_STACKS]);

/// Saved stack pointers: one per slot, then the boot stack's. Zero means "running, or no
/// saved state".
static SAVED_STACK_POINTERS: [AtomicU64; MAX_STACKS + 1] = [const { AtomicU64::new(0) }; MAX_STACKS + 1];

/// A suspended (or running) flow of control in the kernel: a process's kernel stack, or the
/// boot stack the idle loop runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// The stack the bootloader gave the kernel.
    Boot,
    /// The kernel stack in this slot.
    Stack(usize),
}

impl Context {
    fn saved(self) -> &'static AtomicU64 {
        match self {
            Self::Boot => &SAVED_STACK_POINTERS[MAX_STACKS],
            Self::Stack(slot) => &SAVED_STACK_POINTERS[slot],
        }
    }
}

/// Suspends `from` (which must be the running context) and resumes `to`. Returns when
/// something switches back to `from`.
pub fn switch(from: Context, to: Context) {
    assert_ne!(from, to, "switching a context to itself");
    if let Context::Stack(slot) = to {
        assert!(SLOTS_IN_USE.lock()[slot], "switching to a freed kernel stack");
    }
    let target = to.saved().swap(0, Ordering::AcqRel);
    assert_ne!(target, 0, "switching to a context with no saved state");
    // The target's state was saved by an earlier `switch` (or laid out by `new_for_user`) on a
    // stack that is still mapped (slot in use, or the boot stack) and that nothing runs on
    // (its saved value was non-zero, and is zero now that it runs again).
    // SAFETY: as above; `from.saved()` is a static, valid for the write; interrupts are
    // masked (the scheduler's callers run with them off).
    unsafe { switch_context(from.saved().as_ptr(), target) };
}

/// A mapped kernel stack. Dropping it unmaps the pages and frees their frames; it must not be
/// dropped while the CPU runs on it.
#[derive(Debug)]
pub struct KernelStack {
    slot: usize,
}

/// Creates the page tables that cover the whole kernel-stack region, so that creating and
/// freeing stacks later never allocates or keeps table frames: a process's life leaves the
/// free-frame count exactly where it was, from the first process on.
pub fn init() {
    let region_end = KERNEL_STACKS_START + MAX_STACKS as u64 * SLOT_PAGES * FRAME_SIZE;
    let table_span = 512 * FRAME_SIZE;
    let mut address = KERNEL_STACKS_START;
    while address < region_end {
        let page = Page::containing_address(VirtAddr::new(address));
        map_kernel_page(page, PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE)
            .expect("out of memory while preparing the kernel-stack tables");
        unmap_kernel_page(page).expect("unmapping a page just mapped");
        address += table_span;
    }
}

/// The stack part (without the guard page) of the kernel-stack slot that holds `address`,
/// if it is in the region. Says nothing about whether the slot is in use: a caller that
/// reads the stack must know it is, for example because the CPU runs on it.
pub fn stack_bounds(address: u64) -> Option<core::ops::Range<u64>> {
    let slot_size = SLOT_PAGES * FRAME_SIZE;
    let slot = address.checked_sub(KERNEL_STACKS_START)? / slot_size;
    if slot >= MAX_STACKS as u64 {
        return None;
    }
    let stack_start = KERNEL_STACKS_START + slot * slot_size + FRAME_SIZE;
    let stack_end = stack_start + STACK_PAGES * FRAME_SIZE;
    (stack_start..stack_end).contains(&address).then_some(stack_start..stack_end)
}

impl KernelStack {
    /// Maps a new stack whose first switch enters ring 3 with `frame`, or `None` when no slot
    /// or not enough memory is free.
    pub fn new_for_user(frame: TrapFrame) -> Option<Self> {
        let mut stack = Self::new()?;
        let stack_pointer = prepare_kernel_stack(stack.words_mut(), frame);
        stack.context().saved().store(stack_pointer, Ordering::Release);
        Some(stack)
    }

    /// The context that runs on this stack.
    pub fn context(&self) -> Context {
        Context::Stack(self.slot)
    }

    fn new() -> Option<Self> {
        let slot = {
            let mut slots = SLOTS_IN_USE.lock();
            let slot = slots.iter().position(|in_use| !in_use)?;
            slots[slot] = true;
            slot
        };
        let stack = Self { slot };
        for page in stack.pages() {
            if map_kernel_page(page, PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE).is_err() {
                // Dropping unmaps whatever part was mapped.
                return None;
            }
        }
        Some(stack)
    }

    fn base(&self) -> VirtAddr {
        VirtAddr::new(KERNEL_STACKS_START + self.slot as u64 * SLOT_PAGES * FRAME_SIZE)
    }

    fn pages(&self) -> impl Iterator<Item = Page> {
        let first_stack_page = Page::containing_address(self.base() + FRAME_SIZE);
        (0..STACK_PAGES).map(move |index| first_stack_page + index)
    }

    /// The address just above the stack (16-byte aligned), where pushing starts.
    pub fn top(&self) -> VirtAddr {
        self.base() + SLOT_PAGES * FRAME_SIZE
    }

    /// The lowest address of the guard page under the stack.
    pub fn guard_page(&self) -> VirtAddr {
        self.base()
    }

    /// The stack's memory as words, lowest address first, to lay out a new process's first
    /// frames.
    fn words_mut(&mut self) -> &mut [u64] {
        let start = (self.base() + FRAME_SIZE).as_mut_ptr::<u64>();
        // SAFETY: the stack's pages are mapped writable for as long as `self` lives, nothing
        // else refers to them while `self` is borrowed mutably, and the caller is not
        // running on this stack.
        unsafe { core::slice::from_raw_parts_mut(start, (STACK_PAGES * FRAME_SIZE / 8) as usize) }
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        let here = VirtAddr::from_ptr(&raw const *self);
        assert!(
            !(self.guard_page()..self.top()).contains(&here),
            "freeing the kernel stack the CPU is running on"
        );
        self.context().saved().store(0, Ordering::Release);
        for page in self.pages() {
            // A page may be missing only if `new` failed part-way.
            let _ = unmap_kernel_page(page);
        }
        SLOTS_IN_USE.lock()[self.slot] = false;
    }
}

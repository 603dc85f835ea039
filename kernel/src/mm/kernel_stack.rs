//! Kernel stacks for processes, each with an unmapped guard page below it, and switching
//! between them.
//!
//! Stacks live in their own upper-half region, one fixed-size slot per stack: the slot's
//! lowest page is never mapped, so overflowing a kernel stack page-faults, and since that
//! fault cannot be pushed on the same stack, it becomes a double fault on the dedicated
//! interrupt stack, which reports it.
//!
//! Each slot has a saved stack pointer, and so does the boot stack (the idle loop's). A
//! [`Context`] names one of them. [`switch_to`] suspends the running context (which it
//! tracks itself, so no caller can name the wrong one) and resumes another; it checks that
//! the target is a live stack with a saved state, and a stack cannot be freed while the CPU
//! runs on it, so the scheduler can switch without `unsafe`.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ::x86_64::VirtAddr;
use ::x86_64::structures::paging::{Page, PageTableFlags};
use spin::Mutex;

use crate::arch::x86_64::context::{prepare_kernel_entry, prepare_kernel_stack, switch_context};
use crate::arch::x86_64::cpu;
use crate::arch::x86_64::gdt::{self, InterruptStack};
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

    fn encode(self) -> usize {
        match self {
            Self::Boot => MAX_STACKS,
            Self::Stack(slot) => slot,
        }
    }

    fn decode(value: usize) -> Self {
        if value == MAX_STACKS { Self::Boot } else { Self::Stack(value) }
    }
}

/// The context the CPU runs now (as [`Context::encode`] writes it); the boot context at first.
static RUNNING: AtomicUsize = AtomicUsize::new(MAX_STACKS);

/// The context the CPU runs now.
pub fn running() -> Context {
    Context::decode(RUNNING.load(Ordering::Relaxed))
}

/// Suspends the running context and resumes `to`. Returns when something switches back.
/// Interrupts must be masked (the kernel runs with them masked).
pub fn switch_to(to: Context) {
    let from = running();
    assert_ne!(from, to, "switching a context to itself");
    if let Context::Stack(slot) = to {
        assert!(SLOTS_IN_USE.lock()[slot], "switching to a freed kernel stack");
    }
    let target = to.saved().swap(0, Ordering::AcqRel);
    assert_ne!(target, 0, "switching to a context with no saved state");
    debug_assert!(!cpu::interrupts_enabled(), "switching with interrupts enabled");
    RUNNING.store(to.encode(), Ordering::Relaxed);
    // The target's state was saved by an earlier switch (or laid out by `new_for_user` or
    // `new_for_kernel`) on a stack that is still mapped (slot in use, or the boot stack) and
    // that nothing runs on (its saved value was non-zero, and is zero now that it runs
    // again). `from` is the running context, tracked here, so its save slot is the right one.
    // SAFETY: as above; `from.saved()` is a static, valid for the write; interrupts are
    // masked (the kernel runs with them masked; checked above in debug builds).
    unsafe { switch_context(from.saved().as_ptr(), target) };
}

/// Which kernel stack's guard page holds `address`, if any: a fault there is that stack
/// overflowing.
pub fn guard_page_slot(address: VirtAddr) -> Option<usize> {
    let offset = address.as_u64().checked_sub(KERNEL_STACKS_START)?;
    let slot = usize::try_from(offset / (SLOT_PAGES * FRAME_SIZE)).ok().filter(|&slot| slot < MAX_STACKS)?;
    (offset % (SLOT_PAGES * FRAME_SIZE) < FRAME_SIZE).then_some(slot)
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
        // SAFETY: the page was mapped just above and nothing has seen it.
        unsafe { unmap_kernel_page(page) }.expect("unmapping a page just mapped");
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

    /// Maps a new stack whose first switch calls `entry` (which never returns), or `None`
    /// when no slot or not enough memory is free. For kernel work that needs a stack of its
    /// own, such as the in-kernel tests of stack overflow.
    pub fn new_for_kernel(entry: extern "C" fn() -> !) -> Option<Self> {
        let mut stack = Self::new()?;
        let stack_pointer = prepare_kernel_entry(stack.words_mut(), entry);
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

/// Replaces the boot-time interrupt stacks (static arrays) with kernel stacks that have
/// guard pages. They serve for the rest of the kernel's life. Called once at boot.
pub fn install_interrupt_stacks() {
    extern "C" fn never_entered() -> ! {
        unreachable!("an interrupt stack was switched to as a context")
    }
    for which in InterruptStack::ALL {
        let stack = KernelStack::new_for_kernel(never_entered).expect("out of memory for the interrupt stacks");
        // Nothing may ever switch to it or free it: it belongs to the CPU from now on.
        stack.context().saved().store(0, Ordering::Release);
        let top = stack.top();
        core::mem::forget(stack);
        // SAFETY: the stack is mapped, its top is 16-byte aligned, and it was leaked above, so
        // it stays mapped and used for nothing else forever; interrupts are masked at boot.
        unsafe { gdt::set_interrupt_stack(which, top) };
    }
}

impl KernelStack {
    /// Whether the CPU is running on this stack now.
    pub fn is_running(&self) -> bool {
        (self.guard_page()..self.top()).contains(&cpu::stack_pointer())
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        assert!(!self.is_running(), "freeing the kernel stack the CPU is running on");
        assert_ne!(running(), self.context(), "freeing the kernel stack of the running context");
        self.context().saved().store(0, Ordering::Release);
        for page in self.pages() {
            // SAFETY: the pages were mapped by `new` for this stack alone; the CPU does not run
            // on it (checked above), nothing suspended on it can be resumed (its saved state
            // is gone), and `words_mut` borrows are over. A page may be missing only if `new`
            // failed part-way, which `unmap_kernel_page` reports and this skips.
            let _ = unsafe { unmap_kernel_page(page) };
        }
        SLOTS_IN_USE.lock()[self.slot] = false;
    }
}

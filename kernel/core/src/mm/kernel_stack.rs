//! Kernel stacks for processes, each with an unmapped guard page below it, and switching
//! between them.
//!
//! Stacks live in their own upper-half region, one fixed-size slot per stack: the slot's
//! lowest page is never mapped, so overflowing a kernel stack page-faults, and since that
//! fault cannot be pushed on the same stack, it becomes a double fault on the dedicated
//! interrupt stack, which reports it.
//!
//! Each slot has a saved stack pointer and a saved register state (x87/SSE/AVX and the FS
//! and GS bases, [`UserState`]), and so does every CPU's idle context (the boot stack
//! for CPU 0, a stack of this region for the others). A [`Context`] names one of them.
//! [`switch_to`] suspends the context this CPU runs (which it tracks itself, per CPU, so no
//! caller can name the wrong one) and resumes another; it checks that the target is a live
//! stack with a saved state, and a stack cannot be freed while any CPU runs on it, so the
//! scheduler can switch without `unsafe`.
//!
//! **Switching and the big kernel lock.** A switch releases the big kernel lock just before
//! the stack changes, and the resumed context takes it again ([`finish_switch`]), so no lock
//! is held across a switch. In that window another CPU may already choose the context that is
//! being left (a process that just blocked and was woken at once); its state is not saved
//! yet. Each CPU therefore records the context it is leaving until the switch is done, and a
//! switch to a context another CPU is still leaving waits for its state, which takes a few
//! instructions and no lock.
//!
//! **Freeing a stack.** A stack may be freed when no CPU runs it (or has chosen to: a CPU
//! writes its running note before it switches) and the CPU that left it last has saved its
//! state. Saving the stack pointer is the leaving CPU's last touch of the stack, so a saved
//! state is the exact sign that it is done with it. The leaving note is not such a sign: it
//! is cleared only when the leaving CPU's next context runs, and a host that deschedules that
//! CPU's thread right after the save leaves the note standing while another CPU resumes the
//! context, runs it to its exit and frees its stack (the fuzzer on a busy host panicked with
//! "freeing the kernel stack of a running context"; see decision 53).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ::x86_64::VirtAddr;
use ::x86_64::structures::paging::{Page, PageTableFlags};
use spin::Mutex;

use crate::arch::context::{prepare_kernel_entry, prepare_kernel_stack, switch_context};
use crate::arch::cpu::{self, MAX_CPUS};
use crate::arch::gdt::{self, InterruptStack};
use crate::arch::kernel_lock;
use crate::arch::trap::TrapFrame;
use crate::arch::user_state::{BadArea, Base, NotUserAddress, UserState};

use super::frame::FRAME_SIZE;
use super::paging::{map_kernel_page, unmap_kernel_page, unmap_kernel_pages};

/// Start of the kernel-stack region (PML4 entry 304).
pub const KERNEL_STACKS_START: u64 = 0xffff_9800_0000_0000;
/// Mapped pages per stack (32 KiB).
pub const STACK_PAGES: u64 = 8;
/// Pages per slot: the guard page and the stack.
const SLOT_PAGES: u64 = STACK_PAGES + 1;
/// Most kernel stacks at once: threads (at most `abi::THREADS_MAX`), and every CPU's idle
/// and interrupt stacks.
pub const MAX_STACKS: usize = abi::THREADS_MAX + 64;

static SLOTS_IN_USE: Mutex<[bool; MAX_STACKS]> = Mutex::new([false; MAX_STACKS]);

/// What a context leaves behind when it stops running: its stack pointer (zero means
/// "running, or no saved state") and its registers beyond the stack (x87/SSE/AVX and the FS
/// and GS bases). One per slot, then every CPU's idle context's; together so that a switch
/// finds both from one address.
struct Suspended {
    /// Written as the leaving CPU's last touch of the context (see "Freeing a stack").
    stack_pointer: AtomicU64,
    /// Reset when a stack is made, so nothing of a slot's previous owner survives. An idle
    /// context's only holds whatever the last process left in the registers, which the idle
    /// loop never takes to ring 3 (it has one anyway, so that a switch saves and loads
    /// without looking at what it switches between).
    registers: UserState,
}

static SUSPENDED: [Suspended; MAX_STACKS + MAX_CPUS] =
    [const { Suspended { stack_pointer: AtomicU64::new(0), registers: UserState::new() } }; MAX_STACKS + MAX_CPUS];

/// A suspended (or running) flow of control in the kernel: a process's kernel stack, or the
/// stack a CPU's idle loop runs on. Made only from a live [`KernelStack`] or as this CPU's
/// idle context, so a switch can name no other CPU's idle stack and no slot out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context(Place);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// The idle loop of this CPU (on CPU 0, the stack the bootloader gave the kernel).
    Idle(usize),
    /// The kernel stack in this slot.
    Stack(usize),
}

impl Context {
    /// The idle context of the CPU running this.
    #[inline]
    pub fn idle() -> Self {
        Self(Place::Idle(cpu::index()))
    }

    /// The kernel-stack slot it runs on; `None` for an idle context.
    pub fn stack_slot(self) -> Option<usize> {
        match self.0 {
            Place::Stack(slot) => Some(slot),
            Place::Idle(_) => None,
        }
    }

    fn saved(self) -> &'static AtomicU64 {
        &SUSPENDED[self.encode()].stack_pointer
    }

    fn user_state(self) -> &'static UserState {
        &SUSPENDED[self.encode()].registers
    }

    fn encode(self) -> usize {
        match self.0 {
            Place::Idle(cpu) => MAX_STACKS + cpu % MAX_CPUS,
            Place::Stack(slot) => slot,
        }
    }

    fn decode(value: usize) -> Self {
        Self(if value >= MAX_STACKS { Place::Idle(value - MAX_STACKS) } else { Place::Stack(value) })
    }
}

/// No context (in `LEAVING`).
const NO_CONTEXT: usize = usize::MAX;

/// The context each CPU runs now (as [`Context::encode`] writes it); its idle context at first.
static RUNNING: [AtomicUsize; MAX_CPUS] = {
    let mut running = [const { AtomicUsize::new(0) }; MAX_CPUS];
    let mut cpu = 0;
    while cpu < MAX_CPUS {
        running[cpu] = AtomicUsize::new(MAX_STACKS + cpu);
        cpu += 1;
    }
    running
};

/// The context each CPU is switching away from, until its state is saved ([`NO_CONTEXT`]
/// otherwise).
static LEAVING: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(NO_CONTEXT) }; MAX_CPUS];

/// The context this CPU runs now.
#[inline]
pub fn running() -> Context {
    Context::decode(RUNNING[cpu::index()].load(Ordering::Relaxed))
}

/// The CPU that runs `context`, or has chosen to (its note is written before the switch).
fn running_on(context: Context) -> Option<usize> {
    let value = context.encode();
    RUNNING.iter().position(|entry| entry.load(Ordering::Acquire) == value)
}

/// Suspends the context this CPU runs and resumes `to`. Returns when something switches back
/// (possibly on another CPU). Interrupts must be masked and the big kernel lock held; it is
/// released for the switch itself and held again on return.
pub fn switch_to(to: Context) {
    let this_cpu = cpu::index();
    let from = Context::decode(RUNNING[this_cpu].load(Ordering::Relaxed));
    assert_ne!(from, to, "switching a context to itself");
    // A freed stack has no saved state (its drop cleared it), so this also refuses a switch
    // to a freed stack, once any leaving note that still names its slot is cleared.
    let target = loop {
        let target = to.saved().swap(0, Ordering::AcqRel);
        if target != 0 {
            break target;
        }
        // Another CPU may be saving it right now (see the module comment); nothing else may
        // lack a saved state. The state is read again after whether one is leaving it: the
        // leaving CPU saves the state before it clears its note, so a note seen clear means
        // the state is there by now, or never was. No CPU starts leaving it meanwhile, since
        // that takes the big kernel lock, which this CPU holds.
        let being_left = LEAVING.iter().any(|leaving| leaving.load(Ordering::Acquire) == to.encode());
        let target = to.saved().swap(0, Ordering::AcqRel);
        if target != 0 {
            break target;
        }
        assert!(being_left, "switching to a context with no saved state");
        core::hint::spin_loop();
    };
    assert!(!cpu::interrupts_enabled(), "switching with interrupts enabled");
    LEAVING[this_cpu].store(from.encode(), Ordering::Release);
    RUNNING[this_cpu].store(to.encode(), Ordering::Release);
    kernel_lock::release();
    // The target's state was saved by an earlier switch (or laid out by `new_for_user` or
    // `new_for_kernel`) on a stack that is still mapped (slot in use, or an idle stack) and
    // that nothing runs on (its saved value was non-zero, and is zero now that it runs
    // again). `from` is the context this CPU runs, tracked here, so its save slot is the
    // right one.
    // The same holds for the two contexts' register states: `from`'s is this CPU's to save
    // (it runs `from`), and `to`'s was saved, or reset by `new`, before its stack pointer was.
    // SAFETY: as above; `from.saved()` is a static, valid for the write; interrupts are
    // masked (checked above).
    unsafe { switch_context(to.user_state(), from.user_state(), from.saved().as_ptr(), target) };
    finish_switch();
}

/// The first thing a context does once it runs again (or for the first time) after a switch:
/// records that the context this CPU left is saved, and takes the big kernel lock. A new
/// process's first code and kernel entries made with [`KernelStack::new_for_kernel`] call it
/// themselves.
pub fn finish_switch() {
    LEAVING[cpu::index()].store(NO_CONTEXT, Ordering::Release);
    kernel_lock::acquire();
}

/// The `which` base of the context this CPU runs (what `set_user_base` last made it, or 0).
pub fn user_base(which: Base) -> u64 {
    running().user_state().base(which)
}

/// Makes `address` the `which` base of the context this CPU runs, from now on and after
/// every switch back to it; refused for anything but a lower-half address (see
/// [`crate::arch::user_state`]).
pub fn set_user_base(which: Base, address: u64) -> Result<(), NotUserAddress> {
    running().user_state().set_base_of_running(which, address)
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
pub(crate) fn init() {
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
    // SAFETY: a CPU runs only on a stack slot in use, whose stack pages stay mapped until the
    // stack is dropped, which waits until no CPU runs on it; `stack_bounds` gives exactly
    // those pages of the slot holding the pointer.
    unsafe { crate::arch::backtrace::set_stack_ranges(stack_bounds) };
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
    #[inline]
    pub fn context(&self) -> Context {
        Context(Place::Stack(self.slot))
    }

    fn new() -> Option<Self> {
        let slot = {
            let mut slots = SLOTS_IN_USE.lock();
            let slot = slots.iter().position(|in_use| !in_use)?;
            slots[slot] = true;
            slot
        };
        // SAFETY: the slot was free, so no CPU runs its context or switches to it, and the
        // last switch out of it finished saving before its stack was freed (see "Freeing a
        // stack"); it is not a context anyone can name until `new` returns.
        unsafe { SUSPENDED[slot].registers.reset() };
        for page in stack_pages(slot) {
            if map_kernel_page(page, PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE).is_err() {
                // SAFETY: the slot was taken above for this stack, whose pages nothing has
                // seen; the part that was mapped goes.
                unsafe { release_slot(slot) };
                return None;
            }
        }
        Some(Self { slot })
    }

    #[inline]
    fn base(&self) -> VirtAddr {
        slot_base(self.slot)
    }

    /// The address just above the stack (16-byte aligned), where pushing starts.
    #[inline]
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

/// A guarded stack that belongs to a CPU for the rest of the kernel's life: nothing may ever
/// switch to it as a process context or free it. Returns its top, or `None` without memory.
fn permanent_stack() -> Option<VirtAddr> {
    extern "C" fn never_entered() -> ! {
        unreachable!("a CPU's own stack was switched to as a process context")
    }
    let stack = KernelStack::new_for_kernel(never_entered)?;
    stack.context().saved().store(0, Ordering::Release);
    let top = stack.top();
    core::mem::forget(stack);
    Some(top)
}

/// Gives CPU `cpu` guarded interrupt stacks (replacing the boot processor's static ones, or
/// before another CPU starts). They serve for the rest of the kernel's life. Called once per
/// CPU, on the boot processor. Panics without memory (a boot failure).
pub fn install_interrupt_stacks(cpu: usize) {
    for which in InterruptStack::ALL {
        let top = permanent_stack().expect("out of memory for the interrupt stacks");
        // SAFETY: the stack is mapped, its top is 16-byte aligned, and it was leaked, so it
        // stays mapped and used for nothing else forever; the caller is CPU `cpu` itself at
        // boot (interrupts masked), or CPU `cpu` has not started.
        unsafe { gdt::set_interrupt_stack(cpu, which, top) };
    }
}

/// A guarded stack for CPU `cpu`'s idle loop (every CPU but the boot processor, which keeps
/// the boot stack), or `None` without memory. Returns its top.
pub fn idle_stack(cpu: usize) -> Option<VirtAddr> {
    debug_assert_ne!(cpu, 0, "the boot processor idles on the boot stack");
    permanent_stack()
}

/// Makes this CPU's entries from ring 3 land on a page that is never mapped (the guard page
/// of the first slot), for a CPU that runs no process: a stray entry double-faults, and no
/// CPU keeps naming a stack that may be freed.
pub fn load_none_for_entries() {
    // SAFETY: the first slot's guard page is never mapped (`new` maps only stack pages, and
    // `init` unmaps the page it maps to build the tables), so an entry faults on it.
    unsafe { cpu::set_kernel_stack(slot_base(0) + FRAME_SIZE) };
}

/// The refusal to touch the saved registers of a context that runs, or is being switched to
/// or from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotSuspended;

impl KernelStack {
    /// The `which` base of this stack's context, as its last switch out (or `tls_set`, or
    /// [`KernelStack::set_user_base`]) left it.
    pub fn user_base(&self, which: Base) -> u64 {
        self.context().user_state().base(which)
    }

    /// Makes `address` the `which` base of this stack's context, which its next switch in
    /// loads (for a context that does not run: a new one, or a stopped thread's); refused for
    /// anything but a lower-half address.
    pub fn set_user_base(&self, which: Base, address: u64) -> Result<(), NotUserAddress> {
        self.context().user_state().set_base_of_suspended(which, address)
    }

    /// Runs `f` on the saved register state of this stack's context if the context is
    /// suspended: its state is saved (the saved stack pointer, a leaving CPU's last write,
    /// is there) and no switch to it has begun. A switch to it begins only under the big
    /// kernel lock, which the caller must hold (checked), by taking that saved pointer, so
    /// none can begin before `f` returns.
    fn with_suspended<R>(&self, f: impl FnOnce(&UserState) -> R) -> Result<R, NotSuspended> {
        assert!(kernel_lock::is_held_here(), "a context's saved registers touched without the big kernel lock");
        if self.context().saved().load(Ordering::Acquire) == 0 {
            return Err(NotSuspended);
        }
        Ok(f(self.context().user_state()))
    }

    /// Copies the x87/SSE/AVX save area of this stack's suspended context into `out`
    /// (`user_state::area_size` bytes of it).
    pub fn read_saved_area(&self, out: &mut [u8]) -> Result<(), NotSuspended> {
        // SAFETY: `with_suspended` runs the read only while no CPU saves into or restores
        // from the area.
        self.with_suspended(|state| unsafe { state.read_area(out) })
    }

    /// Replaces the x87/SSE/AVX save area of this stack's suspended context with `bytes`,
    /// checked so that restoring it cannot fault.
    pub fn write_saved_area(&self, bytes: &[u8]) -> Result<Result<(), BadArea>, NotSuspended> {
        // SAFETY: as in `read_saved_area`.
        self.with_suspended(|state| unsafe { state.write_area(bytes) })
    }

    /// Makes this stack the one this CPU enters on from ring 3 (the TSS's `RSP0` and the
    /// `syscall` path's per-CPU slot), for the process about to run on it.
    #[inline]
    pub fn load_for_entries(&self) {
        // SAFETY: `self` is a mapped kernel stack; it is the running process's (the scheduler
        // loads it for the process it resumes), and stays mapped while that process can enter.
        unsafe { cpu::set_kernel_stack(self.top()) };
    }

    /// Whether the CPU is running on this stack now.
    pub fn is_running(&self) -> bool {
        (self.guard_page()..self.top()).contains(&cpu::stack_pointer())
    }
}

/// The lowest address of slot `slot` (its guard page).
fn slot_base(slot: usize) -> VirtAddr {
    VirtAddr::new(KERNEL_STACKS_START + slot as u64 * SLOT_PAGES * FRAME_SIZE)
}

/// The stack pages of slot `slot`, above its guard page.
fn stack_pages(slot: usize) -> impl Iterator<Item = Page> {
    let first_stack_page = Page::containing_address(slot_base(slot) + FRAME_SIZE);
    (0..STACK_PAGES).map(move |index| first_stack_page + index)
}

/// Unmaps whatever is mapped of slot `slot`'s stack, frees those frames, and gives the slot
/// back.
///
/// # Safety
/// The slot must be in use, for a stack that nothing will touch again: no CPU runs on it or
/// will switch to it, and no reference into it is left.
unsafe fn release_slot(slot: usize) {
    let first = stack_pages(slot).next().expect("a stack has pages");
    // SAFETY: the slot's pages were mapped by `map_kernel_page` for this stack alone, and the
    // caller guarantees nothing uses them any more; pages not mapped are skipped.
    unsafe { unmap_kernel_pages(first, STACK_PAGES) };
    SLOTS_IN_USE.lock()[slot] = false;
}

impl Drop for KernelStack {
    /// Frees the stack once no CPU runs it and the last CPU that left it has saved its state
    /// (see "Freeing a stack" in the module comment).
    fn drop(&mut self) {
        let context = self.context();
        assert!(!self.is_running(), "freeing the kernel stack the CPU is running on");
        if let Some(cpu) = running_on(context) {
            panic!("freeing the kernel stack of {context:?}, which CPU {cpu} runs (this is CPU {})", cpu::index());
        }
        if let Some(cpu) = cpu::entering_on(self.top()) {
            panic!("freeing the kernel stack of {context:?}, which CPU {cpu} would enter on from ring 3");
        }
        let saved = context.saved().swap(0, Ordering::AcqRel);
        assert_ne!(saved, 0, "freeing the kernel stack of {context:?}, which no CPU runs but whose state is not saved");
        // SAFETY: the slot is this stack's; no CPU runs it or can choose it (its owner let it
        // go), the CPU that left it last saved its state, which is that CPU's last touch of
        // the stack, and that state is gone now; `words_mut` borrows are over.
        unsafe { release_slot(self.slot) };
    }
}

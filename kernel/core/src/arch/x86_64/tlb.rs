//! TLB shootdown: making every CPU forget translations that are about to become wrong.
//!
//! A CPU caches translations of the address space whose top-level table it has loaded, and
//! keeps them until it invalidates them or loads another table (no PCIDs and no global user
//! pages are used, so a CR3 write drops every user and kernel-stack translation). Each CPU
//! records here the table it has loaded (written before the CR3 write, so a shootdown never
//! misses a CPU that is switching to the table). To unmap a page of an address space, the
//! kernel calls [`shoot_down`] after clearing the entry and before freeing the frame: this CPU
//! flushes locally if it has the table loaded, and every other online CPU that has it gets a
//! shootdown interrupt and answers by flushing; the call returns when all have answered. The
//! kernel half (kernel stacks) is shared by every table, so its shootdowns go to every CPU.
//!
//! The interrupt handler runs without the big kernel lock, whose holder is the one waiting;
//! a CPU spinning for that lock (or for this module's own) answers requests as it spins, so
//! a shootdown completes whatever the other CPUs are doing.
//!
//! A CPU halted in its idle loop is not interrupted: waking a halted CPU costs far more than
//! the flush (under QEMU, a host thread must be scheduled), and a halted CPU touches nothing
//! that could be unmapped. It is left a note instead, and the first thing it does when it
//! wakes, before the interrupt that woke it is handled, is reload its table, which drops
//! every translation ([`woken`]). The note is written before the initiator looks whether the
//! CPU halts, and the CPU stops saying so before it reads the note, both in one total order,
//! so either the initiator sees it awake (and interrupts it) or it sees the note.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use ::x86_64::VirtAddr;
use ::x86_64::structures::paging::PhysFrame;

use super::cpu::{self, MAX_CPUS};
use super::{apic, smp};
use super::trap::TLB_SHOOTDOWN_VECTOR;

/// Above this many pages a shootdown reloads CR3 instead of invalidating page by page.
const MOST_PAGES_ONE_BY_ONE: u64 = 32;
/// `ACTIVE_ROOT` value for "every address space" (the kernel half).
const EVERY_SPACE: u64 = u64::MAX;

/// The physical address of the top-level table each CPU has loaded.
static ACTIVE_ROOT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Requests waiting for each CPU's answer.
static PENDING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// The request being served: the first page and how many.
static REQUEST_START: AtomicU64 = AtomicU64::new(0);
static REQUEST_PAGES: AtomicU64 = AtomicU64::new(0);
/// One shootdown at a time.
static SHOOTING: AtomicBool = AtomicBool::new(false);
/// CPUs halted in their idle loops (bit n: CPU n).
static HALTED: AtomicU32 = AtomicU32::new(0);
/// A flush each CPU owes from shootdowns it slept through.
static FLUSH_ON_WAKE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Notes that this CPU is about to halt in its idle loop (with the kernel's table loaded and
/// on its idle stack): shootdowns leave it a note instead of interrupting it.
pub(super) fn halting() {
    HALTED.fetch_or(1 << cpu::index(), Ordering::SeqCst);
}

/// Notes that this CPU is awake again, and does the flush it owes if a shootdown passed it by.
/// Called when it leaves the halt and by every interrupt that finds the kernel interrupted
/// with interrupts enabled (the halt among others), before anything else.
pub(super) fn woken() {
    let bit = 1 << cpu::index();
    if HALTED.load(Ordering::Relaxed) & bit == 0 {
        return;
    }
    HALTED.fetch_and(!bit, Ordering::SeqCst);
    if FLUSH_ON_WAKE[cpu::index()].swap(false, Ordering::SeqCst) {
        // SAFETY: the active root stays valid; reloading it only drops cached translations.
        unsafe { super::paging::reload_root() };
    }
}

/// Records that this CPU is about to load `root`. Called by [`super::paging`] before every CR3
/// write.
pub(super) fn note_root(root: PhysFrame) {
    ACTIVE_ROOT[cpu::index()].store(root.start_address().as_u64(), Ordering::Release);
}

fn flush_local(start: u64, pages: u64) {
    if pages > MOST_PAGES_ONE_BY_ONE {
        // SAFETY: the active root stays valid; reloading it only drops cached translations.
        unsafe { super::paging::reload_root() };
    } else {
        for page in 0..pages {
            ::x86_64::instructions::tlb::flush(VirtAddr::new_truncate(start + page * 4096));
        }
    }
}

/// Makes every CPU forget its translations of `pages` pages from `start` in the address space
/// whose top-level table is `root` (`None`: the kernel half, which every space shares).
/// Returns when every CPU that could hold one has flushed. Interrupts must be masked.
pub fn shoot_down(root: Option<PhysFrame>, start: VirtAddr, pages: u64) {
    let root = root.map_or(EVERY_SPACE, |root| root.start_address().as_u64());
    let holds = |cpu: usize| root == EVERY_SPACE || ACTIVE_ROOT[cpu].load(Ordering::Acquire) == root;
    let me = cpu::index();
    if holds(me) {
        flush_local(start.as_u64(), pages);
    }
    // A halted CPU gets the note instead of an interrupt; the note is left for the others
    // too, since one may halt right after the look (it then flushes once more than needed).
    let awake = |cpu: usize| {
        FLUSH_ON_WAKE[cpu].store(true, Ordering::SeqCst);
        HALTED.load(Ordering::SeqCst) & (1 << cpu) == 0
    };
    let targets: u32 = (0..MAX_CPUS)
        .filter(|&cpu| cpu != me && smp::is_online(cpu) && holds(cpu) && awake(cpu))
        .fold(0, |mask, cpu| mask | 1 << cpu);
    if targets == 0 {
        return;
    }
    let each_target = || (0..MAX_CPUS).filter(move |&cpu| targets & (1 << cpu) != 0);
    while SHOOTING.swap(true, Ordering::Acquire) {
        answer_request();
        core::hint::spin_loop();
    }
    REQUEST_START.store(start.as_u64(), Ordering::Relaxed);
    REQUEST_PAGES.store(pages, Ordering::Relaxed);
    for cpu in each_target() {
        PENDING[cpu].store(true, Ordering::Release);
        apic::send_ipi(smp::apic_id(cpu), TLB_SHOOTDOWN_VECTOR);
    }
    for cpu in each_target() {
        while PENDING[cpu].load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
    SHOOTING.store(false, Ordering::Release);
}

/// Serves a shootdown request addressed to this CPU, if there is one. Called by the shootdown
/// interrupt and by every CPU spinning with interrupts masked.
pub fn answer_request() {
    let me = cpu::index();
    if PENDING[me].load(Ordering::Acquire) {
        flush_local(REQUEST_START.load(Ordering::Relaxed), REQUEST_PAGES.load(Ordering::Relaxed));
        PENDING[me].store(false, Ordering::Release);
    }
}

//! A process's user memory: its address space plus the bookkeeping behind `brk`, `mmap`,
//! `munmap` and `mprotect`.
//!
//! Layout of a process (see `abi::memory`): the program image from 4 MiB, the heap right
//! after it (grown and shrunk by `brk`), `mmap` regions from `USER_MMAP_BASE` upward (or at a
//! fixed address the caller picks), and the stack just below `USER_STACK_TOP` with an
//! unmapped guard gap under it that nothing may ever occupy.
//!
//! Every argument is checked here with checked arithmetic; a bad one is an error, never a
//! panic, and a failed call leaves the process's memory as it was. Adjacent `mmap` regions
//! with the same rights merge into one, and a process may have at most [`MAX_REGIONS`]
//! regions, so the kernel heap a process's bookkeeping takes is bounded.
//!
//! Long operations (mapping or unmapping many pages) call the caller's `pause` between steps
//! of [`PAGES_PER_STEP`](super::address_space::PAGES_PER_STEP) pages, so the kernel can let
//! interrupts in.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, Ordering};

use ::x86_64::VirtAddr;
use ::x86_64::structures::paging::PhysFrame;
use spin::{Mutex, MutexGuard};
use abi::memory::{PAGE_SIZE, USER_END, USER_MMAP_BASE, USER_STACK_GUARD, USER_STACK_SIZE, USER_STACK_TOP};

use super::address_space::{Account, AddressSpace, MappingCount, MappingStamp, MemoryError, UserRights};
use super::shared::SharedFrames;
use crate::arch::cpu::{self, MAX_CPUS};
use crate::arch::kernel_lock;

/// Most bytes the heap may grow to (the per-process page limit applies as well).
pub const HEAP_MAX: u64 = 256 * 1024 * 1024;

/// Most `mmap` regions one process may have (after merging adjacent ones).
pub const MAX_REGIONS: usize = 512;

/// Lowest address of the stack's guard gap; `[STACK_RESERVED_START, USER_STACK_TOP)` is
/// reserved for the stack and its guard.
const STACK_RESERVED_START: u64 = USER_STACK_TOP - USER_STACK_SIZE - USER_STACK_GUARD;

/// What a region's pages are.
#[derive(Clone, Debug)]
pub enum Backing {
    /// Zeroed pages of the process's own.
    Anonymous,
    /// Pages of a shared-memory object, from its page `first_page` on. The region keeps the
    /// object alive while its pages are mapped.
    Shared {
        /// The object's frames.
        frames: Arc<SharedFrames>,
        /// The object's page at the region's start.
        first_page: u64,
    },
}

impl PartialEq for Backing {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Anonymous, Self::Anonymous) => true,
            (Self::Shared { frames: a, first_page: x }, Self::Shared { frames: b, first_page: y }) => {
                Arc::ptr_eq(a, b) && x == y
            }
            _ => false,
        }
    }
}

impl Eq for Backing {}

impl Backing {
    /// The backing of the part of a region that starts `pages` pages further on.
    fn advanced(&self, pages: u64) -> Self {
        match self {
            Self::Anonymous => Self::Anonymous,
            Self::Shared { frames, first_page } => Self::Shared { frames: frames.clone(), first_page: first_page + pages },
        }
    }
}

/// A half-open page range `[start, end)`, the rights of its pages and what they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// First address (page-aligned).
    pub start: u64,
    /// One past the last address (page-aligned).
    pub end: u64,
    /// Rights of every page in the region.
    pub rights: UserRights,
    /// What the pages are.
    pub backing: Backing,
}

impl Region {
    /// An anonymous region.
    pub fn anonymous(start: u64, end: u64, rights: UserRights) -> Self {
        Self { start, end, rights, backing: Backing::Anonymous }
    }

    /// Whether `other` could be merged into one region with this one (given they touch).
    fn merges_with(&self, other: &Region) -> bool {
        self.rights == other.rights && self.backing == Backing::Anonymous && other.backing == Backing::Anonymous
    }
}

/// Non-overlapping regions sorted by address: the `mmap`ed memory of a process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionSet {
    regions: Vec<Region>,
}

impl RegionSet {
    /// Whether any region overlaps `[start, end)`.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.regions.iter().any(|region| region.start < end && start < region.end)
    }

    /// Whether `[start, end)` is entirely covered by regions.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let mut cursor = start;
        for region in &self.regions {
            if region.end <= cursor {
                continue;
            }
            if region.start > cursor {
                return false;
            }
            cursor = region.end;
            if cursor >= end {
                return true;
            }
        }
        cursor >= end
    }

    /// Adds a region, merging it with anonymous neighbours it touches that have the same
    /// rights; it must not overlap an existing one.
    pub fn insert(&mut self, region: Region) {
        debug_assert!(!self.overlaps(region.start, region.end));
        let index = self.regions.partition_point(|existing| existing.start < region.start);
        let joins_previous = index > 0 && {
            let previous = &self.regions[index - 1];
            previous.end == region.start && previous.merges_with(&region)
        };
        let joins_next = self.regions.get(index).is_some_and(|next| next.start == region.end && next.merges_with(&region));
        match (joins_previous, joins_next) {
            (true, true) => {
                let next_end = self.regions.remove(index).end;
                self.regions[index - 1].end = next_end;
            }
            (true, false) => self.regions[index - 1].end = region.end,
            (false, true) => self.regions[index].start = region.start,
            (false, false) => self.regions.insert(index, region),
        }
    }

    /// How many regions there would be after [`insert`](Self::insert)ing `region`.
    pub fn count_after_insert(&self, region: &Region) -> usize {
        let touching = self
            .regions
            .iter()
            .filter(|existing| {
                (existing.end == region.start || existing.start == region.end) && existing.merges_with(region)
            })
            .count();
        self.regions.len() + 1 - touching
    }

    /// How many regions there would be after [`remove`](Self::remove) of `[start, end)`:
    /// regions inside it go, and one that straddles both edges splits in two.
    pub fn count_after_remove(&self, start: u64, end: u64) -> usize {
        let inside = self.regions.iter().filter(|region| start <= region.start && region.end <= end).count();
        let split = self.regions.iter().any(|region| region.start < start && end < region.end);
        self.regions.len() - inside + usize::from(split)
    }

    /// How many regions there would be after [`set_rights`](Self::set_rights) on
    /// `[start, end)`: the count after removing the range, plus the new region, minus the
    /// neighbours it merges with.
    pub fn count_after_set_rights(&self, start: u64, end: u64, rights: UserRights) -> usize {
        let new = Region::anonymous(start, end, rights);
        let merges_left =
            self.regions.iter().any(|region| region.start < start && start <= region.end && region.merges_with(&new));
        let merges_right =
            self.regions.iter().any(|region| region.start <= end && end < region.end && region.merges_with(&new));
        self.count_after_remove(start, end) + 1 - usize::from(merges_left) - usize::from(merges_right)
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether there are no regions.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Removes `[start, end)` from the set, splitting regions that straddle its edges.
    pub fn remove(&mut self, start: u64, end: u64) {
        let mut kept = Vec::with_capacity(self.regions.len() + 1);
        for region in self.regions.drain(..) {
            if region.end <= start || end <= region.start {
                kept.push(region);
                continue;
            }
            if region.start < start {
                kept.push(Region { end: start, backing: region.backing.clone(), ..region });
            }
            if end < region.end {
                let backing = region.backing.advanced((end - region.start) / PAGE_SIZE);
                kept.push(Region { start: end, backing, ..region });
            }
        }
        // An empty set holds no memory, so a process that unmaps everything uses exactly the
        // kernel heap it used before its first `mmap`.
        self.regions = if kept.is_empty() { Vec::new() } else { kept };
    }

    /// Gives `[start, end)` the rights `rights` (the range must be covered by anonymous
    /// regions).
    pub fn set_rights(&mut self, start: u64, end: u64, rights: UserRights) {
        self.remove(start, end);
        self.insert(Region::anonymous(start, end, rights));
    }

    /// Whether `[start, end)` is covered by anonymous regions alone.
    pub fn covers_anonymous(&self, start: u64, end: u64) -> bool {
        self.covers(start, end)
            && self
                .regions
                .iter()
                .filter(|region| region.start < end && start < region.end)
                .all(|region| region.backing == Backing::Anonymous)
    }

    /// The lowest free range of `length` bytes at or above `floor` that ends at or below
    /// `ceiling`.
    pub fn find_gap(&self, length: u64, floor: u64, ceiling: u64) -> Option<u64> {
        let mut candidate = floor;
        for region in &self.regions {
            if region.end <= candidate {
                continue;
            }
            if candidate.checked_add(length)? <= region.start {
                break;
            }
            candidate = region.end;
        }
        (candidate.checked_add(length)? <= ceiling).then_some(candidate)
    }

    /// Bytes covered by all regions.
    pub fn total_bytes(&self) -> u64 {
        self.regions.iter().map(|region| region.end - region.start).sum()
    }
}

/// Rounds `value` up to a page boundary, or `None` on overflow.
fn page_ceil(value: u64) -> Option<u64> {
    value.checked_add(PAGE_SIZE - 1).map(|value| value & !(PAGE_SIZE - 1))
}

/// A process's memory.
#[derive(Debug)]
pub struct UserMemory {
    space: AddressSpace,
    heap_start: u64,
    heap_end: u64,
    mmaps: RegionSet,
}

impl UserMemory {
    /// Wraps a freshly loaded address space whose image ends (page-aligned) at `image_end`.
    pub fn new(space: AddressSpace, image_end: u64) -> Self {
        Self { space, heap_start: image_end, heap_end: image_end, mmaps: RegionSet::default() }
    }

    /// The page tables.
    pub fn space(&mut self) -> &mut AddressSpace {
        &mut self.space
    }

    /// Bytes charged to the process: its user pages and its page tables.
    pub fn charged_bytes(&self) -> u64 {
        self.space.account().charged() * PAGE_SIZE
    }

    /// The shared-memory object mapped at `address`, and the byte offset of `address` in it;
    /// `None` where the memory is the process's own (or nothing). What names a futex word
    /// that several processes share.
    pub fn shared_object_at(&self, address: u64) -> Option<(Arc<SharedFrames>, u64)> {
        let region = self.mmaps.regions.iter().find(|region| (region.start..region.end).contains(&address))?;
        match &region.backing {
            Backing::Shared { frames, first_page } => Some((frames.clone(), first_page * PAGE_SIZE + (address - region.start))),
            Backing::Anonymous => None,
        }
    }

    /// `brk`: moves the heap end to `requested` (rounded up to a page) and returns it; 0
    /// only asks for the current end.
    pub fn brk(&mut self, requested: u64, pause: &mut dyn FnMut()) -> Result<u64, MemoryError> {
        if requested == 0 {
            return Ok(self.heap_end);
        }
        let limit = self.heap_start.saturating_add(HEAP_MAX).min(STACK_RESERVED_START);
        if requested < self.heap_start || requested > limit {
            return Err(if requested > limit { MemoryError::OutOfMemory } else { MemoryError::BadRange });
        }
        let new_end = page_ceil(requested).ok_or(MemoryError::BadRange)?;
        if new_end > self.heap_end {
            if self.mmaps.overlaps(self.heap_end, new_end) {
                return Err(MemoryError::OutOfMemory);
            }
            let pages = (new_end - self.heap_end) / PAGE_SIZE;
            self.space.map_zeroed(VirtAddr::new(self.heap_end), pages, UserRights::ReadWrite, pause)?;
        } else if new_end < self.heap_end {
            self.space.unmap(VirtAddr::new(new_end), (self.heap_end - new_end) / PAGE_SIZE, pause)?;
        }
        self.heap_end = new_end;
        Ok(new_end)
    }

    /// Checks an `mmap`/`munmap`/`mprotect` range: page-aligned start, non-zero length,
    /// inside the user half. Returns the page-aligned end.
    fn checked_range(start: u64, length: u64) -> Result<u64, MemoryError> {
        if length == 0 || !start.is_multiple_of(PAGE_SIZE) {
            return Err(MemoryError::BadRange);
        }
        let end = start.checked_add(length).and_then(page_ceil).ok_or(MemoryError::BadRange)?;
        if !abi::memory::is_user_range(start, end - start) {
            return Err(MemoryError::BadRange);
        }
        Ok(end)
    }

    fn collides_with_fixed_areas(&self, start: u64, end: u64) -> bool {
        let heap_reserved_end = self.heap_start.saturating_add(HEAP_MAX);
        (start < heap_reserved_end && self.heap_start < end) || end > STACK_RESERVED_START && start < USER_STACK_TOP
    }

    /// `mmap`: maps zeroed pages at `requested` (0: the kernel chooses) and returns where.
    pub fn mmap(
        &mut self,
        requested: u64,
        length: u64,
        rights: UserRights,
        pause: &mut dyn FnMut(),
    ) -> Result<u64, MemoryError> {
        let rounded = page_ceil(length).ok_or(MemoryError::BadRange)?;
        let start = if requested == 0 {
            if rounded == 0 {
                return Err(MemoryError::BadRange);
            }
            self.mmaps.find_gap(rounded, USER_MMAP_BASE, STACK_RESERVED_START).ok_or(MemoryError::OutOfMemory)?
        } else {
            requested
        };
        let end = Self::checked_range(start, length)?;
        if self.mmaps.overlaps(start, end) || self.collides_with_fixed_areas(start, end) {
            return Err(MemoryError::AlreadyMapped);
        }
        let region = Region::anonymous(start, end, rights);
        if self.mmaps.count_after_insert(&region) > MAX_REGIONS {
            return Err(MemoryError::LimitReached);
        }
        self.space.map_zeroed(VirtAddr::new(start), (end - start) / PAGE_SIZE, rights, pause)?;
        self.mmaps.insert(region);
        Ok(start)
    }

    /// Maps every page of a shared-memory object at `requested` (0: the kernel chooses)
    /// with `rights`, and returns where. The region keeps the object alive until unmapped.
    pub fn map_shared(
        &mut self,
        frames: Arc<SharedFrames>,
        requested: u64,
        rights: UserRights,
        pause: &mut dyn FnMut(),
    ) -> Result<u64, MemoryError> {
        let length = frames.pages() * PAGE_SIZE;
        let start = if requested == 0 {
            self.mmaps.find_gap(length, USER_MMAP_BASE, STACK_RESERVED_START).ok_or(MemoryError::OutOfMemory)?
        } else {
            requested
        };
        let end = Self::checked_range(start, length)?;
        if self.mmaps.overlaps(start, end) || self.collides_with_fixed_areas(start, end) {
            return Err(MemoryError::AlreadyMapped);
        }
        let region = Region { start, end, rights, backing: Backing::Shared { frames: frames.clone(), first_page: 0 } };
        if self.mmaps.count_after_insert(&region) > MAX_REGIONS {
            return Err(MemoryError::LimitReached);
        }
        // SAFETY: the region inserted below holds a reference to `frames` until `munmap` (or
        // the process's end) has unmapped its pages, so they stay allocated while mapped.
        unsafe { self.space.map_borrowed(VirtAddr::new(start), frames.physical(), rights, pause) }?;
        self.mmaps.insert(region);
        Ok(start)
    }

    /// `munmap`: unmaps the `mmap`ed pages in the range (pages not mapped by `mmap` are left
    /// alone; the heap, image and stack are never touched).
    pub fn munmap(&mut self, start: u64, length: u64, pause: &mut dyn FnMut()) -> Result<(), MemoryError> {
        let end = Self::checked_range(start, length)?;
        if self.mmaps.count_after_remove(start, end) > MAX_REGIONS {
            return Err(MemoryError::LimitReached);
        }
        let pieces: Vec<Region> = self
            .mmaps
            .regions
            .iter()
            .filter(|region| region.start < end && start < region.end)
            .map(|region| Region::anonymous(region.start.max(start), region.end.min(end), region.rights))
            .collect();
        for piece in &pieces {
            self.space.unmap(VirtAddr::new(piece.start), (piece.end - piece.start) / PAGE_SIZE, pause)?;
        }
        self.mmaps.remove(start, end);
        Ok(())
    }

    /// `mprotect`: changes the rights of anonymous `mmap`ed pages; the whole range must be
    /// mapped that way (shared memory keeps the rights it was mapped with).
    pub fn mprotect(&mut self, start: u64, length: u64, rights: UserRights) -> Result<(), MemoryError> {
        let end = Self::checked_range(start, length)?;
        if !self.mmaps.covers_anonymous(start, end) {
            return Err(MemoryError::NotMapped);
        }
        if self.mmaps.count_after_set_rights(start, end, rights) > MAX_REGIONS {
            return Err(MemoryError::LimitReached);
        }
        self.space.protect(VirtAddr::new(start), (end - start) / PAGE_SIZE, rights)?;
        self.mmaps.set_rights(start, end, rights);
        Ok(())
    }

    /// A copy-on-write copy of this memory, for a new process (`process_copy`): a new address
    /// space, charged to a new account, sharing every page with this one (see
    /// `AddressSpace::share_step`), with the same heap and regions (a shared-memory region
    /// keeps its object alive in the copy too). Calls `pause` between steps.
    pub fn copy_on_write(&mut self, pause: &mut dyn FnMut()) -> Result<UserMemory, MemoryError> {
        let mut mmaps = RegionSet::default();
        mmaps.regions.try_reserve_exact(self.mmaps.regions.len()).map_err(|_| MemoryError::OutOfMemory)?;
        mmaps.regions.extend(self.mmaps.regions.iter().cloned());
        let mut space = AddressSpace::new()?;
        let mut cursor = 0;
        while !self.space.share_step(&mut space, &mut cursor)? {
            pause();
        }
        Ok(UserMemory { space, heap_start: self.heap_start, heap_end: self.heap_end, mmaps })
    }

    /// Frees up to `budget` pages of this memory (and the tables they leave empty), for
    /// tearing a process down in steps; returns whether everything is gone.
    pub fn release_step(&mut self, budget: u64) -> bool {
        self.space.deactivate();
        self.space.release_step(budget)
    }
}

/// A process's memory as the process table holds it: locked apart from the table, because
/// only the process itself locks it (its syscalls, its exit), so it may stay locked across a
/// preemption point in a long `mmap` while other processes run. Switching to the process
/// needs only its top-level table, kept outside the lock; the memory charged to it is read
/// from its account for `ps`.
#[derive(Debug)]
pub struct ProcessMemory {
    /// The address space's top-level table, which lives as long as `memory` (it is freed
    /// only when the `UserMemory` is dropped).
    root: PhysFrame,
    memory: Mutex<UserMemory>,
    /// What the memory is charged to: read without the lock, and always current (shared
    /// memory the process made is uncharged when its last holder, maybe another process,
    /// lets it go).
    account: Arc<Account>,
    /// The address space's mapping count, read without the lock by [`active_stamp`].
    mappings: Arc<MappingCount>,
}

impl ProcessMemory {
    /// Wraps a process's memory.
    pub fn new(memory: UserMemory) -> Self {
        let account = memory.space.account().clone();
        let mappings = memory.space.mappings().clone();
        Self { root: memory.space.root(), memory: Mutex::new(memory), account, mappings }
    }

    /// Locks the memory (its process's threads do; one may wait here while a sibling holds it
    /// at a preemption point, so callers that must not wait use [`try_lock`](Self::try_lock)).
    pub fn lock(&self) -> MutexGuard<'_, UserMemory> {
        self.memory.lock()
    }

    /// Makes this memory the active address space, without taking the lock (its owner may
    /// hold it, suspended at a preemption point), and records it as this CPU's for
    /// [`with_active_memory`].
    #[inline]
    pub fn activate(&self) {
        ACTIVE[cpu::index()].store(core::ptr::from_ref(self).cast_mut(), Ordering::Relaxed);
        // SAFETY: `root` is the top-level table of the address space inside `memory`, which
        // lives as long as `self`; its upper half is the kernel's, so the running kernel code
        // and stacks stay mapped across the switch.
        unsafe { crate::arch::paging::switch_root(self.root) };
    }

    /// Bytes charged (pages, page tables, and shared memory it made that is still alive).
    pub fn charged_bytes(&self) -> u64 {
        self.account.charged() * PAGE_SIZE
    }

    /// The mapping stamp of its address space now (see `MappingStamp`).
    pub fn stamp(&self) -> MappingStamp {
        self.mappings.stamp()
    }

    /// Locks the memory unless another holds it (a sibling thread paused in a long `mmap`).
    pub fn try_lock(&self) -> Option<MutexGuard<'_, UserMemory>> {
        self.memory.try_lock()
    }

    /// Whether all of `[start, start + len)` is user memory, mapped (writable too, if
    /// `write`), read from the tables without the lock, which a sibling thread may hold,
    /// suspended at a preemption point. Needs the big kernel lock (panics without it): the
    /// tables change only under it. A copy-on-write page in a range checked for writing is
    /// broken here (the process gets its own frame), so the kernel's write into it, like the
    /// process's own, never fails for the sharing.
    pub fn check_user_access(&self, start: u64, len: u64, write: bool) -> bool {
        assert!(kernel_lock::is_held_here(), "reading user page tables without the big kernel lock");
        // SAFETY: `root` lives as long as `self`; this CPU holds the big kernel lock (checked
        // above), under which alone the tables change.
        unsafe { super::address_space::user_range_accessible(self.root, start, len, write) }
    }

    /// Answers a write fault of one of its threads at `address`: if the page is copy-on-write,
    /// it is made writable (a private copy of the frame, unless no other address space owns
    /// it any more) and the thread may run the instruction again. Also true if the page is
    /// writable already (a sibling thread broke it first, or a stale translation faulted).
    /// False for any other fault, or when no frame is free for the copy. Needs the big kernel
    /// lock (panics without it), not the memory's lock, which a sibling may hold.
    pub fn resolve_write_fault(&self, address: u64) -> bool {
        assert!(kernel_lock::is_held_here(), "changing user page tables without the big kernel lock");
        // SAFETY: `root` lives as long as `self`; this CPU holds the big kernel lock (checked
        // above), under which alone the tables change.
        unsafe { super::address_space::user_range_accessible(self.root, address, 1, true) }
    }

    /// Copies `len` bytes from `source_address` in `source` to `target_address` in `target`
    /// (which may be the same memory: two threads of one process) through the physical-memory
    /// map, without either lock (see [`check_user_access`](Self::check_user_access)): the
    /// source must be mapped user memory and the target mapped writable, else `NotMapped`.
    /// Needs the big kernel lock (panics without it).
    pub fn copy_between(
        source: &ProcessMemory,
        source_address: u64,
        target: &ProcessMemory,
        target_address: u64,
        len: u64,
    ) -> Result<(), MemoryError> {
        assert!(kernel_lock::is_held_here(), "copying between user memories without the big kernel lock");
        // SAFETY: both roots live as long as their `ProcessMemory`s; this CPU holds the big
        // kernel lock (checked above), under which alone the tables change.
        unsafe { super::address_space::copy_between_roots(source.root, source_address, target.root, target_address, len) }
    }

    /// Copies `bytes` from the kernel to `target_address` in `self` (active or not), through the
    /// physical-memory map, without its lock (see [`check_user_access`](Self::check_user_access)):
    /// the range must be mapped writable user memory, else `NotMapped`. Needs the big kernel
    /// lock (panics without it).
    pub fn write_bytes(&self, target_address: u64, bytes: &[u8]) -> Result<(), MemoryError> {
        assert!(kernel_lock::is_held_here(), "writing user memory without the big kernel lock");
        // SAFETY: the root lives as long as `self`; this CPU holds the big kernel lock (checked
        // above), under which alone the tables change.
        unsafe { super::address_space::copy_into_root(self.root, target_address, bytes) }
    }
}

impl Drop for ProcessMemory {
    fn drop(&mut self) {
        let this = core::ptr::from_mut(self);
        for slot in &ACTIVE {
            let _ = slot.compare_exchange(this, core::ptr::null_mut(), Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// The process memory each CPU loaded last ([`ProcessMemory::activate`]), or null. A
/// `ProcessMemory` takes itself out when it is dropped, so every non-null entry points at a
/// live one; whether it is still the one in CR3 is checked on use (the kernel's own table may
/// have been loaded since).
static ACTIVE: [AtomicPtr<ProcessMemory>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// Lends the process memory this CPU has loaded (the root in CR3), unlocked, to `f`; `None`
/// while the CPU runs on any other table. This is how `usercopy` finds the memory its copies
/// go through, so what it checks is what the CPU will use.
#[inline]
pub fn with_active_memory<R>(f: impl FnOnce(&ProcessMemory) -> R) -> Option<R> {
    let pointer = ACTIVE[cpu::index()].load(Ordering::Relaxed);
    // SAFETY: a non-null entry points at a live `ProcessMemory` (its drop clears the entries
    // naming it); it cannot be dropped while this runs, since it is dropped only by kernel code
    // under the big kernel lock, which this CPU holds, with interrupts masked.
    let memory = unsafe { pointer.as_ref() }?;
    crate::arch::paging::is_active_root(memory.root).then(|| f(memory))
}

/// The mapping stamp of the process memory this CPU has loaded (the root in CR3), read
/// without its lock: what `usercopy` compares a checked range's stamp with before a copy.
#[inline]
pub fn active_stamp() -> Option<MappingStamp> {
    with_active_memory(ProcessMemory::stamp)
}

/// The user stack's mapped range `[start, USER_STACK_TOP)`.
pub const fn stack_range() -> (u64, u64) {
    (USER_STACK_TOP - USER_STACK_SIZE, USER_STACK_TOP)
}

const _: () = assert!(USER_STACK_TOP < USER_END && USER_MMAP_BASE < STACK_RESERVED_START);

#[cfg(test)]
mod tests {
    use super::*;

    fn region(start: u64, end: u64) -> Region {
        Region::anonymous(start, end, UserRights::ReadWrite)
    }

    #[test]
    fn overlap_and_cover() {
        let mut set = RegionSet::default();
        set.insert(region(0x1000, 0x3000));
        set.insert(region(0x3000, 0x5000));
        set.insert(region(0x8000, 0x9000));
        assert!(set.overlaps(0x2000, 0x2001));
        assert!(!set.overlaps(0x5000, 0x8000));
        assert!(set.covers(0x1000, 0x5000));
        assert!(!set.covers(0x1000, 0x6000));
        assert!(!set.covers(0x4000, 0x9000));
        assert_eq!(set.total_bytes(), 0x5000);
    }

    #[test]
    fn removing_the_middle_splits_a_region() {
        let mut set = RegionSet::default();
        set.insert(region(0x1000, 0x5000));
        set.remove(0x2000, 0x3000);
        assert_eq!(set.regions, vec![region(0x1000, 0x2000), region(0x3000, 0x5000)]);
        set.remove(0, 0x10000);
        assert!(set.regions.is_empty());
    }

    #[test]
    fn set_rights_changes_only_the_range() {
        let mut set = RegionSet::default();
        set.insert(region(0x1000, 0x4000));
        set.set_rights(0x2000, 0x3000, UserRights::ReadExecute);
        assert_eq!(set.regions.len(), 3);
        assert_eq!(set.regions[1], Region::anonymous(0x2000, 0x3000, UserRights::ReadExecute));
        assert!(set.covers(0x1000, 0x4000));
    }

    #[test]
    fn adjacent_regions_with_the_same_rights_merge() {
        let mut set = RegionSet::default();
        set.insert(region(0x1000, 0x2000));
        set.insert(region(0x3000, 0x4000));
        assert_eq!(set.len(), 2);
        assert_eq!(set.count_after_insert(&region(0x2000, 0x3000)), 1);
        set.insert(region(0x2000, 0x3000));
        assert_eq!(set.regions, vec![region(0x1000, 0x4000)]);
        let code = Region::anonymous(0x4000, 0x5000, UserRights::ReadExecute);
        assert_eq!(set.count_after_insert(&code), 2);
        set.insert(code);
        assert_eq!(set.len(), 2, "regions with different rights stay apart");
        set.insert(region(0x5000, 0x6000));
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn region_counts_are_predicted_before_the_change() {
        let mut set = RegionSet::default();
        set.insert(region(0x1000, 0x9000));
        // Removing the middle splits one region in two; removing an end does not.
        assert_eq!(set.count_after_remove(0x3000, 0x4000), 2);
        assert_eq!(set.count_after_remove(0x1000, 0x2000), 1);
        assert_eq!(set.count_after_remove(0, 0x10000), 0);
        // New rights in the middle: three regions; the same rights: still one.
        assert_eq!(set.count_after_set_rights(0x3000, 0x4000, UserRights::ReadOnly), 3);
        assert_eq!(set.count_after_set_rights(0x3000, 0x4000, UserRights::ReadWrite), 1);
        assert_eq!(set.count_after_set_rights(0x1000, 0x2000, UserRights::ReadOnly), 2);
        for (start, end, rights) in [
            (0x3000, 0x4000, UserRights::ReadOnly),
            (0x1000, 0x2000, UserRights::ReadExecute),
            (0x8000, 0x9000, UserRights::ReadOnly),
            (0x3000, 0x4000, UserRights::ReadWrite),
        ] {
            let predicted = set.count_after_set_rights(start, end, rights);
            set.set_rights(start, end, rights);
            assert_eq!(set.len(), predicted, "set_rights({start:#x}, {end:#x}, {rights:?})");
        }
    }

    #[test]
    fn gaps_are_found_first_fit_and_bounded() {
        let mut set = RegionSet::default();
        set.insert(region(0x1000, 0x2000));
        set.insert(region(0x4000, 0x5000));
        assert_eq!(set.find_gap(0x1000, 0x1000, 0x10000), Some(0x2000));
        assert_eq!(set.find_gap(0x3000, 0x1000, 0x10000), Some(0x5000));
        assert_eq!(set.find_gap(0x3000, 0x1000, 0x7000), None);
        assert_eq!(set.find_gap(u64::MAX, 0x1000, u64::MAX), None);
    }

    #[test]
    fn rights_never_include_write_and_execute() {
        assert_eq!(UserRights::from_prot(abi::PROT_READ | abi::PROT_WRITE | abi::PROT_EXEC), None);
        assert_eq!(UserRights::from_prot(abi::PROT_READ | abi::PROT_EXEC), Some(UserRights::ReadExecute));
        assert_eq!(UserRights::from_prot(abi::PROT_READ), Some(UserRights::ReadOnly));
        assert_eq!(UserRights::from_prot(1 << 9), None);
    }

    #[test]
    fn checked_range_refuses_unaligned_empty_wrapping_and_kernel_ranges() {
        assert_eq!(UserMemory::checked_range(0x1000_0000, 0x1000), Ok(0x1000_1000));
        assert_eq!(UserMemory::checked_range(0x1000_0001, 0x1000), Err(MemoryError::BadRange));
        assert_eq!(UserMemory::checked_range(0x1000_0000, 0), Err(MemoryError::BadRange));
        assert_eq!(UserMemory::checked_range(0x1000_0000, u64::MAX), Err(MemoryError::BadRange));
        assert_eq!(UserMemory::checked_range(0xffff_8000_0000_0000, 0x1000), Err(MemoryError::BadRange));
        assert_eq!(UserMemory::checked_range(0, 0x1000), Err(MemoryError::BadRange));
    }
}

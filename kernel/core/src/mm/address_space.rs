//! Per-process address spaces: a private lower half and the kernel half shared by all.
//!
//! An [`AddressSpace`] owns a top-level table whose 256 upper entries are copies of the
//! kernel root's (so the kernel is mapped identically everywhere) and whose lower half holds
//! only this process's pages. Switching processes is a CR3 write. Dropping an address space
//! (or releasing it step by step, [`AddressSpace::release_step`]) frees every page it owns,
//! every page table and the root, so creating and destroying one leaves the free-frame count
//! where it was.
//!
//! **Charging.** Every frame an address space causes to exist is charged to its process's
//! [`Account`]: its user pages and its page tables, the root included, and the pages of
//! shared memory it maps. A process may be charged at most [`MAX_PROCESS_FRAMES`] frames
//! (64 MiB); a mapping that would go past it fails, so mapping single pages far apart (one
//! page, and three tables for it) cannot use more than the limit.
//!
//! **Borrowed pages.** Shared memory and device memory are mapped *borrowed* (a software bit
//! in the page-table entry): unmapping them frees nothing, since the frames belong to the
//! memory object, which outlives the mapping.
//!
//! **Copy-on-write.** [`AddressSpace::share_step`] makes another address space a copy of
//! this one without copying a byte: every page of its own is shared (one more owner in
//! `frame`'s counts), and one it may write becomes read-only in both, marked
//! [`COPY_ON_WRITE`]. The first write to such a page, from ring 3 (a page fault) or from the
//! kernel (a user copy's check of a writable range), gives the writer a private copy, or the
//! page itself back writable if no other space owns it any more
//! ([`ProcessMemory::resolve_write_fault`](super::user_memory::ProcessMemory::resolve_write_fault)).
//! Each address space is charged for every page it maps, shared or not, as for shared
//! memory: the copy pays for what it would own after writing everywhere.
//!
//! **Failure leaves no trace.** A mapping that fails part-way unmaps what it mapped and frees
//! the page tables it made, so the address space is exactly as it was.
//!
//! User pages get their rights from [`UserRights`], which has no writable-and-executable
//! variant, so no user page can ever be W+X.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use ::x86_64::structures::paging::page_table::PageTableEntry;
use ::x86_64::structures::paging::{FrameAllocator, Mapper, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB};
use ::x86_64::{PhysAddr, VirtAddr};

use super::frame::{FRAME_SIZE, Frame};
use super::paging::{FIRST_KERNEL_ENTRY, kernel_root, mapper_for, points_to_table, table_at};
use super::physical_map::phys_to_virt;

/// Most frames one process may be charged for: its user pages (code, data, heap, stack,
/// `mmap`) and its page tables together, 64 MiB.
pub const MAX_PROCESS_FRAMES: u64 = 16 * 1024;

/// Pages mapped or unmapped between two calls of the caller's `pause`, so that a long
/// operation lets interrupts in (zeroing 64 pages is about 300,000 instructions).
pub const PAGES_PER_STEP: u64 = 64;

/// Marks a page this address space maps but does not own: unmapping it frees nothing.
const BORROWED: PageTableFlags = PageTableFlags::BIT_9;

/// Marks a page that is writable for its process but mapped read-only, because its frame
/// was shared by a copy-on-write copy: a write gets a private frame first.
pub const COPY_ON_WRITE: PageTableFlags = PageTableFlags::BIT_10;

/// Pages one [`AddressSpace::share_step`] shares: each is a table walk and a mapping in the
/// copy (tables made for it are zeroed too), so 16 of them keep a step, with its shootdown,
/// within about 50,000 instructions (`bench`'s `longest_masked_ns`; 64 took 191,000).
const SHARED_PAGES_PER_STEP: usize = 16;

/// Most table entries one [`AddressSpace::share_step`] looks at, besides the pages it shares.
const ENTRIES_PER_STEP: u64 = 1024;

/// Frames charged to one process: shared by its address space and the memory objects it
/// created, which may outlive it (their charge goes when they go).
#[derive(Debug, Default)]
pub struct Account {
    charged: AtomicU64,
}

impl Account {
    /// A new account with nothing charged.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Frames charged.
    pub fn charged(&self) -> u64 {
        self.charged.load(Ordering::Relaxed)
    }

    /// Charges `frames` more, unless that would pass [`MAX_PROCESS_FRAMES`].
    pub fn try_charge(&self, frames: u64) -> Result<(), MemoryError> {
        self.charged
            .try_update(Ordering::Relaxed, Ordering::Relaxed, |charged| {
                charged.checked_add(frames).filter(|&total| total <= MAX_PROCESS_FRAMES)
            })
            .map(|_| ())
            .map_err(|_| MemoryError::LimitReached)
    }

    /// Takes back a charge of `frames`.
    pub fn uncharge(&self, frames: u64) {
        self.charged.fetch_sub(frames, Ordering::Relaxed);
    }
}

/// Page-table flags of the entries that lead to user pages.
const USER_TABLE_FLAGS: PageTableFlags =
    PageTableFlags::PRESENT.union(PageTableFlags::WRITABLE).union(PageTableFlags::USER_ACCESSIBLE);

/// The rights of a user page. There is deliberately no writable-and-executable variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserRights {
    /// Readable only (rodata).
    ReadOnly,
    /// Readable and writable, never executable (data, bss, heap, stack).
    ReadWrite,
    /// Readable and executable, never writable (text).
    ReadExecute,
}

impl UserRights {
    /// The rights for `abi::PROT_*` bits, or `None` for W+X (or unknown bits).
    pub fn from_prot(prot: u64) -> Option<Self> {
        let known = abi::PROT_READ | abi::PROT_WRITE | abi::PROT_EXEC;
        if prot & !known != 0 {
            return None;
        }
        match (prot & abi::PROT_WRITE != 0, prot & abi::PROT_EXEC != 0) {
            (false, false) => Some(Self::ReadOnly),
            (true, false) => Some(Self::ReadWrite),
            (false, true) => Some(Self::ReadExecute),
            (true, true) => None,
        }
    }

    fn flags(self) -> PageTableFlags {
        let base = PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE;
        match self {
            Self::ReadOnly => base | PageTableFlags::NO_EXECUTE,
            Self::ReadWrite => base | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE,
            Self::ReadExecute => base,
        }
    }
}

/// Why a change to an address space failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryError {
    /// No free physical frame.
    OutOfMemory,
    /// The process would go past [`MAX_PROCESS_FRAMES`].
    LimitReached,
    /// A page in the range is already mapped.
    AlreadyMapped,
    /// A page in the range is not mapped.
    NotMapped,
    /// The range is not page-aligned or not inside the user half.
    BadRange,
}

impl MemoryError {
    /// The errno a syscall reports for this error.
    pub fn errno(self) -> i64 {
        match self {
            Self::OutOfMemory | Self::LimitReached => abi::errno::ENOMEM,
            Self::AlreadyMapped | Self::NotMapped | Self::BadRange => abi::errno::EINVAL,
        }
    }
}

/// A process's page tables.
#[derive(Debug)]
pub struct AddressSpace {
    root: PhysFrame,
    /// Where its frames are charged: user pages and page tables, the root included.
    account: Arc<Account>,
    /// Which address space this is and how often a mapping was taken away or narrowed.
    mappings: Arc<MappingCount>,
}

/// Names an address space and a state of its mappings: a range checked accessible under one
/// stamp stays accessible while the active space shows the same stamp, since every change
/// that could take a page away (unmapping, narrowing rights, releasing) gives a new one and
/// no two address spaces share a stamp. `usercopy` keeps it with each checked range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingStamp {
    space: u64,
    removals: u64,
}

impl MappingStamp {
    /// A stamp no address space shows (their numbers start at 1).
    pub const NONE: Self = Self { space: 0, removals: 0 };

    /// Whether `other` names the same address space (perhaps after mappings were taken away).
    pub fn same_space(self, other: Self) -> bool {
        self.space == other.space && self.space != 0
    }
}

/// An address space's number and how often a page was taken from it, shared with its
/// [`ProcessMemory`](super::user_memory::ProcessMemory) so that a copy can compare stamps
/// without taking the memory's lock.
#[derive(Debug)]
pub struct MappingCount {
    space: u64,
    removals: AtomicU64,
}

impl MappingCount {
    /// The current stamp.
    #[inline]
    pub fn stamp(&self) -> MappingStamp {
        MappingStamp { space: self.space, removals: self.removals.load(Ordering::Acquire) }
    }
}

/// The next address space's number (never reused, unlike the root's frame).
static NEXT_SPACE: AtomicU64 = AtomicU64::new(1);

/// The pages of a user range: checked to be page-aligned and inside the user half.
fn user_pages(start: VirtAddr, pages: u64) -> Result<impl Iterator<Item = Page>, MemoryError> {
    let length = pages.checked_mul(FRAME_SIZE).ok_or(MemoryError::BadRange)?;
    if !start.is_aligned(FRAME_SIZE) || !abi::memory::is_user_range(start.as_u64(), length) {
        return Err(MemoryError::BadRange);
    }
    let first = Page::<Size4KiB>::containing_address(start);
    Ok((0..pages).map(move |index| first + index))
}

/// Page tables for new mappings, charged to an account and refused past its limit.
struct ChargedTables<'a> {
    account: &'a Account,
}

// SAFETY: every frame returned is free, zeroed and owned by the address space from then on
// (it becomes one of its page tables, freed with it).
unsafe impl FrameAllocator<Size4KiB> for ChargedTables<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        self.account.try_charge(1).ok()?;
        match Frame::allocate_zeroed() {
            Some(frame) => Some(frame.into_raw()),
            None => {
                self.account.uncharge(1);
                None
            }
        }
    }
}

impl AddressSpace {
    /// A new address space: an empty lower half and the kernel half, charged to a new
    /// account.
    pub fn new() -> Result<Self, MemoryError> {
        let account = Account::new();
        account.try_charge(1)?;
        let root = Frame::allocate_zeroed().ok_or(MemoryError::OutOfMemory)?.into_raw();
        // SAFETY: `root` is a fresh zeroed frame only this function uses, and the kernel root
        // is only read here; the two are different frames.
        let (table, kernel) = unsafe { (table_at(root), table_at(kernel_root())) };
        for index in FIRST_KERNEL_ENTRY..512 {
            table[index] = kernel[index].clone();
        }
        let space = NEXT_SPACE.fetch_add(1, Ordering::Relaxed);
        let mappings = Arc::new(MappingCount { space, removals: AtomicU64::new(0) });
        Ok(Self { root, account, mappings })
    }

    /// Its mapping count, whose stamp changes whenever a page may have been taken away.
    pub fn mappings(&self) -> &Arc<MappingCount> {
        &self.mappings
    }

    /// Records that a page may have been taken away or narrowed: ranges checked before no
    /// longer count as checked.
    fn mappings_removed(&mut self) {
        self.mappings.removals.fetch_add(1, Ordering::Release);
    }

    /// The top-level table (to be activated while `self` lives; see `ProcessMemory`).
    pub(super) fn root(&self) -> PhysFrame {
        self.root
    }

    /// Makes the kernel's own table the active one (before this address space goes away).
    pub fn deactivate(&self) {
        if crate::arch::paging::active_root() == self.root {
            // SAFETY: the kernel root maps the kernel half identically.
            unsafe { crate::arch::paging::switch_root(kernel_root()) };
        }
    }

    /// The account its frames are charged to.
    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// The level-1 entry that maps `page`, if the tables leading to it exist.
    fn leaf_entry(&mut self, page: Page) -> Option<&mut PageTableEntry> {
        let indices = [page.p4_index(), page.p3_index(), page.p2_index()];
        // SAFETY: the root belongs to this address space and `&mut self` rules out any other
        // reference to its tables while the returned entry is borrowed.
        let mut table = unsafe { table_at(self.root) };
        for index in indices {
            let entry = &table[index];
            if !points_to_table(entry) {
                return None;
            }
            let next = PhysFrame::containing_address(entry.addr());
            // SAFETY: the entry leads to a lower-level table of this address space; the parent
            // reference is not used again.
            table = unsafe { table_at(next) };
        }
        Some(&mut table[page.p1_index()])
    }

    /// Maps `pages` zeroed pages from `start` with `rights`, calling `pause` every
    /// [`PAGES_PER_STEP`] pages. Every page of the range must be unmapped. On failure
    /// nothing stays mapped and no page table made for it is kept.
    pub fn map_zeroed(
        &mut self,
        start: VirtAddr,
        pages: u64,
        rights: UserRights,
        pause: &mut dyn FnMut(),
    ) -> Result<(), MemoryError> {
        let range = user_pages(start, pages)?;
        if self.account.charged().checked_add(pages).is_none_or(|total| total > MAX_PROCESS_FRAMES) {
            return Err(MemoryError::LimitReached);
        }
        for (mapped, page) in (0..).zip(range) {
            if mapped > 0 && mapped % PAGES_PER_STEP == 0 {
                pause();
            }
            let result = Frame::allocate_zeroed().ok_or(MemoryError::OutOfMemory).and_then(|frame| {
                let physical = frame.phys();
                self.map_one(page, physical, rights.flags())?;
                // The page table owns the frame now; unmapping gives it back.
                frame.into_raw();
                Ok(())
            });
            if let Err(error) = result {
                self.unmap_pages(start, mapped, pause);
                self.free_empty_tables(start, pages);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Maps `frames` from `start` with `rights`, borrowed: unmapping them frees nothing. Each
    /// page is charged like an own one. Every page of the range must be unmapped; on failure
    /// nothing stays mapped.
    ///
    /// # Safety
    /// The frames must stay allocated, and hold nothing the kernel relies on, for as long as
    /// they are mapped here: the caller keeps their owner alive until it unmaps the range.
    pub unsafe fn map_borrowed(
        &mut self,
        start: VirtAddr,
        frames: &[PhysFrame],
        rights: UserRights,
        pause: &mut dyn FnMut(),
    ) -> Result<(), MemoryError> {
        let pages = frames.len() as u64;
        let range = user_pages(start, pages)?;
        for ((mapped, page), &frame) in (0..).zip(range).zip(frames) {
            if mapped > 0 && mapped % PAGES_PER_STEP == 0 {
                pause();
            }
            if let Err(error) = self.map_one(page, frame, rights.flags() | BORROWED) {
                self.unmap_pages(start, mapped, pause);
                self.free_empty_tables(start, pages);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Maps `frame` at `page` with `flags`, charging the page and any table it needs.
    fn map_one(&mut self, page: Page, frame: PhysFrame, flags: PageTableFlags) -> Result<(), MemoryError> {
        self.account.try_charge(1)?;
        // SAFETY: `self.root` is a valid top-level table owned by this address space, and
        // `&mut self` guarantees no other mapper over it is live.
        let mut mapper = unsafe { mapper_for(self.root) };
        let mut tables = ChargedTables { account: &self.account };
        // SAFETY: the page is in the private lower half, so the mapping aliases no kernel
        // memory; the frame is either fresh and handed to this table, or borrowed under
        // `map_borrowed`'s contract.
        let result = unsafe { mapper.map_to_with_table_flags(page, frame, flags, USER_TABLE_FLAGS, &mut tables) };
        match result {
            Ok(flush) => {
                flush.flush();
                Ok(())
            }
            Err(error) => {
                let at_limit = self.account.charged() >= MAX_PROCESS_FRAMES;
                self.account.uncharge(1);
                Err(match error {
                    _ if at_limit => MemoryError::LimitReached,
                    ::x86_64::structures::paging::mapper::MapToError::FrameAllocationFailed => MemoryError::OutOfMemory,
                    _ => MemoryError::AlreadyMapped,
                })
            }
        }
    }

    /// Unmaps every mapped page in `pages` pages from `start` and frees their frames,
    /// calling `pause` every [`PAGES_PER_STEP`] pages; pages that are not mapped are skipped.
    /// Page tables left empty are freed as well, so mapping and unmapping pages all over the
    /// user half cannot pile up tables.
    pub fn unmap(&mut self, start: VirtAddr, pages: u64, pause: &mut dyn FnMut()) -> Result<(), MemoryError> {
        let _checked = user_pages(start, pages)?;
        self.unmap_pages(start, pages, pause);
        self.free_empty_tables(start, pages);
        Ok(())
    }

    /// The page-by-page part of [`unmap`](Self::unmap), for a range already checked. Works in
    /// steps of [`PAGES_PER_STEP`] pages: the step's entries are cleared, every CPU that may
    /// cache them is made to forget them (one shootdown per step), and only then are the
    /// frames freed, so no CPU can reach a frame after it is reused.
    fn unmap_pages(&mut self, start: VirtAddr, pages: u64, pause: &mut dyn FnMut()) {
        let first = Page::<Size4KiB>::containing_address(start);
        let mut done = 0;
        while done < pages {
            if done > 0 {
                pause();
            }
            // Each step, since a range may be checked during a pause.
            self.mappings_removed();
            let step = (pages - done).min(PAGES_PER_STEP);
            let mut to_free = [None; PAGES_PER_STEP as usize];
            let mut cleared_any = false;
            for (index, slot) in (0..step).zip(to_free.iter_mut()) {
                let Some(entry) = self.leaf_entry(first + done + index) else { continue };
                if entry.is_unused() {
                    continue;
                }
                let frame = PhysFrame::<Size4KiB>::containing_address(entry.addr());
                if !entry.flags().contains(BORROWED) {
                    *slot = Some(frame);
                }
                entry.set_unused();
                cleared_any = true;
                self.account.uncharge(1);
            }
            if cleared_any {
                crate::arch::tlb::shoot_down(Some(self.root), (first + done).start_address(), step);
            }
            for frame in to_free.into_iter().flatten() {
                // SAFETY: the frame was mapped by `map_zeroed` (or shared by a copy), which
                // handed it to this page table; its mapping here was just removed and no CPU
                // caches it any more. Another address space may still own it.
                drop(unsafe { super::frame::release_owned(frame) });
            }
            done += step;
        }
    }

    /// Frees the page tables under `[start, start + pages)` that map nothing any more.
    fn free_empty_tables(&mut self, start: VirtAddr, pages: u64) {
        if pages == 0 {
            return;
        }
        let (first, end) = (start.as_u64(), start.as_u64() + pages * FRAME_SIZE);
        // SAFETY: the root is this address space's top-level table, and `&mut self` rules
        // out any mapper or other reference to its tables while this runs.
        let root = unsafe { table_at(self.root) };
        let freed = free_empty_tables(root, 4, 0, first, end);
        if freed > 0 {
            self.account.uncharge(freed);
            // Paging-structure caches may still hold entries that lead to the freed tables;
            // `invlpg` drops all of them, whatever the address, on every CPU that has this
            // space loaded (only this process could use them meanwhile, and it is here).
            crate::arch::tlb::shoot_down(Some(self.root), start, 1);
        }
    }

    /// Gives every page in the range `rights`. Every page must be mapped.
    pub fn protect(&mut self, start: VirtAddr, pages: u64, rights: UserRights) -> Result<(), MemoryError> {
        let range = user_pages(start, pages)?;
        if !self.range_mapped(start, pages) {
            return Err(MemoryError::NotMapped);
        }
        self.mappings_removed();
        for page in range {
            let entry = self.leaf_entry(page).ok_or(MemoryError::NotMapped)?;
            let frame = PhysFrame::<Size4KiB>::containing_address(entry.addr());
            let borrowed = entry.flags() & BORROWED;
            let mut flags = rights.flags() | borrowed;
            // A frame another address space still owns stays read-only until written.
            if borrowed.is_empty() && flags.contains(PageTableFlags::WRITABLE) && super::frame::is_shared(frame) {
                flags = (flags - PageTableFlags::WRITABLE) | COPY_ON_WRITE;
            }
            entry.set_frame(frame, flags);
        }
        crate::arch::tlb::shoot_down(Some(self.root), start, pages);
        Ok(())
    }

    fn range_mapped(&mut self, start: VirtAddr, pages: u64) -> bool {
        match user_pages(start, pages) {
            Ok(mut range) => range.all(|page| self.page_flags(page.start_address()).is_some()),
            Err(_) => false,
        }
    }

    /// The flags of the user page containing `address`, if one is mapped there.
    pub fn page_flags(&mut self, address: VirtAddr) -> Option<PageTableFlags> {
        if !abi::memory::is_user_range(address.as_u64(), 1) {
            return None;
        }
        let entry = self.leaf_entry(Page::containing_address(address))?;
        let flags = entry.flags();
        flags.contains(PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE).then_some(flags)
    }

    /// Whether all of `[start, start + len)` is user memory, mapped, and writable too when
    /// `write` is set. The arithmetic is checked, so a huge `len` is simply refused.
    pub fn check_user_access(&mut self, start: u64, len: u64, write: bool) -> bool {
        // SAFETY: `self` is alive, so its root is, and borrowing it mutably rules out any other
        // change to its tables meanwhile.
        unsafe { user_range_accessible(self.root, start, len, write) }
    }

    /// The physical address behind the mapped user address `address`.
    fn physical(&mut self, address: VirtAddr) -> Option<PhysAddr> {
        self.page_flags(address)?;
        let entry = self.leaf_entry(Page::containing_address(address))?;
        Some(entry.addr() + address.as_u64() % FRAME_SIZE)
    }

    /// Copies `bytes` into this address space at `address` through the kernel's physical
    /// map, whatever the pages' user rights (the loader fills read-only text this way). Every
    /// page must already be mapped.
    pub fn write(&mut self, address: VirtAddr, bytes: &[u8]) -> Result<(), MemoryError> {
        let mut done = 0;
        while done < bytes.len() {
            let target = address + done as u64;
            let physical = self.physical(target).ok_or(MemoryError::NotMapped)?;
            let room = (FRAME_SIZE - target.as_u64() % FRAME_SIZE) as usize;
            let chunk = room.min(bytes.len() - done);
            // SAFETY: `physical..physical + chunk` lies inside one frame owned by this address
            // space (checked above) and is reached through the physical-memory map; the source
            // is a kernel slice that cannot overlap a user frame.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    bytes[done..].as_ptr(),
                    phys_to_virt(physical).as_mut_ptr::<u8>(),
                    chunk,
                );
            }
            done += chunk;
        }
        Ok(())
    }

    /// Copies `len` bytes of physical memory at `source`, which must lie inside one frame
    /// that the caller owns or shares (a shared-memory object's), into this address space at
    /// `address` (mapped pages, whatever their user rights, as for [`write`](Self::write)).
    pub(super) fn write_from_physical(&mut self, address: VirtAddr, source: PhysAddr, len: u64) -> Result<(), MemoryError> {
        let mut done = 0;
        while done < len {
            let target = address + done;
            let physical = self.physical(target).ok_or(MemoryError::NotMapped)?;
            let chunk = (FRAME_SIZE - target.as_u64() % FRAME_SIZE).min(len - done);
            // SAFETY: the target lies inside one frame owned by this address space (checked
            // above), the source inside the caller's frame; both are reached through the
            // physical-memory map, and `copy` tolerates the two being the same memory.
            unsafe {
                core::ptr::copy(
                    phys_to_virt(source + done).as_ptr::<u8>(),
                    phys_to_virt(physical).as_mut_ptr::<u8>(),
                    chunk as usize,
                );
            }
            done += chunk;
        }
        Ok(())
    }

    /// One step of making `copy` (a new address space) a copy-on-write copy of this one: from
    /// the user address `*cursor` on, shares up to [`SHARED_PAGES_PER_STEP`] mapped pages (looking at
    /// no more than [`ENTRIES_PER_STEP`] entries) and moves `*cursor` past them; returns
    /// whether the whole lower half is done. Own pages this space may write become read-only
    /// and [`COPY_ON_WRITE`] in both; borrowed ones (shared memory, device memory) are mapped
    /// borrowed in `copy` too, with the same rights, and stay shared.
    ///
    /// The order keeps a write by this space's threads on other CPUs: the step's entries are
    /// write-protected first, then every CPU that may cache them forgets them, and only then
    /// does `copy` map the frames. A write that lands before the shootdown is in the frame
    /// both will share (it happened before the copy); after it, a write faults, and the fault
    /// waits for the big kernel lock, which the caller holds until the step is done.
    ///
    /// On an error (`copy`'s limit, or no frame for a table) `copy` maps what it was given so
    /// far, and dropping it gives that back; this space is left correct (some of its pages
    /// read-only until written, which nobody can tell).
    pub fn share_step(&mut self, copy: &mut AddressSpace, cursor: &mut u64) -> Result<bool, MemoryError> {
        let step_start = *cursor;
        let mut shared: [Option<(Page, PhysFrame, PageTableFlags)>; SHARED_PAGES_PER_STEP] = [None; SHARED_PAGES_PER_STEP];
        let mut entries = ENTRIES_PER_STEP;
        let mut narrowed = false;
        let mut done = false;
        for slot in &mut shared {
            // SAFETY: the root is this address space's; `&mut self` and the big kernel lock
            // (held by every caller that changes tables) keep its tables from changing.
            let Some(entry) = (unsafe { next_user_leaf(self.root, cursor, &mut entries) }) else {
                done = *cursor >= abi::memory::USER_END;
                break;
            };
            // SAFETY: `next_user_leaf` returned a pointer to a present level-1 entry of this
            // space, inside its table.
            let raw = unsafe { entry.read_volatile() };
            let frame = PhysFrame::containing_address(PhysAddr::new(raw & ENTRY_ADDRESS_MASK));
            let mut flags = PageTableFlags::from_bits_truncate(raw) - PageTableFlags::ACCESSED - PageTableFlags::DIRTY;
            if !flags.contains(BORROWED) && flags.intersects(PageTableFlags::WRITABLE | COPY_ON_WRITE) {
                narrowed |= flags.contains(PageTableFlags::WRITABLE);
                flags = (flags - PageTableFlags::WRITABLE) | COPY_ON_WRITE;
                // SAFETY: as above; the entry keeps its frame and loses only the right to write.
                unsafe { entry.write_volatile(frame.start_address().as_u64() | flags.bits()) };
            }
            *slot = Some((Page::containing_address(VirtAddr::new(*cursor)), frame, flags));
            *cursor += FRAME_SIZE;
        }
        if narrowed {
            // Checked writable ranges of this space's threads must look again (and break the
            // sharing) before they copy.
            self.mappings_removed();
            let pages = (*cursor - step_start) / FRAME_SIZE;
            crate::arch::tlb::shoot_down(Some(self.root), VirtAddr::new(step_start), pages);
        }
        for (page, frame, flags) in shared.into_iter().flatten() {
            copy.map_one(page, frame, flags)?;
            if !flags.contains(BORROWED) {
                super::frame::share(frame);
            }
        }
        Ok(done)
    }

    /// Frees up to `budget` pages (and the tables they leave empty) of the lower half, for
    /// tearing a large address space down in steps; returns whether everything is gone. The
    /// address space must not be active.
    pub fn release_step(&mut self, budget: u64) -> bool {
        assert_ne!(crate::arch::paging::active_root(), self.root, "releasing the active address space");
        self.mappings_removed();
        let mut left = budget;
        let mut released = Released::default();
        // SAFETY: the root belongs to this address space and is not active, so only this
        // code reaches its tables.
        let root = unsafe { table_at(self.root) };
        let done = release_tree(root, 4, &mut left, &mut released);
        self.account.uncharge(released.tables + released.pages);
        done
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        self.deactivate();
        while !self.release_step(u64::MAX) {}
        // SAFETY: the root came from `Frame::into_raw` in `new`, the address space is no
        // longer active and its lower half is empty, so nothing refers to it any more.
        drop(unsafe { Frame::from_raw(self.root) });
        self.account.uncharge(1);
    }
}

/// Bytes one entry of a table at `level` (4 = the root .. 1 = a page table) covers.
const fn entry_span(level: u8) -> u64 {
    FRAME_SIZE << (9 * (level as u64 - 1))
}

/// In `table` (at `level`, 4 = the root .. 2 = a page directory, covering addresses from
/// `base`), frees every lower-level table under the user range `[start, end)` that no longer
/// maps anything, deepest first, and clears the entries that pointed to them. Returns how many
/// tables were freed. Tables that also cover addresses outside the range are freed only if
/// they are empty all the same.
fn free_empty_tables(table: &mut PageTable, level: u8, base: u64, start: u64, end: u64) -> u64 {
    let span = entry_span(level);
    let first = ((start - base) / span) as usize;
    let last = (((end - 1) - base) / span) as usize;
    let mut freed = 0;
    for index in first..=last.min(511) {
        let entry = &mut table[index];
        if !points_to_table(entry) {
            continue;
        }
        let child_frame = PhysFrame::containing_address(entry.addr());
        // SAFETY: the entry points to a lower-level table of this address space, which the
        // caller has exclusive access to; no other reference to that table exists here.
        let child = unsafe { table_at(child_frame) };
        if level > 2 {
            let child_base = base + index as u64 * span;
            freed += free_empty_tables(child, level - 1, child_base, start.max(child_base), end.min(child_base + span));
        }
        if child.iter().all(PageTableEntry::is_unused) {
            entry.set_unused();
            // SAFETY: the table was allocated for this address space by `ChargedTables`,
            // and the only entry pointing to it was just cleared.
            drop(unsafe { Frame::from_raw(child_frame) });
            freed += 1;
        }
    }
    freed
}

/// What [`release_tree`] freed.
#[derive(Default)]
struct Released {
    pages: u64,
    tables: u64,
}

/// Frees the pages mapped under `table` (at `level`, 4 = the root, whose kernel half is left
/// alone, .. 1 = a page table), at most `budget` of them, and every table that becomes
/// empty. Returns whether nothing is left under `table`.
fn release_tree(table: &mut PageTable, level: u8, budget: &mut u64, released: &mut Released) -> bool {
    let entries = if level == 4 { FIRST_KERNEL_ENTRY } else { 512 };
    for entry in table.iter_mut().take(entries) {
        if entry.is_unused() {
            continue;
        }
        if *budget == 0 {
            return false;
        }
        let frame = PhysFrame::containing_address(entry.addr());
        if level == 1 {
            *budget -= 1;
            released.pages += 1;
            if entry.flags().contains(BORROWED) {
                entry.set_unused();
                continue;
            }
        } else {
            // SAFETY: the entry leads to a lower-level table of an address space being torn
            // down; nothing else references it.
            let child = unsafe { table_at(frame) };
            if !release_tree(child, level - 1, budget, released) {
                return false;
            }
            released.tables += 1;
        }
        entry.set_unused();
        // A user page may have other owners (copy-on-write), which keep it; a table never has.
        // SAFETY: the frame belonged to this address space and its entry here was just
        // cleared; the space is not active, so no stale translation can be used.
        drop(unsafe { super::frame::release_owned(frame) });
    }
    true
}

/// Whether all of `[start, start + len)` is user memory, mapped under `root`, and writable
/// too when `write` is set (a copy-on-write page in it is broken: it becomes the process's
/// own and writable). The arithmetic is checked, so a huge `len` is simply refused.
///
/// # Safety
/// As for [`read_user_leaf`].
pub(super) unsafe fn user_range_accessible(root: PhysFrame, start: u64, len: u64, write: bool) -> bool {
    if !abi::memory::is_user_range(start, len) {
        return false;
    }
    if len == 0 {
        return true;
    }
    let needed = if write {
        PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE | PageTableFlags::WRITABLE
    } else {
        PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE
    };
    let mut page = start & !(FRAME_SIZE - 1);
    let last = start + len - 1;
    while page <= last {
        // SAFETY: passed on from the caller.
        let Some((flags, _)) = (unsafe { read_user_leaf(root, page) }) else { return false };
        let ready = flags.contains(needed)
            // SAFETY: passed on from the caller.
            || write && flags.contains(COPY_ON_WRITE) && unsafe { break_copy_on_write(root, page) }.is_ok();
        if !ready {
            return false;
        }
        page += FRAME_SIZE;
    }
    true
}

/// Makes the copy-on-write page at the user address `address` under `root` writable: a
/// private copy of its frame if another address space still owns that, else the page itself
/// (the other owners have let it go). `Ok` if the page is writable now (perhaps already, a
/// sibling thread having broken it first), `NotMapped` if it is not a mapped copy-on-write
/// page, `OutOfMemory` if no frame is free for the copy. The page's charge does not change:
/// it was charged to this space when it was shared.
///
/// # Safety
/// As for [`read_user_leaf`]; the caller holds the big kernel lock (a table entry changes).
// Out of line, so that the checks of every user copy, which almost never get here, stay as
// short as they were.
#[cold]
#[inline(never)]
unsafe fn break_copy_on_write(root: PhysFrame, address: u64) -> Result<(), MemoryError> {
    // SAFETY: passed on from the caller.
    let entry = unsafe { user_leaf_pointer(root, address) }.ok_or(MemoryError::NotMapped)?;
    // SAFETY: a level-1 entry of a live table, inside the table.
    let raw = unsafe { entry.read_volatile() };
    let flags = PageTableFlags::from_bits_truncate(raw);
    let user_page = PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE;
    if flags.contains(user_page | PageTableFlags::WRITABLE) {
        return Ok(());
    }
    if !flags.contains(user_page | COPY_ON_WRITE) {
        return Err(MemoryError::NotMapped);
    }
    let old = PhysFrame::containing_address(PhysAddr::new(raw & ENTRY_ADDRESS_MASK));
    let writable = ((flags - COPY_ON_WRITE) | PageTableFlags::WRITABLE).bits();
    let page = VirtAddr::new(address & !(FRAME_SIZE - 1));
    if super::frame::is_shared(old) {
        let private = Frame::allocate_copy_of(old).ok_or(MemoryError::OutOfMemory)?.into_raw();
        // SAFETY: as above; the entry now owns the private frame.
        unsafe { entry.write_volatile(private.start_address().as_u64() | writable) };
        // No CPU may keep reading the shared frame through this space: the other owner may
        // free it once this one lets it go.
        crate::arch::tlb::shoot_down(Some(root), page, 1);
        // SAFETY: this space's entry no longer names the frame and no CPU caches it.
        drop(unsafe { super::frame::release_owned(old) });
    } else {
        // SAFETY: as above; the frame is this space's alone, only its right to write changes.
        unsafe { entry.write_volatile((raw & ENTRY_ADDRESS_MASK) | writable) };
        // A stale read-only translation elsewhere would only fault once more.
        crate::arch::tlb::shoot_down(Some(root), page, 1);
    }
    Ok(())
}

/// The next mapped user page at or after `*cursor` (a page address) under `root`, moving
/// `*cursor` to it: a pointer to its level-1 entry. Empty tables are skipped whole. `None`
/// when nothing is mapped from `*cursor` to the end of the user half (`*cursor` then at or
/// past it), or when `*entries` entries were looked at first (`*cursor` is where to go on).
///
/// # Safety
/// As for [`read_user_leaf`].
unsafe fn next_user_leaf(root: PhysFrame, cursor: &mut u64, entries: &mut u64) -> Option<*mut u64> {
    'search: while *cursor < abi::memory::USER_END {
        let mut frame = root;
        for shift in [39, 30, 21, 12] {
            let span = 1u64 << shift;
            loop {
                // Out of entries, perhaps half-way down: the next step starts from the root.
                *entries = entries.checked_sub(1)?;
                let index = ((*cursor >> shift) & 511) as usize;
                // SAFETY: `frame` is the root or one of its tables (each level's entry leads
                // to the next), reached through the physical-memory map; the index is below
                // 512.
                let pointer = unsafe { phys_to_virt(frame.start_address()).as_mut_ptr::<u64>().add(index) };
                // SAFETY: as above.
                let raw = unsafe { pointer.read_volatile() };
                if raw & PageTableFlags::PRESENT.bits() != 0 {
                    if shift == 12 {
                        return Some(pointer);
                    }
                    frame = PhysFrame::containing_address(PhysAddr::new(raw & ENTRY_ADDRESS_MASK));
                    break;
                }
                // Nothing under this entry: on to the next one in the same table, or, past
                // the table's last, from the root again.
                *cursor = (*cursor & !(span - 1)) + span;
                if index == 511 || *cursor >= abi::memory::USER_END {
                    continue 'search;
                }
            }
        }
    }
    None
}

/// A pointer to the level-1 entry for the user address `address` under `root`, if the
/// tables above it exist (and none maps a huge page).
///
/// # Safety
/// As for [`read_user_leaf`].
unsafe fn user_leaf_pointer(root: PhysFrame, address: u64) -> Option<*mut u64> {
    let mut frame = root;
    for shift in [39, 30, 21] {
        let index = ((address >> shift) & 511) as usize;
        // SAFETY: `frame` is the root or one of its tables, reached through the
        // physical-memory map; the index is below 512.
        let raw = unsafe { phys_to_virt(frame.start_address()).as_ptr::<u64>().add(index).read_volatile() };
        let flags = PageTableFlags::from_bits_truncate(raw);
        if !flags.contains(PageTableFlags::PRESENT) || flags.contains(PageTableFlags::HUGE_PAGE) {
            return None;
        }
        frame = PhysFrame::containing_address(PhysAddr::new(raw & ENTRY_ADDRESS_MASK));
    }
    let index = ((address >> 12) & 511) as usize;
    // SAFETY: a level-1 table of the space; the index is below 512.
    Some(unsafe { phys_to_virt(frame.start_address()).as_mut_ptr::<u64>().add(index) })
}

/// The last-level entry for the user address `address` under `root`, read straight from the
/// tables with plain loads (the hot path of every user copy's check): its flags and frame.
/// `None` where a level above it is missing or maps a huge page. No reference into a table is
/// made, so a reference the address space's owner keeps to one (suspended at a preemption
/// point in a long `mmap`) is not aliased.
///
/// # Safety
/// `root` must be the top-level table of a live address space whose tables nothing changes
/// meanwhile: the caller borrows the `AddressSpace`, or holds the big kernel lock (tables
/// change only under it, and are whole between the steps of a long operation, where its
/// owner lets the lock go).
unsafe fn read_user_leaf(root: PhysFrame, address: u64) -> Option<(PageTableFlags, PhysAddr)> {
    let mut frame = root;
    for shift in [39, 30, 21, 12] {
        let index = ((address >> shift) & 511) as usize;
        // SAFETY: `frame` is the root or one of its tables (the caller's promise, and each
        // level's entry leads to the next), reached through the physical-memory map; the
        // index is below 512, inside the table.
        let raw = unsafe { phys_to_virt(frame.start_address()).as_ptr::<u64>().add(index).read_volatile() };
        let flags = PageTableFlags::from_bits_truncate(raw);
        let next = PhysAddr::new_truncate(raw & ENTRY_ADDRESS_MASK);
        if shift == 12 {
            return Some((flags, next));
        }
        if !flags.contains(PageTableFlags::PRESENT) || flags.contains(PageTableFlags::HUGE_PAGE) {
            return None;
        }
        frame = PhysFrame::containing_address(next);
    }
    None
}

/// The bits of a page-table entry that hold the frame's address.
const ENTRY_ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The physical address behind the mapped user address `address` under `root`, if mapped
/// user-accessible (writable too, if `write`).
///
/// # Safety
/// As for [`read_user_leaf`].
unsafe fn user_physical(root: PhysFrame, address: u64, write: bool) -> Option<PhysAddr> {
    // SAFETY: passed on from the caller.
    let (flags, frame) = unsafe { read_user_leaf(root, address) }?;
    let needed = PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE;
    if !write {
        return flags.contains(needed).then(|| frame + address % FRAME_SIZE);
    }
    if flags.contains(needed | PageTableFlags::WRITABLE) {
        return Some(frame + address % FRAME_SIZE);
    }
    // A copy-on-write page: written by the kernel for its process, it gets its own frame.
    // SAFETY: passed on from the caller.
    unsafe { break_copy_on_write(root, address) }.ok()?;
    // SAFETY: passed on from the caller.
    let (_, frame) = unsafe { read_user_leaf(root, address) }?;
    Some(frame + address % FRAME_SIZE)
}

/// Copies `bytes` (kernel memory) to `target_address` under `target` (which need not be
/// active), through the physical-memory map. The range must be mapped writable user memory,
/// else `NotMapped` (after copying whatever came before the bad page).
///
/// # Safety
/// As for [`read_user_leaf`], for `target`.
pub(super) unsafe fn copy_into_root(target: PhysFrame, target_address: u64, bytes: &[u8]) -> Result<(), MemoryError> {
    let len = bytes.len() as u64;
    if !abi::memory::is_user_range(target_address, len) {
        return Err(MemoryError::BadRange);
    }
    let mut done = 0;
    while done < len {
        let to = target_address + done;
        // SAFETY: passed on from the caller.
        let Some(to_physical) = (unsafe { user_physical(target, to, true) }) else {
            return Err(MemoryError::NotMapped);
        };
        let chunk = (FRAME_SIZE - to % FRAME_SIZE).min(len - done);
        // SAFETY: the target lies in one mapped, writable user frame of its space, reached
        // through the physical-memory map; the source, `done + chunk` bytes of a kernel slice,
        // overlaps no user frame.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(done as usize),
                phys_to_virt(to_physical).as_mut_ptr::<u8>(),
                chunk as usize,
            );
        }
        done += chunk;
    }
    Ok(())
}

/// Copies `len` bytes from `source_address` under `source` to `target_address` under
/// `target`, through the physical-memory map (neither needs to be active; they may be the
/// same address space). The source range must be mapped user memory and the target range
/// mapped writable user memory, else `NotMapped` (after copying whatever came before the
/// bad page). The two ranges may be the same frames (shared memory mapped by both), so the
/// copy tolerates overlap.
///
/// # Safety
/// As for [`read_user_leaf`], for both roots.
pub(super) unsafe fn copy_between_roots(
    source: PhysFrame,
    source_address: u64,
    target: PhysFrame,
    target_address: u64,
    len: u64,
) -> Result<(), MemoryError> {
    if !abi::memory::is_user_range(source_address, len) || !abi::memory::is_user_range(target_address, len) {
        return Err(MemoryError::BadRange);
    }
    let mut done = 0;
    while done < len {
        let (from, to) = (source_address + done, target_address + done);
        // SAFETY: passed on from the caller.
        let (Some(from_physical), Some(to_physical)) =
            (unsafe { user_physical(source, from, false) }, unsafe { user_physical(target, to, true) })
        else {
            return Err(MemoryError::NotMapped);
        };
        let chunk = (FRAME_SIZE - from % FRAME_SIZE).min(FRAME_SIZE - to % FRAME_SIZE).min(len - done);
        // SAFETY: both ranges lie inside one user frame each (mapped, the target writable,
        // and owned by their address spaces while the tables say so), reached through the
        // physical-memory map; `copy` allows the two to be the same memory.
        unsafe {
            core::ptr::copy(
                phys_to_virt(from_physical).as_ptr::<u8>(),
                phys_to_virt(to_physical).as_mut_ptr::<u8>(),
                chunk as usize,
            );
        }
        done += chunk;
    }
    Ok(())
}

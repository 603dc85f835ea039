//! Per-process address spaces: a private lower half and the kernel half shared by all.
//!
//! An [`AddressSpace`] owns a top-level table whose 256 upper entries are copies of the
//! kernel root's (so the kernel is mapped identically everywhere) and whose lower half holds
//! only this process's pages. Switching processes is a CR3 write. Dropping an address space
//! walks the lower half and frees every page, every page table and the root, so creating and
//! destroying one leaves the free-frame count where it was.
//!
//! User pages get their rights from [`UserRights`], which has no writable-and-executable
//! variant, so no user page can ever be W+X.

use ::x86_64::VirtAddr;
use ::x86_64::structures::paging::mapper::{MapToError, TranslateResult};
use ::x86_64::structures::paging::{Mapper, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB, Translate};

use super::frame::{self, FRAME_SIZE, GlobalFrames};
use super::paging::{FIRST_KERNEL_ENTRY, kernel_root, mapper_for, phys_to_virt, points_to_table, table_at};

/// Most user pages one process may map (code, data, heap, stack, `mmap`): 64 MiB.
pub const MAX_USER_PAGES: u64 = 16 * 1024;

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
    /// The process would go past [`MAX_USER_PAGES`].
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
    user_pages: u64,
}

/// The pages of a user range: checked to be page-aligned and inside the user half.
fn user_pages(start: VirtAddr, pages: u64) -> Result<impl Iterator<Item = Page>, MemoryError> {
    let length = pages.checked_mul(FRAME_SIZE).ok_or(MemoryError::BadRange)?;
    if !start.is_aligned(FRAME_SIZE) || !abi::memory::is_user_range(start.as_u64(), length) {
        return Err(MemoryError::BadRange);
    }
    let first = Page::<Size4KiB>::containing_address(start);
    Ok((0..pages).map(move |index| first + index))
}

impl AddressSpace {
    /// A new address space: an empty lower half and the kernel half.
    pub fn new() -> Result<Self, MemoryError> {
        let root = frame::allocate_zeroed().ok_or(MemoryError::OutOfMemory)?;
        // SAFETY: `root` is a fresh zeroed frame only this function uses, and the kernel root
        // is only read here; the two are different frames.
        let (table, kernel) = unsafe { (table_at(root), table_at(kernel_root())) };
        for index in FIRST_KERNEL_ENTRY..512 {
            table[index] = kernel[index].clone();
        }
        Ok(Self { root, user_pages: 0 })
    }

    /// Makes this address space the active one.
    pub fn activate(&self) {
        // SAFETY: the root's upper half is the kernel's, so the running kernel code and
        // stacks stay mapped across the switch.
        unsafe { crate::arch::x86_64::paging::switch_root(self.root) };
    }

    /// Bytes of user memory mapped.
    pub fn user_bytes(&self) -> u64 {
        self.user_pages * FRAME_SIZE
    }

    fn mapper(&mut self) -> ::x86_64::structures::paging::OffsetPageTable<'static> {
        // SAFETY: `self.root` is a valid top-level table owned by this address space, and
        // `&mut self` guarantees no other mapper over it is live.
        unsafe { mapper_for(self.root) }
    }

    /// Maps `pages` zeroed pages from `start` with `rights`. On failure nothing stays mapped.
    pub fn map_zeroed(&mut self, start: VirtAddr, pages: u64, rights: UserRights) -> Result<(), MemoryError> {
        let range = user_pages(start, pages)?;
        if self.user_pages.checked_add(pages).is_none_or(|total| total > MAX_USER_PAGES) {
            return Err(MemoryError::LimitReached);
        }
        for (mapped, page) in (0..).zip(range) {
            if let Err(error) = self.map_one(page, rights) {
                self.unmap(start, mapped).expect("unmapping pages just mapped");
                return Err(error);
            }
        }
        Ok(())
    }

    fn map_one(&mut self, page: Page, rights: UserRights) -> Result<(), MemoryError> {
        let frame = frame::allocate_zeroed().ok_or(MemoryError::OutOfMemory)?;
        let parents = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::USER_ACCESSIBLE;
        let mut mapper = self.mapper();
        // SAFETY: the frame is fresh and owned by this address space from now on; the page is
        // in the private lower half, so the mapping aliases nothing else.
        let result = unsafe { mapper.map_to_with_table_flags(page, frame, rights.flags(), parents, &mut GlobalFrames) };
        match result {
            Ok(flush) => {
                flush.flush();
                self.user_pages += 1;
                Ok(())
            }
            Err(error) => {
                frame::free(frame);
                Err(match error {
                    MapToError::FrameAllocationFailed => MemoryError::OutOfMemory,
                    MapToError::PageAlreadyMapped(_) | MapToError::ParentEntryHugePage => MemoryError::AlreadyMapped,
                })
            }
        }
    }

    /// Unmaps every mapped page in `pages` pages from `start` and frees their frames; pages
    /// that are not mapped are skipped. Page tables left empty are freed as well, so mapping
    /// and unmapping pages all over the user half cannot pile up tables, which the per-process
    /// page limit does not count.
    pub fn unmap(&mut self, start: VirtAddr, pages: u64) -> Result<(), MemoryError> {
        for page in user_pages(start, pages)? {
            let mut mapper = self.mapper();
            if let Ok((frame, flush)) = mapper.unmap(page) {
                flush.flush();
                frame::free(frame);
                self.user_pages -= 1;
            }
        }
        if pages > 0 {
            let (first, end) = (start.as_u64(), start.as_u64() + pages * FRAME_SIZE);
            // SAFETY: the root is this address space's top-level table, and `&mut self` rules
            // out any mapper or other reference to its tables while this runs.
            let root = unsafe { table_at(self.root) };
            if free_empty_tables(root, 4, 0, first, end) {
                // Paging-structure caches may still hold entries that lead to the freed
                // tables; `invlpg` drops all of them, whatever the address.
                crate::arch::x86_64::paging::flush_page(start);
            }
        }
        Ok(())
    }

    /// Gives every page in the range `rights`. Every page must be mapped.
    pub fn protect(&mut self, start: VirtAddr, pages: u64, rights: UserRights) -> Result<(), MemoryError> {
        let range = user_pages(start, pages)?;
        if !self.range_mapped(start, pages) {
            return Err(MemoryError::NotMapped);
        }
        for page in range {
            let mut mapper = self.mapper();
            // SAFETY: the page is a mapped user page of this address space; changing its
            // rights cannot affect kernel memory.
            let flush = unsafe { mapper.update_flags(page, rights.flags()) }.map_err(|_| MemoryError::NotMapped)?;
            flush.flush();
        }
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
        match self.mapper().translate(address) {
            TranslateResult::Mapped { flags, .. } if flags.contains(PageTableFlags::USER_ACCESSIBLE) => Some(flags),
            _ => None,
        }
    }

    /// Whether all of `[start, start + len)` is user memory, mapped, and writable too when
    /// `write` is set. The arithmetic is checked, so a huge `len` is simply refused.
    pub fn check_user_access(&mut self, start: u64, len: u64, write: bool) -> bool {
        if !abi::memory::is_user_range(start, len) {
            return false;
        }
        if len == 0 {
            return true;
        }
        let first = start & !(FRAME_SIZE - 1);
        let last = (start + len - 1) & !(FRAME_SIZE - 1);
        (first..=last).step_by(FRAME_SIZE as usize).all(|page| {
            self.page_flags(VirtAddr::new(page))
                .is_some_and(|flags| !write || flags.contains(PageTableFlags::WRITABLE))
        })
    }

    /// Copies `bytes` into this address space at `address` through the kernel's physical
    /// map, whatever the pages' user rights (the loader fills read-only text this way). Every
    /// page must already be mapped.
    pub fn write(&mut self, address: VirtAddr, bytes: &[u8]) -> Result<(), MemoryError> {
        let mut done = 0;
        while done < bytes.len() {
            let target = address + done as u64;
            let physical = match self.mapper().translate(target) {
                TranslateResult::Mapped { frame, offset, flags } if flags.contains(PageTableFlags::USER_ACCESSIBLE) => {
                    frame.start_address() + offset
                }
                _ => return Err(MemoryError::NotMapped),
            };
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
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        if crate::arch::x86_64::paging::active_root() == self.root {
            // SAFETY: the kernel root maps the kernel half identically.
            unsafe { crate::arch::x86_64::paging::switch_root(kernel_root()) };
        }
        // SAFETY: the root belongs to this address space, which is being destroyed, and it
        // is no longer active, so nothing else uses its tables.
        let table = unsafe { table_at(self.root) };
        for entry in table.iter_mut().take(FIRST_KERNEL_ENTRY) {
            if points_to_table(entry) {
                free_table_tree(entry.addr().as_u64(), 3);
            }
            entry.set_unused();
        }
        frame::free(self.root);
    }
}

/// Bytes one entry of a table at `level` (4 = the root .. 1 = a page table) covers.
const fn entry_span(level: u8) -> u64 {
    FRAME_SIZE << (9 * (level as u64 - 1))
}

/// In `table` (at `level`, 4 = the root .. 2 = a page directory, covering addresses from
/// `base`), frees every lower-level table under the user range `[start, end)` that no longer
/// maps anything, deepest first, and clears the entries that pointed to them. Returns whether
/// any table was freed. Tables that also cover addresses outside the range are freed only if
/// they are empty all the same.
fn free_empty_tables(table: &mut PageTable, level: u8, base: u64, start: u64, end: u64) -> bool {
    let span = entry_span(level);
    let first = ((start - base) / span) as usize;
    let last = (((end - 1) - base) / span) as usize;
    let mut freed = false;
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
            freed |= free_empty_tables(child, level - 1, child_base, start.max(child_base), end.min(child_base + span));
        }
        if child.iter().all(|child_entry| child_entry.is_unused()) {
            entry.set_unused();
            frame::free(child_frame);
            freed = true;
        }
    }
    freed
}

/// Frees the table at physical `table_address` (at `level`, 3 = PDPT .. 1 = PT), every table
/// below it, and every page the level-1 tables map.
fn free_table_tree(table_address: u64, level: u8) {
    let table_frame = PhysFrame::containing_address(::x86_64::PhysAddr::new(table_address));
    // SAFETY: the frame is a page table of an address space being destroyed; nothing else
    // references it any more.
    let table = unsafe { table_at(table_frame) };
    for entry in table.iter() {
        if !entry.flags().contains(PageTableFlags::PRESENT) {
            continue;
        }
        if level == 1 {
            frame::free(PhysFrame::containing_address(entry.addr()));
        } else if points_to_table(entry) {
            free_table_tree(entry.addr().as_u64(), level - 1);
        }
    }
    frame::free(table_frame);
}

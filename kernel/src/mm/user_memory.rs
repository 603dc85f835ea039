//! A process's user memory: its address space plus the bookkeeping behind `brk`, `mmap`,
//! `munmap` and `mprotect`.
//!
//! Layout of a process (see `abi::memory`): the program image from 4 MiB, the heap right
//! after it (grown and shrunk by `brk`), `mmap` regions from `USER_MMAP_BASE` upward (or at a
//! fixed address the caller picks), and the stack just below `USER_STACK_TOP` with an
//! unmapped guard gap under it that nothing may ever occupy.
//!
//! Every argument is checked here with checked arithmetic; a bad one is an error, never a
//! panic, and a failed call leaves the process's memory as it was.

use alloc::vec::Vec;

use ::x86_64::VirtAddr;
use abi::memory::{PAGE_SIZE, USER_END, USER_MMAP_BASE, USER_STACK_GUARD, USER_STACK_SIZE, USER_STACK_TOP};

use super::address_space::{AddressSpace, MemoryError, UserRights};

/// Most bytes the heap may grow to (the per-process page limit applies as well).
pub const HEAP_MAX: u64 = 256 * 1024 * 1024;

/// Lowest address of the stack's guard gap; `[STACK_RESERVED_START, USER_STACK_TOP)` is
/// reserved for the stack and its guard.
const STACK_RESERVED_START: u64 = USER_STACK_TOP - USER_STACK_SIZE - USER_STACK_GUARD;

/// A half-open page range `[start, end)` with the rights of its pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First address (page-aligned).
    pub start: u64,
    /// One past the last address (page-aligned).
    pub end: u64,
    /// Rights of every page in the region.
    pub rights: UserRights,
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

    /// Adds a region; it must not overlap an existing one.
    pub fn insert(&mut self, region: Region) {
        debug_assert!(!self.overlaps(region.start, region.end));
        let index = self.regions.partition_point(|existing| existing.start < region.start);
        self.regions.insert(index, region);
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
                kept.push(Region { end: start, ..region });
            }
            if end < region.end {
                kept.push(Region { start: end, ..region });
            }
        }
        // An empty set holds no memory, so a process that unmaps everything uses exactly the
        // kernel heap it used before its first `mmap`.
        self.regions = if kept.is_empty() { Vec::new() } else { kept };
    }

    /// Gives `[start, end)` the rights `rights` (the range must be covered).
    pub fn set_rights(&mut self, start: u64, end: u64, rights: UserRights) {
        self.remove(start, end);
        self.insert(Region { start, end, rights });
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

    /// Makes this memory the active address space.
    pub fn activate(&self) {
        self.space.activate();
    }

    /// Bytes of user memory mapped.
    pub fn mapped_bytes(&self) -> u64 {
        self.space.user_bytes()
    }

    /// `brk`: moves the heap end to `requested` (rounded up to a page) and returns it; 0
    /// only asks for the current end.
    pub fn brk(&mut self, requested: u64) -> Result<u64, MemoryError> {
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
            self.space.map_zeroed(VirtAddr::new(self.heap_end), pages, UserRights::ReadWrite)?;
        } else if new_end < self.heap_end {
            self.space.unmap(VirtAddr::new(new_end), (self.heap_end - new_end) / PAGE_SIZE)?;
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
    pub fn mmap(&mut self, requested: u64, length: u64, rights: UserRights) -> Result<u64, MemoryError> {
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
        self.space.map_zeroed(VirtAddr::new(start), (end - start) / PAGE_SIZE, rights)?;
        self.mmaps.insert(Region { start, end, rights });
        Ok(start)
    }

    /// `munmap`: unmaps the `mmap`ed pages in the range (pages not mapped by `mmap` are left
    /// alone; the heap, image and stack are never touched).
    pub fn munmap(&mut self, start: u64, length: u64) -> Result<(), MemoryError> {
        let end = Self::checked_range(start, length)?;
        let pieces: Vec<Region> = self
            .mmaps
            .regions
            .iter()
            .filter(|region| region.start < end && start < region.end)
            .map(|region| Region { start: region.start.max(start), end: region.end.min(end), rights: region.rights })
            .collect();
        for piece in &pieces {
            self.space.unmap(VirtAddr::new(piece.start), (piece.end - piece.start) / PAGE_SIZE)?;
        }
        self.mmaps.remove(start, end);
        Ok(())
    }

    /// `mprotect`: changes the rights of `mmap`ed pages; the whole range must be mapped.
    pub fn mprotect(&mut self, start: u64, length: u64, rights: UserRights) -> Result<(), MemoryError> {
        let end = Self::checked_range(start, length)?;
        if !self.mmaps.covers(start, end) {
            return Err(MemoryError::NotMapped);
        }
        self.space.protect(VirtAddr::new(start), (end - start) / PAGE_SIZE, rights)?;
        self.mmaps.set_rights(start, end, rights);
        Ok(())
    }
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
        Region { start, end, rights: UserRights::ReadWrite }
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
        assert_eq!(set.regions[1], Region { start: 0x2000, end: 0x3000, rights: UserRights::ReadExecute });
        assert!(set.covers(0x1000, 0x4000));
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

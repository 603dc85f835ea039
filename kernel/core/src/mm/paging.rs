//! Page tables: reaching them through the physical-memory map, the kernel's root table,
//! and mapping helpers on top of the `x86_64` crate's `OffsetPageTable`.
//!
//! All physical memory is mapped ([`super::physical_map`]), so any frame (a page table
//! included) is reachable at `offset + physical address`. Every upper-half entry of the
//! kernel's root table is filled at boot ([`share_upper_half`]), so later kernel mappings
//! only add lower-level tables, which every process's root shares.

use ::x86_64::structures::paging::mapper::{MapToError, UnmapError};
use ::x86_64::structures::paging::page_table::PageTableEntry;
use ::x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB, Translate,
};
use ::x86_64::{PhysAddr, VirtAddr};
use spin::Once;

use super::frame::{Frame, GlobalFrames};
use super::physical_map::{PHYSICAL_MEMORY_OFFSET, phys_to_virt};

/// Index of the first upper-half (kernel) entry in a top-level table.
pub const FIRST_KERNEL_ENTRY: usize = 256;

static KERNEL_ROOT: Once<PhysFrame> = Once::new();

/// The top-level table the kernel booted with. Every process's root copies its upper half.
pub fn kernel_root() -> PhysFrame {
    *KERNEL_ROOT.get().expect("paging used before paging::init")
}

/// The page table stored in `frame`.
///
/// # Safety
/// `frame` must hold a page table (or be a fresh zeroed frame about to become one), and the
/// caller must not create a second live reference to the same table.
pub unsafe fn table_at(frame: PhysFrame) -> &'static mut PageTable {
    // SAFETY: the physical-memory map covers every frame; exclusivity is the caller's part.
    unsafe { &mut *phys_to_virt(frame.start_address()).as_mut_ptr::<PageTable>() }
}

/// A mapper over the table hierarchy rooted at `root`.
///
/// # Safety
/// `root` must be a valid top-level table, and no other mapper or reference to the same
/// tables may be used while this one lives.
pub unsafe fn mapper_for(root: PhysFrame) -> OffsetPageTable<'static> {
    // SAFETY: forwarded to the caller; the offset is where the bootloader mapped all memory.
    unsafe { OffsetPageTable::new(table_at(root), VirtAddr::new(PHYSICAL_MEMORY_OFFSET)) }
}

/// Records the boot table as the kernel's root, empties its lower half (the bootloader's
/// identity-mapped trampoline is no longer needed), and gives every upper-half entry a table,
/// so the kernel half can be shared by copying those 256 entries.
///
/// Only the first call does anything: a second one would empty the lower half of whatever
/// table is active then (a process's), so it panics.
pub(crate) fn init() {
    let root = crate::arch::paging::active_root();
    assert!(KERNEL_ROOT.get().is_none(), "mm::paging::init called twice");
    KERNEL_ROOT.call_once(|| root);
    // SAFETY: `root` is the active, valid top-level table, and nothing else holds a
    // reference to it during boot.
    let table = unsafe { table_at(root) };
    for entry in table.iter_mut().take(FIRST_KERNEL_ENTRY) {
        entry.set_unused();
    }
    share_upper_half(table);
    // Reloading CR3 drops the stale lower-half translations.
    // SAFETY: the same root, whose upper half is unchanged except for new empty tables.
    unsafe { crate::arch::paging::reload_root() };
}

fn share_upper_half(table: &mut PageTable) {
    for entry in table.iter_mut().skip(FIRST_KERNEL_ENTRY) {
        if entry.is_unused() {
            let frame = Frame::allocate_zeroed().expect("out of memory while sharing the kernel half");
            // The kernel half's top-level tables are never freed.
            entry.set_frame(frame.into_raw(), PageTableFlags::PRESENT | PageTableFlags::WRITABLE);
        }
    }
}

/// Makes the kernel's own top-level table the active one (no process's lower half mapped).
pub fn activate_kernel_root() {
    // SAFETY: the kernel root maps the kernel half, which every other root shares.
    unsafe { crate::arch::paging::switch_root(kernel_root()) };
}

/// Maps a fresh zeroed frame at `page` in the kernel half with `flags` (PRESENT is added).
/// A page in the lower half or a user-accessible mapping would hand kernel memory to
/// processes, so either panics; a page already mapped is an error (nothing is aliased).
pub(crate) fn map_kernel_page(page: Page, flags: PageTableFlags) -> Result<PhysFrame, MapToError<Size4KiB>> {
    assert!(
        usize::from(page.p4_index()) >= FIRST_KERNEL_ENTRY && !flags.contains(PageTableFlags::USER_ACCESSIBLE),
        "map_kernel_page: {page:?} with {flags:?} is not a kernel-only kernel-half mapping"
    );
    let frame = Frame::allocate_zeroed().ok_or(MapToError::FrameAllocationFailed)?;
    let physical = frame.phys();
    // SAFETY: the kernel root is valid; boot and kernel-stack management run with interrupts
    // masked and under the big kernel lock, so no other mapper is live.
    let mut mapper = unsafe { mapper_for(kernel_root()) };
    // SAFETY: the frame is fresh and unused, and `page` is a kernel-half page reserved for
    // the caller, so the new mapping aliases nothing.
    let flush = unsafe { mapper.map_to(page, physical, flags | PageTableFlags::PRESENT, &mut GlobalFrames) }?;
    flush.flush();
    // The page table owns the frame now; `unmap_kernel_page` gives it back.
    frame.into_raw();
    Ok(physical)
}

/// Unmaps the kernel-half `page` and frees its frame.
///
/// # Safety
/// `page` must have been mapped by [`map_kernel_page`], and nothing may use it any more: no
/// reference into it, no stack on it, no other code that will touch it.
pub unsafe fn unmap_kernel_page(page: Page) -> Result<(), UnmapError> {
    // SAFETY: forwarded to the caller.
    match unsafe { unmap_kernel_pages(page, 1) } {
        0 => Err(UnmapError::PageNotMapped),
        _ => Ok(()),
    }
}

/// Most pages [`unmap_kernel_pages`] takes at once.
pub const MOST_KERNEL_PAGES_AT_ONCE: u64 = 16;

/// Unmaps the `count` kernel-half pages from `first` (at most [`MOST_KERNEL_PAGES_AT_ONCE`]),
/// makes every CPU forget them (one TLB shootdown), and only then frees their frames.
/// Pages that are not mapped are skipped; returns how many were unmapped.
///
/// # Safety
/// Every mapped page in the range must have been mapped by [`map_kernel_page`], and nothing
/// may use any of them any more: no reference into them, no stack on them, no other code
/// that will touch them.
pub unsafe fn unmap_kernel_pages(first: Page, count: u64) -> u64 {
    assert!(count <= MOST_KERNEL_PAGES_AT_ONCE, "too many kernel pages to unmap at once");
    let mut frames = [None; MOST_KERNEL_PAGES_AT_ONCE as usize];
    // SAFETY: as in `map_kernel_page`.
    let mut mapper = unsafe { mapper_for(kernel_root()) };
    for (index, slot) in (0..count).zip(frames.iter_mut()) {
        if let Ok((frame, flush)) = mapper.unmap(first + index) {
            // The shootdown below flushes this CPU too.
            flush.ignore();
            *slot = Some(frame);
        }
    }
    let unmapped = frames.iter().flatten().count() as u64;
    if unmapped > 0 {
        crate::arch::tlb::shoot_down(None, first.start_address(), count);
    }
    for frame in frames.into_iter().flatten() {
        // SAFETY: the frame came from `map_kernel_page`, the caller guarantees nothing uses
        // the page any more, and its only mapping was removed and forgotten by every CPU.
        drop(unsafe { Frame::from_raw(frame) });
    }
    unmapped
}

/// Where `address` is mapped in the kernel's tables, if anywhere.
pub fn kernel_translate(address: VirtAddr) -> Option<PhysAddr> {
    // SAFETY: as in `map_kernel_page`; translation only reads the tables.
    let mapper = unsafe { mapper_for(kernel_root()) };
    mapper.translate_addr(address)
}

/// The frames behind the `len` bytes the kernel's tables map at `address` (page-aligned),
/// in page order; `None` if a page of them is not mapped.
pub fn kernel_frames(address: u64, len: u64) -> Option<alloc::vec::Vec<PhysFrame>> {
    let pages = len.div_ceil(super::frame::FRAME_SIZE);
    let mut frames = alloc::vec::Vec::with_capacity(pages as usize);
    for page in 0..pages {
        let physical = kernel_translate(VirtAddr::new(address + page * super::frame::FRAME_SIZE))?;
        frames.push(PhysFrame::containing_address(physical));
    }
    Some(frames)
}

/// Whether an entry points at a lower-level table (as opposed to being empty or a huge page).
pub fn points_to_table(entry: &PageTableEntry) -> bool {
    let flags = entry.flags();
    flags.contains(PageTableFlags::PRESENT) && !flags.contains(PageTableFlags::HUGE_PAGE)
}

/// A kernel-half page mapped to a fresh frame for as long as this value lives, reachable
/// both through its own address and through the physical-memory map.
#[derive(Debug)]
pub struct ScratchPage {
    page: Page,
    frame: PhysFrame,
}

impl ScratchPage {
    /// Maps a zeroed frame at `address`, a page-aligned kernel-half address nothing else uses.
    pub fn new(address: VirtAddr) -> Result<Self, MapToError<Size4KiB>> {
        let page = Page::from_start_address(address).map_err(|_| MapToError::FrameAllocationFailed)?;
        let frame = map_kernel_page(page, PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE)?;
        Ok(Self { page, frame })
    }

    /// The frame behind the page.
    pub fn frame(&self) -> PhysFrame {
        self.frame
    }

    /// The page's bytes through its own mapping.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the page is mapped writable for as long as `self` lives and only `self`
        // reaches it; `&mut self` rules out the other view existing at the same time.
        unsafe { core::slice::from_raw_parts_mut(self.page.start_address().as_mut_ptr::<u8>(), 4096) }
    }

    /// The same bytes through the physical-memory map.
    pub fn bytes_through_physical_map(&self) -> &[u8] {
        // SAFETY: the frame belongs to this page while `self` lives, and the physical map
        // covers it; `&self` rules out a simultaneous `bytes_mut`.
        unsafe { core::slice::from_raw_parts(phys_to_virt(self.frame.start_address()).as_ptr::<u8>(), 4096) }
    }
}

impl Drop for ScratchPage {
    fn drop(&mut self) {
        // SAFETY: the page was mapped by `map_kernel_page` in `new`, and the only ways to
        // reach it borrow `self`, so no reference outlives this drop.
        unsafe { unmap_kernel_page(self.page) }.expect("a scratch page is mapped while it lives");
    }
}

/// A top-level table for starting other CPUs: the kernel half, as in every table, and the
/// first 2 MiB of physical memory identity-mapped (one large page), so the start-up code
/// below 1 MiB stays reachable at the moment paging comes on. Its three frames are freed
/// when it is dropped (after every CPU has switched to the kernel's own table).
#[derive(Debug)]
pub struct StartupTable {
    root: PhysFrame,
    directory_pointers: PhysFrame,
    directory: PhysFrame,
}

impl StartupTable {
    /// Builds the table, or `None` without memory.
    pub fn new() -> Option<Self> {
        let frames = [Frame::allocate_zeroed()?, Frame::allocate_zeroed()?, Frame::allocate_zeroed()?];
        let [root, directory_pointers, directory] = frames.map(Frame::into_raw);
        // SAFETY: the three frames are fresh, zeroed and distinct, and only this function
        // refers to them; the kernel root is only read.
        let (root_table, pointers, directory_table, kernel) = unsafe {
            (table_at(root), table_at(directory_pointers), table_at(directory), table_at(kernel_root()))
        };
        for index in FIRST_KERNEL_ENTRY..512 {
            root_table[index] = kernel[index].clone();
        }
        let table_flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
        root_table[0].set_frame(directory_pointers, table_flags);
        pointers[0].set_frame(directory, table_flags);
        directory_table[0].set_addr(PhysAddr::new(0), table_flags | PageTableFlags::HUGE_PAGE);
        Some(Self { root, directory_pointers, directory })
    }

    /// The top-level table's frame.
    pub fn root(&self) -> PhysFrame {
        self.root
    }
}

impl Drop for StartupTable {
    fn drop(&mut self) {
        for frame in [self.root, self.directory_pointers, self.directory] {
            // SAFETY: the frames came from `Frame::into_raw` in `new`; every started CPU has
            // switched to the kernel's own table, and a CPU that did not start never loaded
            // this one (it gets no further start-up IPI), so nothing refers to them.
            drop(unsafe { Frame::from_raw(frame) });
        }
    }
}

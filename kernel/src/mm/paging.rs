//! Page tables: reaching them through the physical-memory map, the kernel's root table,
//! and mapping helpers on top of the `x86_64` crate's `OffsetPageTable`.
//!
//! All physical memory is mapped at [`PHYSICAL_MEMORY_OFFSET`], so any frame (a page table
//! included) is reachable at `offset + physical address`. Every upper-half entry of the
//! kernel's root table is filled at boot ([`share_upper_half`]), so later kernel mappings
//! only add lower-level tables, which every process's root shares.

use ::x86_64::structures::paging::mapper::{MapToError, MapperFlush, UnmapError};
use ::x86_64::structures::paging::page_table::PageTableEntry;
use ::x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB, Translate,
};
use ::x86_64::{PhysAddr, VirtAddr};
use spin::Once;

use super::frame::{Frame, GlobalFrames};

/// Where physical address 0 appears in the kernel's address space.
pub const PHYSICAL_MEMORY_OFFSET: u64 = abi::memory::PHYSICAL_MAP_OFFSET;

/// Index of the first upper-half (kernel) entry in a top-level table.
pub const FIRST_KERNEL_ENTRY: usize = 256;

static KERNEL_ROOT: Once<PhysFrame> = Once::new();

/// The kernel's view of physical address `address`.
pub fn phys_to_virt(address: PhysAddr) -> VirtAddr {
    VirtAddr::new(PHYSICAL_MEMORY_OFFSET + address.as_u64())
}

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
pub fn init() {
    let root = crate::arch::x86_64::paging::active_root();
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
    unsafe { crate::arch::x86_64::paging::reload_root() };
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
    unsafe { crate::arch::x86_64::paging::switch_root(kernel_root()) };
}

/// Maps a fresh zeroed frame at `page` in the kernel half with `flags` (PRESENT is added).
pub fn map_kernel_page(page: Page, flags: PageTableFlags) -> Result<PhysFrame, MapToError<Size4KiB>> {
    let frame = Frame::allocate_zeroed().ok_or(MapToError::FrameAllocationFailed)?;
    let physical = frame.phys();
    // SAFETY: the kernel root is valid; boot and kernel-stack management run with interrupts
    // masked on one CPU, so no other mapper is live.
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
    // SAFETY: as in `map_kernel_page`.
    let mut mapper = unsafe { mapper_for(kernel_root()) };
    let (frame, flush): (PhysFrame, MapperFlush<Size4KiB>) = mapper.unmap(page)?;
    flush.flush();
    // SAFETY: the frame came from `map_kernel_page` and the caller guarantees nothing uses
    // the page any more; its only mapping was just removed.
    drop(unsafe { Frame::from_raw(frame) });
    Ok(())
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

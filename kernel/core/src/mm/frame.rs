//! Physical frames: a bitmap allocator over the boot memory map that allocates and frees.
//!
//! One bit per 4 KiB frame (set = free). The bitmap itself lives in the first usable region
//! large enough to hold it and marks its own frames used. Allocation scans from a hint for a
//! set bit, 64 frames per word; freeing sets the bit again and refuses a frame that is already
//! free, so a double free is caught instead of silently corrupting the count.
//!
//! [`FrameBitmap`] is pure bookkeeping over a word slice and is unit-tested on the host; the
//! global allocator around it is set up by [`init`].
//!
//! **Copy-on-write owners.** A frame of a process's own memory may be owned by several
//! address spaces at once after a copy-on-write copy (decision 71). Next to the bitmap lives
//! one counter per frame of its *extra* owners (0 for a frame with one owner, the usual case,
//! so nothing else ever looks at it): [`share`] adds one, [`release_owned`] takes one away and
//! hands the frame back only when its last owner lets it go, so it is freed exactly once.

use ::x86_64::PhysAddr;
use ::x86_64::structures::paging::{FrameAllocator, FrameDeallocator, PhysFrame, Size4KiB};
use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use core::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use spin::{Mutex, Once};

use super::physical_map::phys_to_virt;

/// Size of a frame in bytes.
pub const FRAME_SIZE: u64 = 4096;

/// Frames below 1 MiB (real-mode structures, BIOS data, legacy ROMs) are never handed out.
const FIRST_USABLE_ADDRESS: u64 = 0x10_0000;

/// Why a frame could not be returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The frame is outside the memory the bitmap covers.
    OutOfRange,
    /// The frame is already free.
    DoubleFree,
}

/// Free/used bookkeeping for frames `0..frames`, one bit each (1 = free).
#[derive(Debug)]
pub struct FrameBitmap<'words> {
    words: &'words mut [u64],
    frames: usize,
    free: usize,
    search_hint: usize,
}

impl<'words> FrameBitmap<'words> {
    /// Words needed to track `frames` frames.
    pub const fn words_needed(frames: usize) -> usize {
        frames.div_ceil(64)
    }

    /// A bitmap over `words` tracking `frames` frames, all of them used.
    pub fn new_all_used(words: &'words mut [u64], frames: usize) -> Self {
        assert!(words.len() >= Self::words_needed(frames), "bitmap storage too small");
        words.fill(0);
        Self { words, frames, free: 0, search_hint: 0 }
    }

    /// Marks frames `first..end` free (boot-time setup from the memory map). Frames outside
    /// the bitmap are ignored.
    pub fn add_free_range(&mut self, first: usize, end: usize) {
        for index in first..end.min(self.frames) {
            if !self.is_free(index) {
                self.words[index / 64] |= 1 << (index % 64);
                self.free += 1;
            }
        }
    }

    /// Marks frames `first..end` used (for the bitmap's own storage).
    pub fn reserve_range(&mut self, first: usize, end: usize) {
        for index in first..end.min(self.frames) {
            if self.is_free(index) {
                self.words[index / 64] &= !(1 << (index % 64));
                self.free -= 1;
            }
        }
    }

    /// Whether frame `index` is free.
    pub fn is_free(&self, index: usize) -> bool {
        index < self.frames && self.words[index / 64] & (1 << (index % 64)) != 0
    }

    /// Takes a free frame, or `None` when every frame is in use.
    pub fn allocate(&mut self) -> Option<usize> {
        if self.free == 0 {
            return None;
        }
        let word_count = Self::words_needed(self.frames);
        let start_word = self.search_hint / 64;
        for offset in 0..word_count {
            let word_index = (start_word + offset) % word_count;
            let word = self.words[word_index];
            if word != 0 {
                let index = word_index * 64 + word.trailing_zeros() as usize;
                self.words[word_index] &= !(1 << (index % 64));
                self.free -= 1;
                self.search_hint = index;
                return Some(index);
            }
        }
        None
    }

    /// Returns frame `index`.
    pub fn free(&mut self, index: usize) -> Result<(), FreeError> {
        if index >= self.frames {
            return Err(FreeError::OutOfRange);
        }
        if self.is_free(index) {
            return Err(FreeError::DoubleFree);
        }
        self.words[index / 64] |= 1 << (index % 64);
        self.free += 1;
        Ok(())
    }

    /// Frames currently free.
    pub fn free_count(&self) -> usize {
        self.free
    }
}

struct FrameAllocatorState {
    bitmap: FrameBitmap<'static>,
    total: usize,
}

static FRAMES: Mutex<Option<FrameAllocatorState>> = Mutex::new(None);

/// A usable page below 1 MiB (physical address; 0: none), which the allocator never hands
/// out: where other CPUs start in real mode.
static LOW_MEMORY_PAGE: AtomicU64 = AtomicU64::new(0);
/// Low pages never chosen for that: the real-mode interrupt table and BIOS data (page 0), and
/// everything from the extended BIOS data area up.
const LOW_MEMORY_CHOICES: core::ops::Range<u64> = 0x1000..0x8_0000;

/// A usable RAM page below 1 MiB that nothing else uses, for starting other CPUs (they start
/// in real mode, which reaches only the first MiB).
pub fn low_memory_page() -> Option<PhysAddr> {
    let page = LOW_MEMORY_PAGE.load(Ordering::Relaxed);
    (page != 0).then(|| PhysAddr::new(page))
}

/// Builds the frame allocator from the boot memory map, before any other function here, with
/// the physical-memory map in place. A second call would forget every frame in use, so it
/// panics instead.
pub(crate) fn init(regions: &MemoryRegions) {
    static DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    assert!(!DONE.swap(true, Ordering::Relaxed), "mm::frame::init called twice");
    let low_page = regions
        .iter()
        .filter(|region| region.kind == MemoryRegionKind::Usable)
        .map(|region| region.start.max(LOW_MEMORY_CHOICES.start).next_multiple_of(FRAME_SIZE))
        .find(|&start| {
            LOW_MEMORY_CHOICES.contains(&start)
                && regions.iter().any(|region| {
                    region.kind == MemoryRegionKind::Usable && region.start <= start && start + FRAME_SIZE <= region.end
                })
        });
    LOW_MEMORY_PAGE.store(low_page.unwrap_or(0), Ordering::Relaxed);
    let usable = || {
        regions
            .iter()
            .filter(|region| region.kind == MemoryRegionKind::Usable)
            .map(|region| (region.start.max(FIRST_USABLE_ADDRESS).next_multiple_of(FRAME_SIZE), region.end & !(FRAME_SIZE - 1)))
            .filter(|(start, end)| start < end)
    };
    let frames = usable().map(|(_, end)| end / FRAME_SIZE).max().unwrap_or(0) as usize;
    let bitmap_bytes = (FrameBitmap::words_needed(frames) * 8) as u64;
    let owners_bytes = (frames * core::mem::size_of::<AtomicU16>()) as u64;
    let storage_bytes = bitmap_bytes + owners_bytes;
    let (storage_start, _) = usable()
        .find(|(start, end)| end - start >= storage_bytes)
        .expect("no usable memory region can hold the frame bitmap and owner counts");
    let storage = phys_to_virt(PhysAddr::new(storage_start)).as_mut_ptr::<u64>();
    // SAFETY: the range is usable RAM from the memory map, mapped through the physical-memory
    // offset, not used by anything else, and reserved in the bitmap right below so it is
    // never handed out; the slice lives for the rest of the kernel's life.
    let words = unsafe { core::slice::from_raw_parts_mut(storage, FrameBitmap::words_needed(frames)) };
    let mut bitmap = FrameBitmap::new_all_used(words, frames);
    let owners_start = phys_to_virt(PhysAddr::new(storage_start + bitmap_bytes)).as_mut_ptr::<AtomicU16>();
    // SAFETY: the counters follow the bitmap in the same reserved range (8-byte aligned, so
    // aligned for `AtomicU16`); zeroing them first makes every bit pattern a valid counter.
    let owners = unsafe {
        core::ptr::write_bytes(owners_start.cast::<u8>(), 0, owners_bytes as usize);
        core::slice::from_raw_parts(owners_start.cast_const(), frames)
    };
    EXTRA_OWNERS.call_once(|| owners);
    for (start, end) in usable() {
        bitmap.add_free_range((start / FRAME_SIZE) as usize, (end / FRAME_SIZE) as usize);
    }
    let storage_first = (storage_start / FRAME_SIZE) as usize;
    bitmap.reserve_range(storage_first, storage_first + (storage_bytes.div_ceil(FRAME_SIZE)) as usize);
    let total = bitmap.free_count();
    *FRAMES.lock() = Some(FrameAllocatorState { bitmap, total });
}

/// Per frame, how many address spaces own it besides the first (copy-on-write sharing).
static EXTRA_OWNERS: Once<&'static [AtomicU16]> = Once::new();

fn extra_owners(frame: PhysFrame) -> &'static AtomicU16 {
    let index = (frame.start_address().as_u64() / FRAME_SIZE) as usize;
    &EXTRA_OWNERS.get().expect("frame owners used before mm::frame::init")[index]
}

/// Records one more owner of `frame`, a frame a page table owns (from [`Frame::into_raw`]):
/// each owner gives it back through [`release_owned`], and only the last one frees it.
pub(super) fn share(frame: PhysFrame) {
    let before = extra_owners(frame).fetch_add(1, Ordering::AcqRel);
    assert!(before < u16::MAX, "{frame:?} has too many owners");
}

/// Whether `frame` (owned by a page table) has more than one owner.
pub(super) fn is_shared(frame: PhysFrame) -> bool {
    extra_owners(frame).load(Ordering::Acquire) != 0
}

/// Gives up one owner's claim on `frame`: the frame itself if that was its last owner (to be
/// dropped, which frees it), else `None` and the others keep it.
///
/// # Safety
/// As for [`Frame::from_raw`], for this owner: it no longer maps or uses the frame.
pub(super) unsafe fn release_owned(frame: PhysFrame) -> Option<Frame> {
    let owners = extra_owners(frame);
    // The common case, a frame of one owner, with a load alone: only an owner adds owners,
    // and this one is letting go.
    let shared = owners.load(Ordering::Acquire) != 0
        && owners.try_update(Ordering::AcqRel, Ordering::Acquire, |extra| extra.checked_sub(1)).is_ok();
    // SAFETY: the last owner lets go, and by the caller's promise it no longer uses the frame.
    (!shared).then(|| unsafe { Frame::from_raw(frame) })
}

fn with_frames<R>(f: impl FnOnce(&mut FrameAllocatorState) -> R) -> R {
    crate::arch::cpu::without_interrupts(|| {
        f(FRAMES.lock().as_mut().expect("frame allocator used before mm::frame::init"))
    })
}

/// A physical frame that belongs to whoever holds this value: it came from the allocator,
/// nothing else refers to it, and dropping it gives it back. The only ways to turn a frame
/// into something the allocator forgets are [`Frame::into_raw`] (handing it to a page
/// table, which must give it back through [`Frame::from_raw`]) and leaking it.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame(PhysFrame);

impl Frame {
    /// Takes a free frame and fills it with zeros.
    pub fn allocate_zeroed() -> Option<Self> {
        let index = with_frames(|state| state.bitmap.allocate())?;
        let frame = PhysFrame::containing_address(PhysAddr::new(index as u64 * FRAME_SIZE));
        // SAFETY: the frame was free, so nothing else refers to it; the physical-memory map
        // covers it, and a frame is exactly one page long.
        unsafe { core::ptr::write_bytes(phys_to_virt(frame.start_address()).as_mut_ptr::<u8>(), 0, FRAME_SIZE as usize) };
        Some(Self(frame))
    }

    /// Takes a free frame and fills it with a copy of `source`'s bytes (breaking a
    /// copy-on-write sharing: the bytes would be overwritten at once, so no zeroing first).
    pub fn allocate_copy_of(source: PhysFrame) -> Option<Self> {
        let index = with_frames(|state| state.bitmap.allocate())?;
        let frame = PhysFrame::containing_address(PhysAddr::new(index as u64 * FRAME_SIZE));
        // SAFETY: the new frame was free, so nothing else refers to it; `source` is a frame
        // the caller owns a share of (alive for this copy); both are one page long and reached
        // through the physical-memory map, and they differ.
        unsafe {
            core::ptr::copy_nonoverlapping(
                phys_to_virt(source.start_address()).as_ptr::<u8>(),
                phys_to_virt(frame.start_address()).as_mut_ptr::<u8>(),
                FRAME_SIZE as usize,
            );
        }
        Some(Self(frame))
    }

    /// The frame's physical address range.
    pub fn phys(&self) -> PhysFrame {
        self.0
    }

    /// Gives up ownership without freeing the frame: the caller stores it (in a page-table
    /// entry, say) and is responsible for returning it through [`Frame::from_raw`].
    pub fn into_raw(self) -> PhysFrame {
        let frame = self.0;
        core::mem::forget(self);
        frame
    }

    /// Takes ownership of `frame` back, e.g. after unmapping it.
    ///
    /// # Safety
    /// `frame` must have come from [`Frame::into_raw`] (or [`GlobalFrames`]), and nothing may
    /// refer to it any more: no mapping, no other `Frame`, no reference into its memory.
    pub unsafe fn from_raw(frame: PhysFrame) -> Self {
        Self(frame)
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        let index = (self.0.start_address().as_u64() / FRAME_SIZE) as usize;
        if let Err(error) = with_frames(|state| state.bitmap.free(index)) {
            panic!("freeing {:?}: {error:?}", self.0);
        }
    }
}

/// Frames currently free.
pub fn free_count() -> usize {
    with_frames(|state| state.bitmap.free_count())
}

/// Frames the allocator manages in all.
pub fn total_count() -> usize {
    with_frames(|state| state.total)
}

/// The global frame allocator as the `x86_64` crate's mapper wants it (page tables for new
/// mappings come from here, zeroed).
pub struct GlobalFrames;

// SAFETY: every frame returned is free, zeroed and owned by the caller from then on.
unsafe impl FrameAllocator<Size4KiB> for GlobalFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        Frame::allocate_zeroed().map(Frame::into_raw)
    }
}

impl FrameDeallocator<Size4KiB> for GlobalFrames {
    // SAFETY: (of the trait) callers pass frames they own and no longer use.
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame<Size4KiB>) {
        // SAFETY: forwarded from the trait's contract.
        drop(unsafe { Frame::from_raw(frame) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_every_free_frame_once_then_reports_exhaustion() {
        let mut words = [0u64; 3];
        let mut bitmap = FrameBitmap::new_all_used(&mut words, 150);
        bitmap.add_free_range(10, 20);
        bitmap.add_free_range(100, 200);
        assert_eq!(bitmap.free_count(), 60);
        let mut seen = std::collections::BTreeSet::new();
        while let Some(frame) = bitmap.allocate() {
            assert!((10..20).contains(&frame) || (100..150).contains(&frame), "frame {frame}");
            assert!(seen.insert(frame), "frame {frame} handed out twice");
        }
        assert_eq!(seen.len(), 60);
        assert_eq!(bitmap.free_count(), 0);
    }

    #[test]
    fn freed_frames_are_reused_and_counted() {
        let mut words = [0u64; 1];
        let mut bitmap = FrameBitmap::new_all_used(&mut words, 64);
        bitmap.add_free_range(0, 4);
        let taken: Vec<usize> = (0..4).map(|_| bitmap.allocate().unwrap()).collect();
        assert_eq!(bitmap.allocate(), None);
        bitmap.free(taken[2]).unwrap();
        assert_eq!(bitmap.free_count(), 1);
        assert_eq!(bitmap.allocate(), Some(taken[2]));
    }

    #[test]
    fn double_free_and_out_of_range_are_refused() {
        let mut words = [0u64; 1];
        let mut bitmap = FrameBitmap::new_all_used(&mut words, 10);
        bitmap.add_free_range(0, 10);
        let frame = bitmap.allocate().unwrap();
        bitmap.free(frame).unwrap();
        assert_eq!(bitmap.free(frame), Err(FreeError::DoubleFree));
        assert_eq!(bitmap.free(10), Err(FreeError::OutOfRange));
        assert_eq!(bitmap.free_count(), 10);
    }

    #[test]
    fn reserved_frames_are_never_allocated() {
        let mut words = [0u64; 2];
        let mut bitmap = FrameBitmap::new_all_used(&mut words, 128);
        bitmap.add_free_range(0, 128);
        bitmap.reserve_range(0, 120);
        assert_eq!(bitmap.free_count(), 8);
        let mut got: Vec<usize> = std::iter::from_fn(|| bitmap.allocate()).collect();
        got.sort();
        assert_eq!(got, (120..128).collect::<Vec<_>>());
    }

    #[test]
    fn overlapping_free_ranges_are_counted_once() {
        let mut words = [0u64; 1];
        let mut bitmap = FrameBitmap::new_all_used(&mut words, 64);
        bitmap.add_free_range(0, 10);
        bitmap.add_free_range(5, 15);
        assert_eq!(bitmap.free_count(), 15);
    }
}

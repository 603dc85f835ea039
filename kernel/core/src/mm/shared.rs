//! Frames that several address spaces map at once: the pages behind a shared-memory object.
//!
//! [`SharedFrames`] owns its frames and frees them when the last reference goes; every
//! mapping of it holds a reference (in the process's region list) until the pages are
//! unmapped, so no frame is freed while a page table still points at it. The frames are
//! charged to the account of the process that made them, for as long as they exist. The
//! boot ramdisk is the one exception ([`SharedFrames::boot_memory`]): frames the bootloader
//! filled, which belong to no account and are never freed.
//!
//! The kernel reads the frames too (`spawn` loads a program from them): [`SharedFrames::read`]
//! and [`SharedFrames::copy_into`] copy through the physical-memory map, never handing out a
//! reference to memory that a process may be writing meanwhile.

use alloc::sync::Arc;
use alloc::vec::Vec;

use ::x86_64::structures::paging::PhysFrame;

use super::address_space::{Account, AddressSpace, MemoryError};
use super::frame::{FRAME_SIZE, Frame};
use super::physical_map::phys_to_virt;

/// Most pages in one shared-memory object (16 MiB).
pub const MAX_SHARED_PAGES: u64 = 4096;

/// Zeroed frames shared by every mapping of one memory object.
#[derive(Debug)]
pub struct SharedFrames {
    /// The frames, in page order: owned ones as `Frame::into_raw` left them, freed in
    /// `drop`, unless `account` is `None`.
    frames: Vec<PhysFrame>,
    /// Who pays for the frames, and how many (all that were asked for, even if allocation
    /// failed); `None` for boot memory, which nobody owns.
    account: Option<(Arc<Account>, u64)>,
}

impl SharedFrames {
    /// Allocates `pages` zeroed frames, charged to `account`, calling `pause` between steps.
    pub fn allocate(pages: u64, account: &Arc<Account>, pause: &mut dyn FnMut()) -> Result<Self, MemoryError> {
        if pages == 0 || pages > MAX_SHARED_PAGES {
            return Err(MemoryError::BadRange);
        }
        account.try_charge(pages)?;
        let mut shared = Self { frames: Vec::new(), account: Some((account.clone(), pages)) };
        if shared.frames.try_reserve_exact(pages as usize).is_err() {
            // Nothing is in `frames`, so the drop below only gives the charge back.
            return Err(MemoryError::OutOfMemory);
        }
        for index in 0..pages {
            if index > 0 && index % super::address_space::PAGES_PER_STEP == 0 {
                pause();
            }
            let frame = Frame::allocate_zeroed().ok_or(MemoryError::OutOfMemory)?;
            shared.frames.push(frame.into_raw());
        }
        Ok(shared)
    }

    /// Frames the bootloader filled (the ramdisk): shared like any other, but owned by
    /// nobody, so never freed to the frame allocator and charged to no account.
    pub fn boot_memory(frames: Vec<PhysFrame>) -> Self {
        Self { frames, account: None }
    }

    /// Number of pages.
    pub fn pages(&self) -> u64 {
        self.frames.len() as u64
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.pages() * FRAME_SIZE
    }

    /// Whether there are no pages (never true of an object made by `allocate`).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Calls `piece(physical address, length, bytes done so far)` for each piece of
    /// `offset..offset + len` that lies inside one frame; false (and nothing called) if the
    /// range is not inside the object.
    fn pieces(&self, offset: u64, len: u64, mut piece: impl FnMut(u64, u64, u64)) -> bool {
        if offset.checked_add(len).is_none_or(|end| end > self.len()) {
            return false;
        }
        let mut done = 0;
        while done < len {
            let at = offset + done;
            let frame = self.frames[(at / FRAME_SIZE) as usize];
            let chunk = (FRAME_SIZE - at % FRAME_SIZE).min(len - done);
            piece(frame.start_address().as_u64() + at % FRAME_SIZE, chunk, done);
            done += chunk;
        }
        true
    }

    /// Copies the bytes at `offset` into `out`; false if they are not all inside.
    pub fn read(&self, offset: u64, out: &mut [u8]) -> bool {
        self.pieces(offset, out.len() as u64, |physical, chunk, done| {
            // A process may write the frame meanwhile: the copy then sees a mix of old and new
            // bytes, which is all a reader of shared memory can expect.
            // SAFETY: the source lies inside one frame of this object (alive while `self` is),
            // through the physical map; `out` is kernel memory, so they cannot overlap.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    phys_to_virt(::x86_64::PhysAddr::new(physical)).as_ptr::<u8>(),
                    out[done as usize..].as_mut_ptr(),
                    chunk as usize,
                );
            }
        })
    }

    /// Copies `len` bytes at `offset` to `address` in `space` (whose pages must be mapped,
    /// whatever their user rights, as for `AddressSpace::write`).
    pub fn copy_into(&self, offset: u64, len: u64, space: &mut AddressSpace, address: u64) -> Result<(), MemoryError> {
        let mut result = Ok(());
        let inside = self.pieces(offset, len, |physical, chunk, done| {
            if result.is_ok() {
                result = space.write_from_physical(::x86_64::VirtAddr::new(address + done), ::x86_64::PhysAddr::new(physical), chunk);
            }
        });
        if !inside {
            return Err(MemoryError::BadRange);
        }
        result
    }

    /// The frames, in page order.
    pub(super) fn physical(&self) -> &[PhysFrame] {
        &self.frames
    }
}

impl Drop for SharedFrames {
    fn drop(&mut self) {
        let Some((account, charged)) = &self.account else { return };
        for &frame in &self.frames {
            // SAFETY: every frame came from `Frame::into_raw` in `allocate`, and the last
            // reference to this object is going: every mapping of it held one until its pages
            // were unmapped, so nothing maps or uses the frame any more.
            drop(unsafe { Frame::from_raw(frame) });
        }
        account.uncharge(*charged);
    }
}

//! Frames that several address spaces map at once: the pages behind a shared-memory object.
//!
//! [`SharedFrames`] owns its frames and frees them when the last reference goes; every
//! mapping of it holds a reference (in the process's region list) until the pages are
//! unmapped, so no frame is freed while a page table still points at it. The frames are
//! charged to the account of the process that made them, for as long as they exist.

use alloc::sync::Arc;
use alloc::vec::Vec;

use ::x86_64::structures::paging::PhysFrame;

use super::address_space::{Account, MemoryError};
use super::frame::Frame;

/// Most pages in one shared-memory object (16 MiB).
pub const MAX_SHARED_PAGES: u64 = 4096;

/// Zeroed frames shared by every mapping of one memory object.
#[derive(Debug)]
pub struct SharedFrames {
    /// Owned frames, as `Frame::into_raw` left them; freed in `drop`.
    frames: Vec<PhysFrame>,
    account: Arc<Account>,
    /// Frames charged to `account` (all that were asked for, even if allocation failed).
    charged: u64,
}

impl SharedFrames {
    /// Allocates `pages` zeroed frames, charged to `account`, calling `pause` between steps.
    pub fn allocate(pages: u64, account: &Arc<Account>, pause: &mut dyn FnMut()) -> Result<Self, MemoryError> {
        if pages == 0 || pages > MAX_SHARED_PAGES {
            return Err(MemoryError::BadRange);
        }
        account.try_charge(pages)?;
        let mut shared = Self { frames: Vec::new(), account: account.clone(), charged: pages };
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

    /// Number of pages.
    pub fn pages(&self) -> u64 {
        self.frames.len() as u64
    }

    /// The frames, in page order.
    pub(super) fn physical(&self) -> &[PhysFrame] {
        &self.frames
    }
}

impl Drop for SharedFrames {
    fn drop(&mut self) {
        for &frame in &self.frames {
            // SAFETY: every frame came from `Frame::into_raw` in `allocate`, and the last
            // reference to this object is going: every mapping of it held one until its pages
            // were unmapped, so nothing maps or uses the frame any more.
            drop(unsafe { Frame::from_raw(frame) });
        }
        self.account.uncharge(self.charged);
    }
}

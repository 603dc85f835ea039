//! The boot ramdisk: the tar archive the bootloader loaded (`build.rs` packs it from the user
//! programs and `rootfs/`).
//!
//! The bootloader maps it into the kernel's half and marks its frames as its own, so the
//! frame allocator never hands them out. The kernel reads it once, to find `/bin/init`, and
//! gives `init` a read-only memory object over its frames ([`SharedFrames::boot_memory`]),
//! which are never freed. Nothing ever writes to it: the mapping the kernel reads through
//! is only read, and no handle to the object carries WRITE.

use alloc::vec::Vec;

use ::x86_64::structures::paging::PhysFrame;

use super::frame::FRAME_SIZE;
use super::paging::kernel_frames;
use super::shared::SharedFrames;

/// The loaded ramdisk.
#[derive(Debug)]
pub struct Ramdisk {
    /// Its bytes, as the bootloader loaded them.
    pub bytes: &'static [u8],
    /// Its frames, in order, for the memory object `init` gets.
    frames: Vec<PhysFrame>,
}

impl Ramdisk {
    /// The ramdisk the bootloader mapped at `address` (`len` bytes), or `None` if there is
    /// none or a page of it is not mapped.
    pub fn from_boot(address: Option<u64>, len: u64) -> Option<Self> {
        let address = address.filter(|&address| address % FRAME_SIZE == 0 && len > 0)?;
        let frames = kernel_frames(address, len)?;
        // SAFETY: all `len` bytes at `address` were just found mapped, for the kernel's whole
        // life; the bootloader marked the frames as its own so they are never allocated, and
        // nothing writes to them from now on (see the module documentation).
        let bytes = unsafe { core::slice::from_raw_parts(address as *const u8, len as usize) };
        Some(Self { bytes, frames })
    }

    /// The frames as shared memory (never freed).
    pub fn shared_frames(&self) -> SharedFrames {
        SharedFrames::boot_memory(self.frames.clone())
    }
}

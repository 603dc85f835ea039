//! What a driver does with the device handles `init` gave it: port I/O on the ranges it
//! enabled (`sys::ioports_enable`), and its framebuffer mapped as a byte slice.
//!
//! A port access outside the enabled ranges kills the process with #GP, so these calls
//! cannot harm the program's memory: they are safe.

use core::arch::asm;

use crate::sys::{self, Result};

/// Reads a byte from `port`.
pub fn read_port(port: u16) -> u8 {
    let value: u8;
    // SAFETY: `in` touches no memory of this program; the kernel's I/O bitmap decides
    // whether it is allowed (if not, the process dies of #GP).
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nostack, nomem, preserves_flags)) };
    value
}

/// Writes a byte to `port`.
pub fn write_port(port: u16, value: u8) {
    // SAFETY: as for `read_port`.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nostack, nomem, preserves_flags)) };
}

/// A framebuffer mapped into this program.
#[derive(Debug)]
pub struct Framebuffer {
    /// Its bytes, row after row (`info.stride` pixels each).
    pub pixels: &'static mut [u8],
    /// Its layout.
    pub info: abi::FramebufferInfo,
}

/// Maps the framebuffer the device memory `handle` names, readable and writable.
///
/// # Safety
/// The mapping is never unmapped, and the slice is the only reference to it in this program:
/// call this once per framebuffer. (Others may map it too; the pixels are plain bytes.)
pub unsafe fn map_framebuffer(handle: u64) -> Result<Framebuffer> {
    let info = sys::framebuffer_info(handle)?;
    let size = sys::call(abi::syscall::MEMORY_SIZE, [handle, 0, 0, 0, 0, 0])?;
    let address = sys::call(abi::syscall::MEMORY_MAP, [handle, 0, abi::PROT_READ | abi::PROT_WRITE, 0, 0, 0])?;
    // SAFETY: `size` bytes were just mapped readable and writable at `address`, are never
    // unmapped, and the caller promises no other reference to them exists here.
    let pixels = unsafe { core::slice::from_raw_parts_mut(address as *mut u8, size as usize) };
    Ok(Framebuffer { pixels, info })
}

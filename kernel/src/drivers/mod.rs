//! Device-independent drivers: the framebuffer text console.
pub mod framebuffer;

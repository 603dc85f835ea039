//! Framebuffer text console.

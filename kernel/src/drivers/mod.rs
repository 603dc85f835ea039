//! Device-independent drivers: the framebuffer text renderer and the keyboard decoder. The
//! port I/O that reaches the devices themselves lives in `arch::x86_64`.
pub mod framebuffer;
pub mod keyboard;

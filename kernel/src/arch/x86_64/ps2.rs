//! The PS/2 controller's data port, where keyboard scancodes arrive.

use ::x86_64::instructions::port::Port;

/// Reads the byte the keyboard controller holds (call it once per keyboard interrupt).
pub fn read_scancode() -> u8 {
    let mut data: Port<u8> = Port::new(0x60);
    // SAFETY: port 0x60 is the PS/2 data port; reading it takes the pending byte and has no
    // other effect.
    unsafe { data.read() }
}

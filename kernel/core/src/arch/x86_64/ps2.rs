//! The PS/2 controller's ports: data (where keyboard scancodes arrive) and status.

use ::x86_64::instructions::port::Port;

/// The controller's data port.
pub const DATA_PORT: u16 = 0x60;
/// The controller's status and command port.
pub const STATUS_PORT: u16 = 0x64;

/// Reads the byte the keyboard controller holds (call it once per keyboard interrupt).
pub fn read_scancode() -> u8 {
    let mut data: Port<u8> = Port::new(DATA_PORT);
    // SAFETY: port 0x60 is the PS/2 data port; reading it takes the pending byte and has no
    // other effect.
    unsafe { data.read() }
}

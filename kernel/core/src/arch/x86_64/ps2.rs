//! The PS/2 controller's ports: data (where keyboard scancodes arrive) and status.

/// The controller's data port.
pub const DATA_PORT: u16 = 0x60;
/// The controller's status and command port.
pub const STATUS_PORT: u16 = 0x64;


//! QEMU's `isa-debug-exit` device: how the kernel ends the emulator with a status.
//!
//! Writing `v` to port 0xf4 makes QEMU exit with `(v << 1) | 1`; the launcher maps that
//! back to `v`. Only 0..=127 survive the trip, so other statuses are sent as
//! `abi::status::OUT_OF_RANGE`.

use ::x86_64::instructions::port::Port;

/// Ends QEMU with `status`. If no such device exists (real hardware), halts forever.
pub fn exit(status: i32) -> ! {
    let code = if (0..=127).contains(&status) { status } else { abi::status::OUT_OF_RANGE };
    let mut port: Port<u32> = Port::new(0xf4);
    // SAFETY: port 0xf4 is the debug-exit device QEMU is started with; on a machine without
    // it the write goes nowhere.
    unsafe { port.write(code as u32) };
    super::cpu::halt_forever()
}

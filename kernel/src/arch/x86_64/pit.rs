//! The 8253/8254 programmable interval timer, channel 0: the periodic timer interrupt.

use ::x86_64::instructions::port::Port;

/// The PIT's input clock in Hz.
pub const INPUT_HZ: u64 = 1_193_182;

/// Programs channel 0 as a rate generator dividing the input clock by `divisor`.
pub fn start_periodic(divisor: u16) {
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel0: Port<u8> = Port::new(0x40);
    let [low, high] = divisor.to_le_bytes();
    // SAFETY: ports 0x40/0x43 are the PIT's; command 0x34 selects channel 0, low-then-high
    // byte access, mode 2 (rate generator), binary counting.
    unsafe {
        command.write(0x34);
        channel0.write(low);
        channel0.write(high);
    }
}

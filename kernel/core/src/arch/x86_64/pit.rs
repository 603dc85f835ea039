//! The 8253/8254 programmable interval timer, channel 0, polled: a known delay at boot, to
//! calibrate the local APIC timers and to pace the start-up of other CPUs. Its interrupt is
//! not used (each CPU's local APIC timer drives the scheduler).

use ::x86_64::instructions::port::Port;

/// The PIT's input clock in Hz.
pub const INPUT_HZ: u64 = 1_193_182;

/// The longest wait one countdown covers (65,535 input cycles is about 54.9 ms).
const LONGEST_COUNTDOWN_US: u64 = 50_000;

/// Waits `microseconds` by letting channel 0 count down (mode 0) and polling its output pin
/// through the read-back command. Needs no interrupt, so it works with them masked and
/// before any clock is running.
pub fn busy_wait_us(microseconds: u64) {
    let mut left = microseconds;
    while left > 0 {
        let step = left.min(LONGEST_COUNTDOWN_US);
        count_down((step * INPUT_HZ / 1_000_000).clamp(1, 0xffff) as u16);
        left -= step;
    }
}

fn count_down(count: u16) {
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel0: Port<u8> = Port::new(0x40);
    let [low, high] = count.to_le_bytes();
    // Command 0x30: channel 0, low-then-high byte access, mode 0 (output goes high at the
    // end of the count), binary; read-back 0xe2 latches channel 0's status (bit 7: output).
    // SAFETY: ports 0x40/0x43 are the PIT's, and channel 0's interrupt line is masked at
    // both controllers, so programming it disturbs nothing else.
    unsafe {
        command.write(0x30);
        channel0.write(low);
        channel0.write(high);
        loop {
            command.write(0xe2);
            if channel0.read() & 0x80 != 0 {
                break;
            }
            core::hint::spin_loop();
        }
    }
}

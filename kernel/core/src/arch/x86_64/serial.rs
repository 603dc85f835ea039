//! COM1, the first 16550 UART: the serial console's output and input.
//!
//! Output is written synchronously; `\n` becomes `\r\n` for terminals. Input raises IRQ 4
//! for every received byte (FIFO trigger level one), and the interrupt handler drains the
//! receive FIFO into the console's input queue.

use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::FifoTriggerLevel;
use uart_16550::spec::registers::IER;
use uart_16550::{Config, Uart16550};

/// COM1's first port; its line is IRQ 4.
pub const COM1_BASE: u16 = 0x3f8;

static COM1: Mutex<Option<Uart16550<PioBackend>>> = Mutex::new(None);

/// Programs COM1 (115200 8N1, FIFO on, receive interrupt on). Returns whether a UART answered.
pub fn init() -> bool {
    // SAFETY: 0x3f8..0x400 are COM1's registers on every PC, and this module is their only
    // user.
    let Ok(mut uart) = (unsafe { Uart16550::new_port(COM1_BASE) }) else {
        return false;
    };
    let config = Config {
        interrupts: IER::DATA_READY,
        fifo_trigger_level: Some(FifoTriggerLevel::One),
        ..Config::DEFAULT
    };
    if uart.init(config).is_err() {
        return false;
    }
    *COM1.lock() = Some(uart);
    true
}

/// Sends `bytes`, turning each `\n` into `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    if let Some(uart) = COM1.lock().as_mut() {
        send_translated(uart, bytes);
    }
}

fn send_translated(uart: &mut Uart16550<PioBackend>, bytes: &[u8]) {
    for line in bytes.split_inclusive(|&byte| byte == b'\n') {
        match line.strip_suffix(b"\n") {
            Some(text) => {
                uart.send_bytes_exact(text);
                uart.send_bytes_exact(b"\r\n");
            }
            None => uart.send_bytes_exact(line),
        }
    }
}

/// COM2's first port; its line is IRQ 3.
pub const COM2_BASE: u16 = 0x2f8;

/// Whether a UART answers at COM2 (its scratch register keeps what is written to it).
pub fn com2_present() -> bool {
    let mut scratch: ::x86_64::instructions::port::Port<u8> = ::x86_64::instructions::port::Port::new(COM2_BASE + 7);
    // SAFETY: the scratch register of a 16550 at COM2 (or nothing, on a machine without
    // one) has no effect on anything; the kernel uses COM2 for nothing else.
    unsafe {
        scratch.write(0x5a);
        scratch.read() == 0x5a
    }
}

/// Writes `bytes` to COM1 without the lock, for the panic path: the panic handler never
/// returns to whatever context may hold the lock, so it can take the port over.
pub fn write_bytes_for_panic(bytes: &[u8]) {
    // SAFETY: COM1 was initialised at boot; the panicking CPU (the only one) never returns
    // to a holder of `COM1`'s lock, so no other user of the port runs again.
    if let Ok(mut uart) = unsafe { Uart16550::new_port(COM1_BASE) } {
        send_translated(&mut uart, bytes);
    }
}

//! The console's devices, through the ports `init` granted: COM1 (a 16550 UART) and the PS/2
//! keyboard controller; and the framebuffer's layout as the terminal wants it.

use console_logic::screen::{Geometry, PixelFormat};
use userlib::device::{read_port, write_port};

const COM1: u16 = 0x3f8;
const COM1_INTERRUPT_ENABLE: u16 = COM1 + 1;
const COM1_MODEM_CONTROL: u16 = COM1 + 4;
const COM1_LINE_STATUS: u16 = COM1 + 5;
/// Line status: a received byte is waiting.
const DATA_READY: u8 = 1 << 0;
/// Line status: the transmitter can take a byte.
const TRANSMITTER_EMPTY: u8 = 1 << 5;
/// Interrupt enable: on received data.
const RECEIVED_DATA_INTERRUPT: u8 = 1 << 0;
/// Modem control: DTR, RTS and OUT2 (which lets the UART's interrupt reach the controller).
const DTR_RTS_OUT2: u8 = 0x0b;

const PS2_DATA: u16 = 0x60;
const PS2_STATUS: u16 = 0x64;
/// PS/2 status: the output buffer holds a byte for us.
const OUTPUT_FULL: u8 = 1 << 0;

/// COM1. The kernel programmed its speed and FIFO at boot (it writes its log there too);
/// the console turns its receive interrupt on and does its input and output.
pub struct Serial(());

impl Serial {
    /// Takes COM1's input and output over; bytes already waiting are dropped, since no
    /// interrupt will announce them.
    pub fn start() -> Self {
        write_port(COM1_MODEM_CONTROL, DTR_RTS_OUT2);
        write_port(COM1_INTERRUPT_ENABLE, RECEIVED_DATA_INTERRUPT);
        let serial = Self(());
        while serial.read().is_some() {}
        serial
    }

    /// Sends `bytes`, turning each `\n` into `\r\n` for terminals.
    pub fn write(&self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                Self::send(b'\r');
            }
            Self::send(byte);
        }
    }

    fn send(byte: u8) {
        while read_port(COM1_LINE_STATUS) & TRANSMITTER_EMPTY == 0 {
            core::hint::spin_loop();
        }
        write_port(COM1, byte);
    }

    /// A received byte, if one is waiting.
    pub fn read(&self) -> Option<u8> {
        (read_port(COM1_LINE_STATUS) & DATA_READY != 0).then(|| read_port(COM1))
    }
}

/// The PS/2 controller's keyboard port (the controller translates to scancode set 1).
pub struct Keyboard(());

impl Keyboard {
    /// Takes the keyboard over; a byte already waiting is dropped.
    pub fn start() -> Self {
        let keyboard = Self(());
        while keyboard.read().is_some() {}
        keyboard
    }

    /// A scancode byte, if one is waiting.
    pub fn read(&self) -> Option<u8> {
        (read_port(PS2_STATUS) & OUTPUT_FULL != 0).then(|| read_port(PS2_DATA))
    }
}

/// The terminal's geometry for a framebuffer's layout; `None` for a format it cannot draw.
pub fn geometry(info: &abi::FramebufferInfo) -> Option<Geometry> {
    let format = match info.format {
        abi::PIXEL_RGB => PixelFormat::Rgb,
        abi::PIXEL_BGR => PixelFormat::Bgr,
        abi::PIXEL_GRAY => PixelFormat::Gray,
        _ => return None,
    };
    Some(Geometry {
        width: info.width as usize,
        height: info.height as usize,
        stride: info.stride as usize,
        bytes_per_pixel: info.bytes_per_pixel as usize,
        format,
    })
}

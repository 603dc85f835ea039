//! QEMU's firmware configuration device (fw_cfg), read through ports 0x510/0x511.
//!
//! The launcher passes the command line as the file `opt/enigma/cmdline` and an in-kernel
//! test selection as `opt/enigma/ktest` (`-fw_cfg name=...,string=...`), so a different
//! command line needs no rebuilt image.

use alloc::vec::Vec;

use ::x86_64::instructions::port::Port;

const SELECTOR_PORT: u16 = 0x510;
const DATA_PORT: u16 = 0x511;
const SIGNATURE_SELECTOR: u16 = 0x0000;
const DIRECTORY_SELECTOR: u16 = 0x0019;
const NAME_LENGTH: usize = 56;

fn select(selector: u16) {
    let mut port: Port<u16> = Port::new(SELECTOR_PORT);
    // SAFETY: writing a selector to the fw_cfg selector port only chooses the item the data
    // port reads next.
    unsafe { port.write(selector) };
}

fn read_bytes(buffer: &mut [u8]) {
    let mut port: Port<u8> = Port::new(DATA_PORT);
    for byte in buffer {
        // SAFETY: reading the data port returns the next byte of the selected item.
        *byte = unsafe { port.read() };
    }
}

fn read_array<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    read_bytes(&mut bytes);
    bytes
}

/// Whether QEMU's fw_cfg device is present (its signature reads "QEMU").
pub fn present() -> bool {
    select(SIGNATURE_SELECTOR);
    read_array::<4>() == *b"QEMU"
}

/// The contents of the fw_cfg file `name`, if QEMU was given one.
pub fn read_file(name: &str) -> Option<Vec<u8>> {
    if !present() {
        return None;
    }
    select(DIRECTORY_SELECTOR);
    let count = u32::from_be_bytes(read_array());
    for _ in 0..count {
        let size = u32::from_be_bytes(read_array());
        let selector = u16::from_be_bytes(read_array());
        let _reserved: [u8; 2] = read_array();
        let raw_name: [u8; NAME_LENGTH] = read_array();
        let name_length = raw_name.iter().position(|&byte| byte == 0).unwrap_or(NAME_LENGTH);
        if &raw_name[..name_length] == name.as_bytes() {
            let mut contents = alloc::vec![0; size as usize];
            select(selector);
            read_bytes(&mut contents);
            return Some(contents);
        }
    }
    None
}

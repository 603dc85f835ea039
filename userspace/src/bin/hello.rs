#![no_std]
#![no_main]
extern crate userlib;
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! { loop {} }

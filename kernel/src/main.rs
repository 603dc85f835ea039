#![no_std]
#![no_main]
use bootloader_api::{entry_point, BootInfo};
entry_point!(kmain);
fn kmain(_b: &'static mut BootInfo) -> ! {
    unsafe { core::arch::asm!("out dx, al", in("dx") 0x3f8u16, in("al") b'E'); }
    unsafe { core::arch::asm!("out dx, eax", in("dx") 0xf4u16, in("eax") 0u32); }
    loop {}
}
#[panic_handler]
fn panic(_i: &core::panic::PanicInfo) -> ! { loop {} }

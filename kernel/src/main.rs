//! The kernel binary: the bootloader's entry point and the panic handler. Everything else is
//! in the library (`lib.rs`). On the host (for `cargo test`/`cargo bench` of the library)
//! this compiles to an empty program.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod entry {
    use bootloader_api::config::{BootloaderConfig, Mapping};
    use bootloader_api::{BootInfo, entry_point};
    use kernel::mm;

    /// What the kernel asks of the bootloader: all physical memory mapped at a fixed
    /// upper-half offset, the kernel image at a fixed address (where debuggers and
    /// backtraces expect it), every other dynamic mapping (stack, boot info, framebuffer) in
    /// the upper half so the lower half stays empty for processes, and a 128 KiB boot stack
    /// (with a guard page).
    pub static BOOTLOADER_CONFIG: BootloaderConfig = {
        let mut config = BootloaderConfig::new_default();
        config.mappings.physical_memory = Some(Mapping::FixedAddress(mm::physical_map::PHYSICAL_MEMORY_OFFSET));
        config.mappings.kernel_base = Mapping::FixedAddress(abi::memory::KERNEL_IMAGE_BASE);
        config.mappings.dynamic_range_start = Some(mm::DYNAMIC_RANGE_START);
        config.mappings.dynamic_range_end = Some(mm::DYNAMIC_RANGE_END);
        config.kernel_stack_size = 128 * 1024;
        config
    };

    entry_point!(start, config = &BOOTLOADER_CONFIG);

    fn start(boot_info: &'static mut BootInfo) -> ! {
        kernel::boot::kernel_main(boot_info)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        kernel::boot::panic(info)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}

//! Build script of the launcher: wraps the kernel ELF (a binary artifact dependency) into a BIOS
//! and a UEFI disk image with the `bootloader` crate, and exports their paths to the launcher as
//! the compile-time environment variables `BIOS_IMAGE` and `UEFI_IMAGE`.
//!
//! The bootloader's own logging is switched off on both the serial port and the framebuffer, so
//! the serial console carries only what the kernel writes.

use std::path::{Path, PathBuf};

use bootloader::{BiosBoot, BootConfig, UefiBoot};

fn main() {
    let out_dir = PathBuf::from(
        std::env::var_os("OUT_DIR").expect("OUT_DIR is not set; is this run by cargo?"),
    );
    let kernel = PathBuf::from(std::env::var_os("CARGO_BIN_FILE_KERNEL_kernel").expect(
        "CARGO_BIN_FILE_KERNEL_kernel is not set; the `kernel` artifact build-dependency is missing",
    ));
    let config = boot_config();

    let bios = out_dir.join("enigma-bios.img");
    BiosBoot::new(&kernel)
        .set_boot_config(&config)
        .create_disk_image(&bios)
        .unwrap_or_else(|e| {
            panic!(
                "failed to create the BIOS disk image {}: {e:#}",
                bios.display()
            )
        });

    let uefi = out_dir.join("enigma-uefi.img");
    UefiBoot::new(&kernel)
        .set_boot_config(&config)
        .create_disk_image(&uefi)
        .unwrap_or_else(|e| {
            panic!(
                "failed to create the UEFI disk image {}: {e:#}",
                uefi.display()
            )
        });

    export("BIOS_IMAGE", &bios);
    export("UEFI_IMAGE", &uefi);
    // Cargo reruns this script whenever the kernel artifact is rebuilt; beyond that only this
    // file matters (without the line, any edit in the launcher package would rebuild the images).
    println!("cargo:rerun-if-changed=build.rs");
}

/// The bootloader configuration shared by both images: no bootloader log output anywhere.
fn boot_config() -> BootConfig {
    let mut config = BootConfig::default();
    config.serial_logging = false;
    config.frame_buffer_logging = false;
    config
}

/// Makes `path` available to the launcher's source as `env!(name)`.
fn export(name: &str, path: &Path) {
    println!("cargo:rustc-env={name}={}", path.display());
}

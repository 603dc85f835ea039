use std::path::PathBuf;
fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let kernel = PathBuf::from(std::env::var_os("CARGO_BIN_FILE_KERNEL_kernel").unwrap());
    let bios = out.join("enigma-bios.img");
    bootloader::BiosBoot::new(&kernel).create_disk_image(&bios).unwrap();
    println!("cargo:rustc-env=BIOS_IMAGE={}", bios.display());
}

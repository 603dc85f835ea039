//! Links every user program as a static, non-PIE executable at 4 MiB (`abi::memory::USER_START`),
//! so the kernel's loader maps it at its link addresses and applies no relocations.
fn main() {
    println!("cargo:rustc-link-arg-bins=--image-base=0x400000");
    println!("cargo:rustc-link-arg-bins=--no-pie");
}

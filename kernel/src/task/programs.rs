//! The user programs embedded in the kernel image.
//!
//! `build.rs` lists every binary of the `userspace` crate (one per file `src/bin/NAME.rs` or
//! directory `src/bin/NAME/main.rs`), and cargo builds them for x86_64-unknown-none before
//! the kernel, so each ELF image is `include_bytes!`'d here under its name.

/// An embedded program.
#[derive(Debug)]
pub struct Program {
    /// Its name, as `spawn` and the shell know it.
    pub name: &'static str,
    /// The ELF image.
    pub image: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// The program called `name`.
pub fn find(name: &str) -> Option<&'static Program> {
    PROGRAMS.iter().find(|program| program.name == name)
}

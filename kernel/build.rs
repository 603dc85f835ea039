//! Generates the table of embedded user programs: one entry per binary of the `userspace`
//! crate, which cargo finds as `userspace/src/bin/NAME.rs` or `userspace/src/bin/NAME/main.rs`
//! (a program split into modules), each pointing at that binary as built for
//! x86_64-unknown-none (an artifact dependency of this crate). Adding a program is adding a
//! file or a directory there.
//!
//! The programs are built with debug information for gdb, which would make the kernel image
//! ten times larger; the kernel embeds copies without it, which keep the symbol table the
//! loader maps into each process for backtraces.

use std::fmt::Write;
use std::path::{Path, PathBuf};

#[path = "../build_support/strip_debug.rs"]
mod strip_debug;

/// The binary name of `path` in `src/bin/`, as cargo's automatic discovery names it.
fn binary_name(path: &Path) -> Option<String> {
    let name = if path.is_dir() {
        path.join("main.rs").is_file().then(|| path.file_name())??
    } else {
        (path.extension()? == "rs").then(|| path.file_stem())??
    };
    name.to_str().map(str::to_owned)
}

fn main() {
    let bin_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../userspace/src/bin");
    println!("cargo:rerun-if-changed={}", bin_dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&bin_dir)
        .expect("reading userspace/src/bin")
        .filter_map(|entry| binary_name(&entry.expect("reading a directory entry").path()))
        .collect();
    names.sort();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let mut table = String::from("/// Every embedded program, sorted by name.\npub static PROGRAMS: &[Program] = &[\n");
    for name in &names {
        let built = std::env::var_os(format!("CARGO_BIN_FILE_USERSPACE_{name}"))
            .unwrap_or_else(|| panic!("no artifact for the user program {name}"));
        println!("cargo:rerun-if-changed={}", Path::new(&built).display());
        let embedded = out_dir.join(format!("program-{name}"));
        strip_debug::strip_debug(Path::new(&built), &embedded);
        writeln!(table, "    Program {{ name: {name:?}, image: include_bytes!({:?}) }},", embedded.display())
            .expect("writing to a string");
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("programs.rs"), table).expect("writing programs.rs");
}

//! Generates the table of embedded user programs: one entry per binary of the `userspace`
//! crate, which cargo finds as `userspace/src/bin/NAME.rs` or `userspace/src/bin/NAME/main.rs`
//! (a program split into modules), each pointing at that binary as built for
//! x86_64-unknown-none (an artifact dependency of this crate). Adding a program is adding a
//! file or a directory there.

use std::fmt::Write;
use std::path::Path;

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
    let mut table = String::from("/// Every embedded program, sorted by name.\npub static PROGRAMS: &[Program] = &[\n");
    for name in &names {
        writeln!(
            table,
            "    Program {{ name: {name:?}, image: include_bytes!(env!(\"CARGO_BIN_FILE_USERSPACE_{name}\")) }},"
        )
        .expect("writing to a string");
    }
    table.push_str("];\n");
    let out = Path::new(&std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo")).join("programs.rs");
    std::fs::write(out, table).expect("writing programs.rs");
}

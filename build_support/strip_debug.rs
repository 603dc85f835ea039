//! Shared by the build scripts of the launcher and the kernel (each includes this file as a
//! module): copies an ELF file without its debug information, with the toolchain's
//! `llvm-objcopy --strip-debug` (the `llvm-tools` component, which `make` installs). The
//! symbol table stays, so backtraces can still name functions; gdb reads the original.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes `source` without its debug sections to `destination`.
pub fn strip_debug(source: &Path, destination: &Path) {
    let objcopy = llvm_objcopy();
    let status = Command::new(&objcopy)
        .arg("--strip-debug")
        .arg(source)
        .arg(destination)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", objcopy.display()));
    assert!(status.success(), "{} --strip-debug {} failed", objcopy.display(), source.display());
}

/// The toolchain's `llvm-objcopy`.
fn llvm_objcopy() -> PathBuf {
    let rustc = std::env::var_os("RUSTC").expect("RUSTC is set by cargo");
    let output = Command::new(&rustc).args(["--print", "sysroot"]).output().expect("running rustc --print sysroot");
    let sysroot = String::from_utf8(output.stdout).expect("the sysroot is UTF-8");
    let host = std::env::var("HOST").expect("HOST is set by cargo");
    let objcopy = Path::new(sysroot.trim()).join(format!("lib/rustlib/{host}/bin/llvm-objcopy"));
    assert!(objcopy.exists(), "{} is missing: install the llvm-tools component (`make` does)", objcopy.display());
    objcopy
}

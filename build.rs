//! Build script of the launcher: wraps the kernel ELF (a binary artifact dependency) and the
//! boot ramdisk into a BIOS and a UEFI disk image with the `bootloader` crate, and exports
//! their paths to the launcher as the compile-time environment variables `BIOS_IMAGE` and
//! `UEFI_IMAGE`.
//!
//! The ramdisk is a tar archive (ustar, deterministic headers, names relative to the root):
//! every user program under `bin/` (without its debug information, with its symbol table),
//! and everything in the repository's `rootfs/` folder under its own path there. The kernel
//! starts `bin/init` from it, and the `fs` server fills the file system with it, so a file
//! added to `rootfs/` or a program added to `userspace/src/bin/` is there on the next boot.
//!
//! The kernel and the user programs are built with debug information for gdb. The images
//! carry the kernel without it (it would triple the image, and the BIOS boot under TCG takes
//! a second longer per megabyte); the kernel's symbol table stays, for its backtraces. The
//! files with debug information are linked under stable names in this build's own `gdb/`
//! directory (`kernel`, and one per user program, named like the program), which is exported
//! as `SYMBOLS_DIR` for `--gdb`; `target/<profile>/gdb` points at the directory of the launcher
//! built last. (Cargo may build the kernel twice, for `cargo run` and for `cargo test`, with
//! different layouts: a shared directory of links once sent gdb to the other build's symbols.)
//!
//! The bootloader's own logging is switched off on both the serial port and the framebuffer, so
//! the serial console carries only what the kernel writes.

use std::path::{Path, PathBuf};

use bootloader::{BiosBoot, BootConfig, UefiBoot};

#[path = "build_support/strip_debug.rs"]
mod strip_debug;

fn main() {
    let out_dir = PathBuf::from(
        std::env::var_os("OUT_DIR").expect("OUT_DIR is not set; is this run by cargo?"),
    );
    let kernel = PathBuf::from(std::env::var_os("CARGO_BIN_FILE_KERNEL_kernel").expect(
        "CARGO_BIN_FILE_KERNEL_kernel is not set; the `kernel` artifact build-dependency is missing",
    ));
    let symbols_dir = link_symbol_files(&kernel, &out_dir);
    let kernel = {
        let stripped = out_dir.join("kernel");
        strip_debug::strip_debug(&kernel, &stripped);
        stripped
    };
    let config = boot_config();
    let ramdisk = pack_ramdisk(&out_dir);

    let bios = out_dir.join("enigma-bios.img");
    BiosBoot::new(&kernel)
        .set_ramdisk(&ramdisk)
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
        .set_ramdisk(&ramdisk)
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
    export("SYMBOLS_DIR", &symbols_dir);
    // Cargo reruns this script whenever the kernel artifact is rebuilt; beyond that only this
    // file matters (without the line, any edit in the launcher package would rebuild the images).
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=rootfs");
    println!("cargo:rerun-if-changed=build_support/strip_debug.rs");
}

/// The bootloader configuration shared by both images: no bootloader log output anywhere.
fn boot_config() -> BootConfig {
    let mut config = BootConfig::default();
    config.serial_logging = false;
    config.frame_buffer_logging = false;
    config
}

/// Links the kernel ELF and every user program's ELF into `<out_dir>/gdb/`, points
/// `<profile dir>/gdb` at it, and returns it. `out_dir` lies inside `<profile dir>/build/`.
fn link_symbol_files(kernel: &Path, out_dir: &Path) -> PathBuf {
    let profile_dir = out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(Path::parent)
        .expect("OUT_DIR lies inside the profile directory's build/");
    let dir = out_dir.join("gdb");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let latest = profile_dir.join("gdb");
    // An older build left a directory or a link there; either way it is replaced.
    let _ = std::fs::remove_file(&latest).or_else(|_| std::fs::remove_dir_all(&latest));
    std::os::unix::fs::symlink(&dir, &latest)
        .unwrap_or_else(|e| panic!("cannot link {} to {}: {e}", latest.display(), dir.display()));
    for (name, target) in std::iter::once(("kernel".to_owned(), kernel.to_owned())).chain(user_programs()) {
        let link = dir.join(&name);
        // A link from an earlier build may point at an older artifact.
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)
            .unwrap_or_else(|e| panic!("cannot link {} to {}: {e}", link.display(), target.display()));
    }
    dir
}

/// The user programs, as cargo built them: (name, path) for every binary of `userspace`,
/// sorted by name.
fn user_programs() -> Vec<(String, PathBuf)> {
    let mut programs: Vec<(String, PathBuf)> = std::env::vars_os()
        .filter_map(|(key, value)| {
            let name = key.to_str()?.strip_prefix("CARGO_BIN_FILE_USERSPACE_")?.to_owned();
            Some((name, PathBuf::from(value)))
        })
        .collect();
    programs.sort();
    programs
}

/// Writes the ramdisk to `<out_dir>/ramdisk.tar` and returns its path: `bin/NAME` for every
/// user program (stripped of debug information), then the files and folders of `rootfs/`.
fn pack_ramdisk(out_dir: &Path) -> PathBuf {
    let path = out_dir.join("ramdisk.tar");
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    let mut archive = tar::Builder::new(file);
    archive.mode(tar::HeaderMode::Deterministic);
    let stripped_dir = out_dir.join("ramdisk-bin");
    std::fs::create_dir_all(&stripped_dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", stripped_dir.display()));
    add_folder(&mut archive, "bin", 0o755);
    for (name, built) in user_programs() {
        let stripped = stripped_dir.join(&name);
        strip_debug::strip_debug(&built, &stripped);
        let data = std::fs::read(&stripped).unwrap_or_else(|e| panic!("cannot read {}: {e}", stripped.display()));
        add_file(&mut archive, &format!("bin/{name}"), &data, 0o755);
    }
    let rootfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs");
    add_tree(&mut archive, &rootfs, "");
    archive.finish().unwrap_or_else(|e| panic!("cannot finish {}: {e}", path.display()));
    path
}

/// Adds the folder `name` to the archive.
fn add_folder(archive: &mut tar::Builder<std::fs::File>, name: &str, mode: u32) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(mode);
    header.set_size(0);
    archive.append_data(&mut header, format!("{name}/"), std::io::empty()).unwrap_or_else(|e| panic!("cannot add {name}/: {e}"));
}

/// Adds the file `name` with `data` to the archive.
fn add_file(archive: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8], mode: u32) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_size(data.len() as u64);
    archive.append_data(&mut header, name, data).unwrap_or_else(|e| panic!("cannot add {name}: {e}"));
}

/// Adds everything inside the folder `source` (recursively, sorted by name) under `prefix`.
fn add_tree(archive: &mut tar::Builder<std::fs::File>, source: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(source) else { return };
    let mut entries: Vec<std::fs::DirEntry> =
        entries.map(|entry| entry.unwrap_or_else(|e| panic!("reading {}: {e}", source.display()))).collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name().into_string().unwrap_or_else(|name| panic!("{name:?} in rootfs/ is not UTF-8"));
        let inside = format!("{prefix}{name}");
        let path = entry.path();
        if path.is_dir() {
            add_folder(archive, &inside, 0o755);
            add_tree(archive, &path, &format!("{inside}/"));
        } else {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            add_file(archive, &inside, &data, 0o644);
        }
    }
}

/// Makes `path` available to the launcher's source as `env!(name)`.
fn export(name: &str, path: &Path) {
    println!("cargo:rustc-env={name}={}", path.display());
}

//! The address-space layout both sides rely on.
//!
//! The lower half belongs to the process, the upper half to the kernel. A user pointer is
//! valid only inside `USER_START..USER_END`; everything else is refused with `EFAULT`. A
//! buffer of length 0 is never accessed, so its pointer is not checked (an empty Rust slice
//! points at `0x1`).

/// Size of a page and of a physical frame.
pub const PAGE_SIZE: u64 = 4096;

/// The lowest address a process may map (the first 4 MiB stay unmapped to catch null and
/// small-offset pointers).
pub const USER_START: u64 = 0x0000_0000_0040_0000;

/// One past the highest user address: the end of the canonical lower half.
pub const USER_END: u64 = 0x0000_8000_0000_0000;

/// Top of every process's stack (exclusive). The stack grows down from here.
pub const USER_STACK_TOP: u64 = 0x0000_7fff_fff0_0000;

/// Bytes of stack mapped for every process.
pub const USER_STACK_SIZE: u64 = 64 * 1024;

/// Size of the unmapped guard gap below each user stack. Nothing is ever mapped there, so a
/// stack overflow faults instead of running into other memory.
pub const USER_STACK_GUARD: u64 = 64 * 1024;

/// Where `mmap` places mappings when the caller lets the kernel choose.
pub const USER_MMAP_BASE: u64 = 0x0000_1000_0000_0000;

/// Where the loader maps the program's symbol map, read-only: a
/// [`SymbolMapHeader`](crate::backtrace::SymbolMapHeader), then the ELF symbol and string
/// tables (see [`crate::backtrace`]). Program segments may not reach it, and `mmap`, `munmap`,
/// `mprotect` and `brk` cannot change it (they fail where they would). It lies in the first
/// GiB, like the image, so the two share a page directory, and well above where the heap of
/// an image at `USER_START` can grow.
pub const USER_SYMBOLS_BASE: u64 = 0x0000_0000_3000_0000;

/// Most bytes of symbol and string table the loader maps; a program with more gets the
/// header alone.
pub const USER_SYMBOLS_MAX: u64 = 1024 * 1024;

/// Start of the kernel's view of all physical memory (physical address 0 maps here).
/// User programs can never touch it; tests use it as a known kernel address.
pub const PHYSICAL_MAP_OFFSET: u64 = 0xffff_8000_0000_0000;

/// Where the bootloader maps the kernel image: the kernel is linked position-independent at
/// 0 and loaded at this offset, so a kernel symbol's address is its ELF value plus this (gdb
/// needs it: `symbol-file -o`). The start of the bootloader's dynamic range.
pub const KERNEL_IMAGE_BASE: u64 = 0xffff_8800_0000_0000;

/// Whether `[start, start + len)` lies entirely inside the user half, computed without
/// overflow. An empty range is valid anywhere in the user half.
pub fn is_user_range(start: u64, len: u64) -> bool {
    match start.checked_add(len) {
        Some(end) => start >= USER_START && end <= USER_END,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_range_rejects_kernel_half_overflow_and_null() {
        assert!(is_user_range(USER_START, PAGE_SIZE));
        assert!(is_user_range(USER_END - PAGE_SIZE, PAGE_SIZE));
        assert!(!is_user_range(USER_END - PAGE_SIZE, PAGE_SIZE + 1));
        assert!(!is_user_range(0, 1));
        assert!(!is_user_range(PHYSICAL_MAP_OFFSET, 1));
        assert!(!is_user_range(USER_START, u64::MAX));
        assert!(!is_user_range(u64::MAX, 2));
    }
}

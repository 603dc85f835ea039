//! Backtraces, as the kernel and `userlib` both print them: the symbol map the loader gives
//! every process, finding the function an address lies in, walking a chain of frame records,
//! and the format of a backtrace line.
//!
//! **Symbol map.** The loader maps a [`SymbolMapHeader`] read-only at
//! [`USER_SYMBOLS_BASE`](crate::memory::USER_SYMBOLS_BASE), followed by the program's ELF
//! `.symtab` and then its `.strtab`, byte for byte as they are in the file. A program without
//! a symbol table (or with one over [`USER_SYMBOLS_MAX`](crate::memory::USER_SYMBOLS_MAX)
//! bytes) gets the header alone, with both lengths 0. The kernel reads the map of a faulting
//! process to name its functions; `userlib`'s panic handler reads its own.
//!
//! **Frame records.** Everything is built with frame pointers: each function's prologue
//! pushes the caller's `rbp` and points `rbp` at it, so `[rbp]` is the caller's record and
//! `[rbp + 8]` the return address into the caller. [`walk_frames`] follows that chain inside
//! one stack only, upwards only, for a bounded number of steps, so a corrupt chain ends the
//! walk instead of sending it anywhere.
//!
//! Nothing here allocates: a panic handler may run with a broken heap.

use core::fmt;
use core::ops::Range;

/// `SymbolMapHeader::magic`: "ENIGSYMS" in little-endian byte order.
pub const SYMBOL_MAP_MAGIC: u64 = u64::from_le_bytes(*b"ENIGSYMS");

/// The start of a process's symbol map; the symbol table follows it directly, then the
/// string table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SymbolMapHeader {
    /// [`SYMBOL_MAP_MAGIC`].
    pub magic: u64,
    /// Bytes of `.symtab`, a whole number of [`SYMBOL_SIZE`]-byte entries.
    pub symtab_len: u64,
    /// Bytes of `.strtab`.
    pub strtab_len: u64,
}

impl SymbolMapHeader {
    /// Size of the header; the symbol table starts this many bytes into the map.
    pub const SIZE: u64 = core::mem::size_of::<Self>() as u64;

    /// Whether this header can describe a map the loader made: the magic, whole symbol
    /// entries, and both tables together within
    /// [`USER_SYMBOLS_MAX`](crate::memory::USER_SYMBOLS_MAX). A reader checks this before
    /// trusting the lengths.
    pub fn is_valid(&self) -> bool {
        self.magic == SYMBOL_MAP_MAGIC
            && self.symtab_len.is_multiple_of(SYMBOL_SIZE as u64)
            && self
                .symtab_len
                .checked_add(self.strtab_len)
                .is_some_and(|total| total <= crate::memory::USER_SYMBOLS_MAX)
    }

    /// The header as it is laid out in memory.
    pub fn to_bytes(&self) -> [u8; Self::SIZE as usize] {
        let mut bytes = [0; Self::SIZE as usize];
        for (chunk, word) in bytes.as_chunks_mut::<8>().0.iter_mut().zip([self.magic, self.symtab_len, self.strtab_len]) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    /// Where the string table starts, in bytes from the start of the map.
    pub fn strtab_offset(&self) -> u64 {
        Self::SIZE + self.symtab_len
    }
}

/// Bytes of one ELF64 symbol-table entry.
pub const SYMBOL_SIZE: usize = 24;

/// ELF `STT_FUNC`: the symbol names a function.
const SYMBOL_TYPE_FUNCTION: u8 = 2;

/// Longest symbol name a lookup returns, in bytes (longer ones are left unnamed).
pub const SYMBOL_NAME_MAX: usize = 512;

/// One entry of an ELF64 symbol table: the fields a lookup needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Offset of its name in the string table.
    pub name: u32,
    /// Its first address.
    pub value: u64,
    /// Its size in bytes.
    pub size: u64,
    is_function: bool,
}

impl Symbol {
    /// Decodes a little-endian `Elf64_Sym`.
    pub fn parse(entry: &[u8; SYMBOL_SIZE]) -> Self {
        let word = |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().expect("eight bytes"));
        Self {
            name: u32::from_le_bytes(entry[0..4].try_into().expect("four bytes")),
            value: word(8),
            size: word(16),
            is_function: entry[4] & 0xf == SYMBOL_TYPE_FUNCTION,
        }
    }

    /// Whether this is a function whose bytes include `address`.
    pub fn covers(&self, address: u64) -> bool {
        self.is_function && address >= self.value && address - self.value < self.size
    }
}

/// A search for the function containing an address, fed a symbol table in pieces (the kernel
/// reads a process's table a buffer at a time).
#[derive(Clone, Copy, Debug)]
pub struct FunctionSearch {
    address: u64,
    found: Option<Symbol>,
}

impl FunctionSearch {
    /// Starts a search for `address`.
    pub fn new(address: u64) -> Self {
        Self { address, found: None }
    }

    /// Looks through whole entries of `entries` (a trailing partial entry is ignored). The
    /// smallest covering function wins, so an outer symbol cannot hide a nested one.
    pub fn search(&mut self, entries: &[u8]) {
        for entry in entries.as_chunks::<SYMBOL_SIZE>().0 {
            let symbol = Symbol::parse(entry);
            if symbol.covers(self.address) && self.found.is_none_or(|best| symbol.size < best.size) {
                self.found = Some(symbol);
            }
        }
    }

    /// The function found, if any.
    pub fn found(&self) -> Option<Symbol> {
        self.found
    }
}

/// The function in `symtab` (a whole symbol table) that contains `address`.
pub fn function_containing(symtab: &[u8], address: u64) -> Option<Symbol> {
    let mut search = FunctionSearch::new(address);
    search.search(symtab);
    search.found()
}

/// The NUL-terminated name at `offset` in `strtab`, if it is there, ends within
/// [`SYMBOL_NAME_MAX`] bytes, and is UTF-8.
pub fn name_at(strtab: &[u8], offset: u32) -> Option<&str> {
    let start = usize::try_from(offset).ok()?;
    let rest = strtab.get(start..)?;
    let rest = &rest[..rest.len().min(SYMBOL_NAME_MAX + 1)];
    let length = rest.iter().position(|&byte| byte == 0)?;
    core::str::from_utf8(&rest[..length]).ok()
}

/// Most frames a backtrace shows.
pub const MAX_FRAMES: usize = 32;

/// Follows the frame-record chain that starts at `frame_pointer` and hands each record's
/// address and return address to `visit`, innermost first. Every record must lie inside
/// `stack`, 8-byte aligned, above the one before it; the walk stops at the first record that
/// breaks a rule, at a zero return address, or after [`MAX_FRAMES`] records. `read` reads the
/// two words of the record at an address the walk has checked is inside `stack` (`None`: it
/// could not, which also ends the walk).
pub fn walk_frames(
    frame_pointer: u64,
    stack: Range<u64>,
    mut read: impl FnMut(u64) -> Option<[u64; 2]>,
    mut visit: impl FnMut(u64, u64),
) {
    let mut record = frame_pointer;
    for _ in 0..MAX_FRAMES {
        let inside = record.is_multiple_of(8)
            && record >= stack.start
            && record.checked_add(16).is_some_and(|end| end <= stack.end);
        if !inside {
            return;
        }
        let Some([caller_record, return_address]) = read(record) else { return };
        if return_address == 0 {
            return;
        }
        visit(record, return_address);
        if caller_record <= record {
            return;
        }
        record = caller_record;
    }
}

/// Where a frame of a backtrace was executing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A caller, shown by the address its call returns to.
    Return(u64),
    /// The instruction a fault or interrupt stopped at.
    Interrupted(u64),
}

impl Frame {
    /// The address shown.
    pub fn address(self) -> u64 {
        match self {
            Self::Return(address) | Self::Interrupted(address) => address,
        }
    }

    /// The address to look the function up by. A return address points after the call,
    /// which may already be in the next function when the call was the caller's last
    /// instruction (a call that never returns), so the caller is found by the byte before.
    pub fn lookup_address(self) -> u64 {
        match self {
            Self::Return(address) => address.saturating_sub(1),
            Self::Interrupted(address) => address,
        }
    }
}

/// The line that opens a backtrace.
pub const BACKTRACE_HEADING: &str = "backtrace:";

/// One line of a backtrace: `  #N 0xADDRESS name+0xOFFSET`, the name demangled and without
/// its hash, or just the address when no symbol covers it.
#[derive(Clone, Copy, Debug)]
pub struct FrameLine<'a> {
    /// The frame's position, 0 for the innermost.
    pub index: usize,
    /// The instruction address shown (for a caller's frame, its return address).
    pub address: u64,
    /// The function's (mangled) name and the address's offset into it.
    pub function: Option<(&'a str, u64)>,
}

impl fmt::Display for FrameLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "  #{:<2} {:#018x}", self.index, self.address)?;
        match self.function {
            Some((name, offset)) => write!(f, " {:#}+{offset:#x}", rustc_demangle::demangle(name)),
            None => write!(f, " ?"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::ToString;
    use std::vec::Vec;

    use super::*;

    fn entry(name: u32, info: u8, value: u64, size: u64) -> [u8; SYMBOL_SIZE] {
        let mut bytes = [0; SYMBOL_SIZE];
        bytes[0..4].copy_from_slice(&name.to_le_bytes());
        bytes[4] = info;
        bytes[8..16].copy_from_slice(&value.to_le_bytes());
        bytes[16..24].copy_from_slice(&size.to_le_bytes());
        bytes
    }

    fn table(entries: &[[u8; SYMBOL_SIZE]]) -> Vec<u8> {
        entries.concat()
    }

    #[test]
    fn the_smallest_covering_function_is_found() {
        let symtab = table(&[
            entry(1, SYMBOL_TYPE_FUNCTION, 0x1000, 0x100),
            entry(2, SYMBOL_TYPE_FUNCTION, 0x1040, 0x10),
            entry(3, 1, 0x1040, 0x4),
            entry(4, SYMBOL_TYPE_FUNCTION, 0x2000, 0),
        ]);
        assert_eq!(function_containing(&symtab, 0x1000).map(|s| s.name), Some(1));
        assert_eq!(function_containing(&symtab, 0x1042).map(|s| s.name), Some(2));
        assert_eq!(function_containing(&symtab, 0x10ff).map(|s| s.name), Some(1));
        assert_eq!(function_containing(&symtab, 0x1100), None);
        assert_eq!(function_containing(&symtab, 0x2000), None, "a zero-size symbol covers nothing");
    }

    #[test]
    fn a_search_in_pieces_matches_a_search_of_the_whole() {
        let symtab = table(&[
            entry(1, SYMBOL_TYPE_FUNCTION, 0x1000, 0x100),
            entry(2, SYMBOL_TYPE_FUNCTION, 0x1040, 0x10),
        ]);
        let mut search = FunctionSearch::new(0x1044);
        for piece in symtab.chunks(SYMBOL_SIZE) {
            search.search(piece);
        }
        assert_eq!(search.found(), function_containing(&symtab, 0x1044));
        assert_eq!(search.found().map(|s| s.name), Some(2));
    }

    #[test]
    fn names_must_end_within_the_table_and_the_limit() {
        let strtab = b"\0first\0second";
        assert_eq!(name_at(strtab, 1), Some("first"));
        assert_eq!(name_at(strtab, 7), None, "no NUL before the end");
        assert_eq!(name_at(strtab, 100), None);
        let mut long = Vec::from([b'x'; SYMBOL_NAME_MAX + 1]);
        long.push(0);
        assert_eq!(name_at(&long, 0), None);
        assert_eq!(name_at(&long, 1).map(str::len), Some(SYMBOL_NAME_MAX));
    }

    #[test]
    fn headers_are_checked_before_their_lengths_are_used() {
        let good = SymbolMapHeader { magic: SYMBOL_MAP_MAGIC, symtab_len: 48, strtab_len: 10 };
        assert!(good.is_valid());
        assert_eq!(good.to_bytes()[..8], *b"ENIGSYMS");
        assert_eq!(good.to_bytes()[8..16], 48u64.to_le_bytes());
        assert_eq!(good.strtab_offset(), SymbolMapHeader::SIZE + 48);
        assert!(!SymbolMapHeader { magic: 0, ..good }.is_valid());
        assert!(!SymbolMapHeader { symtab_len: 47, ..good }.is_valid());
        assert!(!SymbolMapHeader { strtab_len: u64::MAX, ..good }.is_valid());
        assert!(!SymbolMapHeader { strtab_len: crate::memory::USER_SYMBOLS_MAX, ..good }.is_valid());
    }

    /// A fake stack: word `i` lives at `base + 8 * i`.
    fn walk(stack: &[u64], base: u64, start: u64) -> Vec<u64> {
        let read = |address: u64| {
            let index = usize::try_from((address - base) / 8).ok()?;
            Some([*stack.get(index)?, *stack.get(index + 1)?])
        };
        let mut found = Vec::new();
        walk_frames(start, base..base + 8 * stack.len() as u64, read, |record, address| {
            assert!(record >= base && record % 8 == 0);
            found.push(address)
        });
        found
    }

    #[test]
    fn a_well_formed_chain_is_followed_to_its_end() {
        let base = 0x1000;
        // Records at 0x1000 -> 0x1010 -> 0x1020, whose caller record is 0 (the outermost).
        let stack = [0x1010, 0xa, 0x1020, 0xb, 0, 0xc];
        assert_eq!(walk(&stack, base, base), [0xa, 0xb, 0xc]);
    }

    #[test]
    fn a_chain_that_loops_leaves_or_points_down_stops() {
        let base = 0x1000;
        assert_eq!(walk(&[0x1000, 0xa], base, base), [0xa], "a record pointing at itself");
        assert_eq!(walk(&[0x1010, 0xa, 0x1000, 0xb], base, base), [0xa, 0xb], "pointing back down");
        assert_eq!(walk(&[0x9000, 0xa], base, base), [0xa], "pointing outside the stack");
        assert_eq!(walk(&[0x1010, 0xa, 0x1000], base, base), [0xa], "a record cut off by the stack's end");
        assert_eq!(walk(&[0x1009, 0xa, 0, 0xb], base, base), [0xa], "misaligned");
        assert_eq!(walk(&[0x1010, 0, 0, 0xb], base, base), Vec::<u64>::new(), "a zero return address");
        assert_eq!(walk(&[0, 0xa], base, 0x800), Vec::<u64>::new(), "starting below the stack");
    }

    #[test]
    fn a_long_chain_is_cut_at_the_limit() {
        let base = 0x1000;
        let stack: Vec<u64> = (0..200u64).flat_map(|i| [base + 16 * (i + 1), 0x100 + i]).collect();
        assert_eq!(walk(&stack, base, base).len(), MAX_FRAMES);
    }

    #[test]
    fn frame_lines_demangle_without_the_hash() {
        let line = FrameLine { index: 3, address: 0x401234, function: Some(("_ZN5hello4main17h0123456789abcdefE", 0x14)) };
        assert_eq!(line.to_string(), "  #3  0x0000000000401234 hello::main+0x14");
        let v0 = FrameLine { index: 0, address: 0x10, function: Some(("_RNvCs1234_5hello4main", 0)) };
        assert_eq!(v0.to_string(), "  #0  0x0000000000000010 hello::main+0x0");
        let unknown = FrameLine { index: 12, address: 0x10, function: None };
        assert_eq!(unknown.to_string(), "  #12 0x0000000000000010 ?");
    }

    #[test]
    fn return_addresses_are_looked_up_at_the_call() {
        assert_eq!(Frame::Return(0x1000).lookup_address(), 0xfff);
        assert_eq!(Frame::Interrupted(0x1000).lookup_address(), 0x1000);
        assert_eq!(Frame::Return(0).lookup_address(), 0);
        assert_eq!(Frame::Return(0x1000).address(), 0x1000);
    }
}

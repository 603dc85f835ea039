//! The ELF loader: validates a program image, then builds its address space.
//!
//! An image is anything that can copy its bytes out ([`Image`]): a byte slice (the ramdisk's
//! `/bin/init`, the unit tests' samples) or the frames of a memory object (what `spawn`
//! gets). Every header the loader checks is copied into kernel memory first and read from
//! there, so a process that changes the image while it loads can change the bytes of the
//! segments, never what was validated.
//!
//! [`validate`] checks everything before a single page is mapped: a 64-bit little-endian
//! x86_64 executable (`ET_EXEC`); a bounded number of program headers that lie inside the
//! file; every `PT_LOAD` inside the user half with `filesz ≤ memsz` and its file bytes inside
//! the file, all computed with checked arithmetic; no segment both writable and executable;
//! no two segments sharing a page; and an entry point inside an executable segment. Any
//! violation is a [`LoadError`], never a panic. [`load`] then maps each segment with the
//! rights from its `p_flags` (text RX, rodata R, data and bss RW + NX), copies the file
//! bytes (the rest is already zero, which is the bss), and builds the stack: argument
//! strings, then the `argv` pointer array and `argc`, with an unmapped guard gap below.
//!
//! It also maps the program's symbol map read-only at `abi::memory::USER_SYMBOLS_BASE` (see
//! `abi::backtrace`): a header, then the image's `.symtab` and `.strtab` when
//! [`symbol_tables`] finds them and they fit in `USER_SYMBOLS_MAX` bytes. The pages count
//! against the process's memory like any other; a program without usable tables gets the
//! header alone. Section headers are not needed to run a program, so bad ones only mean no
//! symbols, never a refused image.

use alloc::vec::Vec;
use core::ops::Range;

use ::x86_64::VirtAddr;
use abi::backtrace::{SYMBOL_MAP_MAGIC, SymbolMapHeader};
use abi::memory::{PAGE_SIZE, USER_STACK_SIZE, USER_STACK_TOP, USER_SYMBOLS_BASE, USER_SYMBOLS_MAX};
use goblin::elf::header::{EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, EM_X86_64, ET_EXEC};
use goblin::elf::program_header::{PF_W, PF_X, PT_LOAD};
use goblin::elf::section_header::{SHT_STRTAB, SHT_SYMTAB};
use goblin::elf64::header::{Header, SIZEOF_EHDR};
use goblin::elf64::program_header::{ProgramHeader, SIZEOF_PHDR};
use goblin::elf64::section_header::{SectionHeader, SIZEOF_SHDR};
use scroll::{LE, Pread};

use crate::mm::address_space::{AddressSpace, MemoryError, UserRights};
use crate::mm::shared::SharedFrames;
use crate::mm::user_memory::{UserMemory, stack_range};

/// Most program headers accepted.
const MAX_PROGRAM_HEADERS: u16 = 64;

/// Most section headers searched for the symbol table.
const MAX_SECTION_HEADERS: u16 = 256;

/// The address range reserved for the symbol map, which no segment may reach.
const SYMBOL_MAP_AREA: Range<u64> =
    USER_SYMBOLS_BASE..USER_SYMBOLS_BASE + (SymbolMapHeader::SIZE + USER_SYMBOLS_MAX).next_multiple_of(PAGE_SIZE);

/// A program image the loader reads.
pub trait Image {
    /// Its length in bytes.
    fn size(&self) -> usize;

    /// Copies `out.len()` bytes from `offset`; false if they are not all inside.
    fn read_at(&self, offset: usize, out: &mut [u8]) -> bool;

    /// Copies the bytes `range` (inside the image) to `address` in `space`.
    fn copy_into(&self, range: Range<usize>, space: &mut AddressSpace, address: u64) -> Result<(), MemoryError>;
}

impl Image for [u8] {
    fn size(&self) -> usize {
        <[u8]>::len(self)
    }

    fn read_at(&self, offset: usize, out: &mut [u8]) -> bool {
        let bytes = offset.checked_add(out.len()).and_then(|end| self.get(offset..end));
        bytes.inspect(|bytes| out.copy_from_slice(bytes)).is_some()
    }

    fn copy_into(&self, range: Range<usize>, space: &mut AddressSpace, address: u64) -> Result<(), MemoryError> {
        space.write(VirtAddr::new(address), self.get(range).ok_or(MemoryError::BadRange)?)
    }
}

impl Image for SharedFrames {
    fn size(&self) -> usize {
        SharedFrames::len(self) as usize
    }

    fn read_at(&self, offset: usize, out: &mut [u8]) -> bool {
        self.read(offset as u64, out)
    }

    fn copy_into(&self, range: Range<usize>, space: &mut AddressSpace, address: u64) -> Result<(), MemoryError> {
        let len = range.end.checked_sub(range.start).ok_or(MemoryError::BadRange)?;
        SharedFrames::copy_into(self, range.start as u64, len as u64, space, address)
    }
}

/// Copies the `N` bytes at `offset` out of the image; `None` if they are not all inside.
fn bytes_at<const N: usize>(image: &(impl Image + ?Sized), offset: usize) -> Option<[u8; N]> {
    let mut bytes = [0; N];
    image.read_at(offset, &mut bytes).then_some(bytes)
}

/// Why a program image was refused or could not be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The image is not a well-formed ELF file of the kind Enigma runs; says what is wrong.
    Invalid(&'static str),
    /// Memory ran out, or the image is bigger than a process may be.
    Memory(MemoryError),
    /// The arguments do not fit on the initial stack.
    ArgumentsTooLong,
}

impl From<MemoryError> for LoadError {
    fn from(error: MemoryError) -> Self {
        Self::Memory(error)
    }
}

/// A loadable segment, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First virtual address.
    pub address: u64,
    /// Bytes in memory (`memsz`).
    pub memory_size: u64,
    /// Bytes of the file to copy to `address`.
    pub file_bytes: Range<usize>,
    /// Page rights.
    pub rights: UserRights,
}

impl Segment {
    fn page_range(&self) -> (u64, u64) {
        let start = self.address & !(PAGE_SIZE - 1);
        // `validate` checked that address + memory_size fits in the user half.
        let end = (self.address + self.memory_size).next_multiple_of(PAGE_SIZE);
        (start, end)
    }
}

/// A checked image: its entry point and loadable segments, sorted by address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidImage {
    /// Where execution starts.
    pub entry: u64,
    /// The `PT_LOAD` segments.
    pub segments: Vec<Segment>,
}

/// Checks `image` without mapping anything.
pub fn validate(image: &(impl Image + ?Sized)) -> Result<ValidImage, LoadError> {
    let invalid = LoadError::Invalid;
    let Some(bytes) = bytes_at::<SIZEOF_EHDR>(image, 0).filter(|bytes| bytes[..4] == *b"\x7fELF") else {
        return Err(invalid("not an ELF file"));
    };
    if bytes[EI_CLASS] != ELFCLASS64 || bytes[EI_DATA] != ELFDATA2LSB {
        return Err(invalid("not a 64-bit little-endian ELF file"));
    }
    let header: Header = bytes.pread_with(0, LE).map_err(|_| invalid("truncated ELF header"))?;
    if header.e_machine != EM_X86_64 {
        return Err(invalid("not an x86_64 program"));
    }
    if header.e_type != ET_EXEC {
        return Err(invalid("not an executable (ET_EXEC)"));
    }
    if header.e_phnum == 0 || header.e_phnum > MAX_PROGRAM_HEADERS {
        return Err(invalid("bad number of program headers"));
    }
    if usize::from(header.e_phentsize) != SIZEOF_PHDR {
        return Err(invalid("bad program header size"));
    }
    let table_start = usize::try_from(header.e_phoff).map_err(|_| invalid("program headers outside the file"))?;
    let table_end = usize::from(header.e_phnum)
        .checked_mul(SIZEOF_PHDR)
        .and_then(|size| size.checked_add(table_start))
        .filter(|&end| end <= image.size())
        .ok_or(invalid("program headers outside the file"))?;

    let mut segments = Vec::new();
    for offset in (table_start..table_end).step_by(SIZEOF_PHDR) {
        let program_header: ProgramHeader = bytes_at::<SIZEOF_PHDR>(image, offset)
            .and_then(|bytes| bytes.pread_with(0, LE).ok())
            .ok_or(invalid("truncated program header"))?;
        if program_header.p_type == PT_LOAD && program_header.p_memsz > 0 {
            segments.push(check_segment(&program_header, image.size())?);
        }
    }
    if segments.is_empty() {
        return Err(invalid("no loadable segment"));
    }
    segments.sort_by_key(|segment| segment.address);
    for pair in segments.windows(2) {
        if pair[0].page_range().1 > pair[1].page_range().0 {
            return Err(invalid("segments share a page"));
        }
    }
    let entry_is_code = segments.iter().any(|segment| {
        segment.rights == UserRights::ReadExecute
            && (segment.address..segment.address + segment.memory_size).contains(&header.e_entry)
    });
    if !entry_is_code {
        return Err(invalid("entry point outside the executable segments"));
    }
    Ok(ValidImage { entry: header.e_entry, segments })
}

fn check_segment(header: &ProgramHeader, image_len: usize) -> Result<Segment, LoadError> {
    let invalid = LoadError::Invalid;
    if header.p_filesz > header.p_memsz {
        return Err(invalid("segment file size exceeds its memory size"));
    }
    if !abi::memory::is_user_range(header.p_vaddr, header.p_memsz) {
        return Err(invalid("segment outside the user half"));
    }
    let (stack_start, _) = stack_range();
    let segment_end = header.p_vaddr + header.p_memsz;
    if segment_end > stack_start {
        return Err(invalid("segment overlaps the stack area"));
    }
    if header.p_vaddr < SYMBOL_MAP_AREA.end && SYMBOL_MAP_AREA.start < segment_end {
        return Err(invalid("segment overlaps the symbol map"));
    }
    let file_start = usize::try_from(header.p_offset).map_err(|_| invalid("segment outside the file"))?;
    let file_end = usize::try_from(header.p_filesz)
        .ok()
        .and_then(|size| file_start.checked_add(size))
        .filter(|&end| end <= image_len)
        .ok_or(invalid("segment outside the file"))?;
    let rights = match (header.p_flags & PF_W != 0, header.p_flags & PF_X != 0) {
        (true, true) => return Err(invalid("segment both writable and executable")),
        (true, false) => UserRights::ReadWrite,
        (false, true) => UserRights::ReadExecute,
        (false, false) => UserRights::ReadOnly,
    };
    Ok(Segment { address: header.p_vaddr, memory_size: header.p_memsz, file_bytes: file_start..file_end, rights })
}

/// Where an image's symbol table and the string table its names are in lie in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolTables {
    /// The `SHT_SYMTAB` section's bytes.
    pub symtab: Range<usize>,
    /// The bytes of the `SHT_STRTAB` section it links to.
    pub strtab: Range<usize>,
}

/// Finds the symbol table of an ELF64 little-endian `image` through its section headers:
/// `None` when there is none or anything about it is out of bounds.
pub fn symbol_tables(image: &(impl Image + ?Sized)) -> Option<SymbolTables> {
    let header: Header = bytes_at::<SIZEOF_EHDR>(image, 0)?.pread_with(0, LE).ok()?;
    if header.e_ident[..4] != *b"\x7fELF" || usize::from(header.e_shentsize) != SIZEOF_SHDR || header.e_shnum > MAX_SECTION_HEADERS {
        return None;
    }
    let section = |index: usize| -> Option<SectionHeader> {
        let offset = index.checked_mul(SIZEOF_SHDR)?.checked_add(usize::try_from(header.e_shoff).ok()?)?;
        bytes_at::<SIZEOF_SHDR>(image, offset)?.pread_with(0, LE).ok()
    };
    let bytes = |section: &SectionHeader| -> Option<Range<usize>> {
        let start = usize::try_from(section.sh_offset).ok()?;
        let end = start.checked_add(usize::try_from(section.sh_size).ok()?)?;
        (end <= image.size()).then_some(start..end)
    };
    let symtab = (0..usize::from(header.e_shnum)).filter_map(section).find(|section| section.sh_type == SHT_SYMTAB)?;
    let strtab = section(usize::try_from(symtab.sh_link).ok()?).filter(|section| section.sh_type == SHT_STRTAB)?;
    Some(SymbolTables { symtab: bytes(&symtab)?, strtab: bytes(&strtab)? })
}

/// A loaded program, ready to run.
#[derive(Debug)]
pub struct LoadedProgram {
    /// Its memory.
    pub memory: UserMemory,
    /// Where it starts.
    pub entry: u64,
    /// Its initial stack pointer, pointing at `argc`.
    pub stack_pointer: u64,
}

/// Bytes of a segment copied between two calls of `pause`.
const COPY_STEP: usize = 64 * 1024;

/// Validates `image` and builds a new address space with it and a stack holding `args`,
/// calling `pause` between steps of the work (see `AddressSpace::map_zeroed`).
pub fn load(image: &(impl Image + ?Sized), args: &[&str], pause: &mut dyn FnMut()) -> Result<LoadedProgram, LoadError> {
    let valid = validate(image)?;
    let mut space = AddressSpace::new()?;
    let mut image_end = 0;
    for segment in &valid.segments {
        let (start, end) = segment.page_range();
        space.map_zeroed(VirtAddr::new(start), (end - start) / PAGE_SIZE, segment.rights, pause)?;
        copy_in_steps(image, segment.file_bytes.clone(), &mut space, segment.address, pause)?;
        image_end = image_end.max(end);
    }
    let (stack_start, stack_end) = stack_range();
    space.map_zeroed(VirtAddr::new(stack_start), (stack_end - stack_start) / PAGE_SIZE, UserRights::ReadWrite, pause)?;
    let stack_pointer = write_arguments(&mut space, args)?;
    map_symbol_map(&mut space, image, pause)?;
    Ok(LoadedProgram { memory: UserMemory::new(space, image_end), entry: valid.entry, stack_pointer })
}

/// Copies the image's bytes `range` to `address` in `space` in steps of [`COPY_STEP`]
/// bytes, with `pause` between them.
fn copy_in_steps(
    image: &(impl Image + ?Sized),
    range: Range<usize>,
    space: &mut AddressSpace,
    address: u64,
    pause: &mut dyn FnMut(),
) -> Result<(), LoadError> {
    for start in range.clone().step_by(COPY_STEP) {
        pause();
        let end = range.end.min(start + COPY_STEP);
        image.copy_into(start..end, space, address + (start - range.start) as u64)?;
    }
    Ok(())
}

/// Maps the symbol map: the header, then `.symtab` and `.strtab` if the image has them and
/// a header can describe them (whole entries, at most `USER_SYMBOLS_MAX` bytes together).
fn map_symbol_map(space: &mut AddressSpace, image: &(impl Image + ?Sized), pause: &mut dyn FnMut()) -> Result<(), LoadError> {
    let header_for = |symtab: &Range<usize>, strtab: &Range<usize>| SymbolMapHeader {
        magic: SYMBOL_MAP_MAGIC,
        symtab_len: symtab.len() as u64,
        strtab_len: strtab.len() as u64,
    };
    let (symtab, strtab) = symbol_tables(image)
        .map(|tables| (tables.symtab, tables.strtab))
        .filter(|(symtab, strtab)| header_for(symtab, strtab).is_valid())
        .unwrap_or((0..0, 0..0));
    let header = header_for(&symtab, &strtab);
    let size = header.strtab_offset() + header.strtab_len;
    space.map_zeroed(VirtAddr::new(USER_SYMBOLS_BASE), size.div_ceil(PAGE_SIZE), UserRights::ReadOnly, pause)?;
    space.write(VirtAddr::new(USER_SYMBOLS_BASE), &header.to_bytes())?;
    copy_in_steps(image, symtab, space, USER_SYMBOLS_BASE + SymbolMapHeader::SIZE, pause)?;
    copy_in_steps(image, strtab, space, USER_SYMBOLS_BASE + header.strtab_offset(), pause)?;
    Ok(())
}

/// Lays out the initial stack, top down: the argument strings (each NUL-terminated as a
/// courtesy to C-minded readers), padding to 16 bytes, then `argc`, the `argv` pointers and
/// a null pointer, so the stack pointer is 16-byte aligned and points at `argc`.
fn write_arguments(space: &mut AddressSpace, args: &[&str]) -> Result<u64, LoadError> {
    let strings_size: usize = args.iter().map(|arg| arg.len() + 1).sum();
    let words = 1 + args.len() + 1;
    let total = (strings_size + words * 8).next_multiple_of(16) as u64;
    // Leave most of the stack for the program.
    if total > USER_STACK_SIZE / 4 {
        return Err(LoadError::ArgumentsTooLong);
    }
    let base = USER_STACK_TOP - total;
    let mut string_address = base + (words * 8) as u64;
    let mut table = Vec::with_capacity(words);
    table.push(args.len() as u64);
    for arg in args {
        table.push(string_address);
        space.write(VirtAddr::new(string_address), arg.as_bytes())?;
        string_address += arg.len() as u64 + 1;
    }
    table.push(0);
    let table_bytes: Vec<u8> = table.iter().flat_map(|word| word.to_le_bytes()).collect();
    space.write(VirtAddr::new(base), &table_bytes)?;
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small valid program: an executable segment at 0x401000 holding the entry point, a
    /// data segment at 0x402000 (8 bytes from the file, the rest bss), and a symbol table
    /// naming `_start`, in the layout a linker would write.
    fn hello() -> Vec<u8> {
        let mut image = vec![0u8; 0x2300 + 3 * SIZEOF_SHDR];
        let put = |image: &mut Vec<u8>, at: usize, bytes: &[u8]| image[at..at + bytes.len()].copy_from_slice(bytes);
        // The ELF header.
        put(&mut image, 0, b"\x7fELF\x02\x01\x01");
        put(&mut image, 16, &2u16.to_le_bytes()); // e_type = ET_EXEC
        put(&mut image, 18, &62u16.to_le_bytes()); // e_machine = EM_X86_64
        put(&mut image, 20, &1u32.to_le_bytes()); // e_version
        put(&mut image, 24, &0x40_1000u64.to_le_bytes()); // e_entry
        put(&mut image, 32, &64u64.to_le_bytes()); // e_phoff
        put(&mut image, 40, &0x2300u64.to_le_bytes()); // e_shoff
        put(&mut image, 52, &(SIZEOF_EHDR as u16).to_le_bytes());
        put(&mut image, 54, &(SIZEOF_PHDR as u16).to_le_bytes());
        put(&mut image, 56, &2u16.to_le_bytes()); // e_phnum
        put(&mut image, 58, &(SIZEOF_SHDR as u16).to_le_bytes());
        put(&mut image, 60, &3u16.to_le_bytes()); // e_shnum
        // Program headers: (flags, offset, address, file size, memory size).
        for (index, (flags, offset, address, file_size, memory_size)) in
            [(5u32, 0x1000u64, 0x40_1000u64, 0x10u64, 0x10u64), (6, 0x2000, 0x40_2000, 8, 0x100)].into_iter().enumerate()
        {
            let at = 64 + index * SIZEOF_PHDR;
            put(&mut image, at, &PT_LOAD.to_le_bytes());
            put(&mut image, at + 4, &flags.to_le_bytes());
            put(&mut image, at + 8, &offset.to_le_bytes());
            put(&mut image, at + 16, &address.to_le_bytes());
            put(&mut image, at + 24, &address.to_le_bytes());
            put(&mut image, at + 32, &file_size.to_le_bytes());
            put(&mut image, at + 40, &memory_size.to_le_bytes());
            put(&mut image, at + 48, &0x1000u64.to_le_bytes());
        }
        // The code: `jmp $` padded with `int3`.
        put(&mut image, 0x1000, &[0xeb, 0xfe]);
        put(&mut image, 0x1002, &[0xcc; 14]);
        // A symbol table of two entries (the null symbol, then `_start`) and its strings.
        let start = 0x2100 + 24;
        put(&mut image, start, &1u32.to_le_bytes());
        image[start + 4] = 0x12; // global function
        put(&mut image, start + 6, &1u16.to_le_bytes());
        put(&mut image, start + 8, &0x40_1000u64.to_le_bytes());
        put(&mut image, start + 16, &0x10u64.to_le_bytes());
        put(&mut image, 0x2200, b"\0_start\0");
        // Section headers: null, .symtab (linked to 2), .strtab.
        for (index, (kind, offset, size, link)) in [(SHT_SYMTAB, 0x2100u64, 48u64, 2u32), (SHT_STRTAB, 0x2200, 8, 0)].into_iter().enumerate() {
            let at = 0x2300 + (index + 1) * SIZEOF_SHDR;
            put(&mut image, at + 4, &kind.to_le_bytes());
            put(&mut image, at + 24, &offset.to_le_bytes());
            put(&mut image, at + 32, &size.to_le_bytes());
            put(&mut image, at + 40, &link.to_le_bytes());
            put(&mut image, at + 56, &24u64.to_le_bytes());
        }
        image
    }

    fn phdr_offset(image: &[u8], index: usize) -> usize {
        let header: Header = image.pread_with(0, LE).unwrap();
        header.e_phoff as usize + index * SIZEOF_PHDR
    }

    fn first_load_index(image: &[u8]) -> usize {
        (0..64)
            .find(|&index| {
                let header: ProgramHeader = image.pread_with(phdr_offset(image, index), LE).unwrap();
                header.p_type == PT_LOAD
            })
            .unwrap()
    }

    /// Overwrites a u64 field (at `field` bytes into the first PT_LOAD header).
    fn patch_load_u64(image: &mut [u8], field: usize, value: u64) {
        let at = phdr_offset(image, first_load_index(image)) + field;
        image[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    const P_FLAGS: usize = 4;
    const P_OFFSET: usize = 8;
    const P_VADDR: usize = 16;
    const P_FILESZ: usize = 32;
    
    #[test]
    fn the_real_user_program_validates() {
        let valid = validate(hello().as_slice()).expect("hello must validate");
        assert!(valid.segments.iter().any(|segment| segment.rights == UserRights::ReadExecute));
        assert!(valid.segments.iter().all(|segment| segment.address >= abi::memory::USER_START));
    }

    #[test]
    fn wrong_kinds_of_file_are_refused() {
        assert_eq!(validate(b"hello".as_slice()), Err(LoadError::Invalid("not an ELF file")));
        let mut image = hello();
        image[EI_CLASS] = 1;
        assert_eq!(validate(image.as_slice()), Err(LoadError::Invalid("not a 64-bit little-endian ELF file")));
        let mut image = hello();
        image[18] = 3; // e_machine = EM_386
        image[19] = 0;
        assert_eq!(validate(image.as_slice()), Err(LoadError::Invalid("not an x86_64 program")));
        let mut image = hello();
        image[16] = 3; // e_type = ET_DYN
        assert_eq!(validate(image.as_slice()), Err(LoadError::Invalid("not an executable (ET_EXEC)")));
    }

    #[test]
    fn truncation_into_headers_or_segment_data_is_an_error_not_a_panic() {
        let image = hello();
        let valid = validate(image.as_slice()).unwrap();
        let needed = valid.segments.iter().map(|segment| segment.file_bytes.end).max().unwrap();
        for length in 0..image.len() {
            let result = validate(&image[..length]);
            if length < needed {
                assert!(result.is_err(), "truncated to {length} bytes (data ends at {needed}) but accepted");
            } else {
                assert_eq!(result.as_ref(), Ok(&valid), "truncated to {length} bytes, past all segment data");
            }
        }
    }

    #[test]
    fn program_headers_outside_the_file_are_refused() {
        let mut image = hello();
        image[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff
        assert_eq!(validate(image.as_slice()), Err(LoadError::Invalid("program headers outside the file")));
        let mut image = hello();
        image[56..58].copy_from_slice(&1000u16.to_le_bytes()); // e_phnum
        assert_eq!(validate(image.as_slice()), Err(LoadError::Invalid("bad number of program headers")));
    }

    #[test]
    fn bad_segments_are_refused() {
        let cases: [(usize, u64, &str); 5] = [
            (P_VADDR, 0xffff_8000_0000_0000, "segment outside the user half"),
            (P_VADDR, u64::MAX - 10, "segment outside the user half"),
            (P_VADDR, abi::memory::USER_STACK_TOP - 0x1000, "segment overlaps the stack area"),
            (P_OFFSET, u64::MAX - 1, "segment outside the file"),
            (P_FILESZ, u64::MAX, "segment file size exceeds its memory size"),
        ];
        for (field, value, expected) in cases {
            let mut image = hello();
            patch_load_u64(&mut image, field, value);
            assert_eq!(validate(image.as_slice()), Err(LoadError::Invalid(expected)), "field {field} = {value:#x}");
        }
    }

    #[test]
    fn writable_and_executable_segment_is_refused() {
        let mut image = hello();
        let at = phdr_offset(&image, first_load_index(&image)) + P_FLAGS;
        image[at..at + 4].copy_from_slice(&(PF_W | PF_X | 4).to_le_bytes());
        assert_eq!(validate(image.as_slice()), Err(LoadError::Invalid("segment both writable and executable")));
    }

    #[test]
    fn entry_outside_code_is_refused() {
        let mut image = hello();
        image[24..32].copy_from_slice(&0x7000_0000u64.to_le_bytes()); // e_entry
        assert_eq!(validate(image.as_slice()), Err(LoadError::Invalid("entry point outside the executable segments")));
    }

    #[test]
    fn the_real_program_has_a_symbol_table_that_names_its_entry() {
        let image = hello();
        let tables = symbol_tables(image.as_slice()).expect("hello keeps its symbol table");
        assert!(((tables.symtab.len() + tables.strtab.len()) as u64) < USER_SYMBOLS_MAX);
        let entry = validate(image.as_slice()).unwrap().entry;
        let symbol = abi::backtrace::function_containing(&image[tables.symtab.clone()], entry).expect("a function at the entry");
        assert_eq!(abi::backtrace::name_at(&image[tables.strtab], symbol.name), Some("_start"));
    }

    #[test]
    fn bad_section_headers_mean_no_symbols_but_a_valid_image() {
        let image = hello();
        let header: Header = image.pread_with(0, LE).unwrap();
        let symtab_header = (0..usize::from(header.e_shnum))
            .map(|index| header.e_shoff as usize + index * SIZEOF_SHDR)
            .find(|&at| image.pread_with::<SectionHeader>(at, LE).unwrap().sh_type == SHT_SYMTAB)
            .unwrap();
        const SH_SIZE: usize = 32;
        let cases: [(usize, &[u8], &str); 3] = [
            (40, &u64::MAX.to_le_bytes(), "section headers outside the file"),
            (60, &1000u16.to_le_bytes(), "too many section headers"),
            (symtab_header + SH_SIZE, &(image.len() as u64).to_le_bytes(), "a symbol table past the file's end"),
        ];
        for (at, bytes, case) in cases {
            let mut image = hello();
            image[at..at + bytes.len()].copy_from_slice(bytes);
            assert_eq!(symbol_tables(image.as_slice()), None, "{case}");
            assert!(validate(image.as_slice()).is_ok(), "{case}");
        }
    }

    #[test]
    fn a_segment_in_the_symbol_map_area_is_refused() {
        let mut image = hello();
        patch_load_u64(&mut image, P_VADDR, USER_SYMBOLS_BASE);
        assert_eq!(validate(image.as_slice()), Err(LoadError::Invalid("segment overlaps the symbol map")));
    }

    #[test]
    fn random_corruption_never_panics() {
        let original = hello();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut image = original.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // The headers and program headers sit in the first few hundred bytes.
                let at = (state >> 8) as usize % image.len().min(512);
                image[at] = (state >> 24) as u8;
            }
            let _ = validate(image.as_slice());
            let _ = symbol_tables(image.as_slice());
        }
    }
}

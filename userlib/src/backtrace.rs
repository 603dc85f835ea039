//! A program's own backtrace, which the panic handler prints: the frame-pointer chain on the
//! program's stack, each frame named from the symbol map the kernel's loader maps at
//! `abi::memory::USER_SYMBOLS_BASE` (see `abi::backtrace`).
//!
//! Both regions are always there: the loader maps the whole stack and the symbol map before
//! the program starts, and no syscall can unmap either. The walk still reads only inside the
//! stack, and the map only as far as its checked header says, so a corrupt chain or header
//! costs names or frames, not a fault. Nothing here allocates: the heap may be what broke.

use core::fmt::{self, Write};

use abi::backtrace::{
    BACKTRACE_HEADING, Frame, FrameLine, SymbolMapHeader, function_containing, name_at, walk_frames,
};
use abi::memory::{USER_STACK_SIZE, USER_STACK_TOP, USER_SYMBOLS_BASE};

/// The program's symbol and string tables, if its symbol map is valid.
fn symbol_tables() -> Option<(&'static [u8], &'static [u8])> {
    // SAFETY: the loader maps the header read-only at this address in every process, and it
    // is never unmapped; any bytes are a valid header (it is checked before use).
    let header = unsafe { (USER_SYMBOLS_BASE as *const SymbolMapHeader).read_volatile() };
    if !header.is_valid() {
        return None;
    }
    let table = |offset: u64, length: u64| {
        // SAFETY: the loader maps the header and both tables, of the lengths the (valid)
        // header gives, contiguously and read-only, for the life of the process.
        unsafe { core::slice::from_raw_parts((USER_SYMBOLS_BASE + offset) as *const u8, length as usize) }
    };
    Some((table(SymbolMapHeader::SIZE, header.symtab_len), table(header.strtab_offset(), header.strtab_len)))
}

/// Writes the backtrace of the code that called this to `out`, innermost frame first.
#[inline(never)]
pub(crate) fn write_backtrace(out: &mut impl Write) -> fmt::Result {
    let tables = symbol_tables();
    let frame_pointer: u64;
    // SAFETY: copies a register; touches no memory.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) frame_pointer, options(nomem, nostack, preserves_flags)) };
    let stack = USER_STACK_TOP - USER_STACK_SIZE..USER_STACK_TOP;
    let read_record = |record: u64| {
        // SAFETY: `walk_frames` checked that the record's 16 bytes lie inside the stack,
        // which is mapped for the life of the process, and 8-byte aligned.
        Some(unsafe { (record as *const [u64; 2]).read_volatile() })
    };
    writeln!(out, "{BACKTRACE_HEADING}")?;
    let mut index = 0;
    let mut result = Ok(());
    walk_frames(frame_pointer, stack, read_record, |_, return_address| {
        let frame = Frame::Return(return_address);
        let function = tables.and_then(|(symtab, strtab)| {
            let symbol = function_containing(symtab, frame.lookup_address())?;
            Some((name_at(strtab, symbol.name)?, frame.address() - symbol.value))
        });
        result = result.and_then(|()| writeln!(out, "{}", FrameLine { index, address: frame.address(), function }));
        index += 1;
    });
    result
}

//! Backtraces with function names: the kernel's own, when it panics, and a user program's,
//! when a fault kills it.
//!
//! **Kernel.** At boot, [`init`] finds the symbol and string tables in the kernel's ELF file,
//! which stays in reserved memory (`mm::kernel_image`); the kernel is loaded at
//! `abi::memory::KERNEL_IMAGE_BASE`, so an address minus that is a symbol value.
//! [`print_kernel_backtrace`] walks the current stack (`arch::backtrace`) and names
//! each frame. It runs in the panic handler, so it allocates nothing and takes no lock: it
//! prints through the console's panic path, and the tables are only read.
//!
//! **User programs.** [`print_user_backtrace`] names the frames of a process that a fault is
//! about to end: the faulting instruction, then the return addresses on its frame-pointer
//! chain. Everything comes from the process's memory through `usercopy`, checked and
//! bounded: the chain only inside the user stack, the symbol map through its header, its
//! symbol table read once for all frames, a buffer at a time on the kernel stack, with a
//! preemption point after each. A process may have broken any of it; then the lines have
//! fewer names, or fewer frames, and nothing else happens.

use core::fmt;

use abi::backtrace::{
    BACKTRACE_HEADING, Frame, FrameLine, FunctionSearch, MAX_FRAMES, SYMBOL_NAME_MAX, SYMBOL_SIZE, Symbol,
    SymbolMapHeader, function_containing, name_at, walk_frames,
};
use abi::memory::{KERNEL_IMAGE_BASE, USER_STACK_SIZE, USER_STACK_TOP, USER_SYMBOLS_BASE};
use bootloader_api::BootInfo;
use spin::Once;

use crate::arch::backtrace::{record_boot_stack, walk_current_stack};
use crate::arch::trap::CpuFault;
use crate::mm::kernel_image;
use crate::syscall::usercopy::{UserPtr, UserSlice};
use crate::task::loader::symbol_tables;

/// The kernel's symbol and string tables, inside its ELF file.
struct KernelSymbols {
    symtab: &'static [u8],
    strtab: &'static [u8],
}

static KERNEL_SYMBOLS: Once<KernelSymbols> = Once::new();

/// Prepares kernel backtraces: where the boot stack is, and the kernel's symbols. Returns
/// whether the symbols were found. Runs before the console is up, so it logs nothing.
pub fn init(boot_info: &BootInfo) -> bool {
    record_boot_stack(boot_info);
    let symbols = kernel_image::file(boot_info)
        .and_then(|file| Some((file, symbol_tables(file)?)))
        .map(|(file, tables)| KernelSymbols { symtab: &file[tables.symtab], strtab: &file[tables.strtab] });
    symbols.map(|symbols| KERNEL_SYMBOLS.call_once(|| symbols)).is_some()
}

/// The kernel function `frame` is in, and the offset into it.
fn kernel_function(frame: Frame) -> Option<(&'static str, u64)> {
    let symbols = KERNEL_SYMBOLS.get()?;
    let symbol = function_containing(symbols.symtab, frame.lookup_address().checked_sub(KERNEL_IMAGE_BASE)?)?;
    Some((name_at(symbols.strtab, symbol.name)?, frame.address() - KERNEL_IMAGE_BASE - symbol.value))
}

/// Prints the backtrace of the code that called this, with `print` (the panic handler passes
/// the console's lock-free panic output).
pub fn print_kernel_backtrace(print: fn(fmt::Arguments)) {
    print(format_args!("{BACKTRACE_HEADING}\n"));
    let mut index = 0;
    let walked = walk_current_stack(|frame| {
        print(format_args!("{}\n", FrameLine { index, address: frame.address(), function: kernel_function(frame) }));
        index += 1;
    });
    if !walked {
        print(format_args!("  (running on an interrupt stack, which is not walked)\n"));
    }
}

/// Prints the backtrace of the running process, stopped by `fault`, to the console. The
/// symbol search calls `pause` (a preemption point) between chunks of the symbol table: a
/// large program's table took tens of milliseconds to scan with interrupts masked.
pub fn print_user_backtrace(fault: &CpuFault, pause: &mut dyn FnMut()) {
    let mut frames = [Frame::Interrupted(fault.instruction); MAX_FRAMES + 1];
    let mut count = 1;
    let read_record = |record: u64| {
        let mut bytes = [0; 16];
        UserSlice::new(record, 16).read_into(&mut bytes).ok()?;
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
        Some([word(0), word(8)])
    };
    walk_frames(fault.frame_pointer, USER_STACK_TOP - USER_STACK_SIZE..USER_STACK_TOP, read_record, |_, return_address| {
        frames[count] = Frame::Return(return_address);
        count += 1;
    });
    let frames = &frames[..count];
    let symbols = UserSymbols::find();
    let mut functions = [None; MAX_FRAMES + 1];
    if let Some(symbols) = &symbols {
        symbols.search(frames, &mut functions, pause);
    }
    crate::println!("{BACKTRACE_HEADING}");
    for (index, (frame, function)) in frames.iter().zip(functions).enumerate() {
        let mut name = [0; SYMBOL_NAME_MAX + 1];
        let function = symbols
            .as_ref()
            .zip(function)
            .and_then(|(symbols, function)| Some((symbols.name(function, &mut name)?, frame.address() - function.value)));
        crate::println!("{}", FrameLine { index, address: frame.address(), function });
    }
}

/// The running process's symbol map, as its header describes it.
struct UserSymbols {
    header: SymbolMapHeader,
}

/// Symbol-table bytes copied from user memory at a time (a whole number of entries).
const SYMTAB_CHUNK: usize = 42 * SYMBOL_SIZE;

impl UserSymbols {
    /// The map's header, if it is readable and valid.
    fn find() -> Option<Self> {
        let header = UserPtr::<SymbolMapHeader>::new(USER_SYMBOLS_BASE).read().ok()?;
        header.is_valid().then_some(Self { header })
    }

    /// Finds the function of every frame, in one pass over the symbol table, into
    /// `functions` (in the order of `frames`), calling `pause` after each chunk.
    fn search(&self, frames: &[Frame], functions: &mut [Option<Symbol>], pause: &mut dyn FnMut()) {
        let symtab = USER_SYMBOLS_BASE + SymbolMapHeader::SIZE;
        let mut searches = [FunctionSearch::new(0); MAX_FRAMES + 1];
        for (search, frame) in searches.iter_mut().zip(frames) {
            *search = FunctionSearch::new(frame.lookup_address());
        }
        let searches = &mut searches[..frames.len()];
        let mut chunk = [0; SYMTAB_CHUNK];
        let mut offset = 0;
        while offset < self.header.symtab_len {
            let length = (self.header.symtab_len - offset).min(SYMTAB_CHUNK as u64) as usize;
            // Each chunk is checked when it is read: the pause between chunks runs other
            // processes, so a check made before it would prove nothing after.
            if UserSlice::new(symtab + offset, length as u64).read_into(&mut chunk[..length]).is_err() {
                return;
            }
            for search in searches.iter_mut() {
                search.search(&chunk[..length]);
            }
            offset += length as u64;
            pause();
        }
        for (function, search) in functions.iter_mut().zip(searches) {
            *function = search.found();
        }
    }

    /// The name of `function`, copied into `name`.
    fn name<'a>(&self, function: Symbol, name: &'a mut [u8; SYMBOL_NAME_MAX + 1]) -> Option<&'a str> {
        let name_offset = u64::from(function.name);
        let available = self.header.strtab_len.checked_sub(name_offset)?;
        let length = available.min(name.len() as u64) as usize;
        UserSlice::new(USER_SYMBOLS_BASE + self.header.strtab_offset() + name_offset, length as u64)
            .read_into(&mut name[..length])
            .ok()?;
        name_at(&name[..length], 0)
    }
}

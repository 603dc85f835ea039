//! Memory syscalls: `brk`, `mmap`, `munmap`, `mprotect`.

use abi::errno::EINVAL;

use super::{Args, SyscallResult, require_heap_room};
use crate::mm::address_space::UserRights;
use crate::task::scheduler::{pause, with_current_memory};

/// `brk(addr) -> new end`.
pub fn brk(args: &Args) -> SyscallResult {
    with_current_memory(|memory| memory.brk(args[0], &mut pause)).map_err(|error| error.errno())
}

/// `mmap(addr, len, prot) -> addr`.
pub fn mmap(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let rights = UserRights::from_prot(args[2]).ok_or(EINVAL)?;
    with_current_memory(|memory| memory.mmap(args[0], args[1], rights, &mut pause)).map_err(|error| error.errno())
}

/// `munmap(addr, len) -> 0`.
pub fn munmap(args: &Args) -> SyscallResult {
    require_heap_room()?;
    with_current_memory(|memory| memory.munmap(args[0], args[1], &mut pause)).map(|()| 0).map_err(|error| error.errno())
}

/// `mprotect(addr, len, prot) -> 0`.
pub fn mprotect(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let rights = UserRights::from_prot(args[2]).ok_or(EINVAL)?;
    with_current_memory(|memory| memory.mprotect(args[0], args[1], rights)).map(|()| 0).map_err(|error| error.errno())
}
